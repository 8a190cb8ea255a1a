"""The concepts a model knows: names (with group/subgroup) and their prompt embeddings.

Stored in the model folder as ``vocabulary.json`` (a list of ``{"name", "group", "subgroup"}``) and
``vocabulary.safetensors`` (``embeddings``: N x D, unit rows, same order). Used for prompt completion and
to show the nearest known concepts to what a person typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.models.format import ModelError, ModelInfo


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


def load_vocabulary(info: ModelInfo) -> Vocabulary | None:
    """The model's vocabulary, or None when the folder ships none."""
    names_path = info.path / "vocabulary.json"
    tensor_path = info.path / "vocabulary.safetensors"
    if not names_path.exists():
        return None
    try:
        entries = json.loads(names_path.read_text(encoding="utf-8"))
        names = [str(e["name"]) for e in entries]
        groups = [str(e.get("group", "")) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"The vocabulary of '{info.name}' is damaged ({exc}).") from exc
    embeddings = np.zeros((len(names), 0), np.float32)
    if tensor_path.exists():
        from safetensors.numpy import load_file

        try:
            embeddings = load_file(str(tensor_path))["embeddings"].astype(np.float32)
        except Exception as exc:  # safetensors raises several types for damaged files
            raise ModelError(f"The vocabulary embeddings of '{info.name}' are damaged ({exc}).") from exc
        if embeddings.shape[0] != len(names):
            raise ModelError(
                f"The vocabulary of '{info.name}' names {len(names)} concepts but has {embeddings.shape[0]} embeddings."
            )
    return Vocabulary(names, groups, embeddings)


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
