"""Paired GAN-test of arms against a baseline: the same emoji, prompts and latents for every generator.

    python scripts/paired_report.py --data data/emoji-usem3-kw --judge runs/judge2f.safetensors \
        --base v3=runs/ab/x-names/snapshots/g_ema_0069619.safetensors --arm soup50=runs/v6/soup/g.safetensors \
        --rounds 4-9 --language zh --language de --limit 600 --psi 1.0 --json runs/v6/confirm.json

For every language (English first) and both emoji sets (held-out; training, the ``--limit`` subset that
``gan-studio evaluate`` and ``scripts/ab_report.py`` draw), each arm's hits minus the baseline's, with a 95%
bootstrap interval over emoji (:func:`studio.training.evaluate.paired_difference`): GAN-test (subgroup) hits,
and on the same pictures identity top-5 hits (the emoji itself among the 5 real emoji nearest in judge
features; printed as ``heldout_identity`` / ``train_identity``). Pairing removes the difference in difficulty
between emoji and seeds, which is most of the noise in comparing two scores taken apart; seed rounds that no
earlier evaluation drew make it a fresh test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.format import load_model
from studio.training.dataset import load_dataset
from studio.training.evaluate import SpreadGenerator, VariedGenerator, judge_hits, paired_difference
from studio.training.judge import judge_features, load_judge


def parse_rounds(text: str) -> list[int]:
    """``4-9`` or ``4,5,6``: seed rounds (seed = emoji index + 100000 x round)."""
    if "-" in text:
        first, last = (int(x) for x in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(x) for x in text.split(",")]


def emoji_sets(data, language: str, limit: int | None) -> dict[str, np.ndarray]:
    """Held-out emoji with a name in ``language``, and the training subset ``evaluate_model`` scores."""
    train = data.named_index(language)
    if limit is not None and limit < len(train):
        train = np.sort(np.random.default_rng(0).choice(train, limit, replace=False))
    return {"heldout": data.named_index(language, heldout=True), "train": train}


def load_arm(path: str):
    """``snapshot``, ``snapshot@V`` (the generator as the engine renders it at variety V), ``snapshot*S`` (at
    prompt strength S) or ``snapshot+spread`` (with spread on, matching against the shipped model's
    vocabulary)."""
    from ab_report import load_snapshot

    path, spread, _ = path.partition("+spread")
    path, _, strength = path.partition("*")
    snapshot, _, variety = path.partition("@")
    generator = load_snapshot(Path(snapshot))
    if strength:
        return VariedGenerator(generator, float(variety or 0.0), float(strength))
    if spread:
        from studio.engine.spread import Spreader
        from studio.models.vocabulary import load_vocabulary

        vocabulary = load_vocabulary(load_model(Path("resources/models/emoji")).info)
        return SpreadGenerator(generator, Spreader(vocabulary))
    return VariedGenerator(generator, float(variety)) if variety else generator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--judge", required=True)
    parser.add_argument("--base", required=True, help="name=snapshot of the baseline")
    parser.add_argument(
        "--arm",
        action="append",
        required=True,
        help="name=snapshot, name=snapshot@VARIETY, name=snapshot*STRENGTH or name=snapshot+spread (repeat)",
    )
    parser.add_argument("--upsampler", default="resources/models/emoji")
    parser.add_argument("--rounds", default="4-9", help="seed rounds, e.g. 4-9 or 4,5")
    parser.add_argument("--language", action="append", default=[], help="more CLDR languages than English")
    parser.add_argument(
        "--no-english", action="store_true", help="score only the --language languages (e.g. to split a run)"
    )
    parser.add_argument("--limit", type=int, default=600, help="training emoji (the subset evaluate draws)")
    parser.add_argument("--psi", type=float, default=1.0)
    parser.add_argument("--sets", default="heldout,train", help="emoji sets to score: heldout, train or both")
    parser.add_argument("--level", type=float, default=0.95, help="the bootstrap interval's coverage")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    upsampler = load_model(Path(args.upsampler)).upsampler.eval()
    judge, judge_info = load_judge(Path(args.judge))
    rounds = parse_rounds(args.rounds)
    specs = [args.base, *args.arm]
    generators = {name: load_arm(path) for name, path in (s.split("=", 1) for s in specs)}
    base_name = args.base.split("=", 1)[0]
    report: dict = {
        "data": args.data,
        "judge": judge_info,
        "psi": args.psi,
        "rounds": rounds,
        "level": args.level,
        "base": args.base,
        "arms": args.arm,
        "results": {},
    }
    started = time.time()
    real_features = judge_features(judge, rgba_uint8_to_premultiplied(torch.from_numpy(data.images128)))
    for language in ([] if args.no_english else ["en"]) + args.language:
        for set_name, index in emoji_sets(data, language, args.limit).items():
            if set_name not in args.sets.split(","):
                continue
            hits = {
                name: judge_hits(g, upsampler, data, judge, args.psi, index, rounds, language, real_features)
                for name, g in generators.items()
            }
            for name in generators:
                if name == base_name:
                    continue
                for metric, suffix in (("gan_test", ""), ("identity", "_identity")):
                    row = paired_difference(hits[base_name][metric], hits[name][metric], level=args.level)
                    row["ratio"] = row["b"] / row["a"] if row["a"] > 0 else None
                    report["results"].setdefault(name, {})[f"{language}_{set_name}{suffix}"] = row
                    print(name, language, set_name + suffix, json.dumps(row), flush=True)
    report["seconds"] = round(time.time() - started, 1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
