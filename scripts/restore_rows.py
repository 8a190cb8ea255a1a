"""Put named emoji's layered rows back to the base's in a candidate's concept table, in place.

    python scripts/restore_rows.py --base runs/v75/v23 --arm runs/v75/K4 --name "child: medium-light skin tone" \
        --json runs/v75/restored_K4.json

A row choice takes whole rows; when a rule names a row that must not ship (rule 140: v23's "child: medium-light skin
tone", which draws a disc), this makes the candidate draw that name exactly as the base does: the name's layered row
(``layered``, ``layers``, ``lent``) becomes the base's, or goes where the base has none. Every other tensor and every
other row is left as it is; a name whose per-name tensors (``conditions``, ``high``, ``low``, ``fitted``) differ
from the base's is refused, since then the row alone would not draw the base's picture. The table is written
atomically (a run cut off leaves the old one); running it again changes nothing more.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

NAME_TENSORS = ("conditions", "high", "low", "fitted")


def restore(
    base: dict[str, np.ndarray], arm: dict[str, np.ndarray], names: list[int]
) -> dict[str, np.ndarray]:
    """``arm``'s tensors with the layered rows of ``names`` (emoji indices) made ``base``'s; rows stay in the order of
    their emoji, as the row choice writes them."""
    for key in NAME_TENSORS:
        if key in arm and any(not np.array_equal(base[key][i], arm[key][i]) for i in names):
            raise ValueError(
                f"'{key}' differs from the base's for a named emoji: its row alone is not the base's"
            )
    rows = {int(i): (arm["layers"][k], arm["lent"][k]) for k, i in enumerate(arm["layered"])}
    base_rows = {int(i): (base["layers"][k], base["lent"][k]) for k, i in enumerate(base["layered"])}
    for i in names:
        if i in base_rows:
            rows[i] = base_rows[i]
        else:
            rows.pop(i, None)
    order = sorted(rows)
    out = dict(arm)
    out["layered"] = np.asarray(order, dtype=arm["layered"].dtype)
    out["layers"] = np.stack([rows[i][0] for i in order]).astype(arm["layers"].dtype)
    out["lent"] = np.asarray([rows[i][1] for i in order], dtype=arm["lent"].dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the shipped folder")
    parser.add_argument("--arm", required=True, help="the candidate's folder (its table is rewritten)")
    parser.add_argument("--name", action="append", required=True, help="an emoji's English name (repeatable)")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--json", required=True, help="what was restored (written last)")
    args = parser.parse_args(argv)

    from safetensors import safe_open
    from safetensors.numpy import load_file

    from studio.models.tensor_file import save_tensors
    from studio.training.dataset import load_dataset

    names = [str(n) for n in load_dataset(args.data).names]
    missing = [n for n in args.name if n not in names]
    if missing:
        parser.error(f"no emoji is named {missing[0]!r}")
    index = [names.index(n) for n in args.name]
    base_table, arm_table = Path(args.base) / "concepts.safetensors", Path(args.arm) / "concepts.safetensors"
    base, arm = load_file(str(base_table)), load_file(str(arm_table))
    with safe_open(str(arm_table), "np") as f:
        metadata = f.metadata()
    before = {int(i) for i in arm["layered"]}
    restored = restore(base, arm, index)
    save_tensors(arm_table, restored, metadata)  # atomic: a run cut off leaves the old table
    report = {
        "base": args.base,
        "arm": args.arm,
        "names": args.name,
        "had_rows": [n for n, i in zip(args.name, index, strict=True) if i in before],
        "layered_rows": int(len(restored["layered"])),
    }
    Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
