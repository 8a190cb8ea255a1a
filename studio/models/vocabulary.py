"""The concepts a model knows: names (with group/subgroup) and their prompt embeddings.

Stored in the model folder as ``vocabulary.json`` (a list of ``{"name", "group", "subgroup"}``) and
``vocabulary.safetensors`` (``embeddings``: N x D, unit rows, same order). Used for prompt completion and
to show the nearest known concepts to what a person typed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.logs import log_caught
from studio.models.format import ModelError, ModelInfo
from studio.untrusted import UntrustedInputError, check_regular_file, parse_json, read_regular_file

_log = logging.getLogger(__name__)


@dataclass
class Vocabulary:
    names: list[str]
    groups: list[str]
    embeddings: np.ndarray  # N x D float32, unit rows

    def nearest(self, embedding: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` concepts closest (cosine) to ``embedding``, best first, with their similarity."""
        if not self.names:
            return []
        query = np.asarray(embedding, np.float32).reshape(-1)
        query = query / max(float(np.linalg.norm(query)), 1e-8)
        scores = self.embeddings @ query
        k = min(k, len(self.names))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.names[i], float(scores[i])) for i in top]


MAX_VOCABULARY_JSON_BYTES = 32 << 20
MAX_EMBEDDINGS_BYTES = 1 << 30
MAX_CONCEPTS = 1_000_000
MAX_NAME_CHARS = 200


def load_vocabulary(info: ModelInfo) -> Vocabulary | None:
    """The model's vocabulary, or None when the folder ships none; ModelError (one sentence) if it is damaged."""
    names_path = info.path / "vocabulary.json"
    tensor_path = info.path / "vocabulary.safetensors"
    if not os.path.lexists(names_path):
        return None
    where = f"The vocabulary of '{info.name}'"
    try:
        entries = parse_json(read_regular_file(names_path, MAX_VOCABULARY_JSON_BYTES, where), where)
        if not isinstance(entries, list) or len(entries) > MAX_CONCEPTS:
            raise UntrustedInputError(
                f"{where} is damaged: it must be a list of at most {MAX_CONCEPTS:,} entries."
            )
        names, groups = [], []
        for entry in entries:
            name = entry.get("name") if isinstance(entry, dict) else None
            group = entry.get("group", "") if isinstance(entry, dict) else None
            if not all(isinstance(text, str) and len(text) <= MAX_NAME_CHARS for text in (name, group)):
                raise UntrustedInputError(f"{where} is damaged: each entry needs a short 'name' text.")
            names.append(name)
            groups.append(group)
        embeddings = np.zeros((len(names), 0), np.float32)
        if os.path.lexists(tensor_path):
            check_regular_file(
                tensor_path, MAX_EMBEDDINGS_BYTES, f"The vocabulary embeddings of '{info.name}'"
            )
            embeddings = _load_embeddings(tensor_path, info.name)
        if embeddings.shape[0] != len(names):
            raise UntrustedInputError(
                f"{where} names {len(names)} concepts but has {embeddings.shape[0]} embeddings."
            )
    except UntrustedInputError as exc:
        log_caught(str(exc), _log)
        raise ModelError(str(exc)) from exc
    return Vocabulary(names, groups, embeddings)


def _load_embeddings(path: Path, model_name: str) -> np.ndarray:
    from safetensors.numpy import load_file

    where = f"The vocabulary embeddings of '{model_name}'"
    try:
        embeddings = load_file(str(path))["embeddings"].astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UntrustedInputError(f"{where} are damaged ({type(exc).__name__}).") from exc
    if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
        raise UntrustedInputError(f"{where} are damaged (not a finite N x D table).")
    return embeddings


def save_vocabulary(folder: Path, entries: list[dict], embeddings: np.ndarray) -> None:
    from safetensors.numpy import save_file

    folder = Path(folder)
    (folder / "vocabulary.json").write_text(
        json.dumps(entries, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    save_file(
        {"embeddings": np.ascontiguousarray(embeddings.astype(np.float16))},
        str(folder / "vocabulary.safetensors"),
    )
