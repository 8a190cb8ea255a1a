"""Layered rows in a concept table (studio/models/concepts.py, studio/training/concept_fit.py ``fit_layered_rows``):
one condition per place of the base for the concepts the table lists. A table whose layered rows repeat its plain
rows draws exactly the plain table's pictures, whatever the request does to the condition (strength, variety, concept
sliders, interpolation, an explicit latent, a preview); a layered row draws its own concept and no other prompt; the
fit writes the rows its guard keeps and leaves the plain rows and the record alone."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY_NAME, open_engine
from test_models_concepts import (  # noqa: F401 - concept_model_dir is a fixture
    NAMES,
    _embed,
    _fit_folder,
    _toward,
    concept_model_dir,
)

from studio.engine.requests import ConceptSlider, Endpoint, ExplicitLatent, GenerationRequest
from studio.engine.spread import Spreader
from studio.models.concepts import CONCEPTS_FILE, ConceptConditioner, load_concepts, save_concepts
from studio.models.format import ModelError, load_model, read_model_info
from studio.models.vocabulary import load_vocabulary


def _layered_copy(concept_model_dir, tmp_path, name: str, rows: list[int], moved: dict[int, float]):  # noqa: F811
    """A copy of the concept model whose table has layered rows for ``rows``: each its plain row at every place, with
    ``moved`` (place: amount) added to the first one's. Returns the folder and the table."""
    folder = tmp_path / name / concept_model_dir.name
    shutil.copytree(concept_model_dir, folder)
    info = read_model_info(folder)
    table = load_concepts(info, load_vocabulary(info))
    layers = np.repeat(table.conditions[rows][:, None], info.base.places, axis=1)
    for place, amount in moved.items():
        layers[0, place] += amount
    save_concepts(folder, replace(table, layers=layers, layered=np.asarray(rows, np.int64)))
    return folder, load_concepts(info, load_vocabulary(info))


def _requests() -> list[GenerationRequest]:
    latent = ExplicitLatent.from_arrays(
        np.random.default_rng(3).standard_normal(16), np.random.default_rng(4).standard_normal(16)
    )
    return [
        GenerationRequest("cat face", seed=3, model=TINY_NAME),
        GenerationRequest("Katze", seed=4, strength=1.4, model=TINY_NAME),
        GenerationRequest("dog face", seed=5, variety=0.6, model=TINY_NAME),
        GenerationRequest("rocket", seed=6, interpolate_to=Endpoint("cat face", 9), t=0.4, model=TINY_NAME),
        GenerationRequest(
            "cat face", seed=7, concepts=(ConceptSlider("dog face", "rocket", 0.7),), model=TINY_NAME
        ),
        GenerationRequest("a sentence about nothing", seed=8, model=TINY_NAME),
        GenerationRequest(
            "inverted", seed=9, latent=latent, interpolate_to=Endpoint("cat face", 2), t=0.5, model=TINY_NAME
        ),
        GenerationRequest("pizza", seed=10, count=3, model=TINY_NAME),
    ]


def _images(folder) -> list[np.ndarray]:
    """Every picture of :func:`_requests` as stored, then the first three as live previews."""
    with open_engine(folder) as engine:
        results = [r for request in _requests() for r in engine.generate_sync(request)]
        results += [engine.preview(request).result(timeout=60) for request in _requests()[:3]]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return [r.image for r in results]


def test_layered_rows_that_repeat_the_plain_rows_draw_exactly_the_plain_tables_pictures(
    concept_model_dir,  # noqa: F811
    tmp_path,
):
    folder, table = _layered_copy(concept_model_dir, tmp_path, "repeat", [0, 1, 2], {})
    assert table.places == read_model_info(folder).base.places and table.layered.tolist() == [0, 1, 2]
    plain, layered = _images(concept_model_dir), _images(folder)
    assert len(plain) == len(layered) == 13
    for i, (a, b) in enumerate(zip(plain, layered)):
        assert np.array_equal(a, b), i


def test_a_layered_row_draws_its_own_concept_and_no_other_prompt(concept_model_dir, tmp_path):  # noqa: F811
    folder, table = _layered_copy(concept_model_dir, tmp_path, "moved", [0], {0: 1.5, 4: -2.0})
    plain, layered = _images(concept_model_dir), _images(folder)
    takes_row = {
        0,
        1,
        3,
        4,
        6,
        10,
        11,
    }  # cat face, Katze, B = cat face (twice), cat face + slider, two previews
    for i, (a, b) in enumerate(zip(plain, layered)):
        assert np.array_equal(a, b) != (i in takes_row), i
    assert load_model(folder).hash != load_model(concept_model_dir).hash
    # the conditioner: a name draws its layered row, a paraphrase the gate's blend place by place
    info = read_model_info(folder)
    vocabulary = load_vocabulary(info)
    generator = load_model(folder).generator
    conditioner = ConceptConditioner(generator, vocabulary, table)
    rows = torch.from_numpy(np.stack([_embed("cat face"), _toward("cat face", "pizza", 0.91)]))
    with torch.no_grad():
        got = conditioner(rows)
        projected = generator.condition(rows[1:]).float()
    assert got.shape == (2, info.base.places, info.base.cond_dim)
    torch.testing.assert_close(got[0], torch.from_numpy(table.layers[0]), rtol=0, atol=0)
    gate = conditioner.gate(rows[1].numpy())[1]
    assert 0 < gate < 1
    want = torch.lerp(
        projected[:, None].expand(-1, info.base.places, -1), torch.from_numpy(table.layers[:1]), gate
    )
    torch.testing.assert_close(got[1:], want, rtol=0, atol=0)
    # spread's mix of two concepts: the z's weights times each one's row, place by place
    z = torch.randn(1, info.z_dim, generator=torch.Generator().manual_seed(1))
    spreader = Spreader(vocabulary)
    mixed = spreader.conditions(rows[:1].numpy(), [z[0]], conditioner, chosen=[[0, 1]])
    weights = spreader.mix(rows[0].numpy(), z[0], [0, 1])[1]
    want = weights[0] * table.layers[0] + weights[1] * table.conditions[1][None]
    np.testing.assert_allclose(mixed[0].numpy(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("damage", "layers", "layered"),
    [
        ("not finite", lambda t, p: np.full((1, p, t.shape[1]), np.nan, np.float32), [0]),
        ("repeated", lambda t, p: np.zeros((2, p, t.shape[1]), np.float32), [1, 1]),
        ("outside", lambda t, p: np.zeros((1, p, t.shape[1]), np.float32), [7]),
        ("unfitted", lambda t, p: np.zeros((1, p, t.shape[1]), np.float32), [3]),
        ("count", lambda t, p: np.zeros((2, p, t.shape[1]), np.float32), [0]),
        ("width", lambda t, p: np.zeros((1, p, t.shape[1] - 1), np.float32), [0]),
        ("places", lambda t, p: np.zeros((1, p - 1, t.shape[1]), np.float32), [0]),
    ],
)
def test_damaged_or_mismatched_layered_rows_are_refused_in_one_sentence(
    concept_model_dir,  # noqa: F811
    tmp_path,
    damage,
    layers,
    layered,
):
    folder = tmp_path / "model"
    shutil.copytree(concept_model_dir, folder)
    info = read_model_info(folder)
    table = load_concepts(info, load_vocabulary(info))
    rows = layers(table.conditions, info.base.places)
    save_concepts(folder, replace(table, layers=rows, layered=np.asarray(layered, np.int64)))
    with pytest.raises(ModelError) as caught:
        load_concepts(info, load_vocabulary(info))
    message = str(caught.value)
    assert message.startswith("The concept conditions of") and message.count(". ") == 0, message
    assert ("another generator" in message) == (damage == "places"), message
    with pytest.raises(ModelError):  # the engine refuses to start on it the same way
        with open_engine(folder):
            pass


def test_the_layered_fit_adds_the_rows_its_guard_keeps_and_leaves_the_plain_table_alone(tmp_path):
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import fit_model_concepts, main

    data_dir, data, folder = _fit_folder(tmp_path)
    args = ["--model", str(folder), "--data", str(data_dir), "--layered", "--steps", "12", "--lr", "0.2"]
    with pytest.raises(ModelError, match="needs a table fitted for every training emoji first"):
        main(args)
    fit_model_concepts(folder, data_dir, steps=10, lr=0.2, quiet=True, share=1.0)
    info = read_model_info(folder)
    before = load_concepts(info, load_vocabulary(info))
    assert main(args) == 0
    table = load_concepts(info, load_vocabulary(info))
    train = data.train_index
    record = json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])
    assert "fit" in concepts_metadata(folder / CONCEPTS_FILE)  # the plain fit's record stays
    assert record["kept"] == len(train) and record["l1_last"] < record["l1_first"]
    assert table.layered.tolist() == train.tolist()
    assert table.layers.shape == (len(train), info.base.places, info.base.cond_dim)
    np.testing.assert_array_equal(table.conditions, before.conditions)  # plain rows as they were
    # the layered rows draw the training emoji closer to their pictures than the plain rows, on z never fitted
    generator = load_model(folder).generator
    real = torch.from_numpy(data.images32[train])
    from studio.models.cgan import rgba_uint8_to_premultiplied

    real = rgba_uint8_to_premultiplied(real).repeat(8, 1, 1, 1)
    z = torch.randn(len(real), generator.config.z_dim, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        plain = generator.synthesize(z, torch.from_numpy(before.conditions[train]).repeat(8, 1))
        layered = generator.synthesize(z, torch.from_numpy(table.layers).repeat(8, 1, 1))
    assert float((layered - real).abs().mean()) < float((plain - real).abs().mean())
    # a guard that tolerates no hole at all puts every row back: the table is left without layered rows
    assert main(args + ["--guard", "-1"]) == 0
    again = load_concepts(info, load_vocabulary(info))
    assert again.layers is None and again.layered is None
    assert json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])["kept"] == 0
    np.testing.assert_array_equal(again.conditions, before.conditions)
    with pytest.raises(SystemExit):
        main(args + ["--rescale", "0.5"])


def test_the_layered_screen_keeps_the_rows_that_open_few_new_dips_and_cover_the_plain_rows_picture(
    concept_model_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """``--screen-layers --screen-seeds K --screen-margin PX``: a layered row stays only if, at each of K seeds of its
    own, its picture as drawn (nothing filled) covers half the plain row's alpha and opens at most PX wide-dip pixels
    where the plain row's picture is solid; the others draw their plain rows again. (The tiny model draws no wide
    dips, so the count is replaced by one that differs from picture to picture: its mean alpha, scaled.)"""
    import studio.models.holes as holes
    from studio.engine.latents import seeded_z
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import SCREEN_SEED, main, screen_full_rows

    monkeypatch.setattr(holes, "new_wide_dips", lambda picture, other: (picture[:, 3].mean((1, 2)) + 1) * 500)
    rng = np.random.default_rng(5)
    folder, table = _layered_copy(concept_model_dir, tmp_path, "screened", [0, 1, 2], {})
    layers = (table.layers + 3.0 * rng.standard_normal(table.layers.shape)).astype(np.float32)
    lent = np.asarray([False, True, False])  # the screen keeps each kept row's flag
    save_concepts(folder, replace(table, layers=layers, lent=lent))
    table = replace(table, layers=layers, lent=lent)
    model = load_model(folder)
    worst = {}
    with torch.no_grad():
        for position, row in enumerate(table.layered.tolist()):
            dips = []
            for k in range(3):
                z = seeded_z(SCREEN_SEED + 3 * row + k, model.generator.config.z_dim)[None]
                picture = model.upsampler(
                    model.generator.synthesize(z, torch.from_numpy(layers[position : position + 1]))
                )
                dips.append(float(holes.new_wide_dips(picture, picture)[0]))
            worst[row] = max(dips)
    low, high = sorted(worst.values())[:2]
    assert high - low > 1, worst  # rows that differ, so the screen has something to choose
    limit = (low + high) / 2  # one row of three passes
    want = [row for row, value in worst.items() if value <= limit]
    assert len(want) == 1
    passed = screen_full_rows(
        folder, table.conditions, table.place_rows(), 0.0, float("inf"), 3, limit, batch=2
    )
    assert np.flatnonzero(passed & table.fitted).tolist() == want and passed[~table.fitted].all()
    monkeypatch.setattr(holes, "covers", lambda second, first: torch.zeros(len(second), dtype=torch.bool))
    hidden = screen_full_rows(folder, table.conditions, table.place_rows(), 0.0, float("inf"), 3, 1e9)
    assert (
        not hidden[table.layered].any() and hidden[3]
    )  # a picture that vanishes fails; rows without one pass
    monkeypatch.undo()
    monkeypatch.setattr(holes, "new_wide_dips", lambda picture, other: (picture[:, 3].mean((1, 2)) + 1) * 500)
    argv = ["--model", str(folder), "--screen-layers", "--screen-seeds", "3", "--screen-margin", str(limit)]
    assert main(argv) == 0
    info = read_model_info(folder)
    screened = load_concepts(info, load_vocabulary(info))
    assert screened.layered.tolist() == want
    np.testing.assert_array_equal(screened.layers, layers[want])
    assert screened.lends_all == bool(lent[want].all())
    if not screened.lends_all:
        np.testing.assert_array_equal(screened.lent, lent[want])
    np.testing.assert_array_equal(screened.conditions, table.conditions)
    record = json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers_screen"])
    assert (record["screened"], record["kept"], record["seeds"]) == (3, 1, 3)
    assert main([*argv[:-1], "0"]) == 0  # a screen nothing passes leaves the table without layered rows
    assert load_concepts(info, load_vocabulary(info)).layers is None
    with pytest.raises(ModelError, match="no layered rows to screen"):
        main(argv)


def test_a_lower_rung_keeps_the_layered_rows_and_adds_part_of_the_fit_for_the_other_concepts(tmp_path):
    """``--layered --share S --keep-layers``: the table's layered rows stay bit for bit, and each other training
    emoji gets its fitted layered row moved only S of the way from its plain row (the same fit, seed and steps)."""
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import fit_model_concepts, main

    data_dir, data, folder = _fit_folder(tmp_path)
    fit_model_concepts(folder, data_dir, steps=10, lr=0.2, quiet=True, share=1.0)
    args = ["--model", str(folder), "--data", str(data_dir), "--layered", "--steps", "12", "--lr", "0.2"]
    with pytest.raises(SystemExit):
        main(args[:4] + ["--keep-layers"])  # only with --layered
    whole = tmp_path / "whole"
    shutil.copytree(folder, whole)
    assert main([*args[:1], str(whole), *args[2:]]) == 0  # every row whole, for reference
    info = read_model_info(folder)
    plain = load_concepts(info, load_vocabulary(info))
    fitted = load_concepts(read_model_info(whole), load_vocabulary(read_model_info(whole)))
    train = data.train_index
    assert fitted.layered.tolist() == train.tolist()
    first = train[:3]  # the rows an earlier rung kept
    kept = replace(plain, layers=fitted.layers[:3] + 0.5, layered=first.astype(np.int64))
    save_concepts(folder, replace(kept, lent=np.asarray([True, False, True])))
    assert main(args + ["--share", "0.25", "--keep-layers"]) == 0
    table = load_concepts(info, load_vocabulary(info))
    assert table.layered.tolist() == train.tolist()
    assert table.lent.tolist() == [True, False] + [True] * (len(train) - 2)  # the new rows are lent
    np.testing.assert_array_equal(table.layers[:3], fitted.layers[:3] + 0.5)
    begin = np.repeat(plain.conditions[train[3:]][:, None], info.base.places, axis=1)
    np.testing.assert_allclose(table.layers[3:], begin + 0.25 * (fitted.layers[3:] - begin), atol=1e-6)
    assert np.abs(table.layers[3:] - fitted.layers[3:]).max() > 1e-3  # not the whole rows
    np.testing.assert_array_equal(table.conditions, plain.conditions)
    record = json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])
    assert (record["share"], record["kept_layers"], record["kept"]) == (0.25, 3, len(train) - 3)
    with pytest.raises(ModelError, match="share lies in"):
        main(args + ["--share", "1.5"])


def test_added_layers_join_another_folders_rows_for_the_concepts_without_one(concept_model_dir, tmp_path):  # noqa: F811
    """``--add-layers FOLDER``: the rows this table has stay bit for bit, FOLDER's rows come in for the other
    concepts, and a FOLDER fitted from other plain rows, or without layered rows, is refused in one sentence."""
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import main

    folder, table = _layered_copy(concept_model_dir, tmp_path, "kept", [0, 1], {2: 0.5})
    rung, other = _layered_copy(concept_model_dir, tmp_path, "rung", [1, 2], {0: -0.7})
    assert main(["--model", str(folder), "--add-layers", str(rung)]) == 0
    info = read_model_info(folder)
    joined = load_concepts(info, load_vocabulary(info))
    assert joined.layered.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(joined.layers[:2], table.layers)  # its own rows, row 1 included
    np.testing.assert_array_equal(joined.layers[2], other.layers[1])
    np.testing.assert_array_equal(joined.conditions, table.conditions)
    record = json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers_added"])
    assert (record["added"], record["kept"], record["lent"]) == (1, 2, True)
    assert joined.lent is None and "lent" not in _tensor_names(folder)  # every row lent: the file as before
    own, _ = _layered_copy(concept_model_dir, tmp_path, "own", [0, 1], {2: 0.5})
    assert main(["--model", str(own), "--add-layers", str(rung), "--own-names-only"]) == 0
    kept = load_concepts(read_model_info(own), load_vocabulary(read_model_info(own)))
    np.testing.assert_array_equal(kept.layers, joined.layers)
    assert kept.lent.tolist() == [True, True, False]  # only the added row is kept to its own name
    assert json.loads(concepts_metadata(own / CONCEPTS_FILE)["layers_added"])["lent"] is False
    assert main(["--model", str(own), "--add-layers", str(rung)]) == 0  # a second rung: nothing new to add
    record = json.loads(concepts_metadata(own / CONCEPTS_FILE)["layers_added"])
    assert (record["added"], record["lent"], record["earlier"]["lent"]) == (0, True, False)
    with pytest.raises(SystemExit):
        main(["--model", str(own), "--screen-layers", "--own-names-only"])
    moved = replace(other, conditions=other.conditions + 1.0)
    save_concepts(rung, moved)
    with pytest.raises(ModelError, match="other plain rows"):
        main(["--model", str(folder), "--add-layers", str(rung)])
    save_concepts(rung, replace(other, layers=None, layered=None))
    with pytest.raises(ModelError, match="no layered rows to add"):
        main(["--model", str(folder), "--add-layers", str(rung)])
    with pytest.raises(SystemExit):
        main(["--model", str(folder), "--add-layers", str(rung), "--layered"])


def test_the_own_detail_floor_keeps_a_layered_row_only_where_it_keeps_the_plain_rows_detail(
    concept_model_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """``--screen-detail D --screen-detail-own``: at each seed the layered row's picture keeps D of the plain row's own
    interior detail per px, whatever the real emoji's; no dataset needed. (The tiny model draws no interior detail,
    so the measure is replaced by one that differs from picture to picture: the colour channels' spread.)"""
    import studio.training.concept_fit as concept_fit
    from studio.engine.latents import seeded_z
    from studio.training.concept_fit import SCREEN_SEED, main

    def detail_per_px(pictures):
        return pictures[:, :3].float().std(dim=(1, 2, 3)).numpy() + 1e-3

    monkeypatch.setattr(concept_fit, "detail_per_px", detail_per_px)

    folder, table = _layered_copy(concept_model_dir, tmp_path, "own", [0, 1, 2], {})
    rng = np.random.default_rng(11)
    layers = (table.layers + 2.0 * rng.standard_normal(table.layers.shape)).astype(np.float32)
    save_concepts(folder, replace(table, layers=layers))
    model = load_model(folder)
    ratios = {}
    with torch.no_grad():
        for position, row in enumerate(table.layered.tolist()):
            z = torch.cat(
                [seeded_z(SCREEN_SEED + 3 * row + k, model.generator.config.z_dim)[None] for k in range(3)]
            )
            shown = model.upsampler(
                model.generator.synthesize(z, torch.from_numpy(layers[position]).expand(3, -1, -1))
            )
            plain = model.upsampler(
                model.generator.synthesize(z, torch.from_numpy(table.conditions[row]).expand(3, -1))
            )
            ratios[row] = float(np.min(detail_per_px(shown) / detail_per_px(plain)))
    floor = float(np.median(list(ratios.values())))  # about half the rows keep that share of their detail
    want = [row for row, ratio in ratios.items() if ratio >= floor + 1e-6]
    assert 0 < len(want) < 3, ratios  # the floor chooses
    argv = ["--model", str(folder), "--screen-layers", "--screen-seeds", "3", "--screen-margin", "1e9"]
    assert main([*argv, "--screen-detail", str(floor + 1e-6), "--screen-detail-own"]) == 0
    info = read_model_info(folder)
    assert load_concepts(info, load_vocabulary(info)).layered.tolist() == want, ratios
    with pytest.raises(SystemExit):
        main(["--model", str(folder), "--data", str(tmp_path), "--layered", "--screen-detail-own"])


def _tensor_names(folder) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / CONCEPTS_FILE), framework="numpy") as handle:
        return set(handle.keys())


def test_a_layered_row_that_is_not_lent_draws_its_own_name_and_lends_only_its_plain_row(
    concept_model_dir,  # noqa: F811
    tmp_path,
):
    """A layered row marked not lent (``concept_fit --add-layers --own-names-only``): a prompt whose nearest name of all
    is the row's own draws the layered row; one that borrows it at the table's gate (a held-out emoji's name) takes
    its plain row at every place, while a lent row is borrowed layered; the flags survive the file."""
    folder, table = _layered_copy(concept_model_dir, tmp_path, "lent", [0, 2], {0: 1.5, 4: -2.0})
    layers = table.layers.copy()
    layers[1] -= 1.0  # rocket's layered row differs from its plain row too
    table = replace(table, layers=layers, lent=np.asarray([True, False]), low=0.5, high=0.6)
    save_concepts(folder, table)
    info = read_model_info(folder)
    read = load_concepts(info, load_vocabulary(info))
    assert read.lent.tolist() == [True, False] and "lent" in _tensor_names(folder)
    conditioner = ConceptConditioner(load_model(folder).generator, load_vocabulary(info), table)
    to_rocket, to_cat = _toward("pizza", "rocket", 0.75), _toward("pizza", "cat face", 0.75)
    assert conditioner.gate(to_rocket) == (NAMES.index("rocket"), 1.0)  # borrowed whole, at the table's gate
    cat, gate = conditioner.gate(to_cat)
    assert cat == NAMES.index("cat face") and gate > 0.9
    prompts = torch.from_numpy(np.stack([_embed("rocket"), to_rocket, to_cat, _embed("cat face")]))
    with torch.no_grad():
        got = conditioner(prompts)
        projected = conditioner.layered(load_model(folder).generator.condition(prompts[2:3]).float())
    rocket_plain = np.repeat(table.conditions[NAMES.index("rocket")][None], info.base.places, 0)
    np.testing.assert_array_equal(got[0].numpy(), layers[1])  # its own name: the layered row
    np.testing.assert_array_equal(got[1].numpy(), rocket_plain)  # borrowed: the plain row at every place
    borrowed = torch.lerp(projected, torch.from_numpy(layers[:1]), gate)  # a lent row is borrowed layered
    torch.testing.assert_close(got[2:3], borrowed, rtol=0, atol=0)
    np.testing.assert_array_equal(got[3].numpy(), layers[0])
    assert np.abs(layers[1] - rocket_plain).max() > 0.5
    save_concepts(folder, replace(table, lent=None))  # every row lent: no flags in the file
    assert "lent" not in _tensor_names(folder)


@pytest.mark.parametrize("flags", [[2, 1], [1], [[1, 0]]])
def test_damaged_lent_flags_are_refused_in_one_sentence(concept_model_dir, tmp_path, flags):  # noqa: F811
    from safetensors import safe_open

    from studio.models.tensor_file import save_tensors

    folder, _ = _layered_copy(concept_model_dir, tmp_path, "flags", [0, 2], {0: 1.0})
    path = folder / CONCEPTS_FILE
    with safe_open(str(path), framework="numpy") as handle:
        tensors, meta = {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()
    save_tensors(path, {**tensors, "lent": np.asarray(flags, np.uint8)}, meta)
    info = read_model_info(folder)
    with pytest.raises(ModelError, match="lent flags") as caught:
        load_concepts(info, load_vocabulary(info))
    assert str(caught.value).count(". ") == 0


def _noisy_layers_drawn(concept_model_dir, tmp_path, name: str, seed: int):  # noqa: F811
    """A layered copy of the tiny model whose rows for concepts 0-2 are their plain rows plus noise, and per layered
    row its plain row's and its layered row's 128 px pictures at the layered screen's 3 seeds of the row's own."""
    from studio.engine.latents import seeded_z
    from studio.training.concept_fit import SCREEN_SEED

    rng = np.random.default_rng(seed)
    folder, table = _layered_copy(concept_model_dir, tmp_path, name, [0, 1, 2], {})
    layers = (table.layers + 3.0 * rng.standard_normal(table.layers.shape)).astype(np.float32)
    table = replace(table, layers=layers)
    save_concepts(folder, table)
    model = load_model(folder)
    plain = np.repeat(table.conditions[:, None], layers.shape[1], 1)
    drawn = {}
    with torch.no_grad():
        for position, row in enumerate(table.layered.tolist()):
            z = torch.cat(
                [seeded_z(SCREEN_SEED + 3 * row + k, model.generator.config.z_dim)[None] for k in range(3)]
            )
            drawn[row] = [
                model.upsampler(model.generator.synthesize(z, torch.from_numpy(c).expand(3, *c.shape[1:])))
                for c in (plain[row : row + 1], layers[position : position + 1])
            ]
    return folder, table, drawn


def _screen_keeps_the_rows_that_add_none(folder, table, added: dict, **option) -> list[int]:
    """Assert that ``screen_full_rows`` with ``option`` (and loose per-seed margins) passes exactly the layered rows
    whose ``added`` count is 0 or less, and every plain row, while without it every layered row passes. Returns them."""
    from studio.training.concept_fit import screen_full_rows

    want = [row for row, value in added.items() if value <= 0]
    assert 0 < len(want) < 3, added  # the rows differ, so the screen has something to choose
    loose = dict(margin=0.0, net_margin=float("inf"), seeds=3, screen_margin=1e9)
    passed = screen_full_rows(folder, table.conditions, table.place_rows(), **loose, **option)
    assert np.flatnonzero(passed & table.fitted).tolist() == want and passed[~table.fitted].all()
    assert screen_full_rows(folder, table.conditions, table.place_rows(), **loose)[table.layered].all()
    return want


def test_the_mean_dips_screen_keeps_a_layered_row_only_where_it_adds_no_dips_on_average(
    concept_model_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """``--screen-layers --screen-mean-dips``: besides the per-seed margins, a row fails when its pictures at its own
    seeds have more deep-dip px on average than the plain row's (the tiny model draws no dips, so the count is replaced
    by one that differs from picture to picture: its mean alpha, scaled)."""
    import studio.models.holes as holes
    from studio.training.concept_fit import main

    def count(pictures, closing):
        assert closing == holes.TEAR_CLOSING
        return (pictures[:, 3].mean((1, 2)) + 1) * 500

    monkeypatch.setattr(holes, "deep_dips", count)
    monkeypatch.setattr(holes, "covers", lambda second, first: torch.ones(len(second), dtype=torch.bool))
    folder, table, drawn = _noisy_layers_drawn(concept_model_dir, tmp_path, "dips", 5)
    added = {
        row: float((count(pictures[1], holes.TEAR_CLOSING) - count(pictures[0], 7)).mean())
        for row, pictures in drawn.items()
    }
    want = _screen_keeps_the_rows_that_add_none(folder, table, added, mean_dips=True)
    argv = ["--model", str(folder), "--screen-layers", "--screen-seeds", "3", "--screen-margin", "1e9"]
    assert main([*argv, "--screen-mean-dips"]) == 0
    info = read_model_info(folder)
    assert load_concepts(info, load_vocabulary(info)).layered.tolist() == want
    with pytest.raises(SystemExit):
        main(["--model", str(folder), "--screen-mean-dips"])


def _spy_on_the_tear_fit(monkeypatch) -> dict:
    """Wrap ``concept_fit``'s ``tear_limits`` and ``fit_conditions`` (both still run): the returned dict receives the
    limits' rows, solid masks and result (``limit_rows``, ``limit_solid``, ``limits``) and the fit's keyword
    arguments."""
    import studio.training.concept_fit as concept_fit

    seen = {}
    real_fit, real_limits = concept_fit.fit_conditions, concept_fit.tear_limits

    def limits(generator, upsampler, conditions, *args, **kwargs):
        seen["limit_rows"], seen["limit_solid"] = conditions.clone(), kwargs.get("solid")
        seen["limits"] = real_limits(generator, upsampler, conditions, *args, **kwargs)
        return seen["limits"]

    def fit(*args, **kwargs):
        seen.update(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(concept_fit, "tear_limits", limits)
    monkeypatch.setattr(concept_fit, "fit_conditions", fit)
    return seen


def test_the_layered_fit_takes_the_tear_term_held_to_the_plain_rows_tears(tmp_path, monkeypatch):
    """``--layered --tear-weight W``: the fit's 128 px tear term (:func:`fit_conditions`, tested on its own) gets the
    model's upsampler and, as each row's limit, the tears its plain row draws (``tear_limits`` of the plain rows at
    every place); the weight is recorded, and the plain fit's 32 px hole term is refused in one line."""
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import fit_model_concepts, layered, main

    data_dir, data, folder = _fit_folder(tmp_path)
    fit_model_concepts(folder, data_dir, steps=10, lr=0.2, quiet=True, share=1.0)
    info = read_model_info(folder)
    plain = load_concepts(info, load_vocabulary(info)).conditions[data.train_index]
    seen = _spy_on_the_tear_fit(monkeypatch)
    args = ["--model", str(folder), "--data", str(data_dir), "--layered", "--steps", "4", "--lr", "0.2"]
    assert main(args + ["--tear-weight", "3"]) == 0
    torch.testing.assert_close(seen["limit_rows"], layered(torch.from_numpy(plain), info.base.places))
    assert seen["tear_weight"] == 3.0 and seen["tear_limit"] is seen["limits"]
    assert seen["upsampler"] is not None and len(seen["limits"]) == len(data.train_index)
    assert json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])["tear_weight"] == 3.0
    seen.clear()
    assert main(args) == 0  # without the term: no limits, no upsampler, nothing recorded
    assert "limits" not in seen and seen["tear_weight"] == 0.0 and seen["upsampler"] is None
    assert "tear_weight" not in json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])
    with pytest.raises(SystemExit):
        main(args + ["--hole-weight", "2"])
    with pytest.raises(ModelError, match="tear term's weight"):
        main(args + ["--tear-weight", "-1"])


def test_the_layered_tear_term_can_count_only_where_the_real_emoji_is_solid(tmp_path, monkeypatch):
    """``--layered --tear-weight W --tear-where-solid``: the limits and the fit both get the real emoji's solid
    masks (alpha above one half at 128 px, one per training emoji, in the fit's row order), the report says so;
    without a tear weight, or without --layered, the flag is refused in one line."""
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import fit_model_concepts, main

    data_dir, data, folder = _fit_folder(tmp_path)
    fit_model_concepts(folder, data_dir, steps=10, lr=0.2, quiet=True, share=1.0)
    seen = _spy_on_the_tear_fit(monkeypatch)
    args = ["--model", str(folder), "--data", str(data_dir), "--layered", "--steps", "2", "--lr", "0.2"]
    assert main(args + ["--tear-weight", "3", "--tear-where-solid"]) == 0
    expected = torch.from_numpy(data.images128[data.train_index][..., 3] > 127).float().unsqueeze(1)
    assert torch.equal(seen["tear_solid"], expected) and seen["limit_solid"] is seen["tear_solid"]
    assert 0 < float(expected.mean()) < 1  # real emoji: solid inside, clear around
    layers = json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])
    assert layers["tear_where_solid"] is True and layers["tear_weight"] == 3.0
    seen.clear()
    assert main(args + ["--tear-weight", "3"]) == 0  # counted everywhere, as session 56's fit
    assert seen["tear_solid"] is None and seen["limit_solid"] is None
    assert "tear_where_solid" not in json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])
    for refused in (args + ["--tear-where-solid"], args[:-5] + ["--tear-weight", "3", "--tear-where-solid"]):
        with pytest.raises(SystemExit):
            main(refused)


def test_the_layered_fit_takes_the_detail_term_alone_or_beside_the_tear_term(tmp_path, monkeypatch):
    """``--layered --detail-weight W``: the fit's 128 px detail term (:func:`fit_conditions`, tested on its own) gets
    the model's upsampler without any tear limits, or beside the tear term; the weight is recorded in the report and
    the checkpoint's recipe (a checkpoint of a fit without it resumes as before: the key is absent at 0); a negative
    weight is one sentence, and the plain fit refuses the flag."""
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import fit_model_concepts, main

    data_dir, data, folder = _fit_folder(tmp_path)
    fit_model_concepts(folder, data_dir, steps=10, lr=0.2, quiet=True, share=1.0)
    seen = _spy_on_the_tear_fit(monkeypatch)
    args = ["--model", str(folder), "--data", str(data_dir), "--layered", "--steps", "2", "--lr", "0.2"]
    assert main(args + ["--detail-weight", "2"]) == 0
    assert seen["detail_weight"] == 2.0 and seen["upsampler"] is not None and "limits" not in seen
    assert json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])["detail_weight"] == 2.0
    seen.clear()
    checkpoint = tmp_path / "fit.ckpt"
    both = ["--tear-weight", "3", "--detail-weight", "0.5", "--checkpoint", str(checkpoint)]
    assert main(args[:-3] + ["6", "--lr", "0.2"] + both) == 0
    assert seen["detail_weight"] == 0.5 and seen["tear_weight"] == 3.0
    assert seen["tear_limit"] is seen["limits"]
    assert json.loads(torch.load(checkpoint, weights_only=True)["recipe"])["detail_weight"] == 0.5
    seen.clear()
    without = tmp_path / "without.ckpt"
    assert main(args[:-3] + ["6", "--lr", "0.2", "--checkpoint", str(without)]) == 0
    assert seen["detail_weight"] == 0.0 and seen["upsampler"] is None
    assert "detail_weight" not in json.loads(torch.load(without, weights_only=True)["recipe"])
    assert "detail_weight" not in json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers"])
    with pytest.raises(ModelError, match="detail term's weight"):
        main(args + ["--detail-weight", "-1"])
    with pytest.raises(SystemExit):
        main(args[:4] + ["--steps", "2", "--detail-weight", "1"])


def test_the_layered_screen_can_hold_each_rows_outline_to_its_plain_rows(concept_model_dir, tmp_path):  # noqa: F811
    """``--screen-layers --screen-edge F``: a row also fails when its pictures' mean alpha edge length at its own
    seeds (``picture_detail``'s third part) is below F times its plain row's; checked against the edge lengths
    recomputed here, with F between two rows' ratios so that one passes and one fails."""
    from studio.models import holes
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import main, screen_full_rows
    from studio.training.evaluate import picture_detail

    folder, table, drawn = _noisy_layers_drawn(concept_model_dir, tmp_path, "edge", 11)
    ratio = {
        row: float(picture_detail(pictures[1])[2].sum() / picture_detail(pictures[0])[2].sum())
        for row, pictures in drawn.items()
        if bool(holes.covers(pictures[1], pictures[0]).all())  # a row that fails to cover is dropped anyway
    }
    values = sorted(ratio.values())
    assert len(values) >= 2 and values[0] < 1.0, ratio
    floor = (values[0] + min(values[1], 1.0)) / 2
    want = [row for row, value in ratio.items() if value >= floor]
    assert 0 < len(want) < len(ratio), (ratio, floor)
    loose = dict(margin=0.0, net_margin=float("inf"), seeds=3, screen_margin=1e9)
    passed = screen_full_rows(folder, table.conditions, table.place_rows(), **loose, edge=floor)
    assert np.flatnonzero(passed & table.fitted).tolist() == want and passed[~table.fitted].all()
    argv = ["--model", str(folder), "--screen-layers", "--screen-seeds", "3", "--screen-margin", "1e9"]
    assert main([*argv, "--screen-edge", str(floor)]) == 0
    info = read_model_info(folder)
    assert load_concepts(info, load_vocabulary(info)).layered.tolist() == want
    assert json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers_screen"])["edge"] == floor
    with pytest.raises(SystemExit):
        main(["--model", str(folder), "--screen-edge", "0.9"])
    with pytest.raises(ModelError, match="edge floor"):
        main([*argv, "--screen-edge", "1.5"])


def _red_under_middle(pictures):
    """A count the tiny model's pictures have (px whose red lies under the middle), standing in for a measure whose
    features it does not draw (eyes, enclosed holes)."""
    return (pictures[:, 0] < 0).sum((1, 2))


def _red_under_middle_where_not(shown, first):
    """The same px of ``shown`` where ``first``'s red is not under the middle (a count of what ``shown`` adds)."""
    return ((shown[:, 0] < 0) & (first[:, 0] >= 0)).sum((1, 2))


@pytest.mark.parametrize("flag", ["marks", "enclosed"])
def test_the_layered_screen_holds_each_rows_marks_and_enclosed_holes_to_its_plain_rows(
    concept_model_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
    flag,
):
    """``--screen-layers --screen-marks F`` fails a row when at any of its own seeds its picture has fewer dark-mark px
    than F times its plain row's; ``--screen-enclosed N`` when at any seed its picture has more than N see-through px
    enclosed where its plain row's is solid. Checked against the counts recomputed here, with the bar between two
    rows' values so that one passes and one fails. The tiny model draws no eyes and few holes, so each count is
    swapped for one it has, the screen's wiring tested; the counts themselves are tested on drawn pictures
    (tests/test_training_evaluate.py, tests/test_training_holes.py)."""
    from studio.models import holes
    from studio.models.concepts import concepts_metadata
    from studio.training import evaluate
    from studio.training.concept_fit import main, screen_full_rows

    monkeypatch.setattr(evaluate, "dark_marks", _red_under_middle)
    monkeypatch.setattr(holes, "enclosed_where_solid", _red_under_middle_where_not)
    folder, table, drawn = _noisy_layers_drawn(concept_model_dir, tmp_path, flag, 11)
    row_value = {}
    for row, (first, shown) in drawn.items():
        if not bool(holes.covers(shown, first).all()):  # a row that fails to cover is dropped anyway
            continue
        if flag == "marks":  # the least share kept over the seeds where the plain row has any
            before, after = _red_under_middle(first).double(), _red_under_middle(shown).double()
            row_value[row] = float((after / before)[before > 0].min()) if bool((before > 0).any()) else np.inf
        else:  # the most added at any seed
            row_value[row] = float(_red_under_middle_where_not(shown, first).max())
    values = sorted(set(row_value.values()))
    assert len(values) >= 2, row_value
    if flag == "marks":
        bar = (values[0] + min(values[1], 1.0)) / 2
        want = [row for row, value in row_value.items() if value >= bar]
    else:
        bar = (values[0] + values[1]) / 2
        want = [row for row, value in row_value.items() if value <= bar]
    assert 0 < len(want) < len(row_value), (row_value, bar)
    loose = dict(margin=0.0, net_margin=float("inf"), seeds=3, screen_margin=1e9)
    passed = screen_full_rows(folder, table.conditions, table.place_rows(), **loose, **{flag: bar})
    assert np.flatnonzero(passed & table.fitted).tolist() == want and passed[~table.fitted].all()
    argv = ["--model", str(folder), "--screen-layers", "--screen-seeds", "3", "--screen-margin", "1e9"]
    assert main([*argv, f"--screen-{flag}", str(bar)]) == 0
    info = read_model_info(folder)
    assert load_concepts(info, load_vocabulary(info)).layered.tolist() == want
    assert json.loads(concepts_metadata(folder / CONCEPTS_FILE)["layers_screen"])[flag] == bar
    with pytest.raises(SystemExit):
        main(["--model", str(folder), f"--screen-{flag}", "0.9"])
    with pytest.raises(ModelError, match="dark-mark floor" if flag == "marks" else "enclosed-hole margin"):
        main([*argv, f"--screen-{flag}", "1.5" if flag == "marks" else "-1"])


def test_the_real_solid_dips_screen_holds_each_row_to_its_plain_rows_holes_where_the_real_emoji_is_solid(
    concept_model_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """``--screen-layers --screen-real-solid-dips`` (session 65): a row fails when its pictures at its own seeds have
    more deep-dip px where its real emoji is solid, on average, than its plain row's (rows_verify's
    ``holes_where_real_solid``, the ship rules' bar). The tiny model draws no dips, so the count is swapped for one
    that differs from picture to picture and reads the real emoji given (its mean alpha, scaled); the count itself is
    tested on drawn pictures (tests/test_training_holes.py)."""
    import studio.models.holes as holes
    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.training.concept_fit import main

    wide = holes.dips_where_solid  # the per-seed margin's wide dips (15 px closing) stay as they are

    def count(pictures, real, closing):
        if closing != holes.TEAR_CLOSING:
            return wide(pictures, real, closing)
        return (pictures[:, 3].mean((1, 2)) + 1) * 500 * (real[:, 3].mean((1, 2)) + 2)

    monkeypatch.setattr(holes, "dips_where_solid", count)
    monkeypatch.setattr(holes, "covers", lambda second, first: torch.ones(len(second), dtype=torch.bool))
    folder, table, drawn = _noisy_layers_drawn(concept_model_dir, tmp_path, "real", 5)
    real = np.random.default_rng(1).integers(0, 256, (len(table.conditions), 128, 128, 4), dtype=np.uint8)
    solid = rgba_uint8_to_premultiplied(torch.from_numpy(real))
    added = {
        row: float(
            (
                count(shown, solid[[row] * 3], holes.TEAR_CLOSING)
                - count(first, solid[[row] * 3], holes.TEAR_CLOSING)
            ).mean()
        )
        for row, (first, shown) in drawn.items()
    }
    _screen_keeps_the_rows_that_add_none(folder, table, added, real=real)
    argv = ["--model", str(folder), "--screen-layers", "--screen-seeds", "3", "--screen-margin", "1e9"]
    with pytest.raises(ModelError, match="needs the dataset"):
        main([*argv, "--screen-real-solid-dips"])
    with pytest.raises(SystemExit):
        main(["--model", str(folder), "--screen-real-solid-dips"])
