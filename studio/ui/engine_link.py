"""The window's one way to reach the engine: asyncio tasks on the qasync loop, results as Qt signals.

Widgets never start threads. Loading, previews, batches and concept look-ups are coroutines that await the
engine's futures; the engine's own worker thread does the work. Previews are latest-wins: the engine drops
superseded requests, and this link never shows a result older than one already shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from studio.engine.info import EngineInfo
from studio.engine.requests import GenerationRequest, GenerationResult

BATCH_SLICE_S = 0.008  # longest stretch of batch bookkeeping before the UI gets a turn
CLOSE_WAIT_S = 0.5  # how long closing waits for the engine's worker to finish the micro-batch in flight


class EngineLink(QObject):
    progress = Signal(str)  # loading steps ("Loading the model…")
    ready = Signal(object)  # EngineInfo (studio.engine.info, torch-free)
    failed = Signal(str)  # one sentence: why there is no model
    preview_ready = Signal(object)  # GenerationResult (ok or with .error)
    nearest_ready = Signal(str, list)  # prompt, [(name, score)]
    spread_ready = Signal(str, list)  # prompt, [names its seeds spread over] (fewer than 2: none)
    suggestion_ready = Signal(str, str)  # prompt, a respelling the model knows better ("": none)
    reading_ready = Signal(str, str)  # prompt, what the model reads it as ("happy dog": "dog"; "": as typed)
    batch_result = Signal(object)  # GenerationResult, in order
    batch_finished = Signal(bool)  # True if it ran to the end, False if cancelled
    inversion_progress = Signal(object)  # InversionProgress of the running inversion
    inversion_finished = Signal(object)  # InversionOutcome (a cancelled inversion emits nothing)
    inversion_failed = Signal(str)  # one sentence

    def __init__(self, engine_source: Any, parent: QObject | None = None):
        """``engine_source``: an Engine, or a callable returning one (or an awaitable of one)."""
        super().__init__(parent)
        self._source = engine_source
        self.engine: Any = None
        self.info: EngineInfo | None = None
        self.error: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._batch: asyncio.Task | None = None
        self._inversion: Any = None  # the engine's InversionJob while one runs
        self._preview_sequence = 0
        self._shown_sequence = 0
        self._pending_preview: GenerationRequest | None = None
        self._shown_times: deque[float] = deque(maxlen=120)
        self._progress_timer = QTimer(self, interval=100)
        self._progress_timer.timeout.connect(self._poll_progress)

    # --- loading ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the engine and wait for it in the background; emits ``ready`` or ``failed``."""
        self._spawn(self._start())

    async def _start(self) -> None:
        try:
            engine = self._source
            if callable(engine) and not hasattr(engine, "preview"):
                engine = engine()
                if inspect.isawaitable(engine):
                    engine = await engine
            self.engine = engine
            self._progress_timer.start()
            self.info = await engine.ready()
        except Exception as exc:  # noqa: BLE001 - ModelError and friends: shown as their sentence
            if self._closed:
                return
            self._progress_timer.stop()
            self.error = str(exc) or exc.__class__.__name__
            self.failed.emit(self.error)
            return
        if self._closed:
            engine.close()
            return
        self._progress_timer.stop()
        self.ready.emit(self.info)
        if self._pending_preview is not None:
            request, self._pending_preview = self._pending_preview, None
            self.preview(request)

    def _poll_progress(self) -> None:
        if self.engine is not None:
            self.progress.emit(str(getattr(self.engine, "progress", "")))

    @property
    def is_ready(self) -> bool:
        return self.info is not None

    # --- previews --------------------------------------------------------------------------------------------
    def preview(self, request: GenerationRequest) -> None:
        """Render ``request`` for the preview; only the newest result is ever shown."""
        if not self.is_ready:
            self._pending_preview = request
            return
        self._preview_sequence += 1
        future = self.engine.preview(request)
        self._spawn(self._await_preview(future, self._preview_sequence))

    async def _await_preview(self, future, sequence: int) -> None:
        result = await asyncio.wrap_future(future)
        if self._closed or result is None or sequence <= self._shown_sequence:
            return  # superseded, or older than what is already on screen
        self._shown_sequence = sequence
        self._shown_times.append(time.perf_counter())
        self.preview_ready.emit(result)

    def preview_fps(self) -> float:
        """Previews shown per second over the last second (0 when idle)."""
        now = time.perf_counter()
        recent = [t for t in self._shown_times if now - t <= 1.0]
        return float(len(recent)) if len(recent) > 1 else 0.0

    @property
    def previews_pending(self) -> bool:
        return self._shown_sequence < self._preview_sequence

    # --- batches ---------------------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest | Sequence[GenerationRequest]) -> None:
        """Stream a batch; each result arrives as ``batch_result``. A running batch is cancelled first."""
        self.cancel()
        self._batch = self._spawn(self._run_batch(request))

    async def _run_batch(self, request) -> None:
        finished = False
        try:
            async with contextlib.aclosing(self.engine.generate(request)) as stream:
                budget_start = time.perf_counter()
                async for result in stream:
                    if self._closed:
                        return
                    self.batch_result.emit(result)
                    # A micro-batch arrives as a burst; give painting and input a turn whenever storing and
                    # showing images has used a few milliseconds, instead of after the whole burst.
                    if time.perf_counter() - budget_start > BATCH_SLICE_S:
                        await asyncio.sleep(0)
                        budget_start = time.perf_counter()
            finished = True
        finally:
            if not self._closed:
                self.batch_finished.emit(finished)

    def cancel(self) -> bool:
        """Stop the running batch at the engine's next micro-batch; results already emitted stay."""
        if self._batch is not None and not self._batch.done():
            self._batch.cancel()
            self._batch = None
            return True
        return False

    @property
    def generating(self) -> bool:
        return self._batch is not None and not self._batch.done()

    async def render_all(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Every result of a list of one-image requests (for animations), in order."""
        async with contextlib.aclosing(self.engine.generate(list(requests))) as stream:
            return [result async for result in stream]

    # --- inversion -------------------------------------------------------------------------------------------
    def invert(self, picture, name: str = "", steps: int | None = None) -> None:
        """Invert a letterboxed RGBA picture; progress, the outcome or one sentence arrive as signals."""
        self.cancel_inversion()
        loop = asyncio.get_event_loop()
        job = None

        def progress(step) -> None:  # the engine's worker thread: hop to the loop, drop a replaced job's
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(
                    lambda: self._inversion is job and self.inversion_progress.emit(step)
                )

        job = self.engine.invert(picture, steps, name, on_progress=progress)
        self._inversion = job
        self._spawn(self._await_inversion(job))

    async def _await_inversion(self, job) -> None:
        try:
            outcome = await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            return  # cancel_inversion() did it, and whoever called it knows
        except Exception as exc:  # noqa: BLE001 - RequestError, ModelError: shown as their sentence
            if not self._closed and self._inversion is job:
                self._inversion = None
                self.inversion_failed.emit(str(exc) or type(exc).__name__)
            return
        if not self._closed and self._inversion is job:
            self._inversion = None
            self.inversion_finished.emit(outcome)

    def cancel_inversion(self) -> bool:
        """Stop the running inversion (its result is dropped); True if one was running."""
        job, self._inversion = self._inversion, None
        if job is None or job.future.done():
            return False
        job.cancel()
        return True

    @property
    def inverting(self) -> bool:
        return self._inversion is not None

    # --- concepts --------------------------------------------------------------------------------------------
    def nearest(self, prompt: str, k: int = 3) -> None:
        """Look up the concepts nearest to ``prompt``; an empty prompt has none (the line clears at once)."""
        if not prompt.strip():
            self.nearest_ready.emit(prompt, [])
            self.spread_ready.emit(prompt, [])
            self.suggestion_ready.emit(prompt, "")
            self.reading_ready.emit(prompt, "")
        elif self.is_ready:
            self._spawn(self._await_nearest(prompt, k))

    async def _await_nearest(self, prompt: str, k: int) -> None:
        with contextlib.suppress(Exception):  # a failed look-up only leaves the line empty
            self.nearest_ready.emit(
                prompt, list(await asyncio.wrap_future(self.engine.nearest_concepts(prompt, k)))
            )
            self.spread_ready.emit(
                prompt, list(await asyncio.wrap_future(self.engine.spread_concepts(prompt)))
            )
            self.suggestion_ready.emit(
                prompt, await asyncio.wrap_future(self.engine.suggestion(prompt)) or ""
            )
            read = await asyncio.wrap_future(self.engine.reading(prompt))
            self.reading_ready.emit(prompt, "" if read == prompt else read)

    def vocabulary_names(self) -> list[str]:
        return list(self.engine.vocabulary_names()) if self.is_ready else []

    # --- lifecycle -------------------------------------------------------------------------------------------
    def spawn(self, coroutine) -> asyncio.Task:
        """Run a coroutine on the loop, keeping a reference until it ends (exceptions are logged by asyncio)."""
        return self._spawn(coroutine)

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Stop everything: pending tasks end quietly and the engine's worker stops."""
        self._closed = True
        self._progress_timer.stop()
        for task in list(self._tasks):
            task.cancel()
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.close(timeout=CLOSE_WAIT_S)
