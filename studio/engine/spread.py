"""Spread: the seeds of a prompt that fits several emoji draw several of them.

A full emoji name names one picture, but most prompts people type fit many: CLDR keywords are shared ("cat"
by every cat, "heart" by every heart, "猫" and "Katze" as well). With ``spread`` on, a prompt's embedding is
replaced, per image, by a mix of the English names of the concepts it fits about equally well
(:meth:`studio.models.vocabulary.Vocabulary.matches`: names, other languages' names and shared keywords), the
mix chosen by the image's final z through a fixed random map (``SPREAD_SEED``). So each seed leans towards one
of them, a latent slider or an interpolation moves smoothly from one to the next, and a prompt that fits one
concept best (a full name) is left exactly as it is. (``Spreader(tones=True)`` would spread a full name of a tone-less
base with skin-tone variants, "thumbs up", over its tones, as CLDR's keywords allow; rule 143 measured it on v24 and
left it off: ``SPREAD_TONES``, scripts/tone_spread.py.) With a fitted concept table (studio/models/concepts.py) the
mix is taken of the concepts' own conditions instead (:meth:`Spreader.conditions`), still linear in the
weights. It changes no weight; what the engine renders and what the evaluation scores go through
:class:`Spreader`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# Fixed for good: stored images with ``spread`` depend on all six.
SPREAD_SEED = 20261202
# Cosine: concepts this close to the best match fit equally well. Only the int8 rounding of one shared text's
# row (well under 0.001): distinct names the encoder barely tells apart ("palm up hand" and "palm down hand",
# 0.98) are different pictures, not a choice.
SPREAD_MARGIN = 0.005
SPREAD_LIMIT = 16  # at most this many concepts share a prompt's seeds
SPREAD_SHARPNESS = 8.0  # how decidedly a z picks one of them (softmax of N(0, 1) scores times this)
SPREAD_FLOOR = 0.7  # a prompt no name or keyword comes this close to (a free sentence) is left alone
SPREAD_RELATED = 0.4  # a concept's own name must lie this close to the closest one's (cosine to the prompt)
# whether a prompt that fits one tone-less base spreads over its skin tones (Vocabulary.skin_tones). Off: rule 143
# (session 78) measured it on v24 and it failed (named keyword precision 0.3125 -> 0.295 under judge-5500, and more
# broken pictures in the look: docs/bench/spread_tones_s78.json); a later model may pass it
SPREAD_TONES = False


def spread_weights(z: torch.Tensor, count: int) -> torch.Tensor:
    """How much each of ``count`` concepts gets for this z (sums to 1): ``softmax(SHARPNESS * u)`` where
    ``u = unit(z) @ B`` and ``B`` is a fixed z_dim x SPREAD_LIMIT Gaussian map, so each score is N(0, 1) over
    random z, the same z gives the same weights, and truncation (a scale) changes nothing."""
    z = z.detach().float().cpu().reshape(-1)
    scores = F.normalize(z, dim=0) @ _spread_basis(z.numel())[:, :count]
    return torch.softmax(SPREAD_SHARPNESS * scores, dim=0)


class Spreader:
    """A model's vocabulary as spread uses it: :meth:`embedding` per (prompt embedding, z), with the matching
    concepts of the last few hundred prompts kept (matching scans every name and keyword: tens of ms). ``tones``:
    whether a prompt that fits one tone-less base spreads over its skin tones (``SPREAD_TONES``)."""

    def __init__(self, vocabulary, cache_size: int = 256, tones: bool = SPREAD_TONES):
        self.vocabulary = vocabulary
        self.tones = tones
        self._matches = lru_cache(maxsize=cache_size)(self._find)

    def usable(self) -> bool:
        return self.vocabulary is not None and self.vocabulary.embeddings.shape[1] > 0

    def matches(self, embedding: np.ndarray) -> np.ndarray:
        """The concepts this prompt embedding spreads over (fewer than 2: it is left alone)."""
        if not self.usable():
            return np.zeros(0, np.int64)
        row = np.ascontiguousarray(embedding, dtype=np.float32).reshape(-1)
        return self._matches(row.tobytes())

    def mix(
        self, embedding: np.ndarray, z: torch.Tensor, chosen=None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The vocabulary concepts this z mixes for this prompt and their weights (summing to 1), or None when
        the prompt is left alone (it fits fewer than two concepts). ``chosen``: the concepts the prompt itself lists
        (several pasted emoji, "🐱🐶": ``Vocabulary.emoji_list``), taken instead of what its cosines match."""
        found = (
            self.matches(embedding) if chosen is None else np.asarray(list(chosen)[:SPREAD_LIMIT], np.int64)
        )
        if len(found) < 2:
            return None
        return found, spread_weights(z, len(found)).double().numpy()

    def embedding(self, embedding: np.ndarray, z: torch.Tensor, chosen=None) -> np.ndarray:
        """The embedding to render this z with: the prompt's own, or the z's mix of the concepts it fits."""
        mixed = self.mix(embedding, z, chosen)
        if mixed is None:
            return np.asarray(embedding, np.float32)
        found, weights = mixed
        return (weights @ self.vocabulary.embeddings[found].astype(np.float64)).astype(np.float32)

    def embeddings(self, embeddings: np.ndarray, zs, chosen=None) -> np.ndarray:
        """:meth:`embedding` row by row (``zs`` one z per row; a row whose z is None keeps its own; ``chosen`` one
        entry per row, as in :meth:`mix`)."""
        if len(embeddings) == 0:
            return embeddings
        chosen = [None] * len(embeddings) if chosen is None else chosen
        return np.stack(
            [e if z is None else self.embedding(e, z, c) for e, z, c in zip(embeddings, zs, chosen)]
        )

    def conditions(self, embeddings: np.ndarray, zs, conditioner, device="cpu", chosen=None) -> torch.Tensor:
        """Projected conditions (N x cond_dim, or N x places x cond_dim for layered rows, on ``device``) for a model
        with fitted concept conditions (studio/models/concepts.py, ``conditioner`` its ConceptConditioner): a spread
        row is the z's mix of its concepts' own conditions, linear in the weights, so a dragged slider moves smoothly
        from one concept's picture to the next (conditioning the mixed embedding would snap it to the nearest name's
        row). Rows spread leaves alone (``zs`` None, a full name, a free sentence) go through the conditioner as they are."""
        rows = []
        chosen = [None] * len(embeddings) if chosen is None else chosen
        for embedding, z, listed in zip(embeddings, zs, chosen):
            mixed = None if z is None else self.mix(embedding, z, listed)
            if mixed is None:
                row = torch.from_numpy(np.asarray(embedding, np.float32)[None]).to(device)
                rows.append(conditioner(row).float())
            else:
                found, weights = mixed
                own = conditioner.of_concepts(found, device).double().cpu()  # K x cond_dim (or x places x)
                mixed_rows = torch.from_numpy(weights)[None] @ own.reshape(len(own), -1)
                rows.append(mixed_rows.reshape(1, *own.shape[1:]).float().to(device))
        return torch.cat(rows)

    def _find(self, key: bytes) -> np.ndarray:
        found = self.vocabulary.matches(
            np.frombuffer(key, np.float32), SPREAD_MARGIN, SPREAD_LIMIT, SPREAD_FLOOR, SPREAD_RELATED
        )
        if self.tones and len(found) == 1:
            found = self.vocabulary.skin_tones(int(found[0]))[:SPREAD_LIMIT]
        found.setflags(write=False)  # cached and handed out again: nobody may change it
        return found


@lru_cache(maxsize=4)
def _spread_basis(z_dim: int) -> torch.Tensor:
    seeded = torch.Generator(device="cpu").manual_seed(SPREAD_SEED)
    return torch.randn(z_dim, SPREAD_LIMIT, generator=seeded)
