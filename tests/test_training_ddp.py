"""The data-parallel path: two CPU processes under torchrun with the gloo backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from studio.training.dataset import make_synthetic_dataset
from studio.training.options import CHECKPOINT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_process_gloo_training(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", count=12)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "studio.training.train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "model"),
        "--run-dir",
        str(tmp_path / "run"),
        "--stage",
        "base",
        "--steps",
        "2",
        "--batch",
        "4",
        "--ch",
        "4",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    assert state["world"] == 2 and state["step"] == 2
    assert len(state["rng"]) == 2 and state["rng"][0]["sampler"] != state["rng"][1]["sampler"]
    assert state["images"] == 2 * 2 * 4  # two steps of two processes of four images
    assert (tmp_path / "model" / "generator.safetensors").exists()
