"""Model-folder validation: every broken case gets one sentence, and nothing pickled is ever opened."""

from __future__ import annotations

import json
import shutil

import pytest

from studio.models.format import ModelError, find_models, load_model, read_model_info, resolve_model


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, target)
    return target


def edit_manifest(folder, change):
    data = json.loads((folder / "model.json").read_text())
    change(data)
    (folder / "model.json").write_text(json.dumps(data))


def one_sentence(message: str) -> bool:
    return message.count("\n") == 0 and message.rstrip().endswith((".", ")")) and len(message) < 400


def test_tiny_model_loads_with_hash(model_copy):
    model = load_model(model_copy)
    assert model.info.name == "tiny-test" and model.info.resolution == 128
    assert model.upsampler is not None and len(model.hash) == 8
    assert not model.generator.training


def test_the_upsampler_runs_channels_last_on_cpu_and_draws_as_in_the_default_layout(model_copy):
    import copy

    import torch

    from studio.models.cgan import upsampler_layout
    from studio.models.format import save_model

    up = load_model(model_copy).upsampler
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in up.parameters() if p.dim() == 4)
    nchw = copy.deepcopy(up).to(memory_format=torch.contiguous_format)
    assert not nchw.head.weight.is_contiguous(memory_format=torch.channels_last)
    small = torch.randn(3, 4, 32, 32, generator=torch.Generator().manual_seed(0)).tanh()
    with torch.no_grad():
        assert torch.allclose(up(small), nchw(small), atol=1e-4)
    assert upsampler_layout("cuda") == torch.contiguous_format  # not measured on a GPU: left as it was
    # a folder written from a channels-last upsampler loads to the same weights
    model = load_model(model_copy)
    manifest = json.loads((model_copy / "model.json").read_text())
    save_model(model_copy.parent / "again", manifest, model.generator, model.upsampler)
    again = load_model(model_copy.parent / "again").upsampler
    assert all(
        torch.equal(a, b) for a, b in zip(up.state_dict().values(), again.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda f: (f / "model.json").unlink(), "has no model.json"),
        (lambda f: (f / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda f: (f / "model.json").write_text("[1, 2]"), "JSON object"),
        (lambda f: edit_manifest(f, lambda d: d["architecture"].update(id="stylegan9")), "does not know"),
        (lambda f: edit_manifest(f, lambda d: d.pop("conditioning")), "no 'conditioning'"),
        (lambda f: edit_manifest(f, lambda d: d.update(format=7)), "format 7"),
        (lambda f: edit_manifest(f, lambda d: d.update(resolution=64)), "64 px"),
        (lambda f: edit_manifest(f, lambda d: d["architecture"]["base"].update(ch=8)), "shape"),
        (
            lambda f: edit_manifest(f, lambda d: d["architecture"]["base"].update(bogus=1)),
            "unexpected architecture",
        ),
        (lambda f: (f / "generator.safetensors").unlink(), "missing its weights file"),
        (lambda f: (f / "upsampler.safetensors").write_bytes(b"\x00" * 10), "damaged or not a safetensors"),
        (
            lambda f: (f / "generator.safetensors").write_bytes(
                (f / "generator.safetensors").read_bytes()[:2000]
            ),
            "damaged or not a safetensors",
        ),
        (lambda f: edit_manifest(f, lambda d: d["files"].update(generator="generator.pt")), "pickle file"),
    ],
)
def test_broken_model_folders_give_one_sentence(model_copy, breakage, expected):
    breakage(model_copy)
    with pytest.raises(ModelError) as info:
        load_model(model_copy)
    assert expected in str(info.value)
    assert one_sentence(str(info.value))


def test_missing_and_extra_tensors_are_named(model_copy):
    from safetensors.torch import load_file, save_file

    path = model_copy / "generator.safetensors"
    tensors = load_file(str(path))
    dropped = dict(tensors)
    dropped.pop("fc.bias")
    save_file(dropped, str(path))
    with pytest.raises(ModelError, match="lacks 1 tensors.*fc.bias"):
        load_model(model_copy)
    extra = dict(tensors)
    extra["surprise"] = tensors["fc.bias"].clone()
    save_file(extra, str(path))
    with pytest.raises(ModelError, match="does not have.*surprise"):
        load_model(model_copy)


def test_pickle_files_are_never_opened(tmp_path, monkeypatch):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "generator.pt").write_bytes(b"not even read")
    import pickle

    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(ModelError, match="pickle file.*never opens"):
        read_model_info(folder)
    with pytest.raises(ModelError, match="pickle"):
        resolve_model(folder / "generator.pt")


def test_unknown_model_name_lists_known_models():
    with pytest.raises(ModelError, match="no model called 'nope'"):
        resolve_model("nope")


def test_user_models_folder_is_searched(tiny_model_dir, monkeypatch, tmp_path):
    from studio.models.format import user_models_dir

    shutil.copytree(tiny_model_dir, user_models_dir() / "mine")
    names = [m.name for m in find_models() if not isinstance(m, ModelError)]
    assert "tiny-test" in names
    assert resolve_model("mine") == user_models_dir() / "mine"


def test_class_conditional_model_round_trip(tmp_path):
    import torch

    from studio.models.cgan import BaseConfig, BaseGenerator
    from studio.models.format import save_model

    generator = BaseGenerator(BaseConfig(z_dim=8, num_classes=3, cond_dim=8, ch=2, channel_mult=(1, 1)))
    folder = save_model(
        tmp_path / "classes",
        {"name": "classes", "conditioning": {"kind": "class", "classes": ["a", "b", "c"]}},
        generator.eval(),
    )
    model = load_model(folder)
    assert model.info.conditioning.classes == ("a", "b", "c") and model.upsampler is None
    assert model.generator(torch.zeros(2, 8), torch.tensor([0, 2])).shape == (2, 4, 8, 8)
