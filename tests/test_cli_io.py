"""``gan-studio inspect`` and ``gan-studio interpolate`` against the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import studio.cli.io_commands as io_commands
from studio.cli import build_parser, main
from studio.engine.requests import ConceptSlider, GenerationRequest
from studio.io.animation import mp4_available
from studio.io.export import ExportOptions, export_result
from studio.io.metadata import SCHEMA, read_parameters


@pytest.fixture(scope="module")
def engine(tiny_engine):
    return tiny_engine


@pytest.fixture
def cli_engines(tiny_model_dir, monkeypatch):
    """Make the command build its engine on the tiny model with the fast encoder; record the arguments."""
    from conftest import HashTextEncoder

    from studio.engine.engine import Engine

    opened = []

    def open_engine(model, device):
        opened.append((model, device))
        return Engine(model=tiny_model_dir, device="cpu", text_encoder=HashTextEncoder())

    monkeypatch.setattr(io_commands, "_open_engine", open_engine)
    return opened


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-studio: error: ") and "\n" not in err and "Traceback" not in err
    return err


# ----------------------------------------------------------------------------------------------- inspect


@pytest.fixture
def exported_png(engine, tmp_path):
    request = GenerationRequest(
        "a smiling sun", seed=42, truncation=0.7, directions=((2, -1.5),),
        concepts=(ConceptSlider("sad", "happy", 0.5),), model=engine.info.model_name,
    )  # fmt: skip
    (result,) = list(engine.generate_sync(request))
    return export_result(result, tmp_path, ExportOptions())


def test_inspect_prints_parameters(exported_png, capsys):
    assert main(["inspect", str(exported_png)]) == 0
    out = capsys.readouterr().out
    assert "Prompt:       a smiling sun" in out
    assert "Seed:         42" in out
    assert "Truncation:   0.7" in out
    assert "Slider:       direction 2 -1.5" in out
    assert "Concept:      sad -> happy x0.5" in out
    assert "Re-render:    gan-studio generate --from" in out


def test_inspect_json(exported_png, capsys):
    assert main(["inspect", str(exported_png), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == SCHEMA
    assert document["request"]["prompt"] == "a smiling sun"
    assert document["model"]["id"] == "tiny-test"


@pytest.mark.parametrize("content", [None, b"garbage", b""])
def test_inspect_errors_are_one_line(tmp_path, capsys, content):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    one_line_error(capsys)


# ----------------------------------------------------------------------------------------------- interpolate


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_interpolate_writes_the_animation(engine, cli_engines, tmp_path, capsys, suffix):
    out = tmp_path / f"morph{suffix}"
    code = main(
        ["interpolate", "a red apple", "a green pear", "--frames", "5", "--seed-a", "3", "--seed-b", "9",
         "--fps", "10", "--out", str(out), "--model", "tiny", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert cli_engines == [("tiny", "cpu")]
    assert str(out) in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.n_frames == 5
    parameters = read_parameters(out)
    recipe = parameters.animation
    requests = [GenerationRequest.from_json(r) for r in recipe["requests"]]
    assert [r.t for r in requests] == pytest.approx(np.linspace(0, 1, 5).tolist())
    assert {(r.prompt, r.seed, r.interpolate_to.prompt, r.interpolate_to.seed) for r in requests} == {
        ("a red apple", 3, "a green pear", 9)
    }
    assert requests[0].truncation == engine.info.default_truncation
    assert recipe["fps"] == 10
    if suffix == ".webp":
        # The recipe re-renders the file's frames (visible pixels; lossless WebP).
        rerendered = [r.image for r in engine.generate_sync(requests)]
        with Image.open(out) as image:
            for index in (0, 4):
                image.seek(index)
                stored = np.asarray(image.convert("RGBA"))
                visible = rerendered[index][..., 3] > 0
                assert np.array_equal(stored[visible], rerendered[index][visible])


def test_inspect_prints_a_command_that_remakes_the_animation(cli_engines, tmp_path, capsys):
    import shlex

    first = tmp_path / "first.webp"
    argv = ["interpolate", "cat", "dog", "--frames", "3", "--seed-a", "4", "--seed-b", "8", "--pingpong"]
    assert main([*argv, "--fps", "6", "--out", str(first)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(first)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Re-render:"))
    command = shlex.split(line.removeprefix("Re-render:"))
    assert command[:2] == ["gan-studio", "interpolate"]
    assert main(command[1:]) == 0
    second = tmp_path / "first_1.webp"  # the command names the same file, which is never overwritten
    with Image.open(first) as a, Image.open(second) as b:
        assert a.n_frames == b.n_frames == 4
        for index in range(4):
            a.seek(index)
            b.seek(index)
            assert np.array_equal(np.asarray(a.convert("RGBA")), np.asarray(b.convert("RGBA")))
    assert read_parameters(second).animation == read_parameters(first).animation


def test_interpolate_to_frame_folder_with_pingpong(cli_engines, tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["interpolate", "cat", "dog", "--frames", "3", "--pingpong", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "animation.json", "frame_0001.png", "frame_0002.png", "frame_0003.png", "frame_0004.png",
    ]  # fmt: skip
    assert read_parameters(out / "frame_0004.png").request.t == 0.5
    assert cli_engines == [(None, None)]


@pytest.mark.skipif(not mp4_available(), reason="imageio-ffmpeg is not installed")
def test_interpolate_mp4(cli_engines, tmp_path, capsys):
    out = tmp_path / "morph.mp4"
    assert main(["interpolate", "cat", "dog", "--frames", "4", "--out", str(out)]) == 0
    assert read_parameters(out).animation["frames"] == 4


def test_global_model_option_reaches_the_command(cli_engines, tmp_path):
    assert main(["--model", "mine", "--device", "cpu", "interpolate", "a", "b", "--frames", "2",
                 "--out", str(tmp_path / "x.gif")]) == 0  # fmt: skip
    assert cli_engines == [("mine", "cpu")]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--frames", "1"], "--frames must be between"),
        (["--frames", "5000"], "--frames must be between"),
        (["--out", "{tmp}/clip.avi"], ".avi"),
        (["--out", "{tmp}/missing/clip.gif"], "does not exist"),
        (["--fps", "90"], "Frames per second"),
        (["--seed-a", "-3"], "seed"),
        (["--scale", "0"], "scale"),
    ],
)
def test_interpolate_mistakes_are_one_line(cli_engines, tmp_path, capsys, argv, message):
    args = ["interpolate", "cat", "dog", "--out", str(tmp_path / "x.gif")]
    args += [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(args) == 2
    assert message in one_line_error(capsys)
    assert cli_engines == []  # refused before a model was loaded
    assert [p.name for p in tmp_path.iterdir()] == []


def test_interpolate_empty_prompt(cli_engines, tmp_path, capsys):
    assert main(["interpolate", "  ", "dog", "--out", str(tmp_path / "x.gif")]) == 2
    assert "prompt is empty" in one_line_error(capsys)


def test_parser_registers_commands():
    parser = build_parser()
    args = parser.parse_args(["inspect", "a.png", "--json"])
    assert args.func is io_commands._inspect and args.json


def test_interpolate_pingpong_says_how_many_frames_the_file_plays(cli_engines, tmp_path, capsys):
    out = tmp_path / "morph.gif"
    assert main(["interpolate", "cat", "dog", "--frames", "4", "--pingpong", "--scale", "2",
                 "--resample", "lanczos", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.startswith("Wrote 6 frames (4 rendered, played forwards and back, 12 fps)")
    with Image.open(out) as image:
        assert image.n_frames == 6 and image.size == (256, 256)
