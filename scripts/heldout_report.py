"""Where a model's held-out GAN-test comes from: its hits on the held-out emoji, by emoji group and subgroup, and how
far the number could move with another split (a bootstrap over held-out bases, since the split holds out whole bases:
an emoji with its five skin tones, or a family's twenty). Prints JSON.

    python scripts/heldout_report.py --model runs/v76/v24 --judge benchmarks/judge/judge-5500.safetensors --rounds 0-3

Rounds are ``evaluate``'s seed rounds (seed = index + 100000 * round): round 0 is the one ``gan-studio evaluate`` and the
A/B score, so ``--rounds 0`` gives the A/B's held-out number to the digit.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def breakdown(
    hits: np.ndarray,
    index: np.ndarray,
    labels: dict[str, np.ndarray],
    names: dict[str, list[str]],
    base: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """``hits`` (rounds x emoji) for the held-out emoji ``index``: the mean, its bootstrap interval over the bases (a
    base's emoji resampled together), the bases by how many emoji each holds, and for each labelling in ``labels``
    (an int per dataset emoji, named by ``names``) the emoji, hits and mean of every label, most emoji first."""
    hits = np.asarray(hits, dtype=np.float64)
    index = np.asarray(index, dtype=np.int64)
    if hits.ndim != 2 or hits.shape[1] != len(index) or len(index) == 0:
        raise ValueError("The hits must be rounds x held-out emoji, with at least one emoji.")
    per_emoji = hits.mean(axis=0)
    families: dict[int, list[int]] = defaultdict(list)
    for column, emoji in enumerate(index):
        families[int(base[emoji])].append(column)
    members = list(families.values())
    sums = np.array([per_emoji[m].sum() for m in members])
    counts = np.array([len(m) for m in members], dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(members), size=(resamples, len(members)))
    boot = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    sizes: dict[int, int] = defaultdict(int)
    for m in members:
        sizes[len(m)] += 1
    report = {
        "emoji": int(len(index)),
        "rounds": int(hits.shape[0]),
        "mean": round(float(per_emoji.mean()), 4),
        "bases": len(members),
        "bases_by_size": {str(k): v for k, v in sorted(sizes.items())},
        "bootstrap_over_bases": {
            "sd": round(float(boot.std()), 4),
            "interval_95": [round(float(q), 4) for q in np.quantile(boot, [0.025, 0.975])],
            "resamples": resamples,
        },
    }
    for kind, label in labels.items():
        rows = defaultdict(list)
        for column, emoji in enumerate(index):
            rows[names[kind][int(label[emoji])]].append(per_emoji[column])
        ordered = sorted(rows.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        report[kind] = {
            key: {
                "emoji": len(v),
                "hits": round(float(np.sum(v)) * hits.shape[0]),
                "mean": round(float(np.mean(v)), 4),
            }
            for key, v in ordered
        }
    return report


def parse_rounds(text: str) -> list[int]:
    """``"0-3"`` -> [0, 1, 2, 3]; ``"0,5"`` -> [0, 5]."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    if not out:
        raise ValueError("Give at least one round.")
    return out


def main() -> int:
    import torch

    from studio.models.format import load_model
    from studio.training.dataset import load_dataset
    from studio.training.evaluate import drawn_generator, gan_test_hits
    from studio.training.judge import load_judge

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a model folder (drawn as the studio draws it)")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--judge", default="benchmarks/judge/judge-5500.safetensors")
    parser.add_argument("--rounds", default="0", help="seed rounds, e.g. 0-3")
    parser.add_argument("--language", default="en")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    model = load_model(Path(args.model))
    judge, _ = load_judge(Path(args.judge))
    index = data.named_index(args.language, heldout=True)
    hits = gan_test_hits(
        drawn_generator(model).eval(), model.upsampler.eval(), data, judge.eval(), 1.0, index,
        parse_rounds(args.rounds), args.language,
    )  # fmt: skip
    report = breakdown(
        hits, index, {"group": data.group, "subgroup": data.subgroup},
        {"group": data.groups, "subgroup": data.subgroups}, data.base,
    )  # fmt: skip
    report = {"model": args.model, "judge": args.judge, "language": args.language} | report
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
