"""What the second-row check costs: the alpha closings behind every dip count and ``second_or_first``, as the code
computes them (doubling window maxima, studio/models/holes.py, since session 50) beside torch's ``max_pool2d`` (the
code until then, inline here as the reference), taking turns in one run (prints JSON).

    python benchmarks/holes_bench.py [--threads 1]

One 128 px picture (a live preview's case: a named prompt whose table has a second row pays four closings) and a
batch of 64 (the concept fit's screen, the evaluations). Medians in ms over three alternating passes; the two give
the same integers (asserted).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from studio.engine.bench import machine_report
from studio.models import holes


def pool_square_max(x: torch.Tensor, size: int) -> torch.Tensor:
    """The closings' dilation as it was: two separable max-pools."""
    pad = size // 2
    return F.max_pool2d(F.max_pool2d(x, (1, size), 1, (0, pad)), (size, 1), 1, (pad, 0))


def timings(fn, n: int) -> list[float]:
    for _ in range(5):
        fn()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict = {"machine": machine_report()}
    generator = torch.Generator().manual_seed(0)
    for batch, n in ((1, 300), (64, 20)):
        a = torch.rand(batch, 4, 128, 128, generator=generator) * 2 - 1
        b = torch.rand(batch, 4, 128, 128, generator=generator) * 2 - 1
        assert torch.equal(holes._square_max(a[:, 3:4], 15), pool_square_max(a[:, 3:4], 15))
        cases = {
            "closing 15 px": lambda a=a: holes.alpha_closing(a[:, 3:4], 15),
            "closing 7 px": lambda a=a: holes.alpha_closing(a[:, 3:4], 7),
            "second_or_first (margins 200 / 600)": lambda a=a, b=b: holes.second_or_first(a, b, 200, 600),
        }
        found: dict = {"pool": {}, "doubling": {}}
        for rep in range(3):
            for arm in ("pool", "doubling") if rep % 2 == 0 else ("doubling", "pool"):
                kept = holes._square_max
                if arm == "pool":
                    holes._square_max = pool_square_max
                try:
                    for what, fn in cases.items():
                        found[arm].setdefault(what, []).extend(timings(fn, n))
                finally:
                    holes._square_max = kept
        report[f"batch {batch}"] = {
            what: {arm: round(1000 * float(np.median(found[arm][what])), 3) for arm in found}
            | {"ratio": round(float(np.median(found["pool"][what]) / np.median(found["doubling"][what])), 1)}
            for what in cases
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
