"""Request and result values: everything that determines an image, and what the engine hands back.

A request is a frozen, hashable value. The same request on the same device kind gives the same pixels, and
``to_json``/``from_json`` round-trip it exactly, which is what image metadata stores and what a dropped file
restores.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from studio.untrusted import shown

_MODEL_NAME = re.compile(r"[^/\\:\x00-\x1f\x7f~.][^/\\:\x00-\x1f\x7f]*")

# The limits of a request: typed in the window, given to the CLI, restored from a file or pasted, all the same
# (docs/ENGINE_API.md says them). A file may ask only for work a person could ask for.
MAX_SEED = 2**63 - 1
MAX_PROMPT_CHARS = 2000  # longer prompts are refused; the encoder reads ~256 tokens anyway
MAX_COUNT = 1000  # images per Generate
MAX_TRUNCATION = 2.0
MAX_VARIETY = 1.0  # at 1 a seed moves the prompt's condition as far as a whole unit embedding would
MAX_STRENGTH = 2.0  # prompt strength: the prompt embedding is scaled by 0 ... 2 (1: as it is)
# New images in the window and on the command line spread (studio/engine/spread.py) unless told not to; a
# stored request without the field (everything made before spread existed) renders without it.
SPREAD_DEFAULT = True
MAX_OFFSET = 50.0  # largest |scale| of a latent or concept slider
MAX_DIRECTIONS = 32  # latent directions a request may move: indexes 0..31, each at most once
MAX_CONCEPTS = 16  # concept sliders (each costs two prompt encodings per image)
MAX_MODEL_NAME_CHARS = 64
MAX_FRAMES = 1000  # frames of one animation
MAX_FPS = 60.0  # frames per second an animation plays at
# 2: an optional explicit latent (``latent``); 3: an optional ``variety``; 4: an optional ``spread`` and an
# optional ``strength``. Older requests read unchanged.
REQUEST_SCHEMA = 4
MAX_LATENT_VALUES = 4096  # z and condition are a few hundred numbers each; anything larger is not ours
MAX_SOURCE_NAME_CHARS = 255
LATENT_DTYPES = {"float32": "<f4", "float16": "<f2"}


class RequestError(ValueError):
    """A request a person built is not valid; ``str(error)`` is one sentence saying what to change."""


@dataclass(frozen=True)
class ConceptSlider:
    """Moves the prompt embedding by ``scale`` along (embedding(positive) - embedding(negative))."""

    negative: str
    positive: str
    scale: float = 0.0


@dataclass(frozen=True)
class ExplicitLatent:
    """A z and a projected condition given as numbers (an inverted picture) instead of a seed and a prompt.

    ``z`` and ``condition`` are the little-endian bytes of ``dtype`` (float32 or float16) values, so the value
    is hashable and round-trips through JSON bit for bit. ``source`` is the file name (never a path) of the
    picture it was inverted from, shown as the gallery's link back to it.
    """

    z: bytes
    condition: bytes
    dtype: str = "float32"
    source: str = ""

    @classmethod
    def from_arrays(cls, z, condition, dtype: str = "float32", source: str = "") -> ExplicitLatent:
        if dtype not in LATENT_DTYPES:
            raise RequestError(f"An explicit latent must be float32 or float16, not {dtype}.")
        code = LATENT_DTYPES[dtype]
        return cls(
            z=np.ascontiguousarray(np.asarray(z, np.float32).reshape(-1), dtype=code).tobytes(),
            condition=np.ascontiguousarray(
                np.asarray(condition, np.float32).reshape(-1), dtype=code
            ).tobytes(),
            dtype=dtype,
            source=source_name(source),
        )

    def z_array(self) -> np.ndarray:
        """z as float32 (exactly the stored values)."""
        return self._array(self.z)

    def condition_array(self) -> np.ndarray:
        return self._array(self.condition)

    def _array(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, LATENT_DTYPES[self.dtype]).astype(np.float32)

    def validated(self) -> ExplicitLatent:
        if self.dtype not in LATENT_DTYPES:
            raise RequestError("An explicit latent must be stored as float32 or float16.")
        size = np.dtype(LATENT_DTYPES[self.dtype]).itemsize
        for name, data in (("z", self.z), ("condition", self.condition)):
            if not isinstance(data, bytes) or not data or len(data) % size:
                raise RequestError(f"The explicit latent's {name} is empty or cut off.")
            if len(data) // size > MAX_LATENT_VALUES:
                raise RequestError(
                    f"The explicit latent's {name} has more than {MAX_LATENT_VALUES:,} numbers; it is not GAN Studio's."
                )
            if not np.isfinite(self._array(data)).all():
                raise RequestError(f"The explicit latent's {name} holds a number that is not finite.")
        if source_name(self.source) != self.source:
            raise RequestError("An explicit latent's source must be a short file name, not a path.")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "z": base64.b64encode(self.z).decode("ascii"),
            "condition": base64.b64encode(self.condition).decode("ascii"),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: object) -> ExplicitLatent:
        """Rebuild from :meth:`to_json`; sizes are checked before anything is decoded."""
        if not isinstance(data, dict):
            raise RequestError("The explicit latent is not an object.")
        dtype = data.get("dtype", "float32")
        if dtype not in LATENT_DTYPES:
            raise RequestError("An explicit latent must be stored as float32 or float16.")
        most = 4 * -(-MAX_LATENT_VALUES * np.dtype(LATENT_DTYPES[dtype]).itemsize // 3)
        fields = {}
        for name in ("z", "condition"):
            text = data.get(name)
            if not isinstance(text, str) or len(text) > most:
                raise RequestError(f"The explicit latent's {name} is missing or too long.")
            try:
                fields[name] = base64.b64decode(text.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError) as exc:
                raise RequestError(f"The explicit latent's {name} is not valid base64.") from exc
        source = data.get("source", "")
        if not isinstance(source, str):
            raise RequestError("An explicit latent's source must be a file name.")
        return cls(z=fields["z"], condition=fields["condition"], dtype=dtype, source=source).validated()


def source_name(name: object) -> str:
    """A file name fit to store as a latent's source: the last path part, at most 255 characters."""
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:MAX_SOURCE_NAME_CHARS]


@dataclass(frozen=True)
class Endpoint:
    """The B end of an interpolation (A is the request itself): a prompt and a seed, or an explicit latent."""

    prompt: str
    seed: int
    latent: ExplicitLatent | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that determines the pixels of one image or a batch of ``count`` images.

    Image ``i`` of a batch uses seed ``seed + i``. ``directions`` are (closed-form direction index, scale)
    pairs applied to z; ``concepts`` move the prompt embedding; ``interpolate_to`` with ``t`` in [0, 1]
    slerps z and lerps the embedding towards the B endpoint. ``latent`` (an inverted picture) replaces the
    seeded z and the prompt's projected condition; truncation, directions, concepts and interpolation act on
    it as on any other z and condition, and ``prompt`` is then only its name. ``variety`` (0 to 1) moves the
    condition along a direction that z chooses (studio/engine/latents.py: ``variety_offsets``), so the
    seeds of one prompt draw more different pictures, each a little less faithful to it. ``spread`` lets
    the seeds of a prompt that fits several emoji ("cat", "heart", "猫") each lean towards one of them
    (studio/engine/spread.py); a prompt that fits one concept best renders as without it. ``strength``
    (0 to 2, default 1) scales the prompt's embedding (studio/engine/latents.py: ``strengthened_conditions``):
    above 1 the picture follows the prompt's kind harder, below 1 it drifts towards no prompt at all.
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
    latent: ExplicitLatent | None = None
    variety: float = 0.0
    spread: bool = False
    strength: float = 1.0

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
        if not _finite(self.variety) or not 0.0 <= self.variety <= MAX_VARIETY:
            raise RequestError(f"Variety must be a number between 0 and {MAX_VARIETY:g}.")
        if not _finite(self.strength) or not 0.0 <= self.strength <= MAX_STRENGTH:
            raise RequestError(f"Prompt strength must be a number between 0 and {MAX_STRENGTH:g}.")
        if len(self.directions) > MAX_DIRECTIONS:
            raise RequestError(f"At most {MAX_DIRECTIONS} latent sliders can be moved at once.")
        if len({index for index, _ in self.directions}) != len(self.directions):
            raise RequestError("A latent slider is listed twice; give each direction once.")
        for index, scale in self.directions:
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_DIRECTIONS:
                raise RequestError(
                    f"A latent direction index must be a whole number from 0 to {MAX_DIRECTIONS - 1}."
                )
            if not _finite(scale) or abs(scale) > MAX_OFFSET:
                raise RequestError(
                    f"A slider offset must be a number between -{MAX_OFFSET:g} and {MAX_OFFSET:g}."
                )
        if len(self.concepts) > MAX_CONCEPTS:
            raise RequestError(f"At most {MAX_CONCEPTS} concept sliders can be used at once; remove some.")
        for concept in self.concepts:
            check_prompt(concept.negative, what="A concept slider's first prompt")
            check_prompt(concept.positive, what="A concept slider's second prompt")
            if not _finite(concept.scale) or abs(concept.scale) > MAX_OFFSET:
                raise RequestError(f"A concept slider must be between -{MAX_OFFSET:g} and {MAX_OFFSET:g}.")
        if self.interpolate_to is not None:
            check_prompt(self.interpolate_to.prompt, what="The interpolation's B prompt")
            check_seed(self.interpolate_to.seed)
            if self.interpolate_to.latent is not None:
                self.interpolate_to.latent.validated()
        if self.latent is not None:
            self.latent.validated()
        if not _finite(self.t) or not 0.0 <= self.t <= 1.0:
            raise RequestError("The interpolation position t must be between 0 and 1.")
        check_model_name(self.model)
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
            "interpolate_to": _endpoint_json(self.interpolate_to),
            "t": self.t,
            "model": self.model,
        }
        if self.latent is not None:  # absent otherwise, so schema-1 readers still read plain requests
            data["latent"] = self.latent.to_json()
        if self.variety:  # absent at 0, like the latent
            data["variety"] = self.variety
        if self.spread:  # absent when off: every request stored before spread existed renders as it did
            data["spread"] = True
        if self.strength != 1.0:  # absent at 1, like the variety at 0
            data["strength"] = self.strength
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationRequest:
        """Rebuild a request from :meth:`to_json` output, every field type-checked; raises RequestError.

        Ranges are :meth:`validated`'s job; here each field must have its JSON type (a seed is an integer,
        not ``1e999`` or ``"5"``).
        """
        if not isinstance(data, dict):
            raise RequestError("The stored request is not a JSON object.")
        directions = _field(data, "directions", (list, tuple), ())
        concepts = _field(data, "concepts", (list, tuple), ())
        end = _field(data, "interpolate_to", (dict, type(None)), None)
        return cls(
            prompt=_field(data, "prompt", str),
            seed=_integer(data, "seed", 0),
            count=_integer(data, "count", 1),
            truncation=_number(data, "truncation", 1.0),
            directions=tuple(_direction(pair) for pair in directions),
            concepts=tuple(_concept(concept) for concept in concepts),
            interpolate_to=(
                Endpoint(
                    _field(end, "prompt", str, where="interpolate_to"),
                    _integer(end, "seed", 0, "interpolate_to"),
                    _latent_from(end.get("latent")),
                )
                if end is not None
                else None
            ),
            t=_number(data, "t", 0.0),
            model=_field(data, "model", str, "emoji"),
            latent=_latent_from(data.get("latent")),
            variety=_number(data, "variety", 0.0),
            spread=_field(data, "spread", bool, False),
            strength=_number(data, "strength", 1.0),
        )


_REQUIRED = object()
_KINDS = {
    str: "a text",
    int: "a whole number",
    float: "a number",
    list: "a list",
    dict: "an object",
    bool: "true or false",
}


def _field(data: dict, key: str, kind, default: Any = _REQUIRED, where: str = "") -> Any:
    """``data[key]`` if it has type ``kind`` (booleans are not numbers); RequestError naming the field."""
    name = f"{where}.{key}" if where else key
    if key not in data:
        if default is _REQUIRED:
            raise RequestError(f"The stored request has no '{name}'.")
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise RequestError(
            f"In the stored request, '{name}' must be {_KINDS[kinds[0]]}, not {shown(repr(value), 40)}."
        )
    return value


def _integer(data: dict, key: str, default: int, where: str = "") -> int:
    return _field(data, key, int, default, where)


def _number(data: dict, key: str, default: float, where: str = "") -> float:
    return float(_field(data, key, (float, int), default, where))


def _direction(pair: object) -> tuple[int, float]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise RequestError("In the stored request, each latent slider must be an [index, offset] pair.")
    values = {"index": pair[0], "offset": pair[1]}
    return _integer(values, "index", 0, "directions"), _number(values, "offset", 0.0, "directions")


def _concept(data: object) -> ConceptSlider:
    if not isinstance(data, dict):
        raise RequestError("In the stored request, each concept slider must be an object.")
    return ConceptSlider(
        _field(data, "negative", str, where="concepts"),
        _field(data, "positive", str, where="concepts"),
        _number(data, "scale", 0.0, "concepts"),
    )


def _endpoint_json(end: Endpoint | None) -> dict[str, Any] | None:
    if end is None:
        return None
    data: dict[str, Any] = {"prompt": end.prompt, "seed": end.seed}
    if end.latent is not None:
        data["latent"] = end.latent.to_json()
    return data


def _latent_from(data: object) -> ExplicitLatent | None:
    return None if data is None else ExplicitLatent.from_json(data)


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


def check_model_name(name: object) -> str:
    """A model is named, never located: ``emoji``, not ``/abs/path`` or ``../x`` (a file must not choose a folder)."""
    if not isinstance(name, str) or not name.strip():
        raise RequestError("The request names no model.")
    if len(name) > MAX_MODEL_NAME_CHARS or not _MODEL_NAME.fullmatch(name):
        raise RequestError(
            f"The model must be given by its name, such as 'emoji', not a path or other text ({shown(repr(name), 40)})."
        )
    return name


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
