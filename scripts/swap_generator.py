"""A model folder with another base generator: a copy of ``--model`` whose ``generator.safetensors`` is a trainer's
EMA snapshot and whose ``model.json`` declares that snapshot's shape (its ``config.json``: a widened base's ``ch``).
Every other file stays byte for byte, so the concept table's rows, the wording and the vocabulary are the shipped
ones (the rows are conditions after the prompt layer, ``cond_dim`` wide at every width). The candidate of rule 91
and of a GPU arm's snapshot (scripts/gpu_train.sh). Training and documentation only.

    python scripts/swap_generator.py --model resources/models/emoji \
        --generator runs/gpu/w32/snapshots/g_ema_0004000.safetensors --out runs/gpu/W
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from studio.models.format import load_model


def swap_generator(model: Path, generator: Path, out: Path, config: Path | None = None) -> str:
    """Write the folder ``out``; returns its model hash (the folder loads, or this raises)."""
    config = config or generator.parent / "config.json"
    shape = json.loads(config.read_text(encoding="utf-8"))
    if out.exists():
        raise FileExistsError(f"'{out}' exists; give a new folder.")
    shutil.copytree(model, out)
    manifest_path = out / "model.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    base = manifest["architecture"]["base"]
    if {key: base.get(key) for key in ("z_dim", "embed_dim", "cond_dim")} != {
        key: shape.get(key) for key in ("z_dim", "embed_dim", "cond_dim")
    }:
        shutil.rmtree(out)
        raise ValueError(
            "The snapshot's z, prompt or condition size differs from the model's; only the width may."
        )
    manifest["architecture"]["base"] = {**base, **shape}
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.copyfile(generator, out / manifest.get("files", {}).get("generator", "generator.safetensors"))
    return load_model(out).hash


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("resources/models/emoji"))
    parser.add_argument("--generator", type=Path, required=True, help="a g_ema_*.safetensors snapshot")
    parser.add_argument("--config", type=Path, default=None, help="its config.json (default: beside it)")
    parser.add_argument("--out", type=Path, required=True, help="the new model folder")
    args = parser.parse_args()
    try:
        print(
            json.dumps(
                {
                    "out": str(args.out),
                    "hash": swap_generator(args.model, args.generator, args.out, args.config),
                }
            )
        )
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
