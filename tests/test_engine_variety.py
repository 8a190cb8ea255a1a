"""Variety: each seed moves the prompt's condition along its own direction, reproducibly, in every layer that
carries a request (engine, JSON, image parameters, parameters text, session state, CLI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import stored_everywhere

from studio.engine.latents import VARIETY_SEED, seeded_z, variety_offsets
from studio.engine.requests import MAX_VARIETY, Endpoint, GenerationRequest, RequestError
from studio.io.metadata import read_parameters
from studio.models.format import load_model
from studio.session.state import SessionState


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture
def engine(tiny_engine):
    return tiny_engine


def _images(engine, request):
    results = list(engine.generate_sync(request))
    assert all(r.ok for r in results), [r.error for r in results]
    return [r.image for r in results]


def test_offsets_are_unit_directions_through_the_projection(tiny):
    generator = tiny.generator
    z = torch.stack([seeded_z(s, generator.config.z_dim) for s in range(5)])
    offsets = variety_offsets(z, generator)
    assert offsets.shape == (5, generator.config.cond_dim)
    # a unit direction d in embedding space, from z through the fixed map, becomes W d (no bias: an offset)
    seeded = torch.Generator().manual_seed(VARIETY_SEED)
    basis = torch.randn(generator.config.z_dim, generator.config.embed_dim, generator=seeded)
    d = torch.nn.functional.normalize(z @ basis, dim=1)
    torch.testing.assert_close(offsets, d @ generator.embed_proj.weight.detach().T)
    singular = torch.linalg.svdvals(generator.embed_proj.weight.detach())
    assert bool((offsets.norm(dim=1) <= singular.max() + 1e-5).all()) and bool(
        (offsets.norm(dim=1) > 0).all()
    )
    # each seed its own direction; truncation (a scaled z) keeps it; zeros have none
    assert torch.cdist(offsets, offsets).triu(1).sum() > 0
    torch.testing.assert_close(variety_offsets(0.5 * z, generator), offsets)
    assert variety_offsets(torch.zeros(1, generator.config.z_dim), generator).abs().max() == 0
    # one row alone gives what it gives in a batch, and the same call gives the same numbers
    torch.testing.assert_close(variety_offsets(z[3:4], generator)[0], offsets[3], rtol=0, atol=0)
    torch.testing.assert_close(variety_offsets(z, generator), offsets, rtol=0, atol=0)


def test_the_engine_moves_the_condition_by_variety_times_the_offset(engine, tiny, text_encoder):
    plain = GenerationRequest("red apple", seed=4, model="tiny-test")
    varied = GenerationRequest("red apple", seed=4, model="tiny-test", variety=0.6)
    assert np.array_equal(
        _images(engine, plain)[0],
        _images(engine, GenerationRequest("red apple", seed=4, model="tiny-test"))[0],
    )
    moved = _images(engine, varied)[0]
    assert not np.array_equal(moved, _images(engine, plain)[0])
    assert np.array_equal(moved, _images(engine, varied)[0])  # reproducible
    # the reference: the same arithmetic by hand on the loaded generator
    generator = tiny.generator.eval()
    z = seeded_z(4, generator.config.z_dim)[None]
    with torch.inference_mode():
        cond = generator.condition(torch.from_numpy(text_encoder.encode(["red apple"])).float())
        cond = cond + 0.6 * variety_offsets(z, generator)
        image = tiny.upsampler(generator.synthesize(z, cond))
    from studio.models.cgan import premultiplied_to_rgba_uint8

    expected = premultiplied_to_rgba_uint8(image.float()).numpy()[0]
    assert np.abs(expected.astype(int) - moved.astype(int)).max() <= 1
    # what the evaluation scores at a variety is what the engine draws
    from studio.training.evaluate import VariedGenerator

    with torch.inference_mode():
        scored = VariedGenerator(generator, 0.6)(
            z, torch.from_numpy(text_encoder.encode(["red apple"])).float()
        )
    torch.testing.assert_close(tiny.upsampler(scored), image)


def test_variety_spreads_the_seeds_and_batches_match_single_images(engine):
    def spread(images):
        x = np.stack(images).astype(np.float32) / 255.0
        return np.mean([np.sqrt(((x[i] - x[j]) ** 2).mean()) for i in range(len(x)) for j in range(i)])

    calm = _images(engine, GenerationRequest("cat", seed=10, count=6, model="tiny-test"))
    wild = _images(engine, GenerationRequest("cat", seed=10, count=6, model="tiny-test", variety=1.0))
    assert spread(wild) > spread(calm)
    one = _images(engine, GenerationRequest("cat", seed=13, model="tiny-test", variety=1.0))[0]
    assert np.array_equal(one, wild[3])


@pytest.mark.parametrize("value", [-0.1, MAX_VARIETY + 0.01, float("nan"), float("inf")])
def test_variety_out_of_range_is_one_sentence(value):
    with pytest.raises(RequestError, match=r"^Variety must be a number between 0 and 1\.$"):
        GenerationRequest("cat", variety=value).validated()


def test_variety_round_trips_json_text_and_image_parameters(tmp_path):
    request = GenerationRequest("cat", seed=3, variety=0.35, interpolate_to=Endpoint("dog", 4), t=0.5)
    data = stored_everywhere(request, tmp_path, "Variety: 0.35")
    assert data["variety"] == 0.35
    assert "variety" not in GenerationRequest("cat").to_json()  # absent at 0: older files read as before
    with pytest.raises(RequestError, match="'variety' must be a number"):
        GenerationRequest.from_json({**data, "variety": "0.3"})


def test_session_state_carries_restores_and_resets_variety():
    state = SessionState(model="tiny", prompt="cat", variety=0.4)
    assert state.generation_request().variety == 0.4 and state.preview_request().variety == 0.4
    state.restore(GenerationRequest("dog", seed=2, variety=0.2))
    assert state.variety == 0.2
    state.restore(GenerationRequest("dog", seed=2))  # a file without variety brings it back to 0
    assert state.variety == 0.0
    state.update(variety=0.7)
    state.reset_sliders(default_truncation=1.0)
    assert state.variety == 0.0


def test_cli_generate_with_variety_stores_it_and_refuses_bad_values(capsys, tiny_model_dir, tmp_path):
    from studio.cli import main

    out = tmp_path / "out"
    args = [
        "generate",
        "cat",
        "--seed",
        "5",
        "--variety",
        "0.5",
        "--out",
        str(out),
        "--model",
        str(tiny_model_dir),
    ]
    assert main(args) == 0
    written = next(out.glob("*.png"))
    assert read_parameters(written).request.variety == 0.5
    assert main(["inspect", str(written)]) == 0
    assert "Variety:      0.5" in capsys.readouterr().out
    assert main(["generate", "cat", "--variety", "1.5", "--out", str(tmp_path / "no")]) != 0
    assert "Variety must be a number between 0 and 1." in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
