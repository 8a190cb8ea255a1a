"""The base stage's hole term (`--hole-weight`): small transparent holes and notches in generated alpha, measured
against the real emoji of the same caption."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_train_options

from studio.models.holes import deep_dips
from studio.training.base_stage import alpha_holes, caption_hole_targets, hole_excess
from studio.training.dataset import load_dataset, make_synthetic_dataset
from studio.training.options import CHECKPOINT, TrainError
from studio.training.train import train


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), count=12)


def _disc(radius=10.0, size=32):
    """Premultiplied RGBA in [-1, 1]: an opaque red disc on transparency, 1 x 4 x size x size."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2).float()
    x = torch.stack([inside, inside * 0.0, inside * 0.0, inside])
    return (x * 2.0 - 1.0)[None]


def test_a_hole_counts_and_its_gradient_only_fills_it():
    whole = _disc()
    assert float(alpha_holes(whole)) == pytest.approx(0.0, abs=1e-6)  # a convex shape has nothing to fill
    holed = whole.clone()
    holed[0, :, 15, 15] = -1.0  # one transparent pixel inside the disc
    notched = whole.clone()
    notched[0, :, 7, 15:17] = -1.0  # a notch bitten out of the rim
    ring = whole.clone()
    ring[0, :, 12:20, 12:20] = -1.0  # an 8 px hole: wider than the closing, a donut's, not a defect
    assert float(alpha_holes(holed)) == pytest.approx(0.5 / 1024.0, rel=1e-4)  # 1 below, 0.5 beyond the depth
    shallow = whole.clone()
    shallow[0, 3, 15, 15] = 0.2  # alpha 0.6: a ripple, not a hole
    assert float(alpha_holes(shallow)) == 0.0
    assert float(alpha_holes(notched)) > 0.0
    assert float(alpha_holes(ring)) < 0.25 * 8 * float(alpha_holes(holed))  # far less than its 64 px
    holed.requires_grad_(True)
    alpha_holes(holed).sum().backward()
    moved = holed.grad[0, 3].nonzero().tolist()
    # descent raises alpha in the hole and nowhere else: not on the transparent background, where alpha
    # equals its closing, nor on the rim around the hole
    assert moved == [[15, 15]] and float(holed.grad[0, 3, 15, 15]) < 0
    assert torch.count_nonzero(holed.grad[0, :3]) == 0  # colour is left to the other terms


def test_deep_dips_count_the_pixels_of_holes_narrower_than_the_closing():
    """The ship rules' count (scripts/heart_check.py): pixels more than 0.5 below the closing, per image."""
    whole = _disc(radius=40.0, size=128)
    holed = whole.clone()
    holed[0, :, 60:62, 60:63] = -1.0  # a 2 x 3 px transparent hole
    shallow = whole.clone()
    shallow[0, 3, 60:62, 60:63] = 0.2  # alpha 0.6: a ripple, not a hole
    ring = whole.clone()
    ring[0, :, 56:72, 56:72] = -1.0  # a 16 px hole: wider than the 7 px closing, part of the shape
    overshoot = whole.clone()
    # alpha 1.7 where a bicubic upscale overshoots: shown as 1, so no dip between the two
    overshoot[0, 3, 64, [62, 66]] = 2.4
    counts = deep_dips(torch.cat([whole, holed, shallow, ring, overshoot]), 7).tolist()
    assert counts == [0, 6, 0, 0, 0]
    assert deep_dips(ring, 17).tolist() == [256]  # a closing wide enough fills it


@pytest.mark.parametrize("size", [3, 7, 15])
def test_the_closing_in_row_and_column_passes_is_the_square_closing(size):
    import torch.nn.functional as F

    from studio.models.holes import alpha_closing

    alpha = torch.rand(3, 1, 40, 33, generator=torch.Generator().manual_seed(size))
    pad = size // 2
    square = -F.max_pool2d(-F.max_pool2d(alpha, size, 1, pad), size, 1, pad)
    assert torch.equal(alpha_closing(alpha, size), square)


def test_the_term_bites_only_above_its_captions_real_share():
    holed = _disc()
    holed[0, :, 15, 15] = -1.0
    share = float(alpha_holes(holed))
    pictures = torch.cat([holed, holed])
    assert float(hole_excess(pictures, torch.tensor([share, share]))) == pytest.approx(0.0, abs=1e-7)
    assert float(hole_excess(pictures, torch.tensor([0.0, 1.0]))) == pytest.approx(share / 2, rel=1e-4)


def test_each_caption_text_gets_the_largest_share_of_its_training_emoji(synthetic_data):
    data = load_dataset(synthetic_data)
    last = len(data.names) - 1  # held out; emoji 0 and 2 (discs) are in training
    assert data.heldout[last] and not data.heldout[0] and not data.heldout[2]
    images = torch.cat([_disc(8.0 + i % 5) for i in range(len(data.names))])
    images[0, :, 16, 16] = -1.0  # emoji 0 has a hole: alpha 0, 1 below its closing
    images[2, :, 16, 16] = 0.0  # emoji 2 a shallow dip: alpha 0.5, not deeper than HOLE_DEPTH
    images[last, :, 16, 16] = -1.0
    texts, text_ids = np.unique(np.asarray(data.captions), return_inverse=True)
    targets = caption_hole_targets(images, data, text_ids)

    def target(text):
        return float(targets[list(texts).index(text)])

    one = 0.5 / 1024.0
    assert target("shape 0") == pytest.approx(one, rel=1e-4)
    assert target("shape 2") == pytest.approx(0.0, abs=1e-7)
    # a keyword may have as much as the most of its emoji: emoji 0's, not the mean over the five training discs
    assert target("disc") == pytest.approx(one, rel=1e-4)
    assert target("square") == pytest.approx(0.0, abs=1e-7)
    # a held-out emoji's hole counts nowhere (its name is never drawn in training)
    assert data.captions[3 * last] == data.names[last]
    assert target(data.names[last]) == pytest.approx(0.0, abs=1e-7)


def test_a_run_with_the_hole_term_trains_differently_and_records_it(synthetic_data, tmp_path):
    def trained(name, **extra):
        options = tiny_train_options(synthetic_data, tmp_path / name, 3, **extra)
        train(options)
        return torch.load(options.run / CHECKPOINT, weights_only=False)

    on = trained("on", hole_weight=50.0)
    off = trained("off")
    assert on["runs"][-1]["hole_weight"] == 50.0 and off["runs"][-1]["hole_weight"] == 0.0
    assert not all(torch.equal(on["generator"][k], off["generator"][k]) for k in off["generator"])
    with pytest.raises(TrainError, match=r"--hole-weight must be 0 or more \(got -1.0\)"):
        train(tiny_train_options(synthetic_data, tmp_path / "bad", 1, hole_weight=-1.0))
    assert not (tmp_path / "bad").exists()


def test_fill_dips_shows_the_picture_beneath_through_narrow_dips_only():
    from studio.models.holes import fill_dips

    whole = -torch.ones(1, 4, 64, 64)
    whole[:, :, 8:56, 8:56] = 1.0  # an opaque white square on a clear background
    under = whole.clone()
    under[:, :3, 8:56, 8:56] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # the same square, red
    holed = whole.clone()
    holed[:, :, 30:34, 30:34] = -1.0  # a 4 x 4 hole the 7 px closing fills
    holed[:, :, 16:28, 12:24] = -1.0  # a 12 x 12 hole it cannot fill
    filled = fill_dips(holed, under)
    assert deep_dips(holed, 7).tolist() == [16] and deep_dips(filled, 7).tolist() == [0]
    torch.testing.assert_close(filled[0, :, 30:34, 30:34], under[0, :, 30:34, 30:34])  # red shows through
    torch.testing.assert_close(filled[0, :, 16:28, 12:24], holed[0, :, 16:28, 12:24])  # the wide hole stays
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[30:34, 30:34] = False
    assert torch.equal(filled[0][:, outside], holed[0][:, outside])  # nothing else moves
    clear = -torch.ones_like(under)  # nothing beneath: the dip stays
    assert torch.equal(fill_dips(holed, clear), holed)
    # a shallow dip lets a share of the picture beneath through its clear part: twice its depth below the closing
    shallow = whole.clone()
    shallow[:, :, 31:33, 31:33] = 0.5  # white at alpha 0.75 (premultiplied), a quarter below the closing
    half = fill_dips(shallow, under)  # half of the clear quarter shows red: 0.75 + 0.125 x (1, 0, 0, 1)
    torch.testing.assert_close(half[0, :, 31, 31], torch.tensor([0.875, 0.75, 0.75, 0.875]) * 2 - 1)


def test_second_or_first_shows_the_filled_second_unless_it_tears_wider_where_the_first_is_solid():
    from studio.models.holes import WIDE_CLOSING, new_wide_dips, second_or_first

    first = -torch.ones(1, 4, 64, 64)
    first[:, :, 8:56, 8:56] = 1.0
    torn = first.clone()
    torn[
        :, :, 20:30, 8:40
    ] = -1.0  # a notch 10 px high from the left edge: a tear only the wide closing fills
    notched = first.clone()
    notched[:, :, 30:33, 30:33] = -1.0  # a 3 x 3 hole, mended from the first
    wide = int(new_wide_dips(torn, first)[0])
    assert wide == int(deep_dips(torn, WIDE_CLOSING)[0]) > 0 and int(deep_dips(first, WIDE_CLOSING)[0]) == 0
    shown, took = second_or_first(torch.cat([torn, notched]), torch.cat([first, first]), wide - 1.0)
    assert took.tolist() == [False, True]
    torch.testing.assert_close(shown[0], first[0])  # the tear is wider than the margin allows: the first
    torch.testing.assert_close(shown[1], first[0])  # the notch mended from the first: whole again
    shown, took = second_or_first(torn, first, float(wide))  # at the margin: shown, the tear unfilled
    assert took.tolist() == [True] and int(deep_dips(shown, WIDE_CLOSING)[0]) == wide
    # the count at any closing: the 3 x 3 hole under the 7 px closing, all of it where the first is solid
    from studio.models.holes import TEAR_CLOSING, dips_where_solid

    assert dips_where_solid(notched, first, TEAR_CLOSING).tolist() == [9]
    assert dips_where_solid(notched, -torch.ones_like(first), TEAR_CLOSING).tolist() == [0]
    # where the first is clear too, a tear opens nothing new: the same notch beside a first that has it counts 0
    assert new_wide_dips(torn, torn).tolist() == [0]
    assert second_or_first(torn, torn, 0.0)[1].tolist() == [True]
    # a shape that grew past the first's and tore there opens nothing where the first is solid: only the net check
    small = -torch.ones(1, 4, 64, 64)
    small[:, :, 8:56, 44:56] = 1.0  # a strip at the square's right edge
    grown = torn  # the whole square, its notch in the left half, where the small first is clear
    assert new_wide_dips(grown, small).tolist() == [0]
    net = int(deep_dips(grown, WIDE_CLOSING)[0] - deep_dips(small, WIDE_CLOSING)[0])
    assert net > 0
    assert second_or_first(grown, small, 0.0)[1].tolist() == [True]  # no net check (the default)
    assert second_or_first(grown, small, 0.0, float(net))[1].tolist() == [True]
    shown, took = second_or_first(grown, small, 0.0, net - 1.0)
    assert took.tolist() == [False] and torch.equal(shown, small)


def test_a_second_drawing_that_all_but_vanished_is_never_shown():
    """Session 50: S3's second row drew "high voltage" fully transparent at one seed; it has no dips, so every margin
    passed it. A second drawing covering less than half the first's alpha shows the first's; half or more is shown."""
    from studio.models.holes import COVER_SHARE, second_or_first

    first = -torch.ones(1, 4, 64, 64)
    first[:, :, 8:56, 8:56] = 1.0  # 48 x 48 px
    blank = -torch.ones_like(first)
    smaller = -torch.ones_like(first)
    smaller[:, :, 8:56, 8:32] = 1.0  # exactly half the first's area
    smallest = -torch.ones_like(first)
    smallest[:, :, 8:56, 8:31] = 1.0  # a column less
    assert COVER_SHARE == 0.5
    shown, took = second_or_first(
        torch.cat([blank, smaller, smallest]), first.expand(3, -1, -1, -1), 1e9, 1e9
    )
    assert took.tolist() == [False, True, False]
    assert torch.equal(shown[0], first[0]) and torch.equal(shown[1], smaller[0])
    # a first that is blank itself takes any second
    assert second_or_first(blank, blank, 0.0)[1].tolist() == [True]


def test_the_trainers_hole_depth_is_the_dip_depth_the_engine_counts():
    from studio.models.holes import DIP_DEPTH
    from studio.training.options import HOLE_DEPTH

    # options stays free of torch, so the value is written twice and held equal here
    assert HOLE_DEPTH == DIP_DEPTH


@pytest.mark.parametrize("size", [1, 3, 7, 15, 31])
@pytest.mark.parametrize("shape", [(3, 1, 128, 128), (2, 4, 33, 17), (1, 1, 5, 9), (1, 1, 1, 1)])
def test_the_closings_window_maxima_equal_torchs_max_pool(size, shape):
    """The closing's doubling maxima (models/holes.py) against the library's pool, the reference they replace:
    exactly equal, also for windows wider than the picture, ties and negative values."""
    import torch.nn.functional as F

    from studio.models.holes import _square_max, alpha_closing, alpha_erosion

    x = (torch.rand(shape, generator=torch.Generator().manual_seed(size)) * 8).round() - 4  # many ties
    assert torch.equal(_square_max(x, size), F.max_pool2d(x, size, 1, size // 2))
    pooled = -F.max_pool2d(-F.max_pool2d(x, size, 1, size // 2), size, 1, size // 2)
    assert torch.equal(alpha_closing(x, size), pooled)
    assert torch.equal(alpha_erosion(x, size), -F.max_pool2d(-x, size, 1, size // 2))


def test_the_judge_tests_cuts_make_solid_pixels_transparent_in_the_share_asked():
    """scripts/judge_tears.py (session 50): each cut turns solid pixels fully transparent, only in the pictures its
    share picks, and the deep-dip count rises; share 0 leaves every picture as it was."""
    from conftest import load_script

    judge_tears = load_script("judge_tears")
    pictures = -torch.ones(6, 4, 128, 128)
    pictures[:, :, 24:104, 24:104] = 0.6  # premultiplied grey at alpha 0.8: below the cuts' 0.9
    pictures[:, :, 32:96, 32:96] = 1.0  # an opaque white square inside it
    assert torch.equal(judge_tears.cut(pictures, 0.0, 2, "strip", seed=0), pictures)
    for kind in ("strip", "hole"):
        cut = judge_tears.cut(pictures, 1.0, 2, kind, seed=3)
        changed = (cut != pictures).any(1)
        assert bool(changed.flatten(1).any(1).all())  # every picture cut
        assert bool((cut.permute(0, 2, 3, 1)[changed] == -1.0).all())  # made fully transparent
        assert bool((deep_dips(cut, 7) > deep_dips(pictures, 7)).all())
        # two strips 3 x 40 px and their rounded ends, or two holes 7 px across
        largest = 2 * (3 * 40 + 9 if kind == "strip" else 49)
        assert int(changed.flatten(1).sum(1).max()) <= largest
    half = judge_tears.cut(pictures, 0.5, 2, "hole", seed=1)
    assert 0 < int((half != pictures).flatten(1).any(1).sum()) < 6


def test_enclosed_holes_count_what_one_sees_through_not_notches_faint_spots_or_the_others_holes():
    """``holes.enclosed_where_solid`` (session 63): a 6 x 6 see-through hole inside a disc counts 36 px, however wide
    the closing; a notch cut from the outline counts none, nor a part see-through spot (alpha 0.3), nor a hole the
    other picture has too; a hole that meets the outside only at a diagonal still counts (4-connected paths)."""
    from studio.models.holes import enclosed_where_solid

    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    disc = (((yy - 32) ** 2 + (xx - 32) ** 2) < 28**2).float()

    def picture(alpha):
        return torch.stack([alpha * 2 - 1] * 4)  # premultiplied grey: colour = alpha

    holed, notched, faint, diagonal = disc.clone(), disc.clone(), disc.clone(), torch.ones(64, 64)
    holed[20:26, 30:36] = 0.0
    notched[29:35, 56:64] = 0.0  # through the right edge of the disc
    faint[20:26, 30:36] = 0.3
    diagonal[1:4, 1:4] = 0.0  # a 3 x 3 hole one px in from the corner,
    diagonal[0, 0] = 0.0  # touching the outside only at a diagonal
    solid = picture(torch.ones(64, 64))
    pictures = torch.stack([picture(a) for a in (holed, notched, faint, holed, diagonal)])
    others = torch.stack([solid, solid, solid, picture(holed), solid])
    assert enclosed_where_solid(pictures, others).tolist() == [36, 0, 0, 0, 9]


def _enclosed_px_by_px(picture: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The reference: the flood grown one px a pass (4-connected) from the see-through px on the border, as
    ``enclosed_where_solid`` counted until session 68."""
    import torch.nn.functional as F

    from studio.models.holes import CLEAR_ALPHA

    clear = (picture[:, 3:4].float() + 1.0) * 0.5 < CLEAR_ALPHA
    reach = torch.zeros_like(clear)
    for edge in (reach[..., 0, :], reach[..., -1, :], reach[..., :, 0], reach[..., :, -1]):
        edge.fill_(True)
    reach &= clear
    while True:
        wider = reach.float()
        grown = (
            (F.max_pool2d(wider, (3, 1), 1, (1, 0)) + F.max_pool2d(wider, (1, 3), 1, (0, 1))) > 0
        ) & clear
        if torch.equal(grown, reach):
            return (clear & ~reach & (other[:, 3:4].float() > 0.0)).sum(dim=(1, 2, 3))
        reach = grown


def test_enclosed_holes_flooded_a_run_at_a_time_count_as_px_by_px():
    """The run-at-a-time flood (a whole run of a row or column a step) reaches what the px-by-px flood reaches: on
    blobby random alphas at several thresholds and on a corridor that winds in from the border, and its inverse."""
    import torch.nn.functional as F

    from studio.models.holes import enclosed_where_solid

    generator = torch.Generator().manual_seed(0)
    noise = F.avg_pool2d(torch.rand(24, 1, 64, 64, generator=generator), 5, 1, 2)
    alphas = [(noise > level).float() for level in (0.45, 0.5, 0.55)]
    spiral = torch.ones(1, 1, 64, 64)  # a corridor winding in from the top left edge
    top, left, bottom, right = 2, 0, 61, 61
    while bottom - top > 4 and right - left > 4:
        spiral[0, 0, top, left:right] = 0.0
        spiral[0, 0, top:bottom, right] = 0.0
        spiral[0, 0, bottom, left + 2 : right + 1] = 0.0
        spiral[0, 0, top + 2 : bottom + 1, left + 2] = 0.0
        top, left, bottom, right = top + 4, left + 4, bottom - 4, right - 4
    alpha = torch.cat([*alphas, spiral, 1.0 - spiral])
    pictures = torch.cat([alpha.expand(-1, 3, -1, -1) * 0.0, alpha * 2 - 1], 1)
    others = torch.cat([pictures[1:], pictures[:1]])
    expected = _enclosed_px_by_px(pictures, others)
    assert expected.sum() > 0 and (expected == 0).any()  # holes and none both occur
    assert torch.equal(enclosed_where_solid(pictures, others), expected)
