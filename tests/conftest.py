"""Shared fixtures: a tiny random model folder and a fast deterministic text encoder.

The tiny model is a test fixture with random weights; it is never presented as a trained model.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

# The window tests' fixtures (qloop, make_engine, make_window), for every test module that asks for them. On a
# machine without Qt (the GPU check runs the engine's and training's tests there) they are left out, and only the
# window tests, which import Qt themselves, fail to collect.
try:
    import PySide6  # noqa: F401
except ImportError:
    pytest_plugins: list[str] = []
else:
    pytest_plugins = ["test_ui_helpers"]

# Tests use tiny models: one thread each is fastest, and two-thread OpenMP pools that spin against other
# busy processes on a two-core machine run a hundred times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Prompt embeddings cached on disk go to a throw-away folder, never the user's cache.
os.environ.setdefault("GAN_STUDIO_CACHE_DIR", tempfile.mkdtemp(prefix="gan-studio-test-cache-"))
# The CLI and the window log to the user's log folder: tests log to a folder of their own.
os.environ.setdefault("GAN_STUDIO_LOG_DIR", tempfile.mkdtemp(prefix="gan-studio-test-logs-"))

TINY_NAME = "tiny-test"


class HashTextEncoder:
    """Deterministic unit vectors from a prompt's hash: stands in for MiniLM where meaning does not matter."""

    encoder_id = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self):
        self.calls = 0

    def encode(self, prompts):
        self.calls += 1
        out = []
        for prompt in prompts:
            seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "little")
            vector = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out.append(vector / np.linalg.norm(vector))
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)


def load_script(name: str):
    """``scripts/<name>.py`` imported as a module (the scripts folder is not a package)."""
    import importlib.util

    folder = Path(__file__).resolve().parents[1] / "scripts"
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    # as `python scripts/<name>.py` runs it: the scripts folder first on the path, so it imports its siblings
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def make_tiny_model(folder: Path, with_upsampler: bool = True) -> Path:
    import torch

    from studio.models.cgan import BaseConfig, BaseGenerator, Upsampler, UpsamplerConfig
    from studio.models.format import save_model

    torch.manual_seed(0)
    generator = BaseGenerator(BaseConfig(z_dim=16, cond_dim=16, ch=4, channel_mult=(2, 2, 1, 1)))
    # Random BN statistics so outputs are not all alike.
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    upsampler = Upsampler(UpsamplerConfig(ch=4, n_blocks=1, tail_ch=4)) if with_upsampler else None
    manifest = {
        "name": TINY_NAME,
        "version": "0.0.1",
        "description": "Random tiny model for tests (not trained).",
        "conditioning": {"kind": "text", "encoder": "all-MiniLM-L6-v2", "embedding_dim": 384},
        "default_truncation": 0.8,
        "license": "test fixture",
        "training_data": "none",
        "metrics": {},
    }
    return save_model(folder / TINY_NAME, manifest, generator.eval(), upsampler.eval() if upsampler else None)


def tiny_train_options(data: Path, folder: Path, steps, **options):
    """Training options for the tests' tiny runs (batch 4, ``ch`` 4, float32, one thread, quiet).

    The model goes to ``folder/model`` and the run (checkpoint, snapshots, samples) to ``folder/run``;
    ``options`` sets or overrides any other :class:`TrainOptions` field.
    """
    from studio.training.options import TrainOptions

    settings = dict(
        data=data,
        out=folder / "model",
        run=folder / "run",
        stage="base",
        steps=steps,
        batch=4,
        ch=4,
        threads=1,
        bf16=False,
        quiet=True,
        log_every=1,
        standing_batches=1,
    )
    settings.update(options)
    return TrainOptions(**settings)


def stored_everywhere(request, tmp_path: Path, shown: str) -> dict:
    """Round-trip ``request`` through its JSON, the one-line parameters text (which must show ``shown``, e.g.
    "Variety: 0.35", while a default request's text has no such key) and a PNG's metadata; returns the JSON
    data for the caller's own field checks."""
    import json

    from PIL import Image

    from studio.engine.requests import GenerationRequest
    from studio.io.metadata import ImageParameters, parameters_text, read_parameters, save_options
    from studio.io.parameters_text import parse_parameters_text

    data = json.loads(json.dumps(request.to_json()))
    assert GenerationRequest.from_json(data) == request
    parameters = ImageParameters(request=request, model_hash="abc", size=(128, 128))
    text = parameters_text(parameters)
    assert shown in text
    assert parse_parameters_text(text, model="emoji").request == request
    key = shown.split(":")[0]
    assert key not in parameters_text(ImageParameters(request=GenerationRequest("cat"), size=(1, 1)))
    path = tmp_path / "stored.png"
    Image.new("RGBA", (4, 4)).save(path, **save_options(parameters, "png"))
    assert read_parameters(path).request == request
    return data


@contextmanager
def open_engine(model_dir: Path):
    """A ready engine on ``model_dir`` with the hash encoder, on the CPU; closed on leaving."""
    from studio.engine.engine import Engine

    with Engine(model=model_dir, device="cpu", text_encoder=HashTextEncoder()) as engine:
        engine.wait_ready(timeout=60)
        yield engine


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture
def text_encoder() -> HashTextEncoder:
    return HashTextEncoder()


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Keep every test's user data (gallery, settings, user models) inside its own temporary folder."""
    monkeypatch.setenv("GAN_STUDIO_DATA_DIR", str(tmp_path / "user-data"))
    monkeypatch.setenv("GAN_STUDIO_CONFIG_DIR", str(tmp_path / "user-config"))


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir):
    """An engine on the tiny model with the hash encoder, shared by one test module."""
    with open_engine(tiny_model_dir) as engine:
        yield engine
