"""scripts/swap_generator.py: a model folder with a widened base draws what the original draws (Net2WiderNet keeps
the picture), every other file kept byte for byte; a snapshot of another condition size is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import load_script

from studio.models.format import load_model
from studio.training import widen


def _draw(folder: Path) -> torch.Tensor:
    model = load_model(folder)
    torch.manual_seed(1)
    z, cond = torch.randn(3, model.info.z_dim), torch.randn(3, model.generator.config.cond_dim)
    with torch.no_grad():
        return model.generator.eval().synthesize(z, cond)


def test_a_widened_snapshot_draws_as_the_original_in_a_copy_of_the_folder(tiny_model_dir, tmp_path):
    snapshot = tmp_path / "run" / "g_ema_0000000.safetensors"
    assert widen.main(["--generator", str(tiny_model_dir), "--ch", "8", "--out", str(snapshot)]) == 0
    out = tmp_path / "W"
    model_hash = load_script("swap_generator").swap_generator(tiny_model_dir, snapshot, out)
    assert load_model(out).hash == model_hash != load_model(tiny_model_dir).hash
    assert load_model(out).generator.config.ch == 8
    assert torch.allclose(_draw(out), _draw(tiny_model_dir), atol=1e-4)
    for path in tiny_model_dir.iterdir():
        if path.name not in ("model.json", "generator.safetensors"):
            assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    before = json.loads((tiny_model_dir / "model.json").read_text(encoding="utf-8"))
    after = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert after["architecture"]["base"] == {**before["architecture"]["base"], "ch": 8}
    with pytest.raises(FileExistsError):
        load_script("swap_generator").swap_generator(tiny_model_dir, snapshot, out)


def test_a_snapshot_of_another_condition_size_is_refused(tiny_model_dir, tmp_path):
    snapshot = tmp_path / "run" / "g_ema_0000000.safetensors"
    assert widen.main(["--generator", str(tiny_model_dir), "--ch", "8", "--out", str(snapshot)]) == 0
    config = json.loads((snapshot.parent / "config.json").read_text(encoding="utf-8"))
    (snapshot.parent / "config.json").write_text(json.dumps({**config, "cond_dim": 32}), encoding="utf-8")
    with pytest.raises(ValueError, match="only the width may"):
        load_script("swap_generator").swap_generator(tiny_model_dir, snapshot, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
