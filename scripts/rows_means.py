"""Means of rows_verify reports, leaf by leaf: a ship rule's bars read the mean of two round pairs (rules 111-120).

    python scripts/rows_means.py runs/v65/rv_1800.json runs/v65/rv_1820.json > runs/v65/means27.json

Numbers, and numbers in lists, are averaged over the reports (rounded to 4 places); a key missing from a later
report is averaged over those that have it; anything else (names, paths) is the first report's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def leaf_means(reports: list):
    first = reports[0]
    if isinstance(first, dict):
        return {key: leaf_means([r[key] for r in reports if key in r]) for key in first}
    if isinstance(first, list) and all(isinstance(r, list) and len(r) == len(first) for r in reports):
        return [leaf_means([r[i] for r in reports]) for i in range(len(first))]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return round(sum(reports) / len(reports), 4)
    return first


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: rows_means.py REPORT.json [REPORT.json ...]", file=sys.stderr)
        return 2
    reports = [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]
    print(json.dumps(leaf_means(reports), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
