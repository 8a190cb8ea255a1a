"""Every name whose concept row a candidate changes, drawn beside the base's: a ship rule's look at all its rows.

    python scripts/rows_look_all.py --base runs/v75/v23 --arm runs/v75/K4 --rounds 3000,3005 --out runs/v75/all_K4

The looks of ``rows_verify.py --look`` show 24 pictures a grid, picked by holes and detail; a row that draws another
thing altogether (v23's "child: medium-light skin tone", a textured disc where v22 drew the child's face, which both
judges put nearer the real emoji) is picked by neither. This draws every changed name, prompted by its English name
at seed = index + 100,000 x ROUND for each round, as the rules' rounds do: one row a name, real | base | arm for each
round, 64 px on grey 240, 36 names a page in three columns (``OUT_0.png``, ``OUT_1.png``, …) and the names in page
order (``OUT_names.json``), so the pages can be counted before the names are read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TILE = 64
PER_COLUMN = 12
COLUMNS = 3
GAP = 8  # grey between a page's columns
GAP_GREY = 128


def changed_names(base_table: Path, arm_table: Path) -> list[int]:
    """Indices of the names whose row the arm's table changes against the base's, in name order: a layered row
    gained, lost (the arm draws the plain row) or changed (``studio.models.concepts.changed_concepts``)."""
    from studio.models.concepts import changed_concepts, read_concepts

    return changed_concepts(read_concepts(base_table), read_concepts(arm_table)).tolist()


def pages(rows: list[np.ndarray]) -> list[np.ndarray]:
    """Rows of tiles (each TILE tall, all one width) laid out PER_COLUMN x COLUMNS a page, top to bottom then left to
    right; the last page filled with white rows."""
    if not rows:
        return []
    per_page = PER_COLUMN * COLUMNS
    blank = np.full_like(rows[0], 255)
    out = []
    for start in range(0, len(rows), per_page):
        chunk = rows[start : start + per_page]
        chunk = chunk + [blank] * (per_page - len(chunk))
        columns = [np.concatenate(chunk[c * PER_COLUMN : (c + 1) * PER_COLUMN], 0) for c in range(COLUMNS)]
        gap = np.full((columns[0].shape[0], GAP, 3), GAP_GREY, np.uint8)
        parts = [columns[0]]
        for column in columns[1:]:
            parts += [gap, column]
        out.append(np.concatenate(parts, 1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the shipped folder")
    parser.add_argument("--arm", required=True, help="the candidate's folder")
    parser.add_argument("--rounds", required=True, help="comma-separated seed rounds no rule has drawn")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--out", required=True, help="the pages' path prefix")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch
    from PIL import Image

    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.models.format import load_model
    from studio.training.dataset import load_dataset
    from studio.training.evaluate import composite, drawn_generator, round_pictures

    torch.set_num_threads(args.threads)
    rounds = [int(r) for r in args.rounds.split(",")]
    index = np.asarray(
        changed_names(Path(args.base) / "concepts.safetensors", Path(args.arm) / "concepts.safetensors"),
        dtype=np.int64,
    )
    if len(index) == 0:
        parser.error("the arm's table changes no row of the base's")
    data = load_dataset(args.data)
    drawn = {}
    for side in (args.base, args.arm):
        model = load_model(side)
        drawn[side], _ = round_pictures(drawn_generator(model), model.upsampler, data, 1.0, index, rounds)
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128[index]))

    def tile(picture: torch.Tensor) -> np.ndarray:
        return np.asarray(Image.fromarray(composite(picture, 240)[0]).resize((TILE, TILE), Image.LANCZOS))

    n = len(index)
    rows = []
    for j in range(n):
        tiles = [tile(real[j : j + 1])]
        for k in range(len(rounds)):
            tiles += [tile(drawn[side][k * n + j : k * n + j + 1]) for side in (args.base, args.arm)]
        rows.append(np.concatenate(tiles, 1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    laid = pages(rows)
    for p, page in enumerate(laid):
        Image.fromarray(page).save(f"{args.out}_{p}.png", optimize=True)
    names = [str(data.names[i]) for i in index]
    Path(f"{args.out}_names.json").write_text(
        json.dumps({"rounds": rounds, "columns": "real | base | arm per round", "names": names}, indent=1,
                   ensure_ascii=False) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    print(f"{n} names on {len(laid)} pages: {args.out}_*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
