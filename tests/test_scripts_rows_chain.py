"""scripts/rows_chain.py: a ship rule's chain, in the rules' order, resumable step by step."""

from __future__ import annotations

import json
import sys

from conftest import load_script

chain = load_script("rows_chain")


def test_the_steps_draw_the_rules_seeds_in_order(tmp_path):
    args = chain.parse_args(
        ["--base", "runs/x/v21", "--rows", "runs/x/T6r", "--out", str(tmp_path), "--name", "K2",
         "--keyword-seed", "3900000000", "--first-round", "2600", "--first-heart", "390"]
    )  # fmt: skip
    steps = chain.chain_steps(args)
    labels = [s.label for s in steps]
    assert labels == [
        "row choice", "keyword draws", "round 2600", "round 2610", "round 2620", "round 2630", "means",
        "hearts 390-395", "hearts 396-401", "looks 2640", "samples K2", "samples v21", "named preview", "A/B",
    ]  # fmt: skip
    choice = steps[0].argv
    assert choice[choice.index("--rows") + 1] == "runs/x/T6r" and "--marks-real" in choice
    assert choice[choice.index("--seeds") + 1] == "6" and choice[choice.index("--out") + 1] == str(
        tmp_path / "K2"
    )
    keywords = steps[1].argv
    assert keywords[keywords.index("--keyword-seed") + 1] == "3900000000"
    assert "v21=runs/x/v21" in steps[2].argv and f"K2={tmp_path / 'K2'}" in steps[2].argv
    # one round a run: two at once take about 22 GB
    assert all(s.argv.count("--rounds") == 1 for s in steps if s.label.startswith("round"))
    looks = steps[9].argv
    assert looks[looks.index("--look") + 1] == "2640" and steps[9].output == tmp_path / "rv_2640.json"
    assert steps[6].argv[-4:] == tuple(str(tmp_path / f"rv_{r}.json") for r in (2600, 2610, 2620, 2630))
    # a step that writes its output is told the path once, after its option; one that prints it is not told it
    printed = {s.label for s in steps if s.prints}
    assert printed == {"means", "named preview"}
    for s in steps:
        told = [i for i, a in enumerate(s.argv) if a == str(s.output)]
        assert told == ([] if s.prints else [len(s.argv) - 1]), s.label
        assert s.prints or s.argv[-2] == ("--samples" if s.output.suffix == ".png" else "--json")


def _writer(path, text="{}", code=0):
    """A step's argv: python writing ``text`` to ``path`` (or printing it when path is None), then exiting ``code``."""
    body = f"open({str(path)!r}, 'w').write({text!r})" if path is not None else f"print({text!r})"
    return (sys.executable, "-c", f"{body}; raise SystemExit({code})")


def test_a_rerun_skips_what_is_written_and_stops_at_a_failure(tmp_path):
    choice, kw, means, late = (tmp_path / n for n in ("K.json", "kw.json", "means.json", "late.json"))
    steps = [
        chain.Step("row choice", choice, _writer(choice, json.dumps({"kept": 60})), tmp_path / "c.log"),
        chain.Step("keyword draws", kw, _writer(kw, code=3), tmp_path / "kw.log"),
        chain.Step("means", means, _writer(None, '{"m": 1}'), tmp_path / "means.log", prints=True),
        chain.Step("late", late, _writer(late), tmp_path / "late.log"),
    ]
    log = tmp_path / "chain.log"
    assert chain.run_chain(steps, log, min_rows=50) == 1  # the keyword step exits 3
    assert choice.exists() and not means.exists() and not late.exists()
    assert "keyword draws failed (exit 3)" in log.read_text()

    choice.write_text(json.dumps({"kept": 60}))  # written by hand: a rerun must not run it again
    steps[0] = chain.Step("row choice", choice, _writer(None, code=9), tmp_path / "c.log")
    steps[1] = chain.Step("keyword draws", kw, _writer(kw, '{"p": 1}'), tmp_path / "kw.log")
    assert chain.run_chain(steps, log, min_rows=50) == 0
    assert json.loads(means.read_text()) == {"m": 1} and late.exists()  # a printed result lands in its output


def test_a_printed_result_is_kept_only_when_its_step_succeeds_and_few_rows_end_the_chain(tmp_path):
    means, choice, after = tmp_path / "means.json", tmp_path / "K.json", tmp_path / "after.json"
    failing = [
        chain.Step("means", means, _writer(None, '{"half"', code=1), tmp_path / "means.log", prints=True)
    ]
    assert chain.run_chain(failing, tmp_path / "chain.log", min_rows=50) == 1
    assert not means.exists()  # the partial print stays beside it, so the rerun runs the step again

    steps = [
        chain.Step("row choice", choice, _writer(choice, json.dumps({"kept": 12})), tmp_path / "c.log"),
        chain.Step("after", after, _writer(after), tmp_path / "a.log"),
    ]
    assert chain.run_chain(steps, tmp_path / "chain.log", min_rows=50) == 0
    assert (
        not after.exists()
        and "12 rows kept, fewer than 50: not scored" in (tmp_path / "chain.log").read_text()
    )


def test_a_dry_run_prints_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "runs"
    code = chain.main(
        ["--base", "b/v21", "--rows", "b/T6r", "--out", str(out), "--name", "K2", "--keyword-seed", "1",
         "--first-round", "10", "--first-heart", "20", "--dry-run"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and not out.exists()
    assert (
        "scripts/row_choice.py" in printed and "scripts/ab_report.py" in printed and "--rounds 50" in printed
    )


def test_a_row_choice_cut_off_starts_over_from_an_empty_folder(tmp_path):
    """row_choice.py refuses an --out that exists: a choice cut off before its JSON leaves its folder half made."""
    arm, choice = tmp_path / "K2", tmp_path / "K2.json"
    arm.mkdir()
    (arm / "half.safetensors").write_bytes(b"cut off")
    body = (
        f"import pathlib; a = pathlib.Path({str(arm)!r}); a.mkdir(); (a / 'rows').write_text('new'); "
        f"pathlib.Path({str(choice)!r}).write_text('{{\"kept\": 60}}')"
    )
    step = chain.Step("row choice", choice, (sys.executable, "-c", body), tmp_path / "c.log", leftover=arm)
    assert chain.run_chain([step], tmp_path / "chain.log", min_rows=50) == 0
    assert sorted(p.name for p in arm.iterdir()) == ["rows"] and json.loads(choice.read_text()) == {
        "kept": 60
    }
    args = chain.parse_args(
        ["--base", "b/v21", "--rows", "b/T6r", "--out", str(tmp_path), "--name", "K2", "--keyword-seed", "1",
         "--first-round", "10", "--first-heart", "20"]
    )  # fmt: skip
    steps = chain.chain_steps(args)
    assert steps[0].leftover == arm and all(s.leftover is None for s in steps[1:])


def test_a_chain_with_fit_runs_the_rules_fit_first_and_makes_its_rows_folder(tmp_path):
    out = tmp_path / "runs"
    args = chain.parse_args(
        ["--base", str(tmp_path / "v22"), "--fit", str(out / "T7"), "--fit-seed", "3456", "--out", str(out),
         "--name", "K3", "--keyword-seed", "4000000000", "--first-round", "2650", "--first-heart", "402"]
    )  # fmt: skip
    steps = chain.chain_steps(args)
    assert [s.label for s in steps[:3]] == ["fit T7", "rows T7r", "row choice"]
    fit, rows, choice = steps[0], steps[1], steps[2].argv
    assert fit.output == out / "T7" / "concepts.safetensors" and not fit.prints
    assert fit.argv[fit.argv.index("--seed") + 1] == "3456" and fit.argv[fit.argv.index("--out") + 1] == str(
        out / "T7"
    )
    assert fit.argv[fit.argv.index("--checkpoint") + 1] == f"{out / 'T7'}.ckpt"
    assert fit.argv[fit.argv.index("--model") + 1] == str(tmp_path / "v22") and fit.log == out / "T7.log"
    assert choice[choice.index("--rows") + 1] == str(out / "T7r")

    # the rows step: the base's folder with the fit's table, built beside and renamed (a half-made copy is removed)
    (tmp_path / "v22").mkdir()
    for name, text in (("model.json", "{}"), ("concepts.safetensors", "base table")):
        (tmp_path / "v22" / name).write_text(text)
    (out / "T7").mkdir(parents=True)
    (out / "T7" / "concepts.safetensors").write_text("fitted table")
    (out / "T7r.tmp").mkdir()
    (out / "T7r.tmp" / "stale").write_text("cut off")
    assert chain.run_chain([rows], out / "chain.log", min_rows=50) == 0
    assert sorted(p.name for p in (out / "T7r").iterdir()) == ["concepts.safetensors", "model.json"]
    assert (out / "T7r" / "concepts.safetensors").read_text() == "fitted table" and not (
        out / "T7r.tmp"
    ).exists()


def test_a_fit_needs_its_seed_and_a_chain_needs_rows_or_a_fit(capsys):
    common = ["--base", "b/v22", "--out", "o", "--name", "K3", "--keyword-seed", "1", "--first-round", "10",
              "--first-heart", "20"]  # fmt: skip
    for extra in (["--fit", "o/T7"], []):
        try:
            chain.parse_args(common + extra)
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError(f"accepted {extra}")
    err = capsys.readouterr().err
    assert "--fit needs --fit-seed" in err and "give --rows" in err


def test_a_rerun_of_a_step_keeps_what_the_cut_off_run_logged(tmp_path):
    output, log = tmp_path / "T7" / "concepts.safetensors", tmp_path / "T7.log"
    first = chain.Step("fit", output, (sys.executable, "-c", "print('step 1/60'); raise SystemExit(1)"), log)
    assert chain.run_chain([first], tmp_path / "chain.log", min_rows=50) == 1
    body = f"print('step 2/60'); import pathlib; p = pathlib.Path({str(output)!r}); p.parent.mkdir(); p.write_text('rows')"
    assert (
        chain.run_chain([first._replace(argv=(sys.executable, "-c", body))], tmp_path / "chain.log", 50) == 0
    )
    assert log.read_text().split() == ["step", "1/60", "step", "2/60"]


def test_a_written_fit_named_by_a_relative_path_counts_as_done(tmp_path, monkeypatch, capsys):
    """The rule's command gives relative folders (runs/v74/T7): the fit's output is that folder's table as given,
    not a path under --out (the fit then ran again on a rerun and refused its own folder)."""
    monkeypatch.chdir(tmp_path)
    argv = ["--base", "runs/v74/v22", "--fit", "runs/v74/T7", "--fit-seed", "3456", "--out", "runs/v74",
            "--name", "K3", "--keyword-seed", "4000000000", "--first-round", "2650", "--first-heart", "402"]  # fmt: skip
    fit, rows = chain.chain_steps(chain.parse_args(argv))[:2]
    assert fit.output.as_posix() == "runs/v74/T7/concepts.safetensors"
    assert rows.output.as_posix() == "runs/v74/T7r/concepts.safetensors"
    for folder in ("runs/v74/T7", "runs/v74/T7r"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "concepts.safetensors").write_text("table")
    assert chain.main(argv + ["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# done: ") and "joint_fit" in lines[0]
    assert lines[1].startswith("# done: ") and not lines[2].startswith("# done: ")


def test_look_all_adds_one_step_after_the_looks_that_names_its_own_output(tmp_path):
    common = ["--base", "runs/v75/v23", "--rows", "runs/v75/T8r", "--out", str(tmp_path), "--name", "K4",
              "--keyword-seed", "4100000000", "--first-round", "2700", "--first-heart", "414"]  # fmt: skip
    without = [s.label for s in chain.chain_steps(chain.parse_args(common))]
    steps = chain.chain_steps(chain.parse_args(common + ["--look-all", "3000,3005"]))
    labels = [s.label for s in steps]
    at = labels.index("look all 3000,3005")
    assert labels[at - 1] == "looks 2740" and labels[:at] + labels[at + 1 :] == without
    look = steps[at]
    assert not look.prints and look.output == tmp_path / "all_K4_names.json"
    assert look.argv[look.argv.index("--rounds") + 1] == "3000,3005"
    assert look.argv[look.argv.index("--out") + 1] == str(tmp_path / "all_K4")
    assert look.argv[look.argv.index("--arm") + 1] == str(tmp_path / "K4")


def test_restore_puts_named_rows_back_right_after_the_row_choice(tmp_path):
    common = ["--base", "runs/v75/v23", "--rows", "runs/v75/T8r", "--out", str(tmp_path), "--name", "K4",
              "--keyword-seed", "4100000000", "--first-round", "2700", "--first-heart", "414"]  # fmt: skip
    steps = chain.chain_steps(
        chain.parse_args(common + ["--restore", "child: medium-light skin tone", "--restore", "x"])
    )
    labels = [s.label for s in steps]
    assert labels[:3] == ["row choice", "restore rows", "keyword draws"]
    restore = steps[1]
    assert restore.output == tmp_path / "restored_K4.json" and restore.argv[-2:] == (
        "--json",
        str(restore.output),
    )
    assert restore.argv[restore.argv.index("--arm") + 1] == str(tmp_path / "K4")
    named = [restore.argv[i + 1] for i, a in enumerate(restore.argv) if a == "--name"]
    assert named == ["child: medium-light skin tone", "x"]
    assert "restore rows" not in [s.label for s in chain.chain_steps(chain.parse_args(common))]
    assert restore.argv[restore.argv.index("--base") + 1] == "runs/v75/v23"  # the base's rows by default
    earlier = chain.chain_steps(
        chain.parse_args(common + ["--restore", "x", "--restore-from", "runs/v74/v22"])
    )[1]
    assert earlier.argv[earlier.argv.index("--base") + 1] == "runs/v74/v22"


def test_carry_keeps_the_table_and_each_json_but_the_looks_and_a_new_machine_gets_them_back(
    tmp_path, monkeypatch
):
    base, out, folder = tmp_path / "v25", tmp_path / "runs", tmp_path / "candidates" / "K6"
    base.mkdir()
    for name, text in (("model.json", "{}"), ("concepts.safetensors", "base table")):
        (base / name).write_text(text)
    common = ["--base", str(base), "--fit", str(out / "T10"), "--fit-seed", "1357", "--out", str(out), "--name", "K6",
              "--keyword-seed", "4300000000", "--first-round", "3070", "--first-heart", "438", "--look-all",
              "3120,3125", "--carry", str(folder)]  # fmt: skip
    steps = {s.label: s for s in chain.chain_steps(chain.parse_args(common))}
    assert list(steps)[:3] == ["fit T10", "rows T10r", "row choice"]

    # what each step would have written on the first machine
    (out / "K6").mkdir(parents=True)
    (out / "K6" / "concepts.safetensors").write_text("chosen table")
    record = {
        "kept": 113,
        "kept_rows": [5, 9],
        "first_l1": [0.1] * 3,
        "second_dips": [1] * 3,
        "real_marks": [2],
    }
    for label, text in (("row choice", json.dumps(record)), ("keyword draws", "{}"), ("round 3070", "{}"),
                        ("means", "{}"), ("looks 3110", '{"look": 1}'), ("look all 3120,3125", "{}"),
                        ("samples K6", "png"), ("A/B", "{}")):  # fmt: skip
        steps[label].output.write_text(text)
        chain.carry(steps[label], out=out, name="K6", folder=folder)
    # the looks' rv_3110.json and all_K6_names.json stay behind, and so do the pictures
    carried = ["K6.json", "ab_K6.json", "concepts.safetensors", "kw_K6.json", "means_K6.json", "rv_3070.json"]
    assert sorted(p.name for p in folder.iterdir()) == carried
    slim = json.loads((folder / "K6.json").read_text())
    assert slim["kept"] == 113 and slim["kept_rows"] == [5, 9] and "carried" in slim
    assert not any(k.startswith(("first_", "second_", "real_")) for k in slim)
    assert (folder / "concepts.safetensors").read_text() == "chosen table"

    # a new machine: nothing in the runs folder; the chain puts the candidate back and does not fit again
    fresh = tmp_path / "fresh"
    common[common.index(str(out))] = str(fresh)
    ran = []
    monkeypatch.setattr(chain, "run_chain", lambda steps, *a, **k: ran.extend(steps) or 0)
    assert chain.main(common) == 0
    assert (fresh / "K6" / "concepts.safetensors").read_text() == "chosen table"
    assert (fresh / "K6" / "model.json").read_text() == "{}" and not (fresh / "K6.tmp").exists()
    assert sorted(p.name for p in fresh.glob("*.json")) == sorted(p.name for p in folder.glob("*.json"))
    labels = [s.label for s in ran]
    assert labels[0] == "row choice" and not any(label.startswith(("fit", "rows")) for label in labels)
    # what the runs folder already has is left as it is
    (fresh / "kw_K6.json").write_text('{"newer": 1}')
    assert chain.put_back(folder, base, fresh, "K6") == []
    assert json.loads((fresh / "kw_K6.json").read_text()) == {"newer": 1}


def test_run_chain_tells_the_carry_each_step_it_finds_or_makes_done(tmp_path):
    done, todo = tmp_path / "done.json", tmp_path / "todo.json"
    done.write_text("{}")
    steps = [
        chain.Step("keyword draws", done, _writer(done), tmp_path / "a.log"),
        chain.Step("means", todo, _writer(todo), tmp_path / "b.log"),
    ]
    told = []
    assert chain.run_chain(steps, tmp_path / "chain.log", min_rows=50, carried=told.append) == 0
    assert [s.label for s in told] == ["keyword draws", "means"] and todo.exists()


def test_stack_on_fits_and_chooses_rows_from_the_candidate_but_reads_every_bar_against_the_base(tmp_path):
    out = tmp_path / "runs"
    args = chain.parse_args(
        ["--base", "runs/v81/v25", "--stack-on", "runs/v81/K6", "--fit", str(out / "T11"), "--fit-seed", "8642",
         "--out", str(out), "--name", "K7", "--keyword-seed", "4500000000", "--first-round", "3200",
         "--first-heart", "462", "--restore", "child: medium-light skin tone"]
    )  # fmt: skip
    steps = {s.label: s for s in chain.chain_steps(args)}
    fit, rows, choice = steps["fit T11"].argv, steps["rows T11r"].argv, steps["row choice"].argv
    assert fit[fit.index("--model") + 1] == "runs/v81/K6"
    assert rows[-1].startswith("cp -r runs/v81/K6 ")
    assert choice[choice.index("--base") + 1] == "runs/v81/K6" and choice[choice.index("--rows") + 1] == str(
        out / "T11r"
    )
    restore = steps["restore rows"].argv
    assert restore[restore.index("--base") + 1] == "runs/v81/v25"  # the shipped row comes back, not K6's
    bars = [
        s for label, s in steps.items() if label not in ("fit T11", "rows T11r", "row choice", "restore rows")
    ]
    assert bars and all("runs/v81/K6" not in " ".join(s.argv) for s in bars)
    assert "v25=runs/v81/v25" in steps["round 3200"].argv
    # without it, everything starts from the base as before
    plain = chain.chain_steps(chain.parse_args([
        "--base", "runs/v81/v25", "--fit", str(out / "T11"), "--fit-seed", "8642", "--out", str(out),
        "--name", "K7", "--keyword-seed", "1", "--first-round", "10", "--first-heart", "20"]))  # fmt: skip
    assert plain[0].argv[plain[0].argv.index("--model") + 1] == "runs/v81/v25"
