"""The model-folder format: ``model.json`` + ``generator.safetensors`` [+ ``upsampler.safetensors``].

Loading validates the JSON, the architecture id, and every tensor's name and shape before any weight is
used, and turns each failure into one sentence a person can act on. Pickle-based files (``.pt``, ``.pth``,
``.pkl``, ``.bin``, ``.ckpt``) are never opened: unpickling runs code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from studio.atomic import write_atomically
from studio.engine.requests import MAX_TRUNCATION, RequestError, check_model_name
from studio.errors import ModelError
from studio.logs import log_caught
from studio.models.cgan import BaseConfig, BaseGenerator, Upsampler, UpsamplerConfig, upsampler_layout
from studio.models.manifest import (
    MAX_PARAMETERS,
    MAX_RESOLUTION,
    MAX_TEXT_CHARS,
    PICKLE_SUFFIXES,
    Conditioning,
    base_config_from,
    conditioning_from,
    optional,
    parameter_count,
    pickle_sentence,
    require,
    upsampler_config_from,
    weight_files,
)
from studio.models.tensor_file import save_tensors
from studio.paths import resources_dir, user_data_dir
from studio.untrusted import UntrustedInputError, check_regular_file, parse_json, read_regular_file, shown

FORMAT_VERSION = 1
ARCHITECTURES = ("cgan32-cbn",)  # ids this version can build
DEFAULT_MODEL = "emoji"
MAX_MODEL_JSON_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 4 << 30
CONCEPTS_FILE = "concepts.safetensors"  # optional fitted concept conditions (studio/models/concepts.py)
# optional wording directions left out of matching (studio/models/vocabulary.py)
WORDING_FILE = "wording.safetensors"

_log = logging.getLogger(__name__)


@dataclass
class ModelInfo:
    """What ``model.json`` says about a model (no weights loaded)."""

    path: Path
    name: str
    version: str
    architecture: str
    base: BaseConfig
    upsampler: UpsamplerConfig | None
    conditioning: Conditioning
    resolution: int
    channels: int
    z_dim: int
    default_truncation: float
    description: str = ""
    license: str = ""
    training_data: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def base_resolution(self) -> int:
        return self.base.resolution


@dataclass
class LoadedModel:
    """A validated model: its info, the base generator, the optional upsampler and a short content hash."""

    info: ModelInfo
    generator: BaseGenerator
    upsampler: Upsampler | None
    hash: str  # first 8 hex digits of SHA-256 over the weight files (concept conditions, wording), as in image metadata


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def model_search_path() -> list[Path]:
    """Folders searched for models, first match wins: the shipped ones, then the user's."""
    return [resources_dir() / "models", user_models_dir()]


def find_models() -> list[ModelInfo | ModelError]:
    """Every model folder on the search path, read but not loaded (errors are listed, not raised)."""
    found: list[ModelInfo | ModelError] = []
    seen: set[str] = set()
    for root in model_search_path():
        try:
            folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        except OSError:
            log_caught(f"The model folder {root} could not be listed", _log)
            continue
        for folder in folders:
            if folder.name in seen or not os.path.lexists(folder / "model.json"):
                continue
            seen.add(folder.name)
            try:
                found.append(read_model_info(folder))
            except ModelError as exc:
                found.append(exc)
    return found


def find_model(name: str) -> Path:
    """The folder of the model called ``name`` on the search path: a name from a file, never a path."""
    try:
        check_model_name(name)
    except RequestError as exc:
        raise ModelError(str(exc)) from exc
    for root in model_search_path():
        if (root / name).is_dir():
            return root / name
    raise ModelError(_unknown_model_sentence(name))


def _unknown_model_sentence(name: str) -> str:
    names = sorted(m.name for m in find_models() if isinstance(m, ModelInfo))
    known = ", ".join(names) if names else "none are installed"
    return f"There is no model called '{shown(name)}' (known models: {known})."


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A model folder from a name on the search path or a path; raises ModelError naming what exists."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate
    if candidate.is_file():
        if candidate.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(pickle_sentence(candidate))
        return candidate.parent
    try:
        check_model_name(str(name_or_path))
    except RequestError as exc:  # a path a person typed that leads nowhere
        raise ModelError(_unknown_model_sentence(str(name_or_path))) from exc
    return find_model(str(name_or_path))


def read_model_info(folder: str | os.PathLike) -> ModelInfo:
    """Read and check ``model.json`` (no weights). Raises ModelError with one sentence (logged)."""
    try:
        return _read_model_info(Path(folder))
    except ModelError as exc:
        log_caught(str(exc), _log)
        raise
    except (OSError, ValueError) as exc:  # e.g. a folder that vanished or cannot be listed
        log_caught("Unreadable model folder", _log)
        raise ModelError(
            f"The model folder '{shown(Path(folder).name)}' could not be read ({type(exc).__name__})."
        ) from exc


def _read_model_info(folder: Path) -> ModelInfo:
    label = shown(folder.name)
    manifest = folder / "model.json"
    if not folder.is_dir():
        raise ModelError(f"The model folder '{shown(folder)}' does not exist.")
    if not os.path.lexists(manifest):
        pickles = [p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise ModelError(pickle_sentence(pickles[0]))
        raise ModelError(f"The model folder '{label}' has no model.json.")
    where = f"The model.json of '{label}'"
    try:
        data = parse_json(read_regular_file(manifest, MAX_MODEL_JSON_BYTES, where), where)
    except UntrustedInputError as exc:
        raise ModelError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{where} must hold a JSON object.")
    fmt = data.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION or isinstance(fmt, bool):
        raise ModelError(
            f"{where} uses format {shown(fmt, 24)}; this version of GAN Studio reads format {FORMAT_VERSION}."
        )
    arch = require(data, "architecture", dict, where)
    arch_id = require(arch, "id", str, where + " (architecture)")
    if arch_id not in ARCHITECTURES:
        raise ModelError(
            f"'{label}' needs the architecture '{shown(arch_id, 40)}', which this version of GAN Studio does not know "
            f"(it knows {', '.join(ARCHITECTURES)})."
        )
    conditioning = conditioning_from(require(data, "conditioning", dict, where), where)
    base = base_config_from(require(arch, "base", dict, where), where)
    up_data = optional(arch, "upsampler", (dict, type(None)), None, where)
    upsampler = upsampler_config_from(up_data, where) if up_data else None
    if conditioning.kind == "class" and base.num_classes != len(conditioning.classes):
        raise ModelError(
            f"{where}: the generator has {base.num_classes} classes but {len(conditioning.classes)} are named."
        )
    resolution = base.resolution * (upsampler.scale if upsampler else 1)
    if resolution > MAX_RESOLUTION:
        raise ModelError(
            f"{where} asks for {resolution} px images; GAN Studio renders at most {MAX_RESOLUTION} px."
        )
    declared = optional(data, "resolution", int, resolution, where)
    if declared != resolution:
        raise ModelError(
            f"{where} says {shown(declared, 24)} px but its architecture makes {resolution} px images."
        )
    channels = optional(data, "channels", int, base.out_channels, where)
    if channels != base.out_channels:
        raise ModelError(
            f"{where} says {shown(channels, 24)} channels but the generator makes {base.out_channels}."
        )
    for network, config in (("generator", base), ("upsampler", upsampler)):
        if config is not None and (count := parameter_count(config)) > MAX_PARAMETERS:
            raise ModelError(
                f"{where} describes a {network} of {count:,} weights; GAN Studio loads at most {MAX_PARAMETERS:,}."
            )
    name = optional(data, "name", str, folder.name, where)
    try:
        check_model_name(name)
    except RequestError as exc:
        raise ModelError(f"{where} gives an unusable name: {exc}") from exc
    truncation = optional(data, "default_truncation", (float, int), 1.0, where)
    if not math.isfinite(truncation) or not 0 <= truncation <= MAX_TRUNCATION:
        raise ModelError(f"{where}: 'default_truncation' must be between 0 and {MAX_TRUNCATION:g}.")
    weight_files(data, where)
    texts = {key: optional(data, key, str, "", where) for key in ("description", "license", "training_data")}
    if any(len(text) > MAX_TEXT_CHARS for text in texts.values()):
        raise ModelError(
            f"{where} has a description, licence or training note of more than {MAX_TEXT_CHARS:,} characters."
        )
    version = optional(data, "version", str, "0", where)
    return ModelInfo(
        path=folder,
        name=name,
        version=shown(version, 40),
        architecture=arch_id,
        base=base,
        upsampler=upsampler,
        conditioning=conditioning,
        resolution=resolution,
        channels=channels,
        z_dim=base.z_dim,
        default_truncation=float(truncation),
        metrics=dict(optional(data, "metrics", dict, {}, where)),
        raw=data,
        **texts,
    )


def _load_weights(module: nn.Module, path: Path, model_name: str) -> None:
    """Copy a safetensors file into ``module`` after checking every key and shape."""
    if not os.path.lexists(path):
        raise ModelError(f"The model '{model_name}' is missing its weights file '{path.name}'.")
    try:  # safetensors maps the file itself: a pipe or /dev/zero must be refused before it opens it
        check_regular_file(path, MAX_WEIGHTS_BYTES, f"The weights file '{path.name}' of '{model_name}'")
    except UntrustedInputError as exc:
        raise ModelError(str(exc)) from exc
    expected = module.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            for key in keys & expected.keys():
                tensors[key] = handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"The weights file '{path.name}' of '{model_name}' is damaged or not a safetensors file ({exc})."
        ) from exc
    missing = sorted(expected.keys() - keys)
    unexpected = sorted(keys - expected.keys())
    if missing:
        raise ModelError(
            f"'{path.name}' of '{model_name}' lacks {len(missing)} tensors the architecture needs "
            f"(first: '{missing[0]}'); model.json and the weights do not belong together."
        )
    if unexpected:
        raise ModelError(
            f"'{path.name}' of '{model_name}' holds {len(unexpected)} tensors the architecture does not have "
            f"(first: '{unexpected[0]}'); model.json and the weights do not belong together."
        )
    for key, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ModelError(
                f"In '{path.name}' of '{model_name}', '{key}' has shape {tuple(tensor.shape)} but the architecture "
                f"needs {tuple(expected[key].shape)}."
            )
        if not tensor.dtype.is_floating_point and tensor.dtype != expected[key].dtype:
            raise ModelError(
                f"In '{path.name}' of '{model_name}', '{key}' has the wrong type ({tensor.dtype})."
            )
        if tensor.dtype.is_floating_point and not bool(torch.isfinite(tensor).all()):
            raise ModelError(
                f"In '{path.name}' of '{model_name}', '{key}' holds NaN or infinite values; the weights are damaged."
            )
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})


def _file_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:8]


def load_model(name_or_path: str | os.PathLike) -> LoadedModel:
    """Load and validate a model folder (by name or path) onto the CPU, in eval mode; ModelError (logged)."""
    try:
        return _load_model(name_or_path)
    except ModelError as exc:
        log_caught(str(exc), _log)
        raise


def _load_model(name_or_path: str | os.PathLike) -> LoadedModel:
    info = read_model_info(resolve_model(name_or_path))
    files = weight_files(info.raw, f"The model.json of '{info.name}'")
    generator = BaseGenerator(info.base)
    weight_paths = [info.path / files.get("generator", "generator.safetensors")]
    _load_weights(generator, weight_paths[0], info.name)
    upsampler = None
    if info.upsampler is not None:
        upsampler = Upsampler(info.upsampler)
        weight_paths.append(info.path / files.get("upsampler", "upsampler.safetensors"))
        _load_weights(upsampler, weight_paths[1], info.name)
        upsampler.eval().requires_grad_(False).to(memory_format=upsampler_layout("cpu"))
    generator.eval().requires_grad_(False)
    _probe(generator, upsampler, info)
    # fitted concept conditions (studio/models/concepts.py) change what a name draws, wording directions
    # (studio/models/vocabulary.py) what a worded one matches: both are part of the hash
    extras = [info.path / CONCEPTS_FILE, info.path / WORDING_FILE]
    hashed = weight_paths + [path for path in extras if path.is_file()]
    return LoadedModel(info, generator, upsampler, _file_hash(hashed))


PROBE_SEED = 0


@torch.no_grad()
def _probe(generator: BaseGenerator, upsampler: Upsampler | None, info: ModelInfo) -> None:
    """Render one probe image on the CPU: finite weights can still overflow (1e38) into NaN pixels."""
    config = info.base
    z = torch.randn(1, config.z_dim, generator=torch.Generator().manual_seed(PROBE_SEED))
    if config.num_classes > 0:
        condition = torch.zeros(1, dtype=torch.long)
    else:
        condition = torch.randn(1, config.embed_dim, generator=torch.Generator().manual_seed(PROBE_SEED))
    image = generator(z, condition)
    if upsampler is not None:
        image = upsampler(image)
    if not bool(torch.isfinite(image).all()):
        raise ModelError(
            f"The model '{info.name}' draws NaN or infinite values (its weights overflow); it cannot be used."
        )


def save_model(
    folder: str | os.PathLike,
    manifest: dict[str, Any],
    generator: BaseGenerator,
    upsampler: Upsampler | None = None,
) -> Path:
    """Write a model folder (the trainer's and the tests' way to make one). ``manifest`` gives the
    descriptive fields; architecture, resolution and file names are filled in from the modules."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = dict(manifest)
    data["format"] = FORMAT_VERSION
    data["architecture"] = {
        "id": ARCHITECTURES[0],
        "base": generator.config.to_json(),
        "upsampler": upsampler.config.to_json() if upsampler is not None else None,
    }
    data["resolution"] = generator.config.resolution * (upsampler.config.scale if upsampler else 1)
    data["channels"] = generator.config.out_channels
    data["z_dim"] = generator.config.z_dim
    data["files"] = {"generator": "generator.safetensors"}
    save_tensors(folder / "generator.safetensors", _contiguous(generator))
    if upsampler is not None:
        data["files"]["upsampler"] = "upsampler.safetensors"
        save_tensors(folder / "upsampler.safetensors", _contiguous(upsampler))
    write_atomically(folder / "model.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return folder


def _contiguous(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
