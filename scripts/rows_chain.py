"""A ship rule's chain for a concept-table candidate (rules 133-139): the row choice, then every bar's run in the order
the rules read them, each step skipped when its output is already written, so a rerun resumes where the last one
stopped (a session may end mid-chain). Until session 72 each rule had a shell copy of this in its runs folder.

    python scripts/rows_chain.py --base runs/v72/v21 --rows runs/v72/T6r --out runs/v72 --name K2 \\
        --keyword-seed 3900000000 --first-round 2600 --first-heart 390

``--fit FOLDER --fit-seed N`` puts the rule's joint fit first (rules 130-139's recipe, from ``--base``; it resumes
from ``FOLDER.ckpt``, its log ``FOLDER.log`` kept across reruns), then makes ``--rows`` (default ``FOLDERr``): a copy
of ``--base`` with the fit's ``concepts.safetensors``, so one command runs a rule from its fit to its A/B. Do not
start it while another process runs the same fit.

Steps, outputs in ``--out``: ``NAME/`` and ``NAME.json`` (``row_choice.py`` with v20's guards, six seeds, unless
``--choice`` replaces them), ``kw_NAME.json`` (``keyword_rows.py``, 5,352 fresh draws an arm), ``rv_R.json`` for the
four rounds R = first, +10, +20, +30 (one a run: two at once take about 22 GB), ``means_NAME.json``, ``heartsS.json``
for S = first heart and +6 (six seeds each), ``rv_L.json`` with the look grids ``lookL_*.png`` at L = first round +40,
``samples_NAME.png`` and ``samples_BASE.png``, ``named_NAME.json`` and the A/B ``ab_NAME.json``. The chain reads no
verdict: the rule's text says which bars to read, in which order, and where to stop (count the looks before opening
``rv_L.json``). A choice that keeps fewer than ``--min-rows`` rows ends it. ``--dry-run`` prints the commands. A row
choice cut off before its JSON was written starts over (its half-made folder is removed first).

``--stack-on FOLDER`` (a candidate that did not ship, e.g. rule 142's K6) runs the fit from that folder, makes
``--rows`` from it and chooses the rows against it, so the new rows are stacked on its table; the restore (from
``--base`` by default) and every bar are still read against ``--base``, the shipped folder.

``--carry DIR`` (e.g. ``benchmarks/candidates/K6``) keeps the chain across machines that do not outlive a session
(sessions 77-80 lost a fit three times): once the row choice (and the restore, if any) is written, the candidate's
table goes to ``DIR/concepts.safetensors`` and the row choice's record, without its per-row scores, to
``DIR/NAME.json``; every later step's JSON follows as it is written, but for the looks' ``rv_L.json``, which stays
behind (and so does the names file of ``--look-all``), so that the next session draws the look grids and pages and
counts them before it reads a number or a name of them. Run
again with the same command on a new machine (``--base`` a fresh copy of the shipped folder), the chain first puts
back what ``DIR`` holds: ``NAME/`` as ``--base`` with the carried table and each carried JSON not in ``--out``; with
the row choice's record there the fit is not run again. Committing ``DIR`` is left to whoever runs the chain.
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

PYTHON = sys.executable
JUDGES = (
    "--judge", "judge-5500=benchmarks/judge/judge-5500.safetensors",
    "--judge", "shipped=resources/models/emoji/judge.safetensors",
)  # fmt: skip
GUARDS = "--detail 1.0 --marks 1.0 --marks-real --enclosed 4 --seeds 6"  # v20's to v23's (rules 133-140)
# the joint fit of rules 130-139 (T4d's recipe; each rule another --seed)
FIT = "--steps 60 --solid-weight 1.3 --keep 4 --detail-weight 0.3"
CRITIC = "benchmarks/critic/critic-v4.safetensors"
ITSELF = ""  # a step's ``writes`` when its command names its output by its own arguments (the fit's --out)


class Step(NamedTuple):
    label: str
    output: Path  # the step is done when this file exists and is not empty
    argv: tuple[str, ...]
    log: Path
    # the command prints its result: the chain writes it to ``output`` once the step succeeds
    prints: bool = False
    # a folder the command writes beside ``output`` and refuses to overwrite: a run cut off before ``output`` was
    # written leaves it half made, so the step removes it before it runs again
    leftover: Path | None = None


def chain_steps(args: argparse.Namespace) -> list[Step]:
    """Every step of the chain, in order."""
    out, name, base = Path(args.out), args.name, Path(args.base)
    # the fit, its rows folder and the row choice start from --stack-on (a candidate's folder) where given, so the
    # rows kept are stacked on its table; every bar is still read against --base (rule 145 as amended)
    start = Path(args.stack_on) if args.stack_on else base
    arm = out / name
    data = ("--data", args.data)
    threads = ("--threads", str(args.threads))
    arms = ("--arm", f"{args.base_name}={base}", "--arm", f"{name}={arm}")
    rounds = [args.first_round + 10 * k for k in range(4)]
    look = args.first_round + 40

    def step(
        label: str, output: str | Path, *argv: str, writes: str | None = "--json", log: str | None = None,
        leftover: Path | None = None,
    ) -> Step:  # fmt: skip
        """``output``: a name in the rule's runs folder, or a Path as given (the fit's, named by --fit);
        ``writes``: the command's option that names it (given here, once); None where it prints it,
        ITSELF where its own arguments name it."""
        path = output if isinstance(output, Path) else out / output
        told = (writes, str(path)) if writes else ()
        log_path = out / (log or Path(output).with_suffix(".log").name)
        return Step(label, path, (*argv, *told), log_path, writes is None, leftover)

    steps = []
    # a written (or carried) row choice: the fit's work is done
    if args.fit and not (out / f"{name}.json").exists():
        fit, rows = Path(args.fit), Path(args.rows)
        building = rows.with_name(rows.name + ".tmp")
        steps += [
            step(
                f"fit {fit.name}", fit / "concepts.safetensors",
                PYTHON, "-m", "studio.training.joint_fit", "--model", str(start), *data, "--discriminator", CRITIC,
                "--out", str(fit), *shlex.split(FIT), "--seed", str(args.fit_seed), "--checkpoint", f"{fit}.ckpt",
                *threads, writes=ITSELF, log=f"{fit.name}.log",
            ),
            step(
                f"rows {rows.name}", rows / "concepts.safetensors",
                "sh", "-c", f"cp -r {shlex.quote(str(start))} {shlex.quote(str(building))} && cp "
                f"{shlex.quote(str(fit / 'concepts.safetensors'))} {shlex.quote(str(building))}/ && mv "
                f"{shlex.quote(str(building))} {shlex.quote(str(rows))}",
                writes=ITSELF, log=f"{rows.name}.log", leftover=building,
            ),
        ]  # fmt: skip
    steps += [
        step(
            "row choice", f"{name}.json",
            PYTHON, "scripts/row_choice.py", "--base", str(start), "--rows", args.rows, *data, *JUDGES,
            *shlex.split(args.choice), "--out", str(arm), *threads, leftover=arm,
        ),
    ]  # fmt: skip
    if args.restore:
        # rows a rule names put back to the base's before anything of the candidate is scored (rule 140)
        steps.append(
            step("restore rows", f"restored_{name}.json", PYTHON, "scripts/restore_rows.py",
                 "--base", args.restore_from or str(base),
                 "--arm", str(arm), *(a for n in args.restore for a in ("--name", n)), *data)
        )  # fmt: skip
    steps += [
        step(
            "keyword draws", f"kw_{name}.json",
            PYTHON, "scripts/keyword_rows.py", "--base", str(base), "--arm", str(arm), *data, *JUDGES, "--seeds", "8",
            "--keyword-seed", str(args.keyword_seed), *threads,
        ),
    ]  # fmt: skip
    for r in rounds:
        steps.append(
            step(f"round {r}", f"rv_{r}.json", PYTHON, "scripts/rows_verify.py", *arms, "--rounds", str(r), *threads)
        )  # fmt: skip
    steps.append(
        step(
            "means",
            f"means_{name}.json",
            PYTHON,
            "scripts/rows_means.py",
            *(str(out / f"rv_{r}.json") for r in rounds),
            writes=None,
        )
    )
    for first in (args.first_heart, args.first_heart + 6):
        steps.append(
            step(f"hearts {first}-{first + 5}", f"hearts{first}.json", PYTHON, "scripts/heart_check.py", *arms,
                 "--first-seed", str(first), *threads, "--grid", str(out / f"hearts{first}.png"))
        )  # fmt: skip
    studio = str(Path(PYTHON).with_name("gan-studio"))
    steps += [
        step(
            f"looks {look}", f"rv_{look}.json",
            PYTHON, "scripts/rows_verify.py", *arms, "--rounds", str(look), "--look", str(look),
            "--look-out", str(out / f"look{look}"), *threads,
        ),
    ]  # fmt: skip
    if args.look_all:
        # every changed name beside the base's (rule 140's bar c2): pages, counted before their names are read
        steps.append(
            step(f"look all {args.look_all}", f"all_{name}_names.json", PYTHON, "scripts/rows_look_all.py",
                 "--base", str(base), "--arm", str(arm), "--rounds", args.look_all, *data, *threads,
                 "--out", str(out / f"all_{name}"), writes=ITSELF, log=f"all_{name}.log")
        )  # fmt: skip
    steps += [
        step(f"samples {name}", f"samples_{name}.png", studio, "evaluate", "--model", str(arm), "--no-metrics",
             writes="--samples"),
        step(f"samples {args.base_name}", f"samples_{args.base_name}.png", studio, "evaluate", "--model", str(base),
             "--no-metrics", writes="--samples"),
        step("named preview", f"named_{name}.json", PYTHON, "benchmarks/named_bench.py", f"{args.base_name}={base}",
             f"{name}={arm}", "--threads", "1", writes=None, log=f"named_{name}.err"),
        step(
            "A/B", f"ab_{name}.json",
            PYTHON, "scripts/ab_report.py", *data, "--judge", "benchmarks/judge/judge-5500.safetensors",
            "--arm", f"{name}={arm}", "--psi", "1.0", "--limit", "600", *threads, "--language", "zh", "--language", "de",
            "--fresh-seeds", "3", "--spread",
        ),
    ]  # fmt: skip
    return steps


# the row choice's record is carried without these per-row scores (1.1 MB for 3,310 rows)
CHOICE_SCORES = ("first_", "second_", "real_")


def carry(step: Step, out: Path, name: str, folder: Path) -> None:
    """Copies what ``step`` wrote to the carry folder (see the module's docstring). The looks' outputs stay behind:
    their grids are drawn again and counted before their numbers (or the names of the changed rows) are read."""
    folder.mkdir(parents=True, exist_ok=True)
    if step.label in ("row choice", "restore rows"):
        shutil.copyfile(out / name / "concepts.safetensors", folder / "concepts.safetensors")
    if step.output.suffix != ".json" or step.output.parent != out or step.label.startswith("look"):
        return
    if step.label == "row choice":
        record = json.loads(step.output.read_text(encoding="utf-8"))
        slim = {k: v for k, v in record.items() if not k.startswith(CHOICE_SCORES)}
        slim["carried"] = (
            "the row choice's record and its kept rows; the per-row scores stayed in the runs folder"
        )
        (folder / step.output.name).write_text(json.dumps(slim, indent=1) + "\n", encoding="utf-8")
    else:
        shutil.copyfile(step.output, folder / step.output.name)


def put_back(folder: Path, base: Path, out: Path, name: str) -> list[str]:
    """Puts back what a carry folder holds (the candidate's folder, the JSONs ``--out`` lacks); returns the names."""
    if not (folder / "concepts.safetensors").exists():
        return []
    out.mkdir(parents=True, exist_ok=True)
    placed = []
    arm = out / name
    if not arm.exists():
        building = arm.with_name(arm.name + ".tmp")
        shutil.rmtree(building, ignore_errors=True)
        shutil.copytree(base, building)
        shutil.copyfile(folder / "concepts.safetensors", building / "concepts.safetensors")
        building.rename(arm)
        placed.append(f"{name}/")
    for path in sorted(folder.glob("*.json")):
        if not (out / path.name).exists():
            shutil.copyfile(path, out / path.name)
            placed.append(path.name)
    return placed


def kept_rows(choice_json: Path) -> int:
    return int(json.loads(choice_json.read_text(encoding="utf-8"))["kept"])


def run_step(step: Step) -> int:
    """One step; a step that prints its result (rows_means, named_bench) has it written to its output only once it
    succeeds (a partial output would count as done on the rerun), the others write their own and log the rest."""
    # the log's folder, not the output's own: the fit refuses an --out that exists
    step.log.parent.mkdir(parents=True, exist_ok=True)
    if step.leftover is not None and step.leftover.exists():
        shutil.rmtree(step.leftover)
    # appended to: a rerun keeps what a cut-off run logged (the fit's steps)
    with step.log.open("a", encoding="utf-8") as log:
        if not step.prints:
            return subprocess.call(step.argv, stdout=log, stderr=subprocess.STDOUT)
        partial = step.output.with_name(step.output.name + ".part")
        with partial.open("w", encoding="utf-8") as stdout:
            code = subprocess.call(step.argv, stdout=stdout, stderr=log)
    if code == 0:
        partial.replace(step.output)
    return code


def run_chain(steps: list[Step], chain_log: Path, min_rows: int, dry_run: bool = False, carried=None) -> int:
    """Runs the steps not yet done, in order; stops at the first that fails. Returns an exit status. ``carried``, if
    given, is called with each step once it is done."""

    def note(text: str) -> None:
        line = f"{time.strftime('%H:%M:%S', time.gmtime())} {text}"
        print(line, flush=True)
        if not dry_run:
            with chain_log.open("a", encoding="utf-8") as log:
                log.write(line + "\n")

    for step in steps:
        done = step.output.exists() and step.output.stat().st_size > 0
        if dry_run:
            print(("# done: " if done else "") + shlex.join(step.argv))
            continue
        if not done:
            code = run_step(step)
            if code != 0:
                note(f"{step.label} failed (exit {code}); see {step.log}")
                return 1
        note(f"{step.label} done")
        if carried is not None:
            carried(step)
        if step.label == "row choice" and (kept := kept_rows(step.output)) < min_rows:
            note(f"{kept} rows kept, fewer than {min_rows}: not scored")
            return 0
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the shipped folder (a copy)")
    parser.add_argument("--base-name", default=None, help="its arm's name (default: the folder's name)")
    parser.add_argument(
        "--rows",
        default=None,
        help="the base's folder with the fit's concepts.safetensors (default with --fit: FITr)",
    )
    parser.add_argument("--fit", default=None, help="run the rule's joint fit into this folder first")
    parser.add_argument("--fit-seed", type=int, default=None, help="the fit's --seed (with --fit)")
    parser.add_argument("--out", required=True, help="the rule's runs folder")
    parser.add_argument("--name", required=True, help="the candidate's name")
    parser.add_argument("--keyword-seed", type=int, required=True, help="fresh keyword draws from this seed")
    parser.add_argument(
        "--first-round", type=int, required=True, help="four rounds from it, the looks at +40"
    )
    parser.add_argument("--first-heart", type=int, required=True, help="hearts at seeds from it, 12 in all")
    parser.add_argument(
        "--restore",
        action="append",
        default=[],
        metavar="NAME",
        help="put this emoji's row back to the base's (or --restore-from's) after the row choice (repeatable)",
    )
    parser.add_argument("--restore-from", default=None, help="the folder whose rows --restore puts back")
    parser.add_argument(
        "--stack-on",
        default=None,
        metavar="FOLDER",
        help="fit from this candidate's folder and choose rows against it (stacked on its table); bars stay against --base",
    )
    parser.add_argument(
        "--look-all",
        default=None,
        metavar="ROUNDS",
        help="also draw every changed name beside the base's at these rounds",
    )
    parser.add_argument("--choice", default=GUARDS, help=f"row_choice's guards (default: {GUARDS})")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--min-rows", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--carry",
        default=None,
        metavar="DIR",
        help="copy the candidate's table and each step's JSON here, and put them back first on a new machine",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    args.base_name = args.base_name or Path(args.base).name
    if args.fit and args.fit_seed is None:
        parser.error("--fit needs --fit-seed: each rule's fit draws another seed")
    if not args.fit and not args.rows:
        parser.error("give --rows (a folder with the fit's table) or --fit and --fit-seed")
    args.rows = args.rows or str(Path(args.fit).with_name(Path(args.fit).name + "r"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out, carried = Path(args.out), None
    if args.carry:
        folder = Path(args.carry)
        if args.dry_run:
            print(f"# a run first puts back what {folder} holds that {out} lacks", flush=True)
        elif placed := put_back(folder, Path(args.base), out, args.name):
            print(f"put back from {folder}: {', '.join(placed)}", flush=True)
        carried = functools.partial(carry, out=out, name=args.name, folder=folder)
    return run_chain(chain_steps(args), out / f"chain_{args.name}.log", args.min_rows, args.dry_run, carried)


if __name__ == "__main__":
    sys.exit(main())
