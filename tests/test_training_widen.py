"""Widening a trained generator (studio/training/widen.py): the same pictures, copies that can part, a run
that starts from the wider weights beside a discriminator of the old width."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_train_options
from safetensors.torch import load_file, save_file

from studio.models.cgan import BaseConfig, BaseGenerator
from studio.training.dataset import make_synthetic_dataset
from studio.training.options import CHECKPOINT, TrainError
from studio.training.train import train
from studio.training.widen import main, widen_state

CONFIG = BaseConfig(z_dim=8, embed_dim=6, cond_dim=5, ch=4, channel_mult=(4, 2, 1))


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), count=12)


def trained_like(config: BaseConfig) -> BaseGenerator:
    """A generator with every weight and BN statistic away from its initial value (as after training)."""
    torch.manual_seed(1)
    generator = BaseGenerator(config)
    with torch.no_grad():
        for tensor in generator.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor) * 0.3 + (1.0 if tensor.dim() == 1 else 0.0))
        for name, tensor in generator.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(tensor.abs() + 0.5)
    return generator


CLASSES = BaseConfig(z_dim=8, num_classes=3, cond_dim=5, ch=4, channel_mult=(4, 2, 1))


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("shape", [CONFIG, CLASSES], ids=["text", "classes"])
def test_the_wider_generator_draws_the_same_pictures(mode, shape):
    narrow = trained_like(shape).double()  # in float64 only rounding is left to differ
    state, config = widen_state(narrow.state_dict(), shape, 7, seed=3)
    wide = BaseGenerator(config).double()
    wide.load_state_dict(state)
    assert config.ch == 7 and config.channel_mult == shape.channel_mult
    assert wide.fc.out_features == 16 * 28 and wide.out_conv.in_channels == 7
    z = torch.randn(5, 8, dtype=torch.float64)
    e = torch.tensor([0, 1, 2, 1, 0]) if shape.num_classes else torch.randn(5, 6, dtype=torch.float64)
    getattr(narrow, mode)()
    getattr(wide, mode)()
    with torch.no_grad():
        expected = narrow(z, e)
        assert expected.std() > 0.3
        assert torch.allclose(wide(z, e), expected, rtol=0, atol=1e-9)


def test_copies_carry_different_shares_so_training_can_pull_them_apart():
    narrow = trained_like(CONFIG)
    state, config = widen_state(narrow.state_dict(), CONFIG, 8, seed=0)
    # every extra output channel of the last stage copies one of the first four's incoming weights...
    conv = state["blocks.1.conv2.weight"]
    old = conv.shape[0] // 2
    copies = [j for j in range(old, conv.shape[0]) if any(torch.equal(conv[j], conv[i]) for i in range(old))]
    assert len(copies) == old
    # ...while the layer that reads them splits the outgoing weight unevenly: shares differ, and sum to the old
    out = state["out_conv.weight"]
    assert not torch.allclose(out[:, :old].abs().sum(), out[:, old:].abs().sum())
    wide = BaseGenerator(config)
    wide.load_state_dict(state)
    wide.train()
    loss = wide(torch.randn(6, 8), torch.randn(6, 6)).square().mean()
    loss.backward()
    grad = wide.blocks[1].conv2.weight.grad
    source = next(i for i in range(old) if torch.equal(conv[old], conv[i]))
    assert not torch.allclose(grad[old], grad[source])


def test_narrowing_is_refused():
    with pytest.raises(ValueError, match="narrower"):
        widen_state(trained_like(CONFIG).state_dict(), CONFIG, 3)


def test_the_command_writes_a_snapshot_a_run_can_start_from_beside_an_old_width_discriminator(
    synthetic_data, tmp_path, capsys
):
    # a tiny run at width 4 gives the generator and the discriminator snapshot
    first = tiny_train_options(synthetic_data, tmp_path / "narrow", 2)
    train(first)
    snapshots = first.run / "snapshots"
    g = sorted(snapshots.glob("g_ema_*.safetensors"))[-1]
    d = sorted(snapshots.glob("d_*.safetensors"))[-1]
    out = tmp_path / "wide" / "g_ema_0000000.safetensors"
    assert main(["--generator", str(g), "--ch", "6", "--out", str(out)]) == 0
    assert json.loads((out.parent / "config.json").read_text(encoding="utf-8"))["ch"] == 6
    wider = tiny_train_options(
        synthetic_data, tmp_path / "go-on", 1, ch=6, d_ch=4, init_generator=out, init_discriminator=d
    )
    train(wider)
    saved = torch.load(wider.run / CHECKPOINT, weights_only=False)
    assert saved["generator"]["out_conv.weight"].shape[1] == 6
    assert saved["runs"][-1]["d_ch"] == 4
    # resuming it without --d-ch (a discriminator of width 6) is one sentence, and the checkpoint is kept
    with pytest.raises(TrainError, match=r"trained at another width \(--ch, --d-ch\)"):
        train(tiny_train_options(synthetic_data, tmp_path / "go-on", 2, ch=6, resume=True))
    assert torch.load(wider.run / CHECKPOINT, weights_only=False)["step"] == saved["step"]
    with pytest.raises(TrainError, match=r"--d-ch must be 1 or more \(got 0\)"):
        train(tiny_train_options(synthetic_data, tmp_path / "zero", 1, d_ch=0))
    assert not (tmp_path / "zero").exists()
    # a narrower --ch is one sentence, and nothing is written
    bad = tmp_path / "bad" / "g.safetensors"
    assert main(["--generator", str(g), "--ch", "2", "--out", str(bad)]) == 2
    assert "narrower" in capsys.readouterr().err and not bad.exists()


def test_a_model_folder_is_read_through_its_model_json(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    save_file(trained_like(CONFIG).state_dict(), str(folder / "generator.safetensors"))
    (folder / "model.json").write_text(
        json.dumps({"architecture": {"base": CONFIG.to_json()}}), encoding="utf-8"
    )
    out = tmp_path / "w" / "g.safetensors"
    assert main(["--generator", str(folder), "--ch", "5", "--out", str(out)]) == 0
    assert load_file(str(out))["out_norm.running_mean"].shape == (5,)
