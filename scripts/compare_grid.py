"""Two or more model folders side by side, drawn as the studio draws them (spread on, exact renders composited on
grey 240), one row per prompt: the picture a model card puts beside a ship decision.

    python scripts/compare_grid.py --model v5=runs/v5-model --model v6=resources/models/emoji \
        --out docs/v6_ab_samples.png [--seeds 4] [--first-seed 0] [--prompt "red heart" ...] [--no-spread]

Prompts default to the card's usual set: faces, animals, a heart, food, the two prompts it has never drawn
recognisably, and names in German, Chinese and Spanish. Training and documentation only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from studio.io.export import flatten
from studio.training.evaluate import BACKGROUND  # the grey every sample grid is composited on

PROMPTS = (
    ("grinning face", ""),
    ("smiling face with sunglasses", ""),
    ("face with tears of joy", ""),
    ("cat face", ""),
    ("dog face", ""),
    ("red heart", ""),
    ("pizza", ""),
    ("rocket", ""),
    ("flag: Japan", ""),
    ("Herz", ""),
    ("猫", "cat"),
    ("perro", "dog"),
)
FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",  # CJK labels
)
TILE, LABEL_WIDTH, HEADER, GAP = 96, 190, 24, 16


def _font(text: str) -> ImageFont.ImageFont:
    for file in FONT_FILES if text.isascii() else FONT_FILES[::-1]:
        if Path(file).is_file():
            return ImageFont.truetype(file, 13)
    return ImageFont.load_default()


def _on_grey(rgba: np.ndarray) -> Image.Image:
    grey = (BACKGROUND,) * 3
    return flatten(Image.fromarray(rgba, "RGBA"), grey).resize((TILE, TILE), Image.Resampling.LANCZOS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="LABEL=FOLDER (or a model name)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=4, help="seeds per prompt, from --first-seed")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (a look on unseen seeds)")
    parser.add_argument("--prompt", action="append", default=[], help="replaces the default prompts")
    parser.add_argument("--no-spread", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if len(args.model) < 2 or any("=" not in spec for spec in args.model):
        parser.error("give two or more --model LABEL=FOLDER")

    from studio.engine.devices import set_threads
    from studio.engine.engine import Engine
    from studio.engine.requests import GenerationRequest
    from studio.errors import ModelError

    set_threads(args.threads)
    prompts = [(prompt, "") for prompt in args.prompt] or list(PROMPTS)
    blocks = []
    for spec in args.model:
        label, model = spec.split("=", 1)
        engine = Engine(Path(model) if Path(model).is_dir() else model, device="cpu")
        try:
            try:
                info = engine.wait_ready()
            except ModelError as exc:
                raise SystemExit(f"{label}: {exc}") from None
            rows = []
            for prompt, _ in prompts:
                request = GenerationRequest(
                    prompt,
                    seed=args.first_seed,
                    count=args.seeds,
                    truncation=info.default_truncation,
                    model=info.model_name,
                    spread=not args.no_spread,
                )
                results = list(engine.generate_sync(request))
                errors = [r.error for r in results if not r.ok]
                if errors:
                    raise SystemExit(f"{label}: {prompt!r}: {errors[0]}")
                rows.append([_on_grey(r.image) for r in results])
        finally:
            engine.close()
        blocks.append((label, rows))

    block_width = args.seeds * TILE
    width = LABEL_WIDTH + len(blocks) * block_width + (len(blocks) - 1) * GAP
    canvas = Image.new("RGB", (width, HEADER + len(prompts) * TILE), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    spread = "spread off" if args.no_spread else "spread on"
    for b, (label, rows) in enumerate(blocks):
        left = LABEL_WIDTH + b * (block_width + GAP)
        title = f"{label} (seeds {args.first_seed}-{args.first_seed + args.seeds - 1}, {spread})"
        draw.text((left + 4, 4), title, fill=(30, 30, 30), font=_font(title))
        for r, tiles in enumerate(rows):
            for s, tile in enumerate(tiles):
                canvas.paste(tile, (left + s * TILE, HEADER + r * TILE))
    for r, (prompt, gloss) in enumerate(prompts):
        x, y = 6, HEADER + r * TILE + TILE // 2 - 8
        draw.text((x, y), prompt, fill=(30, 30, 30), font=_font(prompt))
        if gloss:  # in the Latin font: the CJK one has no Latin glyphs
            x += int(draw.textlength(prompt + " ", font=_font(prompt)))
            draw.text((x, y), f"({gloss})", fill=(30, 30, 30), font=_font(gloss))
    canvas.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
