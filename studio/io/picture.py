"""Any picture a person brings, made ready for inversion: checked, decoded, oriented and letterboxed.

A file is checked before it costs anything: its size on disk by ``stat``, its pixel count from the header
(``Image.open`` reads only the header) against :data:`MAX_PICTURE_PIXELS`, before a single pixel is decoded.
Every mode Pillow opens becomes straight-alpha RGBA (palette with transparency, grey, 16-bit, CMYK), EXIF
rotation is applied, animations give their first frame, and the picture is letterboxed the way the emoji
dataset is (cropped to its visible part when it has transparency, centred on a transparent square, resized
premultiplied so edges keep no stray colour).
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from studio.errors import UserError

log = logging.getLogger(__name__)

MAX_PICTURE_PIXELS = 40_000_000  # 40 megapixels (e.g. 6300 x 6300); larger pictures are refused unread
MAX_PICTURE_BYTES = 200 * 1024 * 1024
PICTURE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
DECODE_SIDE = 512  # JPEG decodes straight to about this size (draft mode): the model sees 128 px at most


class PictureError(UserError):
    """A picture cannot be used; ``str(error)`` is one sentence for a person."""


@dataclass(frozen=True)
class Picture:
    """A letterboxed picture: ``image`` is ``size x size x 4`` straight-alpha uint8; ``name`` its file name."""

    image: np.ndarray
    name: str = ""


def read_picture(path: str | Path, size: int = 128) -> Picture:
    """Open any picture file, check it, and letterbox it to ``size``; raises PictureError with one sentence."""
    path = Path(path)
    name = path.name or str(path)
    try:
        stat = path.stat()
    except (OSError, ValueError) as exc:
        raise PictureError(f"There is no picture at {path}; check the name and folder.") from exc
    if path.is_dir():
        raise PictureError(f"{name} is a folder, not a picture.")
    if stat.st_size > MAX_PICTURE_BYTES:
        raise PictureError(
            f"{name} is {stat.st_size / 2**20:.0f} MB; pictures up to {MAX_PICTURE_BYTES // 2**20} MB can be used."
        )
    try:
        with Image.open(path, formats=PICTURE_FORMATS) as image:
            check_pixel_count(image.size, name)
            image.draft("RGB", (DECODE_SIDE, DECODE_SIDE))  # JPEG only: decode at a reduced scale
            rgba = to_rgba(image)
    except PictureError:
        raise
    except UnidentifiedImageError as exc:
        raise PictureError(
            f"{name} is not a picture GAN Studio can read (PNG, JPEG, WebP, GIF, BMP or TIFF)."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise PictureError(_too_large(name)) from exc
    except (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error, MemoryError) as exc:
        log.warning("could not decode %s", path, exc_info=True)
        raise PictureError(f"{name} is damaged or incomplete, so it cannot be read.") from exc
    return Picture(letterbox(rgba, size), name)


def picture_from_rgba(image: np.ndarray, name: str = "", size: int = 128) -> Picture:
    """A picture from pixels already in memory (a pasted image): ``H x W x 4`` or ``H x W x 3`` uint8."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8 or 0 in array.shape[:2]:
        raise PictureError("The pasted picture is empty or not in a form GAN Studio can read.")
    check_pixel_count((array.shape[1], array.shape[0]), name or "The pasted picture")
    mode = "RGBA" if array.shape[2] == 4 else "RGB"
    return Picture(letterbox(Image.fromarray(np.ascontiguousarray(array), mode).convert("RGBA"), size), name)


def check_pixel_count(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise PictureError(f"{name} has no pixels.")
    if width * height > MAX_PICTURE_PIXELS:
        raise PictureError(_too_large(name, width, height))


def _too_large(name: str, width: int = 0, height: int = 0) -> str:
    dims = f" ({width} x {height})" if width else ""
    return (
        f"{name}{dims} has more than {MAX_PICTURE_PIXELS // 1_000_000} million pixels; "
        "scale it down and try again."
    )


def to_rgba(image: Image.Image) -> Image.Image:
    """The first frame, upright, as straight-alpha 8-bit RGBA, whatever mode the file stores."""
    image.seek(0)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block costs the rotation, not the picture
        log.warning("ignored an unreadable EXIF orientation", exc_info=True)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (and 32-bit integer) grey: scale the file's full range down to 8 bits.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        image = Image.fromarray(np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "CMYK":
        image = image.convert("RGB")
    return image.convert("RGBA")  # palette and grey keep their transparent colour as alpha


def letterbox(image: Image.Image, size: int) -> np.ndarray:
    """Crop to the visible part (when there is transparency), centre on a transparent square, resize.

    The same steps the emoji dataset applies to its renders, so a picture meets the model where it was trained.
    """
    alpha = image.getchannel("A")
    box = alpha.getbbox()
    if box is None:
        raise PictureError("The picture is fully transparent; there is nothing to invert.")
    if alpha.getextrema()[0] < 255:
        image = image.crop(box)
    side = max(image.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    resized = square.convert("RGBa").resize((size, size), Image.Resampling.LANCZOS).convert("RGBA")
    return np.asarray(resized, np.uint8).copy()


def shrink(image: np.ndarray, size: int) -> np.ndarray:
    """A letterboxed picture at a smaller square size (premultiplied box filter, as the dataset's 32 px)."""
    if image.shape[0] == size:
        return image
    pil = Image.fromarray(np.ascontiguousarray(image), "RGBA").convert("RGBa")
    return np.asarray(pil.resize((size, size), Image.Resampling.BOX).convert("RGBA"), np.uint8).copy()
