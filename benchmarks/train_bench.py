"""How fast the base stage trains at each generator width and batch: steady-state img/s of the real trainer
(prints JSON). The issue asks for img/s at each width before a wider base is trained.

    python benchmarks/train_bench.py --data data/emoji-usem3-kw [--device cuda] [--configs 16x32,24x32,32x32]
        [--steps 400] [--threads 1] [--bf16 auto|on|off]

Each config (``CHxBATCH``) is a fresh run of ``train_base`` (the shipped base's recipe: conventional
discriminator, L1 on the rows prompted by a name, no checkpoint written before the end) for ``--steps`` steps in a throw-away folder. The trainer
logs img/s every 25 steps; the rate reported is the median of those windows after the first two (the first
steps pay for allocation and kernel selection), beside the whole run's mean. Configs run one after another,
so on a shared machine compare ratios from one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from studio.engine.bench import machine_report
from studio.training.options import TrainOptions
from studio.training.train import train

RATE = re.compile(r"^step (\d+) \| (\d+) img/s", re.MULTILINE)


def parse_config(text: str) -> tuple[int, int]:
    ch, batch = text.lower().split("x")
    return int(ch), int(batch)


def steady_rate(log: str) -> tuple[float | None, int]:
    """Median img/s over the logged windows after the first two, and how many windows that median saw."""
    rates = [float(m.group(2)) for m in RATE.finditer(log)][2:]
    return (statistics.median(rates) if rates else None), len(rates)


def bench_one(
    data: str, device: str | None, ch: int, batch: int, steps: int, threads: int | None, bf16: bool | None
) -> dict:
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        options = TrainOptions(
            data=Path(data),
            out=Path(tmp) / "model",
            run=Path(tmp) / "run",
            stage="base",
            steps=steps,
            batch=batch,
            ch=ch,
            device=device,
            threads=threads,
            bf16=bf16,
            recon_z="names",  # the shipped base's recipe (v2 to v4)
            checkpoint_minutes=1e9,
            sample_minutes=1e9,
        )
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            summary = train(options)
    rate, windows = steady_rate(log.getvalue())
    return {
        "ch": ch,
        "batch": batch,
        "steps": steps,
        "steady_img_per_s": rate,
        "windows": windows,
        "run_img_per_s": summary.get("img_per_s"),
        "bf16": summary.get("bf16"),
        "device": summary.get("device"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a dataset folder (gan-studio dataset build)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    parser.add_argument("--configs", default="16x32,24x32,32x32", help="comma-separated CHxBATCH")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads torch may use")
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="bf16 autocast (auto: the trainer's choice)",
    )
    args = parser.parse_args()
    report = {"machine": machine_report(), "runs": []}
    if torch.cuda.is_available():
        report["machine"]["gpu"] = torch.cuda.get_device_name()
    bf16 = {"auto": None, "on": True, "off": False}[args.bf16]
    for text in args.configs.split(","):
        ch, batch = parse_config(text)
        report["runs"].append(bench_one(args.data, args.device, ch, batch, args.steps, args.threads, bf16))
        print(json.dumps(report["runs"][-1]), flush=True, file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
