"""The window's bridge to studio.io: export, metadata for drags and the clipboard, restore from a file.

studio.io does the writing (parameters embedded, temp-file-and-rename, safe names). Where it is missing (an
older checkout) a plain PNG is written instead, so the window keeps working.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from studio.engine.requests import GenerationRequest, RequestError

try:  # studio.io is optional at this layer: without it exports are plain PNGs
    from studio.io import metadata as _metadata
    from studio.io.export import ExportOptions, export_image
except ImportError:  # pragma: no cover - only in checkouts without studio.io
    _metadata = None
    ExportOptions = None  # type: ignore[assignment,misc]
    export_image = None  # type: ignore[assignment]

PARAMETERS_MIME = "application/x-gan-studio+json"


@dataclass(frozen=True)
class Picture:
    """An image and what made it: what every export, drag and copy needs."""

    image: np.ndarray
    request: GenerationRequest
    model_hash: str = ""
    device: str = "cpu"


def has_metadata_support() -> bool:
    return _metadata is not None


def _parameters(picture: Picture):
    height, width = picture.image.shape[:2]
    return _metadata.ImageParameters(
        request=picture.request,
        model_hash=picture.model_hash,
        device=_metadata.device_kind(picture.device),
        size=(int(width), int(height)),
    )


def export_pictures(pictures: list[Picture], folder: str | Path, options: object | None = None) -> list[Path]:
    """Write each picture to ``folder`` (never overwriting); raises ExportError/OSError with a sentence."""
    folder = Path(folder)
    written = []
    for index, picture in enumerate(pictures):
        if export_image is not None:
            written.append(export_image(picture.image, _parameters(picture), folder, options, index))
        else:
            written.append(write_png(picture, folder / f"{picture.request.seed}_{index}.png"))
    return written


def write_png(picture: Picture, path: Path) -> Path:
    """A PNG with the parameters embedded (when studio.io is present) at exactly ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = _metadata.save_options(_parameters(picture), "png") if _metadata is not None else {}
    tmp = path.with_name(path.name + ".partial")
    Image.fromarray(np.ascontiguousarray(picture.image)).save(tmp, format="PNG", **options)
    tmp.replace(path)
    return path


def drag_file(picture: Picture, name: str) -> Path:
    """A PNG in a private temporary folder for dragging onto a file manager."""
    folder = Path(tempfile.gettempdir()) / "gan-studio-drag"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60] or "image"
    return write_png(picture, folder / f"{safe}.png")


def parameters_text(picture: Picture) -> str:
    """The readable one-line parameters other tools show (or the request JSON without studio.io)."""
    if _metadata is not None:
        return _metadata.parameters_text(_parameters(picture))
    return json.dumps(picture.request.to_json(), ensure_ascii=False)


def parameters_json(picture: Picture) -> str:
    if _metadata is not None:
        return _metadata.document_json(_parameters(picture))
    return json.dumps({"request": picture.request.to_json()})


def read_request(path: str | Path) -> tuple[GenerationRequest, str]:
    """The request stored in an exported file and the model hash it names; ValueError with one sentence."""
    if _metadata is None:
        raise ValueError("Restoring from files needs the studio.io package, which this installation lacks.")
    try:
        parameters = _metadata.read_parameters(path)
    except _metadata.MetadataError as exc:
        raise ValueError(str(exc)) from exc
    return parameters.request, parameters.model_hash


def request_from_json_text(text: str) -> GenerationRequest | None:
    """A request from pasted parameters JSON (a document or a bare request), or None if it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("request"), dict):
        data = data["request"]
    if not isinstance(data, dict) or "prompt" not in data:
        return None
    try:
        return GenerationRequest.from_json(data)
    except RequestError:
        return None
