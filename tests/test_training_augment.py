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
    """Why the option was added: cutout makes a transparent square in every (real) image, which might let a
    discriminator take a hole in a generated emoji for the augmentation (measured: without cutout the holes
    stayed; docs/model_history.md, After v3)."""
    x = _opaque()
    holes = diff_augment(x, "cutout", torch.Generator().manual_seed(0))
    transparent = (holes[:, 3] < -0.99).flatten(1).sum(1)
    assert (transparent >= 8 * 8).all()  # a 16 x 16 square, at least a quarter of it inside the image
    kept = diff_augment(x, "color,translation", torch.Generator().manual_seed(0))
    centre = kept[:, 3, 12:20, 12:20]  # translation moves by at most 1/8 of the side: the centre stays
    assert torch.equal(centre, torch.ones_like(centre))
    assert torch.equal(diff_augment(x, "none"), x)


def test_colour_changes_shapes_and_leaves_transparent_pixels_empty():
    """The module's promise: brightness, saturation and contrast act on the emoji, never on transparency
    (contrast about the image's mean once turned every transparent pixel into a tint of that mean)."""
    x = -torch.ones(64, 4, 8, 8)
    x[:, :, 2:6, 2:6] = torch.tensor([1.0, -0.6, -0.6, 1.0]).view(1, 4, 1, 1)  # a red square
    y = diff_augment(x, "color", torch.Generator().manual_seed(0))
    empty = torch.ones(8, 8, dtype=torch.bool)
    empty[2:6, 2:6] = False
    assert torch.equal(y[:, :, empty], x[:, :, empty])  # every channel still -1: transparent black
    assert torch.equal(y[:, 3], x[:, 3])  # alpha untouched
    assert (y[:, :3, 2:6, 2:6] - x[:, :3, 2:6, 2:6]).abs().amax(dim=(1, 2, 3)).min() > 0.01
