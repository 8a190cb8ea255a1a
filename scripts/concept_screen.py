"""Screen a concept-fit recipe before a full fit: fit the conditions of the A/B's training emoji only (600 by
default, the subset `evaluate_model` draws with ``limit``; rows are fitted independently, so these rows are what a
full fit would give them up to its z draws) and score them at several shares beside the model's own table.

    python scripts/concept_screen.py --data data/emoji-usem3-kw --judge benchmarks/judge/judge-5500.safetensors \
        --discriminator runs/v19/critic/snapshots/d_0012345.safetensors --feature-match 1.0 \
        --share 0.375 --share 1.0 --json runs/v19/screen.json

Every row draws each emoji's English name at seed = its index (plus ``--seed-offset``; ``--rounds N`` scores N
rounds, seed + 1,000,000 x r, and reports their means and each round's paired difference from the table: one
round's identity moves by about 0.01, session 37), psi 1, spread off, through the model's upsampler;
the scores are the judge's identity top-5 (nearest of every real emoji in its features), KID (its features
against every real training emoji) and the tears: mean deep-dip pixels at 128 px (``base_stage.deep_dips``, the
hearts gate's count) and how many rows draw more than ``--tear`` px more of them than the model's table does at
the same seed (and, as ``tears_reverse``, how many rows the table draws that much more than they do).
``--guard`` also scores each share after concept_fit's guard against the table's rows, on the guard's own seeds
(never the scored ones). The row "table" is the model folder's own ``concepts.safetensors``; "projection" draws
the names through ``embed_proj``. ``--candidate TABLE`` (repeatable) scores another ``concepts.safetensors``
for the same vocabulary, a full fit's rows, by the same numbers (tears against the folder's table), and with
``--guard`` also after the guard against the table. ``--tear-weight W`` adds concept_fit's 128 px tear term to
the fit, each row held to what the table's row draws.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.concepts import read_concepts
from studio.models.format import load_model
from studio.models.holes import deep_dips
from studio.training.concept_fit import (
    ADV_WEIGHT,
    FEATURE_MATCH,
    GUARD_CLOSING,
    GUARD_SEED,
    GUARD_TEAR_SEEDS,
    HOLE_WEIGHT,
    LEARNING_RATE,
    STEPS,
    TEAR_WEIGHT,
    Z_PER_STEP,
    fit_conditions,
    guard_conditions,
    load_critic,
    tear_limits,
)
from studio.training.dataset import load_dataset
from studio.training.evaluate import kid, latents, nearest_real
from studio.training.judge import judge_features, load_judge
from studio.training.runs import bf16_if_native

ROUND = 1_000_000  # seed distance between scoring rounds


@torch.no_grad()
def draw(generator, upsampler, conditions: torch.Tensor, seeds, batch: int = 128) -> torch.Tensor:
    """128 px premultiplied RGBA drawn at each row's condition and seed (psi 1)."""
    z = latents(seeds, generator.config.z_dim, 1.0)
    out = [
        upsampler(generator.synthesize(z[i : i + batch], conditions[i : i + batch].float())).float()
        for i in range(0, len(z), batch)
    ]
    return torch.cat(out)


def scores(images, index, judge, real_feats, train_index, reference_dips=None, tear: float = 30.0) -> dict:
    """Identity top-5, KID and the tears of ``images`` (one per emoji of ``index``)."""
    feats = judge_features(judge, images)
    top5 = nearest_real(feats, real_feats)
    target = torch.from_numpy(index).long()
    dips = deep_dips(images, GUARD_CLOSING).float()
    row = {
        "identity_top5": round(float((top5 == target[:, None]).any(1).float().mean()), 4),
        "kid": round(kid(feats, real_feats[torch.from_numpy(train_index)]), 4),
        "dips": round(float(dips.mean()), 2),
    }
    if reference_dips is not None:
        row["tears"] = int((dips > reference_dips + tear).sum())
        # the count the other way: how many of the table's drawings tear beyond these (session 38: a row that
        # moves as far as a fit moves differs from the table's by a median 36 px, so a one-sided count is partly
        # difference; the two counts together tell holes from difference)
        row["tears_reverse"] = int((reference_dips > dips + tear).sum())
    return row, dips


def score_rounds(
    generator, upsampler, conditions, rounds, index, judge, real_feats, train_index, reference=None
) -> tuple[list[dict], list[torch.Tensor]]:
    """:func:`scores` of ``conditions`` drawn at each round's seeds (tears against ``reference``, a dips tensor per
    round): each round's numbers and its dips."""
    per_round, dips = [], []
    for r, seeds in enumerate(rounds):
        row, drawn_dips = scores(
            draw(generator, upsampler, conditions, seeds), index, judge, real_feats, train_index,
            None if reference is None else reference[r],
        )  # fmt: skip
        per_round.append(row)
        dips.append(drawn_dips)
    return per_round, dips


def mean_of_rounds(per_round: list[dict], table: dict | None) -> dict:
    """One row from its rounds: the mean of each number, the rounds themselves, and (beside the table's rounds)
    each round's identity and KID minus the table's at the same seeds."""
    row = {key: round(float(np.mean([r[key] for r in per_round])), 4) for key in per_round[0]}
    row["rounds"] = per_round
    if table is not None:
        row["vs_table"] = {
            key: [round(mine[key] - theirs[key], 4) for mine, theirs in zip(per_round, table["rounds"])]
            for key in ("identity_top5", "kid")
        }
    return row


def screen_inputs(model_path: str, data_path: str, judge_path: str, limit: int):
    """What a screen of the A/B's names scores with: the model, its base and upsampler (eval), the dataset, the judge,
    ``limit`` training emoji (evaluate_model's subset), their English name embeddings and those names' projections."""
    model = load_model(Path(model_path))
    generator, upsampler = model.generator.eval(), model.upsampler.eval()
    data = load_dataset(data_path)
    judge, _ = load_judge(Path(judge_path))
    rng = np.random.default_rng(0)  # evaluate_model's subset with limit
    index = np.sort(rng.choice(data.train_index, min(limit, len(data.train_index)), replace=False))
    names = torch.from_numpy(data.name_embeddings("en")[index])
    with torch.no_grad():
        start = generator.condition(names).float()
    return model, generator, upsampler, data, judge, index, names, start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resources/models/emoji")
    parser.add_argument("--data", required=True)
    parser.add_argument("--judge", required=True)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help=f"score every row on this many seed rounds (round r: seed = index + {ROUND:,} x r) and report "
        "their means and each round's difference from the table",
    )
    parser.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="score at seed = index + this (another round of the same rows)",
    )
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--z-per-step", type=int, default=Z_PER_STEP)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--discriminator", default=None)
    parser.add_argument("--adv-weight", type=float, default=ADV_WEIGHT)
    parser.add_argument("--feature-match", type=float, default=FEATURE_MATCH)
    parser.add_argument("--hole-weight", type=float, default=HOLE_WEIGHT)
    parser.add_argument(
        "--tear-weight",
        type=float,
        default=TEAR_WEIGHT,
        help="weight of the fit's 128 px tear term beyond what the table's rows draw (0: off)",
    )
    parser.add_argument("--share", type=float, action="append", default=[])
    parser.add_argument(
        "--tear", type=float, default=30.0, help="px of deep dips above the table's that count"
    )
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save", default=None, help="write the fitted rows (and their index) here (.pt)")
    parser.add_argument(
        "--load", default=None, help="score the fitted rows of an earlier --save instead of fitting"
    )
    parser.add_argument(
        "--guard",
        type=float,
        default=None,
        help="also score each share after concept_fit's guard against the table's rows (this margin, px)",
    )
    parser.add_argument("--guard-seeds", type=int, default=8)
    parser.add_argument(
        "--guard-first-seed",
        type=int,
        action="append",
        default=None,
        help=f"where the guard's seeds start (default {GUARD_SEED}); repeat it to pool seed sets",
    )
    parser.add_argument("--guard-tear", type=float, default=None, help="the guard's per-seed tear (px)")
    parser.add_argument("--guard-tear-seeds", type=int, default=GUARD_TEAR_SEEDS)
    parser.add_argument(
        "--guard-ladder",
        type=float,
        action="append",
        default=[],
        help="the guard's ladder steps (repeatable)",
    )
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="also score this concepts.safetensors (repeatable): a full fit's table for the same vocabulary",
    )
    parser.add_argument(
        "--no-projection", action="store_true", help="skip scoring the names' projections (a known row)"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more.")
    args.bf16 = bf16_if_native(args.bf16)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    model, generator, upsampler, data, judge, index, names, start = screen_inputs(
        args.model, args.data, args.judge, args.limit
    )
    rounds = [[int(i) + args.seed_offset + ROUND * r for i in index] for r in range(args.rounds)]
    real128 = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    real_feats = judge_features(judge, real128)
    table = read_concepts(Path(args.model) / "concepts.safetensors").conditions
    table_rows = torch.from_numpy(table[index])
    report: dict = {"args": vars(args), "rows": {}}

    def score_all(label: str, conditions: torch.Tensor, reference=None, extra: dict | None = None) -> list:
        """``conditions`` scored on every round (tears against ``reference``, the table's dips per round), stored
        and printed with ``extra``; with several rounds, the means, each round's numbers and each round's
        difference from the table's (paired: the same emoji and seeds). Returns the dips per round."""
        per_round, dips = score_rounds(
            generator, upsampler, conditions, rounds, index, judge, real_feats, data.train_index, reference
        )
        row = per_round[0] if len(rounds) == 1 else mean_of_rounds(per_round, report["rows"].get("table"))
        row.update(extra or {})
        report["rows"][label] = row
        print(label, json.dumps(row), flush=True)
        return dips

    table_dips = score_all("table", table_rows)
    if not args.no_projection:
        score_all("projection", start, table_dips)
    first_seeds = tuple(args.guard_first_seed or (GUARD_SEED,))

    def score_rows(label: str, conditions: torch.Tensor) -> None:
        """Score ``conditions`` (one per screened emoji), and with --guard again after the guard against the table."""
        score_all(label, conditions, table_dips)
        if args.guard is None:
            return
        guarded, guard_report = guard_conditions(
            generator, upsampler, table_rows, conditions, args.guard, args.guard_seeds, first_seeds,
            tear=args.guard_tear, tear_seeds=args.guard_tear_seeds, ladder=tuple(args.guard_ladder),
        )  # fmt: skip
        counts = {key: guard_report[key] for key in ("reverted", "ladder") if key in guard_report}
        score_all(f"{label} guarded", guarded, table_dips, counts)

    for path in args.candidate:
        other = read_concepts(Path(path)).conditions
        if other.shape != table.shape:
            parser.error(f"'{path}' is not a concept table for this model's vocabulary.")
        score_rows(path, torch.from_numpy(other[index]))
    if args.share and args.load:
        saved = torch.load(args.load, weights_only=True)
        if not torch.equal(saved["index"], torch.from_numpy(index)):
            parser.error(f"'{args.load}' holds the rows of another subset.")
        fitted = saved["fitted"]
    elif args.share:
        critic = None if args.discriminator is None else load_critic(Path(args.discriminator), names.shape[1])
        images = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[index]))

        def progress(step: int, loss: float) -> None:
            if step % 10 == 0 or step == args.steps - 1:
                print(
                    json.dumps(
                        {"step": step, "l1": round(loss, 4), "min": round((time.time() - started) / 60, 1)}
                    ),
                    flush=True,
                )

        limits = tear_limits(generator, upsampler, table_rows) if args.tear_weight else None
        fitted, losses = fit_conditions(
            generator, images, start, args.steps, args.lr, args.z_per_step, args.seed, args.bf16, progress,
            critic, names, args.adv_weight, args.feature_match, args.hole_weight,
            upsampler=upsampler, tear_weight=args.tear_weight, tear_limit=limits,
        )  # fmt: skip
        report["l1_first"], report["l1_last"] = round(losses[0], 4), round(losses[-1], 4)
        if args.save:
            torch.save({"index": torch.from_numpy(index), "start": start, "fitted": fitted}, args.save)
    for share in args.share:
        score_rows(f"share {share:g}", start + share * (fitted - start))
    report["minutes"] = round((time.time() - started) / 60, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
