"""benchmarks/named_bench.py: which names a candidate's table changes (the names the benchmark times)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from studio.models.concepts import ConceptConditions, save_concepts

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "named_bench.py"
_SPEC = importlib.util.spec_from_file_location("named_bench", _PATH)
named_bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(named_bench)

V, PLACES, DIM = 8, 3, 4


def _folder(path: Path, layered: list[int], layers: np.ndarray) -> Path:
    path.mkdir()
    conditions = np.arange(V * DIM, dtype=np.float32).reshape(V, DIM)
    table = ConceptConditions(
        conditions, np.ones(V, bool), layers=np.asarray(layers, np.float32),
        layered=np.asarray(layered, np.int64), lent=np.ones(len(layered), bool),
    )  # fmt: skip
    save_concepts(path, table)
    return path


def test_layered_tables_give_the_rows_gained_lost_or_changed_not_every_layered_row(tmp_path):
    rows = np.random.default_rng(0).normal(size=(4, PLACES, DIM)).astype(np.float32)
    first = _folder(tmp_path / "first", [1, 3, 5], rows[:3])
    # 1 kept, 3 changed, 5 lost (back to its plain row), 6 gained
    last = _folder(tmp_path / "last", [1, 3, 6], [rows[0], rows[1] + 1, rows[3]])
    assert named_bench.changed_rows(first, last).tolist() == [3, 5, 6]
    # a folder timed against a copy of itself: every layered row, as before
    assert named_bench.changed_rows(first, first).tolist() == [1, 3, 5]
