"""What ``model.json`` may say: every field typed and range-checked before anything is allocated.

A model folder is untrusted (a download, a colleague's experiment): ``z_dim: 1e6`` or ``ch: 100000`` would
allocate gigabytes, ``channels: "four"`` or ``metrics: []`` would break listing, a path in ``files`` would
read any file. These checks turn each into one ModelError sentence; :func:`studio.models.format.read_model_info`
applies them in order. Hyper-parameter limits are in BASE_LIMITS and UPSAMPLER_LIMITS; the weight count is
counted on the meta device, so even a too-large model costs nothing to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from studio.errors import ModelError
from studio.models.cgan import BaseConfig, BaseGenerator, Upsampler, UpsamplerConfig
from studio.untrusted import shown

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")

# A model folder is untrusted: these bound what model.json may ask for before anything is allocated.
MAX_PARAMETERS = 200_000_000  # per network (the emoji generator has ~0.9 M)
MAX_RESOLUTION = 1024  # final image side in pixels
MAX_CLASSES = 100_000
MAX_TEXT_CHARS = 10_000  # description, licence, training data
# (lowest, highest) of each hyper-parameter; channel_mult also has 1..9 entries (4 px to 1024 px).
BASE_LIMITS = {
    "z_dim": (1, 4096),
    "embed_dim": (1, 4096),
    "num_classes": (0, MAX_CLASSES),
    "cond_dim": (1, 4096),
    "ch": (1, 1024),
    "out_channels": (4, 4),  # RGBA
}
CHANNEL_MULT_LIMITS = (1, 64)
MAX_BASE_BLOCKS = 9
UPSAMPLER_LIMITS = {
    "channels": (4, 4),
    "ch": (1, 1024),
    "n_blocks": (0, 64),
    "scale": (2, 8),
    "tail_ch": (1, 1024),
}


@dataclass(frozen=True)
class Conditioning:
    kind: str  # "text" or "class"
    encoder: str | None = None  # text encoder id, for kind == "text"
    embedding_dim: int = 0
    classes: tuple[str, ...] = ()


def pickle_sentence(path: Path) -> str:
    return (
        f"'{shown(path.name)}' is a pickle file, which GAN Studio never opens because loading it can run code; "
        "convert it to safetensors (model.json + generator.safetensors)."
    )


def require(data: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ModelError(f"{where} has no '{key}' entry.")
    return optional(data, key, kind, None, where)


def optional(data: dict, key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    """``data[key]`` if it has type ``kind`` (a boolean is not a number), ``default`` if absent."""
    if key not in data:
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise ModelError(f"{where}: '{key}' has the wrong type ({type(value).__name__}).")
    return value


def whole(data: dict, key: str, limits: tuple[int, int], where: str, default: int | None = None) -> int:
    """A whole-number entry within ``limits`` (checked before anything of that size is allocated)."""
    value = require(data, key, int, where) if default is None else optional(data, key, int, default, where)
    low, high = limits
    if not low <= value <= high:
        raise ModelError(f"{where}: '{key}' is {shown(value, 24)}, outside {low}..{high}.")
    return value


def conditioning_from(data: dict, where: str) -> Conditioning:
    kind = require(data, "kind", str, where + " (conditioning)")
    if kind == "text":
        encoder = require(data, "encoder", str, where)
        return Conditioning("text", shown(encoder, 200), whole(data, "embedding_dim", (1, 4096), where, 384))
    if kind == "class":
        classes = require(data, "classes", list, where)
        if not classes:
            raise ModelError(f"{where} lists no classes.")
        if len(classes) > MAX_CLASSES or not all(isinstance(c, str) and 0 < len(c) <= 200 for c in classes):
            raise ModelError(
                f"{where}: 'classes' must be up to {MAX_CLASSES:,} names of 1 to 200 characters."
            )
        return Conditioning("class", classes=tuple(classes))
    raise ModelError(f"{where}: conditioning kind '{shown(kind, 40)}' is unknown (use 'text' or 'class').")


def base_config_from(data: dict, where: str) -> BaseConfig:
    where = where + " (architecture.base)"
    _no_unknown_keys(data, BaseConfig, where)
    values: dict[str, Any] = {
        key: whole(data, key, limits, where, getattr(BaseConfig, key)) for key, limits in BASE_LIMITS.items()
    }
    mult = optional(data, "channel_mult", list, list(BaseConfig.channel_mult), where)
    low, high = CHANNEL_MULT_LIMITS
    if not 1 <= len(mult) <= MAX_BASE_BLOCKS or not all(
        isinstance(m, int) and not isinstance(m, bool) and low <= m <= high for m in mult
    ):
        raise ModelError(
            f"{where}: 'channel_mult' must list 1 to {MAX_BASE_BLOCKS} whole numbers from {low} to {high}."
        )
    return BaseConfig(**values, channel_mult=tuple(mult))


def upsampler_config_from(data: dict, where: str) -> UpsamplerConfig:
    where = where + " (architecture.upsampler)"
    _no_unknown_keys(data, UpsamplerConfig, where)
    values = {
        key: whole(data, key, limits, where, getattr(UpsamplerConfig, key))
        for key, limits in UPSAMPLER_LIMITS.items()
    }
    if values["scale"] not in (2, 4, 8):
        raise ModelError(f"{where}: 'scale' must be 2, 4 or 8.")
    return UpsamplerConfig(**values)


def _no_unknown_keys(data: dict, config_type: type, where: str) -> None:
    unknown = sorted(set(data) - set(config_type.__dataclass_fields__))
    if unknown:
        raise ModelError(f"{where} has an unexpected architecture setting ('{shown(unknown[0], 40)}').")


def parameter_count(config: BaseConfig | UpsamplerConfig) -> int:
    """How many weights the network would have, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        module = BaseGenerator(config) if isinstance(config, BaseConfig) else Upsampler(config)
    return sum(t.numel() for t in (*module.parameters(), *module.buffers()))


def weight_files(data: dict, where: str) -> dict[str, str]:
    """``files``: weight file names inside the folder (never a path: a file must not choose what is read)."""
    files = optional(data, "files", dict, {}, where)
    for value in files.values():
        if (
            not isinstance(value, str)
            or not value
            or value in (".", "..")
            or Path(value).name != value
            or "\\" in value
        ):
            raise ModelError(
                f"{where}: the weight file {shown(repr(value), 40)} must be a plain file name in the folder."
            )
        if Path(value).suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(pickle_sentence(Path(value)))
    return files
