"""Hostile image files, sidecars and pasted text (issue 12): one sentence each, nothing hangs, nothing leaks.

Each test reproduces one finding of the attack on the studio: it failed (traceback, hang, MemoryError, a
megabyte of message, escape codes on the terminal, invalid XML) before the untrusted-input rules.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PIL import ExifTags, Image, PngImagePlugin

from studio.cli import main
from studio.engine.requests import MAX_CONCEPTS, MAX_COUNT, ConceptSlider, GenerationRequest
from studio.io.metadata import (
    ImageParameters,
    MetadataError,
    document_json,
    parameters_from_text,
    read_parameters,
    save_options,
    to_document,
    xmp_packet,
)
from studio.ui.exporting import request_from_json_text
from studio.untrusted import MAX_MESSAGE_CHARS, UntrustedInputError, parse_json, read_regular_file


def document(**request_changes) -> dict:
    """A valid current-schema document; ``request_changes`` replace fields of its request."""
    request = GenerationRequest("a cat", seed=3, truncation=0.7, model="emoji")
    data = to_document(ImageParameters(request, model_hash="1a2b3c4d", size=(128, 128)))
    data["request"].update(request_changes)
    return data


def png_with(path: Path, text: str) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("gan-studio", text)
    Image.new("RGBA", (4, 4)).save(path, pnginfo=info)
    return path


def assert_sentence(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message
    assert len(message) <= MAX_MESSAGE_CHARS, len(message)
    assert "\x1b" not in message and "\x00" not in message


def cli_error(capsys, *argv) -> str:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 2, captured
    err = captured.err.strip()
    assert err.startswith("gan-studio: error: ") and "\n" not in err and "Traceback" not in err, err
    assert len(err) <= MAX_MESSAGE_CHARS + 20
    return err


# ----------------------------------------------------------------------------------------------- numbers

HOSTILE_NUMBERS = {
    "seed-infinity": '"seed": Infinity',
    "seed-1e999": '"seed": 1e999',
    "count-infinity": '"count": Infinity',
    "seed-nan": '"seed": NaN',
    "seed-4301-digits": '"seed": ' + "9" * 4301,
    "seed-float": '"seed": 3.5',
    "seed-string": '"seed": "3"',
    "seed-bool": '"seed": true',
}


@pytest.mark.parametrize("replacement", HOSTILE_NUMBERS.values(), ids=HOSTILE_NUMBERS.keys())
def test_hostile_numbers_in_the_request_are_one_sentence(tmp_path, replacement, capsys):
    text = json.dumps(document()).replace('"seed": 3', replacement)
    path = png_with(tmp_path / "x.png", text)
    with pytest.raises(MetadataError) as error:
        read_parameters(path)
    assert_sentence(str(error.value))
    assert "x.png" in str(error.value)
    cli_error(capsys, "inspect", str(path))
    cli_error(capsys, "generate", "--from", str(path), "--out", str(tmp_path))
    with pytest.raises(ValueError) as pasted:
        request_from_json_text(text)
    assert_sentence(str(pasted.value))


@pytest.mark.parametrize(
    "where",
    [
        lambda d: d["request"].update(directions=[["INF", 1.0]]),
        lambda d: d["request"].update(interpolate_to={"prompt": "b", "seed": "INF"}),
        lambda d: d.update(size=["INF", 1]),
        lambda d: d.update(size=[10**30, 1]),
        lambda d: d.update(model={"id": "emoji", "hash": "x" * 100_000}),
        lambda d: d.update(device="\x1b[2J" * 10),
    ],
    ids=["direction-index", "b-seed", "size", "huge-size", "huge-hash", "escape-device"],
)
def test_every_numeric_and_text_field_is_checked(tmp_path, where):
    data = document()
    where(data)
    text = json.dumps(data).replace('"INF"', "Infinity")
    with pytest.raises(MetadataError) as error:
        read_parameters(png_with(tmp_path / "x.png", text))
    assert_sentence(str(error.value))


def test_deep_nesting_is_one_sentence(tmp_path):
    text = '{"schema": 1, "request": ' + "[" * 50_000 + "]" * 50_000 + "}"
    with pytest.raises(MetadataError, match="nested too deeply"):
        read_parameters(png_with(tmp_path / "deep.png", text))
    with pytest.raises(ValueError, match="nested too deeply"):
        request_from_json_text(text)
    with pytest.raises(UntrustedInputError, match="nested too deeply"):
        parse_json("[" * 40 + "]" * 40, "This")  # shallow enough for json, too deep for us


def test_huge_values_give_short_messages(tmp_path, capsys):
    data = document(model="m" * 1_000_000)
    path = png_with(tmp_path / ("long" * 60 + ".png"), json.dumps(data))
    err = cli_error(capsys, "inspect", str(path))
    assert "must be given by its name" in err


def test_lone_surrogate_is_replaced_and_prints(tmp_path, capsys):
    text = json.dumps(document()).replace('"0.1.0"', '"\\ud800"').replace('"a cat"', '"a \\udfff cat"')
    path = png_with(tmp_path / "s.png", text)
    parameters = read_parameters(path)
    assert parameters.app_version == "\ufffd" and parameters.request.prompt == "a \ufffd cat"
    assert main(["inspect", str(path)]) == 0
    assert "a \ufffd cat" in capsys.readouterr().out


@pytest.mark.parametrize(
    "animation",
    [
        {"mode": "interpolate", "frames": 3, "fps": "12"},
        {"mode": "interpolate", "frames": 2.5, "fps": 12},
        {"mode": "interpolate", "frames": 10**9, "fps": 12},
        {"mode": "interpolate", "frames": 3, "fps": 12, "loop": "no"},
        {"mode": "\x1b]0;pwned\x07", "frames": 3, "fps": 12},
        {"mode": "interpolate", "frames": 2, "fps": 12, "requests": [{"prompt": "x", "count": 10**6}]},
    ],
    ids=["fps-string", "frames-float", "frames-huge", "loop-string", "mode-escape", "frame-request-count"],
)
def test_animation_recipe_fields_are_checked(tmp_path, animation, capsys):
    data = document()
    data["animation"] = animation
    path = png_with(tmp_path / "anim.png", json.dumps(data))
    with pytest.raises(MetadataError) as error:
        read_parameters(path)
    assert_sentence(str(error.value))
    cli_error(capsys, "inspect", str(path))


# ----------------------------------------------------------------------------------------------- copies


def webp_or_jpeg(path: Path, image_format: str, exif_text: str | None, xmp: bytes | None) -> Path:
    exif = Image.Exif()
    if exif_text is not None:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"ASCII\0\0\0" + exif_text.encode()
    options = {"exif": exif}
    if xmp is not None:
        options["xmp"] = xmp
    Image.new("RGB", (8, 8)).save(path, image_format, **options)
    return path


@pytest.mark.parametrize("image_format", ["WEBP", "JPEG"])
def test_xmp_with_unknown_encoding_does_not_hide_the_exif_copy(tmp_path, image_format):
    good = json.dumps(document())
    xmp = b'<?xml version="1.0" encoding="x-no-such-encoding"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    path = webp_or_jpeg(tmp_path / f"x.{image_format.lower()}", image_format, good, xmp)
    assert read_parameters(path).request.prompt == "a cat"


def test_a_damaged_first_copy_does_not_hide_a_later_one(tmp_path):
    damaged = json.dumps(document()).replace('"seed": 3', '"seed": Infinity')
    parameters = ImageParameters(GenerationRequest("a dog", model="emoji"))
    path = webp_or_jpeg(tmp_path / "x.webp", "WEBP", damaged, xmp_packet(parameters))
    assert read_parameters(path).request.prompt == "a dog"


@pytest.mark.parametrize("image_format", ["webp", "jpeg", "png"])
def test_prompts_with_nul_and_escape_write_valid_xml_and_round_trip(tmp_path, image_format):
    prompt = "a \x00cat\x1b[31m red\x07 \u202eevil"
    parameters = ImageParameters(GenerationRequest(prompt, model="emoji"), size=(8, 8))
    ElementTree.fromstring(xmp_packet(parameters))  # valid XML
    path = tmp_path / f"p.{image_format}"
    Image.new("RGB", (8, 8)).save(path, image_format.upper(), **save_options(parameters, image_format))
    assert read_parameters(path).request.prompt == prompt


def test_inspect_shows_escape_codes_instead_of_obeying_them(tmp_path, capsys):
    prompt = "a cat\x1b]0;owned\x07\x1b[2J\u202e"
    parameters = ImageParameters(GenerationRequest(prompt, model="emoji"), size=(8, 8))
    path = tmp_path / "esc.png"
    Image.new("RGB", (8, 8)).save(path, "PNG", **save_options(parameters, "png"))
    for argv in (["inspect", str(path)], ["inspect", str(path), "--json"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["request"]["prompt"] == prompt  # still valid, exact JSON


def test_pillow_warnings_do_not_precede_the_sentence(tmp_path, capsys):
    path = tmp_path / "big.png"
    Image.new("1", (10_000, 9_500)).save(path)  # over Pillow's bomb-warning size, under its error size
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        cli_error(capsys, "inspect", str(path))


# ----------------------------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"count": 10_000}, f"most {MAX_COUNT:,} images"),
        (
            {"concepts": [{"negative": "a", "positive": "b", "scale": 1.0}] * 2000},
            f"most {MAX_CONCEPTS} concept sliders",
        ),
        ({"directions": [[i, 1.0] for i in range(40)]}, "latent sliders"),
        ({"directions": [[5, 1.0], [5, 2.0]]}, "listed twice"),
        ({"model": "/home/someone/models/evil"}, "by its name"),
        ({"model": "../../elsewhere"}, "by its name"),
        ({"model": "~root"}, "by its name"),
    ],
    ids=["count", "concepts", "directions", "duplicate-direction", "absolute", "dotdot", "tilde"],
)
def test_restored_requests_obey_the_typed_limits(tmp_path, changes, expected, capsys):
    text = json.dumps(document(**changes))
    path = png_with(tmp_path / "r.png", text)
    with pytest.raises(MetadataError, match=expected):
        read_parameters(path)
    with pytest.raises(ValueError, match=expected):
        request_from_json_text(text)
    assert expected in cli_error(capsys, "generate", "--from", str(path), "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_typed_requests_have_the_same_limits():
    from studio.engine.requests import RequestError

    many = tuple(ConceptSlider("a", "b", 1.0) for _ in range(MAX_CONCEPTS + 1))
    with pytest.raises(RequestError, match="concept sliders"):
        GenerationRequest("cat", concepts=many).validated()
    with pytest.raises(RequestError, match="images"):
        GenerationRequest("cat", count=MAX_COUNT + 1).validated()


def test_paste_parser_ignores_other_text_and_takes_ours():
    assert request_from_json_text("just some words") is None
    assert request_from_json_text('{"colour": "red"}') is None
    assert request_from_json_text('{"x": Infinity}') is None  # not ours: no sentence either
    assert request_from_json_text(json.dumps(document())).prompt == "a cat"
    assert request_from_json_text(json.dumps(document()["request"])).prompt == "a cat"
    assert parameters_from_text(json.dumps(document())).model_hash == "1a2b3c4d"
    with pytest.raises(ValueError, match="too large"):
        request_from_json_text('{"prompt": "' + "x" * 5_000_000 + '"}')


def test_the_window_says_why_pasted_parameters_cannot_be_used(make_window, qtbot):
    from PySide6.QtCore import QMimeData

    window = make_window()
    mime = QMimeData()
    mime.setText(json.dumps(document(seed=-1)))
    assert window.restore_from_mime(mime) is False  # GAN Studio's parameters, handled: not restored, said why
    assert "seed must be 0 or more" in window.statusBar().currentMessage()


# ----------------------------------------------------------------------------------------------- special files


def test_named_pipe_image_and_sidecar_do_not_block(tmp_path, capsys):
    for name in ("x.png", "clip.mp4.json"):
        os.mkfifo(tmp_path / name)
        with pytest.raises(MetadataError, match="not a regular file"):
            read_parameters(tmp_path / name)
    assert "not a regular file" in cli_error(capsys, "inspect", str(tmp_path / "x.png"))
    assert "not a regular file" in cli_error(capsys, "generate", "--from", str(tmp_path / "x.png"))
    assert "not a regular file" in cli_error(capsys, "inspect", str(tmp_path / "clip.mp4"))


def test_links_to_devices_are_refused(tmp_path):
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "clip.mp4.json").symlink_to("/dev/zero")
    for name in ("zero.png", "clip.mp4"):
        with pytest.raises(MetadataError, match="not a regular file"):
            read_parameters(tmp_path / name)


def test_huge_sparse_sidecar_is_refused_without_reading(tmp_path):
    sidecar = tmp_path / "clip.mp4.json"
    with open(sidecar, "wb") as handle:
        handle.truncate(2 << 30)  # 2 GB of nothing: sparse, takes no disk
    with pytest.raises(MetadataError, match="larger than"):
        read_parameters(tmp_path / "clip.mp4")


def test_read_regular_file_stops_at_the_limit(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, 100) == b"x" * 100
    with pytest.raises(UntrustedInputError, match="larger than"):
        read_regular_file(path, 99)


# ----------------------------------------------------------------------------------------------- logging


def test_every_sentence_is_logged_with_its_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAN_STUDIO_LOG_DIR", str(tmp_path / "logs"))
    path = png_with(tmp_path / "inf.png", json.dumps(document()).replace('"seed": 3', '"seed": Infinity'))
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        cli_error(capsys, "inspect", str(path))
        for handler in root.handlers:
            handler.flush()
        log = (tmp_path / "logs" / "gan-studio.log").read_text(encoding="utf-8")
    finally:
        for handler in set(root.handlers) - set(before):
            root.removeHandler(handler)
            handler.close()
    assert "inf.png" in log and "Traceback" in log and "Infinity" in log


def test_an_unexpected_error_is_one_sentence_pointing_at_the_log(monkeypatch, capsys, tmp_path):
    import studio.cli.io_commands as io_commands

    monkeypatch.setenv("GAN_STUDIO_LOG_DIR", str(tmp_path / "logs"))

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(io_commands, "describe", broken)
    parameters = ImageParameters(GenerationRequest("cat", model="emoji"))
    path = tmp_path / "ok.png"
    Image.new("RGB", (4, 4)).save(path, "PNG", **save_options(parameters, "png"))
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        assert main(["inspect", str(path)]) == 1
    finally:
        for handler in set(root.handlers) - set(before):
            root.removeHandler(handler)
            handler.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError" in err and "gan-studio.log" in err
    assert "Traceback" in (tmp_path / "logs" / "gan-studio.log").read_text(encoding="utf-8")


def test_document_json_of_a_restored_request_stays_ascii():
    parameters = ImageParameters(GenerationRequest("a \x00 cat 😀", model="emoji"))
    assert document_json(parameters).isascii()
    assert io.BytesIO(document_json(parameters).encode("ascii"))


def test_the_window_says_why_a_hostile_file_cannot_be_opened(make_window, tmp_path):
    window = make_window()
    messages = []
    window.controller.message.connect(messages.append)
    path = png_with(tmp_path / "inf.png", json.dumps(document()).replace('"seed": 3', '"seed": Infinity'))
    assert window.controller.restore_file(path) is False
    assert messages and "Infinity is not a usable number" in messages[-1]
    os.mkfifo(tmp_path / "pipe.png")
    assert window.controller.restore_file(tmp_path / "pipe.png") is False
    assert "not a regular file" in messages[-1]
