"""Headless CLI: generate/models/info, and one clear sentence with a non-zero exit for each bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import HashTextEncoder
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


def test_generate_spreads_by_default_and_no_spread_turns_it_off(capsys, tiny_model_dir, tmp_path):
    from studio.io.metadata import read_parameters

    for flag, expected in (((), True), (("--no-spread",), False)):
        out = tmp_path / ("on" if expected else "off")
        code, _, err = run(
            capsys, "generate", "cat", "--seed", 2, *flag, "--out", out, "--model", tiny_model_dir
        )
        assert code == 0, err
        (path,) = out.glob("*.png")
        assert read_parameters(path).request.spread is expected
        with Image.open(path) as image:
            assert ("Spread: on" in image.text["parameters"]) is expected
    code, text, _ = run(capsys, "inspect", next((tmp_path / "on").glob("*.png")))
    assert code == 0 and "Spread:       on" in text


def test_generate_says_what_a_keyword_spreads_over(capsys, tiny_model_dir, tmp_path):
    import shutil

    from studio.models.vocabulary import save_vocabulary

    folder = tmp_path / "models" / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, folder)
    names = ["cat face", "grinning cat", "black cat", "dog face"]
    encoder = HashTextEncoder()
    save_vocabulary(
        folder,
        [{"name": n, "group": "", "subgroup": ""} for n in names],
        encoder.encode(names),
        keywords=(encoder.encode(["cat"]), [np.array([0, 1, 2])]),
    )
    args = ("-n", 2, "--out", tmp_path / "out", "--model", folder)
    code, _, err = run(capsys, "generate", "cat", *args)
    (line,) = [text for text in err.splitlines() if text.startswith("Spreading the seeds over 3 emoji: ")]
    assert code == 0 and sorted(line.split(": ", 1)[1].split(", ")) == sorted(names[:3]), err
    for prompt, flag in (("dog face", ()), ("cat", ("--no-spread",))):  # one concept, or spread off: quiet
        code, _, err = run(capsys, "generate", prompt, *flag, *args)
        assert code == 0 and "Spreading" not in err, err


def test_generate_says_how_it_read_a_prompt_read_by_its_name_words(capsys, tiny_model_dir, tmp_path):
    import shutil

    from studio.models.vocabulary import save_vocabulary, save_wording

    folder = tmp_path / "models" / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, folder)
    names = ["rocket", "pizza", "dog face"]
    encoder = HashTextEncoder()
    save_vocabulary(folder, [{"name": n, "group": "", "subgroup": ""} for n in names], encoder.encode(names))
    directions = np.linalg.qr(np.random.default_rng(0).standard_normal((encoder.dim, 2)))[0].T
    save_wording(folder, directions.astype(np.float32), name_words_below=0.8)
    args = ("-n", 1, "--seed", 3, "--out", tmp_path / "out", "--model", folder)
    code, _, err = run(capsys, "generate", "a shiny rocket", *args)
    assert code == 0 and "Reading the prompt as 'rocket'." in err.splitlines(), err
    for prompt in ("rocket", "a shiny thing"):  # a name, or no name in it: read as typed, nothing said
        code, _, err = run(capsys, "generate", prompt, *args)
        assert code == 0 and "Reading" not in err, err


def test_generate_stores_the_prompt_strength_and_refuses_one_out_of_range(capsys, tiny_model_dir, tmp_path):
    from studio.io.metadata import read_parameters

    out = tmp_path / "strong"
    code, _, err = run(capsys, "generate", "cat", "--strength", 1.3, "--out", out, "--model", tiny_model_dir)
    assert code == 0, err
    (path,) = out.glob("*.png")
    assert read_parameters(path).request.strength == 1.3
    code, text, _ = run(capsys, "inspect", path)
    assert code == 0 and "Strength:     1.3" in text
    code, _, err = run(capsys, "generate", "cat", "--strength", 3, "--out", out, "--model", tiny_model_dir)
    assert code == 2 and "Prompt strength must be a number between 0 and 2." in err


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
        # no such GPU on any machine: "no usable NVIDIA GPU" without CUDA, "There is no GPU cuda:99" with it
        (["generate", "cat", "--device", "cuda:99"], "GPU"),
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


def test_an_empty_prompt_is_refused_before_any_model_loads_and_leaves_no_folder(capsys, tmp_path):
    out = tmp_path / "never-made"
    code, _, err = run(capsys, "generate", "  ", "--model", "no-such-model", "--out", out)
    assert code == 2 and "prompt is empty" in err  # not the missing model: nothing was loaded
    assert not out.exists()


def test_a_missing_model_leaves_no_empty_output_folder(capsys, tmp_path):
    out = tmp_path / "new" / "folder"
    code, _, err = run(capsys, "generate", "red apple", "--model", "no-such-model", "--out", out)
    assert code == 2 and "no-such-model" in err
    assert not (tmp_path / "new").exists()


def test_the_image_rate_counts_from_the_first_image_not_from_start_up():
    from studio.session.progress import BatchRate

    now = [0.0]
    rate = BatchRate(total=10, clock=lambda: now[0])
    now[0] = 25.0  # model loading and warm-up: nothing rendered yet
    rate.step(2)  # the first micro-batch of two
    assert rate.rate is None and rate.summary() == ""
    for _ in range(4):
        now[0] += 0.5
        rate.step()
    assert rate.rate == 2.0 and rate.seconds_left == 2.0
    assert rate.summary() == "2.0 img/s · about 2 s left"


def test_generate_removes_what_a_killed_run_left_in_the_output_folder(capsys, tiny_model_dir, tmp_path):
    from test_atomic import leave_stale_temp

    out = tmp_path / "out"
    out.mkdir()
    leave_stale_temp(out)
    code, _, _ = run(capsys, "generate", "cat", "--seed", 5, "--out", out, "--model", tiny_model_dir)
    assert code == 0 and [p.name for p in out.iterdir()] == ["cat_5.png"]


@pytest.mark.parametrize(
    "command",
    [
        ["generate", "cat"],
        ["info"],
        ["bench"],
        ["interpolate", "a", "b", "--out", "x.gif"],
        ["train", "--out", "m"],
        ["evaluate"],
        ["models"],
        ["inspect", "x.png"],
        ["invert", "x.png"],
    ],
)
def test_global_options_before_the_command_are_kept_by_every_command(command):
    from studio.cli import build_parser

    parser = build_parser()
    before = parser.parse_args(["--model", "M", "--device", "cpu", *command])
    assert (before.model, before.device) == ("M", "cpu")
    after = parser.parse_args([*command, "--model", "N", "--device", "cuda"])
    assert (after.model, after.device) == ("N", "cuda")
    both = parser.parse_args(["--model", "M", *command, "--device", "mps"])
    assert (both.model, both.device) == ("M", "mps")
    assert parser.parse_args(command).model is None


def test_generate_uses_the_model_given_before_the_command(capsys, tiny_model_dir, tmp_path):
    code, _, err = run(
        capsys,
        "--model",
        tiny_model_dir,
        "--device",
        "cpu",
        "generate",
        "cat",
        "--seed",
        1,
        "--out",
        tmp_path,
    )
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["cat_1.png"]


def test_bench_threads_caps_torch_and_refuses_zero(capsys, tiny_model_dir):
    import torch

    before = torch.get_num_threads()
    try:
        code, out, _ = run(
            capsys, "bench", "--quick", "--threads", 1, "--model", tiny_model_dir, "--device", "cpu"
        )
        assert code == 0
        report = json.loads(out)
        assert report["machine"]["threads"] == 1
        assert report["stages_batch_1_ms"]["base"] > 0
    finally:
        torch.set_num_threads(before)
    code, out, err = run(capsys, "bench", "--threads", 0, "--model", tiny_model_dir)
    assert code != 0 and out == ""
    assert "--threads must be at least 1" in err and len(err.strip().splitlines()) == 1
