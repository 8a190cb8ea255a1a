"""The window's bridge to studio.io: export, metadata for drags and the clipboard, restore from a file.

studio.io does the writing (parameters embedded, temp-file-and-rename, safe names); this module turns the
window's pictures into its calls. Encoding and writing files runs on one worker thread (:func:`files_worker`),
never on the UI thread: exports and animations are awaited from asyncio tasks one file at a time (progress
and cancel between files), and a drag's PNGs are written while the mouse moves, the drop waiting for them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QUrl

from studio.atomic import remove_stale_temps, write_atomically
from studio.engine.requests import GenerationRequest
from studio.io import metadata as _metadata
from studio.io.export import export_image
from studio.paths import user_data_dir
from studio.session.gallery_store import GalleryItem, decode_png
from studio.ui.images import qimage_from_rgba

log = logging.getLogger(__name__)

PARAMETERS_MIME = "application/x-gan-studio+json"
DRAG_WRITE_TIMEOUT_S = 30.0

_files_worker: concurrent.futures.ThreadPoolExecutor | None = None


def files_worker() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that encodes and writes the window's files, in the order they were asked for."""
    global _files_worker
    if _files_worker is None:
        _files_worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gan-studio-files")
    return _files_worker


@dataclass(frozen=True)
class Picture:
    """An image and what made it: what every export, drag and copy needs."""

    image: np.ndarray
    request: GenerationRequest
    model_hash: str = ""
    device: str = "cpu"
    exact: bool = True  # False: a CPU live preview, re-rendered exactly before it is written (see renderer)


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


def export_stored(
    png: bytes, item: GalleryItem, folder: str | Path, options: object | None, index: int
) -> Path:
    """Export a gallery item from its stored PNG (decoded here: this runs on the files worker)."""
    picture = Picture(decode_png(png), item.request, item.model_hash, item.device)
    return export_image(picture.image, _parameters(picture), folder, options, index)


def write_png(picture: Picture, path: Path) -> Path:
    """A PNG with the parameters embedded at exactly ``path`` (replacing it: used for drag-and-drop copies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = _metadata.save_options(_parameters(picture), "png")
    picture_file = Image.fromarray(np.ascontiguousarray(picture.image))
    return write_atomically(path, lambda temp: picture_file.save(temp, format="PNG", **options))


DRAG_KEEP_SECONDS = 24 * 3600  # a file manager copies a dropped file at once; a day is plenty


def drag_folder() -> Path:
    return user_data_dir() / "drag-out"


def remove_unfinished_files(export_folder: str | Path | None = None) -> int:
    """Remove what writers killed mid-write left (hidden ``.partial`` files) in the folders the window
    writes to; files another running window is still writing are kept. Returns how many were removed."""
    from studio.paths import user_config_dir

    folders = [user_data_dir(), drag_folder(), user_config_dir()]
    if export_folder:
        folders.append(Path(export_folder))
    return sum(remove_stale_temps(folder) for folder in folders)


def drag_path(name: str) -> Path:
    """Where the drag-out PNG called ``name`` is written."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60] or "image"
    return drag_folder() / f"{safe}.png"


def remove_old_drag_files() -> None:
    """Drag-out files older than a day go, so the folder never grows."""
    folder = drag_folder()
    cutoff = time.time() - DRAG_KEEP_SECONDS
    for old in folder.glob("*.png") if folder.is_dir() else ():
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another window may have just removed it


def write_drag_files(entries: Sequence[tuple[bytes, GalleryItem, Path]]) -> list[Path]:
    """(files worker) Clear old drag files, then write each stored PNG with its parameters at its path."""
    remove_old_drag_files()
    written = []
    for png, item, path in entries:
        picture = Picture(decode_png(png), item.request, item.model_hash, item.device)
        written.append(write_png(picture, path))
    return written


class DragMimeData(QMimeData):
    """A drag's data whose files are still being written: asking for the file list waits for them."""

    def __init__(self, writes: concurrent.futures.Future):
        super().__init__()
        self.writes = writes

    def retrieveData(self, mime_type: str, preferred_type):  # noqa: N802 - Qt's virtual
        if mime_type == "text/uri-list":
            try:
                self.writes.result(DRAG_WRITE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - the drop then finds no file; the reason is in the log
                log.warning("drag-out files could not be written", exc_info=True)
        return super().retrieveData(mime_type, preferred_type)


def drag_mime_data(entries: Sequence[tuple[bytes, GalleryItem, str]]) -> QMimeData:
    """Mime data for dragging stored images ``(png, item, name)`` onto a file manager or another app.

    The PNG files (parameters embedded) are written on the files worker while the mouse moves; the image
    and the parameters of the first item are there at once for apps that take those instead.
    """
    if not entries:
        return QMimeData()
    paths = [drag_path(name) for _, _, name in entries]
    mime = DragMimeData(
        files_worker().submit(
            write_drag_files, [(p, i, t) for (p, i, _), t in zip(entries, paths, strict=True)]
        )
    )
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    png, item, _ = entries[0]
    first = Picture(decode_png(png), item.request, item.model_hash, item.device)
    mime.setImageData(qimage_from_rgba(first.image))
    mime.setData(PARAMETERS_MIME, parameters_json(first).encode("utf-8"))
    return mime


def parameters_text(picture: Picture) -> str:
    """The readable one-line parameters other tools show."""
    return _metadata.parameters_text(_parameters(picture))


def parameters_json(picture: Picture) -> str:
    return _metadata.document_json(_parameters(picture))


def read_request(path: str | Path) -> tuple[GenerationRequest, str]:
    """The request stored in an exported file and the model hash it names; ValueError with one sentence
    (ForeignParameters, with the text, when the file carries another tool's notes)."""
    try:
        parameters = _metadata.read_parameters(path)
    except _metadata.ForeignParameters:
        raise  # another tool's notes: the window imports what maps
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
