"""The torch-free engine description and the one model-mismatch sentence."""

from __future__ import annotations

import subprocess
import sys

from studio.engine.info import model_mismatch


def test_the_engine_info_module_does_not_import_torch():
    code = "import sys, studio.engine.info; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_model_mismatch_names_the_model_and_the_hash():
    assert model_mismatch("emoji", "1a2b3c4d", "emoji", "1a2b3c4d") is None
    assert model_mismatch("emoji", "", "emoji", "1a2b3c4d") is None  # an unknown hash is not a mismatch
    other = model_mismatch("emoji", "1a2b3c4d", "faces", "99999999", "owl.png")
    assert other.other_model
    assert other.sentence.startswith("owl.png was made with the model 'emoji' (hash 1a2b3c4d)")
    assert "'faces' is loaded" in other.sentence and "--model emoji" in other.sentence
    build = model_mismatch("emoji", "1a2b3c4d", "emoji", "ffffffff")
    assert not build.other_model and "may differ" in build.sentence and "ffffffff" in build.sentence


def test_every_device_kind_renders_in_float32_unless_asked_otherwise(monkeypatch):
    """float32 on CUDA too: on an H200 float16 autocast was slower for these small networks and drew pixels further
    from the CPU's (docs/bench/cuda_h200_s51.json). A machine without a GPU stands in for one here."""
    import torch

    from studio.engine.devices import DTYPE_ENV, choose_device

    monkeypatch.delenv(DTYPE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Stand-in GPU")
    cuda = choose_device("cuda")
    assert (cuda.kind, cuda.dtype, cuda.label) == ("cuda", torch.float32, "CUDA · Stand-in GPU")
    assert choose_device("cpu").dtype == torch.float32
    monkeypatch.setenv(DTYPE_ENV, "float16")
    assert choose_device("cuda").dtype == torch.float16  # GAN_STUDIO_DTYPE still overrides
