"""Layered concept rows against one condition per row (session 53's probe; docs/model_history.md, *After v13,
session 53*): on the A/B's 600 training names, v6's fit recipe at share 1 (L1 + 0.618 x critic-v4's feature
matching, no -D, 100 steps, bf16 where native) fitted twice from the names' projections, once as one condition per
row and once layered (one condition per place of the base that reads it, ``concept_fit.layered``; ``--start table``:
both from the shipped table's rows instead), then both put
back to the shipped table's rows by v6's guard (margin 8 px, 8 seeds, a tear of 30 px on 2 seeds); every row
scored as ``scripts/concept_screen.py`` scores them (identity top-5 and KID under the judge given, deep dips at
128 px and the rows that tear beyond the table's at the same seed) on two rounds, seed = index + 5M and + 6M.

    python scripts/layered_probe.py --data data/emoji-usem3-kw --judge benchmarks/judge/judge-5500.safetensors \
        --discriminator benchmarks/critic/critic-v4.safetensors --json runs/v53/layered_probe.json

About 30 minutes on one core of an AMD EPYC beside other work (the layered fit costs what the plain one does).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from concept_screen import score_rounds, screen_inputs

from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.concepts import read_concepts
from studio.training.concept_fit import (
    fit_conditions,
    guard_conditions,
    layered,
    load_critic,
)
from studio.training.judge import judge_features
from studio.training.runs import bf16_if_native

ROUNDS = (5_000_000, 6_000_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resources/models/emoji")
    parser.add_argument("--data", required=True)
    parser.add_argument("--judge", required=True)
    parser.add_argument("--discriminator", required=True)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--feature-match", type=float, default=0.618)
    parser.add_argument(
        "--start",
        choices=("projection", "table"),
        default="projection",
        help="where the fits start: the names' projections (v6's fit), or the shipped table's rows",
    )
    parser.add_argument(
        "--arm", action="append", choices=("one", "layered"), default=None, help="fit only these (repeatable)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    model, generator, upsampler, data, judge, index, names, start = screen_inputs(
        args.model, args.data, args.judge, args.limit
    )
    rounds = [[int(i) + offset for i in index] for offset in ROUNDS]
    real_feats = judge_features(judge, rgba_uint8_to_premultiplied(torch.from_numpy(data.images128)))
    table = torch.from_numpy(read_concepts(Path(args.model) / "concepts.safetensors").conditions[index])
    images = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[index]))
    critic = load_critic(Path(args.discriminator), names.shape[1])
    report: dict = {"args": vars(args), "rounds": list(ROUNDS), "rows": {}}

    def score(label: str, rows: torch.Tensor, reference=None, extra: dict | None = None) -> list:
        per_round, dips = score_rounds(
            generator, upsampler, rows, rounds, index, judge, real_feats, data.train_index, reference
        )
        mean = {key: round(float(np.mean([r[key] for r in per_round])), 4) for key in per_round[0]}
        report["rows"][label] = {**mean, **(extra or {}), "per_round": per_round}
        print(label, json.dumps(report["rows"][label]), f"{(time.time() - started) / 60:.1f} min", flush=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        return dips

    table_dips = score("table", table)
    places = generator.places
    origin = table if args.start == "table" else start
    arms = {
        "one": ("fit one", origin, table),
        "layered": ("fit layered", layered(origin, places), layered(table, places)),
    }
    for label, begin, back in (arms[arm] for arm in args.arm or ("one", "layered")):
        label += " from the table" if args.start == "table" else ""
        fitted, losses = fit_conditions(
            generator, images, begin, args.steps, seed=1234, bf16=bf16_if_native(True), discriminator=critic,
            names=names, adv_weight=0.0, feature_match=args.feature_match,
        )  # fmt: skip
        score(label, fitted, table_dips, {"l1_first_last": [round(losses[0], 4), round(losses[-1], 4)]})
        guarded, guard = guard_conditions(generator, upsampler, back, fitted, 8.0, 8, tear=30.0)
        score(f"{label} guarded", guarded, table_dips, {"reverted": guard["reverted"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
