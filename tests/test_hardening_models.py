"""Hostile or broken model folders (issue 12): listed with one sentence, refused before any allocation.

Each test reproduces a finding: ``gan-studio models`` died with a traceback, ``z_dim: 1e6`` allocated
gigabytes, NaN or overflowing weights rendered transparent images, a 32768 px model said "Ready", a
stored name chose any folder, and pipes or /dev/zero links hung or ate memory.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from safetensors.torch import load_file, save_file

from studio.cli import main
from studio.errors import ModelError
from studio.models.format import (
    MAX_PARAMETERS,
    ModelInfo,
    find_model,
    find_models,
    load_model,
    read_model_info,
    user_models_dir,
)
from studio.models.vocabulary import load_vocabulary
from studio.untrusted import MAX_MESSAGE_CHARS


@pytest.fixture
def user_model(tiny_model_dir, monkeypatch, tmp_path):
    """A copy of the tiny model in the (temporary) user models folder, named ``mine``."""
    monkeypatch.setenv("GAN_STUDIO_DATA_DIR", str(tmp_path / "data"))
    folder = user_models_dir() / "mine"
    shutil.copytree(tiny_model_dir, folder)
    return folder


def edit(folder, change) -> None:
    data = json.loads((folder / "model.json").read_text())
    change(data)
    (folder / "model.json").write_text(json.dumps(data))


def sentence_of(folder) -> str:
    with pytest.raises(ModelError) as error:
        load_model(folder)
    message = str(error.value)
    assert message and "\n" not in message and len(message) <= MAX_MESSAGE_CHARS, message
    return message


BROKEN = {
    "truncation-text": (lambda d: d.update(default_truncation="abc"), "wrong type"),
    "truncation-huge": (lambda d: d.update(default_truncation=1e300), "default_truncation"),
    "channels-text": (lambda d: d.update(channels="four"), "wrong type"),
    "metrics-list": (lambda d: d.update(metrics=[1, 2]), "wrong type"),
    "conditioning-list": (lambda d: d.update(conditioning=["text"]), "wrong type"),
    "architecture-list": (lambda d: d.update(architecture=[]), "wrong type"),
    "name-path": (lambda d: d.update(name="../../etc"), "unusable name"),
    "name-number": (lambda d: d.update(name=5), "wrong type"),
    "embedding-dim-text": (lambda d: d["conditioning"].update(embedding_dim="x"), "wrong type"),
    "z-dim-1e6": (lambda d: d["architecture"]["base"].update(z_dim=1e6), "wrong type"),
    "z-dim-million": (lambda d: d["architecture"]["base"].update(z_dim=1_000_000), "outside"),
    "ch-1e5": (lambda d: d["architecture"]["base"].update(ch=100_000), "outside"),
    "ch-bool": (lambda d: d["architecture"]["base"].update(ch=True), "wrong type"),
    "mult-strings": (lambda d: d["architecture"]["base"].update(channel_mult=["a"]), "channel_mult"),
    "resolution-32768": (
        lambda d: d["architecture"]["base"].update(channel_mult=[1] * 13),
        "channel_mult",
    ),
    "too-many-weights": (
        lambda d: (
            d["architecture"]["base"].update(ch=1024, channel_mult=[16, 16, 16]),
            d.update(resolution=64),
        ),
        f"at most {MAX_PARAMETERS:,}",
    ),
    "upsampler-scale": (lambda d: d["architecture"]["upsampler"].update(scale=3), "scale"),
    "upsampler-huge": (lambda d: d["architecture"]["upsampler"].update(n_blocks=10**9), "outside"),
    "upsampler-1024px": (
        lambda d: (
            d["architecture"]["base"].update(channel_mult=[1] * 9),
            d["architecture"]["upsampler"].update(scale=8),
            d.update(resolution=8192),
        ),
        "at most 1024 px",
    ),
    "files-path": (lambda d: d["files"].update(generator="/etc/passwd"), "plain file name"),
    "files-dotdot": (
        lambda d: d["files"].update(generator="../mine/generator.safetensors"),
        "plain file name",
    ),
    "format-infinity-ish": (lambda d: d.update(format=1e300), "format"),
}


@pytest.mark.parametrize("change, expected", BROKEN.values(), ids=BROKEN.keys())
def test_broken_model_json_is_one_sentence(user_model, change, expected):
    edit(user_model, change)
    assert expected in sentence_of(user_model)


def test_models_lists_every_broken_model_with_its_sentence(user_model, capsys):
    for index, (change, _) in enumerate(list(BROKEN.values())[:6]):
        folder = user_model.with_name(f"broken{index}")
        shutil.copytree(user_model, folder)
        edit(folder, change)
    deep = user_model.with_name("deep")
    deep.mkdir()
    (deep / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.count("(broken)") == 7 and "Traceback" not in out
    assert "nested too deeply" in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum("error" in row for row in rows) == 7


def test_special_files_in_a_model_folder_do_not_hang(user_model, capsys):
    (user_model / "model.json").unlink()
    os.mkfifo(user_model / "model.json")
    assert "not a regular file" in sentence_of(user_model)
    assert main(["models"]) == 0
    assert "not a regular file" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["generator.safetensors", "upsampler.safetensors"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_weights_that_are_pipes_or_devices_are_refused(user_model, name, kind):
    (user_model / name).unlink()
    if kind == "fifo":
        os.mkfifo(user_model / name)
    else:
        (user_model / name).symlink_to("/dev/zero")
    assert "not a regular file" in sentence_of(user_model)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "wrong-type", "huge-name"])
def test_vocabulary_that_is_hostile_is_one_sentence(user_model, kind):
    path = user_model / "vocabulary.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "wrong-type":
        path.write_text(json.dumps({"name": "a"}))
    else:
        path.write_text(json.dumps([{"name": "x" * 10_000}]))
    with pytest.raises(ModelError) as error:
        load_vocabulary(read_model_info(user_model))
    assert "\n" not in str(error.value) and len(str(error.value)) <= MAX_MESSAGE_CHARS


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(user_model, value):
    tensors = load_file(str(user_model / "generator.safetensors"))
    tensors["fc.weight"][0, 0] = value
    save_file(tensors, str(user_model / "generator.safetensors"))
    assert "NaN or infinite values" in sentence_of(user_model)


def test_overflowing_weights_fail_the_probe_image(user_model):
    tensors = load_file(str(user_model / "generator.safetensors"))
    tensors = {key: (t * 0 + 1e38 if t.is_floating_point() else t) for key, t in tensors.items()}
    save_file(tensors, str(user_model / "generator.safetensors"))
    assert "draws NaN or infinite values" in sentence_of(user_model)


def test_engine_is_not_ready_when_its_probe_image_fails(user_model, text_encoder, monkeypatch):
    from studio.engine import engine as engine_module
    from studio.engine.requests import GenerationResult

    def failing_render(self, requests, first_index=0, exact=True):
        return [GenerationResult(request=r, error="The device ran out of memory.") for r in requests]

    monkeypatch.setattr(engine_module.Renderer, "render", failing_render)
    engine = engine_module.Engine(user_model, device="cpu", text_encoder=text_encoder)
    try:
        with pytest.raises(ModelError, match="could not draw a test image"):
            engine.wait_ready(60)
        assert not engine.is_ready
    finally:
        engine.close()


def test_a_model_is_found_by_name_only(user_model, tmp_path, monkeypatch):
    assert find_model("mine") == user_model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    for name in (str(user_model), "../data/models/mine", "~", "/"):
        with pytest.raises(ModelError, match="by its name"):
            find_model(name)


def test_find_models_survives_every_broken_folder(user_model):
    edit(user_model, lambda d: d.update(metrics="not a dict"))
    found = find_models()
    assert any(isinstance(m, ModelError) for m in found)
    assert all(isinstance(m, (ModelInfo, ModelError)) for m in found)
