"""The numbers of a concept-table ship rule (rules 137-139) beside their bars, read from what ``rows_chain.py`` wrote:
a markdown table to check a rule's reading against and to paste into the history.

    python scripts/rows_report.py --out runs/v74 --name K3 --base-name v22 --first-round 2650 --first-heart 402 \\
        --ab-reference runs/v72/ab_K2.json:arms.K2.judge-5500

It reads (k) the fresh keyword draws and the fixed 400 of the first round, (a) the rounds' means, (b) the hearts'
counts, (e) the named preview and (f) the A/B against ``--ab-reference`` (a JSON file and the dotted key of the base's
judge-5500 numbers in it). A step not yet written reads "not yet". It never opens the looks' round (``rv_L.json``, L =
first round + 40): the rule counts the looks before that file is read. What needs eyes (a new heart hole in the hearts'
grids, the looks, every changed name's pages where ``rows_chain --look-all`` drew them, the sample grid) is listed,
not judged; the rule's text, read in its order, decides.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

JUDGES = ("judge-5500", "shipped")
HEARTS_BOUND = (
    6732  # 66 x 102 px: the real red, pink, sparkling and white hearts' lowest count (rules 123-139)
)
NAMED_BOUND = 25.0  # ms, the named preview's p50 (the one-image goal)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() and path.stat().st_size else None


def _dig(data: dict, dotted: str):
    for key in dotted.split("."):
        data = data[key]
    return data


def _row(bar: str, label: str, base, arm, passes: bool | str | None) -> str:
    """``passes``: the bar's reading; None: its file is not written yet; a string: what to do instead (by eye)."""
    if isinstance(passes, str):
        verdict = passes
    else:
        verdict = "not yet" if passes is None else "passes" if passes else "**fails**"
    return f"| {bar} | {label} | {base} | {arm} | {verdict} |"


def _line(bar: str, label: str, data: dict | None, read: Callable[[dict], tuple]) -> str:
    """``read(data)`` gives (base, candidate, reading); a file not yet written (None) reads "not yet"."""
    return _row(bar, label, "–", "–", None) if data is None else _row(bar, label, *read(data))


def _at_least(margin: float) -> Callable[[float, float], bool]:
    return lambda base, arm: arm >= base + margin - 1e-9


def _detail(base: str, arm: str) -> Callable[[dict], tuple]:
    def read(means: dict) -> tuple:
        differs = means[arm]["detail where it differs"]
        shares = [differs[arm][k] / differs[base][k] for k in ("interior_detail", "edge_length")]
        was, now = (f"{differs[x]['interior_detail']} / {differs[x]['edge_length']}" for x in (base, arm))
        return was, f"{now} ({shares[0]:.1%} / {shares[1]:.1%})", min(shares) >= 0.95

    return read


def report(args: argparse.Namespace) -> list[str]:
    """The table's lines, in the rules' order."""
    out, base, arm = Path(args.out), args.base_name, args.name
    lines = [f"| bar | number | {base} | {arm} | reading |", "| --- | --- | --- | --- | --- |"]

    def both(numbers: dict, key: str | None, fine: Callable[[float, float], bool]) -> tuple:
        """The base's and the candidate's number (``numbers[name][key]``, or ``numbers[name]``) and the reading."""
        was, now = (numbers[name] if key is None else numbers[name][key] for name in (base, arm))
        return was, now, fine(was, now)

    def fixed(judge: str) -> Callable[[dict], tuple]:
        def read(first: dict) -> tuple:
            was, now = first[base][f"{judge} keywords"], first[arm][f"{judge} keywords"]
            fine = now[0] >= was[0] - 0.01 - 1e-9 and now[2] >= was[2] - 0.005 - 1e-9
            return " / ".join(map(str, was)), " / ".join(map(str, now)), fine

        return read

    def fresh(judge: str) -> Callable[[dict], tuple]:
        def read(drawn: dict) -> tuple:
            precision = drawn["judged"][judge]["precision"]
            return both({base: precision["base"], arm: precision["arm"]}, None, _at_least(0))

        return read

    keywords, first = _read(out / f"kw_{arm}.json"), _read(out / f"rv_{args.first_round}.json")
    for judge in JUDGES:
        lines.append(_line("k", f"fresh keyword precision, {judge} (no lower)", keywords, fresh(judge)))
    for judge in JUDGES:
        label = f"fixed 400 of round {args.first_round}, {judge}: precision (>= -0.01) / coverage / RMS (>= -0.005)"
        lines.append(_line("k", label, first, fixed(judge)))

    means = _read(out / f"means_{arm}.json")
    checks = [
        ("identity_top5", "identity top-5 (+0.005)", _at_least(0.005)),
        ("kid", "KID (no higher)", lambda b, a: a <= b),
        ("train gan_test", "training GAN-test (>= -0.005)", _at_least(-0.005)),
        ("heldout gan_test", "held-out GAN-test (>= -0.005)", _at_least(-0.005)),
    ]
    for key, name, fine in checks:
        for judge in JUDGES:
            lines.append(
                _line("a", f"{name}, {judge}, means of 4 rounds", means, lambda m, k=f"{judge} {key}", f=fine: both(m, k, f))
            )  # fmt: skip
    lines.append(
        _line("a", "holes where the real emoji is solid (<= +2%)", means,
              lambda m: both(m, "holes_where_real_solid", lambda b, a: a <= b * 1.02))
    )  # fmt: skip
    lines.append(_line("a", f"detail / edge where {arm} differs (>= 95%)", means, _detail(base, arm)))

    for start in (args.first_heart, args.first_heart + 6):
        label = f"hearts {start}-{start + 5}, deep-dip px (<= {HEARTS_BOUND:,}; a new heart hole: look at hearts{start}.png)"
        lines.append(
            _line("b", label, _read(out / f"hearts{start}.json"),
                  lambda h: both({k: v["hearts"] for k, v in h["arms"].items()}, None, lambda b, a: a <= HEARTS_BOUND))
        )  # fmt: skip

    look = args.first_round + 40
    eyes = f"by eye: count look{look}_*.png before rv_{look}.json is read; a blind check after"
    lines.append(
        _row("c", f"looks at round {look}: net / new tears, plainer (<= 2 of 24 each)", "–", "–", eyes)
    )
    if (out / f"all_{arm}_0.png").exists():  # rows_chain --look-all (rule 140's bar c2)
        pages = f"by eye: count all_{arm}_*.png before all_{arm}_names.json is read"
        lines.append(
            _row("c2", "every changed name beside the base's: none draws another thing", "–", "–", pages)
        )
    lines.append(
        _row(
            "d", "sample grid, no row worse", "–", "–", f"by eye: samples_{arm}.png beside samples_{base}.png"
        )
    )

    lines.append(
        _line("e", f"named preview p50, ms (<= {NAMED_BOUND:g})", _read(out / f"named_{arm}.json"),
              lambda n: both({k: n[k]["preview"]["p50"] for k in (base, arm)}, None, lambda b, a: a <= NAMED_BOUND))
    )  # fmt: skip

    ab = _read(out / f"ab_{arm}.json")
    file, _, where = args.ab_reference.partition(":")
    reference = _dig(json.loads(Path(file).read_text(encoding="utf-8")), where) if file else None
    drawn = None if ab is None or reference is None else {base: reference, arm: ab["arms"][arm]["judge-5500"]}
    for key, name in (
        ("identity_top5", "identity, English"), ("zh_identity_top5", "identity, Chinese"),
        ("de_identity_top5", "identity, German"), ("gan_test_heldout", "held-out"),
        ("gan_test_heldout_fresh", "fresh held-out"),
    ):  # fmt: skip
        lines.append(
            _line(
                "f",
                f"A/B {name}, spread off (>= -0.005)",
                drawn,
                lambda d, k=key: both(d, k, _at_least(-0.005)),
            )
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="the rule's runs folder (rows_chain.py's --out)")
    parser.add_argument("--name", required=True, help="the candidate's name")
    parser.add_argument("--base-name", required=True, help="the base's arm name (its folder's name)")
    parser.add_argument("--first-round", type=int, required=True)
    parser.add_argument("--first-heart", type=int, required=True)
    parser.add_argument(
        "--ab-reference", default="", help="FILE:dotted.key of the base's judge-5500 A/B numbers (spread off)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    print("\n".join(report(parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
