"""The log file: people read one sentence, maintainers read the traceback here (no torch, no Qt).

``setup_logging()`` is called once by the CLI and by the window at start. It writes to a rotating
``gan-studio.log`` in the user's log folder (``GAN_STUDIO_LOG_DIR`` overrides it; tests use that) and sends
Python warnings (Pillow's among them) there too, so they never print before the sentence a person reads.
Code that turns an exception into a sentence calls :func:`log_caught` inside its ``except`` block.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from studio.paths import user_log_dir

LOG_NAME = "gan-studio.log"
MAX_LOG_BYTES = 1_000_000
LOG_BACKUPS = 3
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"

log = logging.getLogger("studio")
# Until setup_logging() runs (library use, tests), records go nowhere rather than to stderr as Python's
# last-resort handler would print them: a person sees the sentence, never a traceback.
log.addHandler(logging.NullHandler())


def log_file() -> Path:
    """The log file (in the user's log folder; ``GAN_STUDIO_LOG_DIR`` overrides it)."""
    return user_log_dir() / LOG_NAME


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Send the ``studio`` logger and Python warnings to the rotating log file; returns its path.

    Safe to call more than once (one handler per file). When the folder cannot be written the studio still
    runs, without a log (returns None).
    """
    path = log_file()
    root = logging.getLogger()
    # A library's logging.config.dictConfig() disables loggers that existed before it (import-linter's does):
    # the studio's own records must reach the file anyway.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and (name == "studio" or name.startswith("studio.")):
            logger.disabled = False
    for handler in root.handlers:
        if isinstance(handler, logging.handlers.RotatingFileHandler) and Path(handler.baseFilename) == path:
            return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True
        )
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn(...) -> the "py.warnings" logger -> this file
    return path


def log_caught(summary: str, logger: logging.Logger | None = None) -> None:
    """Log the exception being handled, with its traceback, as the sentence ``summary`` a person was shown."""
    (logger or log).warning("%s", summary, exc_info=True)
