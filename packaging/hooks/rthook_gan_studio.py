# Runs in the frozen app before studio is imported: a bundle never reaches for the network, and nothing is
# written inside the bundle folder (which may be read-only, e.g. /opt or Program Files).
import os

for name, value in (
    ("HF_HUB_OFFLINE", "1"),  # the prompt encoder ships inside the bundle
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("TRANSFORMERS_VERBOSITY", "error"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
):
    os.environ.setdefault(name, value)
