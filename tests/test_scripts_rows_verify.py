"""scripts/rows_verify.py's look grids (session 62): each of the three orders writes its grid of real | first | shown on
both greys and, beside it, the same rows' alpha, where a hole the shown picture opens is black and the first
picture's solid white there."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from conftest import load_script
from PIL import Image


def test_the_looks_alpha_grid_shows_the_hole_the_shown_picture_opens(tmp_path):
    rows_verify = load_script("rows_verify")
    count, holed = 30, 7
    first = -torch.ones(count, 4, 128, 128)
    first[:, :, 16:112, 16:112] = 0.5  # premultiplied colour 0.75 grey
    first[:, 3, 16:112, 16:112] = 1.0  # alpha channel 1.0 in [-1, 1]: opaque squares
    shown = first.clone()
    # a see-through hole 10 px across (a 15 px closing fills it) in one picture
    shown[holed, :, 56:66, 56:66] = -1.0
    data = SimpleNamespace(
        images128=np.zeros((count, 128, 128, 4), np.uint8),
        names=np.array([f"emoji {i}" for i in range(count)]),
    )
    took = torch.ones(count, dtype=torch.bool)
    report = rows_verify._save_looks(data, list(range(count)), first, shown, took, str(tmp_path / "look"), 24)

    assert report["net"][0][0] == "emoji 7" and report["net"][0][1] > 0
    assert report["new"][0][0] == "emoji 7"
    for order in ("net", "new", "detail"):
        grid = np.asarray(Image.open(tmp_path / f"look_{order}.png"))
        assert grid.shape == (24 * 128, 6 * 128, 3)
        alpha = np.asarray(Image.open(tmp_path / f"look_{order}_alpha.png"))
        assert alpha.shape == (24 * 128, 2 * 128, 3)
    # the holed picture heads the net order
    alpha = np.asarray(Image.open(tmp_path / "look_net_alpha.png"))[:128]
    assert (alpha[57:65, 57:65] == 255).all()  # first: opaque there
    assert (alpha[57:65, 128 + 57 : 128 + 65] == 0).all()  # shown: see-through there
    assert (alpha[5:10, 5:10] == 0).all()  # outside the square
    assert (alpha[30:40, 30:40] == 255).all()  # inside it
    rim = alpha[16, 16:112]  # no soft outline here (a hard-edged square): nothing marked part see-through
    assert not ((rim[:, 0] == 220) & (rim[:, 1] == 40)).any()
    soft = first.clone()
    soft[:, 3, 10:16, 16:112] = 0.0  # alpha 0.5 in [0, 1]: part see-through
    soft[:, :3, 10:16, 16:112] = -0.5
    tile = rows_verify._alpha_tile(soft[[0]])
    assert (tile[12, 40] == (220, 40, 40)).all() and (tile[40, 40] == 255).all()


def test_rows_means_averages_every_number_leaf_by_leaf():
    rows_means = load_script("rows_means")
    first = {
        "rounds": [1800, 1810],
        "judges": {"a": "x.safetensors"},
        "v16": {"kid": 0.02, "keywords": [0.2, 1.0]},
    }
    second = {
        "rounds": [1820, 1830],
        "judges": {"a": "y.safetensors"},
        "v16": {"kid": 0.03, "keywords": [0.4, 2.0]},
    }
    means = rows_means.leaf_means([first, second])
    assert means["v16"] == {"kid": 0.025, "keywords": [0.3, 1.5]}
    assert means["rounds"] == [1810, 1820]
    assert means["judges"] == {"a": "x.safetensors"}  # text: the first report's
    # a key only the first report has is its own mean
    assert rows_means.leaf_means([{"only": 3, "both": 1}, {"both": 2}]) == {"only": 3, "both": 1.5}
