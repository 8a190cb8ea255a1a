"""The blind check after a ship rule's look (rules 126-141): the look grids of ``rows_verify.py --look`` with each
row's two arms put in an order a seeded coin picks, so whoever counts tears and plainer pictures cannot tell which
side is the candidate.

    python scripts/blind_look.py runs/v76/look3050 --seed 47 --out runs/v76/blind3050 --key runs/v76/blind_key47.json

For each order (net, new, detail) it reads ``PREFIX_<order>.png`` (rows of real | first | shown on grey 240, then on
grey 64) and ``PREFIX_<order>_alpha.png`` (first | shown), and writes ``OUT_<order>.png`` (real | A | B | real | A | B)
and ``OUT_<order>_alpha.png`` (A | B) with the same rows swapped. The key (``--key``, read only after the count) says
per order and row whether A is the shown (candidate) picture. Nothing else changes: tiles are copied pixel for pixel.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ORDERS = ("net", "new", "detail")


def swap_rows(grid: np.ndarray, alpha: np.ndarray, flips: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """``grid``'s rows (six square tiles: real, first, shown twice) and ``alpha``'s (first, shown) with first and
    shown swapped where ``flips`` says so."""
    tile = grid.shape[1] // 6
    if grid.shape[1] != 6 * tile or alpha.shape[1] != 2 * tile or len(flips) * tile != grid.shape[0]:
        raise ValueError("the look grid is not rows of six square tiles with an alpha grid of two beside it")
    grid, alpha = grid.copy(), alpha.copy()
    for row, flip in enumerate(flips):
        if not flip:
            continue
        rows = slice(row * tile, (row + 1) * tile)
        for left in (tile, 4 * tile):  # the first arm's tile on each grey
            a = grid[rows, left : left + tile].copy()
            grid[rows, left : left + tile] = grid[rows, left + tile : left + 2 * tile]
            grid[rows, left + tile : left + 2 * tile] = a
        a = alpha[rows, :tile].copy()
        alpha[rows, :tile] = alpha[rows, tile:]
        alpha[rows, tile:] = a
    return grid, alpha


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("prefix", help="the look grids' prefix (rows_verify.py's --look-out)")
    parser.add_argument("--seed", type=int, required=True, help="the coin's seed (numpy default_rng)")
    parser.add_argument("--out", required=True, help="the blind grids' prefix")
    parser.add_argument("--key", required=True, help="where the key is written (JSON)")
    args = parser.parse_args()
    from PIL import Image

    rng = np.random.default_rng(args.seed)
    key = {"seed": args.seed, "prefix": args.prefix, "a_is_candidate": {}}
    for order in ORDERS:
        grid = np.asarray(Image.open(f"{args.prefix}_{order}.png").convert("RGB"))
        alpha = np.asarray(Image.open(f"{args.prefix}_{order}_alpha.png").convert("RGB"))
        rows = grid.shape[0] // (grid.shape[1] // 6)
        flips = [bool(f) for f in rng.integers(0, 2, rows)]
        blind, blind_alpha = swap_rows(grid, alpha, flips)
        Image.fromarray(blind).save(f"{args.out}_{order}.png", optimize=True)
        Image.fromarray(blind_alpha).save(f"{args.out}_{order}_alpha.png", optimize=True)
        # unflipped rows keep first | shown, so there A is the first arm; flipped rows show the candidate as A
        key["a_is_candidate"][order] = flips
    Path(args.key).write_text(json.dumps(key, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}_{{{','.join(ORDERS)}}}.png and their alphas; the key is in {args.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
