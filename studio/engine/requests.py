"""Request and result values: everything that determines an image, and what the engine hands back.

A request is a frozen, hashable value. The same request on the same device kind gives the same pixels, and
``to_json``/``from_json`` round-trip it exactly, which is what image metadata stores and what a dropped file
restores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

MAX_SEED = 2**63 - 1
MAX_PROMPT_CHARS = 2000  # longer prompts are refused; the encoder reads ~256 tokens anyway
MAX_COUNT = 10_000
MAX_TRUNCATION = 2.0
MAX_OFFSET = 50.0
REQUEST_SCHEMA = 1


class RequestError(ValueError):
    """A request a person built is not valid; ``str(error)`` is one sentence saying what to change."""


@dataclass(frozen=True)
class ConceptSlider:
    """Moves the prompt embedding by ``scale`` along (embedding(positive) - embedding(negative))."""

    negative: str
    positive: str
    scale: float = 0.0


@dataclass(frozen=True)
class Endpoint:
    """The B end of an interpolation (A is the request itself): a prompt and a seed."""

    prompt: str
    seed: int


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that determines the pixels of one image or a batch of ``count`` images.

    Image ``i`` of a batch uses seed ``seed + i``. ``directions`` are (closed-form direction index, scale)
    pairs applied to z; ``concepts`` move the prompt embedding; ``interpolate_to`` with ``t`` in [0, 1]
    slerps z and lerps the embedding towards the B endpoint.
    """

    prompt: str
    seed: int = 0
    count: int = 1
    truncation: float = 1.0
    directions: tuple[tuple[int, float], ...] = ()
    concepts: tuple[ConceptSlider, ...] = ()
    interpolate_to: Endpoint | None = None
    t: float = 0.0
    model: str = "emoji"

    def validated(self) -> GenerationRequest:
        """Return self if valid, else raise RequestError with one clear sentence."""
        check_prompt(self.prompt)
        check_seed(self.seed)
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise RequestError("The image count must be at least 1.")
        if self.count > MAX_COUNT:
            raise RequestError(f"At most {MAX_COUNT:,} images can be made at once; ask for fewer.")
        if self.seed + self.count - 1 > MAX_SEED:
            raise RequestError(
                "The seed is so large that the batch would run past the largest seed; use a smaller one."
            )
        if not _finite(self.truncation) or not 0.0 <= self.truncation <= MAX_TRUNCATION:
            raise RequestError(f"Truncation must be a number between 0 and {MAX_TRUNCATION}.")
        for index, scale in self.directions:
            if not isinstance(index, int) or index < 0:
                raise RequestError("A latent direction index must be a whole number of at least 0.")
            if not _finite(scale) or abs(scale) > MAX_OFFSET:
                raise RequestError(
                    f"A slider offset must be a number between -{MAX_OFFSET:g} and {MAX_OFFSET:g}."
                )
        for concept in self.concepts:
            check_prompt(concept.negative, what="A concept slider's first prompt")
            check_prompt(concept.positive, what="A concept slider's second prompt")
            if not _finite(concept.scale) or abs(concept.scale) > MAX_OFFSET:
                raise RequestError(f"A concept slider must be between -{MAX_OFFSET:g} and {MAX_OFFSET:g}.")
        if self.interpolate_to is not None:
            check_prompt(self.interpolate_to.prompt, what="The interpolation's B prompt")
            check_seed(self.interpolate_to.seed)
        if not _finite(self.t) or not 0.0 <= self.t <= 1.0:
            raise RequestError("The interpolation position t must be between 0 and 1.")
        if not self.model or not isinstance(self.model, str):
            raise RequestError("The request names no model.")
        return self

    def single(self, index: int) -> GenerationRequest:
        """The one-image request that reproduces image ``index`` of this batch."""
        return replace(self, seed=self.seed + index, count=1)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": REQUEST_SCHEMA,
            "prompt": self.prompt,
            "seed": self.seed,
            "count": self.count,
            "truncation": self.truncation,
            "directions": [[i, s] for i, s in self.directions],
            "concepts": [
                {"negative": c.negative, "positive": c.positive, "scale": c.scale} for c in self.concepts
            ],
            "interpolate_to": (
                {"prompt": self.interpolate_to.prompt, "seed": self.interpolate_to.seed}
                if self.interpolate_to
                else None
            ),
            "t": self.t,
            "model": self.model,
        }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationRequest:
        """Rebuild a request from :meth:`to_json` output; raises RequestError on malformed data."""
        try:
            end = data.get("interpolate_to")
            return cls(
                prompt=str(data["prompt"]),
                seed=int(data.get("seed", 0)),
                count=int(data.get("count", 1)),
                truncation=float(data.get("truncation", 1.0)),
                directions=tuple((int(i), float(s)) for i, s in data.get("directions", ())),
                concepts=tuple(
                    ConceptSlider(str(c["negative"]), str(c["positive"]), float(c.get("scale", 0.0)))
                    for c in data.get("concepts", ())
                ),
                interpolate_to=Endpoint(str(end["prompt"]), int(end["seed"])) if end else None,
                t=float(data.get("t", 0.0)),
                model=str(data.get("model", "emoji")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RequestError(f"The stored parameters are incomplete or malformed ({exc}).") from exc


@dataclass
class GenerationResult:
    """One image from the engine (or the error that replaced it).

    ``request`` is the one-image request that reproduces exactly this image. ``image`` is ``H x W x 4``
    uint8 straight-alpha RGBA; ``latent`` the z actually used (after truncation and directions).
    """

    request: GenerationRequest
    index: int = 0
    image: np.ndarray | None = None
    latent: np.ndarray | None = None
    render_ms: float = 0.0
    device: str = "cpu"
    model_hash: str = ""
    error: str | None = None
    # False for a CPU live preview rendered one row alone: it may differ from the stored image of the same
    # request by a few uint8 levels, so whatever keeps the picture re-renders it exactly first.
    exact: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None


def check_prompt(prompt: object, what: str = "The prompt") -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(f"{what} is empty; type a few words describing the picture.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RequestError(
            f"{what} has {len(prompt):,} characters; keep it under {MAX_PROMPT_CHARS:,} (only the start is understood anyway)."
        )
    return prompt


def check_seed(seed: object) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RequestError("The seed must be a whole number.")
    if seed < 0:
        raise RequestError(f"The seed must be 0 or more (got {seed}).")
    if seed > MAX_SEED:
        raise RequestError(f"The seed must be at most {MAX_SEED} (2^63 - 1).")
    return seed


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
