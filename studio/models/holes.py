"""Holes in a picture's alpha, counted as the model's ship rules count them, and the choice between two drawings.

A *deep dip* is a pixel whose alpha lies more than ``depth`` (0.5) below its morphological closing: a small hole
or notch that its surroundings would fill. At 128 px with a 7 px closing (:data:`TEAR_CLOSING`) the count is how
every rule since session 28 measured tears (``scripts/heart_check.py``, the concept table's guard).

A concept table may carry a second row per fitted emoji, fitted without any guard against tears
(studio/models/concepts.py, ``full``): it draws its emoji more recognisably but tears more often, and whether it
tears depends on z. :func:`second_or_first` is what the engine and the evaluation show per image: the second row's
drawing with its narrow dips filled from the first row's drawing at the same z beneath it (:func:`fill_dips`), unless
even so it opens more than the table's margin of wide dips (:data:`WIDE_CLOSING`) where the first row's drawing is
solid (:func:`new_wide_dips`), or more than its second margin of wide dips in all beyond the first's, or covers less
than half the first's alpha; then the first row's drawing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEAR_CLOSING = 7  # px of the closing at 128 px, as the hearts' count and the table's guard
WIDE_CLOSING = 15  # px of the closing that finds tears a 7 px closing cannot fill (strips, split hands)
FILL_GAIN = 2.0  # how much of the picture beneath shows through a dip: this times its depth below the closing
DIP_DEPTH = 0.5  # how far below its closing a pixel's alpha must lie to count (ragged edges lie less)
CLEAR_ALPHA = 0.1  # below this alpha a pixel is see-through (rows_verify's alpha grids draw it black)
COVER_SHARE = 0.5  # the least share of the first row's alpha a second row's drawing must cover to be shown


def alpha_closing(alpha: torch.Tensor, size: int) -> torch.Tensor:
    """The morphological closing of N x 1 x H x W alpha in [0, 1]: a ``size`` px square max-pool dilation, then
    erosion, each as a row pass and a column pass (the same maxima as the square pool, several times faster)."""
    return alpha_erosion(_square_max(alpha, size), size)


def alpha_erosion(alpha: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` px square minimum around each pixel (nothing beyond the edges): what stays solid ``size // 2`` px
    in from every outline and hole, the second half of :func:`alpha_closing`."""
    return -_square_max(-alpha, size)


def _square_max(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.max_pool2d(x, size, 1, size // 2)``: the same maxima, a row pass then a column pass."""
    if size % 2 == 0:  # an even window's pool is one px larger than x; no caller uses one
        pad = size // 2
        return F.max_pool2d(F.max_pool2d(x, (1, size), 1, (0, pad)), (size, 1), 1, (pad, 0))
    return _window_max(_window_max(x, size, -1), size, -2)


def _window_max(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """The maximum over the odd ``size`` px window centred on each pixel along ``dim``, nothing beyond the edges
    (``max_pool2d``'s padding): windows of 1, 2, 4, ... px by doubling, then two overlapping ones cover ``size``. A
    handful of element-wise maxima instead of ``size`` comparisons a pixel: a 15 px closing at 128 px runs 7 to 11
    times faster than the pool on a CPU core (22 for 64 pictures; benchmarks/holes_bench.py), and a preview's
    second-row check pays four."""
    n, pad = x.shape[dim], size // 2
    edge = list(x.shape)
    edge[dim] = pad
    beyond = x.new_full(edge, float("-inf"))
    m, span = torch.cat([beyond, x, beyond], dim), 1
    while span * 2 <= size:
        m = torch.maximum(m.narrow(dim, 0, m.shape[dim] - span), m.narrow(dim, span, m.shape[dim] - span))
        span *= 2
    return torch.maximum(m.narrow(dim, 0, n), m.narrow(dim, size - span, n))


def deep_dips(images: torch.Tensor, size: int, depth: float = DIP_DEPTH) -> torch.Tensor:
    """Per image (premultiplied RGBA in [-1, 1]): how many pixels' alpha lies more than ``depth`` below its
    ``size`` px closing. The ship rules count these at 128 px with ``size`` 7 (``scripts/heart_check.py``), where
    ``studio.training.base_stage.alpha_holes`` measures the same dips at 32 px as a differentiable mean. Alpha is
    clamped to [0, 1] first, as the export clamps it (a bicubic upscale overshoots)."""
    alpha = ((images[:, 3:4].float() + 1.0) * 0.5).clamp(0.0, 1.0)
    return ((alpha_closing(alpha, size) - alpha) > depth).sum(dim=(1, 2, 3))


def fill_dips(picture: torch.Tensor, under: torch.Tensor, size: int = TEAR_CLOSING) -> torch.Tensor:
    """``picture`` (premultiplied RGBA in [-1, 1]) with its alpha dips filled from ``under`` drawn beneath it: where
    its alpha lies below its ``size`` px closing, ``under`` shows through its clear part, in proportion to how deep
    the dip is (:data:`FILL_GAIN` times it, at most all of it). Elsewhere, and where ``under`` is clear, the picture
    is unchanged: alpha only rises, and a dip ``under`` is solid beneath is closed."""
    alpha = ((picture[:, 3:4].float() + 1.0) * 0.5).clamp(0.0, 1.0)
    shown = ((alpha_closing(alpha, size) - alpha) * FILL_GAIN).clamp(0.0, 1.0) * (1.0 - alpha)
    filled = (picture.float() + 1.0) * 0.5 + shown * (under.float() + 1.0) * 0.5
    return filled.clamp(0.0, 1.0) * 2.0 - 1.0


def dips_where_solid(picture: torch.Tensor, other: torch.Tensor, size: int) -> torch.Tensor:
    """Per image pair (premultiplied RGBA in [-1, 1]): the pixels where ``picture`` dips more than :data:`DIP_DEPTH`
    below its ``size`` px closing while ``other`` is solid there (alpha above one half), e.g. the holes a drawing
    has where the real emoji has none."""
    alpha = ((picture[:, 3:4].float() + 1.0) * 0.5).clamp(0.0, 1.0)
    solid = other[:, 3:4].float() > 0.0  # alpha above one half
    return (((alpha_closing(alpha, size) - alpha) > DIP_DEPTH) & solid).sum(dim=(1, 2, 3))


def new_wide_dips(picture: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """:func:`dips_where_solid` at :data:`WIDE_CLOSING`: the tears and holes ``picture`` opens that ``other`` does
    not have (a count of where it dips, not of how it differs elsewhere)."""
    return dips_where_solid(picture, other, WIDE_CLOSING)


def enclosed_where_solid(picture: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per image pair (premultiplied RGBA in [-1, 1]): the see-through pixels (alpha under :data:`CLEAR_ALPHA`) of
    ``picture`` that no see-through path leads from to its border (4-connected: a diagonal step does not join), where
    ``other`` is solid (alpha above one half): the holes a person sees through, however wide, and none of an
    outline's notches. The looks of rules 116-117 counted these (session 63); a closing's dips miss a hole wider than
    the closing and count a notch as one."""
    clear = (picture[:, 3].float() + 1.0) * 0.5 < CLEAR_ALPHA  # N x H x W
    reach = torch.zeros_like(clear)
    for edge in (reach[:, 0, :], reach[:, -1, :], reach[:, :, 0], reach[:, :, -1]):
        edge.fill_(True)
    reach &= clear
    while True:  # flood the see-through px from the border, a whole run of a row, then of a column, a pass
        grown = _along_runs(_along_runs(reach, clear, -1), clear, -2)
        if torch.equal(grown, reach):
            break
        reach = grown
    solid = other[:, 3].float() > 0.0
    return (clear & ~reach & solid).sum(dim=(1, 2))


def _along_runs(reach: torch.Tensor, clear: torch.Tensor, dim: int) -> torch.Tensor:
    """``reach`` grown along ``dim`` (-1: rows, -2: columns) to every see-through px of a run (px of ``clear`` side
    by side along it) that holds a reached one: a path along a row or a column, however long, in one step."""
    if dim == -2:
        return _along_runs(reach.transpose(-1, -2), clear.transpose(-1, -2), -1).transpose(-1, -2)
    n, h, w = clear.shape
    run = torch.cumsum((~clear).to(torch.int64), dim=-1)  # a run's px share a number: the walls before them
    line = torch.arange(n * h, device=clear.device).reshape(n, h, 1) * (w + 1)
    index = (line + run).flatten()
    reached = torch.zeros(n * h * (w + 1), dtype=torch.bool, device=clear.device)
    reached[index[reach.flatten()]] = True
    return reached[index].reshape(n, h, w) & clear


def net_wide_dips(picture: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per image pair: how many more wide-dip pixels (:data:`WIDE_CLOSING`) ``picture`` has than ``other`` in all,
    wherever they lie (negative where it has fewer)."""
    return deep_dips(picture, WIDE_CLOSING) - deep_dips(other, WIDE_CLOSING)


def second_or_first(
    second: torch.Tensor, first: torch.Tensor, margin: float, net_margin: float = float("inf")
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image pair (premultiplied RGBA in [-1, 1], the second and first rows' drawings at the same z): the picture
    to show and whether it is the second's. The second's drawing with its narrow dips filled from the first's
    (:func:`fill_dips`) is shown unless it opens more than ``margin`` wide-dip pixels where the first's drawing is
    solid (:func:`new_wide_dips`: tears inside the first's shape) or has more than ``net_margin`` wide-dip pixels in
    all beyond the first's (:data:`WIDE_CLOSING`: a shape that grew past the first's and tore there), or covers less
    than :data:`COVER_SHARE` of the first's alpha (a drawing that all but vanished has no dips to count: session 50
    found a blank "high voltage"); then the first's drawing."""
    filled = fill_dips(second, first)
    took = new_wide_dips(filled, first) <= margin
    took &= covers(filled, first)
    if net_margin != float("inf"):
        took &= net_wide_dips(filled, first) <= net_margin
    return torch.where(took[:, None, None, None], filled, first.float()), took


def covers(second: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Per picture pair: whether ``second`` covers at least :data:`COVER_SHARE` of ``first``'s alpha (a drawing that
    all but vanished has no dips to count)."""
    return _coverage(second) >= COVER_SHARE * _coverage(first)


def _coverage(pictures: torch.Tensor) -> torch.Tensor:
    """Per picture (premultiplied RGBA in [-1, 1]): its summed alpha in [0, 1], the area it covers in px."""
    return ((pictures[:, 3].float() + 1.0) * 0.5).clamp(0.0, 1.0).sum(dim=(1, 2))
