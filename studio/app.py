"""The studio application: QApplication + qasync event loop, the window shown at once, the engine after.

Nothing on the path to a visible window imports torch or a prompt encoder: the engine module (which
imports torch) is imported in the background once the window is on screen, and the engine then loads the
model and the prompt encoder in its own worker thread while the preview shows progress.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "emoji"  # same as studio.models.format.DEFAULT_MODEL, which would import torch


def model_display_name(model: str | None) -> str:
    """What to call the model in the window before it has loaded (a folder path shows its name)."""
    if not model:
        return DEFAULT_MODEL
    path = Path(model).expanduser()
    return path.name if (path.is_dir() or "/" in model or "\\" in model) and path.name else model


def configure_process() -> None:
    """Process settings that keep the UI thread responsive while the engine's thread renders.

    The engine's worker thread runs Python between torch calls; a shorter GIL switch interval hands the GIL
    back to the UI thread within ~1 ms instead of 5 ms. Idle OpenMP workers sleep instead of spinning, so on
    a small CPU they do not take the core the UI thread needs (a person's own setting wins).
    """
    sys.setswitchinterval(0.001)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


async def make_engine(model: str | None, device: str | None, **engine_options: Any) -> Any:
    """Import the engine off the UI thread (torch takes seconds to import), then construct it (returns at once)."""
    loop = asyncio.get_running_loop()
    module = await loop.run_in_executor(None, importlib.import_module, "studio.engine.engine")
    return module.Engine(model=model or DEFAULT_MODEL, device=device, **engine_options)


def leave_process(code: int) -> None:
    """End the process as soon as the window has closed and stored everything.

    By then settings are saved, the gallery's SQLite file is closed and the engine's worker is told to stop;
    what is left is Python's own teardown, which on a small CPU spent seconds garbage-collecting torch's and
    the prompt encoder's modules (measured with gdb in ``finalize_modules``), and the event loop's close,
    which waits for a still-running torch import. Neither writes anything a person could lose.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(model: str | None = None, device: str | None = None) -> int:
    """Open the studio window; ends the process with the exit code when the window closes."""
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from studio.logs import setup_logging
    from studio.paths import resources_dir
    from studio.session.settings import Settings
    from studio.ui.main_window import create_main_window
    from studio.ui.theme import apply_theme

    setup_logging()
    configure_process()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("GAN Studio")
    app.setOrganizationName("gan-studio")
    QGuiApplication.setDesktopFileName("gan-studio")
    settings = Settings()
    apply_theme(app, settings["theme"])
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "gan-studio.svg")))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    signal.signal(signal.SIGINT, lambda *_: app.quit())  # Ctrl+C in the terminal closes the window cleanly
    heartbeat = QTimer(interval=200)  # lets Python notice the SIGINT while Qt waits for events
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start()

    window = create_main_window(
        engine_factory=lambda: make_engine(model, device),
        model_name=model_display_name(model),
        settings=settings,
        start=False,
    )
    window.show()
    QTimer.singleShot(0, window.start_engine)  # after the first paint
    quit_after_ms = os.environ.get("GAN_STUDIO_QUIT_AFTER_MS", "")
    if quit_after_ms.isdigit():  # smoke tests: open, run, close cleanly
        QTimer.singleShot(int(quit_after_ms), window.close)
        QTimer.singleShot(int(quit_after_ms) + 500, app.quit)
    code = loop.run_forever()
    leave_process(int(code or 0))
    return int(code or 0)  # not reached


if __name__ == "__main__":
    sys.exit(main())
