# Runs in the frozen app before studio is imported: the bundle carries its prompt encoders and never reaches
# for the network; the tokenizers library must not start its own thread pool beside the renderer's.
import os

for name, value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
):
    os.environ.setdefault(name, value)
