"""Inversion: explicit latents on requests, Engine.invert (streamed, cancellable), metadata and the CLI."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY_NAME, HashTextEncoder, open_engine
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from studio.engine.engine import Engine
from studio.engine.inversion import reconstruction_psnr
from studio.engine.latents import seeded_z
from studio.engine.requests import (
    MAX_LATENT_VALUES,
    REQUEST_SCHEMA,
    Endpoint,
    ExplicitLatent,
    GenerationRequest,
    RequestError,
)
from studio.io.metadata import SCHEMA, MetadataError, read_parameters, save_options


def _latent(z_dim=16, cond_dim=16, seed=0, dtype="float32", source="cat.png") -> ExplicitLatent:
    rng = np.random.default_rng(seed)
    return ExplicitLatent.from_arrays(
        rng.standard_normal(z_dim), rng.standard_normal(cond_dim), dtype, source
    )


def _render(engine, request):
    return next(engine.generate_sync(request))


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    with open_engine(tiny_model_dir) as engine:
        yield engine


@pytest.fixture(scope="module")
def target(engine):
    """A picture the tiny model can draw (so inversion has something to find), not its nearest concept."""
    return _render(engine, GenerationRequest("a red kite", seed=5, truncation=0.7, model=TINY_NAME)).image


# --------------------------------------------------------------------------------------------- the value


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_explicit_latent_round_trips_json_exactly(dtype):
    latent = _latent(dtype=dtype)
    request = GenerationRequest(
        "grinning face", latent=latent, interpolate_to=Endpoint("cat", 3, _latent(seed=1)), t=0.5
    )
    data = json.loads(json.dumps(request.to_json()))
    assert data["schema"] == REQUEST_SCHEMA and data["latent"]["dtype"] == dtype
    again = GenerationRequest.from_json(data)
    assert again == request and hash(again) == hash(request)
    assert again.latent.z_array().tobytes() == latent.z_array().tobytes()


def test_plain_requests_keep_the_schema_1_layout():
    data = GenerationRequest("cat", seed=2).to_json()
    assert "latent" not in data and "latent" not in json.dumps(data["interpolate_to"])
    schema1 = {k: v for k, v in data.items() if k != "schema"} | {"schema": 1}
    assert GenerationRequest.from_json(schema1) == GenerationRequest("cat", seed=2)


def test_latent_source_is_a_name_never_a_path():
    assert _latent(source="/home/me/Pictures/cat.png").source == "cat.png"
    assert _latent(source="C:\\Users\\me\\dog.jpg").source == "dog.jpg"
    with pytest.raises(RequestError, match="file name"):
        replace(_latent(), source="../etc/passwd").validated()


@pytest.mark.parametrize(
    "change, sentence",
    [
        ({"dtype": "float64"}, "float32 or float16"),
        ({"z": "not base64!"}, "not valid base64"),
        ({"z": base64.b64encode(b"\0\0\0").decode()}, "cut off"),
        ({"z": ""}, "cut off"),
        ({"z": base64.b64encode(np.full(4, np.nan, "<f4").tobytes()).decode()}, "not finite"),
        ({"condition": "A" * (8 * MAX_LATENT_VALUES)}, "too long"),
        ({"z": None}, "missing"),
        ({"source": 5}, "file name"),
    ],
)
def test_a_damaged_latent_is_refused_with_one_sentence(change, sentence):
    data = _latent().to_json() | change
    with pytest.raises(RequestError, match=sentence):
        GenerationRequest.from_json({"prompt": "cat", "latent": data})


def test_too_many_values_are_refused_before_use():
    data = _latent().to_json()
    data["z"] = base64.b64encode(np.zeros(MAX_LATENT_VALUES + 1, "<f4").tobytes()).decode()
    with pytest.raises(RequestError):
        GenerationRequest.from_json({"prompt": "cat", "latent": data})


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["dtype", "z", "condition", "source"]), st.one_of(st.text(), st.none(), st.integers())
    )
)
@example({"dtype": "float16", "z": "AAA=", "condition": "AAA="})
def test_any_latent_json_gives_a_value_or_one_request_error(data):
    try:
        latent = ExplicitLatent.from_json(data)
    except RequestError as exc:
        assert str(exc).endswith(".")
    else:
        assert latent.validated() is latent


# --------------------------------------------------------------------------------------------- rendering


def test_explicit_latent_equal_to_a_seeded_one_draws_the_same_pixels(engine):
    seeded = GenerationRequest("a blue car", seed=9, truncation=1.0, model=TINY_NAME)
    generator = engine._renderer.generator
    embedding = torch.from_numpy(HashTextEncoder().encode(["a blue car"]))
    with torch.no_grad():
        condition = generator.condition(embedding).float()[0].numpy()
    latent = ExplicitLatent.from_arrays(seeded_z(9, 16).numpy(), condition)
    explicit = GenerationRequest("any name", seed=123, truncation=1.0, model=TINY_NAME, latent=latent)
    assert np.array_equal(_render(engine, explicit).image, _render(engine, seeded).image)
    # Sliders act on it like on any z: a direction changes the picture.
    moved = _render(engine, replace(explicit, directions=((0, 3.0),))).image
    assert not np.array_equal(moved, _render(engine, explicit).image)


def test_a_latent_for_another_model_is_an_error_result(engine):
    request = GenerationRequest("cat", model=TINY_NAME, latent=_latent(z_dim=128))
    result = _render(engine, request)
    assert not result.ok and "another model" in result.error


def test_interpolating_towards_an_inverted_endpoint(engine):
    b_latent = _latent(seed=4, source="")
    a = GenerationRequest("cat", seed=1, model=TINY_NAME)
    end = GenerationRequest("b", model=TINY_NAME, latent=b_latent)
    frame = replace(a, interpolate_to=Endpoint("b", 0, b_latent), t=1.0)
    assert np.array_equal(
        _render(engine, frame).image, _render(engine, replace(end, truncation=a.truncation)).image
    )


# --------------------------------------------------------------------------------------------- the engine


def test_invert_streams_progress_and_beats_its_starting_point(engine, target):
    seen = []
    job = engine.invert(target, steps=60, name="kite.png", on_progress=seen.append)
    outcome = job.result(120)
    assert [p.step for p in seen] == [25, 50, 60] and all(p.image.shape == target.shape for p in seen)
    request = outcome.result.request
    assert (
        request.latent is not None
        and request.latent.source == "kite.png"
        and request.latent.dtype == "float32"
    )
    assert request.truncation == 1.0 and request.model == TINY_NAME
    assert reconstruction_psnr(outcome.result.image, target) > reconstruction_psnr(
        outcome.baseline.image, target
    )
    # The result is a request like any other: rendering it again gives the same pixels.
    assert np.array_equal(_render(engine, request).image, outcome.result.image)


def test_invert_can_be_cancelled_and_the_engine_keeps_serving(engine, target):
    def cancel_at_first(progress):
        job.cancel()

    job = engine.invert(target, steps=500, on_progress=cancel_at_first)
    with pytest.raises(Exception) as caught:
        job.result(60)
    assert type(caught.value).__name__ == "CancelledError"
    preview = engine.preview(GenerationRequest("cat", model=TINY_NAME)).result(30)
    assert preview is not None and preview.ok


@pytest.mark.parametrize("steps", [0, -1, 10**6, 2.5, True])
def test_invert_refuses_a_bad_step_count(engine, target, steps):
    with pytest.raises(RequestError, match="steps"):
        engine.invert(target, steps=steps).result(5)


@pytest.mark.parametrize(
    "picture", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 6, 4), np.uint8), np.zeros((8, 8, 4)), "a.png"]
)
def test_invert_refuses_what_is_not_a_square_rgba_picture(engine, picture):
    with pytest.raises(RequestError, match="square RGBA"):
        engine.invert(picture).result(5)


# --------------------------------------------------------------------------------------------- metadata


def test_exported_latent_reads_back_identically(tmp_path):
    from studio.io.metadata import ImageParameters

    request = GenerationRequest("cat", latent=_latent(), model=TINY_NAME)
    parameters = ImageParameters(request=request, model_hash="abcd", size=(128, 128))
    path = tmp_path / "inverted.png"
    Image.new("RGBA", (4, 4)).save(path, **save_options(parameters, "png"))
    back = read_parameters(path)
    assert back.schema == SCHEMA == 4 and back.request == request
    with Image.open(path) as image:
        assert "Latent: inverted from cat.png" in image.text["parameters"]


def test_a_schema_1_document_still_reads(tmp_path):
    document = {
        "schema": 1,
        "app": "gan-studio",
        "model": {"id": "emoji", "hash": "abcd1234"},
        "request": {"schema": 1, "prompt": "cat", "seed": 4, "truncation": 0.8, "model": "emoji"},
        "device": "cpu",
        "size": [128, 128],
        "animation": None,
    }
    (tmp_path / "old.json").write_text(json.dumps(document))
    parameters = read_parameters(tmp_path / "old.json")
    assert parameters.schema == 1 and parameters.request == GenerationRequest("cat", seed=4, truncation=0.8)


def test_an_oversized_latent_in_a_file_is_one_sentence(tmp_path):
    data = _latent().to_json()
    data["z"] = "A" * 100_000
    document = {"schema": 2, "request": {"prompt": "cat", "latent": data}, "size": [1, 1]}
    (tmp_path / "big.json").write_text(json.dumps(document))
    with pytest.raises(MetadataError, match="cannot be used: the explicit latent's z is missing or too long"):
        read_parameters(tmp_path / "big.json")


# --------------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def fast_encoder(monkeypatch, text_encoder):
    import studio.models.text as text

    monkeypatch.setattr(text, "get_text_encoder", lambda encoder_id="": text_encoder)


def test_cli_invert_then_generate_from_gives_the_same_bytes(fast_encoder, capsys, tiny_model_dir, tmp_path):
    from studio.cli import main

    picture = tmp_path / "sun.jpg"
    Image.new("RGB", (60, 40), "skyblue").save(picture)
    out = tmp_path / "inv" / "sun.png"
    out.parent.mkdir()
    code = main(["invert", str(picture), "--steps", "30", "--out", str(out), "--model", str(tiny_model_dir)])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert "PSNR" in printed and "sun.jpg" in printed and "30 steps" in printed
    assert read_parameters(out).request.latent.source == "sun.jpg"
    assert main(["inspect", str(out)]) == 0
    assert "Latent:       inverted from sun.jpg (float32)" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main(["generate", "--from", str(out), "--out", str(again), "--model", str(tiny_model_dir)]) == 0
    assert next(again.glob("*.png")).read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    "args, sentence",
    [
        (["missing.png"], "There is no picture"),
        (["{picture}", "--steps", "0"], "--steps must be between"),
        (["{picture}", "--out", "x.gif"], "must end in .png"),
        (["{picture}", "--out", "no/such/folder/x.png"], "does not exist"),
    ],
)
def test_cli_invert_errors_are_one_sentence(fast_encoder, capsys, tmp_path, args, sentence):
    from studio.cli import main

    picture = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(picture)
    argv = ["invert", *[a.format(picture=picture) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert sentence in err and err.count("\n") == 1


# --------------------------------------------------------------------------------------------- other models


def test_a_class_conditional_model_inverts_too(tmp_path):
    from studio.models.cgan import BaseConfig, BaseGenerator
    from studio.models.format import save_model

    torch.manual_seed(1)
    generator = BaseGenerator(BaseConfig(z_dim=8, cond_dim=8, ch=4, channel_mult=(2, 1, 1, 1), num_classes=3))
    manifest = {"name": "tiny-class", "conditioning": {"kind": "class", "classes": ["ant", "bee", "cow"]}}
    folder = save_model(tmp_path / "tiny-class", manifest, generator.eval())
    with Engine(model=folder, device="cpu") as engine:
        engine.wait_ready(60)
        target = _render(engine, GenerationRequest("bee", seed=3, model="tiny-class")).image
        outcome = engine.invert(target, steps=30).result(60)
        assert outcome.result.ok and outcome.result.request.prompt in ("ant", "bee", "cow")
        assert set(outcome.nearest) == {"ant", "bee", "cow"}
        # The prompt of an inverted request is only its name: no class lookup happens for it.
        renamed = replace(outcome.result.request, prompt="not a class")
        assert np.array_equal(_render(engine, renamed).image, outcome.result.image)


def test_a_vocabulary_is_searched_and_its_renders_are_cached(tmp_path, monkeypatch):
    from studio.engine.inversion import Inverter
    from studio.models.cgan import BaseConfig, BaseGenerator, ConditionalBatchNorm2d
    from studio.models.format import save_model
    from studio.models.vocabulary import save_vocabulary

    torch.manual_seed(2)
    generator = BaseGenerator(BaseConfig(z_dim=16, cond_dim=16, ch=4, channel_mult=(2, 2, 1, 1)))
    for module in generator.modules():  # conditions that change the picture (untrained, they barely do)
        if isinstance(module, ConditionalBatchNorm2d):
            torch.nn.init.normal_(module.gain.weight, std=0.5)
            torch.nn.init.normal_(module.bias.weight, std=0.5)
    manifest = {"name": TINY_NAME, "conditioning": {"kind": "text", "encoder": "all-MiniLM-L6-v2"}}
    folder = save_model(tmp_path / TINY_NAME, manifest, generator.eval())  # no upsampler: exact targets
    names = [f"concept {i}" for i in range(80)]
    save_vocabulary(folder, [{"name": n} for n in names], HashTextEncoder().encode(names))
    monkeypatch.setenv("GAN_STUDIO_DATA_DIR", str(tmp_path / "user"))
    with open_engine(folder) as engine:
        target = _render(
            engine, GenerationRequest("concept 7", seed=0, truncation=0.0, model=TINY_NAME)
        ).image
        outcome = engine.invert(target, steps=5).result(60)
        assert outcome.nearest[0] == "concept 7"  # its own render at the mean z is the nearest
        cached = list((tmp_path / "user" / "cache").glob("concepts-*.npz"))
        assert len(cached) == 1
        again = Inverter(engine._renderer, engine._vocabulary).bank()
        assert torch.equal(again.small, engine._inverter().bank().small.half().float())
