"""The inference engine: one worker thread owns torch and the device; results stream back as they are made.

Work items are served in this order: the pending preview (latest wins; at most one is ever queued), then the
next micro-batch of the oldest generation stream. A stream puts itself back after each micro-batch, so
previews stay interactive during a long batch and a cancelled stream stops at the next micro-batch.
See docs/ENGINE_API.md for the public contract.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from studio.engine.devices import choose_device
from studio.engine.info import EngineInfo
from studio.engine.renderer import CPU_FIXED_ROWS, Renderer
from studio.engine.requests import (
    MAX_COUNT,
    SPREAD_DEFAULT,
    GenerationRequest,
    GenerationResult,
    RequestError,
)
from studio.errors import EngineClosedError
from studio.logs import log_caught
from studio.models.concepts import load_concepts
from studio.models.format import DEFAULT_MODEL, LoadedModel, ModelError, load_model
from studio.models.text import poor_match_similarity
from studio.models.vocabulary import Vocabulary, load_vocabulary
from studio.untrusted import shown

if TYPE_CHECKING:
    import numpy as np

    from studio.engine.inversion import InversionProgress

_DONE = object()
log = logging.getLogger(__name__)
CLOSED_SENTENCE = "The engine has been closed; open the model again to use it."
# A respelling is offered ("piza" -> "pizza") when its best name or keyword lies this much nearer, and at least this near.
SUGGEST_GAIN = 0.05
SUGGEST_FLOOR = 0.8


def _settle(future: concurrent.futures.Future, value: object) -> None:
    """Resolve ``future`` unless its caller already cancelled it (an ``asyncio.wait_for`` timeout does)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(value)


@dataclass
class _Stream:
    """One generate() call: the one-image requests still to render and where results go."""

    requests: list[GenerationRequest]
    deliver: Callable[[object], None]
    cursor: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Set for worker calls (embeddings, nearest concepts); a job that returns True is sliced work (an
    # inversion) and goes back in the queue, behind any newer preview, like a batch after a micro-batch.
    job: Callable[[], bool | None] | None = None


@dataclass
class InversionJob:
    """A running :meth:`Engine.invert`: ``future`` gets the InversionOutcome; ``cancel()`` stops it."""

    future: concurrent.futures.Future
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop at the next step; the future is cancelled (nothing is half-delivered)."""
        self.cancelled.set()
        self.future.cancel()

    def result(self, timeout: float | None = None):
        return self.future.result(timeout)


class Engine:
    """Hosts one model on one device. Construct it anywhere; it loads in its own thread."""

    def __init__(
        self,
        model: str | Path | LoadedModel = DEFAULT_MODEL,
        device: str | None = None,
        text_encoder=None,
        micro_batch: int | None = None,
        on_progress: Callable[[str], None] | None = None,
        warm_up: bool = True,
    ):
        self._model_spec = model
        self._device_request = device
        self._encoder = text_encoder
        self._micro_batch_request = micro_batch
        self._on_progress = on_progress
        self._warm_up = warm_up  # off for one-shot commands: it only steadies the first interactive previews
        self.progress = "Starting…"
        self.info: EngineInfo | None = None
        self.stats = {
            "renders": 0,
            "images": 0,
            "previews_requested": 0,
            "previews_rendered": 0,
            "last_render_ms": 0.0,
        }
        self._ready: concurrent.futures.Future[EngineInfo] = concurrent.futures.Future()
        self._cond = threading.Condition()
        self._streams: collections.deque[_Stream] = collections.deque()
        self._preview: tuple[GenerationRequest, concurrent.futures.Future] | None = None
        self._last_preview: GenerationResult | None = None
        self._closing = False
        self._vocabulary: Vocabulary | None = None
        self._inversion = None  # the Inverter, made at the first invert()
        self._thread = threading.Thread(target=self._run, name="gan-studio-engine", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------------------- readiness
    def wait_ready(self, timeout: float | None = None) -> EngineInfo:
        """Block until the model is loaded; raises the loading error (ModelError etc.) if it failed."""
        return self._ready.result(timeout)

    async def ready(self) -> EngineInfo:
        return await asyncio.wrap_future(self._ready)

    @property
    def is_ready(self) -> bool:
        return self._ready.done() and self._ready.exception() is None

    # ----------------------------------------------------------------------------------------- generation
    def generate_sync(
        self, request: GenerationRequest | Sequence[GenerationRequest]
    ) -> Iterator[GenerationResult]:
        """Blocking iterator of results in order; closing it early cancels the rest of the batch."""
        import queue

        results: queue.SimpleQueue = queue.SimpleQueue()
        stream = self._submit(request, results.put)
        try:
            while True:
                item = results.get()
                if item is _DONE:
                    return
                yield item
        finally:
            stream.cancelled.set()

    async def generate(
        self, request: GenerationRequest | Sequence[GenerationRequest]
    ) -> AsyncIterator[GenerationResult]:
        """Async iterator of results in order; leaving the loop or cancelling the task stops the batch."""
        loop = asyncio.get_running_loop()
        results: asyncio.Queue = asyncio.Queue()

        def deliver(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody is listening
                loop.call_soon_threadsafe(results.put_nowait, item)

        stream = self._submit(request, deliver)
        try:
            while True:
                item = await results.get()
                if item is _DONE:
                    return
                yield item
        finally:
            stream.cancelled.set()

    def _submit(self, request, deliver) -> _Stream:
        if isinstance(request, GenerationRequest):
            # An invalid count stays one request, so validation reports it as one error result.
            count_ok = isinstance(request.count, int) and 1 <= request.count <= MAX_COUNT
            requests = [request.single(i) for i in range(request.count)] if count_ok else [request]
        else:
            requests = list(request)
        stream = _Stream(requests, deliver)
        with self._cond:
            if self._closing:
                deliver(_DONE)
                return stream
            self._streams.append(stream)
            self._cond.notify()
        return stream

    # ----------------------------------------------------------------------------------------- previews
    def preview(self, request: GenerationRequest) -> concurrent.futures.Future:
        """Latest-wins render of one image; a newer preview makes a still-pending one resolve to None."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            self.stats["previews_requested"] += 1
            last = self._last_preview
            if last is not None and last.request == request and self._preview is None:
                future.set_result(last)  # dedup: the same request renders nothing
                return future
            if self._preview is not None:
                _settle(self._preview[1], None)
            if self._closing:
                future.set_result(None)
                return future
            self._preview = (request, future)
            self._cond.notify()
        return future

    async def preview_async(self, request: GenerationRequest) -> GenerationResult | None:
        return await asyncio.wrap_future(self.preview(request))

    # ----------------------------------------------------------------------------------------- vocabulary
    def vocabulary_names(self) -> list[str]:
        return list(self._vocabulary.names) if self._vocabulary is not None else []

    def nearest_concepts(self, prompt: str, k: int = 3) -> concurrent.futures.Future:
        """The model's ``k`` known concepts nearest to ``prompt`` (empty when the model has no vocabulary).

        Each similarity is scaled by the share of the prompt the encoder can read, so a prompt in a script it
        does not know (every piece unknown) scores 0 instead of matching a name that is also all unknown."""

        def nearest(vocabulary, embedding) -> list[tuple[str, float]]:
            found = vocabulary.nearest(embedding, k)
            known_share = getattr(self._renderer.encoder, "known_share", None)
            scale = float(known_share(self._renderer.read(prompt))) if known_share is not None else 1.0
            return [(name, score * scale) for name, score in found]

        return self._vocabulary_lookup(prompt, nearest)

    def spread_concepts(self, prompt: str) -> concurrent.futures.Future:
        """The names of the concepts ``prompt`` spreads its seeds over with spread on (studio/engine/spread.py),
        best first; fewer than two means it is drawn as it is."""

        def spread(vocabulary, embedding) -> list[str]:
            listed = self._renderer.listed(prompt)
            found = self._renderer.spreader.matches(embedding) if listed is None else listed
            return [vocabulary.names[int(i)] for i in found]

        return self._vocabulary_lookup(prompt, spread)

    def reading(self, prompt: str) -> concurrent.futures.Future:
        """What the model reads ``prompt`` as (Renderer.read): known emoji as their names ("🐱" as "cat face"),
        generic texts up to case and punctuation ("EMOJI!" as "emoji"), name words ("happy dog" as "dog"); the
        prompt itself when it is read as typed or the model has no vocabulary."""
        return self._vocabulary_lookup(
            prompt, lambda vocabulary, embedding: self._renderer.read(prompt), lambda: prompt
        )

    def suggestion(self, prompt: str) -> concurrent.futures.Future:
        """A respelling of ``prompt`` the model understands clearly better ("piza" -> "pizza", "ROCKET" -> "rocket";
        :meth:`Vocabulary.correction`), or None: offered when its best name or shared keyword lies at least
        SUGGEST_GAIN nearer than the prompt's, and at least SUGGEST_FLOOR near, or when it is one of the model's
        generic texts ("EMOJI" -> "emoji"). Changes nothing by itself."""

        def suggest(vocabulary, embedding) -> str | None:
            corrected = vocabulary.correction(prompt)
            if corrected is None:
                return None
            other = self._renderer.encode([corrected])[0]
            if vocabulary.is_generic(other) and not vocabulary.is_generic(embedding):
                return corrected  # "EMOJI" -> "emoji": asks for any emoji, which no name's cosine says
            before, after = (float(vocabulary.match_scores(e).max()) for e in (embedding, other))
            return corrected if after >= max(before + SUGGEST_GAIN, SUGGEST_FLOOR) else None

        return self._vocabulary_lookup(prompt, suggest, empty=lambda: None)

    def _vocabulary_lookup(self, prompt: str, lookup, empty=list) -> concurrent.futures.Future:
        """``lookup(vocabulary, prompt embedding)`` in the worker thread; ``empty()`` ([] by default) at once when the
        model has no vocabulary or the prompt is empty."""
        vocabulary = self._vocabulary
        if vocabulary is None or vocabulary.embeddings.shape[1] == 0 or not prompt.strip():
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_result(empty())
            return future
        return self._call_in_worker(lambda: lookup(vocabulary, self._renderer.encode([prompt])[0]))

    def embed(self, prompts: Sequence[str]) -> concurrent.futures.Future:
        """Prompt embeddings (float32 N x D), computed in the worker thread."""
        return self._call_in_worker(lambda: self._renderer.encode(list(prompts)))

    def _call_in_worker(self, fn: Callable[[], object]) -> concurrent.futures.Future:
        """Run ``fn`` in the worker thread (ahead of queued batches); its result or exception goes to the future."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the caller gave up waiting
            failure = self._load_failure()
            if failure is not None:
                future.set_exception(ModelError(failure))
                return
            try:
                future.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - reported to the caller, the worker keeps going
                future.set_exception(exc)

        def closed(item: object) -> None:  # close() came before the job ran: say so, nobody waits forever
            if future.set_running_or_notify_cancel():
                future.set_exception(EngineClosedError(CLOSED_SENTENCE))

        stream = _Stream([], closed, job=job)
        with self._cond:
            if self._closing:
                closed(_DONE)
                return future
            self._streams.appendleft(stream)
            self._cond.notify()
        return future

    # ----------------------------------------------------------------------------------------- inversion
    def invert(
        self,
        picture: np.ndarray,
        steps: int | None = None,
        name: str = "",
        on_progress: Callable[[InversionProgress], None] | None = None,
    ) -> InversionJob:
        """Find the explicit latent that redraws ``picture`` (letterboxed straight-alpha RGBA uint8).

        Runs in the worker a slice at a time (previews interleave); ``on_progress`` gets the current best
        image after each slice, in the worker thread. ``name`` is the source file name the result links to.
        """
        from studio.engine import inversion

        steps = inversion.DEFAULT_STEPS if steps is None else steps
        job = InversionJob(concurrent.futures.Future())
        problem = None
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= inversion.MAX_STEPS:
            problem = f"The number of inversion steps must be between 1 and {inversion.MAX_STEPS}."
        shape = getattr(picture, "shape", ())
        if (
            getattr(picture, "dtype", None) != "uint8"
            or len(shape) != 3
            or shape[2] != 4
            or shape[0] != shape[1]
        ):
            problem = (
                "The picture to invert must be a square RGBA image; read it with studio.io.picture first."
            )
        if problem is not None:
            job.future.set_exception(RequestError(problem))
            return job
        running: list = []

        def work() -> bool:
            if job.cancelled.is_set() or job.future.done():
                return False
            try:
                failure = self._load_failure()
                if failure is not None:
                    raise ModelError(failure)
                if not running:
                    running.append(self._inverter().start(picture, steps, name))
                run = running[0]
                run.advance(inversion.SLICE_STEPS, job.cancelled)
                if job.cancelled.is_set():
                    return False
                if on_progress is not None:
                    try:
                        on_progress(run.preview())
                    except Exception:  # noqa: BLE001 - a broken listener must not stop the inversion
                        log.exception("an inversion progress listener failed")
                if not run.done:
                    return True
                outcome = run.finish()
                if not outcome.result.ok:
                    raise RequestError(outcome.result.error or "The inverted picture could not be rendered.")
                job.future.set_result(outcome)
            except Exception as exc:  # noqa: BLE001 - reported to the caller, the worker keeps going
                log.warning("inversion failed", exc_info=True)
                if not job.future.done():
                    job.future.set_exception(exc)
            return False

        stream = _Stream([], lambda item: job.future.cancel(), job=work)
        with self._cond:
            if self._closing:
                job.future.cancel()
                return job
            self._streams.append(stream)
            self._cond.notify()
        return job

    def _inverter(self):
        if self._inversion is None:
            from studio.engine.inversion import Inverter

            self._inversion = Inverter(self._renderer, self._vocabulary)
        return self._inversion

    # ----------------------------------------------------------------------------------------- lifecycle
    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker; pending previews resolve to None and open streams end."""
        with self._cond:
            self._closing = True
            if self._preview is not None:
                _settle(self._preview[1], None)
                self._preview = None
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- worker
    def _run(self) -> None:
        try:
            self._load()
        except BaseException as exc:  # noqa: BLE001 - every loading failure goes to the waiter
            if not isinstance(exc, (ModelError, RequestError)):
                exc = ModelError(f"The model could not be loaded: {shown(exc, 120)}")
            log_caught(str(exc))
            self._set_progress(str(exc))
            self._ready.set_exception(exc)
        while True:
            with self._cond:
                while not self._closing and self._preview is None and not self._streams:
                    self._cond.wait()
                if self._closing:
                    break
                if self._preview is not None:
                    preview, self._preview = self._preview, None
                    stream = None
                else:
                    stream = self._streams.popleft()
            try:
                if stream is None:
                    self._serve_preview(*preview)
                else:
                    self._serve_stream(stream)
            except Exception as exc:  # noqa: BLE001 - a bug in one job must not stop the worker (callers would wait forever)
                log.exception("the engine's worker failed while serving a job")
                self._fail_job(preview if stream is None else stream, exc)
        for stream in self._streams:
            stream.deliver(_DONE)

    def _fail_job(self, job, exc: Exception) -> None:
        """Answer a preview or a stream whose serving raised: an error result each, then the end."""
        sentence = f"Rendering failed ({type(exc).__name__}: {exc}); the engine is still running."
        if isinstance(job, _Stream):
            if job.job is None:
                for request in job.requests[job.cursor :]:
                    job.deliver(GenerationResult(request=request, error=sentence))
                job.deliver(_DONE)
        else:
            request, future = job
            _settle(future, GenerationResult(request=request, error=sentence))

    def _serve_preview(self, request: GenerationRequest, future: concurrent.futures.Future) -> None:
        if future.done():
            return
        failure = self._load_failure()
        if failure is not None:
            _settle(future, GenerationResult(request=request, error=failure))
            return
        result = self._render([request], exact=False)[0]
        with self._cond:
            self.stats["previews_rendered"] += 1
            if result.ok:
                self._last_preview = result
        _settle(future, result)

    def _serve_stream(self, stream: _Stream) -> None:
        if stream.job is not None:
            if stream.job():
                with self._cond:
                    if self._closing:
                        stream.deliver(_DONE)
                    else:
                        self._streams.appendleft(stream)
            return
        if stream.cancelled.is_set() or stream.cursor >= len(stream.requests):
            stream.deliver(_DONE)
            return
        failure = self._load_failure()
        if failure is not None:
            for request in stream.requests[stream.cursor :]:
                stream.deliver(GenerationResult(request=request, error=failure))
            stream.deliver(_DONE)
            return
        chunk = stream.requests[stream.cursor : stream.cursor + self.info.micro_batch]
        results = self._render(chunk, first_index=stream.cursor)
        stream.cursor += len(chunk)
        for result in results:
            stream.deliver(result)
        if stream.cursor >= len(stream.requests) or stream.cancelled.is_set():
            stream.deliver(_DONE)
        else:
            with self._cond:
                self._streams.appendleft(stream)  # continue this batch after any newer preview

    def _load_failure(self) -> str | None:
        """Why nothing can be rendered (only after a failed load: the worker loads before serving)."""
        if self._ready.done() and self._ready.exception() is not None:
            return str(self._ready.exception())
        return None

    def _set_progress(self, text: str) -> None:
        self.progress = text
        if self._on_progress is not None:
            with contextlib.suppress(Exception):
                self._on_progress(text)

    def _load(self) -> None:
        self._set_progress("Choosing a device…")
        choice = choose_device(self._device_request)
        self._set_progress("Loading the model…")
        spec = self._model_spec
        loaded = spec if isinstance(spec, LoadedModel) else load_model(spec)
        info = loaded.info
        self._vocabulary = load_vocabulary(info)
        encoder = self._encoder
        if info.conditioning.kind == "text":
            if encoder is None:
                from studio.models.text import get_text_encoder

                encoder = get_text_encoder(info.conditioning.encoder or "")
            if getattr(encoder, "dim", info.base.embed_dim) != info.base.embed_dim:
                raise ModelError(
                    f"'{info.name}' expects {info.base.embed_dim}-dimensional prompt embeddings but the encoder "
                    f"makes {encoder.dim}."
                )
        micro_batch = max(
            1, int(self._micro_batch_request or (64 if choice.kind == "cuda" else CPU_FIXED_ROWS))
        )
        concepts = load_concepts(info, self._vocabulary) if info.conditioning.kind == "text" else None
        self._renderer = Renderer(loaded, choice, encoder, micro_batch, self._vocabulary, concepts)
        self.device_choice = choice
        self.info = EngineInfo(
            model_name=info.name,
            model_hash=loaded.hash,
            model_path=info.path,
            resolution=info.resolution,
            base_resolution=info.base_resolution,
            default_truncation=info.default_truncation,
            num_directions=self._renderer.num_directions,
            device_kind=choice.kind,
            device_label=choice.label,
            dtype=choice.dtype_name,
            conditioning=info.conditioning.kind,
            classes=info.conditioning.classes,
            micro_batch=micro_batch,
            poor_match_similarity=poor_match_similarity(encoder.encoder_id) if encoder is not None else 0.0,
        )
        if self._warm_up:  # load_model already drew a CPU probe; one-shot commands need nothing more
            if info.conditioning.kind == "text":
                self._set_progress("Loading the prompt encoder…")
                self._renderer.encode(["warm-up"])
            self._set_progress("Warming up…")
            warm_prompt = info.conditioning.classes[0] if info.conditioning.classes else "warm-up"
            # with spread as new images have it, so the first prompt does not pay for the vocabulary's first scan
            warm = GenerationRequest(prompt=warm_prompt, model=info.name, spread=SPREAD_DEFAULT)
            probes = (
                self._renderer.render([warm], exact=False),
                self._renderer.render([warm.single(i) for i in range(micro_batch)]),  # the exact shape
            )
            for probe in probes:
                if not probe[0].ok:  # a model that cannot draw its probe image is not "Ready"
                    raise ModelError(
                        f"'{info.name}' loaded but could not draw a test image: {probe[0].error}"
                    )
        self._set_progress("Ready")
        self._ready.set_result(self.info)

    def _render(
        self, requests: list[GenerationRequest], first_index: int = 0, exact: bool = True
    ) -> list[GenerationResult]:
        results = self._renderer.render(requests, first_index, exact)
        with self._cond:
            self.stats["renders"] += 1
            self.stats["images"] += sum(r.ok for r in results)
            self.stats["last_render_ms"] = self._renderer.last_render_ms
        return results
