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


def test_faint_dips_bite_only_solid_parts_of_the_chosen_share_and_stay_premultiplied():
    """The upsampler's --dip-augment: soft dips (every channel scaled alike, so colours stay valid) centred in
    the solid parts of about ``share`` of the inputs; transparent pixels and the other inputs untouched."""
    from studio.training.augment import faint_dips

    x = torch.full((40, 4, 32, 32), -1.0)  # transparent, with an opaque orange disc in the middle
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disc = (rows - 15.5) ** 2 + (cols - 15.5) ** 2 < 10.0**2
    x[:, 0, disc], x[:, 1, disc], x[:, 2, disc], x[:, 3, disc] = 1.0, 0.2, -1.0, 1.0
    out = faint_dips(x, 0.5, torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1)
    assert 10 <= int(changed.sum()) <= 30  # about half the batch
    # nothing outside the disc's solid pixels' reach moves
    assert torch.equal(out[:, :, ~disc], x[:, :, ~disc])
    alpha, rgb = (out[:, 3:] + 1) / 2, (out[:, :3] + 1) / 2
    assert bool((rgb <= alpha + 1e-6).all()) and bool((alpha <= 1.0).all())
    deepest = 1.0 - alpha[changed][:, 0, disc].amin(dim=1)  # each bitten input's deepest dip in the disc
    assert float(deepest.min()) >= 0.15 - 1e-6 and float(deepest.max()) <= 1.0 - (1 - 0.6) ** 4 + 1e-6
    assert torch.equal(faint_dips(x, 0.0, torch.Generator().manual_seed(0)), x)
