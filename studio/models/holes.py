"""Holes in a picture's alpha, counted as the model's ship rules count them, and the choice between two drawings.

A *deep dip* is a pixel whose alpha lies more than ``depth`` (0.5) below its morphological closing: a small hole
or notch that its surroundings would fill. At 128 px with a 7 px closing (:data:`TEAR_CLOSING`) the count is how
every rule since session 28 measured tears (``scripts/heart_check.py``, the concept table's guard).

A concept table may carry a second row per fitted emoji, fitted without any guard against tears
(studio/models/concepts.py, ``full``): it draws its emoji more recognisably but tears more often, and whether it
tears depends on z. :func:`keep_first` is the check the engine and the evaluation run per image: the second row's
drawing is kept unless it has more than the table's margin of deep dips beyond the first row's at the same z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEAR_CLOSING = 7  # px of the closing at 128 px, as the hearts' count and the table's guard
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


def keep_first(first: torch.Tensor, second: torch.Tensor, margin: float) -> torch.Tensor:
    """Per image pair (premultiplied RGBA in [-1, 1], the pictures as shown): True where ``first`` has at most
    ``margin`` more deep dips (:data:`TEAR_CLOSING`) than ``second``, i.e. where it does not tear beyond it."""
    return deep_dips(first, TEAR_CLOSING) <= deep_dips(second, TEAR_CLOSING) + margin
