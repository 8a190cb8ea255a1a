"""Average generator snapshots in weight space (a "model soup").

``python -m studio.training.average --snapshot A.safetensors --snapshot B.safetensors --data data/emoji-usem3-kw
--out runs/soup/g_ema_soup.safetensors`` writes the parameter-wise weighted mean of snapshots of one shape
(by default equal weights), then recomputes the BatchNorm statistics over fresh batches exactly as the trainer
does before it writes a snapshot (:func:`studio.training.base_stage.standing_stats`): averaged running
statistics do not describe the averaged network. The snapshots' ``config.json`` is copied beside the output,
so the result is a snapshot like any other (``evaluate --snapshots``, ``scripts/ab_report.py``, ``package``).

Meant for descendants of one checkpoint (two arms continued from the same step), where the straight line
between the weights stays in the same basin; averaging unrelated runs gives noise, and the tool cannot tell.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from studio.models.cgan import BaseConfig, BaseGenerator
from studio.training.options import TrainError
from studio.training.runs import same_shapes, set_training_threads, write_weights


def read_snapshot(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, config JSON) of a snapshot; a clear TrainError when either cannot be read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path = path.parent / "config.json"
    try:
        state = load_file(str(path))
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, SafetensorError, json.JSONDecodeError) as exc:
        raise TrainError(f"Cannot read the snapshot '{path}' or its config.json ({exc}).") from exc
    return state, config


def average_states(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of floating-point tensors; integer buffers (BN batch counters) come from the first."""
    if len(states) != len(weights) or not states:
        raise TrainError("Give one weight per snapshot.")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise TrainError("Weights must be non-negative and not all zero.")
    total = float(sum(weights))
    keys = states[0].keys()
    if not all(same_shapes(state, states[0]) for state in states[1:]):
        raise TrainError("The snapshots do not have the same shape (another width or text encoder?).")
    out = {}
    for key in keys:
        first = states[0][key]
        if first.is_floating_point():
            acc = torch.zeros_like(first, dtype=torch.float64)
            for state, w in zip(states, weights):
                acc += state[key].double() * (w / total)
            out[key] = acc.to(first.dtype)
        else:
            out[key] = first.clone()
    return out


def average_snapshots(
    paths: list[Path], weights: list[float] | None, embeddings: torch.Tensor, out: Path, batches: int = 16
) -> Path:
    """Write the averaged snapshot (BN statistics recomputed over ``embeddings``) and its config.json."""

    from studio.training.base_stage import standing_stats

    read = [read_snapshot(Path(p)) for p in paths]
    configs = [c for _, c in read]
    if any(c != configs[0] for c in configs[1:]):
        raise TrainError(
            "The snapshots' config.json differ: only snapshots of one generator shape can be averaged."
        )
    weights = weights or [1.0] * len(paths)
    state = average_states([s for s, _ in read], weights)
    generator = BaseGenerator(BaseConfig.from_json(configs[0]))
    generator.load_state_dict(state)
    standing_stats(generator, embeddings, batches=batches)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_weights(generator.state_dict(), out)
    config_out = out.parent / "config.json"
    if config_out.resolve() != (Path(paths[0]).parent / "config.json").resolve():
        shutil.copyfile(Path(paths[0]).parent / "config.json", config_out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", action="append", required=True, help="a generator snapshot (repeat)")
    parser.add_argument("--weight", type=float, action="append", help="one per --snapshot (default: equal)")
    parser.add_argument("--data", required=True, help="the dataset whose caption embeddings re-estimate BN")
    parser.add_argument("--out", required=True, help="the averaged snapshot to write (.safetensors)")
    parser.add_argument(
        "--batches", type=int, default=16, help="batches of 64 that re-estimate BN statistics"
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        set_training_threads(args.threads)
        if len(args.snapshot) < 2:
            raise TrainError("Give at least two --snapshot files to average.")
        from studio.training.dataset import load_dataset

        data = load_dataset(Path(args.data))
        embeddings = torch.from_numpy(data.caption_emb.astype(np.float32))
        out = average_snapshots(
            [Path(p) for p in args.snapshot], args.weight, embeddings, Path(args.out), args.batches
        )
    except (TrainError, FileNotFoundError) as exc:
        print(f"average: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
