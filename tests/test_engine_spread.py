"""Spread: the seeds of a prompt that fits several concepts (a shared keyword) each lean towards one of them,
reproducibly, while a prompt that fits one concept renders exactly as without spread; carried by every layer
that carries a request (engine, JSON, image parameters, parameters text, session state, CLI)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import HashTextEncoder, open_engine, stored_everywhere

from studio.engine.latents import seeded_z
from studio.engine.requests import Endpoint, GenerationRequest, RequestError
from studio.engine.spread import SPREAD_LIMIT, Spreader, spread_weights
from studio.models.format import read_model_info
from studio.models.vocabulary import Vocabulary, dataset_keywords, load_vocabulary, save_vocabulary
from studio.session.state import SessionState

NAMES = ["cat face", "grinning cat", "black cat", "dog face", "astronaut", "astronaut: dark skin tone"]
# keyword -> the concepts that carry it ("face" is shared by two, "cat" by three, "space" by both astronauts)
KEYWORDS = {"cat": [0, 1, 2], "face": [0, 3], "space": [4, 5]}


def _vocabulary_parts(encoder):
    entries = [{"name": name, "group": "", "subgroup": ""} for name in NAMES]
    names = encoder.encode(NAMES)
    texts = list(KEYWORDS)
    keywords = (encoder.encode(texts), [np.array(KEYWORDS[t]) for t in texts])
    return entries, names, keywords


@pytest.fixture(scope="module")
def spread_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a vocabulary of six concepts and three shared keywords (hash embeddings)."""
    folder = tmp_path_factory.mktemp("spread") / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, folder)
    entries, names, keywords = _vocabulary_parts(HashTextEncoder())
    save_vocabulary(folder, entries, names, keywords=keywords)
    return folder


@pytest.fixture(scope="module")
def vocabulary(spread_model_dir) -> Vocabulary:
    return load_vocabulary(read_model_info(spread_model_dir))


@pytest.fixture(scope="module")
def spread_engine(spread_model_dir):
    with open_engine(spread_model_dir) as engine:
        yield engine


def _embed(text: str) -> np.ndarray:
    return HashTextEncoder().encode([text])[0]


def _images(engine, request):
    results = list(engine.generate_sync(request))
    assert all(r.ok for r in results), [r.error for r in results]
    return [r.image for r in results]


def test_a_shared_keyword_matches_every_concept_that_carries_it(vocabulary):
    assert sorted(vocabulary.matches(_embed("cat"), 0.005, 16, 0.7, 0.4).tolist()) == [0, 1, 2]
    assert sorted(vocabulary.matches(_embed("face"), 0.005, 16, 0.7, 0.4).tolist()) == [0, 3]
    # a full name fits one concept; skin-tone variants of one emoji count once
    assert vocabulary.matches(_embed("black cat"), 0.005, 16, 0.7, 0.4).tolist() == [2]
    assert len(vocabulary.matches(_embed("space"), 0.005, 16, 0.7, 0.4)) == 1
    # a prompt nothing is close to (hash vectors are nearly orthogonal) matches nothing above the floor
    assert vocabulary.matches(_embed("a sentence about nothing"), 0.005, 16, 0.7, 0.4).size == 0
    assert len(vocabulary.matches(_embed("cat"), 0.005, 2, 0.7, 0.4)) == 2  # at most ``limit``
    # ties are ordered by how close each concept's own name is to the prompt, then by index: reproducible
    assert (
        vocabulary.matches(_embed("cat"), 0.005, 16, 0.7, 0.4).tolist()
        == vocabulary.matches(_embed("cat"), 0.005, 16, 0.7, 0.4).tolist()
    )


def test_names_the_encoder_barely_tells_apart_do_not_spread():
    from studio.engine.spread import SPREAD_FLOOR, SPREAD_MARGIN, SPREAD_RELATED

    rng = np.random.default_rng(0)
    up = rng.standard_normal(64)
    down = up + 0.2 * rng.standard_normal(64)  # cosine about 0.98, like "palm up hand" and "palm down hand"
    rows = np.stack([up / np.linalg.norm(up), down / np.linalg.norm(down)]).astype(np.float32)
    assert 0.97 < float(rows[0] @ rows[1]) < 0.99
    vocabulary = Vocabulary(["palm up hand", "palm down hand"], ["", ""], rows)
    found = vocabulary.matches(rows[0], SPREAD_MARGIN, SPREAD_LIMIT, SPREAD_FLOOR, SPREAD_RELATED)
    assert found.tolist() == [0]


def test_weights_sum_to_one_depend_only_on_the_direction_of_z_and_pick_each_concept():
    z = seeded_z(7, 128)
    w = spread_weights(z, 5)
    assert w.shape == (5,) and abs(float(w.sum()) - 1.0) < 1e-6
    torch.testing.assert_close(spread_weights(0.3 * z, 5), w)  # truncation is a scale: no change
    torch.testing.assert_close(spread_weights(z.clone(), 5), w, rtol=0, atol=0)
    winners = [int(spread_weights(seeded_z(s, 128), 4).argmax()) for s in range(400)]
    shares = np.bincount(winners, minlength=4) / 400
    assert shares.min() > 0.15, shares  # each concept gets a fair share of the seeds
    top = [float(spread_weights(seeded_z(s, 128), 4).max()) for s in range(400)]
    assert np.median(top) > 0.8  # a typical seed leans clearly towards one concept
    assert spread_weights(seeded_z(1, 128), SPREAD_LIMIT).shape == (SPREAD_LIMIT,)


def test_the_spreader_leaves_a_single_match_alone_and_mixes_names_otherwise(vocabulary):
    spreader = Spreader(vocabulary)
    name = _embed("dog face")
    assert np.array_equal(spreader.embedding(name, seeded_z(3, 16)), name)
    z = seeded_z(3, 16)
    mixed = spreader.embedding(_embed("cat"), z)
    found = spreader.matches(_embed("cat"))
    expected = spread_weights(z, len(found)).double().numpy() @ vocabulary.embeddings[found].astype(
        np.float64
    )
    np.testing.assert_allclose(mixed, expected, atol=1e-6)
    assert np.array_equal(
        Spreader(None).embedding(_embed("cat"), z), _embed("cat")
    )  # no vocabulary: as it is


def test_skin_tones_lists_a_base_with_its_variants_and_tones_spreads_a_full_name_over_them(vocabulary):
    """Rule 143's option (off by default: SPREAD_TONES): a full name of a tone-less base spreads over the base and
    its tones, a tone's own name and an emoji without tones stay one picture."""
    names = ["thumbs up", "thumbs up: dark skin tone", "cat", "thumbs up: light skin tone",
             "kiss", "kiss: light skin tone, dark skin tone", "kiss: light skin tone"]  # fmt: skip
    toned = Vocabulary(names=names, groups=[""] * len(names), embeddings=HashTextEncoder().encode(names))
    assert toned.skin_tones(0).tolist() == [0, 1, 3]  # base first, then its tones in vocabulary order
    assert toned.skin_tones(4).tolist() == [4, 6, 5]  # one-tone variants before mixed ones
    assert toned.skin_tones(1).tolist() == [1] and toned.skin_tones(2).tolist() == [2]
    on, off = Spreader(toned, tones=True), Spreader(toned, tones=False)
    assert sorted(on.matches(_embed("thumbs up")).tolist()) == [0, 1, 3]
    assert off.matches(_embed("thumbs up")).tolist() == [0]
    assert on.matches(_embed("thumbs up: dark skin tone")).tolist() == [1]
    assert on.matches(_embed("cat")).tolist() == [2]
    # the vocabulary of the other tests: its astronaut family spreads only when the option is on
    assert vocabulary.skin_tones(4).tolist() == [4, 5]
    assert Spreader(vocabulary, tones=True).matches(_embed("astronaut")).tolist() == [4, 5]
    assert Spreader(vocabulary).matches(_embed("astronaut")).tolist() == [4]


def test_the_engine_spreads_a_keyword_and_leaves_a_name_exactly_as_it_was(spread_engine, spread_model_dir):
    def request(prompt, **kw):
        return GenerationRequest(prompt, seed=20, count=8, model="tiny-test", **kw)

    # a full name: byte for byte what it was without spread
    assert np.array_equal(
        np.stack(_images(spread_engine, request("dog face", spread=True))),
        np.stack(_images(spread_engine, request("dog face"))),
    )
    spread = _images(spread_engine, request("cat", spread=True))
    plain = _images(spread_engine, request("cat"))
    assert not np.array_equal(np.stack(spread), np.stack(plain))
    # each image is the concept mix its z picks, rendered like a prompt: the reference by hand
    from studio.models.format import load_model
    from studio.training.evaluate import SpreadGenerator

    tiny = load_model(spread_model_dir)
    generator = tiny.generator.eval()
    spreader = Spreader(load_vocabulary(tiny.info))
    z = torch.stack([seeded_z(20 + i, generator.config.z_dim) for i in range(8)])
    with torch.inference_mode():
        embedding = torch.from_numpy(np.repeat(_embed("cat")[None], 8, 0))
        image = tiny.upsampler(SpreadGenerator(generator, spreader)(z, embedding))
    from studio.models.cgan import premultiplied_to_rgba_uint8

    expected = premultiplied_to_rgba_uint8(image.float()).numpy()
    assert np.abs(expected.astype(int) - np.stack(spread).astype(int)).max() <= 1
    # the eight seeds lean towards more than one of the three cats
    assert len({int(spread_weights(z[i], 3).argmax()) for i in range(8)}) > 1
    one = _images(spread_engine, GenerationRequest("cat", seed=23, model="tiny-test", spread=True))[0]
    assert np.array_equal(one, spread[3])  # a batch's image i is the one-image request of seed + i


def test_spread_interpolation_ends_are_the_spread_images(spread_engine):
    a = GenerationRequest("cat", seed=5, model="tiny-test", spread=True)
    b = GenerationRequest("face", seed=9, model="tiny-test", spread=True)
    start = _images(spread_engine, GenerationRequest("cat", seed=5, model="tiny-test", spread=True,
                                                     interpolate_to=Endpoint("face", 9), t=0.0))[0]  # fmt: skip
    end = _images(spread_engine, GenerationRequest("cat", seed=5, model="tiny-test", spread=True,
                                                   interpolate_to=Endpoint("face", 9), t=1.0))[0]  # fmt: skip
    assert np.array_equal(start, _images(spread_engine, a)[0])
    assert np.abs(end.astype(int) - _images(spread_engine, b)[0].astype(int)).max() <= 1


def test_spread_round_trips_json_text_and_image_parameters(tmp_path):
    request = GenerationRequest("cat", seed=3, spread=True, interpolate_to=Endpoint("dog", 4), t=0.5)
    data = stored_everywhere(request, tmp_path, "Spread: on")
    assert data["spread"] is True
    # absent when off, and a request stored before spread existed reads as off
    assert "spread" not in GenerationRequest("cat").to_json()
    assert GenerationRequest.from_json({"prompt": "cat"}).spread is False
    with pytest.raises(RequestError, match="'spread' must be true or false"):
        GenerationRequest.from_json({**data, "spread": 1})


def test_session_state_spreads_new_images_and_restores_a_stored_choice():
    state = SessionState(model="tiny", prompt="cat")
    assert state.spread is True and state.generation_request().spread is True
    state.restore(GenerationRequest("dog", seed=2))  # stored before spread existed: off, as it was made
    assert state.spread is False and state.preview_request().spread is False
    state.update(spread=True)
    state.reset_sliders()
    assert state.spread is True  # a mode, not a slider


def test_dataset_keywords_lists_each_shared_text_once_with_its_owners(tmp_path):
    from studio.training.dataset import load_dataset, make_synthetic_dataset

    data = load_dataset(make_synthetic_dataset(tmp_path / "data", count=12))
    found = dataset_keywords(data)
    assert found is not None
    embeddings, owners = found
    texts = np.asarray(data.captions)
    for row, who in zip(embeddings, owners):
        assert len(who) >= 2
        matching = np.flatnonzero(np.abs(data.caption_emb.astype(np.float32) - row).max(axis=1) == 0)
        assert (
            sorted({int(data.caption_owner[i]) for i in matching if texts[i] == texts[matching[0]]})
            == who.tolist()
        )


@pytest.mark.parametrize(
    "damage",
    [
        {"keyword_owners": np.array([0, 1, 99], np.int32)},  # an owner past the last concept
        {"keyword_offsets": np.array([0, 5, 3, 7], np.int32)},  # offsets that fall
    ],
)
def test_damaged_keyword_tables_are_one_sentence(spread_model_dir, tmp_path, damage):
    from safetensors.numpy import load_file, save_file

    from studio.models.format import ModelError

    folder = tmp_path / spread_model_dir.name
    shutil.copytree(spread_model_dir, folder)
    tensors = load_file(str(folder / "vocabulary.safetensors"))
    tensors.update(damage)
    if "keyword_owners" in damage:
        tensors["keyword_offsets"] = np.array([0, 1, 2, 3], np.int32)
    save_file(tensors, str(folder / "vocabulary.safetensors"))
    with pytest.raises(
        ModelError, match=r"^The vocabulary keywords of 'tiny-test' do not match its concepts\.$"
    ):
        load_vocabulary(read_model_info(folder))


def test_the_engine_names_what_a_prompt_spreads_over(spread_engine):
    assert sorted(spread_engine.spread_concepts("cat").result(timeout=30)) == sorted(NAMES[:3])
    assert spread_engine.spread_concepts("dog face").result(timeout=30) == ["dog face"]
    assert spread_engine.spread_concepts("   ").result(timeout=30) == []


def test_with_a_concept_table_spread_mixes_the_concepts_own_conditions_without_jumps(
    spread_model_dir, tmp_path
):
    """A fitted concept table (studio/models/concepts.py) and spread: each image's condition is its z's mix of
    the concepts' own conditions (a fitted concept's row, another's conditioned name), in the engine and the
    evaluation alike; linear in the weights, so z moving a little moves the condition a little; with nothing
    fitted it is the plain projection of the mixed embedding."""
    from studio.models.cgan import premultiplied_to_rgba_uint8
    from studio.models.concepts import ConceptConditioner, ConceptConditions, load_concepts, save_concepts
    from studio.models.format import load_model
    from studio.training.evaluate import ConceptGenerator, SpreadGenerator

    folder = tmp_path / spread_model_dir.name
    shutil.copytree(spread_model_dir, folder)
    info = read_model_info(folder)
    rows = 3.0 * np.random.default_rng(1).standard_normal((len(NAMES), info.base.cond_dim)).astype(np.float32)
    fitted = np.array([True, True, False, True, True, True])  # "black cat" keeps its conditioned name
    save_concepts(folder, ConceptConditions(rows, fitted))
    model, vocabulary = load_model(folder), load_vocabulary(info)
    generator = model.generator.eval()
    conditioner = ConceptConditioner(generator, vocabulary, load_concepts(info, vocabulary))
    spreader = Spreader(vocabulary)
    cat = _embed("cat")
    z = torch.stack([seeded_z(40 + i, generator.config.z_dim) for i in range(6)])
    with torch.inference_mode():
        own = np.stack(
            [
                rows[0],
                rows[1],
                conditioner(torch.from_numpy(vocabulary.embeddings[2:3].astype(np.float32)))[0],
            ]
        )
        got = spreader.conditions(np.repeat(cat[None], 6, 0), z, conditioner).numpy()
    for i in range(6):
        found, weights = spreader.mix(cat, z[i])
        assert sorted(found.tolist()) == [0, 1, 2]
        np.testing.assert_allclose(got[i], weights @ own[found].astype(np.float64), atol=1e-5)
    # the engine draws exactly that (as the evaluation's wrappers do); a full name draws its own row
    with open_engine(folder) as engine:
        drawn = _images(engine, GenerationRequest("cat", seed=40, count=6, model="tiny-test", spread=True))
    with torch.inference_mode():
        embedding = torch.from_numpy(np.repeat(cat[None], 6, 0))
        reference = model.upsampler(
            SpreadGenerator(ConceptGenerator(generator, conditioner), spreader)(z, embedding)
        )
    expected = premultiplied_to_rgba_uint8(reference.float()).numpy()
    assert np.abs(expected.astype(int) - np.stack(drawn).astype(int)).max() <= 1
    # no jumps: along a path of z, the condition moves no more than the weights do, times the rows' spread
    path = [torch.lerp(z[0], z[1], float(t)) for t in np.linspace(0, 1, 101)]
    with torch.inference_mode():
        steps = spreader.conditions(np.repeat(cat[None], len(path), 0), path, conditioner).numpy()
    weights = np.stack([spreader.mix(cat, p)[1][np.argsort(spreader.mix(cat, p)[0])] for p in path])
    bound = np.abs(np.diff(weights, axis=0)).sum(1) * np.abs(own).max() * np.sqrt(own.shape[1])
    assert (np.linalg.norm(np.diff(steps, axis=0), axis=1) <= bound + 1e-4).all()
    assert np.linalg.norm(steps[-1] - steps[0]) > 0.1  # the path does go somewhere
    # nothing fitted: the mix of the names' projections is the projection of the mixed names (v4's drawing)
    bare = ConceptConditioner(generator, vocabulary, ConceptConditions(rows, np.zeros(len(NAMES), bool)))
    with torch.inference_mode():
        mixed = spreader.conditions(np.repeat(cat[None], 6, 0), z, bare).numpy()
        plain = generator.condition(
            torch.from_numpy(spreader.embeddings(np.repeat(cat[None], 6, 0), z))
        ).numpy()
    np.testing.assert_allclose(mixed, plain, atol=1e-5)
