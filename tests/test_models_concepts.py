"""Fitted concept conditions (studio/models/concepts.py, studio/training/concept_fit.py): a prompt that names a
fitted concept, in any of its names, draws the fitted condition; a free prompt draws what the projection gives;
the gate blends in between; an unfitted concept is never borrowed. Damaged or mismatched files are refused in
one sentence, the engine renders with the table, and the model hash covers it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY_NAME, HashTextEncoder, open_engine

from studio.engine.requests import GenerationRequest
from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.concepts import (
    CONCEPTS_FILE,
    ConceptConditioner,
    ConceptConditions,
    load_concepts,
    save_concepts,
)
from studio.models.format import ModelError, load_model, read_model_info
from studio.models.vocabulary import load_vocabulary, save_vocabulary

NAMES = ["cat face", "dog face", "rocket", "pizza"]
FITTED = np.array([True, True, True, False])


def _embed(text: str) -> np.ndarray:
    return HashTextEncoder().encode([text])[0]


def _toward(name: str, other: str, cosine: float) -> np.ndarray:
    """A unit embedding at ``cosine`` from ``name``'s, turned towards ``other``'s."""
    a, b = _embed(name), _embed(other)
    b = b - (b @ a) * a
    b /= np.linalg.norm(b)
    return (cosine * a + np.sqrt(1 - cosine**2) * b).astype(np.float32)


def _row_gated(concept_model_dir, tmp_path, gates: dict[int, tuple[float, float]]):
    """A copy of the concept model whose table stores a gate per row: the table's own, but ``gates`` for the rows
    named there. Returns the folder, its vocabulary, the table before, the per-row gates and the loaded table."""
    folder = tmp_path / "model"
    shutil.copytree(concept_model_dir, folder)
    info = read_model_info(folder)
    vocabulary = load_vocabulary(info)
    table = load_concepts(info, vocabulary)
    low = np.full(len(NAMES), table.low, np.float32)
    high = np.full(len(NAMES), table.high, np.float32)
    for row, (row_low, row_high) in gates.items():
        low[row], high[row] = row_low, row_high
    save_concepts(folder, replace(table, row_low=low, row_high=high))
    return folder, vocabulary, table, (low, high), load_concepts(info, vocabulary)


@pytest.fixture(scope="module")
def concept_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a four-concept vocabulary ("Katze" another name of the cat) and a table fitted for
    the first three."""
    folder = tmp_path_factory.mktemp("concepts") / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, folder)
    entries = [{"name": name, "group": "", "subgroup": ""} for name in NAMES]
    encoder = HashTextEncoder()
    save_vocabulary(
        folder, entries, encoder.encode(NAMES), aliases=(encoder.encode(["Katze"]), np.array([0]))
    )
    cond_dim = read_model_info(folder).base.cond_dim
    conditions = np.random.default_rng(0).standard_normal((len(NAMES), cond_dim)).astype(np.float32)
    save_concepts(folder, ConceptConditions(conditions, FITTED))
    return folder


@pytest.fixture(scope="module")
def conditioner(concept_model_dir) -> ConceptConditioner:
    info = read_model_info(concept_model_dir)
    vocabulary = load_vocabulary(info)
    table = load_concepts(info, vocabulary)
    return ConceptConditioner(load_model(concept_model_dir).generator, vocabulary, table)


def _conditions(conditioner, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return conditioner(torch.from_numpy(HashTextEncoder().encode(texts)))


def test_a_fitted_name_in_any_language_draws_its_fitted_condition(conditioner):
    table = torch.from_numpy(conditioner.table.conditions)
    got = _conditions(conditioner, ["cat face", "Katze", "rocket"])
    torch.testing.assert_close(got, table[[0, 0, 2]], rtol=0, atol=0)


def test_a_free_prompt_and_an_unfitted_concept_draw_what_the_projection_gives(conditioner):
    texts = ["a sentence about nothing", "pizza"]  # pizza has no fitted condition: nothing is borrowed
    rows = torch.from_numpy(HashTextEncoder().encode(texts))
    with torch.no_grad():  # row by row, as the engine projects
        plain = torch.cat([conditioner.generator.condition(rows[i : i + 1]) for i in range(len(rows))])
    torch.testing.assert_close(_conditions(conditioner, texts), plain, rtol=0, atol=0)
    assert conditioner.nearest(_embed("pizza"))[0] != 3


def test_an_english_name_wins_a_tie_with_another_languages_name_for_another_concept(
    concept_model_dir, tmp_path
):
    """ "pie" is a food in English and the foot in Spanish: typed, the English concept's row is drawn."""
    folder = tmp_path / "model"
    shutil.copytree(concept_model_dir, folder)
    entries = [{"name": name, "group": "", "subgroup": ""} for name in NAMES]
    encoder = HashTextEncoder()
    # "rocket" is also a name of the cat (index 0) in another language; the rocket's stored English name is a
    # hair off the typed one (as int8 rounding leaves it), so the alias scores higher by less than the margin
    names = encoder.encode(NAMES).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(names.shape[1]).astype(np.float32)
    names[2] += 0.03 * np.linalg.norm(names[2]) * noise / np.linalg.norm(noise)
    names[2] *= np.linalg.norm(names[0]) / np.linalg.norm(names[2])  # as long as the others: cosine 0.9996
    save_vocabulary(folder, entries, names, aliases=(encoder.encode(["rocket"]), np.array([0])))
    info = read_model_info(folder)
    vocabulary = load_vocabulary(info)
    scores = vocabulary.name_scores(_embed("rocket"))
    assert scores[0] > scores[2] > scores[0] - 0.002, scores
    tied = ConceptConditioner(load_model(folder).generator, vocabulary, load_concepts(info, vocabulary))
    assert tied.nearest(_embed("rocket"))[0] == 2
    table = load_concepts(info, vocabulary)
    torch.testing.assert_close(
        tied(torch.from_numpy(_embed("rocket")[None])),
        torch.from_numpy(table.conditions[2:3]),
        rtol=0,
        atol=0,
    )


def test_the_gate_blends_a_near_paraphrase_and_a_batch_never_moves_a_row(conditioner):
    table = conditioner.table
    cosine = (table.low + table.high) / 2  # half way up the gate
    near = _toward("dog face", "unrelated words", cosine)
    rows = torch.from_numpy(np.stack([near, _embed("cat face"), _embed("a sentence about nothing")]))
    with torch.no_grad():
        got = conditioner(rows)
        projected = conditioner.generator.condition(rows[:1])
    concept, found = conditioner.nearest(near)
    assert concept == 1 and abs(found - cosine) < 2e-3  # the vocabulary stores names as float16
    expected = torch.lerp(projected, torch.from_numpy(table.conditions[1:2]), float(table.gate(found)))
    torch.testing.assert_close(got[:1], expected)
    assert 0.4 < float(table.gate(found)) < 0.6
    for i in range(len(rows)):
        with torch.no_grad():
            torch.testing.assert_close(conditioner(rows[i : i + 1]), got[i : i + 1], rtol=0, atol=0)


def _image(engine, request) -> np.ndarray:
    results = list(engine.generate_sync(request))
    assert len(results) == 1 and results[0].ok, [r.error for r in results]
    return results[0].image


def test_the_engine_renders_names_with_the_table_and_the_hash_covers_it(tiny_model_dir, concept_model_dir):
    request = GenerationRequest("cat face", seed=3, model=TINY_NAME)
    free = GenerationRequest("a sentence about nothing", seed=3, model=TINY_NAME)
    with open_engine(tiny_model_dir) as engine:
        before = [_image(engine, r) for r in (request, free)]
    with open_engine(concept_model_dir) as engine:
        after = [_image(engine, r) for r in (request, free)]
    assert not np.array_equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert load_model(concept_model_dir).hash != load_model(tiny_model_dir).hash


@pytest.mark.parametrize(
    "damage",
    [
        "garbage",
        "wrong_shape",
        "bad_gate",
        "not_finite",
        "no_vocabulary",
        "bad_row_gate",
        "short_row_gate",
        "short_full",
        "bad_margin",
        "bad_net_margin",
    ],
)
def test_a_damaged_or_mismatched_table_is_refused_in_one_sentence(concept_model_dir, tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(concept_model_dir, folder)
    info = read_model_info(folder)
    cond_dim = info.base.cond_dim
    conditions = np.zeros((len(NAMES), cond_dim), np.float32)
    if damage == "garbage":
        (folder / CONCEPTS_FILE).write_bytes(b"\x00not a safetensors file")
    elif damage == "wrong_shape":
        save_concepts(folder, ConceptConditions(np.zeros((2, cond_dim), np.float32), FITTED[:2]))
    elif damage == "bad_gate":
        save_concepts(folder, ConceptConditions(conditions, FITTED, low=0.9, high=0.5))
    elif damage == "not_finite":
        conditions[1, 0] = np.nan
        save_concepts(folder, ConceptConditions(conditions, FITTED))
    elif damage in ("bad_row_gate", "short_row_gate"):
        rows = len(NAMES) if damage == "bad_row_gate" else 2
        low, high = np.full(rows, 0.6, np.float32), np.full(rows, 0.8, np.float32)
        high[-1] = 0.5 if damage == "bad_row_gate" else 0.8  # one row's gate falls
        save_concepts(folder, ConceptConditions(conditions, FITTED, row_low=low, row_high=high))
    elif damage == "short_full":
        save_concepts(folder, ConceptConditions(conditions, FITTED, full=conditions[:2], full_margin=30.0))
    elif damage == "bad_margin":
        save_concepts(folder, ConceptConditions(conditions, FITTED, full=conditions, full_margin=-1.0))
    elif damage == "bad_net_margin":
        save_concepts(folder, ConceptConditions(conditions, FITTED, full=conditions, full_net_margin=-5.0))
    else:  # a table without the names it is matched against
        (folder / "vocabulary.json").unlink()
        (folder / "vocabulary.safetensors").unlink()
    with pytest.raises(ModelError) as caught:
        load_concepts(info, load_vocabulary(info))
    message = str(caught.value)
    assert message.startswith("The concept conditions of") and message.count(". ") == 0
    with pytest.raises(ModelError):  # the engine refuses to start on it the same way
        with open_engine(folder):
            pass


def test_a_folder_without_a_table_has_none(tiny_model_dir):
    assert load_concepts(read_model_info(tiny_model_dir), None) is None


def _fit_folder(tmp_path, with_vocabulary: bool = True):
    """A synthetic 12-emoji dataset and a tiny model folder whose vocabulary (when asked) lists its names."""
    from conftest import make_tiny_model

    from studio.training.dataset import load_dataset, make_synthetic_dataset

    data_dir = make_synthetic_dataset(tmp_path / "data", count=12)
    data = load_dataset(data_dir)
    folder = make_tiny_model(tmp_path / "models")
    if with_vocabulary:
        _save_names(folder, data)
    return data_dir, data, folder


def _save_names(folder, data) -> None:
    entries = [{"name": name, "group": "", "subgroup": ""} for name in data.names]
    save_vocabulary(folder, entries, data.name_embeddings())


def _tiny_critic(path):
    """A trainer-style d_*.safetensors with a small random projection discriminator, for the fit's -D term."""
    from safetensors.torch import save_file

    from studio.training.networks import ProjectionDiscriminator

    torch.manual_seed(0)
    critic = ProjectionDiscriminator(ch=4, embed_dim=384)
    critic(torch.zeros(1, 4, 32, 32), torch.zeros(1, 384))  # spectral norm's vectors exist after one call
    save_file({f"conv.{k}": v.contiguous() for k, v in critic.state_dict().items()}, str(path))
    return path


def test_fitting_lowers_the_loss_fits_training_emoji_only_and_refuses_a_foreign_vocabulary(tmp_path):
    from studio.training.concept_fit import fit_model_concepts

    data_dir, data, folder = _fit_folder(tmp_path, with_vocabulary=False)
    with pytest.raises(ModelError, match="does not list the dataset's emoji"):
        fit_model_concepts(folder, data_dir, steps=2, quiet=True)  # no vocabulary yet
    assert not (folder / CONCEPTS_FILE).exists()
    _save_names(folder, data)
    report = fit_model_concepts(folder, data_dir, steps=40, lr=0.2, quiet=True, share=1.0)
    info = read_model_info(folder)
    table = load_concepts(info, load_vocabulary(info))
    assert table.fitted.tolist() == (~data.heldout).tolist()
    assert report["fitted"] == int((~data.heldout).sum()) and report["moved"] > 0
    fit_model_concepts(folder, data_dir, steps=40, lr=0.2, quiet=True, share=0.5)  # the same fit, half way
    half = load_concepts(info, load_vocabulary(info)).conditions
    with torch.no_grad():
        origin = load_model(folder).generator.condition(
            torch.from_numpy(data.name_embeddings()[data.train_index])
        )
    np.testing.assert_allclose(
        half[data.train_index],
        (origin + 0.5 * (torch.from_numpy(table.conditions[data.train_index]) - origin)).numpy(),
        atol=1e-6,
    )
    # on z the fit never drew, the fitted conditions draw the training emoji closer to their pictures
    generator = load_model(folder).generator
    train = data.train_index
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[train])).repeat(16, 1, 1, 1)
    z = torch.randn(len(real), generator.config.z_dim, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        start = generator.condition(torch.from_numpy(data.name_embeddings()[train])).repeat(16, 1)
        fitted = torch.from_numpy(table.conditions[train]).repeat(16, 1)
        before = float((generator.synthesize(z, start) - real).abs().mean())
        after = float((generator.synthesize(z, fitted) - real).abs().mean())
    assert after < before - 0.01, (before, after)
    # a training emoji's name now draws its fitted condition, closer to its own picture than before
    conditioner = ConceptConditioner(load_model(folder).generator, load_vocabulary(info), table)
    name = torch.from_numpy(data.name_embeddings()[:1])
    torch.testing.assert_close(conditioner(name), torch.from_numpy(table.conditions[:1]), rtol=0, atol=0)
    # a guard that tolerates no hole at all (margin -1) puts every fitted row back to its projection
    guarded = fit_model_concepts(folder, data_dir, steps=2, lr=0.2, quiet=True, share=1.0, guard=-1.0)
    assert guarded["guard"]["reverted"] == len(data.train_index)
    np.testing.assert_array_equal(
        load_concepts(info, load_vocabulary(info)).conditions[train], origin.numpy()
    )


def test_inversion_starts_fitted_concepts_from_what_their_names_draw(concept_model_dir):
    from studio.engine.inversion import ConceptBank

    with open_engine(concept_model_dir) as engine:
        vocabulary = load_vocabulary(read_model_info(concept_model_dir))
        bank = ConceptBank.build(engine._renderer, vocabulary, None, render=False)
        with torch.no_grad():
            drawn = engine._renderer.project(torch.from_numpy(HashTextEncoder().encode(NAMES)))
    torch.testing.assert_close(bank.conditions[:3], drawn[:3], rtol=0, atol=0)  # the fitted three


def test_samples_and_evaluation_draw_names_through_the_table(tiny_model_dir, concept_model_dir):
    from studio.training.evaluate import ConceptGenerator, drawn_generator, sample_row

    model, plain = load_model(concept_model_dir), load_model(tiny_model_dir)
    assert isinstance(drawn_generator(model), ConceptGenerator)
    assert drawn_generator(plain) is plain.generator
    encoder = HashTextEncoder()
    named = [sample_row(m, encoder, "cat face", seeds=(0, 1)) for m in (model, plain)]
    free = [sample_row(m, encoder, "a sentence about nothing", seeds=(0, 1)) for m in (model, plain)]
    gap = [int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in (named, free)]
    assert gap[0] > 10 and gap[1] <= 1, gap  # free: the same up to the rounding of a batched projection


def test_the_fit_takes_a_trainers_discriminator_and_refuses_other_weights(tmp_path):
    from safetensors.torch import save_file

    from studio.training.concept_fit import fit_model_concepts
    from studio.training.options import TrainError

    data_dir, _, folder = _fit_folder(tmp_path)
    _tiny_critic(tmp_path / "d.safetensors")
    plain = fit_model_concepts(folder, data_dir, steps=3, lr=0.2, quiet=True, share=1.0)
    judged = fit_model_concepts(
        folder, data_dir, steps=3, lr=0.2, quiet=True, share=1.0, discriminator=tmp_path / "d.safetensors"
    )
    assert judged["adv_weight"] == 0.25 and plain["adv_weight"] == 0.0
    assert (
        judged["l1_first"] == plain["l1_first"] and judged["moved"] != plain["moved"]
    )  # the term moved the fit
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(TrainError, match="holds no conventional discriminator"):
        fit_model_concepts(
            folder, data_dir, steps=1, quiet=True, discriminator=tmp_path / "other.safetensors"
        )


def test_bf16_is_asked_for_only_where_the_cpu_has_it(tmp_path, monkeypatch, capsys):
    """--bf16 on a CPU without native bf16 (emulated there, up to 30x slower) fits in float32 and says so."""
    import studio.training.concept_fit as concept_fit
    import studio.training.runs as runs

    data_dir, _, folder = _fit_folder(tmp_path)
    monkeypatch.setattr(runs, "cpu_supports_bf16", lambda: False)
    assert concept_fit.main(["--model", str(folder), "--data", str(data_dir), "--steps", "1", "--bf16"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out[out.index("{\n") :])["bf16"] is False  # the report, after the steps' lines
    assert "no native bf16" in err and "float32" in err  # one sentence, and the fit went on


def test_feature_matching_draws_closer_to_what_the_critic_sees_in_the_real_picture(tmp_path):
    from studio.training.concept_fit import fit_model_concepts, load_critic

    data_dir, data, folder = _fit_folder(tmp_path)
    weights = _tiny_critic(tmp_path / "d.safetensors")
    critic = load_critic(weights, 384).eval()
    train = data.train_index
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[train])).repeat(8, 1, 1, 1)
    info = read_model_info(folder)
    gaps = {}
    for weight in (0.0, 20.0):
        report = fit_model_concepts(
            folder,
            data_dir,
            steps=15,
            lr=0.1,
            quiet=True,
            share=1.0,
            discriminator=weights,
            feature_match=weight,
        )
        assert report["feature_match"] == weight
        generator = load_model(folder).generator
        rows = torch.from_numpy(load_concepts(info, load_vocabulary(info)).conditions[train]).repeat(8, 1)
        z = torch.randn(len(rows), generator.config.z_dim, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():  # on z the fit never drew
            gaps[weight] = float(
                (critic.features(generator.synthesize(z, rows)) - critic.features(real)).abs().mean()
            )
    assert gaps[20.0] < 0.95 * gaps[0.0], gaps  # 1.08 against 1.18 here
    with pytest.raises(ModelError, match="give --discriminator"):
        fit_model_concepts(folder, data_dir, steps=1, quiet=True, feature_match=1.0)


def test_rescale_moves_every_fitted_row_towards_its_projection_and_keeps_the_fits_record(tmp_path):
    from safetensors import safe_open

    from studio.training.concept_fit import fit_model_concepts, main, rescale_model_concepts

    data_dir, data, folder = _fit_folder(tmp_path)
    with pytest.raises(ModelError, match="has no concept table to rescale"):
        rescale_model_concepts(folder, data_dir, 0.5)
    fit_model_concepts(folder, data_dir, steps=5, lr=0.2, quiet=True, share=1.0)
    info = read_model_info(folder)
    train = data.train_index
    full = load_concepts(info, load_vocabulary(info)).conditions.copy()
    with torch.no_grad():
        origin = (
            load_model(folder).generator.condition(torch.from_numpy(data.name_embeddings()[train])).numpy()
        )
    full[train[0]] = origin[0]  # a row a guard had put back
    save_concepts(
        folder, ConceptConditions(full, load_concepts(info, load_vocabulary(info)).fitted), {"fit": "{}"}
    )
    assert main(["--model", str(folder), "--data", str(data_dir), "--rescale", "0.5"]) == 0
    half = load_concepts(info, load_vocabulary(info)).conditions
    np.testing.assert_allclose(half[train], origin + 0.5 * (full[train] - origin), atol=1e-6)
    np.testing.assert_array_equal(half[train[0]], origin[0])  # at its projection, it stays there
    np.testing.assert_array_equal(
        half[data.heldout_index], full[data.heldout_index]
    )  # never fitted: untouched
    with safe_open(str(folder / "concepts.safetensors"), framework="numpy") as handle:
        meta = handle.metadata()
    assert meta["fit"] == "{}" and '"factor": 0.5' in meta["rescale"]
    with pytest.raises(ModelError, match="must lie in"):
        rescale_model_concepts(folder, data_dir, 1.5)
    with pytest.raises(SystemExit):  # a fit's guard compares with the projections: refused, not ignored
        main(["--model", str(folder), "--data", str(data_dir), "--guard-against", "other.safetensors"])
    with pytest.raises(SystemExit):  # a tear count with no guard to add it to: refused, not ignored
        main(["--model", str(folder), "--data", str(data_dir), "--rescale", "0.5", "--guard-tear", "30"])
    with pytest.raises(SystemExit):  # a ladder with no guard to climb: refused, not ignored
        main(["--model", str(folder), "--data", str(data_dir), "--rescale", "0.5", "--guard-ladder", "0.5"])
    ladder_of_one = ["--rescale", "1", "--guard", "8", "--guard-ladder", "1"]
    with pytest.raises(SystemExit):  # a step of 1 is the row itself, 0 its way back: neither is a step
        main(["--model", str(folder), "--data", str(data_dir), *ladder_of_one])
    pooled = ["--rescale", "1", "--guard", "1000", "--guard-seeds", "1", "--guard-first-seed", "5"]
    assert main(["--model", str(folder), "--data", str(data_dir), *pooled, "--guard-first-seed", "77"]) == 0
    with safe_open(str(folder / "concepts.safetensors"), framework="numpy") as handle:
        assert json.loads(handle.metadata()["rescale"])["guard"]["first_seed"] == [5, 77]  # both sets drawn
    # a guard against another table that tolerates no hole puts every row back to that table's row
    other = tmp_path / "other"
    other.mkdir()
    shifted = full + 1.0
    save_concepts(other, ConceptConditions(shifted, load_concepts(info, load_vocabulary(info)).fitted))
    report = rescale_model_concepts(
        folder, data_dir, 1.0, guard=-1.0, guard_seeds=12, reference=other / "concepts.safetensors"
    )
    assert report["guard"]["reverted"] == len(train) and report["guard"]["seeds"] == 12
    np.testing.assert_array_equal(
        load_concepts(info, load_vocabulary(info)).conditions[train], shifted[train]
    )


class _HoleDrawer(torch.nn.Module):
    """A stand-in base generator: an opaque 32 px square with a k x k transparent hole in the middle, k the first
    condition entry rounded (0-4); the other entries change the colour only."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"z_dim": 4})()

    def synthesize(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        images = torch.ones(len(z), 4, 32, 32) * cond[:, 1:2, None, None].tanh()
        images[:, 3] = 1.0
        for i, k in enumerate(cond[:, 0].round().clamp(0, 4).int().tolist()):
            images[i, 3, 14 : 14 + k, 14 : 14 + k] = -1.0
        return images


def test_the_guard_puts_back_exactly_the_rows_that_draw_more_holes():
    """concept_fit.guard_conditions: a row goes back to its start where its drawings have more than ``margin``
    extra hole pixels (a k x k hole is k^2 of them), and keeps its fit elsewhere."""
    from studio.training.concept_fit import guard_conditions

    holes = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 0.0])
    start = torch.zeros(6, 3)
    stored = torch.stack([holes, torch.linspace(-1, 1, 6), torch.zeros(6)], dim=1)
    guarded, report = guard_conditions(_HoleDrawer(), None, start, stored, margin=5.0, seeds=2)
    back = torch.tensor(
        [False, False, False, True, True, False]
    )  # 9 and 16 extra pixels > 5; 0, 1, 4 are not
    assert torch.equal(guarded[back], start[back]) and torch.equal(guarded[~back], stored[~back])
    assert report["reverted"] == 2 and report["dips_start"] == 0.0 and report["dips_stored"] == 5.0
    assert report["dips_guarded"] == round(5 / 6, 2)  # (0 + 1 + 4 + 0 + 0 + 0) / 6, rounded
    everything, report_all = guard_conditions(_HoleDrawer(), None, start, stored, margin=-1.0, seeds=1)
    assert torch.equal(everything, start) and report_all["reverted"] == 6
    with pytest.raises(ValueError, match="1 to 64 seeds"):
        guard_conditions(_HoleDrawer(), None, start, stored, 0.0, seeds=65)
    # a tear counted seed by seed: rows 2-4 draw more than 3 extra pixels on both seeds (4, 9, 16), which the
    # mean's margin of 100 lets through; asking for 3 of 2 seeds puts nothing back
    torn, report_torn = guard_conditions(_HoleDrawer(), None, start, stored, 100.0, seeds=2, tear=3.0)
    back = torch.tensor([False, False, True, True, True, False])
    assert torch.equal(torn[back], start[back]) and torch.equal(torn[~back], stored[~back])
    assert report_torn["reverted"] == report_torn["reverted_by_tears_only"] == 3
    kept, report_kept = guard_conditions(
        _HoleDrawer(), None, start, stored, 100.0, seeds=2, tear=3.0, tear_seeds=3
    )
    assert torch.equal(kept, stored) and report_kept["reverted"] == 0


def test_the_guards_ladder_keeps_the_largest_step_that_passes():
    """With a ladder, a row that fails is tried part of the way from its start, largest step first, on the same
    seeds and test: row 3 (a 3 x 3 hole) passes at 0.75 (2 x 2 = 4 extra pixels <= 5), row 4 (4 x 4) only at 0.5."""
    from studio.training.concept_fit import guard_conditions

    holes = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 0.0])
    start = torch.zeros(6, 3)
    stored = torch.stack([holes, torch.linspace(-1, 1, 6), torch.zeros(6)], dim=1)
    guarded, report = guard_conditions(_HoleDrawer(), None, start, stored, 5.0, seeds=2, ladder=(0.5, 0.75))
    assert torch.equal(guarded[:3], stored[:3]) and torch.equal(guarded[5], stored[5])
    assert torch.allclose(guarded[3], 0.75 * stored[3]) and torch.allclose(guarded[4], 0.5 * stored[4])
    assert report["reverted"] == 0 and report["ladder"] == {"0.75": 1, "0.5": 1}
    assert report["dips_guarded"] == round(13 / 6, 2)  # (0 + 1 + 4 + 4 + 4 + 0) / 6
    # no step passes a guard that tolerates no hole: the failing rows go all the way back, as without a ladder
    strict, report_strict = guard_conditions(_HoleDrawer(), None, start, stored, -1.0, seeds=1, ladder=(0.5,))
    assert (
        torch.equal(strict, start)
        and report_strict["reverted"] == 6
        and report_strict["ladder"] == {"0.5": 0}
    )
    with pytest.raises(ValueError, match="ladder"):
        guard_conditions(_HoleDrawer(), None, start, stored, 5.0, ladder=(1.0,))


class _SeedHoleDrawer(_HoleDrawer):
    """:class:`_HoleDrawer` whose hole shows only at latents with a positive first entry: a tear that comes and goes
    with the seed."""

    def synthesize(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return super().synthesize(z, cond * (z[:, :1] > 0))


def test_pooled_seed_sets_keep_a_step_only_where_every_set_passes():
    """Two ``first_seed``s: a row whose hole shows on one set's seed and not on the other's is kept by the first
    set alone, put back by the second alone and by the pool; with a ladder the pool keeps the step that passes on
    both. One set given as a tuple is the plain guard."""
    from studio.training.concept_fit import guard_conditions
    from studio.training.evaluate import latents

    positive = [bool(latents([seed], 4, 1.0)[0, 0] > 0) for seed in range(0, 800, 8)]
    quiet, loud = 8 * positive.index(False), 8 * positive.index(True)  # row 0's one seed in each set
    start = torch.zeros(1, 3)
    stored = torch.tensor([[3.0, 0.5, 0.0]])  # a 3 x 3 hole, 9 px > margin 5, where it shows

    def guard(first_seed, ladder=()):
        return guard_conditions(
            _SeedHoleDrawer(), None, start, stored, 5.0, seeds=1, first_seed=first_seed, ladder=ladder
        )

    assert torch.equal(guard(quiet)[0], stored) and torch.equal(guard(loud)[0], start)
    pooled, report = guard((quiet, loud))
    assert torch.equal(pooled, start) and report["reverted"] == 1 and report["first_seed"] == [quiet, loud]
    stepped, report_stepped = guard((quiet, loud), ladder=(0.5,))  # 1.5 rounds to a 2 x 2 hole: 4 px pass
    assert torch.allclose(stepped, 0.5 * stored) and report_stepped["ladder"] == {"0.5": 1}
    single, report_single = guard((loud,))
    assert torch.equal(single, guard(loud)[0]) and report_single == guard(loud)[1]
    with pytest.raises(ValueError, match="seed set"):
        guard(())


class _TearingGenerator(torch.nn.Module):
    """A one-number "generator" whose colour reaches its target only as it punches 16 one-pixel holes in its
    alpha: L1 alone pays for the colour with the holes (as a fit reaching for detail the base cannot draw)."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"z_dim": 2})()
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., 4::8, 4::8] = 1.0
        self.register_buffer("mask", mask)
        self.frozen = torch.nn.Parameter(torch.zeros(1))

    def synthesize(self, z, conditions):
        k = conditions[:, :1, None, None]
        colour = k.expand(len(z), 3, 32, 32)
        alpha = 1.0 - 2.0 * k * self.mask
        return torch.cat([colour, alpha], 1).clamp(-1.0, 1.0)


def test_the_hole_term_trades_the_colour_a_fit_reaches_for_back_for_whole_shapes():
    from studio.training.base_stage import alpha_holes
    from studio.training.concept_fit import fit_conditions

    toy = _TearingGenerator()
    real = torch.ones(2, 4, 32, 32)  # full colour, no hole
    start = torch.zeros(2, 3)
    holes = {}
    for weight in (0.0, 400.0):
        fitted, losses = fit_conditions(toy, real, start, steps=40, lr=0.1, hole_weight=weight)
        assert losses[-1] < losses[0]
        with torch.no_grad():
            holes[weight] = float(alpha_holes(toy.synthesize(torch.zeros(2, 2), fitted)).mean())
    assert holes[0.0] > 0.006  # L1 alone: every hole open (16 px x 0.5 / 1,024)
    assert holes[400.0] < 0.25 * holes[0.0], holes
    assert not toy.frozen.requires_grad  # the generator stays frozen


def test_a_negative_hole_weight_is_refused_in_one_sentence(tmp_path):
    from studio.training.concept_fit import fit_model_concepts

    data_dir, _, folder = _fit_folder(tmp_path)
    with pytest.raises(ModelError, match=r"must be 0 or more \(got -1.0\)"):
        fit_model_concepts(folder, data_dir, steps=1, quiet=True, hole_weight=-1.0)


class _NearestUpsampler(torch.nn.Module):
    """A stand-in 4x upsampler: nearest neighbour times ``gain`` (a gain above 1 drives a hole's alpha below
    -1, as a learned upsampler's overshoot does), clamped to [-1, 1] unless asked not to, as the model's."""

    def __init__(self, gain: float = 1.0):
        super().__init__()
        self.gain = gain
        self.frozen = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        out = torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest") * self.gain
        return out.clamp(-1.0, 1.0) if clamp else out


def test_the_128px_tear_share_passes_a_gradient_into_holes_the_upscale_clamps():
    """concept_fit.tears_128 is alpha_holes of the clamped 4x upscale with the tear count's 7 px closing, but
    its clamp is straight-through: a hole whose upscaled alpha overshoots below -1 still gets a gradient that
    fills it (a plain clamp passes none there), and nothing outside the hole moves."""
    from studio.training.base_stage import alpha_holes
    from studio.training.concept_fit import GUARD_CLOSING, tears_128

    image = torch.ones(1, 4, 32, 32)
    image[0, 3, 10, 10] = -0.5  # one 32 px pixel: a 4 x 4 hole at 128 px, narrower than the 7 px closing
    up = _NearestUpsampler(gain=3.0)
    image.requires_grad_(True)
    share = tears_128(up, image)
    expected = alpha_holes(up(image.detach()), GUARD_CLOSING)
    assert torch.allclose(share, expected) and float(share.detach()) == pytest.approx(16 * 0.5 / 128**2)
    share.sum().backward()
    assert image.grad[0, 3, 10, 10] < 0  # raising the hole's alpha lowers the share
    assert int((image.grad != 0).sum()) == 1
    plain = image.detach().clone().requires_grad_(True)
    alpha_holes(up(plain), GUARD_CLOSING).sum().backward()
    assert not plain.grad.any()  # what the straight-through clamp is for


def test_tear_limits_are_each_rows_largest_share_on_its_own_seeds():
    """A row's limit is the most it tears on any of its seeds: with a hole that shows at some z only, the full
    hole's share (4 x 4 px at 128 px, each 1 - 0.5 deep), not a mean over the seeds."""
    from studio.training.concept_fit import TEAR_SEED, tear_limits
    from studio.training.evaluate import latents

    rows = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [1.0, -0.5, 0.0]])  # no hole, a 1 x 1, a 1 x 1
    hole = 16 * 0.5 / 128**2
    limits = tear_limits(_HoleDrawer(), _NearestUpsampler(), rows, seeds=3)
    assert limits.shape == (3,) and float(limits[0]) == 0.0
    assert torch.allclose(limits[1:], torch.full((2,), hole))
    shows = latents(range(TEAR_SEED, TEAR_SEED + 24), 4, 1.0)[:, 0].reshape(3, 8) > 0
    assert shows.any(1).all() and not shows.all(1).any()  # every row's hole shows on some seeds, not all
    sometimes = tear_limits(_SeedHoleDrawer(), _NearestUpsampler(), rows, seeds=8)
    assert float(sometimes[0]) == 0.0 and torch.allclose(sometimes[1:], torch.full((2,), hole))


def test_the_tear_term_keeps_a_fit_from_punching_holes_the_upsampler_shows():
    """_TearingGenerator reaches its colour only by opening 16 one-pixel holes; upscaled they are 4 x 4 tears.
    Held to a limit of none, the fit keeps the picture whole and gives up part of the colour."""
    from studio.training.concept_fit import fit_conditions, tears_128

    toy, up = _TearingGenerator(), _NearestUpsampler()
    real = torch.ones(2, 4, 32, 32)
    start = torch.zeros(2, 3)
    tears, final = {}, {}
    for weight in (0.0, 400.0):
        fitted, losses = fit_conditions(
            toy, real, start, steps=40, lr=0.1, upsampler=up, tear_weight=weight, tear_limit=torch.zeros(2)
        )
        with torch.no_grad():
            tears[weight] = float(tears_128(up, toy.synthesize(torch.zeros(2, 2), fitted)).mean())
        final[weight] = losses[-1]
    assert tears[0.0] > 0.006 and tears[400.0] < 0.25 * tears[0.0], tears
    assert final[400.0] > final[0.0]  # the colour it gave up
    assert not up.frozen.requires_grad
    with pytest.raises(ValueError, match="tear limit"):
        fit_conditions(toy, real, start, steps=1, tear_weight=1.0, tear_limit=torch.zeros(2))


class _TexturedGenerator(torch.nn.Module):
    """A one-number "generator": a solid square whose colour is a 2 px checkerboard of amplitude ``k`` (its
    interior detail), which an L1 fit towards a flat real picture smooths away."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"z_dim": 2})()
        y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
        self.register_buffer("checker", (((y // 2 + x // 2) % 2) * 2.0 - 1.0)[None, None])
        self.frozen = torch.nn.Parameter(torch.zeros(1))

    def synthesize(self, z, conditions):
        k = conditions[:, :1, None, None]
        colour = (k * self.checker).expand(len(z), 3, 32, 32)
        return torch.cat([colour, torch.ones(len(z), 1, 32, 32)], 1)


def test_the_detail_term_keeps_a_fit_from_smoothing_away_the_start_rows_detail():
    """L1 towards a flat picture wipes _TexturedGenerator's checkerboard; held to the start row's interior detail at
    128 px (the screen's measure, each row's first z), the fit keeps most of it. A start with no detail holds
    nothing: the fit then ends where L1 alone takes it, and the term needs the upsampler."""
    from studio.training.concept_fit import detail_128, fit_conditions, upscale_128
    from studio.training.evaluate import picture_detail

    toy, up = _TexturedGenerator(), _NearestUpsampler()
    real = torch.cat([torch.zeros(2, 3, 32, 32), torch.ones(2, 1, 32, 32)], 1)
    start = torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    drawn = upscale_128(up, toy.synthesize(torch.zeros(2, 2), start))
    detail, interior, _ = picture_detail(drawn)
    assert torch.allclose(detail_128(drawn), detail / interior) and float(detail_128(drawn)[0]) > 0
    kept = {}
    for weight in (0.0, 10.0):
        fitted, _ = fit_conditions(toy, real, start, steps=40, lr=0.05, upsampler=up, detail_weight=weight)
        kept[weight] = float(fitted[:, 0].abs().min())
    assert kept[0.0] < 0.1 * 0.5 and kept[10.0] > 0.8 * 0.5, kept
    assert not up.frozen.requires_grad and not toy.frozen.requires_grad
    flat = torch.zeros(2, 3)
    nothing, _ = fit_conditions(toy, real, flat, steps=5, lr=0.05, upsampler=up, detail_weight=10.0)
    assert torch.equal(nothing, fit_conditions(toy, real, flat, steps=5, lr=0.05)[0])
    with pytest.raises(ValueError, match="detail term"):
        fit_conditions(toy, real, start, steps=1, detail_weight=1.0)


def _fit_record(folder) -> dict:
    """The fit's report in the folder's concepts.safetensors metadata."""
    from safetensors import safe_open

    with safe_open(str(folder / CONCEPTS_FILE), framework="numpy") as handle:
        return json.loads(handle.metadata()["fit"])


def test_the_cli_tear_term_holds_each_row_to_what_the_replaced_table_draws(tmp_path, monkeypatch):
    """``concept_fit --tear-weight``: the limits come from the folder's current table (the projection's where it
    has none), the fit gets them with the upsampler, and the report records both; a negative weight is one
    sentence."""
    from studio.training import concept_fit

    data_dir, data, folder = _fit_folder(tmp_path)
    seen = []

    def spy(generator, upsampler, reference, *args, **kwargs):
        seen.append((upsampler, reference.clone()))
        return torch.zeros(len(reference))

    monkeypatch.setattr(concept_fit, "tear_limits", spy)
    argv = ["--model", str(folder), "--data", str(data_dir), "--steps", "1", "--tear-weight", "2.5"]
    assert concept_fit.main(argv) == 0
    info = read_model_info(folder)
    with torch.no_grad():
        origin = load_model(folder).generator.condition(
            torch.from_numpy(data.name_embeddings()[data.train_index])
        )
    assert seen[0][0] is not None and torch.allclose(seen[0][1], origin)
    first = load_concepts(info, load_vocabulary(info))
    report = _fit_record(folder)
    assert report["tear_weight"] == 2.5 and report["tear_reference"] == "projection"
    assert concept_fit.main(argv) == 0  # now against the table the first fit wrote
    assert torch.equal(seen[1][1], torch.from_numpy(first.conditions[data.train_index]))
    assert _fit_record(folder)["tear_reference"] == "table"
    with pytest.raises(
        SystemExit
    ):  # a term of the fit with a rescale, which fits nothing: refused, not ignored
        concept_fit.main([*argv, "--rescale", "0.5"])
    with pytest.raises(ModelError, match=r"tear term's weight must be 0 or more \(got -1.0\)"):
        concept_fit.fit_model_concepts(folder, data_dir, steps=1, quiet=True, tear_weight=-1.0)


def test_a_fit_stopped_part_way_resumes_from_its_checkpoint_and_ends_as_if_never_stopped(tmp_path):
    """``fit_conditions(checkpoint=...)``: killed at step 7 of 12, the state saved at step 5 takes the fit on to
    the very conditions and losses of an uninterrupted fit (the same z and Adam moments). A checkpoint of another
    fit, or a damaged file, is refused in one sentence rather than mixed in."""
    from studio.training.concept_fit import fit_conditions

    toy, up = _TearingGenerator(), _NearestUpsampler()
    real, start = torch.ones(3, 4, 32, 32), torch.zeros(3, 3)
    recipe = dict(steps=12, lr=0.1, upsampler=up, tear_weight=5.0, tear_limit=torch.zeros(3), seed=7)
    whole, whole_losses = fit_conditions(toy, real, start, **recipe)

    class Killed(Exception):
        pass

    def kill(step, loss):
        if step == 7:
            raise Killed

    saved = tmp_path / "fit" / "state.pt"
    with pytest.raises(Killed):
        fit_conditions(toy, real, start, checkpoint=saved, checkpoint_every=5, on_step=kill, **recipe)
    assert [path.name for path in saved.parent.iterdir()] == [
        "state.pt"
    ]  # no half-written file left beside it
    steps_run = []
    again = dict(checkpoint=saved, checkpoint_every=5, on_step=lambda s, _: steps_run.append(s))
    resumed, losses = fit_conditions(toy, real, start, **again, **recipe)
    assert steps_run == list(range(5, 12))  # steps 0-4 came from the file
    assert torch.equal(resumed, whole) and losses == pytest.approx(whole_losses, abs=0, rel=1e-12)
    assert not torch.equal(whole, start)
    with pytest.raises(ValueError, match="belongs to another fit"):
        fit_conditions(toy, real, start, checkpoint=saved, **{**recipe, "seed": 8})
    with pytest.raises(ValueError, match="belongs to another fit"):
        fit_conditions(toy, real, start + 0.5, checkpoint=saved, **recipe)
    saved.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read.*delete it to start over"):
        fit_conditions(toy, real, start, checkpoint=saved, **recipe)


def test_a_part_of_a_table_is_guarded_on_the_seeds_the_whole_tables_guard_gives_it():
    """``guard_conditions(row_numbers=...)``: rows 3, 5, 8 and 10 of a table, guarded alone with their numbers,
    come out as the whole table's guard leaves them (their seeds are 900M + 8 x number + k); numbered by their
    place in the part instead, they would draw other seeds and other verdicts."""
    from studio.training.concept_fit import GUARD_SEED, guard_conditions
    from studio.training.evaluate import latents

    stored = torch.tensor([[3.0, 0.5, 0.0]]).repeat(12, 1)  # a 3 x 3 hole where the seed's first entry is > 0
    start = torch.zeros(12, 3)
    part = torch.tensor([3, 5, 8, 10])
    shows = latents([GUARD_SEED + 8 * r for r in range(12)], 4, 1.0)[:, 0] > 0
    assert not torch.equal(shows[part], shows[: len(part)])  # the part's own places would draw other verdicts
    whole, _ = guard_conditions(_SeedHoleDrawer(), None, start, stored, 5.0, seeds=1)
    assert torch.equal(whole[:, 0] == 0, shows)  # back where the hole shows, kept elsewhere
    alone, report = guard_conditions(
        _SeedHoleDrawer(), None, start[part], stored[part], 5.0, seeds=1, row_numbers=part
    )
    assert torch.equal(alone, whole[part]) and report["reverted"] == int(shows[part].sum())
    by_place, _ = guard_conditions(_SeedHoleDrawer(), None, start[part], stored[part], 5.0, seeds=1)
    assert not torch.equal(by_place, whole[part])
    with pytest.raises(ValueError, match="one row number per condition"):
        guard_conditions(
            _SeedHoleDrawer(), None, start[part], stored[part], 5.0, seeds=1, row_numbers=part[:2]
        )


def test_a_gate_per_row_reaches_further_only_for_its_own_rows(concept_model_dir, tmp_path):
    """A table may store its gate per concept: a prompt halfway up the table's gate takes all of a row whose own gate
    was lowered and none of a row that keeps a higher one; the file round-trips, and every other row draws as before."""
    # "dog face" reaches far, "cat face" hardly at all
    folder, vocabulary, table, (low, high), loaded = _row_gated(
        concept_model_dir, tmp_path, {1: (0.5, 0.6), 0: (0.97, 0.99)}
    )
    assert np.array_equal(loaded.row_low, low) and np.array_equal(loaded.row_high, high)
    cosine = (table.low + table.high) / 2
    assert float(loaded.gate(cosine, 1)) == 1.0 and float(loaded.gate(cosine, 0)) == 0.0
    assert float(loaded.gate(cosine, 2)) == pytest.approx(float(table.gate(cosine)))
    assert float(loaded.gate(cosine)) == pytest.approx(float(table.gate(cosine)))  # no row: the table's gate
    conditioner = ConceptConditioner(load_model(folder).generator, vocabulary, loaded)
    near = torch.from_numpy(_toward("dog face", "unrelated words", cosine)[None])
    with torch.no_grad():
        torch.testing.assert_close(conditioner(near), torch.from_numpy(loaded.conditions[1:2]))
        exact = torch.from_numpy(_embed("rocket")[None])
        torch.testing.assert_close(conditioner(exact), torch.from_numpy(loaded.conditions[2:3]))


def test_a_rows_own_gate_never_reaches_a_prompt_nearer_a_concept_without_a_row(concept_model_dir, tmp_path):
    """ "dog face" reaches far (its own gate 0.5 -> 0.6), but a prompt at cosine 0.65 to it that lies nearer "pizza"
    (a concept the table has no row for) takes the table's gate, which gives it none of the dog's row; the same
    cosine with no nearer name takes all of it."""
    folder, vocabulary, _, _, loaded = _row_gated(concept_model_dir, tmp_path, {1: (0.5, 0.6)})
    conditioner = ConceptConditioner(load_model(folder).generator, vocabulary, loaded)
    nearer_pizza = _toward("dog face", "pizza", 0.65)
    scores = vocabulary.name_scores(nearer_pizza)
    assert scores[3] > scores[1] + 0.05 and abs(scores[1] - 0.65) < 2e-3, scores
    assert conditioner.nearest(nearer_pizza)[0] == 1  # the nearest fitted concept is still the dog
    assert conditioner.gate(nearer_pizza) == (1, 0.0)
    alone = _toward("dog face", "unrelated words", 0.65)
    assert int(np.argmax(vocabulary.name_scores(alone))) == 1
    assert conditioner.gate(alone) == (1, 1.0)
    rows = torch.from_numpy(np.stack([nearer_pizza, alone]))
    with torch.no_grad():
        got = conditioner(rows)
        projected = conditioner.generator.condition(rows[:1])
    torch.testing.assert_close(got[:1], projected, rtol=0, atol=0)
    torch.testing.assert_close(got[1:], torch.from_numpy(loaded.conditions[1:2]), rtol=0, atol=0)


def test_a_table_with_no_fitted_row_matches_nothing(concept_model_dir):
    """No row to borrow: every prompt, a name included, draws what the projection gives."""
    info = read_model_info(concept_model_dir)
    vocabulary = load_vocabulary(info)
    table = load_concepts(info, vocabulary)
    bare = ConceptConditioner(
        load_model(concept_model_dir).generator, vocabulary, replace(table, fitted=np.zeros(len(NAMES), bool))
    )
    assert bare.gate(_embed("dog face")) == (-1, 0.0)
    rows = torch.from_numpy(HashTextEncoder().encode(["dog face", "cat face"]))
    with torch.no_grad():
        plain = torch.cat([bare.generator.condition(rows[i : i + 1]) for i in range(len(rows))])
        torch.testing.assert_close(bare(rows), plain, rtol=0, atol=0)


def _with_rows(concept_model_dir, tmp_path, name: str, full: np.ndarray | None, margin: float = 0.0):
    """A copy of the concept model whose table has second rows ``full`` (None: none) with ``margin``."""
    folder = tmp_path / name / concept_model_dir.name
    shutil.copytree(concept_model_dir, folder)
    info = read_model_info(folder)
    table = load_concepts(info, load_vocabulary(info))
    save_concepts(folder, replace(table, full=full, full_margin=margin))
    return folder


def _second_rows(concept_model_dir) -> np.ndarray:
    info = read_model_info(concept_model_dir)
    return np.random.default_rng(1).standard_normal((len(NAMES), info.base.cond_dim)).astype(np.float32)


def test_the_engine_draws_a_tables_second_rows_unless_they_tear_beyond_the_first(
    concept_model_dir, tmp_path, monkeypatch
):
    """With second rows every named image is the second rows' picture, its narrow dips filled from the first rows'
    picture, wherever it does not tear wider than the first rows' (a margin no picture reaches: all of them), the
    first rows' where it does (the check forced to say so); prompts that take no fitted row draw as before, and the
    hash covers the second rows."""
    import studio.engine.renderer as renderer
    import studio.models.holes as holes

    full = _second_rows(concept_model_dir)
    folder = _with_rows(concept_model_dir, tmp_path, "checked", full, margin=1e9)
    # the same table with the second rows as its first: what a name draws when the second rows are kept
    as_first = tmp_path / "as_first" / concept_model_dir.name
    shutil.copytree(concept_model_dir, as_first)
    info = read_model_info(as_first)
    save_concepts(as_first, replace(load_concepts(info, load_vocabulary(info)), conditions=full))
    named = [GenerationRequest(p, seed=s, model=TINY_NAME) for p in ("cat face", "Katze") for s in (0, 5)]
    other = [GenerationRequest(p, seed=2, model=TINY_NAME) for p in ("pizza", "a sentence about nothing")]

    def images(model_dir) -> list[np.ndarray]:
        with open_engine(model_dir) as engine:
            return [_image(engine, r) for r in named + other]

    checked, first, second = images(folder), images(concept_model_dir), images(as_first)
    for got, want in zip(checked[len(named) :], first[len(named) :]):
        assert np.array_equal(got, want)
    assert not any(np.array_equal(a, b) for a, b in zip(first[: len(named)], second[: len(named)]))
    # the second rows' pictures with their dips filled from the first rows' (from the stored uint8 pictures: within
    # a level or two of the engine's own float fill)
    for got, one, two in zip(checked, first[: len(named)], second):
        want = holes.fill_dips(_premultiplied(two), _premultiplied(one))
        assert float((_premultiplied(got) - want).abs().max()) <= 3 / 127.5
    hashes = {load_model(f).hash for f in (folder, concept_model_dir, as_first)}
    assert len(hashes) == 3
    monkeypatch.setattr(holes, "fill_dips", lambda picture, under, size=7: picture.float())
    unfilled = images(folder)
    for got, want in zip(unfilled[: len(named)], second[: len(named)]):
        assert np.array_equal(got, want)  # with nothing filled: exactly the second rows' pictures
    assert any(not np.array_equal(a, b) for a, b in zip(checked[: len(named)], unfilled))  # a fill showed

    def torn(second, first, margin, net_margin):  # the check says every second picture tears: the first's
        return first, torch.zeros(len(first), dtype=torch.bool)

    monkeypatch.setattr(renderer, "second_or_first", torn)
    for got, want in zip(images(folder), first):
        assert np.array_equal(got, want)


def test_second_rows_share_the_padded_forwards_and_every_image_is_the_one_it_is_alone(
    concept_model_dir, tmp_path, monkeypatch
):
    """The second rows ride in the padded shape's free rows: an image alone draws its first and second rows in one
    16-row forward (until session 51, two), 12 named images and their 12 second rows fill two, and each image is
    byte for byte the one its request draws alone."""
    import studio.engine.renderer as renderer

    folder = _with_rows(concept_model_dir, tmp_path, "packed", _second_rows(concept_model_dir), margin=1e9)
    calls = []
    synthesize = renderer.Renderer._synthesize

    def counted(self, z, cond, dtype):
        calls.append(len(z))
        return synthesize(self, z, cond, dtype)

    monkeypatch.setattr(renderer.Renderer, "_synthesize", counted)
    with open_engine(folder) as engine:
        calls.clear()
        batch = list(engine.generate_sync(GenerationRequest("cat face", seed=20, count=12, model=TINY_NAME)))
        assert calls == [16, 16]
        calls.clear()
        alone = [
            _image(engine, GenerationRequest("cat face", seed=20 + i, model=TINY_NAME)) for i in range(12)
        ]
        assert calls == [16] * 12
    assert all(r.ok for r in batch)
    for got, want in zip((r.image for r in batch), alone):
        assert np.array_equal(got, want)


def _premultiplied(image: np.ndarray) -> torch.Tensor:
    """An engine's uint8 RGBA picture as 1 x 4 x H x W premultiplied RGBA in [-1, 1]."""
    return rgba_uint8_to_premultiplied(torch.from_numpy(image)[None])


def test_a_preview_and_the_evaluation_draw_the_second_rows_as_the_engine_stores_them(
    concept_model_dir, tmp_path
):
    from studio.models.holes import second_or_first
    from studio.training.evaluate import ConceptGenerator, drawn_generator, generate

    full = _second_rows(concept_model_dir)
    folder = _with_rows(concept_model_dir, tmp_path, "checked", full, margin=1e9)
    request = GenerationRequest("cat face", seed=4, model=TINY_NAME)
    with open_engine(folder) as engine:
        stored = _image(engine, request)
        preview = engine.preview(request).result(timeout=60).image
    assert int(np.abs(stored.astype(int) - preview.astype(int)).max()) <= 2
    model = load_model(folder)
    drawn = drawn_generator(model)
    assert isinstance(drawn, ConceptGenerator) and drawn.full is not None
    embedding = torch.from_numpy(HashTextEncoder().encode(["cat face"] * 2))
    with torch.no_grad():
        got = generate(drawn, model.upsampler, embedding, [4, 9], 1.0)
        first = ConceptGenerator(model.generator, drawn.conditioner)  # no upsampler: the first rows only
        assert first.full is None
        want = generate(
            ConceptGenerator(model.generator, drawn.full), model.upsampler, embedding, [4, 9], 1.0
        )
        plain = generate(first, model.upsampler, embedding, [4, 9], 1.0)
        shown, took = second_or_first(want, plain, 1e9)
    assert took.all()
    torch.testing.assert_close(got, shown, rtol=0, atol=1e-6)
    assert float((got - plain).abs().max()) > 0.05
    # the evaluation's 32 px drawing is the second rows' (what seed diversity and keyword RMS measure)
    small = generate(drawn, None, embedding, [4, 9], 1.0, upsample=False)
    want_small = generate(
        ConceptGenerator(model.generator, drawn.full), None, embedding, [4, 9], 1.0, upsample=False
    )
    torch.testing.assert_close(small, want_small, rtol=0, atol=0)


def test_add_full_rows_gives_a_table_another_tables_rows_and_keeps_its_record(concept_model_dir, tmp_path):
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import main

    folder = _with_rows(concept_model_dir, tmp_path, "target", None)
    info = read_model_info(folder)
    table = load_concepts(info, load_vocabulary(info))
    save_concepts(folder, table, {"fit": json.dumps({"share": 0.75})})
    source = tmp_path / "source" / CONCEPTS_FILE
    source.parent.mkdir()
    rows = _second_rows(concept_model_dir)
    save_concepts(source.parent, replace(table, conditions=rows), {"fit": json.dumps({"share": 1.0})})
    assert (
        main(
            [
                "--model",
                str(folder),
                "--add-full",
                str(source),
                "--full-margin",
                "30",
                "--full-net-margin",
                "90",
            ]
        )
        == 0
    )
    added = load_concepts(info, load_vocabulary(info))
    np.testing.assert_array_equal(added.conditions, table.conditions)
    np.testing.assert_array_equal(added.full[FITTED], rows[FITTED])
    np.testing.assert_array_equal(added.full[~FITTED], table.conditions[~FITTED])  # no second row: the first
    assert added.full_margin == 30.0 and added.full_net_margin == 90.0
    record = concepts_metadata(folder / CONCEPTS_FILE)
    assert json.loads(record["fit"]) == {"share": 0.75}
    assert json.loads(record["full"])["source_fit"] == {"share": 1.0}
    other = replace(table, fitted=~FITTED)
    save_concepts(source.parent, other)
    with pytest.raises(ModelError, match="same concepts"):
        main(["--model", str(folder), "--add-full", str(source)])


def _screen_pictures(folder, first: np.ndarray, second: np.ndarray, row: int, seeds: int):
    """One row at a time, as a person would check it: at each of its screen seeds, the second row's shown picture
    (at no margin: every second's picture shown), whether it was shown, and the first row's picture."""
    from studio.engine.latents import seeded_z
    from studio.models.holes import second_or_first
    from studio.training.concept_fit import SCREEN_SEED

    model = load_model(folder)
    with torch.no_grad():
        for k in range(seeds):
            z = seeded_z(SCREEN_SEED + seeds * row + k, model.generator.config.z_dim)[None]
            one, two = (
                model.upsampler(model.generator.synthesize(z, torch.from_numpy(table[row : row + 1])))
                for table in (first, second)
            )
            shown, took = second_or_first(two, one, 1e9)
            yield shown, bool(took[0]), one


def _screen_dips(
    folder, first: np.ndarray, second: np.ndarray, row: int, seeds: int
) -> list[tuple[float, float]]:
    """At each of a row's screen seeds, the new wide dips its second row's shown picture opens and its wide dips
    beyond the first row's in all (inf where the first row's picture is shown)."""
    from studio.models.holes import WIDE_CLOSING, deep_dips, new_wide_dips

    found = []
    for shown, took, one in _screen_pictures(folder, first, second, row, seeds):
        net = float(deep_dips(shown, WIDE_CLOSING)[0] - deep_dips(one, WIDE_CLOSING)[0])
        found.append((float(new_wide_dips(shown, one)[0]), net) if took else (np.inf, np.inf))
    return found


def test_a_screen_keeps_only_the_second_rows_that_open_few_new_dips_at_each_of_their_seeds(
    concept_model_dir, tmp_path, monkeypatch
):
    """``--screen-seeds K --screen-margin PX``: a fitted row keeps its second row only if, at each of K seeds of its
    own, its picture is shown and opens at most PX wide-dip pixels where the first's is solid; the others draw as
    the first, and the record says how many rows were screened and kept. (The tiny model draws no wide dips, so
    the count is replaced by one that differs from picture to picture: its mean alpha, scaled.)"""
    import studio.models.holes as holes
    from studio.models.concepts import concepts_metadata
    from studio.training.concept_fit import main, screen_full_rows

    monkeypatch.setattr(holes, "new_wide_dips", lambda picture, other: (picture[:, 3].mean((1, 2)) + 1) * 500)
    monkeypatch.setattr(holes, "deep_dips", lambda images, size: (images[:, 0].mean((1, 2)) + 1) * 500)

    folder = _with_rows(concept_model_dir, tmp_path, "screened", None)
    info = read_model_info(folder)
    table = load_concepts(info, load_vocabulary(info))
    rows = (table.conditions + 3.0 * _second_rows(concept_model_dir)).astype(np.float32)
    rows[~FITTED] = table.conditions[~FITTED]
    fitted = np.flatnonzero(FITTED)
    found = {int(row): _screen_dips(folder, table.conditions, rows, int(row), 3) for row in fitted}
    worst = {row: max(new for new, _ in seeds) for row, seeds in found.items()}
    low, high = sorted(worst.values())[:2]
    assert high - low > 1, worst  # rows that differ, so the screen has something to choose
    limit = (low + high) / 2  # one row of three passes
    want = np.array([worst.get(row, 0.0) <= limit for row in range(len(NAMES))])
    assert want[fitted].any() and not want[fitted].all()
    passed = screen_full_rows(folder, table.conditions, rows, 1e9, float("inf"), 3, limit, batch=2)
    np.testing.assert_array_equal(passed, want)  # batches of 2 pairs mix rows and seeds: the same answer
    hidden = screen_full_rows(folder, table.conditions, rows, 0.0, float("inf"), 3, 1e9)
    # a second row whose picture is not shown fails (equal rows pass)
    np.testing.assert_array_equal(hidden, ~FITTED)
    worst_net = {row: max(net for _, net in seeds) for row, seeds in found.items()}
    low, high = sorted(worst_net.values())[-2:]
    assert high - low > 1, worst_net
    net_limit = (low + high) / 2  # two rows of three pass
    net_want = np.array([worst_net.get(row, -np.inf) <= net_limit for row in range(len(NAMES))])
    netted = screen_full_rows(folder, table.conditions, rows, 1e9, float("inf"), 3, 1e9, net_limit, batch=5)
    np.testing.assert_array_equal(netted, net_want)
    source = tmp_path / "screen-source"
    source.mkdir()
    save_concepts(source, replace(table, conditions=rows))
    argv = ["--model", str(folder), "--add-full", str(source / CONCEPTS_FILE), "--full-margin", "1e9"]
    assert main([*argv, "--screen-seeds", "3", "--screen-margin", str(limit)]) == 0
    added = load_concepts(info, load_vocabulary(info))
    kept = want & FITTED
    np.testing.assert_array_equal(added.full[kept], rows[kept])
    np.testing.assert_array_equal(added.full[~kept], table.conditions[~kept])  # screened out: the first row
    record = json.loads(concepts_metadata(folder / CONCEPTS_FILE)["full"])
    assert (record["rows"], record["screened"], record["screen_seeds"]) == (int(kept.sum()), len(fitted), 3)
    with pytest.raises(ModelError, match="screen"):
        main([*argv, "--screen-seeds", "2", "--screen-margin", "-1"])


def _stand_in_detail(pictures: torch.Tensor) -> np.ndarray:
    """Detail per px for the tiny model, whose drawings have no solid interior: one number that differs from picture
    to picture (its mean red, shifted positive)."""
    return (pictures[:, 0].float().mean((1, 2)) + 1.0).numpy()


def _screen_detail_ratios(folder, first: np.ndarray, second: np.ndarray, row: int, seeds: int) -> list[tuple]:
    """At each of a row's screen seeds, the stand-in detail of its second row's shown picture and of its first
    row's picture."""
    return [
        (float(_stand_in_detail(shown)[0]), float(_stand_in_detail(one)[0]))
        for shown, _, one in _screen_pictures(folder, first, second, row, seeds)
    ]


def test_a_screen_with_a_detail_floor_keeps_the_second_rows_that_keep_their_detail(
    concept_model_dir, tmp_path, monkeypatch
):
    """``--screen-detail F``: a second row passes only where, at each of its seeds, its shown picture keeps at least
    F of the detail per px of the first row's picture or of the real emoji, whichever is less (a drawing may clean
    the first's scribbles up to the real emoji's detail, not blur below it). The tiny model's drawings have no solid
    interior, so the detail is a stand-in that differs from picture to picture."""
    import studio.training.concept_fit as concept_fit

    monkeypatch.setattr(concept_fit, "detail_per_px", _stand_in_detail)
    folder = _with_rows(concept_model_dir, tmp_path, "detail", None)
    info = read_model_info(folder)
    table = load_concepts(info, load_vocabulary(info))
    rows = (table.conditions + 3.0 * _second_rows(concept_model_dir)).astype(np.float32)
    rows[~FITTED] = table.conditions[~FITTED]
    fitted = np.flatnonzero(FITTED)
    found = {int(row): _screen_detail_ratios(folder, table.conditions, rows, int(row), 3) for row in fitted}
    worst = {row: min(shown / first for shown, first in seeds) for row, seeds in found.items()}
    low, high = sorted(worst.values())[:2]
    assert high - low > 1e-3, worst  # rows whose detail differs, so the floor has something to choose
    floor = (
        low + high
    ) / 2  # against the first's detail (the real emoji's far higher): one row of three fails

    def screen(real_detail):
        return concept_fit.screen_full_rows(
            folder,
            table.conditions,
            rows,
            1e9,
            float("inf"),
            3,
            1e9,
            screen_detail=floor,
            real_detail=real_detail,
        )

    want = np.array([worst.get(row, np.inf) >= floor for row in range(len(NAMES))])
    assert want[fitted].any() and not want[fitted].all()
    np.testing.assert_array_equal(screen(np.full(len(NAMES), 1e9)), want)
    # where the real emoji has less detail than the first row's picture the floor is the real emoji's: a plain one
    # lets every second row through
    np.testing.assert_array_equal(screen(np.zeros(len(NAMES))), np.ones(len(NAMES), bool))
    with pytest.raises(ValueError, match="real emoji"):
        screen(None)


def test_detail_per_px_is_the_interior_detail_over_the_interior():
    """A solid checkerboard has detail everywhere inside, its blur less, and a transparent picture none (no interior,
    no division by zero)."""
    import torch.nn.functional as F

    from studio.training.concept_fit import detail_per_px

    checker = ((torch.arange(64)[:, None] // 2 + torch.arange(64)[None] // 2) % 2).float() * 2 - 1
    picture = torch.ones(1, 4, 64, 64)
    picture[0, :3] = checker
    blurred = picture.clone()
    blurred[:, :3] = F.avg_pool2d(F.pad(picture[:, :3], (2, 2, 2, 2), mode="replicate"), 5, 1)
    empty = -torch.ones(1, 4, 64, 64)
    sharp, soft, none = (float(detail_per_px(p)[0]) for p in (picture, blurred, empty))
    assert sharp > 4 * soft > 0 and none == 0.0


def test_a_prompt_that_borrows_a_neighbours_row_takes_its_first_row_even_with_second_rows(concept_model_dir):
    """Second rows are each emoji's own picture: a prompt whose nearest name of all has no row (a held-out emoji's
    name) and that borrows a fitted neighbour's row at the table's gate takes that neighbour's first row."""
    info = read_model_info(concept_model_dir)
    vocabulary = load_vocabulary(info)
    table = replace(load_concepts(info, vocabulary), low=0.5, high=0.6, full=_second_rows(concept_model_dir))
    conditioner = ConceptConditioner(load_model(concept_model_dir).generator, vocabulary, table)
    full = conditioner.full_rows()
    near_pizza = _toward(
        "pizza", "rocket", 0.75
    )  # nearest of all: pizza (no row); rocket's row within the gate
    assert conditioner.nearest(near_pizza)[0] == NAMES.index("rocket")
    assert conditioner.gate(near_pizza) == (NAMES.index("rocket"), 1.0)
    own = torch.from_numpy(np.stack([_embed("rocket"), near_pizza]))
    with torch.no_grad():
        first, second = conditioner(own), full(own)
    torch.testing.assert_close(second[1], first[1], rtol=0, atol=0)  # borrowed: the first row
    rocket = torch.from_numpy(table.full[NAMES.index("rocket")])
    torch.testing.assert_close(second[0], rocket, rtol=0, atol=1e-6)  # its own: the second row
    assert float((second[0] - first[0]).abs().max()) > 0.1


def test_tears_where_solid_count_only_the_dips_inside_the_real_emojis_solid_part():
    """``tears_128(..., solid=mask)`` is the per-pixel dip map of the unmasked count times the mask, a mean per
    picture: a hole where the real emoji is solid counts in full, the same hole outside it (a notch the real
    emoji's outline has too) not at all, and the gradient reaches only the counted hole. ``tear_limits`` with
    masks holds each row to its largest masked count; ``solid_masks`` marks alpha above one half."""
    from studio.training.concept_fit import solid_masks, tear_limits, tears_128

    image = torch.ones(2, 4, 32, 32)
    image[:, 3, 10, 10] = -0.5  # a 4 x 4 hole at 128 px in both pictures
    up = _NearestUpsampler()
    real = torch.full((2, 128, 128, 4), 255, dtype=torch.uint8)
    real[1, 36:48, 36:48, 3] = 0  # the second real emoji is clear around the hole (rows/cols 40-43 at 128 px)
    real[1, 0:4, 0:4, 3] = 128  # above one half: still solid
    solid = solid_masks(real)
    assert (
        solid.shape == (2, 1, 128, 128)
        and float(solid[1, 0, 0, 0]) == 1.0
        and float(solid[1, 0, 40, 40]) == 0
    )
    image.requires_grad_(True)
    masked = tears_128(up, image, solid=solid)
    plain = tears_128(up, image.detach())
    assert float(masked[0].detach()) == pytest.approx(float(plain[0])) and float(plain[1]) > 0
    assert float(masked[1].detach()) == 0.0
    masked.sum().backward()
    assert image.grad[0, 3, 10, 10] < 0 and not image.grad[1].any()
    rows = torch.tensor([[1.0, 0.5, 0.0], [1.0, 0.5, 0.0]])  # _HoleDrawer: the same 1 x 1 hole for both rows
    limits = tear_limits(_HoleDrawer(), up, rows, seeds=2, solid=torch.stack([solid[0], solid[0]]))
    hole = 16 * 0.5 / 128**2
    assert torch.allclose(limits, torch.full((2,), hole))
    clear = torch.zeros(2, 1, 128, 128)
    assert not tear_limits(_HoleDrawer(), up, rows, seeds=2, solid=clear).any()
