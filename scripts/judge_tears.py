"""Which judge's KID sees a torn drawing? A test of the judges on pictures no candidate drew (session 50, issue #11).

    python scripts/judge_tears.py --rounds 170,180 --json runs/v50/judge_tears.json --grid runs/v50/tears.png

The shipped model's own pictures of every training emoji (its English name at seed = index + 100,000 x round, as
``scripts/rows_verify.py`` draws them; only seen rounds) are scored by KID against the real training emoji under
each judge, as they are and with tears cut into them at a known dose: a share of the pictures gets ``--cuts`` strips
(3 px wide, 16-40 px long at 128 px, any angle) or round holes (4-7 px across), each centred on a solid pixel and
made fully transparent, as the second rows' tears look in the ship rules' grids. A positive control blurs every
picture (a 5 px box at 128 px). A judge whose KID is to bar a model's tears must rise with the dose; the script
prints each judge's KID per round and dose, and the change from the untouched pictures in units of that judge's
round-to-round spread (the standard deviation of the untouched KID over the rounds given), with the pictures' deep
dips and interior detail (``detail_summary``) for scale.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.format import load_model
from studio.models.holes import TEAR_CLOSING, deep_dips
from studio.training.dataset import load_dataset
from studio.training.evaluate import detail_summary, drawn_generator, kid, round_pictures
from studio.training.judge import judge_features, load_judge

SIZE = 128


def cut(pictures: torch.Tensor, share: float, cuts: int, kind: str, seed: int) -> torch.Tensor:
    """``pictures`` (premultiplied RGBA in [-1, 1], N x 4 x 128 x 128) with ``cuts`` tears of ``kind`` ("strip" or
    "hole") in a random ``share`` of them, each centred on a pixel whose alpha is above 0.9 and made transparent."""
    rng = np.random.default_rng(seed)
    out = pictures.clone()
    torn = np.flatnonzero(rng.random(len(pictures)) < share)
    yy, xx = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij"
    )
    for j in torn.tolist():
        solid = torch.nonzero(pictures[j, 3] > 0.8)  # alpha above 0.9
        if len(solid) == 0:
            continue
        mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        for _ in range(cuts):
            cy, cx = solid[rng.integers(len(solid))].tolist()
            if kind == "strip":
                angle, half = rng.uniform(0, np.pi), rng.uniform(8, 20)
                dy, dx = np.sin(angle), np.cos(angle)
                along = ((yy - cy) * dy + (xx - cx) * dx).clamp(-half, half)
                dist = torch.hypot(yy - cy - along * dy, xx - cx - along * dx)
                mask |= dist <= 1.5
            else:
                mask |= torch.hypot(yy - cy, xx - cx) <= rng.uniform(2.0, 3.5)
        out[j, :, mask] = -1.0
    return out


def blur(pictures: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.pad(pictures, (2, 2, 2, 2), mode="replicate"), 5, stride=1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resources/models/emoji")
    parser.add_argument("--rounds", default="170,180", help="comma-separated seen seed rounds")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--judge", action="append", default=[], help="name=judge.safetensors (repeatable)")
    parser.add_argument("--shares", default="0.1,0.3,1.0")
    parser.add_argument("--cuts", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--grid", default=None, help="a PNG of 8 pictures untouched and cut (strips, holes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    rounds = [int(r) for r in args.rounds.split(",")]
    shares = [float(s) for s in args.shares.split(",")]
    judge_paths = dict(j.split("=", 1) for j in args.judge) or {
        "judge-5500": "benchmarks/judge/judge-5500.safetensors",
        "shipped": str(Path(args.model) / "judge.safetensors"),
    }
    data = load_dataset(args.data)
    judges = {name: load_judge(path)[0] for name, path in judge_paths.items()}
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128[data.train_index]))
    reals = {name: judge_features(judge, real) for name, judge in judges.items()}
    model = load_model(Path(args.model))
    drawn = drawn_generator(model)
    report: dict = {
        "model": args.model,
        "rounds": rounds,
        "judges": judge_paths,
        "cuts": args.cuts,
        "kid": {},
    }
    for r in rounds:
        pictures, _ = round_pictures(drawn, model.upsampler, data, 1.0, data.train_index, [r])
        variants = {"untouched": pictures, "blur (control)": blur(pictures)}
        for kind in ("strip", "hole"):
            for share in shares:
                variants[f"{kind} x{args.cuts}, share {share}"] = cut(
                    pictures, share, args.cuts, kind, seed=r
                )
        for variant, images in variants.items():
            row = report["kid"].setdefault(variant, {})
            dips = deep_dips(images, TEAR_CLOSING).float().mean()
            row.setdefault("deep dips (px a picture)", []).append(round(float(dips), 1))
            row.setdefault("interior detail", []).append(detail_summary(images)["interior_detail"])
            for name, judge in judges.items():
                value = kid(judge_features(judge, images), reals[name])
                row.setdefault(name, []).append(round(value, 5))
            print(r, variant, json.dumps(row), flush=True)
        if args.grid and r == rounds[0]:
            from PIL import Image

            from studio.training.evaluate import composite

            few = pictures[list(range(0, len(pictures), len(pictures) // 8))[:8]]
            shown = (few, cut(few, 1.0, args.cuts, "strip", 1), cut(few, 1.0, args.cuts, "hole", 1))
            rows = [np.concatenate(list(composite(v, 64)), 1) for v in shown]
            Image.fromarray(np.concatenate(rows, 0)).save(args.grid, optimize=True)
    spread = {name: float(np.std(report["kid"]["untouched"][name], ddof=1)) for name in judges}
    report["round_spread"] = {name: round(s, 5) for name, s in spread.items()}
    report["change_in_spreads"] = {
        variant: {
            name: round(
                float(np.mean(row[name]) - np.mean(report["kid"]["untouched"][name])) / spread[name], 1
            )
            for name in judges
        }
        for variant, row in report["kid"].items()
    }
    report["minutes"] = round((time.time() - started) / 60, 1)
    print(json.dumps(report["change_in_spreads"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
