"""One step of each stage changes the weights; a resumed run continues exactly from its checkpoint."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_train_options
from safetensors.torch import load_file

from studio.training.dataset import make_synthetic_dataset
from studio.training.options import CHECKPOINT, TrainError
from studio.training.train import train


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), count=12)


def _options(data, tmp_path, name, stage, steps, resume=False):
    return tiny_train_options(data, tmp_path / name, steps, stage=stage, resume=resume)


def _checkpoint(options):
    return torch.load(options.run / CHECKPOINT, weights_only=False)


def test_base_step_changes_weights_and_resumes_exactly(synthetic_data, tmp_path):
    one = _options(synthetic_data, tmp_path, "a", "base", 1)
    summary = train(one)
    assert summary["step"] == 1
    state = _checkpoint(one)
    torch.manual_seed(0)
    from studio.models.cgan import BaseGenerator
    from studio.training.networks import base_config

    fresh = BaseGenerator(base_config(4, state["config"]["embed_dim"])).state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in state["generator"].items() if k in fresh)
    # the model folder holds safetensors only, and loads
    from studio.models.format import load_model

    assert sorted(p.name for p in one.out.iterdir()) == ["generator.safetensors", "model.json"]
    assert load_model(one.out).info.training_data
    # resume 1 -> 3 equals a straight run 0 -> 3
    train(_options(synthetic_data, tmp_path, "a", "base", 3, resume=True))
    resumed = _checkpoint(one)
    assert resumed["step"] == 3
    assert [(r["from_step"], r["to_step"]) for r in resumed["runs"]] == [(0, 1), (1, 3)]
    assert resumed["runs"][1]["recon_weight"] == one.recon_weight
    straight_opts = _options(synthetic_data, tmp_path, "b", "base", 3)
    train(straight_opts)
    straight = _checkpoint(straight_opts)
    for key in ("generator", "discriminator"):
        for name, value in straight[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")


def test_upsampler_step_changes_weights_and_resumes_exactly(synthetic_data, tmp_path):
    base = _options(synthetic_data, tmp_path, "m", "base", 1)
    train(base)
    one = _options(synthetic_data, tmp_path, "m", "upsampler", 1)
    one.run = tmp_path / "up-run"
    train(one)
    first = _checkpoint(one)
    assert first["step"] == 1
    from studio.models.cgan import Upsampler
    from studio.training.networks import PatchDiscriminator, upsampler_config

    torch.manual_seed(0)
    fresh = Upsampler(upsampler_config(4)).state_dict()
    fresh_critic = PatchDiscriminator(ch=4).state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in first["upsampler"].items())
    # the adversarial term is on by default: its critic took a step too
    assert any(not torch.equal(fresh_critic[k], v) for k, v in first["critic"].items() if "weight_orig" in k)
    shipped = load_file(str(one.out / "upsampler.safetensors"))
    assert set(shipped) == set(fresh)  # the critic never ships
    one.steps, one.resume = 3, True
    train(one)
    resumed = _checkpoint(one)
    assert resumed["step"] == 3
    straight = _options(synthetic_data, tmp_path, "m", "upsampler", 3)
    straight.run = tmp_path / "up-straight"
    train(straight)
    for key in ("upsampler", "critic"):
        for name, value in _checkpoint(straight)[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")


def test_upsampler_l1_run_resumes_with_a_fresh_critic(synthetic_data, tmp_path, capsys):
    l1 = _options(synthetic_data, tmp_path, "l1", "upsampler", 1)
    l1.adv_weight = 0.0
    train(l1)
    before = _checkpoint(l1)
    del before["critic"], before["opt_d"], before["runs"]  # what an L1 run of an older trainer wrote
    torch.save(before, l1.run / CHECKPOINT)
    adv = _options(synthetic_data, tmp_path, "l1", "upsampler", 2, resume=True)
    adv.quiet = False
    train(adv)
    assert "starting a fresh one" in capsys.readouterr().out
    after = _checkpoint(adv)
    assert after["step"] == 2 and "critic" in after
    # a checkpoint from before runs were recorded counts as one run
    assert [(r["from_step"], r["to_step"]) for r in after["runs"]] == [(0, 1), (1, 2)]
    assert [r.get("adv_weight") for r in after["runs"]] == [None, adv.adv_weight]


def test_upsampler_faint_dips_apply_only_when_set_and_are_recorded(synthetic_data, tmp_path, monkeypatch):
    """--dip-augment: the inputs go through faint_dips with the run's share (and only then), and the run records it."""
    from studio.training import upsampler_stage

    shares = []
    real = upsampler_stage.faint_dips
    monkeypatch.setattr(
        upsampler_stage, "faint_dips", lambda x, share, g: shares.append(share) or real(x, share, g)
    )
    plain = _options(synthetic_data, tmp_path, "plain", "upsampler", 2)
    plain.adv_weight = 0.0
    train(plain)
    assert shares == []
    dipped = _options(synthetic_data, tmp_path, "dipped", "upsampler", 2)
    dipped.adv_weight, dipped.dip_augment = 0.0, 0.5
    train(dipped)
    assert shares == [0.5, 0.5]
    assert _checkpoint(dipped)["runs"][-1]["dip_augment"] == 0.5


def test_upsampler_run_starts_from_given_weights_and_refuses_other_shapes(synthetic_data, tmp_path):
    from studio.models.cgan import Upsampler
    from studio.models.tensor_file import save_tensors
    from studio.training.networks import upsampler_config
    from studio.training.options import TrainError

    torch.manual_seed(7)
    start = Upsampler(upsampler_config(4)).state_dict()
    save_tensors(tmp_path / "start.safetensors", start)
    options = _options(synthetic_data, tmp_path, "init", "upsampler", 0)
    options.init_upsampler = tmp_path / "start.safetensors"
    train(options)  # no step: the run holds the given weights exactly
    for name, value in _checkpoint(options)["upsampler"].items():
        assert torch.equal(value, start[name]), name
    wider = _options(synthetic_data, tmp_path, "wide", "upsampler", 1)
    save_tensors(tmp_path / "wide.safetensors", Upsampler(upsampler_config(8)).state_dict())
    wider.init_upsampler = tmp_path / "wide.safetensors"
    with pytest.raises(TrainError, match="do not fit this upsampler"):
        train(wider)


def test_cli_train_runs_a_step(synthetic_data, tmp_path):
    from studio.cli import main

    code = main(
        [
            "train",
            "--data",
            str(synthetic_data),
            "--out",
            str(tmp_path / "cli-model"),
            "--run-dir",
            str(tmp_path / "cli-run"),
            "--steps",
            "1",
            "--batch",
            "4",
            "--ch",
            "4",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    assert (tmp_path / "cli-model" / "model.json").exists()
    assert list((tmp_path / "cli-run" / "samples").glob("*.png"))


def test_the_torchrun_entry_does_not_import_the_cli():
    import subprocess
    import sys

    code = (
        "import sys; import studio.training.train as t;"
        "assert 'studio.cli' not in sys.modules, 'CLI imported';"
        "t.main(['--help'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--stage" in result.stdout and "--device" in result.stdout


def test_pick_device_follows_the_engine_rule(monkeypatch):
    import pytest

    from studio.training.options import TrainError
    from studio.training.runs import pick_device

    monkeypatch.setenv("GAN_STUDIO_DEVICE", "cpu")
    assert pick_device(None).type == "cpu"  # the engine's environment override applies to training too
    with pytest.raises(TrainError, match="not a device name|not a supported device"):
        pick_device("tpu")


def test_bf16_autocast_only_where_the_cpu_has_bf16_instructions():
    """oneDNN emulates bf16 on AVX-512 CPUs without it (1.65x slower than float32 in training, measured):
    only the native flags count, and oneDNN's answer only decides where /proc/cpuinfo says nothing."""
    from studio.training.runs import cpu_supports_bf16

    ice_lake = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
    sapphire_rapids = "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    zen4 = "flags\t\t: avx2 avx512f avx512_bf16\n"
    avx2_only = "flags\t\t: sse2 avx avx2 fma\n"
    graviton3 = "Features\t: fp asimd sve bf16 i8mm\n"
    assert not cpu_supports_bf16(ice_lake)
    assert not cpu_supports_bf16(avx2_only)
    assert cpu_supports_bf16(sapphire_rapids) and cpu_supports_bf16(zen4) and cpu_supports_bf16(graviton3)
    onednn = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert cpu_supports_bf16("") == onednn  # no flags (not Linux): oneDNN's answer decides


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_training_tools_refuse_a_thread_count_under_one_in_one_sentence(
    synthetic_data, tmp_path, capsys, threads
):
    """`gan-studio train`, the snapshot average and the judge trainer share the engine's `--threads` rule: a
    count under one is one sentence and nothing is written (torch would otherwise ignore 0 or fail on -2)."""
    from studio.cli import main
    from studio.training import average, judge

    before = torch.get_num_threads()
    out = tmp_path / "model"
    args = ["train", "--data", str(synthetic_data), "--out", str(out), "--run-dir", str(tmp_path / "run")]
    assert main([*args, "--steps", "1", "--batch", "4", "--ch", "4", "--threads", threads]) != 0
    err = capsys.readouterr().err.strip()
    assert f"--threads must be at least 1 (got {threads})." in err and len(err.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "run").exists()
    snapshot = str(tmp_path / "g.safetensors")  # never read: the thread count is refused first
    averaged = tmp_path / "avg.safetensors"
    common = ["--data", str(synthetic_data), "--out", str(averaged), "--threads", threads]
    assert average.main(["--snapshot", snapshot, "--snapshot", snapshot, *common]) == 2
    assert f"--threads must be at least 1 (got {threads})." in capsys.readouterr().err
    with pytest.raises(SystemExit):
        judge.main(
            ["--data", str(synthetic_data), "--out", str(tmp_path / "j.safetensors"), "--threads", threads]
        )
    assert f"--threads must be at least 1 (got {threads})." in capsys.readouterr().err
    assert not averaged.exists() and not (tmp_path / "j.safetensors").exists()
    assert torch.get_num_threads() == before


def test_a_run_trains_with_the_augment_policy_given_and_records_it(synthetic_data, tmp_path):
    options = tiny_train_options(synthetic_data, tmp_path / "a", 2, augment="color,translation")
    train(options)
    state = torch.load(options.run / CHECKPOINT, weights_only=False)
    assert state["step"] == 2 and state["runs"][-1]["augment"] == "color,translation"
    with pytest.raises(TrainError, match="--augment: 'crop' is not a DiffAugment policy"):
        train(tiny_train_options(synthetic_data, tmp_path / "b", 1, augment="crop"))
    assert not (tmp_path / "b").exists()


def test_the_learning_rates_come_from_the_command_line_and_are_recorded(synthetic_data, tmp_path, capsys):
    from studio.cli import main

    def cli(name, *extra):
        tiny = ["--steps", "2", "--batch", "4", "--ch", "4", "--threads", "1"]
        folder = ["--out", str(tmp_path / f"{name}-model"), "--run-dir", str(tmp_path / name)]
        return main(["train", "--data", str(synthetic_data), *folder, *tiny, *extra])

    assert cli("slow-d", "--lr-d", "5e-5", "--lr-g", "1e-4") == 0
    state = torch.load(tmp_path / "slow-d" / CHECKPOINT, weights_only=False)
    assert [g["lr"] for g in state["opt_d"]["param_groups"]] == [5e-5]
    assert [g["lr"] for g in state["opt_g"]["param_groups"]] == [1e-4]
    assert (state["runs"][-1]["lr_d"], state["runs"][-1]["lr_g"]) == (5e-5, 1e-4)
    assert cli("default") == 0
    assert torch.load(tmp_path / "default" / CHECKPOINT, weights_only=False)["runs"][-1]["lr_d"] == 2e-4
    capsys.readouterr()
    assert cli("zero", "--lr-d", "0") != 0
    assert "--lr-d must lie above 0 and at most 0.1 (got 0.0)." in capsys.readouterr().err
    assert not (tmp_path / "zero").exists()
    assert (
        cli("critic", "--stage", "upsampler", "--lr-d", "-1") != 0
    )  # the upsampler's critic learns at --lr-d
    assert "--lr-d must lie above 0" in capsys.readouterr().err
    assert not (tmp_path / "critic").exists()


def test_checkpoint_tensors_are_saved_from_the_cpu_nested_as_they_were():
    """A run trained on a GPU resumes, or is read, on a machine without one (the H200 check found checkpoints that
    held CUDA tensors); on_cpu keeps every container's kind and leaves what is not a tensor alone."""
    from studio.training.runs import on_cpu

    weight = torch.ones(2, requires_grad=True)
    state = {
        "g": {"w": weight},
        "rng": [torch.zeros(3, dtype=torch.uint8)],
        "pair": (weight * 2, 5),
        "step": 7,
    }
    moved = on_cpu(state)
    assert isinstance(moved["pair"], tuple) and moved["pair"][1] == 5 and moved["step"] == 7
    assert isinstance(moved["rng"], list) and moved["rng"][0].dtype == torch.uint8
    assert not moved["g"]["w"].requires_grad and not moved["pair"][0].requires_grad
    assert all(t.device.type == "cpu" for t in (moved["g"]["w"], moved["rng"][0], moved["pair"][0]))


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh runs it there)"
)
def test_a_run_trained_on_the_gpu_resumes_on_the_cpu(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", count=12, dim=16)
    options = tiny_train_options(data, tmp_path, steps=2)
    options.device = "cuda"
    train(options)
    state = torch.load(options.run / CHECKPOINT, weights_only=False)
    assert {t.device.type for t in state["generator"].values()} == {"cpu"}
    options.device, options.resume, options.steps = "cpu", True, 3
    assert train(options)["step"] == 3
