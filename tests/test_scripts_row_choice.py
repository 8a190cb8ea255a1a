"""scripts/row_choice.py: the second table's row is kept only where every judge and the L1 agree and its dips stay
near the larger of the first row's and the real emoji's; the merged table keeps every other concept's first row (layered
or plain) and its lent flag, and reads back as a valid table; a lower rung moves the second rows part of the way from
the first's, and a row the same in both tables is not scored."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script

from studio.models.concepts import ConceptConditions, read_concepts, save_concepts

PLACES, WIDTH, CONCEPTS = 3, 4, 6


def _table(layered, lent, value, rng) -> ConceptConditions:
    conditions = np.arange(CONCEPTS * WIDTH, dtype=np.float32).reshape(CONCEPTS, WIDTH)
    fitted = np.ones(CONCEPTS, bool)
    layers = (value + rng.standard_normal((len(layered), PLACES, WIDTH))).astype(np.float32)
    return ConceptConditions(
        conditions, fitted, layers=layers, layered=np.asarray(layered, np.int64), lent=np.asarray(lent, bool)
    )


def test_the_merged_table_takes_the_chosen_rows_and_keeps_every_other_first_row(tmp_path):
    rng = np.random.default_rng(0)
    first = _table([1, 3], [True, False], 0.0, rng)
    second = _table([0, 1, 2, 3], [False, True, False, False], 10.0, rng)
    merged = load_script("row_choice").merged_table(first, second, np.asarray([3, 0]))
    assert merged.layered.tolist() == [0, 1, 3]
    np.testing.assert_array_equal(merged.layers[0], second.layers[0])
    np.testing.assert_array_equal(merged.layers[1], first.layers[0])  # not chosen: the first's layered row
    np.testing.assert_array_equal(merged.layers[2], second.layers[3])
    assert merged.lent.tolist() == [False, True, False]
    np.testing.assert_array_equal(merged.conditions, first.conditions)
    placed = merged.place_rows()
    np.testing.assert_array_equal(
        placed[2], np.repeat(first.conditions[2][None], PLACES, 0)
    )  # plain stays plain
    save_concepts(tmp_path, merged)
    back = read_concepts(tmp_path / "concepts.safetensors")
    np.testing.assert_array_equal(back.layers, merged.layers)
    assert back.lent.tolist() == merged.lent.tolist()


def test_tables_that_do_not_share_plain_rows_or_lack_the_chosen_rows_are_refused():
    rng = np.random.default_rng(1)
    first = _table([1], [True], 0.0, rng)
    second = _table([0, 1], [True, True], 1.0, rng)
    script = load_script("row_choice")
    with pytest.raises(ValueError, match="every chosen concept|Every chosen concept"):
        script.merged_table(first, second, np.asarray([4]))
    other = ConceptConditions(
        second.conditions + 1, second.fitted, layers=second.layers, layered=second.layered, lent=second.lent
    )
    with pytest.raises(ValueError, match="plain rows"):
        script.merged_table(first, other, np.asarray([0]))


def test_a_row_is_kept_only_where_every_judge_and_the_l1_agree_and_its_dips_stay_near_the_real_ones():
    first = {"l1": np.full(5, 0.2), "a": np.full(5, 0.8), "b": np.full(5, 0.8), "dips": np.full(5, 50.0)}
    second = {
        "l1": np.asarray([0.1, 0.1, 0.3, 0.1, 0.1]),
        "a": np.asarray([0.9, 0.9, 0.9, 0.7, 0.9]),
        "b": np.asarray([0.9, 0.7, 0.9, 0.9, 0.9]),
        "dips": np.asarray([60.0, 0.0, 0.0, 0.0, 140.0]),
    }
    real = np.asarray([10.0, 10.0, 10.0, 10.0, 100.0])
    keep = load_script("row_choice").choose(first, second, real, ("a", "b"), margin=30.0)
    # row 1: judge b falls; row 2: L1 rises; row 3: judge a falls; row 4: 140 px > max(50, 100) + 30
    assert keep.tolist() == [True, False, False, False, False]
    real[4] = 110.0
    assert load_script("row_choice").choose(first, second, real, ("a", "b"), margin=30.0).tolist()[4]


def _scores(count: int, l1: float, cosine: float, **per_seed) -> dict:
    """A table's scores as row_scores gives them: L1, judge "a"'s cosine, 10 px of dips, and per-seed measures."""
    ones = np.ones(count)
    return {
        "l1": ones * l1,
        "a": ones * cosine,
        "dips": ones * 10,
        **{k: np.asarray(v) for k, v in per_seed.items()},
    }


def test_with_a_detail_floor_a_row_plainer_than_the_first_at_any_seed_is_not_kept():
    first = _scores(3, 0.2, 0.8, detail_0=[1.0] * 3, detail_1=[1.0] * 3)
    second = _scores(3, 0.1, 0.9, detail_0=[1.0, 1.2, 0.95], detail_1=[1.1, 0.9, 1.3])
    choose, real = load_script("row_choice").choose, np.full(3, 10.0)
    assert choose(first, second, real, ("a",)).tolist() == [True, True, True]  # no floor: every row
    assert choose(first, second, real, ("a",), detail=1.0).tolist() == [True, False, False]
    assert choose(first, second, real, ("a",), detail=0.9).tolist() == [True, True, True]


def test_with_a_marks_floor_a_row_that_loses_dark_marks_at_any_seed_is_not_kept():
    first = _scores(2, 0.2, 0.8, marks_0=[40.0] * 2, marks_1=[40.0] * 2)
    second = _scores(2, 0.1, 0.9, marks_0=[45.0, 60.0], marks_1=[40.0, 12.0])
    choose, real = load_script("row_choice").choose, np.full(2, 10.0)
    assert choose(first, second, real, ("a",), marks=1.0).tolist() == [True, False]
    assert choose(first, second, real, ("a",), marks=0.25).tolist() == [True, True]


def test_with_the_real_emojis_own_marks_a_row_may_lose_the_specks_the_real_emoji_lacks():
    """--marks-real: the floor is the smaller of the first row's dark-mark px and the real emoji's own; a row that
    falls below the real emoji's count still fails, at any seed."""
    first = _scores(3, 0.2, 0.8, marks_0=[40.0] * 3, marks_1=[40.0] * 3)
    second = _scores(3, 0.1, 0.9, marks_0=[25.0, 25.0, 45.0], marks_1=[30.0, 19.0, 10.0])
    choose, real = load_script("row_choice").choose, np.full(3, 10.0)
    assert choose(first, second, real, ("a",), marks=1.0).tolist() == [False, False, False]
    real_marks = np.asarray([20.0, 20.0, 200.0])  # the third real emoji has more marks than either drawing
    kept = choose(first, second, real, ("a",), marks=1.0, real_marks=real_marks)
    assert kept.tolist() == [True, False, False]  # 19 < 20 at the second seed; 10 < 40 where the real has 200


def test_with_an_enclosed_margin_a_row_that_opens_a_hole_where_the_real_emoji_is_solid_is_not_kept():
    first = _scores(3, 0.2, 0.8, enclosed_0=[2.0] * 3, enclosed_1=[0.0] * 3)
    second = _scores(3, 0.1, 0.9, enclosed_0=[6.0, 7.0, 0.0], enclosed_1=[4.0, 0.0, 5.0])
    choose, real = load_script("row_choice").choose, np.full(3, 10.0)
    assert choose(first, second, real, ("a",)).tolist() == [True, True, True]  # no margin: every row
    assert choose(first, second, real, ("a",), enclosed=4.0).tolist() == [True, False, False]


def test_with_more_seeds_a_row_must_hold_every_guard_at_each_of_them():
    first = _scores(2, 0.2, 0.8, enclosed_0=[0.0] * 2, enclosed_1=[0.0] * 2, enclosed_2=[0.0] * 2)
    second = _scores(2, 0.1, 0.9, enclosed_0=[0.0, 0.0], enclosed_1=[3.0, 0.0], enclosed_2=[0.0, 40.0])
    choose, real = load_script("row_choice").choose, np.full(2, 10.0)
    assert choose(first, second, real, ("a",), enclosed=4.0).tolist() == [
        True,
        True,
    ]  # two seeds: the third unread
    assert choose(first, second, real, ("a",), enclosed=4.0, seeds=3).tolist() == [True, False]


def test_the_script_writes_the_first_folder_with_the_rows_it_keeps_and_nothing_else_changed(tmp_path):
    import json
    import shutil
    from dataclasses import replace

    from test_models_concepts import _fit_folder

    from studio.models.concepts import load_concepts
    from studio.models.format import read_model_info
    from studio.models.vocabulary import load_vocabulary
    from studio.training.concept_fit import fit_model_concepts
    from studio.training.judge import save_judge, train_judge

    data_dir, data, folder = _fit_folder(tmp_path)
    fit_model_concepts(folder, data_dir, steps=10, lr=0.2, quiet=True, share=1.0)
    judge, _ = train_judge(data, minutes=1.0, steps=10, batch=16, width=4, log=lambda _: None)
    save_judge(judge, {"steps": 10}, tmp_path / "judge.safetensors")
    info = read_model_info(folder)
    first = load_concepts(info, load_vocabulary(info))
    fitted = np.flatnonzero(first.fitted)
    layers = np.repeat(first.conditions[fitted][:, None], info.base.places, axis=1)
    layers += np.random.default_rng(3).normal(0.0, 0.5, layers.shape).astype(np.float32)
    second_folder = tmp_path / "second" / folder.name
    shutil.copytree(folder, second_folder)
    save_concepts(
        second_folder, replace(first, layers=layers, layered=fitted, lent=np.ones(len(fitted), bool))
    )
    out, report_path = tmp_path / "out" / folder.name, tmp_path / "choice.json"
    argv = ["--base", str(folder), "--rows", str(second_folder), "--data", str(data_dir)]
    argv += ["--judge", f"j={tmp_path / 'judge.safetensors'}", "--enclosed", "4", "--out", str(out)]
    assert load_script("row_choice").main([*argv, "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    scored = np.asarray(report["concepts"])
    assert set(scored.tolist()) == set(fitted.tolist()) & set(np.asarray(data.train_index).tolist())
    kept = scored[np.asarray(report["kept_rows"], bool)]
    assert report["kept"] == len(kept) and report["enclosed"] == 4.0 and report["marks"] == 0.0
    merged = load_concepts(read_model_info(out), load_vocabulary(read_model_info(out)))
    assert sorted((merged.layered if merged.layers is not None else []).tolist()) == sorted(kept.tolist())
    for k, concept in enumerate(merged.layered if merged.layers is not None else []):
        np.testing.assert_array_equal(merged.layers[k], layers[fitted.tolist().index(concept)])
    np.testing.assert_array_equal(merged.conditions, first.conditions)
    for path in folder.iterdir():
        if path.name != "concepts.safetensors":
            assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    with pytest.raises(FileExistsError):
        load_script("row_choice").main(argv)
    # a half rung on the chosen folder: the rows it took are the same in both tables and are not scored again
    rung, rung_report = tmp_path / "rung" / folder.name, tmp_path / "rung.json"
    argv = [
        "--base",
        str(out),
        "--rows",
        str(second_folder),
        "--data",
        str(data_dir),
        "--share",
        "0.5",
        "--seeds",
        "3",
        "--marks",
        "1.0",
        "--marks-real",
    ]
    argv += ["--judge", f"j={tmp_path / 'judge.safetensors'}", "--out", str(rung), "--json", str(rung_report)]
    assert load_script("row_choice").main(argv) == 0
    report = json.loads(rung_report.read_text(encoding="utf-8"))
    assert (
        report["share"] == 0.5
        and report["seeds"] == 3
        and len(report["second_detail_2"]) == len(report["concepts"])
    )
    assert report["marks_real"] is True and len(report["real_marks"]) == len(report["concepts"])
    assert set(report["concepts"]) == set(scored.tolist()) - set(kept.tolist())


def test_a_lower_rung_moves_each_second_row_that_share_of_the_way_from_the_first_row():
    rng = np.random.default_rng(4)
    first = _table([1, 3], [True, False], 0.0, rng)
    second = _table([0, 1, 2], [True, True, False], 10.0, rng)
    script = load_script("row_choice")
    half = script.toward(first, second, 0.5)
    assert half.layered.tolist() == second.layered.tolist() and half.lent.tolist() == second.lent.tolist()
    plain_0 = np.repeat(first.conditions[0][None], PLACES, 0)  # concept 0: the first table draws it plain
    np.testing.assert_allclose(half.layers[0], (plain_0 + second.layers[0]) / 2, rtol=1e-6)
    np.testing.assert_allclose(half.layers[1], (first.layers[0] + second.layers[1]) / 2, rtol=1e-6)  # layered
    assert script.toward(first, second, 1.0) is second
    with pytest.raises(ValueError, match="share"):
        script.toward(first, second, 0.0)
    unlayered = ConceptConditions(first.conditions, first.fitted)
    np.testing.assert_array_equal(
        unlayered.place_rows(places=PLACES), np.repeat(first.conditions[:, None], PLACES, 1)
    )  # a plain table asked for the second's places
    with pytest.raises(ValueError, match="places"):
        first.place_rows(places=PLACES + 1)
    np.testing.assert_allclose(
        script.toward(unlayered, second, 0.25).layers[2],
        np.repeat(first.conditions[2][None], PLACES, 0) * 0.75 + second.layers[2] * 0.25,
        rtol=1e-6,
    )


def test_the_changed_rows_are_those_whose_placed_rows_differ():
    from studio.models.concepts import changed_concepts as changed_rows

    rng = np.random.default_rng(3)
    conditions = rng.standard_normal((5, 4)).astype(np.float32)
    fitted = np.ones(5, bool)
    layers = rng.standard_normal((2, 3, 4)).astype(np.float32)
    first = ConceptConditions(
        conditions, fitted, layers=layers, layered=np.array([1, 3]), lent=np.ones(2, bool)
    )
    new = rng.standard_normal((3, 3, 4)).astype(np.float32)
    new[1] = layers[1]  # concept 3: the same row in both
    second = ConceptConditions(
        conditions, fitted, layers=new, layered=np.array([0, 3, 4]), lent=np.ones(3, bool)
    )
    # 0 and 4 gain a layered row, 1 loses its own (back to plain), 3 keeps the same
    assert changed_rows(first, second).tolist() == [0, 1, 4]
