"""Shared-keyword seed metrics: which prompts count, and that the numbers move with what seeds change."""

from __future__ import annotations

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
