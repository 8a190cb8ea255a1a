"""scripts/keyword_report.py: each keyword draw sorted by what spread did with it, and the precision of each kind."""

from __future__ import annotations

import numpy as np
from conftest import load_script

BASE = np.array([0, 0, 0, 1, 2, 3])  # emoji 0-2 are one emoji's skin tones
FITTED = np.array([True, True, True, True, True, False])
LAYERED = np.array([False, False, False, True, False, False])


def test_a_keyword_spread_leaves_alone_is_told_apart_by_its_bases():
    kinds = load_script("keyword_report").draw_kinds
    assert kinds(None, np.array([0, 1, 2]), BASE, FITTED, LAYERED) == ["alone", "alone: one_base"]
    assert kinds(None, np.array([0, 3]), BASE, FITTED, LAYERED) == ["alone", "alone: other"]


def test_a_spread_draw_is_sorted_by_the_concept_its_mix_weighs_most():
    kinds = load_script("keyword_report").draw_kinds
    carriers = np.array([3, 4])
    layered = kinds((np.array([4, 3]), np.array([0.3, 0.7])), carriers, BASE, FITTED, LAYERED)
    assert layered == [
        "spread",
        "spread: layered",
        "spread: top weight >= 0.6",
        "spread: top carries the keyword",
    ]
    plain = kinds((np.array([4, 5]), np.array([0.995, 0.005])), carriers, BASE, FITTED, LAYERED)
    assert plain[1:3] == ["spread: plain", "spread: top weight >= 0.99"]
    borrowed = kinds((np.array([5, 4]), np.array([0.5, 0.5])), carriers, BASE, FITTED, LAYERED)
    assert borrowed[1:] == ["spread: no_row", "spread: top weight >= 0", "spread: top does not carry it"]


def test_precision_per_kind_counts_each_draw_once_in_each_of_its_kinds():
    tally = load_script("keyword_report").tally
    found = tally([["spread", "spread: plain"], ["alone", "alone: one_base"], ["spread", "spread: layered"]],
                  np.array([False, False, True]))  # fmt: skip
    assert found["alone"] == {"draws": 1, "precision": 0.0}
    assert found["spread"] == {"draws": 2, "precision": 0.5}
    assert found["spread: layered"] == {"draws": 1, "precision": 1.0}
    assert list(found) == ["alone", "alone: one_base", "spread", "spread: layered", "spread: plain"]
