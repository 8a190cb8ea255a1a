"""The concepts a model knows: names (with group/subgroup) and their prompt embeddings.

Stored in the model folder as ``vocabulary.json`` (a list of ``{"name", "group", "subgroup"}``) and
``vocabulary.safetensors`` (``embeddings``: N x D, unit rows, same order). Used for prompt completion and
to show the nearest known concepts to what a person typed.

A model on a multilingual encoder also ships each concept's names in the encoder's other languages (CLDR
short names) as *aliases*: ``alias_codes`` (M x D int8), ``alias_scales`` (M) and ``alias_owner`` (M: the
concept each names). A prompt is matched against every name of a concept and the concept is shown by its
English name, so "猫" is understood as "cat face" as surely as "cat" is (docs/bench/encoders.json:
nearest-name accuracy 0.95x English or better in zh/ja/de/fr/es with aliases, 0.54-0.84x without). int8
keeps the cosine within about 0.01 at a quarter of float32's size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.models.format import ModelError, ModelInfo


@dataclass
class Aliases:
    """Other names of the concepts (other languages), int8 per row."""

    codes: np.ndarray  # M x D int8
    scales: np.ndarray  # M float32: row = codes * scale
    owner: np.ndarray  # M int: index of the concept each names

    @classmethod
    def quantize(cls, embeddings: np.ndarray, owner: np.ndarray) -> Aliases:
        rows = np.asarray(embeddings, np.float32)
        scales = np.maximum(np.abs(rows).max(axis=1), 1e-8) / 127.0
        codes = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
        return cls(codes, scales.astype(np.float32), np.asarray(owner, np.int64))

    def scores(self, query: np.ndarray, chunk: int = 8192) -> np.ndarray:
        out = np.empty(len(self.codes), np.float32)
        for start in range(0, len(self.codes), chunk):
            part = self.codes[start : start + chunk].astype(np.float32)
            out[start : start + chunk] = (part @ query) * self.scales[start : start + chunk]
        return out


@dataclass
class Vocabulary:
    names: list[str]
    groups: list[str]
    embeddings: np.ndarray  # N x D float32, unit rows
    aliases: Aliases | None = None

    def nearest(self, embedding: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` concepts closest (cosine, over all their names) to ``embedding``, best first."""
        if not self.names:
            return []
        query = np.asarray(embedding, np.float32).reshape(-1)
        query = query / max(float(np.linalg.norm(query)), 1e-8)
        scores = self.embeddings @ query
        if self.aliases is not None and len(self.aliases.codes):
            np.maximum.at(scores, self.aliases.owner, self.aliases.scores(query))
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
    aliases = None
    if tensor_path.exists():
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(tensor_path))
            embeddings = tensors["embeddings"].astype(np.float32)
            if "alias_codes" in tensors:
                aliases = Aliases(
                    tensors["alias_codes"].astype(np.int8),
                    tensors["alias_scales"].astype(np.float32),
                    tensors["alias_owner"].astype(np.int64),
                )
        except Exception as exc:  # safetensors raises several types for damaged files
            raise ModelError(f"The vocabulary embeddings of '{info.name}' are damaged ({exc}).") from exc
        if embeddings.shape[0] != len(names):
            raise ModelError(
                f"The vocabulary of '{info.name}' names {len(names)} concepts but has {embeddings.shape[0]} embeddings."
            )
        if aliases is not None and not (
            aliases.codes.ndim == 2
            and aliases.codes.shape[1] == embeddings.shape[1]
            and len(aliases.codes) == len(aliases.scales) == len(aliases.owner)
            and (len(aliases.owner) == 0 or (aliases.owner.min() >= 0 and aliases.owner.max() < len(names)))
        ):
            raise ModelError(f"The vocabulary aliases of '{info.name}' do not match its concepts.")
    return Vocabulary(names, groups, embeddings, aliases)


def save_vocabulary(
    folder: Path,
    entries: list[dict],
    embeddings: np.ndarray,
    aliases: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Write the vocabulary; ``aliases`` = (M x D embeddings of other names, the concept index of each)."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    (folder / "vocabulary.json").write_text(
        json.dumps(entries, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    tensors = {"embeddings": np.ascontiguousarray(embeddings.astype(np.float16))}
    if aliases is not None:
        packed = Aliases.quantize(*aliases)
        tensors.update(
            alias_codes=np.ascontiguousarray(packed.codes),
            alias_scales=packed.scales.astype(np.float32),
            alias_owner=packed.owner.astype(np.int32),
        )
    save_file(tensors, str(folder / "vocabulary.safetensors"))


def dataset_aliases(data) -> tuple[np.ndarray, np.ndarray] | None:
    """Each emoji's CLDR short name in every other language of the dataset, as (embeddings, owner)."""
    if data.caption_lang is None:
        return None
    rows, owners = [], []
    for language in sorted({str(x) for x in data.caption_lang} - {"en"}):
        has = data.has_language(language)
        rows.append(data.name_embeddings(language)[has])
        owners.append(np.flatnonzero(has))
    if not rows:
        return None
    return np.concatenate(rows), np.concatenate(owners)
