"""scripts/heldout_report.py: the held-out hits broken down by label, with the bases (an emoji and its skin tones)
resampled together, so a family that always hits or always misses moves the interval as one draw."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script


def _report(hits, base, group, resamples=4000):
    index = np.arange(len(base))
    names = {"group": ["faces", "flags"]}
    return load_script("heldout_report").breakdown(
        np.asarray(hits), index, {"group": np.asarray(group)}, names, np.asarray(base), resamples=resamples
    )


def test_means_hits_and_bases_per_label():
    # rounds x 4 emoji: emoji 0-2 are one base (skin tones), emoji 3 a base of its own
    hits = [[1, 1, 0, 1], [1, 0, 0, 1]]
    report = _report(hits, base=[7, 7, 7, 9], group=[0, 0, 0, 1])
    assert report["emoji"] == 4 and report["rounds"] == 2
    assert report["mean"] == pytest.approx(np.mean(hits), abs=1e-4)
    assert report["bases"] == 2 and report["bases_by_size"] == {"1": 1, "3": 1}
    assert report["group"]["faces"] == {"emoji": 3, "hits": 3, "mean": 0.5}
    assert report["group"]["flags"] == {"emoji": 1, "hits": 2, "mean": 1.0}
    assert list(report["group"]) == ["faces", "flags"]  # most emoji first


def test_a_family_moves_the_interval_as_one_draw():
    # 20 emoji: one family of 10 that never hits, 10 single bases that always do. Resampled per emoji, the mean
    # would stay near 0.5; resampled per base, a draw with one or more copies of the family swings it widely.
    hits = [[0] * 10 + [1] * 10]
    base = [0] * 10 + list(range(1, 11))
    families = _report(hits, base, [0] * 20)["bootstrap_over_bases"]
    singles = _report(hits, list(range(20)), [0] * 20)["bootstrap_over_bases"]
    assert families["sd"] > 1.5 * singles["sd"]
    low, high = families["interval_95"]
    assert low < 0.5 < high and high - low > 0.3


def test_rounds_parse_and_bad_hits_are_refused():
    script = load_script("heldout_report")
    assert script.parse_rounds("0-3") == [0, 1, 2, 3]
    assert script.parse_rounds("0,5") == [0, 5]
    with pytest.raises(ValueError, match="rounds x held-out emoji"):
        _report([[1, 0]], base=[0, 1, 2], group=[0, 0, 0])
