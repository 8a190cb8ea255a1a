"""The ship rules' first gate (rules 25-31 of the model card): holes and notches in the hearts as the studio draws
them. For each base generator, per prompt and seed, the 128 px pixels whose alpha lies more than 0.5 below its
7 px closing (``deep_dips``), with spread on unless ``--no-spread``; ``--bicubic`` also counts them on the 32 px base
upscaled by plain bicubic (dips the base draws, whatever the upsampler does); ``--grid`` writes every prompt x
arm on grey 240 and dark grey 64, where a hole shows dark.

    python scripts/heart_check.py --arm v4=resources/models/emoji/generator.safetensors \
        --arm c25=runs/v15/c25/snapshots/g_ema_0005000.safetensors --bicubic --grid runs/check.png

The gate's number is ``hearts``: the sum over the eleven heart wordings and seeds 0-5 (v4: 4,935). The other five
prompts are drawn in the grid (faces, objects) and counted, but not summed. An arm is ``name=weights`` as in
``scripts/hole_report.py``; the upsampler, vocabulary and prompt encoder are ``--model``'s (a model-folder arm
spreads through its own vocabulary).
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hole_report import load_base
from PIL import Image, ImageDraw

from studio.engine.spread import Spreader
from studio.models.format import load_model, read_model_info
from studio.models.holes import deep_dips
from studio.models.text import get_text_encoder
from studio.models.vocabulary import load_vocabulary
from studio.training.evaluate import SpreadGenerator, composite, generate

HEARTS = (
    "heart",
    "a heart",
    "hearts",
    "love",
    "Herz",
    "心",
    "corazón",
    "big heart",
    "heart emoji",
    "a red heart",
    "red heart",
)
OTHERS = ("grinning face", "smiling face with sunglasses", "pizza", "rocket", "a dog wearing a party hat")
CLOSING = 7  # px at 128 px
GREYS = (240, 64)


def render(
    generator, upsampler, embedding: torch.Tensor, seeds: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 32 px base output and the 128 px pictures the engine shows for one prompt's seeds (the upsampled base, or
    with a concept table's second rows their filled pictures: studio/training/evaluate.py ``ConceptGenerator``)."""
    with torch.inference_mode():
        rows = embedding.expand(len(seeds), -1)
        return generate(generator, None, rows, seeds, 1.0, upsample=False), generate(
            generator, upsampler, rows, seeds, 1.0
        )


def label(prompt: str) -> str:
    """The prompt in the letters Pillow's default font has: accents dropped, anything else escaped."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", prompt) if not unicodedata.combining(c))
    return plain.encode("ascii", "backslashreplace").decode()


def write_grid(path: Path, prompts: list[str], pictures: dict[str, list[torch.Tensor]]) -> None:
    """One row per prompt and arm: the seeds on grey 240, then the same on dark grey 64."""
    label_w, tile = 150, 128
    seeds = next(iter(pictures.values()))[0].shape[0]
    width = seeds * tile
    canvas = Image.new(
        "RGB", (label_w + len(GREYS) * (width + 16), 20 + tile * len(prompts) * len(pictures)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for j, grey in enumerate(GREYS):
        draw.text((label_w + j * (width + 16) + 4, 4), f"on grey {grey}", fill=(0, 0, 0))
    y = 20
    for k, prompt in enumerate(prompts):
        for name, rows in pictures.items():
            for j, grey in enumerate(GREYS):
                row = np.concatenate(list(composite(rows[k], background=grey)), axis=1)
                canvas.paste(Image.fromarray(row), (label_w + j * (width + 16), y))
            draw.text((4, y + tile // 2 - 12), f"{label(prompt)}\n{name}", fill=(40, 40, 40))
            y += tile
    canvas.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arm", action="append", required=True, help="name=weights")
    parser.add_argument("--model", default="resources/models/emoji", help="upsampler, vocabulary and encoder")
    parser.add_argument("--seeds", type=int, default=6, help="how many seeds (from --first-seed)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (the gate's are 0-5)")
    parser.add_argument("--no-spread", action="store_true", help="draw without spread")
    parser.add_argument("--bicubic", action="store_true", help="also count on the base upscaled by bicubic")
    parser.add_argument("--grid", default=None, help="PNG of every prompt x arm on two greys")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(Path(args.model))
    upsampler = model.upsampler.eval()
    encoder = get_text_encoder(model.info.conditioning.encoder, disk_cache=False)
    spreader = None if args.no_spread else Spreader(load_vocabulary(model.info))
    prompts = list(HEARTS + OTHERS)
    embeddings = torch.from_numpy(np.asarray(encoder.encode(prompts), np.float32))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    report = {"seeds": seeds, "spread": spreader is not None, "closing_px": CLOSING, "arms": {}}
    pictures: dict[str, list[torch.Tensor]] = {}
    for name, path in (a.split("=", 1) for a in args.arm):
        generator = load_base(Path(path))
        if spreader is not None:  # a model folder spreads through its own vocabulary (its wording directions)
            own = Path(path) / "model.json"
            arm_spreader = (
                Spreader(load_vocabulary(read_model_info(Path(path)))) if own.is_file() else spreader
            )
            generator = SpreadGenerator(generator, arm_spreader)
        counts, bicubic, pictures[name] = {}, {}, []
        for k, prompt in enumerate(prompts):
            small, big = render(generator, upsampler, embeddings[k : k + 1], seeds)
            counts[prompt] = deep_dips(big, CLOSING).tolist()
            if args.bicubic:
                plain = F.interpolate(small, size=big.shape[-2:], mode="bicubic", align_corners=False)
                bicubic[prompt] = deep_dips(plain, CLOSING).tolist()
            if args.grid:
                pictures[name].append(big)
        arm = {"weights": path, "hearts": sum(sum(counts[p]) for p in HEARTS), "per_prompt": counts}
        if args.bicubic:
            arm["hearts_bicubic"] = sum(sum(bicubic[p]) for p in HEARTS)
            arm["per_prompt_bicubic"] = bicubic
        report["arms"][name] = arm
        extra = f", bicubic {arm['hearts_bicubic']}" if args.bicubic else ""
        print(f"{name}: hearts {arm['hearts']}{extra}", flush=True)
        for prompt in prompts:
            print(f"  {prompt:30s} {counts[prompt]}", flush=True)
    if args.grid:
        write_grid(Path(args.grid), prompts, pictures)
        print("wrote", args.grid)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
