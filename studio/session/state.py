"""The studio's session state: what the person has set up right now, as plain observable Python.

Panels never call each other; they change this state and listen for its changes. ``subscribe`` callbacks
receive ``(field_name, new_value)`` once per changed field, after the change is applied. No Qt here: the UI
layer adapts callbacks to signals where it needs them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from studio.engine.requests import (
    MAX_SEED,
    SPREAD_DEFAULT,
    ConceptSlider,
    Endpoint,
    ExplicitLatent,
    GenerationRequest,
)

SEED_FIXED = "fixed"
SEED_RANDOM = "random"
RANDOM_SEED_LIMIT = 2**31 - 1  # random seeds stay short enough to read aloud and type back

Listener = Callable[[str, Any], None]


@dataclass(frozen=True)
class InterpolationSlot:
    """One end of an interpolation: the one-image request it came from."""

    request: GenerationRequest

    @property
    def label(self) -> str:
        return f"{self.request.prompt} · seed {self.request.seed}"


@dataclass
class _Fields:
    prompt: str = ""
    seed: int = 0
    seed_mode: str = SEED_FIXED
    count: int = 8
    truncation: float = 1.0
    variety: float = 0.0  # how far each seed moves the prompt's condition (GenerationRequest.variety)
    # seeds of a prompt that fits several emoji draw several of them (GenerationRequest.spread)
    spread: bool = SPREAD_DEFAULT
    strength: float = 1.0  # how hard the picture follows the prompt (GenerationRequest.strength)
    directions: dict[int, float] = field(default_factory=dict)
    concepts: tuple[ConceptSlider, ...] = ()
    slot_a: InterpolationSlot | None = None
    slot_b: InterpolationSlot | None = None
    t: float = 0.0
    preview_mode: str = "single"  # "single" (prompt + sliders) or "interpolation" (A -> B at t)
    latent: ExplicitLatent | None = None  # an inverted picture's z and condition, instead of seed and prompt


FIELD_NAMES = tuple(f.name for f in fields(_Fields))


class SessionState:
    """Prompt, seed, seed mode, count, truncation, variety, latent offsets, concept sliders and interpolation."""

    def __init__(self, model: str = "emoji", **values: Any):
        self.model = model
        self._values = _Fields(**values)
        self._listeners: list[Listener] = []

    # --- observing -----------------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(name, value)`` after each field change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def __getattr__(self, name: str) -> Any:
        if name in FIELD_NAMES:
            return getattr(self._values, name)
        raise AttributeError(name)

    def update(self, **changes: Any) -> list[str]:
        """Set several fields at once; listeners hear about the ones whose value actually changed."""
        changed = []
        for name, value in changes.items():
            if name not in FIELD_NAMES:
                raise AttributeError(f"SessionState has no field {name!r}")
            value = self._normalised(name, value)
            if getattr(self._values, name) != value:
                setattr(self._values, name, value)
                changed.append(name)
        if self.latent is not None and "latent" not in changes and {"prompt", "seed"} & set(changed):
            # A new prompt or seed means a new picture: the inverted one it replaces no longer applies.
            self._values.latent = None
            changed.append("latent")
        for name in changed:
            for listener in list(self._listeners):
                listener(name, getattr(self._values, name))
        return changed

    @staticmethod
    def _normalised(name: str, value: Any) -> Any:
        if name == "directions":
            return {int(i): float(s) for i, s in dict(value).items() if float(s) != 0.0}
        if name == "concepts":
            return tuple(value)
        if name in ("truncation", "t", "variety", "strength"):
            return float(value)
        if name in ("seed", "count"):
            return int(value)
        if name == "spread":
            return bool(value)
        if name == "seed_mode" and value not in (SEED_FIXED, SEED_RANDOM):
            raise ValueError(f"seed_mode must be {SEED_FIXED!r} or {SEED_RANDOM!r}")
        if name == "preview_mode" and value not in ("single", "interpolation"):
            raise ValueError("preview_mode must be 'single' or 'interpolation'")
        return value

    def snapshot(self) -> dict[str, Any]:
        """Every field's current value, for ``update(**snapshot)`` to bring back later (undo)."""
        values = {name: getattr(self._values, name) for name in FIELD_NAMES}
        values["directions"] = dict(values["directions"])
        return values

    # --- small edits panels make --------------------------------------------------------------------------
    def set_direction(self, index: int, scale: float) -> None:
        directions = dict(self.directions)
        directions[index] = scale
        self.update(directions=directions)

    def set_concept_scale(self, position: int, scale: float) -> None:
        concepts = list(self.concepts)
        concepts[position] = replace(concepts[position], scale=float(scale))
        self.update(concepts=concepts)

    def add_concept(self, negative: str, positive: str, scale: float = 0.0) -> None:
        self.update(
            concepts=(*self.concepts, ConceptSlider(negative.strip(), positive.strip(), float(scale)))
        )

    def remove_concept(self, position: int) -> None:
        concepts = list(self.concepts)
        del concepts[position]
        self.update(concepts=concepts)

    def reset_sliders(self, default_truncation: float | None = None) -> None:
        """Every latent and concept offset and the variety back to 0 (concepts stay, at 0) and truncation to
        the default."""
        changes: dict[str, Any] = {
            "variety": 0.0,
            "strength": 1.0,
            "directions": {},
            "concepts": tuple(replace(c, scale=0.0) for c in self.concepts),
        }
        if default_truncation is not None:
            changes["truncation"] = default_truncation
        self.update(**changes)

    def next_seed(self, rng: random.Random | None = None) -> int:
        """The seed a Generate uses: the fixed one, or a fresh random one (which then becomes the seed)."""
        if self.seed_mode == SEED_RANDOM:
            self.update(seed=(rng or random).randint(0, RANDOM_SEED_LIMIT))
        return self.seed

    # --- requests -------------------------------------------------------------------------------------------
    def preview_request(self) -> GenerationRequest:
        """The one-image request the live preview shows: the prompt and sliders, or the A -> B frame at t."""
        if self.preview_mode == "interpolation" and self.slot_a is not None and self.slot_b is not None:
            return self.interpolation_request(self.t)
        return self._request(count=1)

    def generation_request(self) -> GenerationRequest:
        """The batch a Generate makes: ``count`` images from the current seed."""
        return self._request(count=self.count)

    def interpolation_request(self, t: float) -> GenerationRequest:
        """The frame at ``t`` between slot A and slot B.

        A's own truncation and offsets apply along the whole path, so ``t = 0`` is exactly image A.
        """
        if self.slot_a is None or self.slot_b is None:
            raise ValueError("Both interpolation slots must be set.")
        a, b = self.slot_a.request, self.slot_b.request
        return replace(
            a,
            count=1,
            interpolate_to=Endpoint(b.prompt, b.seed, b.latent),
            t=min(1.0, max(0.0, float(t))),
            model=self.model,
        )

    def _request(self, count: int) -> GenerationRequest:
        seed = min(max(self.seed, 0), MAX_SEED - count + 1)
        return GenerationRequest(
            prompt=self.prompt,
            seed=seed,
            count=count,
            truncation=self.truncation,
            variety=self.variety,
            spread=self.spread,
            strength=self.strength,
            directions=self._direction_pairs(),
            concepts=self._active_concepts(),
            model=self.model,
            latent=self.latent,
        )

    def _direction_pairs(self) -> tuple[tuple[int, float], ...]:
        return tuple(sorted((i, s) for i, s in self.directions.items() if s != 0.0))

    def _active_concepts(self) -> tuple[ConceptSlider, ...]:
        return tuple(c for c in self.concepts if c.scale != 0.0)

    def restore(self, request: GenerationRequest) -> None:
        """Take prompt, seed, truncation, variety, sliders and interpolation from a stored request (a dropped
        file)."""
        changes: dict[str, Any] = {
            "prompt": request.prompt,
            "seed": request.seed,
            "seed_mode": SEED_FIXED,
            "truncation": request.truncation,
            "variety": request.variety,
            "spread": request.spread,
            "strength": request.strength,
            "directions": dict(request.directions),
            "concepts": request.concepts,
            "latent": request.latent,
        }
        if request.interpolate_to is not None:
            a = replace(request, count=1, interpolate_to=None, t=0.0)
            end = request.interpolate_to
            b = replace(a, prompt=end.prompt, seed=end.seed, latent=end.latent)
            changes.update(
                slot_a=InterpolationSlot(a),
                slot_b=InterpolationSlot(b),
                t=request.t,
                preview_mode="interpolation",
            )
        else:
            changes.update(preview_mode="single")
        self.update(**changes)
