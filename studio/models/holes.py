"""Holes in a picture's alpha, counted as the model's ship rules count them, and the choice between two drawings.

A *deep dip* is a pixel whose alpha lies more than ``depth`` (0.5) below its morphological closing: a small hole
or notch that its surroundings would fill. At 128 px with a 7 px closing (:data:`TEAR_CLOSING`) the count is how
every rule since session 28 measured tears (``scripts/heart_check.py``, the concept table's guard).

A concept table may carry a second row per fitted emoji, fitted without any guard against tears
(studio/models/concepts.py, ``full``): it draws its emoji more recognisably but tears more often, and whether it
tears depends on z. :func:`second_or_first` is what the engine and the evaluation show per image: the second row's
drawing with its narrow dips filled from the first row's drawing at the same z beneath it (:func:`fill_dips`), unless
even so it has more than the table's margin of wide dips (:data:`WIDE_CLOSING`) beyond the first row's drawing;
then the first row's drawing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEAR_CLOSING = 7  # px of the closing at 128 px, as the hearts' count and the table's guard
WIDE_CLOSING = (
    15  # px of the closing that finds the wider tears a 7 px closing cannot fill (strips, split hands)
)
FILL_GAIN = (
    2.0  # a dip this far below its closing, times this, is how much of the picture beneath shows through
)
DIP_DEPTH = 0.5  # how far below its closing a pixel's alpha must lie to count (ragged edges lie less)


def alpha_closing(alpha: torch.Tensor, size: int) -> torch.Tensor:
    """The morphological closing of N x 1 x H x W alpha in [0, 1]: a ``size`` px max-pool dilation, then erosion."""
    pad = size // 2
    return -F.max_pool2d(-F.max_pool2d(alpha, size, 1, pad), size, 1, pad)


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


def second_or_first(
    second: torch.Tensor, first: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image pair (premultiplied RGBA in [-1, 1], the second and first rows' drawings at the same z): the picture
    to show and whether it is the second's. The second's drawing with its narrow dips filled from the first's
    (:func:`fill_dips`) is shown unless it has more than ``margin`` more wide dips (:data:`WIDE_CLOSING`) than the
    first's drawing; then the first's drawing."""
    filled = fill_dips(second, first)
    took = deep_dips(filled, WIDE_CLOSING) <= deep_dips(first, WIDE_CLOSING) + margin
    return torch.where(took[:, None, None, None], filled, first.float()), took
