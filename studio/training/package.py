"""Assemble a shippable model folder from trained pieces.

``python -m studio.training.package --generator runs/base/snapshots/g_ema_0001234.safetensors
--upsampler runs/upsampler/upsampler.safetensors --data data/emoji --out resources/models/emoji``

writes ``model.json`` + ``generator.safetensors`` + ``upsampler.safetensors`` (through
:func:`studio.models.format.save_model`), ``vocabulary.json`` + ``vocabulary.safetensors`` (every emoji's
name, group, subgroup and name embedding) and copies ``judge.safetensors`` when given. Never optimizer
state: only the EMA generator and the upsampler weights are read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file

from studio.models.cgan import BaseConfig, BaseGenerator, Upsampler, UpsamplerConfig
from studio.models.format import save_model
from studio.models.vocabulary import dataset_aliases, dataset_keywords, save_vocabulary
from studio.training.dataset import load_dataset
from studio.training.networks import upsampler_config
from studio.training.runs import default_manifest


def package_model(
    generator_path: Path,
    upsampler_path: Path,
    data_dir: Path,
    out: Path,
    base_config: BaseConfig,
    up_config: UpsamplerConfig,
    extra: dict | None = None,
    judge_path: Path | None = None,
) -> Path:
    generator = BaseGenerator(base_config)
    generator.load_state_dict(load_file(str(generator_path)))
    upsampler = Upsampler(up_config)
    upsampler.load_state_dict(load_file(str(upsampler_path)))
    data = load_dataset(data_dir)
    manifest = default_manifest(data)
    previous = out / "model.json"
    if previous.exists():
        old = json.loads(previous.read_text(encoding="utf-8"))
        manifest.update(
            {k: old[k] for k in ("metrics", "training", "default_truncation", "version") if k in old}
        )
    manifest.update(extra or {})
    training = dict(manifest.get("training", {}))
    training["dataset_sha256"] = data.manifest.get("sha256", "")
    training["dataset_packages"] = data.manifest.get("packages", {})
    manifest["training"] = training
    save_model(out, manifest, generator.eval(), upsampler.eval())
    entries = [
        {"name": name, "group": data.groups[g], "subgroup": data.subgroups[s]}
        for name, g, s in zip(data.names, data.group, data.subgroup)
    ]
    save_vocabulary(out, entries, data.name_embeddings(), dataset_aliases(data), dataset_keywords(data))
    if judge_path is not None and Path(judge_path).resolve() != (out / "judge.safetensors").resolve():
        shutil.copyfile(judge_path, out / "judge.safetensors")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", required=True, help="EMA generator snapshot (safetensors)")
    parser.add_argument("--config", help="the snapshot's config.json (default: beside it)")
    parser.add_argument("--upsampler", required=True, help="upsampler weights (safetensors)")
    parser.add_argument("--upsampler-ch", type=int, default=32)
    parser.add_argument("--data", default="data/emoji")
    parser.add_argument("--out", default="resources/models/emoji")
    parser.add_argument("--judge", default=None)
    parser.add_argument("--truncation", type=float, default=None)
    parser.add_argument("--training-json", default=None, help="a JSON file merged into the 'training' block")
    args = parser.parse_args(argv)
    generator_path = Path(args.generator)
    config_path = Path(args.config) if args.config else generator_path.parent / "config.json"
    base = BaseConfig.from_json(json.loads(config_path.read_text(encoding="utf-8")))
    extra: dict = {}
    if args.truncation is not None:
        extra["default_truncation"] = args.truncation
    out = Path(args.out)
    package_model(
        generator_path,
        Path(args.upsampler),
        Path(args.data),
        out,
        base,
        upsampler_config(args.upsampler_ch),
        extra,
        Path(args.judge) if args.judge else None,
    )
    if args.training_json:
        path = out / "model.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest.setdefault("training", {}).update(
            json.loads(Path(args.training_json).read_text(encoding="utf-8"))
        )
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
