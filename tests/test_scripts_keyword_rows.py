"""scripts/keyword_rows.py: a draw whose keyword hit differs between the two tables goes to the changed row weighing most
in its spread mix; rows whose losses exceed their gains over the judges are dropped; a lent mix names the rows drawn."""

from __future__ import annotations

import numpy as np
from conftest import load_script


def test_a_flipped_draw_goes_to_the_changed_row_weighing_most_in_its_mix():
    attribute = load_script("keyword_rows").attribute
    mixes = [
        (np.array([1, 2, 3]), np.array([0.5, 0.3, 0.2])),  # 1 unchanged: goes to 2 (0.3 > 0.2)
        (np.array([2, 3]), np.array([0.1, 0.9])),  # goes to 3
        (np.array([3, 4]), np.array([0.6, 0.4])),  # goes to 3
        None,  # spread left it alone: unplaced
        (np.array([1, 5]), np.array([0.5, 0.5])),  # no changed row in its mix: unplaced
        (np.array([2, 3]), np.array([0.7, 0.3])),  # same hit in both: not counted
    ]
    before = np.array([False, True, True, True, False, True])
    after = np.array([True, False, False, False, True, True])
    found = attribute(mixes, np.array([2, 3]), before, after)
    assert found["gains"] == {2: 1, 3: 0}
    assert found["losses"] == {2: 0, 3: 2}
    assert found["unplaced"] == 2


def test_rows_losing_more_than_they_gain_over_the_judges_are_dropped():
    to_drop = load_script("keyword_rows").to_drop
    judged = {
        "a": {"gains": {2: 1, 3: 0, 7: 0}, "losses": {2: 0, 3: 2, 7: 1}},
        "b": {"gains": {2: 0, 3: 3, 7: 0}, "losses": {2: 1, 3: 0, 7: 0}},
    }
    # 2: 1 - 1 = 0 kept; 3: 0 - 2 + 3 - 0 = +1 kept; 7: -1 dropped
    assert to_drop(judged) == [7]
    assert to_drop({"a": {"gains": {1: 0}, "losses": {1: 0}}}) == []


class _Conditioner:
    """Concepts 0-2 fitted; held-out 3 borrows 1's row, held-out 4 borrows none; a prompt's embedding [k, ...]
    borrows concept k's row (k < 0: none)."""

    def __init__(self):
        self.table = type("T", (), {"fitted": np.array([True, True, True, False, False])})()
        self.vocabulary = type("V", (), {"embeddings": np.array([[0.0], [1.0], [2.0], [1.0], [-1.0]])})()

    def gate(self, embedding):
        concept = int(np.asarray(embedding).reshape(-1)[0])
        return (concept, 0.5) if concept >= 0 else (-1, 0.0)


def test_a_lent_mix_names_the_rows_drawn():
    lent_mix = load_script("keyword_rows").lent_mix
    conditioner = _Conditioner()
    concepts, weights = lent_mix((np.array([0, 3, 1, 4]), np.array([0.1, 0.2, 0.3, 0.4])), None, conditioner)
    assert concepts.tolist() == [0, 1]  # 3 draws 1's row; 4 draws none
    np.testing.assert_allclose(weights, [0.1, 0.5])
    alone = lent_mix(None, np.array([2.0]), conditioner)
    assert alone[0].tolist() == [2] and alone[1].tolist() == [1.0]
    assert lent_mix(None, np.array([-1.0]), conditioner) is None
