"""Headless CLI: generate/models/info, and one clear sentence with a non-zero exit for each bad input."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from studio.cli import main


@pytest.fixture(autouse=True)
def fast_encoder(monkeypatch, text_encoder):
    import studio.models.text as text

    monkeypatch.setattr(text, "get_text_encoder", lambda encoder_id="": text_encoder)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_pngs_with_parameters(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    code, _, err = run(
        capsys,
        "generate",
        "red apple",
        "-n",
        3,
        "--seed",
        7,
        "--truncation",
        0.5,
        "--out",
        out,
        "--model",
        tiny_model_dir,
        "--device",
        "cpu",
    )
    assert code == 0, err
    files = sorted(out.glob("*.png"))
    assert len(files) == 3
    with Image.open(files[0]) as image:
        assert image.size == (128, 128) and image.mode == "RGBA"
        assert "Seed: 7" in image.text["parameters"]
    assert "3/3" in err and "Wrote 3 image(s)" in err


def test_generate_from_image_reproduces_pixels(capsys, tiny_model_dir, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert (
        run(capsys, "generate", "blue car", "--seed", 11, "--out", first, "--model", tiny_model_dir)[0] == 0
    )
    source = next(first.glob("*.png"))
    code, _, err = run(capsys, "generate", "--from", source, "--out", second, "--model", tiny_model_dir)
    assert code == 0, err
    copy = next(second.glob("*.png"))
    with Image.open(source) as a, Image.open(copy) as b:
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "   "], "empty"),
        (["generate", "x" * 100_000], "characters"),
        (["generate", "cat", "--seed", "-5"], "0 or more"),
        (["generate", "cat", "--seed", str(2**70)], "at most"),
        (["generate", "cat", "-n", "0"], "at least 1"),
        (["generate", "cat", "-n", "1000000"], "At most 1,000 images"),
        (["generate", "cat", "--truncation", "nan"], "Truncation"),
        (["generate", "cat", "--model", "no-such-model"], "no model called 'no-such-model'"),
        (["generate", "cat", "--device", "cuda"], "CUDA"),
        (["generate"], "Say what to draw"),
    ],
)
def test_bad_input_is_one_sentence_and_nonzero(capsys, tiny_model_dir, tmp_path, argv, message):
    argv = list(argv)
    if "--model" not in argv and len(argv) > 1:
        argv += ["--model", str(tiny_model_dir)]
    code, _, err = run(capsys, *argv, "--out", tmp_path / "out")
    assert code == 2
    assert message in err
    assert err.startswith("gan-studio: error:") and err.count("\n") == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_output_folder_that_is_a_file(capsys, tiny_model_dir, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    code, _, err = run(capsys, "generate", "cat", "--out", target, "--model", tiny_model_dir)
    assert code == 2 and "is a file" in err and target.read_text() == "keep me"


def test_read_only_output_folder(capsys, tiny_model_dir, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode)
    )
    code, _, err = run(capsys, "generate", "cat", "--out", folder, "--model", tiny_model_dir)
    assert code == 2 and "not writable" in err and not list(folder.iterdir())


def test_models_lists_json(capsys, tiny_model_dir, monkeypatch):
    monkeypatch.setattr("studio.models.format.model_search_path", lambda: [tiny_model_dir.parent])
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    assert [m["name"] for m in json.loads(out)] == ["tiny-test"]


def test_info_reports_device_and_versions(capsys):
    code, out, _ = run(capsys, "info", "--json", "--device", "cpu")
    data = json.loads(out)
    assert code == 0 and data["device"] == "cpu" and data["torch"] and data["dtype"] == "float32"
