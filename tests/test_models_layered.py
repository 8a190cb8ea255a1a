"""Layered conditions (studio/models/cgan.py ``BaseGenerator.synthesize``, studio/training/concept_fit.py): one
condition per place of the base that reads it, as StyleGAN's W+. The same row at every place draws exactly what
the row draws; a fit and the guard take layered rows as they take plain ones (session 53's probe: the layered fit
draws more of each named emoji than one condition fitted alike, docs/model_history.md)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model

from studio.models.format import load_model
from studio.training.concept_fit import fit_conditions, guard_conditions, layered, tile


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    """The tiny model's base with its conditional norms made to read the condition (they start at zero, as
    BigGAN's do, until trained)."""
    generator = load_model(make_tiny_model(tmp_path_factory.mktemp("models"))).generator.eval()
    torch.manual_seed(7)
    with torch.no_grad():
        for name, parameter in generator.named_parameters():
            if ".gain." in name or ".bias.weight" in name:
                parameter.normal_(0.0, 0.3)
    return generator


def test_a_row_at_every_place_draws_exactly_what_the_row_draws_and_each_place_is_read(generator):
    torch.manual_seed(0)
    z = torch.randn(5, generator.config.z_dim)
    rows = torch.randn(5, generator.config.cond_dim)
    assert generator.places == 1 + 2 * len(generator.blocks)
    with torch.no_grad():
        plain = generator.synthesize(z, rows)
        assert torch.equal(generator.synthesize(z, layered(rows, generator.places)), plain)
        for place in range(generator.places):  # moving one place's condition alone changes the picture
            moved = layered(rows, generator.places)
            moved[:, place] += 1.0
            assert (generator.synthesize(z, moved) - plain).abs().max() > 1e-3, place
    with pytest.raises(ValueError, match=f"need {generator.places} places"):
        generator.synthesize(z, layered(rows, generator.places - 1))


def _emoji(count: int = 6):
    """Target pictures the tiny base can nearly draw: its own drawings at other conditions."""
    torch.manual_seed(1)
    return torch.randn(count, 16) * 2.0


def test_a_layered_fit_lowers_its_loss_further_than_one_condition_fitted_alike(generator):
    targets = _emoji()
    with torch.no_grad():
        z = torch.randn(len(targets), generator.config.z_dim, generator=torch.Generator().manual_seed(5))
        images = generator.synthesize(z, targets)
    start = torch.zeros(len(images), generator.config.cond_dim)
    one, one_losses = fit_conditions(generator, images, start, steps=30, lr=0.05, seed=3)
    many, many_losses = fit_conditions(
        generator, images, layered(start, generator.places), steps=30, lr=0.05, seed=3
    )
    assert one.shape == start.shape and many.shape == (len(images), generator.places, start.shape[1])
    assert many_losses[0] == one_losses[0]  # the same start draws the same first step
    assert many_losses[-1] < one_losses[-1] < one_losses[0]
    assert (many[:, 0] - many[:, -1]).abs().max() > 1e-3  # the places moved apart


def test_the_guard_decides_layered_rows_as_it_decides_the_rows_they_repeat(generator):
    torch.manual_seed(2)
    start = torch.randn(8, generator.config.cond_dim)
    stored = start + torch.randn(8, generator.config.cond_dim) * 3.0
    stored[:4] = start[:4]  # rows that draw as their start stay; the moved ones draw other dips
    plain, plain_report = guard_conditions(generator, None, start, stored, margin=0.0, seeds=2, tear=0.0)
    places = generator.places
    deep, deep_report = guard_conditions(
        generator, None, layered(start, places), layered(stored, places), margin=0.0, seeds=2, tear=0.0
    )
    assert 0 < plain_report["reverted"] < 8, plain_report  # some rows go back, some stay
    assert deep_report == plain_report and torch.equal(deep, layered(plain, places))
    assert torch.equal(tile(layered(start, places), 2)[8:], layered(start, places))
