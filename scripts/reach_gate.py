"""Give a model folder's concept table a gate per row (rule 62, session 40; shipped in v7 and v8 by rules 63-64):
rows whose own drawing passes a wide tear check reach further (their gate rises from ``--low`` to ``--high``); rows
that fail it keep the table's gate.

    python scripts/reach_gate.py --model resources/models/emoji --out runs/v24/R

The check, per fitted row: ``--seeds`` drawings (seed ``--first-seed + seeds x row + k``, psi 1) at 128 px from the
row and from its name's projection; pixels whose alpha lies more than 0.5 below its ``--closing`` px closing
(``studio.training.base_stage.deep_dips``); the row fails when its mean count exceeds the projection's by more than
``--margin``. The hearts' count closes 7 px; the strips v6's "growing heart" row draws are wider, hence 15. The
output folder is a copy of ``--model`` with the new table (rows unchanged, metadata kept plus a ``reach`` record).
Training and documentation only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from studio.models.concepts import concepts_metadata, load_concepts, save_concepts
from studio.models.format import CONCEPTS_FILE, load_model
from studio.models.holes import deep_dips
from studio.models.vocabulary import load_vocabulary
from studio.training.evaluate import latents


@torch.inference_mode()
def wide_dips(model, table, vocabulary, seeds: int, first_seed: int, closing: int, batch: int = 32):
    """Per concept: the mean wide deep-dip count of its row's drawings and of its projection's (zeros where
    unfitted)."""
    generator, upsampler = model.generator.eval(), model.upsampler.eval()
    rows = np.flatnonzero(table.fitted)
    conditions = torch.from_numpy(table.conditions)
    drawn, projected = np.zeros(len(table.fitted)), np.zeros(len(table.fitted))
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        z = latents(
            [first_seed + seeds * int(i) + k for i in part for k in range(seeds)], generator.config.z_dim, 1.0
        )
        names = torch.from_numpy(np.asarray(vocabulary.embeddings[part], np.float32))
        own = conditions[torch.from_numpy(part)].repeat_interleave(seeds, 0)
        projection = generator.condition(names).float().repeat_interleave(seeds, 0)
        for out, condition in ((drawn, own), (projected, projection)):
            counts = deep_dips(upsampler(generator.synthesize(z, condition)), closing).float()
            out[part] = counts.view(len(part), seeds).mean(1).numpy()
    return drawn, projected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model folder with a concept table")
    parser.add_argument("--out", required=True, help="the new model folder")
    parser.add_argument("--low", type=float, default=0.65)
    parser.add_argument("--high", type=float, default=0.80)
    parser.add_argument("--closing", type=int, default=15)
    parser.add_argument("--margin", type=float, default=200.0)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=950_000_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source, out = Path(args.model), Path(args.out)
    model = load_model(source)
    vocabulary = load_vocabulary(model.info)
    table = load_concepts(model.info, vocabulary)
    if table is None:
        raise SystemExit(f"{source} has no concept table.")
    started = time.time()
    drawn, projected = wide_dips(model, table, vocabulary, args.seeds, args.first_seed, args.closing)
    keep = table.fitted & (drawn > projected + args.margin)
    low = np.where(keep, table.low, args.low).astype(np.float32)
    high = np.where(keep, table.high, args.high).astype(np.float32)
    metadata = concepts_metadata(source / CONCEPTS_FILE)
    record = {
        "rule": 62, "low": args.low, "high": args.high, "closing_px": args.closing, "margin_px": args.margin,
        "seeds": args.seeds, "first_seed": args.first_seed, "rows_kept_at_table_gate": int(keep.sum()),
    }  # fmt: skip
    metadata["reach"] = json.dumps(record)
    shutil.copytree(source, out, dirs_exist_ok=True)
    save_concepts(out, replace(table, row_low=low, row_high=high), metadata)
    kept = sorted(np.flatnonzero(keep), key=lambda i: projected[i] - drawn[i])
    print(json.dumps(record | {"seconds": round(time.time() - started, 1)}))
    print(
        "kept at the table's gate:",
        ", ".join(vocabulary.names[i] for i in kept[:20]),
        "…" if len(kept) > 20 else "",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
