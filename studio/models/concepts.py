"""Fitted concept conditions: the condition that draws each known concept best, used for prompts that name it.

A text model sees a prompt through one linear projection (``embed_proj``), and one linear map cannot place
thousands of names where the synthesis draws each of them best. ``concepts.safetensors`` (optional, beside the
vocabulary) stores, per vocabulary concept, a condition fitted to that concept's own picture with the weights
frozen (:mod:`studio.training.concept_fit`), and which concepts have one. A prompt embedding ``e`` is then
drawn with::

    cond = (1 - g) * embed_proj(e) + g * fitted[j]

where ``j`` is the fitted concept whose best name (English or any other language of the vocabulary) lies
nearest ``e`` and ``g`` rises from 0 at cosine ``low`` to 1 at ``high`` (one gate for the table, or one per row
when the file stores ``low`` and ``high`` per concept). So a full name in any language draws its fitted
condition, a near paraphrase most of it, and a free sentence exactly what the projection gives. A row's own gate
reaches only prompts whose nearest name of all concepts is that row's: a prompt nearer the name of a concept
without a row (an emoji the table was not fitted on) takes the table's gate, so it never borrows a neighbour's
row from afar. With wording directions in the vocabulary ("cat emoji" read as "cat", studio/models/vocabulary.py)
a prompt finds its own fitted name through its wording; every other prompt is matched on plain cosines, as before,
and a generic prompt ("emoji", studio/models/vocabulary.py) takes no row at all.
With ``spread`` a prompt that fits several concepts draws, per image, its z's mix of those concepts' own
conditions (:meth:`ConceptConditioner.of_concepts`, studio/engine/spread.py ``Spreader.conditions``): linear in
the mix, so a dragged slider never jumps from one name's row to the next. No weight changes; a model folder
without the file renders as before.

A table may also carry second rows (``full``, with ``full_margin`` in its metadata; sessions 46–47): a fit kept all
the way, with no guard against tears. An image whose prompt takes its own row is then drawn with both, and the
second row's picture, its narrow dips filled from the first row's picture at the same z, is shown unless it opens
more than the margin of wide dips where the first's is solid, or (``full_net_margin``) more than another margin of
wide dips beyond the first's in all, or covers less than half the first's alpha (studio/models/holes.py
``second_or_first``; the engine's renderer and the evaluation both draw it so); a prompt that borrows a neighbour's
row (a held-out emoji's name) takes the first row.

A table may also carry layered rows (``layers``, K x places x cond_dim, for the concepts listed in ``layered``;
session 53): one condition per place of the base that reads it (studio/models/cgan.py ``BaseGenerator.synthesize``,
as StyleGAN's W+), fitted from the plain row and guarded against it (studio/training/concept_fit.py
``fit_layered_rows``). A table with them draws every prompt with layered conditions: the projection and the plain
rows at every place, the layered rows where the table has them, the gate and spread's mix applied place by place.
The plain ``conditions`` keep each layered concept's plain row, which an app that predates layered rows draws.
A layered row may be marked as not lent (``lent``, session 56): only a prompt whose nearest name of all is the row's
own draws it; a prompt that borrows the row (a held-out emoji's name) takes its plain row at every place, as it
takes the first row of a table with second rows.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from studio.logs import log_caught
from studio.models.format import CONCEPTS_FILE, ModelError, ModelInfo
from studio.models.tensor_file import save_tensors
from studio.untrusted import UntrustedInputError, check_regular_file

_log = logging.getLogger(__name__)

MAX_CONCEPTS_BYTES = 256 << 20
DEFAULT_LOW = 0.85
DEFAULT_HIGH = 0.97
NAME_TIE = 0.002  # cosine: names this close to the best match tie with it (int8 rounding is well under 0.001)


@dataclass(frozen=True)
class ConceptConditions:
    conditions: np.ndarray  # V x cond_dim float32 (rows of unfitted concepts unused)
    fitted: np.ndarray  # V bool
    low: float = DEFAULT_LOW
    high: float = DEFAULT_HIGH
    row_low: np.ndarray | None = None  # V float32: a gate per concept, replacing low/high (None: the table's)
    row_high: np.ndarray | None = None
    # V x cond_dim float32: a second row per fitted concept, fitted without a guard against tears, shown wherever
    # its filled picture opens at most ``full_margin`` wide-dip px where the first row's is solid (models/holes.py)
    full: np.ndarray | None = None
    full_margin: float = 0.0
    # and whose filled picture has at most this many wide-dip px more than the first row's in all (inf: no such check)
    full_net_margin: float = float("inf")
    # K x places x cond_dim float32: layered rows of the concepts ``layered`` (K row numbers), drawn instead of
    # their plain rows (None: the table has none)
    layers: np.ndarray | None = None
    layered: np.ndarray | None = None
    # K bool: whether a prompt that borrows layered row k (its nearest name of all is another's) draws it, or the
    # plain row at every place (None: every layered row is lent)
    lent: np.ndarray | None = None

    @property
    def places(self) -> int | None:
        """How many places a layered row has (None: the table has no layered rows)."""
        return None if self.layers is None else int(self.layers.shape[1])

    def place_rows(
        self, rows: np.ndarray | None = None, lent_only: bool = False, places: int | None = None
    ) -> np.ndarray:
        """The table's rows at every place (V x places x cond_dim): the plain conditions with the layered rows in
        (with ``lent_only``, only the rows that are lent), or ``rows`` (V x cond_dim: the second rows, fitted plain)
        as they are at every place. ``places`` asks for that many places where the table has no layered rows of its
        own (a base's places, to start layered rows from a plain table)."""
        if places is not None and self.places not in (None, places):
            raise ValueError(f"The table's layered rows have {self.places} places, not {places}.")
        places = places or self.places or 1
        placed = np.repeat(
            np.asarray(self.conditions if rows is None else rows, np.float32)[:, None], places, 1
        )
        if rows is None and self.layers is not None:
            shown = np.ones(len(self.layered), bool) if self.lent is None or not lent_only else self.lent
            placed[self.layered[shown]] = self.layers[shown]
        return placed

    @property
    def lends_all(self) -> bool:
        """Whether a prompt that borrows a row draws it as its own name does (no layered row is kept to its own)."""
        return self.lent is None or bool(np.all(self.lent))

    def gate(self, cosine: np.ndarray, concept: int | np.ndarray | None = None) -> np.ndarray:
        """How much of the fitted condition a prompt this close (cosine) to concept ``concept``'s name takes."""
        low, high = self.low, self.high
        if self.row_low is not None and concept is not None:
            low, high = self.row_low[concept].astype(np.float64), self.row_high[concept].astype(np.float64)
        return np.clip((np.asarray(cosine, np.float64) - low) / (high - low), 0.0, 1.0)


class ConceptConditioner:
    """Projected conditions with the fitted table applied: ``__call__(embeddings) -> N x cond_dim`` (torch), or
    ``N x places x cond_dim`` for a table with layered rows (:attr:`places`), each row computed alone so a batch
    never moves a bit of a row."""

    def __init__(self, generator, vocabulary, table: ConceptConditions, cache_size: int = 4096):
        self.generator, self.vocabulary, self.table = generator, vocabulary, table
        self.places = table.places  # None: plain conditions; else layered ones, one per place
        self._rows = self._table_rows()
        # matching scans every name in every language (tens of ms): a dragged slider repeats its prompt
        self._nearest = lru_cache(maxsize=cache_size)(self._find)
        # the rows a prompt that borrows a row takes (None: these): the plain rows where a layered one is not lent
        self._borrowed: torch.Tensor | None = None
        if self.places is not None and not table.lends_all:
            self._borrowed = torch.from_numpy(table.place_rows(lent_only=True))

    def full_rows(self) -> ConceptConditioner | None:
        """The same conditioner drawing the table's second rows (``full``) instead of its first for prompts whose row
        is their own (their nearest name of all is the row's), sharing its matches; a prompt that borrows a
        neighbour's row (a held-out emoji's name) still takes the first row. None when the table has none."""
        if self.table.full is None:
            return None
        other = copy.copy(self)
        other._rows = self._table_rows(self.table.full)
        other._borrowed = self._rows if self._borrowed is None else self._borrowed
        return other

    def _table_rows(self, rows: np.ndarray | None = None) -> torch.Tensor:
        """The rows prompts draw: the table's first rows (``rows`` None) or ``rows`` (its second rows), at every place
        for a table with layered rows (:meth:`ConceptConditions.place_rows`)."""
        if self.places is not None:
            return torch.from_numpy(self.table.place_rows(rows))
        return torch.from_numpy(
            np.ascontiguousarray(self.table.conditions if rows is None else rows, np.float32)
        )

    def _empty(self, device) -> torch.Tensor:
        width = self.generator.config.cond_dim
        return torch.zeros((0, width) if self.places is None else (0, self.places, width), device=device)

    def layered(self, projected: torch.Tensor) -> torch.Tensor:
        """Projected conditions (N x cond_dim) as this conditioner draws them: at every place for layered rows."""
        if self.places is None or projected.dim() == 3:
            return projected
        return projected[:, None, :].expand(-1, self.places, -1).contiguous()

    def nearest(self, embedding: np.ndarray) -> tuple[int, float]:
        """The fitted concept whose best name lies nearest this embedding, and that cosine."""
        return self._match(embedding)[:2]

    def gate(self, embedding: np.ndarray) -> tuple[int, float]:
        """The fitted concept this embedding draws from and how much of its row it takes (0: none)."""
        return self._gate(embedding)[:2]

    def _gate(self, embedding: np.ndarray) -> tuple[int, float, bool]:
        """:meth:`gate`, and whether the row is the prompt's own (its nearest name of all is the row's)."""
        concept, cosine, named = self._match(embedding)
        if concept < 0:
            return concept, 0.0, False
        return concept, float(self.table.gate(cosine, concept if named else None)), named

    def _match(self, embedding: np.ndarray) -> tuple[int, float, bool]:
        return self._nearest(np.ascontiguousarray(embedding, dtype=np.float32).reshape(-1).tobytes())

    def _find(self, key: bytes) -> tuple[int, float, bool]:
        """The nearest fitted concept, its cosine, and whether it is also the nearest of all concepts. With wording
        directions (studio/models/vocabulary.py) they only let a prompt find its own fitted name through its
        wording: a prompt whose nearest name of all is then not a fitted one is matched on plain cosines, exactly
        as without them (the table's gate lends a neighbour's row by how close two emoji's names are, plainly)."""
        query = np.frombuffer(key, np.float32)
        if float(np.linalg.norm(query)) < 1e-8 or not self.table.fitted.any():
            return -1, 0.0, False
        if self.vocabulary.is_generic(query):  # "emoji" names no emoji: the projection's own guess
            return -1, 0.0, False
        found = self._nearest_fitted(query, plain=False)
        if not found[2] and self.vocabulary.wording is not None:
            found = self._nearest_fitted(query, plain=True)
        return found

    def _nearest_fitted(self, query: np.ndarray, plain: bool) -> tuple[int, float, bool]:
        every = self.vocabulary.name_scores(query, plain)
        english = self.vocabulary.english_scores(query, plain)
        best = _best(
            np.where(self.table.fitted, every, -np.inf), np.where(self.table.fitted, english, -np.inf)
        )
        overall = _best(every, english)
        named = every[overall] <= every[best] + NAME_TIE  # the nearest of all, or tied with it
        return best, float(every[best]), bool(named)

    def of_concepts(self, concepts: np.ndarray, device="cpu") -> torch.Tensor:
        """The conditions (K x cond_dim, or K x places x cond_dim) the vocabulary concepts ``concepts`` draw by their
        English names: a fitted concept's own row (its name is its own nearest name), any other what :meth:`__call__`
        gives its name."""
        rows = []
        for concept in np.asarray(concepts, np.int64).tolist():
            if self.table.fitted[concept]:
                rows.append(self._rows[concept : concept + 1].to(device))
            else:
                name = np.asarray(self.vocabulary.embeddings[concept : concept + 1], np.float32)
                rows.append(self(torch.from_numpy(name).to(device)).float())
        if not rows:
            return self._empty(device)
        return torch.cat(rows)

    def __call__(self, embeddings: torch.Tensor) -> torch.Tensor:
        rows = []
        for i in range(len(embeddings)):
            row = embeddings[i : i + 1]
            projected = self.layered(self.generator.condition(row).float())
            concept, gate, named = self._gate(row.detach().float().cpu().numpy())
            if gate > 0.0:
                table = self._rows if named or self._borrowed is None else self._borrowed
                fitted = table[concept : concept + 1].to(projected.device)
                projected = torch.lerp(projected, fitted, gate)
            rows.append(projected)
        if not rows:
            return self._empty(embeddings.device)
        return torch.cat(rows)


def _best(scores: np.ndarray, english: np.ndarray) -> int:
    """The concept with the highest name score; a prompt that is a concept's English name keeps that concept when
    another language's name for a different one ties with it ("pie" is Spanish for foot; int8 rounding decides
    such ties otherwise)."""
    best, own = int(np.argmax(scores)), int(np.argmax(english))
    if own != best and english[own] >= scores[best] - NAME_TIE:
        return own
    return best


def save_concepts(folder: Path, table: ConceptConditions, metadata: dict[str, str] | None = None) -> Path:
    path = Path(folder) / CONCEPTS_FILE
    meta = {"low": repr(float(table.low)), "high": repr(float(table.high)), **(metadata or {})}
    tensors = {
        "conditions": np.ascontiguousarray(table.conditions, np.float32),
        "fitted": table.fitted.astype(np.uint8),
    }
    if table.row_low is not None:
        tensors["low"] = np.ascontiguousarray(table.row_low, np.float32)
        tensors["high"] = np.ascontiguousarray(table.row_high, np.float32)
    if table.layers is not None:
        tensors["layers"] = np.ascontiguousarray(table.layers, np.float32)
        tensors["layered"] = np.ascontiguousarray(table.layered, np.int64)
        if not table.lends_all:
            tensors["lent"] = np.ascontiguousarray(table.lent, np.uint8)
    if table.full is not None:
        tensors["full"] = np.ascontiguousarray(table.full, np.float32)
        meta["full_margin"] = repr(float(table.full_margin))
        if np.isfinite(table.full_net_margin):
            meta["full_net_margin"] = repr(float(table.full_net_margin))
    return save_tensors(path, tensors, meta)


def concepts_metadata(path: Path) -> dict[str, str]:
    """The table file's metadata (fit and guard records) without the gate, which :func:`save_concepts` writes from
    the table itself: what a tool that rewrites a table passes back to keep its history."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return {
            k: v
            for k, v in (handle.metadata() or {}).items()
            if k not in ("low", "high", "full_margin", "full_net_margin")
        }


def load_concepts(info: ModelInfo, vocabulary) -> ConceptConditions | None:
    """The folder's fitted conditions, or None when it ships none; ModelError (one sentence) when the file
    is damaged or does not match the folder's vocabulary (its concepts and name embeddings) and generator."""
    path = info.path / CONCEPTS_FILE
    if not os.path.lexists(path):
        return None
    where = f"The concept conditions of '{info.name}'"
    try:
        if vocabulary is None or vocabulary.embeddings.shape[1] != info.base.embed_dim:
            raise UntrustedInputError(f"{where} need its vocabulary with the names' embeddings.")
        check_regular_file(path, MAX_CONCEPTS_BYTES, where)
        table = read_concepts(path, where)
        concepts, cond_dim = len(vocabulary.names), info.base.cond_dim
        if table.conditions.shape != (concepts, cond_dim) or table.fitted.shape != (concepts,):
            raise UntrustedInputError(f"{where} do not match its vocabulary and generator.")
        if table.layers is not None and table.layers.shape[1:] != (info.base.places, cond_dim):
            raise UntrustedInputError(
                f"{where} have layered rows for another generator ({table.layers.shape[1]} places, "
                f"not {info.base.places})."
            )
    except UntrustedInputError as exc:
        log_caught(str(exc), _log)
        raise ModelError(str(exc)) from exc
    return table


def changed_concepts(first: ConceptConditions, second: ConceptConditions) -> np.ndarray:
    """The concepts whose row, placed at every place, differs between two tables of the same vocabulary (numbers,
    sorted): a layered row gained, lost or changed. What a ship rule's row choice, keyword draws, look at every changed
    name and named-preview benchmark all mean by the rows a candidate changes."""
    before, after = first.place_rows(places=second.places), second.place_rows()
    return np.flatnonzero((before != after).any(axis=(1, 2)))


def read_concepts(path: Path, where: str = "The concept conditions") -> ConceptConditions:
    """The table in ``path`` (UntrustedInputError, one sentence, when it is damaged)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            conditions = handle.get_tensor("conditions").astype(np.float32)
            fitted = handle.get_tensor("fitted").astype(bool)
            per_row = "low" in handle.keys() or "high" in handle.keys()
            row_low = handle.get_tensor("low").astype(np.float32) if per_row else None
            row_high = handle.get_tensor("high").astype(np.float32) if per_row else None
            full = handle.get_tensor("full").astype(np.float32) if "full" in handle.keys() else None
            has_layers = "layers" in handle.keys() or "layered" in handle.keys()
            layers = handle.get_tensor("layers").astype(np.float32) if has_layers else None
            layered = handle.get_tensor("layered") if has_layers else None
            lent = handle.get_tensor("lent") if "lent" in handle.keys() else None
        low, high = float(meta.get("low", DEFAULT_LOW)), float(meta.get("high", DEFAULT_HIGH))
        margin = float(meta.get("full_margin", "0"))
        net_margin = float(meta.get("full_net_margin", "inf"))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UntrustedInputError(f"{where} are damaged ({type(exc).__name__}).") from exc
    if conditions.ndim != 2 or not np.isfinite(conditions).all():
        raise UntrustedInputError(f"{where} are damaged (not a finite table).")
    lows, highs = np.asarray([low]), np.asarray([high])
    if row_low is not None:
        if row_low.shape != (len(conditions),) or row_high.shape != row_low.shape:
            raise UntrustedInputError(
                f"{where} are damaged (a gate per row needs one low and one high per row)."
            )
        lows, highs = np.append(lows, row_low), np.append(highs, row_high)
    rising = np.isfinite(lows) & np.isfinite(highs) & (lows >= -1.0) & (lows < highs) & (highs <= 1.0)
    if not rising.all():
        raise UntrustedInputError(f"{where} are damaged (the gate's cosines must rise within [-1, 1]).")
    if full is not None and (full.shape != conditions.shape or not np.isfinite(full).all()):
        raise UntrustedInputError(f"{where} are damaged (the second rows must match the first).")
    if not (np.isfinite(margin) and margin >= 0 and net_margin >= 0):  # NaN fails every comparison
        raise UntrustedInputError(f"{where} are damaged (the second rows' margins must be 0 or more).")
    if layers is not None:
        _check_layers(layers, layered, fitted, conditions.shape[1], where)
        layered = layered.astype(np.int64)
    if lent is not None:
        flags = lent.dtype.kind in "uib" and np.isin(lent, (0, 1)).all()
        if layers is None or lent.shape != (len(layers),) or not flags:
            raise UntrustedInputError(
                f"{where} are damaged (the lent flags need one 0 or 1 per layered row)."
            )
        lent = lent.astype(bool)
    return ConceptConditions(
        conditions, fitted, low, high, row_low, row_high, full, margin, net_margin, layers, layered, lent
    )


def _check_layers(
    layers: np.ndarray, layered: np.ndarray, fitted: np.ndarray, width: int, where: str
) -> None:
    """UntrustedInputError unless ``layers`` are finite K x places x ``width`` rows of K distinct fitted concepts."""
    if layers.ndim != 3 or layers.shape[1] < 1 or layers.shape[2] != width or not np.isfinite(layers).all():
        raise UntrustedInputError(f"{where} are damaged (the layered rows are not a finite table).")
    if layered.ndim != 1 or len(layered) != len(layers) or layered.dtype.kind not in "iu":
        raise UntrustedInputError(f"{where} are damaged (the layered rows need one row number each).")
    if len(np.unique(layered)) != len(layered) or ((layered < 0) | (layered >= len(fitted))).any():
        raise UntrustedInputError(
            f"{where} are damaged (the layered rows' numbers repeat or lie outside the table)."
        )
    if not fitted[layered].all():
        raise UntrustedInputError(
            f"{where} are damaged (a layered row belongs to a concept without a fitted row)."
        )
