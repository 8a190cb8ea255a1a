"""scripts/rows_look_all.py: every name a candidate's table changes, drawn beside the base's."""

from __future__ import annotations

import numpy as np
from conftest import load_script

from studio.models.concepts import ConceptConditions, save_concepts

look_all = load_script("rows_look_all")


def _table(path, layered, layers):
    conditions = np.arange(16 * 2, dtype=np.float32).reshape(16, 2)
    table = ConceptConditions(
        conditions, np.ones(16, bool), layers=np.asarray(layers, np.float32),
        layered=np.asarray(layered, np.int64), lent=np.ones(len(layered), bool),
    )  # fmt: skip
    path.mkdir()
    return save_concepts(path, table)


def test_changed_names_are_the_rows_gained_lost_or_changed_in_name_order(tmp_path):
    rows = np.arange(4 * 7 * 2, dtype=np.float32).reshape(4, 7, 2)
    base = _table(tmp_path / "base", [3, 9, 5], rows[:3])
    changed_row = rows[2] + 1
    # 9 kept as it was, 5 replaced, 1 and 12 added, 3 lost (the arm draws its plain row: v24's child, rule 140)
    arm = _table(tmp_path / "arm", [12, 9, 5, 1], [rows[3], rows[1], changed_row, rows[0]])
    assert look_all.changed_names(base, arm) == [1, 3, 5, 12]
    assert look_all.changed_names(base, base) == []


def test_pages_lay_rows_out_in_columns_and_fill_the_last_page_white():
    width = 5 * look_all.TILE
    rows = [np.full((look_all.TILE, width, 3), k, np.uint8) for k in range(40)]
    out = look_all.pages(rows)
    per_page = look_all.PER_COLUMN * look_all.COLUMNS
    assert len(out) == 2 and per_page == 36
    height = look_all.PER_COLUMN * look_all.TILE
    assert all(p.shape == (height, 3 * width + 2 * look_all.GAP, 3) for p in out)
    first = out[0]
    # row 13 (index 12) opens the second column, after the grey gap
    assert first[0, 0, 0] == 0 and first[look_all.TILE, 0, 0] == 1
    assert first[0, width, 0] == look_all.GAP_GREY and first[0, width + look_all.GAP, 0] == 12
    # the second page: rows 36-39, then white
    assert out[1][0, 0, 0] == 36 and out[1][4 * look_all.TILE, 0, 0] == 255
    assert look_all.pages([]) == []
