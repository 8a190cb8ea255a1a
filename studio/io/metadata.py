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
- 2: as 1; the request (and its interpolation end) may carry an explicit ``latent`` (an inverted
  picture): ``{"dtype": "float32" | "float16", "z": base64, "condition": base64, "source": file name}``,
  little-endian values whose count is checked before decoding (see ``ExplicitLatent.from_json``).
- 3: as 2; the request may carry ``variety`` (0 to 1, absent at 0).
- 4 (current): as 3; the request may carry ``spread: true`` (absent when off) and ``strength`` (0 to 2,
  absent at 1).
"""

from __future__ import annotations

import io
import json
import logging
import struct
import warnings
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
from studio.io.document_fields import (
    checked_animation,
    checked_app_version,
    checked_device,
    checked_model_hash,
    checked_size,
    device_kind,
)
from studio.logs import log_caught
from studio.untrusted import UntrustedInputError, parse_json, read_regular_file, shown, xml_text

SCHEMA = 4
APP_ID = "gan-studio"
PNG_JSON_KEY = "gan-studio"  # iTXt chunk with the full document
PNG_TEXT_KEY = "parameters"  # one-line text other tools show
XMP_NAMESPACE = "urn:gan-studio:metadata:1"
SIDECAR_SUFFIX = ".json"  # clip.mp4 -> clip.mp4.json
RECIPE_FILE = "animation.json"  # in a folder of animation frames
READ_FORMATS = ("PNG", "WEBP", "JPEG", "GIF")  # JPEG also opens MPO (multi-picture JPEG)
MAX_VERIFIED_PIXELS = 64_000_000  # beyond this, metadata is read without decoding the pixels
MAX_DOCUMENT_CHARS = 4_000_000  # a document is a few KB; refuse to parse anything absurdly large
MAX_IMAGE_BYTES = 256 << 20  # an exported image is a few MB even at 8x; larger files are not read

_log = logging.getLogger(__name__)

_EXIF_ASCII = b"ASCII\0\0\0"
_EXIF_UNICODE = b"UNICODE\0"
_EXIF_UNDEFINED = b"\0" * 8


class MetadataError(UserError):
    """A file carries no readable GAN Studio parameters; ``str(error)`` is one sentence for a person."""


class ForeignParameters(MetadataError):
    """The file carries another tool's ``parameters`` text (``text``) instead of GAN Studio's document."""

    def __init__(self, sentence: str, text: str):
        super().__init__(sentence)
        self.text = text


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
        *([f"Variety: {request.variety:g}"] if request.variety else []),
        *(["Spread: on"] if request.spread else []),
        *([f"Strength: {request.strength:g}"] if request.strength != 1.0 else []),
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
    # XML 1.0 cannot hold NUL, ESC and most other control characters a prompt may carry.
    description = escape(xml_text(parameters_text(parameters)))
    document = escape(xml_text(document_json(parameters)))
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


# ----------------------------------------------------------------------------------------------- reading


def read_parameters(path: str | Path) -> ImageParameters:
    """Read the parameters stored in a PNG, WebP, JPEG or GIF (or an MP4's sidecar); raise MetadataError.

    Any file is untrusted: it is checked to be a regular file of a sane size before it is read, every field
    is type- and range-checked, and every failure is one MetadataError sentence (logged with its traceback).
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # Pillow's warnings go to the log, never before the sentence
            try:
                return _read_parameters(Path(path))
            finally:
                for warning in caught:
                    _log.info("While reading %s: %s", shown(path), shown(warning.message, 200))
    except MetadataError as exc:
        log_caught(str(exc), _log)
        raise


def _read_parameters(path: Path) -> ImageParameters:
    name = shown(path.name or str(path))
    if path.suffix.lower() == ".mp4":
        return _read_sidecar(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError) as exc:  # e.g. a NUL character in a pasted path
        raise MetadataError(f"{shown(repr(str(path)))} is not a usable file path; check the name.") from exc
    if not exists:
        raise MetadataError(f"There is no file at {shown(path)}; check the name and folder.")
    if is_dir:
        if (path / RECIPE_FILE).is_file():  # a folder of animation frames
            return _read_sidecar(path / RECIPE_FILE)
        raise MetadataError(f"{shown(path)} is a folder, not an image; choose an exported image file.")
    if path.suffix.lower() == ".json":  # an MP4's sidecar or a frame folder's animation.json
        return _read_sidecar(path)
    data = _read_file(path, MAX_IMAGE_BYTES)
    try:
        # Only the formats GAN Studio writes: other plugins (EPS runs Ghostscript) have no business here.
        with Image.open(io.BytesIO(data), formats=READ_FORMATS) as image:
            verify = image.width * image.height <= MAX_VERIFIED_PIXELS
            if verify:
                image.load()  # decodes the first frame, so a cut-off file is caught here, not later
            # PNG ``text`` also holds chunks after the pixels but loads them; ``info`` has those before.
            texts = image.text if verify and isinstance(getattr(image, "text", None), dict) else image.info
            raw_documents = list(_embedded_documents(image, texts))
            other_tool_text = texts.get(PNG_TEXT_KEY)
    except UnidentifiedImageError as exc:
        raise MetadataError(
            f"{name} is not an image GAN Studio can read; it may be damaged or another kind of file."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise MetadataError(f"{name} is too large to be an image GAN Studio exported.") from exc
    except (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error, MemoryError) as exc:
        raise MetadataError(
            f"{name} is damaged or incomplete (it may have been cut off while copying); export it again."
        ) from exc
    if raw_documents:
        return _first_usable(raw_documents, name)
    if isinstance(other_tool_text, str) and other_tool_text:
        raise ForeignParameters(
            f"{name} has generation notes from another tool but no GAN Studio parameters, so it cannot be restored.",
            other_tool_text,
        )
    raise MetadataError(
        f"{name} carries no GAN Studio parameters; only images exported from GAN Studio can be restored."
    )


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        return read_regular_file(path, max_bytes)
    except UntrustedInputError as exc:
        raise MetadataError(str(exc)) from exc


def _first_usable(raw_documents: list[str], name: str) -> ImageParameters:
    """The first copy that parses: one damaged copy (a broken XMP) must not hide an intact one (EXIF)."""
    first_error: MetadataError | None = None
    for raw in raw_documents:
        try:
            return _parse_document(raw, name)
        except MetadataError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


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
        _log.info("Unreadable EXIF block", exc_info=True)
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
        element = root.find(f".//{{{XMP_NAMESPACE}}}parameters")
    except (ElementTree.ParseError, ValueError, LookupError, TypeError, RecursionError):
        _log.info("Unreadable XMP packet", exc_info=True)  # e.g. an unknown encoding= declaration
        return None
    return element.text if element is not None and element.text else None


def _read_sidecar(path: Path) -> ImageParameters:
    sidecar = path if path.suffix.lower() == ".json" else sidecar_path(path)
    try:
        missing = not sidecar.exists()
    except (OSError, ValueError):
        missing = True
    if missing:
        raise MetadataError(
            f"{shown(path.name)} has no parameters file beside it ({shown(sidecar.name)}); keep the two files together."
        )
    return _parse_document(_read_file(sidecar, MAX_DOCUMENT_CHARS), shown(sidecar.name))


PASTED = "the pasted parameters"


def parameters_from_text(text: str) -> ImageParameters | None:
    """The parameters in pasted text: a document, or a bare request as ``to_json`` writes it.

    None when the text is not GAN Studio's (any other clipboard text); MetadataError when it is ours but
    cannot be used (a sentence for the person, the same rules as for a file).
    """
    try:
        return _parameters_from_text(text)
    except MetadataError as exc:
        log_caught(str(exc), _log)
        raise


def _parameters_from_text(text: str) -> ImageParameters | None:
    looks_ours = '"prompt"' in text or '"request"' in text
    if not text.lstrip().startswith("{"):
        return None
    if len(text) > MAX_DOCUMENT_CHARS:
        if looks_ours:
            raise MetadataError(
                f"The pasted parameters are too large to be GAN Studio's ({len(text):,} characters)."
            )
        return None
    try:
        data = parse_json(text, "The pasted parameters")
    except UntrustedInputError as exc:
        if looks_ours:
            raise MetadataError(f"{exc} Copy the parameters again.") from exc
        return None
    if not isinstance(data, dict) or not ("prompt" in data or isinstance(data.get("request"), dict)):
        return None
    document = data if "request" in data else {"schema": SCHEMA, "request": data}
    return _from_document(document, PASTED)


def parse_document(raw: str | bytes, name: str) -> ImageParameters:
    """The parameters in a document's JSON text, as stored in a file called ``name``; raise MetadataError."""
    return _parse_document(raw, shown(name))


def _parse_document(raw: str | bytes, name: str) -> ImageParameters:
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise MetadataError(
            f"The parameters in {name} are too large to be GAN Studio's; the file may be damaged."
        )
    try:
        document = parse_json(raw, f"The parameters in {name}")
    except UntrustedInputError as exc:
        raise MetadataError(f"{exc} Export the image again.") from exc
    return _from_document(document, f"the parameters in {name}")


def _from_document(document: Any, name: str) -> ImageParameters:
    """Parameters from a parsed document; ``name`` says where it came from (``the parameters in x.png``)."""
    where = name[:1].upper() + name[1:]
    if not isinstance(document, dict):
        raise MetadataError(f"{where} are not in a layout GAN Studio knows.")
    schema = document.get("schema", 0)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
        raise MetadataError(f"{where} have an unknown schema version ({shown(repr(schema), 24)}).")
    if schema > SCHEMA:
        raise MetadataError(
            f"{where} were made by a newer GAN Studio (parameters schema {shown(schema, 24)}); update GAN Studio to restore them."
        )
    try:
        parameters = _from_schema0(document) if schema == 0 else _from_schema1(document, schema)
        parameters.request.validated()
    except RequestError as exc:
        raise MetadataError(f"{where} cannot be used: {_sentence_body(exc)}") from exc
    return parameters


def _from_schema1(document: dict[str, Any], schema: int = 1) -> ImageParameters:
    """Schemas 1 to 4 share a layout (2 adds the request's optional explicit latent, 3 its variety, 4 its
    spread and strength)."""
    request_data = document.get("request")
    if not isinstance(request_data, dict):
        raise RequestError("The stored parameters hold no request object.")
    model = document.get("model")
    if not isinstance(model, (dict, type(None))):
        raise RequestError("The stored 'model' is not an object.")
    return ImageParameters(
        request=GenerationRequest.from_json(request_data),
        model_hash=checked_model_hash((model or {}).get("hash", "")),
        device=checked_device(document.get("device", "cpu")),
        app_version=checked_app_version(document.get("app_version", "")),
        size=checked_size(document.get("size", [0, 0])),
        schema=schema,
        animation=checked_animation(document.get("animation")),
    )


def _from_schema0(document: dict[str, Any]) -> ImageParameters:
    """Schema 0: a flat object, sliders as ``directions``, no concepts or interpolation."""
    request = GenerationRequest.from_json(
        {
            key: document[key]
            for key in ("prompt", "seed", "truncation", "directions", "model")
            if key in document
        }
    )
    return ImageParameters(
        request=request,
        model_hash=checked_model_hash(document.get("model_hash", "")),
        device=checked_device(document.get("device", "cpu")),
        app_version=checked_app_version(document.get("version", "")),
        size=checked_size([document.get("width", 0), document.get("height", 0)]),
        schema=0,
        animation=None,
    )


def _sentence_body(exc: Exception) -> str:
    text = str(exc).strip()
    return text[:1].lower() + text[1:] if text else "they are not valid."
