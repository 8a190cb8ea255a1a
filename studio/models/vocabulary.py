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
        aliases = None
        if os.path.lexists(tensor_path):
            check_regular_file(
                tensor_path, MAX_EMBEDDINGS_BYTES, f"The vocabulary embeddings of '{info.name}'"
            )
            embeddings, aliases = _load_embeddings(tensor_path, info.name)
        if embeddings.shape[0] != len(names):
            raise UntrustedInputError(
                f"{where} names {len(names)} concepts but has {embeddings.shape[0]} embeddings."
            )
        if aliases is not None and not (
            aliases.codes.ndim == 2
            and aliases.codes.shape[1] == embeddings.shape[1]
            and len(aliases.codes) == len(aliases.scales) == len(aliases.owner)
            and (len(aliases.owner) == 0 or (aliases.owner.min() >= 0 and aliases.owner.max() < len(names)))
            and np.isfinite(aliases.scales).all()
        ):
            raise UntrustedInputError(f"The vocabulary aliases of '{info.name}' do not match its concepts.")
    except UntrustedInputError as exc:
        log_caught(str(exc), _log)
        raise ModelError(str(exc)) from exc
    return Vocabulary(names, groups, embeddings, aliases)


def _load_embeddings(path: Path, model_name: str) -> tuple[np.ndarray, Aliases | None]:
    from safetensors.numpy import load_file

    where = f"The vocabulary embeddings of '{model_name}'"
    try:
        tensors = load_file(str(path))
        embeddings = tensors["embeddings"].astype(np.float32)
        aliases = None
        if "alias_codes" in tensors:
            aliases = Aliases(
                tensors["alias_codes"].astype(np.int8),
                tensors["alias_scales"].astype(np.float32),
                tensors["alias_owner"].astype(np.int64),
            )
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UntrustedInputError(f"{where} are damaged ({type(exc).__name__}).") from exc
    if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
        raise UntrustedInputError(f"{where} are damaged (not a finite N x D table).")
    return embeddings, aliases


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
    rows, owners = [], []
    for language in sorted({str(x) for x in data.caption_languages} - {"en"}):
        has = data.has_language(language)
        rows.append(data.name_embeddings(language)[has])
        owners.append(np.flatnonzero(has))
    if not rows:
        return None
    return np.concatenate(rows), np.concatenate(owners)
