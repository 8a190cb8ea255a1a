"""Parameters as text: this studio's one-line style reads back exactly; AUTOMATIC1111's gives prompt and
seed and names what did not map; anything else is not parameters (it pastes as text)."""

from __future__ import annotations

import pytest

from studio.engine.requests import ConceptSlider, Endpoint, GenerationRequest
from studio.io.metadata import ImageParameters, parameters_text
from studio.io.parameters_text import A1111, GAN_STUDIO, ParametersTextError, parse_parameters_text


def test_the_studios_own_text_reads_back_to_the_same_request():
    request = GenerationRequest(
        "rocket, red: “apple”", seed=36, truncation=0.8, directions=((1, 2.5), (3, -1.0)),
        concepts=(ConceptSlider("sad", "happy", 0.75),), interpolate_to=Endpoint("moon", 3), t=0.4,
        model="emoji",
    )  # fmt: skip
    text = parameters_text(ImageParameters(request=request, model_hash="abc", device="cpu", size=(128, 128)))
    parsed = parse_parameters_text(text, model="other")
    assert parsed.request == request and parsed.tool == GAN_STUDIO and parsed.model_hash == "abc"
    assert parsed.ignored == () and parsed.ignored_sentence() == ""


def test_a1111_text_gives_prompt_and_seed_and_names_the_rest():
    text = (
        "a cute cat, (best quality:1.2)\nwith a hat\nNegative prompt: ugly, blurry\n"
        'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Lora hashes: "a: 1, b: 2"'
    )
    parsed = parse_parameters_text(text, model="emoji")
    assert parsed.tool == A1111
    assert parsed.request == GenerationRequest(
        "a cute cat, (best quality:1.2)\nwith a hat", seed=1234, model="emoji"
    )
    assert parsed.ignored == ("negative prompt", "Steps", "Sampler", "CFG scale", "Size", "Lora hashes")
    assert parsed.ignored_sentence().startswith("Its negative prompt, Steps, Sampler")


@pytest.mark.parametrize(
    "text",
    [
        "red apple",
        "",
        "a\nb",
        "Seed: 4",
        "notes\nKey: value, Other: thing",
        "x\n: 3",
    ],
)
def test_text_that_is_not_parameters_is_none(text):
    assert parse_parameters_text(text, "emoji") is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("cat\nSteps: 20, Seed: lots", "malformed"),
        ("Negative prompt: ugly\nSteps: 20, Seed: 5", "prompt is empty"),
        ("cat\nSeed: , Steps: 3x", "malformed"),
        ("cat\nSeed: -4, Steps: 2", "seed"),
        ("cat\nSeed: 4, Truncation: 9", "Truncation"),
        ('cat\nSeed: 4, Truncation: 0.5, Concept: "no arrow"', "malformed"),
    ],
)
def test_parameters_that_cannot_be_used_are_one_sentence(text, words):
    with pytest.raises(ParametersTextError, match=words):
        parse_parameters_text(text, "emoji")
