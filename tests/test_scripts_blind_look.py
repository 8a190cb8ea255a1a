"""scripts/blind_look.py: the look grids with each row's arms in a seeded coin's order."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import load_script
from PIL import Image

blind_look = load_script("blind_look")


def _grids(rows: int, tile: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A look grid whose tiles are filled with (row, column) so every move shows, and its alpha grid."""
    grid = np.zeros((rows * tile, 6 * tile, 3), np.uint8)
    alpha = np.zeros((rows * tile, 2 * tile, 3), np.uint8)
    for r in range(rows):
        for c in range(6):
            grid[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = (r, c, 0)
        for c in range(2):
            alpha[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = (r, c + 1, 9)
    return grid, alpha


def _columns(grid: np.ndarray, row: int, tiles: int, tile: int = 4) -> list[int]:
    return [int(grid[row * tile, c * tile, 1]) for c in range(tiles)]


def test_flipped_rows_swap_both_arms_on_both_greys_and_in_the_alpha_grid():
    grid, alpha = _grids(3)
    blind, blind_alpha = blind_look.swap_rows(grid, alpha, [False, True, False])
    assert _columns(blind, 0, 6) == [0, 1, 2, 3, 4, 5]
    assert _columns(blind, 1, 6) == [0, 2, 1, 3, 5, 4]  # the real tiles stay first
    assert _columns(blind_alpha, 1, 2) == [2, 1] and _columns(blind_alpha, 2, 2) == [1, 2]
    assert np.array_equal(grid, _grids(3)[0])  # the input is left as it was
    # nothing but moves: every tile's pixels are still there
    assert sorted(map(tuple, blind.reshape(-1, 3))) == sorted(map(tuple, grid.reshape(-1, 3)))


def test_a_grid_that_is_not_rows_of_six_tiles_is_refused():
    grid, alpha = _grids(2)
    with pytest.raises(ValueError, match="six square tiles"):
        blind_look.swap_rows(grid[:, :-1], alpha, [False, False])
    with pytest.raises(ValueError, match="six square tiles"):
        blind_look.swap_rows(grid, alpha, [False])


def test_the_key_undoes_the_blind_grids(tmp_path, monkeypatch):
    for order in blind_look.ORDERS:
        grid, alpha = _grids(24)
        Image.fromarray(grid).save(tmp_path / f"look_{order}.png")
        Image.fromarray(alpha).save(tmp_path / f"look_{order}_alpha.png")
    key_path = tmp_path / "key.json"
    look, out = str(tmp_path / "look"), str(tmp_path / "b")
    monkeypatch.setattr("sys.argv", ["blind_look", look, "--seed", "5", "--out", out, "--key", str(key_path)])
    assert blind_look.main() == 0
    key = json.loads(key_path.read_text())
    for order in blind_look.ORDERS:
        flips = key["a_is_candidate"][order]
        # a fair coin over 24 rows: seed 5 flips some, not all
        assert len(flips) == 24 and 0 < sum(flips) < 24
        blind = np.asarray(Image.open(tmp_path / f"b_{order}.png"))
        for row, flip in enumerate(flips):
            assert _columns(blind, row, 6)[1:3] == ([2, 1] if flip else [1, 2])
