"""Shared-keyword seed metrics: which prompts count, and that the numbers move with what seeds change."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from studio.models.cgan import BaseGenerator
from studio.training.dataset import load_dataset, make_synthetic_dataset
from studio.training.evaluate import keyword_metrics, shared_keywords
from studio.training.judge import Judge, judge_features
from studio.training.networks import base_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_dataset(make_synthetic_dataset(tmp_path_factory.mktemp("kw"), count=12))


def test_shared_keywords_are_captions_several_emoji_carry(data):
    picked = shared_keywords(data, count=10, min_emoji=4)
    texts = sorted(str(data.captions[row]) for row, _ in picked)
    assert texts == ["disc", "square"]  # names and "<name>, synthetic" belong to one emoji each
    for row, owners in picked:
        carriers = data.caption_owner[np.asarray(data.captions) == data.captions[row]]
        assert sorted(set(carriers.tolist())) == owners.tolist()
    assert shared_keywords(data, min_emoji=7) == []


def test_the_emoji_a_keyword_names_carries_it_when_asked(data):
    # emoji 1 (a square) renamed "disc": the name of one emoji and the keyword of every disc
    renamed = replace(data, names=["disc" if i == 1 else name for i, name in enumerate(data.names)])
    plain = dict((str(renamed.captions[row]), owners.tolist()) for row, owners in shared_keywords(renamed))
    named = dict(
        (str(renamed.captions[row]), owners.tolist()) for row, owners in shared_keywords(renamed, named=True)
    )
    assert plain.keys() == named.keys() == {"disc", "square"}  # the same keywords picked
    assert 1 not in plain["disc"] and named["disc"] == sorted([*plain["disc"], 1])
    assert named["square"] == plain["square"]  # no emoji is named "square"


class _IgnoresZ(torch.nn.Module):
    """A generator that draws the same picture for every seed."""

    def __init__(self, inner: BaseGenerator):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def z_weight(self):
        return self.inner.z_weight()

    def forward(self, z, e):
        return self.inner(torch.zeros_like(z), e)


def test_seed_metrics_see_whether_seeds_change_the_picture(data):
    from studio.models.cgan import rgba_uint8_to_premultiplied

    torch.manual_seed(0)
    generator = BaseGenerator(base_config(4, data.caption_emb.shape[1])).eval()
    judge = Judge(len(data.subgroups), width=4).eval()
    real = judge_features(judge, rgba_uint8_to_premultiplied(torch.from_numpy(data.images128)))
    free = keyword_metrics(generator, None, data, judge, 1.0, real, count=2, seeds=4)
    fixed = keyword_metrics(_IgnoresZ(generator), None, data, judge, 1.0, real, count=2, seeds=4)
    assert free["keywords"] == fixed["keywords"] == 2
    assert free["keyword_rms"] > 0 and free["sefa_rms"] > 0
    assert fixed["keyword_rms"] == pytest.approx(0.0, abs=1e-6)
    assert fixed["sefa_rms"] == pytest.approx(0.0, abs=1e-6)
    assert fixed["keyword_coverage"] <= 1.0  # one picture hits at most one emoji
    assert 0.0 <= free["keyword_precision"] <= 1.0
    # no emoji of the synthetic set is named as a keyword: both readings count the same hits
    assert free["keyword_precision_named"] == free["keyword_precision"]
    assert free["keyword_coverage_named"] == free["keyword_coverage"]


def test_a_picture_of_the_named_emoji_is_a_hit_only_in_the_named_reading(data):
    from studio.models.cgan import rgba_uint8_to_premultiplied

    # every seed draws emoji 1 (a square) exactly; emoji 1 renamed "disc", so for the keyword "disc" the
    # nearest real emoji of every seed is the emoji the keyword names, which carries no "disc" keyword
    renamed = replace(data, names=["disc" if i == 1 else name for i, name in enumerate(data.names)])
    picture = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[1:2]))

    class _DrawsOne(_IgnoresZ):
        def forward(self, z, e):
            return picture.expand(len(z), -1, -1, -1)

    torch.manual_seed(0)
    judge = Judge(len(data.subgroups), width=4).eval()
    real = judge_features(judge, rgba_uint8_to_premultiplied(torch.from_numpy(data.images128)))
    generator = _DrawsOne(BaseGenerator(base_config(4, data.caption_emb.shape[1])).eval())
    found = keyword_metrics(generator, None, renamed, judge, 1.0, real, count=2, seeds=4)
    # "disc": no hit as measured before, every seed a hit of one emoji when the named emoji counts;
    # "square": every seed a hit of one emoji (emoji 1 is a square) in both readings
    assert found["keyword_precision"] == pytest.approx(0.5)
    assert found["keyword_precision_named"] == pytest.approx(1.0)
    assert found["keyword_coverage"] == pytest.approx(0.5) and found[
        "keyword_coverage_named"
    ] == pytest.approx(1.0)
