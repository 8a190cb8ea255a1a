"""scripts/restore_rows.py: named emoji's layered rows put back to the base's in a candidate's table."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script

restore_rows = load_script("restore_rows")


def _table(layered, seed, names=6):
    rng = np.random.default_rng(seed)
    return {
        "layered": np.asarray(layered, np.int64),
        "layers": rng.normal(size=(len(layered), 7, 4)).astype(np.float32),
        "lent": np.arange(len(layered), dtype=np.uint8) % 2,
        "conditions": np.ones((names, 4), np.float32),
        "high": np.ones(names, np.float32),
    }


def test_a_row_the_base_lacks_is_dropped_and_one_it_has_is_put_back():
    base, arm = _table([1, 4], seed=0), _table([0, 1, 3, 4], seed=1)
    out = restore_rows.restore(base, arm, [3, 4])
    assert out["layered"].tolist() == [0, 1, 4]  # 3 dropped: the base draws it by its plain row
    assert np.array_equal(out["layers"][2], base["layers"][1]) and out["lent"][2] == base["lent"][1]
    # the rows not named stay the arm's, and the other tensors are the arm's own
    assert (
        np.array_equal(out["layers"][:2], arm["layers"][:2])
        and out["lent"][:2].tolist() == arm["lent"][:2].tolist()
    )
    assert out["conditions"] is arm["conditions"]
    again = restore_rows.restore(base, out, [3, 4])  # running it again changes nothing more
    assert all(np.array_equal(again[k], out[k]) for k in out)
    # a name the base has a row for and the arm does not gets the base's back
    added = restore_rows.restore(base, _table([0], seed=2), [1])
    assert added["layered"].tolist() == [0, 1] and np.array_equal(added["layers"][1], base["layers"][0])


def test_a_name_whose_own_condition_differs_is_refused():
    base, arm = _table([1], seed=0), _table([1], seed=1)
    arm["conditions"][1] += 1
    with pytest.raises(ValueError, match="conditions"):
        restore_rows.restore(base, arm, [1])
    assert restore_rows.restore(base, arm, [0])["layered"].tolist() == [1]  # another name's is no matter
