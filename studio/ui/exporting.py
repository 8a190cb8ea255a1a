"""The window's bridge to studio.io: export, metadata for drags and the clipboard, restore from a file.

studio.io does the writing (parameters embedded, temp-file-and-rename, safe names); this module only turns
the window's pictures into its calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from studio.engine.requests import GenerationRequest
from studio.io import metadata as _metadata
from studio.io.export import export_image
from studio.paths import user_data_dir

PARAMETERS_MIME = "application/x-gan-studio+json"


@dataclass(frozen=True)
class Picture:
    """An image and what made it: what every export, drag and copy needs."""

    image: np.ndarray
    request: GenerationRequest
    model_hash: str = ""
    device: str = "cpu"


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
        written.append(export_image(picture.image, _parameters(picture), folder, options, index))
    return written


def write_png(picture: Picture, path: Path) -> Path:
    """A PNG with the parameters embedded at exactly ``path`` (replacing it: used for drag-and-drop copies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = _metadata.save_options(_parameters(picture), "png")
    tmp = path.with_name(path.name + ".partial")
    Image.fromarray(np.ascontiguousarray(picture.image)).save(tmp, format="PNG", **options)
    tmp.replace(path)
    return path


DRAG_KEEP_SECONDS = 24 * 3600  # a file manager copies a dropped file at once; a day is plenty


def drag_file(picture: Picture, name: str) -> Path:
    """A PNG in the user's own ``drag-out`` folder for dragging onto a file manager; files older than a
    day are removed on the way, so the folder never grows."""
    folder = user_data_dir() / "drag-out"
    cutoff = time.time() - DRAG_KEEP_SECONDS
    for old in folder.glob("*.png") if folder.is_dir() else ():
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another window may have just removed it
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60] or "image"
    return write_png(picture, folder / f"{safe}.png")


def parameters_text(picture: Picture) -> str:
    """The readable one-line parameters other tools show."""
    return _metadata.parameters_text(_parameters(picture))


def parameters_json(picture: Picture) -> str:
    return _metadata.document_json(_parameters(picture))


def read_request(path: str | Path) -> tuple[GenerationRequest, str]:
    """The request stored in an exported file and the model hash it names; ValueError with one sentence."""
    try:
        parameters = _metadata.read_parameters(path)
    except _metadata.MetadataError as exc:
        raise ValueError(str(exc)) from exc
    return parameters.request, parameters.model_hash


def request_from_json_text(text: str) -> GenerationRequest | None:
    """A request from pasted parameters JSON (a document or a bare request), or None if the text is not one;
    ValueError with one sentence when it is GAN Studio's but cannot be used."""
    try:
        parameters = _metadata.parameters_from_text(text)
    except _metadata.MetadataError as exc:
        raise ValueError(str(exc)) from exc
    return parameters.request if parameters is not None else None
