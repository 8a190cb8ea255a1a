"""Fixtures for the window tests: one qasync loop driven by pytest-qt, and a studio window on the tiny model.

pytest-qt pumps Qt events (qtbot.waitUntil); the qasync loop is marked as running, so coroutines, engine
futures and asyncio tasks advance whenever Qt processes events, exactly as under ``loop.run_forever()``.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import HashTextEncoder
from PySide6.QtGui import QGuiApplication

from studio.engine.requests import GenerationRequest

READY_TIMEOUT_MS = 30_000
WAIT_MS = 20_000


@pytest.fixture(scope="session")
def _qasync_loop(qapp):
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.events._set_running_loop(None)  # running only inside a window test (see qloop)
    yield loop


@pytest.fixture
def qloop(_qasync_loop):
    """The one qasync loop, asyncio's running loop for this test only.

    Outside window tests no loop may look as if it were running, or a later test's ``asyncio.run`` fails
    ("cannot be called from a running event loop") depending on the order the modules ran in.
    """
    asyncio.set_event_loop(_qasync_loop)
    asyncio.events._set_running_loop(_qasync_loop)
    yield _qasync_loop
    asyncio.events._set_running_loop(None)


@pytest.fixture
def make_engine(tiny_model_dir):
    engines = []

    def make(model=None, micro_batch=4):
        from studio.engine.engine import Engine

        engine = Engine(
            model=model or tiny_model_dir,
            device="cpu",
            text_encoder=HashTextEncoder(),
            micro_batch=micro_batch,
        )
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def make_window(qtbot, qloop, make_engine):
    """``make_window(**kwargs)`` -> a shown window whose engine is ready (``wait_ready=False`` to skip)."""
    from studio.ui.main_window import create_main_window

    windows = []

    def make(engine=None, wait_ready=True, **kwargs):
        window = create_main_window(engine=engine or make_engine(), model_name="tiny-test", **kwargs)
        qtbot.addWidget(window)
        window.show()
        window.activateWindow()
        qtbot.waitExposed(window)
        if wait_ready:
            qtbot.waitUntil(lambda: window.link.is_ready, timeout=READY_TIMEOUT_MS)
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.isVisible():
            window.close()
    # Qt's offscreen clipboard crashes at interpreter exit if it still holds QMimeData; empty it.
    QGuiApplication.clipboard().clear()


def direct_render(engine, request: GenerationRequest) -> np.ndarray:
    """The engine's own render of ``request`` (no UI involved)."""
    results = list(engine.generate_sync(request))
    assert results[0].ok, results[0].error
    return results[0].image


def preview_render(engine, request: GenerationRequest) -> np.ndarray:
    """The engine's live-preview render of ``request`` (one row alone on CPU), made in its worker thread."""
    result = engine._call_in_worker(lambda: engine._renderer.render([request], exact=False)[0]).result(60)
    assert result.ok and not result.exact, result.error
    return result.image


def close_to_stored(shown: np.ndarray, stored: np.ndarray) -> bool:
    """A live preview is the stored image to within 2 of 255 (measured bound, tests/test_engine_batching.py)."""
    return shown.shape == stored.shape and int(np.abs(shown.astype(int) - stored.astype(int)).max()) <= 2


def wait_for_preview_of(qtbot, window, request: GenerationRequest) -> np.ndarray:
    """Wait until the preview shows the render of exactly ``request``; return its pixels."""
    controller = window.controller

    def shown() -> bool:
        last = controller.last_preview
        return last is not None and last.request == request and window.preview.image_array() is not None

    qtbot.waitUntil(lambda: not controller.prompt_pending and shown(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.link.previews_pending, timeout=WAIT_MS)
    assert controller.last_preview.request == request
    return window.preview.image_array()
