# Runs in the frozen app before studio is imported: the bundle carries its prompt encoder and never reaches
# for the network (studio/models/text.py sets the same when it loads the encoder; this covers every import).
import os

for name, value in (
    ("HF_HUB_OFFLINE", "1"),  # the prompt encoder ships inside the bundle
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("TRANSFORMERS_VERBOSITY", "error"),
):
    os.environ.setdefault(name, value)
