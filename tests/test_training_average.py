"""The weight-average tool: a weighted mean of snapshots, BN statistics recomputed, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from studio.models.cgan import BaseConfig, BaseGenerator
from studio.training.average import average_states, main
from studio.training.dataset import load_dataset, make_synthetic_dataset
from studio.training.networks import base_config
from studio.training.options import TrainError


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), count=12)


def _snapshot(folder: Path, seed: int, ch: int, dim: int) -> Path:
    torch.manual_seed(seed)
    config = base_config(ch, dim)
    generator = BaseGenerator(config)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"g_ema_{seed:07d}.safetensors"
    save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, str(path))
    (folder / "config.json").write_text(json.dumps(config.to_json()))
    return path


def test_weighted_mean_of_float_tensors_keeps_integer_buffers_of_the_first():
    a = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(9)}
    out = average_states([a, b], [1.0, 3.0])
    assert torch.allclose(out["w"], torch.tensor([1.5, 1.0]))
    assert out["n"].item() == 3
    with pytest.raises(TrainError, match="one weight per snapshot"):
        average_states([a, b], [1.0])
    with pytest.raises(TrainError, match="not all zero"):
        average_states([a, b], [0.0, 0.0])
    with pytest.raises(TrainError, match="same shape"):
        average_states([a, {"w": torch.zeros(3), "n": torch.tensor(1)}], [1.0, 1.0])


def test_the_average_of_two_snapshots_is_their_midpoint_with_fresh_bn_statistics(synthetic_data, tmp_path):
    dim = load_dataset(synthetic_data).caption_emb.shape[1]
    a = _snapshot(tmp_path / "a", 1, 4, dim)
    b = _snapshot(tmp_path / "b", 2, 4, dim)
    out = tmp_path / "soup" / "g_ema_soup.safetensors"
    argv = ["--snapshot", str(a), "--snapshot", str(b), "--data", str(synthetic_data), "--out", str(out)]
    assert main(argv + ["--batches", "2"]) == 0
    sa, sb, so = load_file(str(a)), load_file(str(b)), load_file(str(out))
    weights = [k for k in so if so[k].is_floating_point() and "running" not in k]
    assert weights
    for key in weights:
        assert torch.allclose(so[key], (sa[key] + sb[key]) / 2, atol=1e-6), key
    means = [k for k in so if k.endswith("running_mean")]
    assert means
    # recomputed from renders of the averaged network, not the mean of the two snapshots' statistics
    assert any(not torch.allclose(so[k], (sa[k] + sb[k]) / 2, atol=1e-4) for k in means)
    # the result is a snapshot like any other: its config sits beside it and it loads into a generator
    config = BaseConfig.from_json(json.loads((out.parent / "config.json").read_text()))
    BaseGenerator(config).load_state_dict(so)


def test_snapshots_of_different_widths_or_one_snapshot_are_refused_in_one_sentence(
    synthetic_data, tmp_path, capsys
):
    dim = load_dataset(synthetic_data).caption_emb.shape[1]
    a = _snapshot(tmp_path / "a", 1, 4, dim)
    wide = _snapshot(tmp_path / "wide", 2, 8, dim)
    out = tmp_path / "out.safetensors"
    common = ["--data", str(synthetic_data), "--out", str(out)]
    assert main(["--snapshot", str(a), "--snapshot", str(wide), *common]) == 2
    assert "only snapshots of one generator shape" in capsys.readouterr().err
    assert main(["--snapshot", str(a), *common]) == 2
    assert "at least two" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "g.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "bad" / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    assert main(["--snapshot", str(a), "--snapshot", str(tmp_path / "bad" / "g.safetensors"), *common]) == 2
    assert "Cannot read the snapshot" in capsys.readouterr().err
    assert not out.exists()
