"""Parameters inside exported files: what made an image, written so that it can be read back and re-rendered.

Every exported image carries one JSON *document* (the request, model id and hash, device kind, app version,
size and, for animations, the recipe). Where it lives depends on the format:

- PNG: an iTXt chunk ``gan-studio`` with the document, plus a ``parameters`` text chunk in the one-line style
  other image tools show (``prompt`` newline ``Seed: 42, Truncation: 0.7, Size: 128x128, ...``). The
  ``parameters`` chunk is plain tEXt when the text is Latin-1 and iTXt (UTF-8) otherwise, because tEXt cannot
  hold emoji; Pillow's ``im.text`` returns it either way.
- WebP and JPEG: EXIF UserComment (``ASCII`` character code, the document as ASCII-only JSON) and an XMP packet
  holding the document and the one-line text, for tools that keep XMP but drop EXIF.
- GIF: the comment extension holds the document.
- MP4: a JSON sidecar next to the video (``clip.mp4.json``), because MP4 has no portable place for it.
- A folder of animation frames: ``animation.json`` inside it (each frame PNG also carries its own).

Schema history (``schema`` in the document):

- 0 (before 0.1.0): one flat JSON object in the same places, no ``schema`` key:
  ``{"prompt", "seed", "truncation", "model", "model_hash", "device", "version", "width", "height"}`` and an
  optional ``directions`` list of ``[index, scale]`` pairs.
- 1: ``{"schema": 1, "app": "gan-studio", "app_version", "model": {"id", "hash"}, "request":
  GenerationRequest.to_json(), "device", "size": [w, h], "animation": recipe or null}``.
- 2 (current): as 1; the request (and its interpolation end) may carry an explicit ``latent`` (an inverted
  picture): ``{"dtype": "float32" | "float16", "z": base64, "condition": base64, "source": file name}``,
  little-endian values whose count is checked before decoding (see ``ExplicitLatent.from_json``).
"""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ElementTree
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from PIL import ExifTags, Image, PngImagePlugin, UnidentifiedImageError

from studio import __version__
from studio.engine.requests import GenerationRequest, GenerationResult, RequestError
from studio.errors import UserError

SCHEMA = 2
APP_ID = "gan-studio"
PNG_JSON_KEY = "gan-studio"  # iTXt chunk with the full document
PNG_TEXT_KEY = "parameters"  # one-line text other tools show
XMP_NAMESPACE = "urn:gan-studio:metadata:1"
SIDECAR_SUFFIX = ".json"  # clip.mp4 -> clip.mp4.json
RECIPE_FILE = "animation.json"  # in a folder of animation frames
READ_FORMATS = ("PNG", "WEBP", "JPEG", "GIF")  # JPEG also opens MPO (multi-picture JPEG)
MAX_VERIFIED_PIXELS = 64_000_000  # beyond this, metadata is read without decoding the pixels
MAX_DOCUMENT_CHARS = 4_000_000  # a document is a few KB; refuse to parse anything absurdly large

_EXIF_ASCII = b"ASCII\0\0\0"
_EXIF_UNICODE = b"UNICODE\0"
_EXIF_UNDEFINED = b"\0" * 8


class MetadataError(UserError):
    """A file carries no readable GAN Studio parameters; ``str(error)`` is one sentence for a person."""


@dataclass(frozen=True)
class ImageParameters:
    """Everything stored in a file about how it was made; ``request`` re-renders it on ``device`` kind."""

    request: GenerationRequest
    model_hash: str = ""
    device: str = "cpu"
    app_version: str = __version__
    size: tuple[int, int] = (0, 0)  # (width, height) the engine rendered, before any export upscaling
    schema: int = SCHEMA
    animation: dict[str, Any] | None = None


def parameters_for(result: GenerationResult) -> ImageParameters:
    """The parameters that reproduce ``result``: its one-image request, model hash, device kind and size."""
    size = (0, 0)
    if result.image is not None:
        height, width = result.image.shape[:2]
        size = (int(width), int(height))
    return ImageParameters(
        request=result.request,
        model_hash=result.model_hash,
        device=device_kind(result.device),
        app_version=__version__,
        size=size,
        schema=SCHEMA,
    )


def device_kind(device: str) -> str:
    """``cuda:1`` -> ``cuda``: pixels depend on the kind of device, not which one of them."""
    return (device or "cpu").split(":", 1)[0].strip().lower() or "cpu"


# ----------------------------------------------------------------------------------------------- writing


def to_document(parameters: ImageParameters) -> dict[str, Any]:
    """The current-schema JSON document stored in files (and printed by ``gan-studio inspect --json``)."""
    return {
        "schema": SCHEMA,
        "app": APP_ID,
        "app_version": parameters.app_version,
        "model": {"id": parameters.request.model, "hash": parameters.model_hash},
        "request": parameters.request.to_json(),
        "device": parameters.device,
        "size": [int(parameters.size[0]), int(parameters.size[1])],
        "animation": parameters.animation,
    }


def document_json(parameters: ImageParameters) -> str:
    """The document as compact ASCII-only JSON, so it survives EXIF's ASCII and Latin-1-minded tools."""
    return json.dumps(to_document(parameters), ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def parameters_text(parameters: ImageParameters) -> str:
    """The one-line summary other tools show: the prompt, a newline, then ``Key: value`` pairs."""
    request = parameters.request
    width, height = parameters.size
    fields = [
        f"Seed: {request.seed}",
        f"Truncation: {request.truncation:g}",
        f"Size: {width}x{height}",
        f"Model: {_quoted(request.model)}",
        f"Model hash: {parameters.model_hash or 'unknown'}",
    ]
    if request.directions:
        fields.append("Directions: " + _quoted(" ".join(f"{i}:{s:+g}" for i, s in request.directions)))
    for concept in request.concepts:
        fields.append(f"Concept: {_quoted(f'{concept.negative} -> {concept.positive} x{concept.scale:g}')}")
    if request.interpolate_to is not None:
        end = request.interpolate_to
        fields.append(f"Interpolate to: {_quoted(end.prompt)}")
        fields.append(f"Seed B: {end.seed}")
        fields.append(f"t: {request.t:g}")
    if request.latent is not None:
        fields.append(f"Latent: {_quoted('inverted from ' + (request.latent.source or 'a picture'))}")
    if parameters.animation:
        fields.append(f"Animation: {parameters.animation.get('frames', '?')} frames")
    fields.append(f"Device: {parameters.device}")
    fields.append(f"Version: {parameters.app_version}")
    return f"{request.prompt}\n{', '.join(fields)}"


def _quoted(value: str) -> str:
    # The common one-line style quotes values that hold its separators, JSON-style.
    if any(ch in value for ch in ',:"\n'):
        return json.dumps(value, ensure_ascii=False)
    return value


def png_info(parameters: ImageParameters) -> PngImagePlugin.PngInfo:
    """PNG text chunks: ``parameters`` (tEXt when Latin-1, else iTXt) and the ``gan-studio`` iTXt document."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_TEXT_KEY, parameters_text(parameters))
    info.add_itxt(PNG_JSON_KEY, document_json(parameters), zip=True)
    return info


def exif_for(parameters: ImageParameters) -> Image.Exif:
    """EXIF with the document in UserComment (ASCII character code), for WebP and JPEG."""
    exif = Image.Exif()
    exif[ExifTags.Base.Software] = f"GAN Studio {parameters.app_version}"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = _EXIF_ASCII + document_json(
        parameters
    ).encode("ascii")
    return exif


def xmp_packet(parameters: ImageParameters) -> bytes:
    """An XMP packet with the one-line text as dc:description and the document as ganstudio:parameters."""
    description = escape(parameters_text(parameters))
    document = escape(document_json(parameters))
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        f' xmlns:ganstudio="{XMP_NAMESPACE}">'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li></rdf:Alt></dc:description>'
        f"<ganstudio:parameters>{document}</ganstudio:parameters>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def save_options(parameters: ImageParameters, image_format: str) -> dict[str, Any]:
    """Keyword arguments for ``Image.save`` that embed ``parameters`` in ``image_format`` (png/webp/jpeg/gif)."""
    image_format = image_format.lower()
    if image_format == "png":
        return {"pnginfo": png_info(parameters)}
    if image_format in ("webp", "jpeg", "jpg"):
        return {"exif": exif_for(parameters), "xmp": xmp_packet(parameters)}
    if image_format == "gif":
        return {"comment": document_json(parameters).encode("ascii")}
    raise ValueError(f"no metadata layout for {image_format!r}")


def sidecar_path(path: str | Path) -> Path:
    """Where the JSON sidecar of a file without embedded metadata (MP4) lives: ``clip.mp4.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def sidecar_json(parameters: ImageParameters) -> str:
    """The sidecar text: the document, indented for people who open it."""
    return json.dumps(to_document(parameters), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def model_requirement(parameters: ImageParameters, model_name: str, model_hash: str) -> str | None:
    """None if the loaded model (name, hash) is the one that made the file, else a sentence saying what's needed."""
    wanted, wanted_hash = parameters.request.model, parameters.model_hash
    hash_note = f" (hash {wanted_hash})" if wanted_hash else ""
    if wanted != model_name:
        return (
            f"This file was made with the model '{wanted}'{hash_note}, but '{model_name}' is loaded; "
            f"install or open '{wanted}' to re-render it."
        )
    if wanted_hash and model_hash and wanted_hash != model_hash:
        return (
            f"This file was made with another version of '{wanted}' (hash {wanted_hash}, loaded {model_hash}); "
            "it will re-render, but the picture may differ."
        )
    return None


# ----------------------------------------------------------------------------------------------- reading


def read_parameters(path: str | Path) -> ImageParameters:
    """Read the parameters stored in a PNG, WebP, JPEG or GIF (or an MP4's sidecar); raise MetadataError."""
    path = Path(path)
    name = path.name or str(path)
    if path.suffix.lower() == ".mp4":
        return _read_sidecar(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError) as exc:  # e.g. a NUL character in a pasted path
        raise MetadataError(f"{str(path)!r} is not a usable file path; check the name.") from exc
    if not exists:
        raise MetadataError(f"There is no file at {path}; check the name and folder.")
    if is_dir:
        if (path / RECIPE_FILE).is_file():  # a folder of animation frames
            return _read_sidecar(path / RECIPE_FILE)
        raise MetadataError(f"{path} is a folder, not an image; choose an exported image file.")
    if path.suffix.lower() == ".json":  # an MP4's sidecar or a frame folder's animation.json
        return _read_sidecar(path)
    try:
        # Only the formats GAN Studio writes: other plugins (EPS runs Ghostscript) have no business here.
        with Image.open(path, formats=READ_FORMATS) as image:
            verify = image.width * image.height <= MAX_VERIFIED_PIXELS
            if verify:
                image.load()  # decodes the first frame, so a cut-off file is caught here, not later
            # PNG ``text`` also holds chunks after the pixels but loads them; ``info`` has those before.
            texts = image.text if verify and isinstance(getattr(image, "text", None), dict) else image.info
            raw_documents = list(_embedded_documents(image, texts))
            other_tool_text = PNG_TEXT_KEY in texts
    except UnidentifiedImageError as exc:
        raise MetadataError(
            f"{name} is not an image GAN Studio can read; it may be damaged or another kind of file."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise MetadataError(f"{name} is too large to be an image GAN Studio exported.") from exc
    except (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error) as exc:
        raise MetadataError(
            f"{name} is damaged or incomplete (it may have been cut off while copying); export it again."
        ) from exc
    if raw_documents:
        return _parse_document(raw_documents[0], name)
    if other_tool_text:
        raise MetadataError(
            f"{name} has generation notes from another tool but no GAN Studio parameters, so it cannot be restored."
        )
    raise MetadataError(
        f"{name} carries no GAN Studio parameters; only images exported from GAN Studio can be restored."
    )


def _embedded_documents(image: Image.Image, texts: dict):
    """Yield the raw document texts a file carries, most trusted first (an image may carry several copies)."""
    if isinstance(texts.get(PNG_JSON_KEY), str):
        yield texts[PNG_JSON_KEY]
    # GIF comments and EXIF UserComment are shared with other tools: only a JSON object can be ours.
    comment = image.info.get("comment")
    if isinstance(comment, bytes):
        comment = comment.decode("utf-8", "replace")
    if isinstance(comment, str) and comment.lstrip().startswith("{"):
        yield comment
    try:
        user_comment = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not hide an intact XMP copy
        user_comment = None
    decoded = _decode_user_comment(user_comment)
    if decoded and decoded.lstrip().startswith("{"):
        yield decoded
    xmp = image.info.get("xmp")
    if isinstance(xmp, (bytes, str)) and xmp:
        document = _document_from_xmp(xmp)
        if document:
            yield document


def _decode_user_comment(value: object) -> str | None:
    """EXIF UserComment is 8 bytes naming the encoding, then the text."""
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes) or len(value) < 8:
        return None
    head, body = value[:8], value[8:]
    if head == _EXIF_UNICODE:
        for encoding in ("utf-16", "utf-16-be", "utf-16-le"):
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError:
                continue
            if text.lstrip().startswith("{"):
                return text
        return None
    if head in (_EXIF_ASCII, _EXIF_UNDEFINED):
        return body.rstrip(b"\0").decode("utf-8", "replace")
    return None


def _document_from_xmp(xmp: bytes | str) -> str | None:
    # The stdlib parser resolves no external entities, and expat >= 2.4.1 caps entity expansion.
    if len(xmp) > MAX_DOCUMENT_CHARS:
        return None
    try:
        root = ElementTree.fromstring(xmp)
    except ElementTree.ParseError:
        return None
    element = root.find(f".//{{{XMP_NAMESPACE}}}parameters")
    return element.text if element is not None and element.text else None


def _read_sidecar(path: Path) -> ImageParameters:
    sidecar = path if path.suffix.lower() == ".json" else sidecar_path(path)
    if not sidecar.is_file():
        raise MetadataError(
            f"{path.name} has no parameters file beside it ({sidecar.name}); keep the two files together."
        )
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{sidecar.name} could not be read; it may be damaged.") from exc
    return _parse_document(text, sidecar.name)


def _parse_document(raw: str, name: str) -> ImageParameters:
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise MetadataError(
            f"The parameters in {name} are too large to be GAN Studio's; the file may be damaged."
        )
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MetadataError(
            f"The parameters in {name} are damaged (not valid JSON); export the image again."
        ) from exc
    if not isinstance(document, dict):
        raise MetadataError(f"The parameters in {name} are not in a layout GAN Studio knows.")
    schema = document.get("schema", 0)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
        raise MetadataError(f"The parameters in {name} have an unknown schema version ({schema!r}).")
    if schema > SCHEMA:
        raise MetadataError(
            f"{name} was made by a newer GAN Studio (parameters schema {schema}); update GAN Studio to restore it."
        )
    try:
        parameters = _from_schema0(document) if schema == 0 else _from_schema1(document, schema)
        parameters.request.validated()
    except RequestError as exc:
        raise MetadataError(f"The parameters in {name} cannot be used: {_sentence_body(exc)}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MetadataError(f"The parameters in {name} are incomplete or malformed ({exc!s}).") from exc
    return parameters


def _from_schema1(document: dict[str, Any], schema: int = 1) -> ImageParameters:
    """Schemas 1 and 2 share a layout (2 adds the request's optional explicit latent)."""
    request_data = document["request"]
    if not isinstance(request_data, dict):
        raise TypeError("'request' is not an object")
    model = document.get("model") or {}
    if not isinstance(model, dict):
        raise TypeError("'model' is not an object")
    animation = document.get("animation")
    if animation is not None and not isinstance(animation, dict):
        raise TypeError("'animation' is not an object")
    return ImageParameters(
        request=GenerationRequest.from_json(request_data),
        model_hash=str(model.get("hash", "")),
        device=device_kind(str(document.get("device", "cpu"))),
        app_version=str(document.get("app_version", "")),
        size=_size(document.get("size", (0, 0))),
        schema=schema,
        animation=animation,
    )


def _from_schema0(document: dict[str, Any]) -> ImageParameters:
    """Schema 0: a flat object, sliders as ``directions``, no concepts or interpolation."""
    request = GenerationRequest.from_json(
        {
            "prompt": document["prompt"],
            "seed": document.get("seed", 0),
            "truncation": document.get("truncation", 1.0),
            "directions": document.get("directions", ()),
            "model": document.get("model", "emoji"),
        }
    )
    return ImageParameters(
        request=request,
        model_hash=str(document.get("model_hash", "")),
        device=device_kind(str(document.get("device", "cpu"))),
        app_version=str(document.get("version", "")),
        size=(int(document.get("width", 0)), int(document.get("height", 0))),
        schema=0,
        animation=None,
    )


def _size(value: object) -> tuple[int, int]:
    width, height = value  # type: ignore[misc]
    return int(width), int(height)


def _sentence_body(exc: Exception) -> str:
    text = str(exc).strip()
    return text[:1].lower() + text[1:] if text else "they are not valid."
