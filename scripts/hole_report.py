"""How much of each base generator's 32 px alpha is a small hole or notch, per prompt, beside the real emoji
of that caption: the measure the trainer's ``--hole-weight`` term uses (``alpha_holes``: alpha more than
``HOLE_DEPTH`` below its ``HOLE_SIZE`` px closing).

    python scripts/hole_report.py --data data/emoji-usem3-kw \
        --arm v4=resources/models/emoji/generator.safetensors --arm r5=runs/v11/r5/snapshots/g_ema_0005000.safetensors \
        --json docs/bench/holes.json

An arm is ``name=weights`` with a ``config.json`` beside it, or a model folder's ``generator.safetensors``
(its ``model.json`` gives the shape). The "real" and "real_max" columns are the mean and the largest share among
the training emoji captioned by the prompt's exact text (the term's target is the largest; empty when no caption
has the text).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.format import load_model
from studio.models.text import get_text_encoder
from studio.training.base_stage import alpha_holes
from studio.training.dataset import load_dataset
from studio.training.evaluate import generate
from studio.training.options import HOLE_DEPTH, HOLE_SIZE

PROMPTS = ("heart", "red heart", "love", "face", "grinning face", "cat", "star", "flag")


def load_base(path: Path):
    """A base generator from a snapshot (``config.json`` beside it), a model folder's weights
    (``FOLDER/generator.safetensors``: the weights alone) or a model folder (drawn as the studio draws it,
    through its concept table)."""
    if (path / "model.json").is_file():
        from studio.training.evaluate import drawn_generator

        return drawn_generator(load_model(path)).eval()
    if (path.parent / "config.json").exists():
        from ab_report import load_snapshot

        return load_snapshot(path)
    return load_model(path.parent).generator.eval()


def real_shares(data, images: torch.Tensor, prompt: str) -> tuple[float | None, float | None]:
    rows = np.flatnonzero(np.char.lower(np.asarray(data.captions).astype(str)) == prompt.lower())
    owners = np.unique(data.caption_owner[rows])
    owners = owners[~data.heldout[owners]]
    if not len(owners):
        return None, None
    shares = alpha_holes(images[torch.from_numpy(owners)])
    return float(shares.mean()), float(shares.max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--arm", action="append", required=True, help="name=weights")
    parser.add_argument("--prompt", action="append", help="prompts (default: a fixed eight)")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    encoder = get_text_encoder(data.manifest["encoder"], disk_cache=False)
    images = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32))
    prompts = args.prompt or list(PROMPTS)
    seeds = list(range(args.seeds))
    emb = torch.from_numpy(np.asarray(encoder.encode(prompts), np.float32))
    report = {
        "seeds": args.seeds,
        "measure": f"mean alpha more than {HOLE_DEPTH} below its {HOLE_SIZE} px closing, 32 px base",
        "prompts": {},
    }
    arms = {name: load_base(Path(path)) for name, path in (a.split("=", 1) for a in args.arm)}
    for i, prompt in enumerate(prompts):
        mean, most = real_shares(data, images, prompt)
        row = {"real": mean, "real_max": most}
        for name, generator in arms.items():
            with torch.no_grad():
                x = generate(generator, None, emb[[i] * len(seeds)], seeds, 1.0, upsample=False)
            row[name] = float(alpha_holes(x).mean())
        report["prompts"][prompt] = row
        cells = " | ".join(f"{k} {'-' if v is None else f'{v:.4f}'}" for k, v in row.items())
        print(f"{prompt:16s} {cells}", flush=True)
    report["arms"] = dict(a.split("=", 1) for a in args.arm)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
