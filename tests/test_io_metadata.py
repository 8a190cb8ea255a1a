"""Parameters in exported files: round trips through PNG/WebP/JPEG, older schemas, and clear errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from studio import __version__
from studio.engine.requests import ConceptSlider, Endpoint, GenerationRequest, GenerationResult
from studio.io.export import ExportOptions, export_image, export_result
from studio.io.metadata import (
    SCHEMA,
    ImageParameters,
    MetadataError,
    document_json,
    parameters_for,
    parameters_text,
    read_parameters,
    xmp_packet,
)

DATA = Path(__file__).parent / "data" / "io"


@pytest.fixture(scope="module")
def engine(tiny_engine):
    return tiny_engine


def render(engine, request: GenerationRequest) -> GenerationResult:
    (result,) = list(engine.generate_sync(request))
    assert result.ok, result.error
    return result


@pytest.fixture(scope="module")
def rich_result(engine) -> GenerationResult:
    """An image whose request uses every part of a request: sliders, concepts, interpolation."""
    request = GenerationRequest(
        "a red apple, shiny",
        seed=42,
        truncation=0.7,
        directions=((0, 1.5), (3, -2.0)),
        concepts=(ConceptSlider("sad", "happy", 0.5),),
        interpolate_to=Endpoint("a green pear", 7),
        t=0.25,
        model=engine.info.model_name,
    )
    return render(engine, request)


def assert_one_sentence(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message
    assert message.rstrip().endswith((".", ")")), message


# ----------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("image_format", ["png", "webp", "jpeg"])
def test_round_trip_restores_request_and_pixels(engine, rich_result, tmp_path, image_format):
    path = export_result(rich_result, tmp_path, ExportOptions(format=image_format))
    parameters = read_parameters(path)

    assert parameters.request == rich_result.request
    assert parameters.model_hash == rich_result.model_hash == engine.info.model_hash
    assert parameters.device == "cpu"
    assert parameters.size == (rich_result.image.shape[1], rich_result.image.shape[0])
    assert parameters.app_version == __version__
    assert parameters.schema == SCHEMA
    assert parameters.animation is None

    rerendered = render(engine, parameters.request)
    assert np.array_equal(rerendered.image, rich_result.image)
    if image_format in ("png", "webp"):
        with Image.open(path) as image:
            stored = np.asarray(image.convert("RGBA"))
        assert np.array_equal(stored, rerendered.image)


def test_png_parameters_chunk_is_plain_text_other_tools_show(rich_result, tmp_path):
    path = export_result(rich_result, tmp_path, ExportOptions(format="png"))
    with Image.open(path) as image:
        text = image.text
    assert text["parameters"] == parameters_text(parameters_for(rich_result))
    prompt, line = text["parameters"].split("\n")
    assert prompt == "a red apple, shiny"
    assert line.startswith("Seed: 42, Truncation: 0.7, Size: 128x128, Model: tiny-test, Model hash: ")
    assert line.endswith(f"Device: cpu, Version: {__version__}")
    assert b"tEXtparameters\x00a red apple" in path.read_bytes()  # tEXt, not iTXt or zTXt
    assert json.loads(text["gan-studio"])["request"] == rich_result.request.to_json()


def test_emoji_prompt_survives_in_every_format(engine, tmp_path):
    result = render(engine, GenerationRequest("🍎 apple 👩‍👩‍👧 family", seed=3, model=engine.info.model_name))
    for image_format in ("png", "webp", "jpeg"):
        path = export_result(result, tmp_path, ExportOptions(format=image_format))
        assert read_parameters(path).request.prompt == "🍎 apple 👩‍👩‍👧 family"
    with Image.open(tmp_path / "🍎 apple 👩‍👩‍👧 family_3.png") as image:
        # tEXt is Latin-1 only, so Pillow stores this one as iTXt; im.text still returns it.
        assert image.text["parameters"].startswith("🍎 apple 👩‍👩‍👧 family\nSeed: 3,")


def test_upscaled_export_keeps_the_rendered_size_in_parameters(rich_result, tmp_path):
    path = export_result(rich_result, tmp_path, ExportOptions(scale=2))
    with Image.open(path) as image:
        assert image.size == (256, 256)
    assert read_parameters(path).size == (128, 128)


def test_jpeg_and_webp_carry_json_in_exif_and_xmp(rich_result, tmp_path):
    path = export_result(rich_result, tmp_path, ExportOptions(format="jpeg"))
    with Image.open(path) as image:
        user_comment = image.getexif().get_ifd(0x8769)[0x9286]
        xmp = image.info["xmp"]
    assert user_comment.startswith(b"ASCII\0\0\0{")
    assert b"urn:gan-studio:metadata:1" in xmp


def test_xmp_alone_is_enough(rich_result, tmp_path):
    """Some tools strip EXIF but keep XMP."""
    parameters = parameters_for(rich_result)
    path = tmp_path / "xmp-only.jpg"
    Image.fromarray(rich_result.image).convert("RGB").save(path, "JPEG", xmp=xmp_packet(parameters))
    assert read_parameters(path).request == rich_result.request


def test_gif_comment_and_mp4_sidecar_are_read(rich_result, tmp_path):
    parameters = parameters_for(rich_result)
    gif = tmp_path / "still.gif"
    Image.fromarray(rich_result.image).save(gif, comment=document_json(parameters))
    assert read_parameters(gif).request == rich_result.request
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really a video")
    (tmp_path / "clip.mp4.json").write_text(document_json(parameters), encoding="utf-8")
    assert read_parameters(video).request == rich_result.request


def test_parameters_for_records_device_kind_not_index():
    result = GenerationResult(
        GenerationRequest("x"), image=np.zeros((32, 48, 4), np.uint8), device="cuda:1", model_hash="abcd1234"
    )
    parameters = parameters_for(result)
    assert parameters.device == "cuda"
    assert parameters.size == (48, 32)
    assert parameters.model_hash == "abcd1234"


# ----------------------------------------------------------------------------------------------- older schemas


def test_schema0_fixture_file_restores():
    parameters = read_parameters(DATA / "schema0.png")
    assert parameters.schema == 0
    assert parameters.request == GenerationRequest(
        "a smiling sun", seed=42, truncation=0.7, directions=((0, 1.5), (3, -2.0)), model="emoji"
    )
    assert parameters.model_hash == "1a2b3c4d"
    assert parameters.device == "cuda"
    assert parameters.size == (128, 128)
    assert parameters.app_version == "0.0.9"


@pytest.mark.parametrize("suffix", [".webp", ".jpg"])
def test_schema0_in_exif_restores(tmp_path, suffix):
    document = (DATA / "schema0.json").read_text(encoding="utf-8")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + json.dumps(json.loads(document)).encode("ascii")
    path = tmp_path / f"old{suffix}"
    Image.new("RGB", (8, 8)).save(path, exif=exif)
    assert read_parameters(path).request.prompt == "a smiling sun"


def test_newer_schema_asks_for_an_update(tmp_path, rich_result):
    document = json.loads(document_json(parameters_for(rich_result)))
    document["schema"] = SCHEMA + 1
    path = write_png(tmp_path / "future.png", {"gan-studio": json.dumps(document)})
    with pytest.raises(MetadataError, match="newer GAN Studio") as error:
        read_parameters(path)
    assert_one_sentence(str(error.value))


# ----------------------------------------------------------------------------------------------- errors


def write_png(path: Path, chunks: dict[str, str]) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGBA", (4, 4)).save(path, pnginfo=info)
    return path


def test_image_without_parameters(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(MetadataError, match="carries no GAN Studio parameters") as error:
        read_parameters(path)
    assert_one_sentence(str(error.value))


def test_image_from_another_tool(tmp_path):
    path = write_png(tmp_path / "other.png", {"parameters": "a cat\nSteps: 20, Sampler: Euler a, Seed: 1"})
    with pytest.raises(MetadataError, match="another tool"):
        read_parameters(path)
    gif = tmp_path / "other.gif"
    Image.new("P", (4, 4)).save(gif, comment="Made with some editor")
    with pytest.raises(MetadataError, match="carries no GAN Studio parameters"):
        read_parameters(gif)


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage" * 100, b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, bytes(range(256)) * 4],
    ids=["empty", "text", "png-signature-only", "binary"],
)
def test_garbage_files(tmp_path, content):
    path = tmp_path / "garbage.png"
    path.write_bytes(content)
    with pytest.raises(MetadataError) as error:
        read_parameters(path)
    assert_one_sentence(str(error.value))
    assert "garbage.png" in str(error.value)


@pytest.mark.parametrize("image_format", ["png", "webp", "jpeg"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_files(rich_result, tmp_path, image_format, keep):
    path = export_result(rich_result, tmp_path, ExportOptions(format=image_format))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MetadataError) as error:
        read_parameters(path)
    assert_one_sentence(str(error.value))


def test_damaged_json(tmp_path):
    path = write_png(tmp_path / "broken.png", {"gan-studio": '{"schema": 1, "request": {"prompt": '})
    with pytest.raises(MetadataError, match="not valid JSON"):
        read_parameters(path)


@pytest.mark.parametrize(
    "document",
    [
        {"schema": 1},
        {"schema": 1, "request": "a cat"},
        {"schema": 1, "request": {"prompt": "a cat", "seed": -4}},
        {"schema": 1, "request": {"prompt": ""}},
        {"schema": "one", "request": {"prompt": "a cat"}},
        {"seed": 3},
        [1, 2, 3],
    ],
    ids=[
        "no-request",
        "request-not-object",
        "negative-seed",
        "empty-prompt",
        "bad-schema",
        "schema0-no-prompt",
        "list",
    ],
)
def test_malformed_documents(tmp_path, document):
    path = write_png(tmp_path / "odd.png", {"gan-studio": json.dumps(document)})
    with pytest.raises(MetadataError) as error:
        read_parameters(path)
    assert_one_sentence(str(error.value))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MetadataError, match="There is no file"):
        read_parameters(tmp_path / "nope.png")
    with pytest.raises(MetadataError, match="is a folder"):
        read_parameters(tmp_path)
    with pytest.raises(MetadataError, match="keep the two files together"):
        read_parameters(tmp_path / "clip.mp4")
    with pytest.raises(MetadataError, match="There is no file"):
        read_parameters(tmp_path / "clip.mp4.json")


def test_export_image_with_hand_made_parameters_round_trips(tmp_path):
    parameters = ImageParameters(GenerationRequest("hand made", seed=9), model_hash="00ff00ff", size=(2, 2))
    pixels = np.arange(16, dtype=np.uint8).reshape(2, 2, 4)
    path = export_image(pixels, parameters, tmp_path, ExportOptions(format="webp"))
    assert read_parameters(path) == parameters
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image), pixels)  # exact, even under alpha 0-15


def test_animation_recipe_survives(tmp_path):
    recipe = {"mode": "interpolate", "frames": 2, "fps": 12.0, "requests": [GenerationRequest("a").to_json()]}
    parameters = replace(ImageParameters(GenerationRequest("a")), animation=recipe)
    data = io.BytesIO()
    Image.new("RGB", (4, 4)).save(data, "GIF", comment=document_json(parameters))
    (tmp_path / "a.gif").write_bytes(data.getvalue())
    assert read_parameters(tmp_path / "a.gif").animation == recipe


def test_io_never_imports_qt_or_torch():
    code = (
        "import sys, studio.io.metadata, studio.io.export, studio.io.animation, studio.io.files;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync', 'torch')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_other_image_formats_are_not_opened(tmp_path):
    """A dropped file is only decoded by the plugins GAN Studio writes (EPS would start Ghostscript)."""
    path = tmp_path / "drawing.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(MetadataError, match="not an image GAN Studio can read"):
        read_parameters(path)
    bmp = tmp_path / "picture.bmp"
    Image.new("RGB", (4, 4)).save(bmp)
    with pytest.raises(MetadataError, match="not an image GAN Studio can read"):
        read_parameters(bmp)
