"""Which of a candidate table's rows move the shared keywords' seeds (session 71: rule 133's M drew 141 rows better
than v19's by every judge but lost 2 of the 400 keyword draws the ship bar counts): both folders drawn, spread on, for
every shared keyword (``evaluate.shared_keywords``: CLDR keywords four or more emoji carry) at seeds of their own
(``KEYWORD_SEED + SEEDS_PER x keyword + k``, none of which any rule or the bar's ``keyword_metrics`` draws), and
each draw whose hit (its nearest real emoji in a judge's features carries the keyword) differs between the two is
laid on the changed row that weighs most in the draw's spread mix.

    python scripts/keyword_rows.py --base runs/v70/v19 --arm runs/v70/M --data data/emoji-usem3-kw \\
        --judge judge-5500=benchmarks/judge/judge-5500.safetensors --judge shipped=resources/models/emoji/judge.safetensors \\
        --json runs/v71/kw_M.json [--out runs/v71/N] --threads 2

A changed row is one whose layered row differs between the two tables. Per changed row and judge: the draws it
gains (a miss in the base, a hit in the arm) and loses; a row whose losses exceed its gains summed over the judges is
listed as ``drop``. ``--out`` writes the base folder with every changed row but those (row_choice's
``merged_table``). Draws no changed row takes part in are the same in both, so are not compared; a draw that differs
though no changed row is in its mix (a keyword that fits one concept, conditioned as it is) is counted apart; with
``--lent`` the mix names the rows drawn (a held-out name's borrowed row, a lone keyword's borrowed row), so fewer are.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from row_choice import merged_table

from studio.engine.spread import Spreader
from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.concepts import changed_concepts, concepts_metadata, load_concepts, save_concepts
from studio.models.format import CONCEPTS_FILE, load_model
from studio.models.vocabulary import load_vocabulary
from studio.training.dataset import load_dataset
from studio.training.evaluate import (
    SpreadGenerator,
    drawn_generator,
    keyword_pictures,
    latents,
    shared_keywords,
)
from studio.training.judge import judge_features, load_judge

KEYWORD_SEED = 3_500_000_000
SEEDS_PER = 16  # seed slots a keyword owns (its draws take the first --seeds)


def attribute(mixes: list, changed: np.ndarray, hit_first: np.ndarray, hit_second: np.ndarray) -> dict:
    """Per changed concept, the draws it ``gains`` and ``loses``: each draw whose hit differs goes to the changed
    concept with the largest weight in its mix (``mixes[i]``: (concepts, weights), or None for a draw spread left
    alone); such a draw with no changed concept in its mix counts under ``unplaced``."""
    changed_set = set(np.asarray(changed).tolist())
    gains = {int(c): 0 for c in changed_set}
    losses = dict(gains)
    unplaced = 0
    for mix, before, after in zip(mixes, hit_first, hit_second):
        if bool(before) == bool(after):
            continue
        owner = None
        if mix is not None:
            concepts, weights = mix
            inside = [(w, int(c)) for c, w in zip(concepts, weights) if int(c) in changed_set]
            owner = max(inside)[1] if inside else None
        if owner is None:
            unplaced += 1
        elif after:
            gains[owner] += 1
        else:
            losses[owner] += 1
    return {"gains": gains, "losses": losses, "unplaced": unplaced}


def to_drop(per_judge: dict) -> list[int]:
    """The changed concepts whose losses exceed their gains, summed over the judges (sorted)."""
    net: dict[int, int] = {}
    for found in per_judge.values():
        for concept, gained in found["gains"].items():
            net[concept] = net.get(concept, 0) + gained - found["losses"][concept]
    return sorted(c for c, v in net.items() if v < 0)


def lent_mix(mix, embedding: np.ndarray, conditioner):
    """A draw's mix as the rows it draws: each concept without a row of its own (a held-out name) stands for the
    fitted concept whose row it borrows, and a prompt spread leaves alone for the fitted concept its own embedding
    borrows from (None where it borrows none); weights of one row are summed."""
    if mix is None:
        concept, gate = conditioner.gate(embedding)
        return None if concept < 0 or gate <= 0.0 else (np.array([concept]), np.array([1.0]))
    fitted = conditioner.table.fitted
    names = conditioner.vocabulary.embeddings
    weights: dict[int, float] = {}
    for concept, weight in zip(*mix):
        row = int(concept)
        if not fitted[row]:
            row, gate = conditioner.gate(np.asarray(names[row], np.float32))
            if row < 0 or gate <= 0.0:
                continue
        weights[row] = weights.get(row, 0.0) + float(weight)
    if not weights:
        return None
    return np.array(list(weights)), np.array(list(weights.values()))


def keyword_draws(
    data, keywords, seeds: int, first_seed: int = KEYWORD_SEED
) -> tuple[torch.Tensor, list[int]]:
    """Every draw's prompt embedding and seed, keyword-major (``seeds`` a keyword)."""
    embeddings = torch.from_numpy(data.caption_emb[[row for row, _ in keywords]].astype(np.float32))
    seed_list = [first_seed + SEEDS_PER * k + s for k in range(len(keywords)) for s in range(seeds)]
    return embeddings.repeat_interleave(seeds, 0), seed_list


@torch.no_grad()
def nearest_of_draws(
    model, spreader: Spreader, rows: torch.Tensor, seed_list: list[int], judges: dict, reals: dict
):
    """Per judge, each draw's nearest real emoji in that judge's features, as ``model`` draws it with spread on."""
    spread = SpreadGenerator(drawn_generator(model), spreader)
    nearest = {name: [] for name in judges}
    for i in range(0, len(rows), 256):
        _, shown = keyword_pictures(spread, model.upsampler, rows[i : i + 256], seed_list[i : i + 256], 1.0)
        for name, judge in judges.items():
            sims = F.normalize(judge_features(judge, shown), dim=1) @ reals[name].T
            nearest[name].append(sims.argmax(1).numpy())
    return {name: np.concatenate(parts) for name, parts in nearest.items()}


def draw_mixes(
    model, spreader: Spreader, rows: torch.Tensor, seed_list: list[int], lent: bool = False
) -> list:
    """Each draw's spread mix (with ``lent``, of the rows ``model``'s table draws: :func:`lent_mix`)."""
    z = latents(seed_list, model.generator.config.z_dim, 1.0)
    mixes = [spreader.mix(row.numpy(), zi) for row, zi in zip(rows, z)]
    if lent:
        conditioner = drawn_generator(model).conditioner
        mixes = [lent_mix(mix, row.numpy(), conditioner) for mix, row in zip(mixes, rows)]
    return mixes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the shipped folder")
    parser.add_argument(
        "--arm", required=True, help="the candidate: the same folder with another concept table"
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--judge", action="append", required=True, help="name=judge.safetensors (repeatable)")
    parser.add_argument("--seeds", type=int, default=8, help=f"draws a keyword (at most {SEEDS_PER})")
    parser.add_argument("--json", required=True)
    parser.add_argument(
        "--out", help="write the base folder with the arm's changed rows but the dropped ones"
    )
    parser.add_argument(
        "--lent", action="store_true", help="lay a draw on the rows it draws: a held-out name's on the row it "
        "borrows, a keyword spread leaves alone on the row its embedding borrows from (without it such draws are "
        "counted apart)"
    )  # fmt: skip
    parser.add_argument(
        "--keyword-seed", type=int, default=KEYWORD_SEED, help=f"the first draw's seed (default {KEYWORD_SEED:,}; "
        f"keyword k's draws take seeds from this + {SEEDS_PER} x k)"
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 1 <= args.seeds <= SEEDS_PER:
        raise ValueError(f"--seeds lies in 1..{SEEDS_PER}.")
    base, arm = Path(args.base), Path(args.arm)
    if args.out and Path(args.out).exists():
        raise FileExistsError(f"{args.out} exists")
    data = load_dataset(args.data)
    keywords = shared_keywords(data, count=10**6)
    judges = {name: load_judge(Path(path))[0] for name, path in (j.split("=", 1) for j in args.judge)}
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    reals = {name: F.normalize(judge_features(judge, real), dim=1) for name, judge in judges.items()}
    models = {"base": load_model(base), "arm": load_model(arm)}
    # the arm's vocabulary is the same file: its table is read with the base's
    vocabulary = load_vocabulary(models["base"].info)
    first, second = (load_concepts(models[label].info, vocabulary) for label in ("base", "arm"))
    changed = changed_concepts(first, second)
    spreader = Spreader(vocabulary)
    rows, seed_list = keyword_draws(data, keywords, args.seeds, args.keyword_seed)
    nearest = {
        label: nearest_of_draws(model, spreader, rows, seed_list, judges, reals)
        for label, model in models.items()
    }
    mixes = draw_mixes(models["base"], spreader, rows, seed_list, args.lent)
    owners = np.repeat(np.arange(len(keywords)), args.seeds)
    report: dict = {
        "script": "scripts/keyword_rows.py", "base": str(base), "arm": str(arm), "judges": dict(
            j.split("=", 1) for j in args.judge), "keywords": len(keywords), "seeds": args.seeds,
        "keyword_seed": args.keyword_seed, "lent": args.lent, "changed": changed.tolist(), "judged": {},
    }  # fmt: skip
    for name in judges:
        hits = {}
        for label in ("base", "arm"):
            near = nearest[label][name]
            hits[label] = np.array([np.isin(near[i], keywords[owners[i]][1]) for i in range(len(near))])
        found = attribute(mixes, changed, hits["base"], hits["arm"])
        report["judged"][name] = {
            "precision": {label: round(float(h.mean()), 4) for label, h in hits.items()},
            **found,
        }
    drop = to_drop(report["judged"])
    report["drop"] = drop
    report["drop_names"] = [str(data.names[c]) for c in drop]
    if args.out:
        kept = np.setdiff1d(changed, drop)
        table = merged_table(first, second, kept)
        shutil.copytree(base, args.out)
        meta = concepts_metadata(base / CONCEPTS_FILE)
        record = {
            "script": "scripts/keyword_rows.py",
            "arm": str(arm),
            "kept": int(len(kept)),
            "dropped": drop,
        }
        save_concepts(Path(args.out), table, {**meta, "keyword_rows": json.dumps(record)})
        report["kept"] = int(len(kept))
    Path(args.json).write_text(json.dumps(report) + "\n", encoding="utf-8")
    summary = {k: v for k, v in report.items() if k not in ("changed", "judged")}
    summary["precision"] = {name: found["precision"] for name, found in report["judged"].items()}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
