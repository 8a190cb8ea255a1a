"""DiffAugment's policy as a training option (`--augment`): what each part does to premultiplied RGBA."""

from __future__ import annotations

import pytest
import torch

from studio.training.augment import diff_augment, parse_policy


def _opaque(n=8, size=32):
    """Premultiplied RGBA in [-1, 1]: an opaque orange square filling every image."""
    x = torch.empty(n, 4, size, size)
    x[:, 0], x[:, 1], x[:, 2], x[:, 3] = 1.0, 0.2, -1.0, 1.0
    return x


def test_policies_parse_and_an_unknown_name_is_one_sentence():
    assert parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy(" color , cutout ") == ("color", "cutout")
    assert parse_policy("none") == parse_policy("") == ()
    with pytest.raises(ValueError, match="'blur' is not a DiffAugment policy; use any of color, translation"):
        parse_policy("color,blur")


def test_cutout_cuts_transparent_holes_and_the_rest_keep_an_opaque_centre():
    """The reason for the option: cutout makes a transparent square in every (real) image, so a
    discriminator beside it cannot tell a hole in a generated emoji from the augmentation."""
    x = _opaque()
    holes = diff_augment(x, "cutout", torch.Generator().manual_seed(0))
    transparent = (holes[:, 3] < -0.99).flatten(1).sum(1)
    assert (transparent >= 8 * 8).all()  # a 16 x 16 square, at least a quarter of it inside the image
    kept = diff_augment(x, "color,translation", torch.Generator().manual_seed(0))
    centre = kept[:, 3, 12:20, 12:20]  # translation moves by at most 1/8 of the side: the centre stays
    assert torch.equal(centre, torch.ones_like(centre))
    assert torch.equal(diff_augment(x, "none"), x)
