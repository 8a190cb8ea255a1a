"""Export images as PNG, WebP or JPEG with their parameters embedded, under safe names, all or nothing.

The pixels written at scale 1 without a background are exactly the engine's pixels for PNG and lossless WebP
(WebP is saved with ``exact`` so colours under transparent pixels are kept), which is what makes a restored
file re-render to identical data.
"""

from __future__ import annotations

import io
import string
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path, PurePath

import numpy as np
from PIL import Image, ImageColor

from studio.engine.requests import GenerationResult
from studio.io.files import ExportError, safe_name_part, write_new_file
from studio.io.metadata import ImageParameters, exif_for, parameters_for, save_options, xmp_packet

__all__ = [
    "ExportError",
    "ExportOptions",
    "export_image",
    "export_result",
    "file_stem",
    "FORMATS",
    "TEMPLATE_FIELDS",
]

FORMATS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}
RESAMPLERS = {"nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
TEMPLATE_FIELDS = ("prompt", "seed", "index", "date", "model")
DEFAULT_TEMPLATE = "{prompt}_{seed}"
MAX_SCALE = 8
JPEG_SEGMENT_LIMIT = 65_000  # an EXIF or XMP segment in a JPEG holds at most 64 KiB
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ExportOptions:
    """How to write an image. ``background`` None keeps alpha (PNG, WebP); JPEG is always flattened."""

    format: str = "png"  # png | webp | jpeg
    scale: int = 1  # integer upscaling, 1..8
    resample: str = "nearest"  # nearest | lanczos
    background: Colour | str | None = None  # "#rrggbb", a colour name or (r, g, b); None keeps alpha
    quality: int = 95  # JPEG and lossy WebP quality (lossless WebP: encoder effort), 1..100
    lossless: bool = True  # WebP only
    template: str = DEFAULT_TEMPLATE  # uses {prompt} {seed} {index} {date} {model}

    def validated(self) -> ExportOptions:
        """Return a normalised copy (``jpg`` -> ``jpeg``, colours as RGB tuples), or raise ExportError."""
        image_format = str(self.format).lower().lstrip(".")
        image_format = "jpeg" if image_format == "jpg" else image_format
        if image_format not in FORMATS:
            raise ExportError(f"GAN Studio cannot export {self.format!r} files; choose PNG, WebP or JPEG.")
        if (
            not isinstance(self.scale, int)
            or isinstance(self.scale, bool)
            or not 1 <= self.scale <= MAX_SCALE
        ):
            raise ExportError(
                f"The export scale must be a whole number from 1 to {MAX_SCALE} (got {self.scale!r})."
            )
        if self.resample not in RESAMPLERS:
            raise ExportError(f"Upscaling can use 'nearest' or 'lanczos', not {self.resample!r}.")
        if (
            not isinstance(self.quality, int)
            or isinstance(self.quality, bool)
            or not 1 <= self.quality <= 100
        ):
            raise ExportError(
                f"The export quality must be a whole number from 1 to 100 (got {self.quality!r})."
            )
        check_template(self.template)
        return replace(self, format=image_format, background=parse_colour(self.background))

    @property
    def suffix(self) -> str:
        return FORMATS[self.validated().format]


def parse_colour(colour: Colour | str | None) -> Colour | None:
    """``"#202020"``, ``"white"`` or ``(32, 32, 32)`` -> an RGB tuple; None stays None."""
    if colour is None:
        return None
    try:
        if isinstance(colour, str):
            rgb = ImageColor.getrgb(colour)
        else:
            rgb = tuple(int(c) for c in colour)
        if len(rgb) == 4:
            rgb = rgb[:3]
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ValueError(colour)
    except (ValueError, TypeError) as exc:
        raise ExportError(
            f"{colour!r} is not a colour; use a name such as 'white' or a code such as '#202020'."
        ) from exc
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def check_template(template: str) -> None:
    """Raise ExportError unless ``template`` only uses the known fields."""
    allowed = ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
    if not isinstance(template, str) or not template.strip():
        raise ExportError(f"The file-name template is empty; use for example {DEFAULT_TEMPLATE}.")
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ExportError(
            f"The file-name template {template!r} has an unmatched brace; use fields like {allowed}."
        ) from exc
    for field in fields:
        if field not in TEMPLATE_FIELDS:
            raise ExportError(f"The file-name template uses {{{field}}}, which is not known; use {allowed}.")


def file_stem(
    parameters: ImageParameters, options: ExportOptions, index: int = 0, when: datetime | None = None
) -> str:
    """The file name (without suffix) that ``options.template`` gives; every field is made name-safe."""
    check_template(options.template)
    request = parameters.request
    values = {
        "prompt": safe_name_part(request.prompt, max_chars=60) or "image",
        "seed": request.seed,
        "index": index,
        "date": (when or datetime.now()).strftime("%Y-%m-%d"),
        # A model given as a folder path contributes its folder name, never its path.
        "model": safe_name_part(PurePath(request.model.replace("\\", "/")).name, max_chars=40) or "model",
    }
    try:
        return options.template.format(**values)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ExportError(
            f"The file-name template {options.template!r} cannot be filled in ({exc})."
        ) from exc


def export_result(
    result: GenerationResult,
    folder: str | Path,
    options: ExportOptions | None = None,
    index: int | None = None,
) -> Path:
    """Export one engine result with its parameters; ``index`` defaults to the result's index in its batch."""
    if not result.ok or result.image is None:
        reason = f" ({result.error})" if result.error else ""
        raise ExportError(f"This image was not rendered{reason}, so there is nothing to export.")
    return export_image(
        result.image, parameters_for(result), folder, options, result.index if index is None else index
    )


def export_image(
    image_rgba_uint8: np.ndarray,
    parameters: ImageParameters,
    folder: str | Path,
    options: ExportOptions | None = None,
    index: int = 0,
) -> Path:
    """Write ``image_rgba_uint8`` (H x W x 4 straight alpha) to a new file in ``folder``; return its path."""
    options = (options or ExportOptions()).validated()
    picture = to_pil(image_rgba_uint8)
    picture = upscale(picture, options.scale, options.resample)
    data = encode(picture, parameters, options)
    return write_new_file(folder, file_stem(parameters, options, index), FORMATS[options.format], data)


def to_pil(image_rgba_uint8: np.ndarray) -> Image.Image:
    """An H x W x 4 (or x 3) uint8 array as a Pillow image."""
    array = np.asarray(image_rgba_uint8)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 4 uint8 array, got {array.dtype} {array.shape}")
    return Image.fromarray(np.ascontiguousarray(array), "RGBA" if array.shape[2] == 4 else "RGB")


def upscale(picture: Image.Image, scale: int, resample: str = "nearest") -> Image.Image:
    """Integer upscaling; Pillow premultiplies alpha for Lanczos, so transparent colours do not bleed."""
    if scale == 1:
        return picture
    return picture.resize((picture.width * scale, picture.height * scale), RESAMPLERS[resample])


def flatten(picture: Image.Image, background: Colour) -> Image.Image:
    """Composite over an opaque colour; the result is RGB."""
    if picture.mode != "RGBA":
        return picture.convert("RGB")
    base = Image.new("RGBA", picture.size, (*background, 255))
    return Image.alpha_composite(base, picture).convert("RGB")


def encode(picture: Image.Image, parameters: ImageParameters, options: ExportOptions) -> bytes:
    """The complete file in memory, so the disk is only touched by one write."""
    options = options.validated()
    image_format = options.format
    background = options.background
    if image_format == "jpeg" and background is None:
        background = (255, 255, 255)  # JPEG has no alpha
    if background is not None:
        picture = flatten(picture, background)
    buffer = io.BytesIO()
    metadata = save_options(parameters, image_format)
    if image_format == "png":
        picture.save(buffer, "PNG", **metadata)
    elif image_format == "webp":
        picture.save(
            buffer,
            "WEBP",
            lossless=options.lossless,
            quality=options.quality,
            exact=True,
            method=4,
            **metadata,
        )
    else:
        if (
            len(exif_for(parameters).tobytes()) > JPEG_SEGMENT_LIMIT
            or len(xmp_packet(parameters)) > JPEG_SEGMENT_LIMIT
        ):
            raise ExportError(
                "These parameters are too long to fit in a JPEG file; export as PNG or WebP instead."
            )
        picture.save(buffer, "JPEG", quality=options.quality, **metadata)
    return buffer.getvalue()
