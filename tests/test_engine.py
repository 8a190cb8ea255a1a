"""Engine behaviour: streaming, cancellation, latest-wins previews, determinism, errors that keep it serving."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from studio.engine.engine import Engine
from studio.engine.requests import ConceptSlider, Endpoint, GenerationRequest
from studio.models.format import ModelError


@pytest.fixture
def engine(tiny_model_dir, text_encoder):
    engine = Engine(tiny_model_dir, device="cpu", text_encoder=text_encoder, micro_batch=4)
    engine.wait_ready(60)
    yield engine
    engine.close()


def occupy_worker(engine) -> threading.Event:
    """Block the engine's worker (returns once it really is blocked); set the returned event to free it."""
    gate, busy = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        gate.wait()

    engine._call_in_worker(hold)
    assert busy.wait(10)
    return gate


def request(prompt="red apple", **kw):
    return GenerationRequest(prompt=prompt, model="tiny-test", **kw)


def test_info_describes_model_and_device(engine):
    info = engine.info
    assert info.model_name == "tiny-test"
    assert info.resolution == 128 and info.base_resolution == 32
    assert info.device_kind == "cpu" and info.device_label.startswith("CPU")
    assert info.num_directions == 16  # z_dim of the tiny model
    assert len(info.model_hash) == 8


def test_generate_streams_in_order_with_per_image_seeds(engine):
    results = list(engine.generate_sync(request(seed=10, count=10)))
    assert [r.index for r in results] == list(range(10))
    assert [r.request.seed for r in results] == list(range(10, 20))
    assert all(r.ok and r.image.shape == (128, 128, 4) and r.image.dtype == np.uint8 for r in results)
    assert all(r.request.count == 1 for r in results)
    assert all(r.latent.shape == (16,) for r in results)


def test_results_arrive_before_the_batch_ends(engine):
    seen = [engine.stats["images"] for _ in engine.generate_sync(request(count=12))]
    # When the first result arrives only its micro-batch (4 images) has been rendered, not all 12.
    assert seen[0] <= 4 + engine.info.micro_batch
    assert seen[-1] == 12


def test_same_request_same_bytes_and_one_image_request_reproduces_batch_item(engine):
    batch = list(engine.generate_sync(request(seed=3, count=6)))
    again = list(engine.generate_sync(request(seed=3, count=6)))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(batch, again))
    for item in batch:
        alone = next(iter(engine.generate_sync(item.request)))
        assert np.array_equal(alone.image, item.image)
    assert not np.array_equal(batch[0].image, batch[1].image)  # different seeds, different images


def test_different_prompts_differ(engine):
    a = next(iter(engine.generate_sync(request("cat", seed=1))))
    b = next(iter(engine.generate_sync(request("rocket ship", seed=1))))
    assert not np.array_equal(a.image, b.image)


def rendered_after_draining(engine) -> int:
    """Images rendered once every stream queued so far has been served or has ended: a one-image probe
    queued now is served after them (streams are first in, first out), so no sleep is needed."""
    probe = list(engine.generate_sync(request("probe")))
    assert probe[0].ok
    return engine.stats["images"] - 1


def test_cancel_stops_within_one_micro_batch(engine):
    iterator = engine.generate_sync(request(count=200))
    got = [next(iterator) for _ in range(3)]
    iterator.close()
    rendered = rendered_after_draining(engine)
    assert len(engine._streams) == 0, "the cancelled batch is still queued"
    assert rendered <= len(got) + 2 * engine.info.micro_batch
    assert len(got) == 3


def test_async_generate_streams_and_task_cancel_stops(engine):
    async def consume(limit):
        out = []
        async for result in engine.generate(request(count=100)):
            out.append(result)
            if len(out) == limit:
                break
        return out

    out = asyncio.run(consume(5))
    assert [r.index for r in out] == [0, 1, 2, 3, 4]
    images = rendered_after_draining(engine)
    assert len(engine._streams) == 0, "the cancelled batch is still queued"
    assert images <= 5 + 2 * engine.info.micro_batch


def test_latest_wins_under_a_burst_of_100_previews(engine):
    gate = occupy_worker(engine)  # so the burst queues up behind it
    futures = [engine.preview(request(seed=i)) for i in range(100)]
    gate.set()
    results = [f.result(10) for f in futures]
    assert all(r is None for r in results[:-1])
    assert results[-1] is not None and results[-1].request.seed == 99
    assert engine.stats["previews_rendered"] == 1
    assert engine.stats["previews_requested"] == 100


def test_preview_equal_to_last_renders_nothing(engine):
    first = engine.preview(request(seed=5)).result(10)
    rendered = engine.stats["previews_rendered"]
    second = engine.preview(request(seed=5)).result(10)
    assert second is first and engine.stats["previews_rendered"] == rendered


def test_bad_request_is_an_error_result_and_engine_keeps_serving(engine):
    bad = list(engine.generate_sync(request("   ")))
    assert len(bad) == 1 and bad[0].error and "empty" in bad[0].error and bad[0].image is None
    huge = list(engine.generate_sync(request("x" * 100_000)))
    assert "characters" in huge[0].error
    wrong_model = list(engine.generate_sync(GenerationRequest("cat", model="other")))
    assert "other" in wrong_model[0].error
    assert next(iter(engine.generate_sync(request()))).ok


def test_render_failure_is_reported_and_engine_recovers(engine, monkeypatch):
    original = engine._renderer._synthesize
    calls = {"n": 0}

    def broken(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated kernel failure")
        return original(*args)

    monkeypatch.setattr(engine._renderer, "_synthesize", broken)
    failed = list(engine.generate_sync(request()))
    assert "simulated kernel failure" in failed[0].error and "still running" in failed[0].error
    assert next(iter(engine.generate_sync(request()))).ok


def test_out_of_memory_halves_the_chunk_and_retries(engine, monkeypatch):
    import torch

    original = engine._renderer._forward
    sizes = []

    def fussy(requests, exact):
        sizes.append(len(requests))
        if len(requests) > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return original(requests, exact)

    monkeypatch.setattr(engine._renderer, "_forward", fussy)
    results = list(engine.generate_sync(request(count=4)))
    assert all(r.ok for r in results) and len(results) == 4
    assert sizes == [4, 2, 1, 1, 1, 1]  # halves until the chunk fits, then renders all


def test_unicode_emoji_prompts_and_odd_seeds(engine):
    assert next(iter(engine.generate_sync(request("🍎 pomme rouge — 赤いリンゴ")))).ok
    assert "0 or more" in next(iter(engine.generate_sync(request(seed=-1)))).error
    assert "at most" in next(iter(engine.generate_sync(request(seed=2**64)))).error
    assert next(iter(engine.generate_sync(request(seed=2**63 - 1)))).ok


def test_directions_concepts_and_interpolation_change_the_image(engine):
    base = engine.preview(request(seed=2)).result(10).image
    moved = engine.preview(request(seed=2, directions=((0, 3.0),))).result(10).image
    concept = engine.preview(request(seed=2, concepts=(ConceptSlider("sad", "happy", 2.0),))).result(10).image
    assert not np.array_equal(base, moved) and not np.array_equal(base, concept)
    end = Endpoint("blue car", 9)
    at_0 = engine.preview(request(seed=2, interpolate_to=end, t=0.0)).result(10).image
    at_1 = engine.preview(request(seed=2, interpolate_to=end, t=1.0)).result(10).image
    b = engine.preview(request("blue car", seed=9)).result(10).image
    assert np.array_equal(at_0, base)
    assert np.abs(at_1.astype(int) - b.astype(int)).max() <= 1  # slerp/lerp at t=1 equals B up to rounding


def test_frames_list_renders_micro_batched(engine, monkeypatch):
    chunks = []
    render = engine._renderer.render

    def recording(requests, first_index=0, exact=True):
        chunks.append((len(requests), first_index))
        return render(requests, first_index, exact)

    monkeypatch.setattr(engine._renderer, "render", recording)
    end = Endpoint("blue car", 9)
    frames = [request(seed=2, interpolate_to=end, t=t) for t in np.linspace(0, 1, 7)]
    renders = engine.stats["renders"]
    results = list(engine.generate_sync(frames))
    assert len(results) == 7 and all(r.ok for r in results)
    # Seven frames at micro_batch 4: two renderer calls (4 + 3), not seven.
    assert chunks == [(4, 0), (3, 4)] and engine.stats["renders"] - renders == 2
    assert [r.index for r in results] == list(range(7))
    # ...and a micro-batched frame is the same picture as the frame rendered alone.
    alone = next(iter(engine.generate_sync(frames[5])))
    assert np.array_equal(alone.image, results[5].image)


def test_missing_model_fails_ready_with_a_sentence(tmp_path, text_encoder):
    engine = Engine(tmp_path / "nope", device="cpu", text_encoder=text_encoder)
    with pytest.raises(ModelError, match="no model called"):
        engine.wait_ready(30)
    result = next(iter(engine.generate_sync(request())))
    assert result.error and "no model" in result.error
    preview = engine.preview(request()).result(10)
    assert preview.error and "no model" in preview.error
    engine.close()


def test_unknown_device_is_one_sentence(tiny_model_dir, text_encoder):
    from studio.engine.requests import RequestError

    engine = Engine(tiny_model_dir, device="tpu", text_encoder=text_encoder)
    with pytest.raises(RequestError, match="device"):
        engine.wait_ready(30)
    engine.close()


def test_nearest_concepts_without_vocabulary_is_empty(engine):
    assert engine.nearest_concepts("cat").result(10) == []
    assert engine.vocabulary_names() == []


# ----------------------------------------------------------------------------------------------- lifecycle


def test_a_preview_the_caller_cancelled_breaks_neither_later_previews_nor_close(tiny_model_dir, text_encoder):
    engine = Engine(tiny_model_dir, device="cpu", text_encoder=text_encoder, micro_batch=4)
    engine.wait_ready(60)
    gate = occupy_worker(engine)

    async def drag():
        pending = engine.preview(request(seed=1))
        with pytest.raises(TimeoutError):  # the UI gave up on this one: asyncio cancels the engine's future
            await asyncio.wait_for(asyncio.wrap_future(pending), timeout=0)
        for _ in range(100):  # the cancellation reaches the engine's future on a later loop turn
            if pending.cancelled():
                break
            await asyncio.sleep(0)
        assert pending.cancelled()
        return engine.preview(request(seed=2))  # a newer preview replaces the cancelled pending one

    newer = asyncio.run(drag())
    gate.set()
    assert newer.result(10).request.seed == 2
    gate = occupy_worker(engine)  # and again, now with close() replacing the pending one
    pending = asyncio.run(drag())
    engine.close(timeout=0)  # no InvalidStateError
    assert pending.result(0) is None
    gate.set()
    engine._thread.join(10)
    assert not engine._thread.is_alive()


def test_work_asked_after_close_resolves_at_once_with_a_sentence(tiny_model_dir, text_encoder):
    from studio.errors import EngineClosedError

    engine = Engine(tiny_model_dir, device="cpu", text_encoder=text_encoder)
    engine.wait_ready(60)
    engine._vocabulary = (
        _FakeVocabulary()
    )  # the tiny model has none; nearest_concepts needs one to ask the worker
    engine.close()
    for future in (engine.embed(["cat"]), engine.nearest_concepts("cat")):
        assert future.done()
        with pytest.raises(EngineClosedError, match="closed"):
            future.result(0)
    assert engine.preview(request()).result(0) is None
    assert list(engine.generate_sync(request())) == []


def test_work_queued_when_close_comes_gets_the_closed_sentence(tiny_model_dir, text_encoder):
    from studio.errors import EngineClosedError

    engine = Engine(tiny_model_dir, device="cpu", text_encoder=text_encoder)
    engine.wait_ready(60)
    gate = occupy_worker(engine)
    queued = engine.embed(["cat"])
    closer = threading.Thread(target=engine.close)
    closer.start()
    while not engine._closing:  # close() has taken the lock and set the flag (no sleep: a spin on a flag)
        pass
    gate.set()
    closer.join(10)
    with pytest.raises(EngineClosedError):
        queued.result(10)


class _FakeVocabulary:
    import numpy as _np

    embeddings = _np.ones((1, 384), _np.float32)
    names = ("cat",)

    def nearest(self, embedding, k):
        return [("cat", 1.0)]
