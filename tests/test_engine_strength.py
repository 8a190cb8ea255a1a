"""Prompt strength: the prompt's embedding scaled (through the model's linear projection), reproducibly, in
every layer that carries a request (engine, JSON, image parameters, parameters text, session state, CLI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import stored_everywhere

from studio.engine.latents import condition_origin, seeded_z, strengthened_conditions
from studio.engine.requests import MAX_STRENGTH, Endpoint, GenerationRequest, RequestError
from studio.models.format import load_model
from studio.session.state import SessionState


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir)


def _images(engine, request):
    results = list(engine.generate_sync(request))
    assert all(r.ok for r in results), [r.error for r in results]
    return [r.image for r in results]


def test_strength_scales_the_embedding_through_the_projection(tiny, text_encoder):
    generator = tiny.generator.eval()
    e = torch.from_numpy(text_encoder.encode(["red apple", "cat"])).float()
    with torch.inference_mode():
        projected = generator.condition(e)
        torch.testing.assert_close(
            strengthened_conditions(projected, generator, 1.3), generator.condition(1.3 * e)
        )
        torch.testing.assert_close(strengthened_conditions(projected, generator, 1.0), projected)
        # zero strength is the empty prompt: the projection's bias
        origin = condition_origin(generator)
        torch.testing.assert_close(strengthened_conditions(projected, generator, 0.0), origin.expand(2, -1))
        rows = strengthened_conditions(projected, generator, torch.tensor([[1.0], [0.5]]))
        torch.testing.assert_close(rows[0], projected[0])
        torch.testing.assert_close(rows[1], generator.condition(0.5 * e[1:])[0])


def test_the_engine_renders_what_the_evaluation_scores_at_a_strength(tiny_engine, tiny, text_encoder):
    plain = _images(tiny_engine, GenerationRequest("red apple", seed=4, model="tiny-test"))[0]
    same = _images(tiny_engine, GenerationRequest("red apple", seed=4, model="tiny-test", strength=1.0))[0]
    assert np.array_equal(plain, same)
    strong = _images(tiny_engine, GenerationRequest("red apple", seed=4, model="tiny-test", strength=1.4))[0]
    assert not np.array_equal(strong, plain)
    from studio.models.cgan import premultiplied_to_rgba_uint8
    from studio.training.evaluate import VariedGenerator

    z = seeded_z(4, tiny.generator.config.z_dim)[None]
    with torch.inference_mode():
        e = torch.from_numpy(text_encoder.encode(["red apple"])).float()
        image = tiny.upsampler(VariedGenerator(tiny.generator.eval(), 0.0, 1.4)(z, e))
    expected = premultiplied_to_rgba_uint8(image.float()).numpy()[0]
    assert np.abs(expected.astype(int) - strong.astype(int)).max() <= 1


@pytest.mark.parametrize("value", [-0.1, MAX_STRENGTH + 0.01, float("nan"), float("inf")])
def test_strength_out_of_range_is_one_sentence(value):
    with pytest.raises(RequestError, match=r"^Prompt strength must be a number between 0 and 2\.$"):
        GenerationRequest("cat", strength=value).validated()


def test_strength_round_trips_json_text_and_image_parameters(tmp_path):
    request = GenerationRequest("cat", seed=3, strength=1.25, interpolate_to=Endpoint("dog", 4), t=0.5)
    data = stored_everywhere(request, tmp_path, "Strength: 1.25")
    assert data["strength"] == 1.25
    assert (
        "strength" not in GenerationRequest("cat").to_json()
    )  # absent at 1: older readers read it as before


def test_session_state_carries_restores_and_resets_strength():
    state = SessionState(model="tiny", prompt="cat", strength=1.3)
    assert state.generation_request().strength == 1.3 and state.preview_request().strength == 1.3
    state.restore(GenerationRequest("dog", seed=2))
    assert state.strength == 1.0
    state.update(strength=0.7)
    state.reset_sliders()
    assert state.strength == 1.0
