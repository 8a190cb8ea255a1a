"""The model-folder format: ``model.json`` + ``generator.safetensors`` [+ ``upsampler.safetensors``].

Loading validates the JSON, the architecture id, and every tensor's name and shape before any weight is
used, and turns each failure into one sentence a person can act on. Pickle-based files (``.pt``, ``.pth``,
``.pkl``, ``.bin``, ``.ckpt``) are never opened: unpickling runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from studio.errors import ModelError
from studio.models.cgan import BaseConfig, BaseGenerator, Upsampler, UpsamplerConfig
from studio.paths import resources_dir, user_data_dir

FORMAT_VERSION = 1
ARCHITECTURES = ("cgan32-cbn",)  # ids this version can build
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
DEFAULT_MODEL = "emoji"


@dataclass(frozen=True)
class Conditioning:
    kind: str  # "text" or "class"
    encoder: str | None = None  # text encoder id, for kind == "text"
    embedding_dim: int = 0
    classes: tuple[str, ...] = ()


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
    hash: str  # first 8 hex digits of SHA-256 over the weight files, as written into image metadata


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
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name in seen or not (folder / "model.json").exists():
                continue
            seen.add(folder.name)
            try:
                found.append(read_model_info(folder))
            except ModelError as exc:
                found.append(exc)
    return found


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A model folder from a name on the search path or a path; raises ModelError naming what exists."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate
    if candidate.is_file():
        if candidate.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(_pickle_sentence(candidate))
        return candidate.parent
    for root in model_search_path():
        if (root / str(name_or_path)).is_dir():
            return root / str(name_or_path)
    names = sorted(m.name for m in find_models() if isinstance(m, ModelInfo))
    known = ", ".join(names) if names else "none are installed"
    raise ModelError(f"There is no model called '{name_or_path}' (known models: {known}).")


def _pickle_sentence(path: Path) -> str:
    return (
        f"'{path.name}' is a pickle file, which GAN Studio never opens because loading it can run code; "
        "convert it to safetensors (model.json + generator.safetensors)."
    )


def _require(data: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ModelError(f"{where} has no '{key}' entry.")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ModelError(f"{where}: '{key}' has the wrong type ({type(value).__name__}).")
    return value


def read_model_info(folder: str | os.PathLike) -> ModelInfo:
    """Read and check ``model.json`` (no weights). Raises ModelError with one sentence."""
    folder = Path(folder)
    manifest = folder / "model.json"
    if not folder.is_dir():
        raise ModelError(f"The model folder '{folder}' does not exist.")
    if not manifest.exists():
        pickles = [p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise ModelError(_pickle_sentence(pickles[0]))
        raise ModelError(f"The model folder '{folder.name}' has no model.json.")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"The model.json of '{folder.name}' is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise ModelError(f"The model.json of '{folder.name}' must hold a JSON object.")
    where = f"The model.json of '{folder.name}'"
    fmt = data.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise ModelError(
            f"{where} uses format {fmt}; this version of GAN Studio reads format {FORMAT_VERSION}."
        )
    arch = _require(data, "architecture", dict, where)
    arch_id = _require(arch, "id", str, where + " (architecture)")
    if arch_id not in ARCHITECTURES:
        raise ModelError(
            f"'{folder.name}' needs the architecture '{arch_id}', which this version of GAN Studio does not know "
            f"(it knows {', '.join(ARCHITECTURES)})."
        )
    cond_data = _require(data, "conditioning", dict, where)
    kind = _require(cond_data, "kind", str, where + " (conditioning)")
    if kind == "text":
        conditioning = Conditioning(
            "text", _require(cond_data, "encoder", str, where), int(cond_data.get("embedding_dim", 384))
        )
    elif kind == "class":
        classes = tuple(str(c) for c in _require(cond_data, "classes", list, where))
        if not classes:
            raise ModelError(f"{where} lists no classes.")
        conditioning = Conditioning("class", classes=classes)
    else:
        raise ModelError(f"{where}: conditioning kind '{kind}' is unknown (use 'text' or 'class').")
    try:
        base = BaseConfig.from_json(_require(arch, "base", dict, where))
        up_data = arch.get("upsampler")
        upsampler = UpsamplerConfig.from_json(up_data) if up_data else None
    except TypeError as exc:
        raise ModelError(f"{where} has an unexpected architecture setting ({exc}).") from exc
    if conditioning.kind == "class" and base.num_classes != len(conditioning.classes):
        raise ModelError(
            f"{where}: the generator has {base.num_classes} classes but {len(conditioning.classes)} are named."
        )
    resolution = base.resolution * (upsampler.scale if upsampler else 1)
    declared = data.get("resolution", resolution)
    if declared != resolution:
        raise ModelError(f"{where} says {declared} px but its architecture makes {resolution} px images.")
    files = data.get("files", {})
    for value in files.values():
        if Path(str(value)).suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(_pickle_sentence(Path(str(value))))
    return ModelInfo(
        path=folder,
        name=str(data.get("name", folder.name)),
        version=str(data.get("version", "0")),
        architecture=arch_id,
        base=base,
        upsampler=upsampler,
        conditioning=conditioning,
        resolution=resolution,
        channels=int(data.get("channels", base.out_channels)),
        z_dim=base.z_dim,
        default_truncation=float(data.get("default_truncation", 1.0)),
        description=str(data.get("description", "")),
        license=str(data.get("license", "")),
        training_data=str(data.get("training_data", "")),
        metrics=dict(data.get("metrics", {})),
        raw=data,
    )


def _load_weights(module: nn.Module, path: Path, model_name: str) -> None:
    """Copy a safetensors file into ``module`` after checking every key and shape."""
    if not path.exists():
        raise ModelError(f"The model '{model_name}' is missing its weights file '{path.name}'.")
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
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})


def _file_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:8]


def load_model(name_or_path: str | os.PathLike) -> LoadedModel:
    """Load and validate a model folder (by name or path) onto the CPU, in eval mode."""
    info = read_model_info(resolve_model(name_or_path))
    files = info.raw.get("files", {})
    generator = BaseGenerator(info.base)
    weight_paths = [info.path / files.get("generator", "generator.safetensors")]
    _load_weights(generator, weight_paths[0], info.name)
    upsampler = None
    if info.upsampler is not None:
        upsampler = Upsampler(info.upsampler)
        weight_paths.append(info.path / files.get("upsampler", "upsampler.safetensors"))
        _load_weights(upsampler, weight_paths[1], info.name)
        upsampler.eval().requires_grad_(False)
    generator.eval().requires_grad_(False)
    return LoadedModel(info, generator, upsampler, _file_hash(weight_paths))


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
    save_file(_contiguous(generator), str(folder / "generator.safetensors"))
    if upsampler is not None:
        data["files"]["upsampler"] = "upsampler.safetensors"
        save_file(_contiguous(upsampler), str(folder / "upsampler.safetensors"))
    tmp = folder / "model.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(folder / "model.json")
    return folder


def _contiguous(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
