"""Widen a trained base generator without changing what it draws (Net2WiderNet, Chen et al., ICLR 2016).

Every layer of :class:`studio.models.cgan.BaseGenerator` gets ``new_ch / ch`` times the channels. The first
``C`` channels of a widened layer are the old ones; each extra channel copies a randomly chosen old one (its
incoming weights, bias, conditional-BatchNorm rows and running statistics), and every layer that reads the
copies gets that old channel's outgoing weights split between them, in random shares that sum to 1. A copy
then carries exactly the activation of its original (BatchNorm sees the same statistics), the sum the next
layer forms is the old one, and the picture is the same up to float rounding, in training mode as in eval
mode. The shares differ between copies, so their gradients differ and training can pull them apart.

    python -m studio.training.widen --generator G.safetensors --ch 24 --out runs/w/g_ema_0000000.safetensors

writes the wider weights with a ``config.json`` beside them (the snapshot layout), ready for
``gan-studio train --stage base --ch 24 --init-generator``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from studio.models.cgan import BaseConfig
from studio.models.tensor_file import save_tensors

__all__ = ["widen_state", "main"]


class _Widening:
    """One layer's channel map: ``source[j]`` is the old channel new channel ``j`` copies, ``share[j]`` the
    part of that old channel's outgoing weight it carries (the shares of one old channel sum to 1)."""

    def __init__(self, old: int, new: int, generator: torch.Generator):
        if new < old:
            raise ValueError(f"cannot widen {old} channels to {new}")
        extra = torch.randint(0, old, (new - old,), generator=generator)
        self.source = torch.cat([torch.arange(old), extra])
        count = torch.bincount(self.source, minlength=old)
        # random positive shares per copy, normalised within each old channel
        raw = 0.5 + torch.rand(new, generator=generator, dtype=torch.float64)
        raw[:old] = torch.where(count > 1, raw[:old], torch.ones(old, dtype=torch.float64))
        total = torch.zeros(old, dtype=torch.float64).index_add_(0, self.source, raw)
        self.share = raw / total[self.source]

    def rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Copy along dim 0 (a layer's outputs, or its per-channel statistics)."""
        return tensor[self.source].clone()

    def columns(self, tensor: torch.Tensor) -> torch.Tensor:
        """Copy along dim 1 and split each old channel's weight between its copies (a layer's inputs)."""
        shape = [1, -1] + [1] * (tensor.dim() - 2)
        return (tensor[:, self.source].double() * self.share.view(shape)).to(tensor.dtype)


def widen_state(state: dict, config: BaseConfig, new_ch: int, seed: int = 0) -> tuple[dict, BaseConfig]:
    """A ``BaseGenerator`` state dict of ``config`` widened to ``new_ch`` (same ``channel_mult``), and its config.

    Class-conditional and text-conditional generators alike: the conditioning path is not widened."""
    if new_ch < config.ch:
        raise ValueError(f"--ch {new_ch} is narrower than the generator's {config.ch}")
    new_config = replace(config, ch=new_ch)
    generator = torch.Generator().manual_seed(seed)
    widths = [(config.ch * m, new_ch * m) for m in config.channel_mult]
    stage = [_Widening(old, new, generator) for old, new in widths]
    out = {k: v.clone() for k, v in state.items()}

    def norm(prefix: str, widening: _Widening) -> None:
        for name in (
            "bn.running_mean",
            "bn.running_var",
            "gain.weight",
            "gain.bias",
            "bias.weight",
            "bias.bias",
        ):
            out[f"{prefix}.{name}"] = widening.rows(state[f"{prefix}.{name}"])

    # fc: rows are channel-major (view(-1, C, 4, 4)): 16 rows per channel
    first = stage[0]
    index = (first.source[:, None] * 16 + torch.arange(16)[None, :]).reshape(-1)
    out["fc.weight"] = state["fc.weight"][index].clone()
    out["fc.bias"] = state["fc.bias"][index].clone()
    for i, (inp, outp) in enumerate(zip(stage[:-1], stage[1:])):
        p = f"blocks.{i}"
        mid = _Widening(widths[i + 1][0], widths[i + 1][1], generator)
        norm(f"{p}.norm1", inp)
        out[f"{p}.conv1.weight"] = mid.rows(inp.columns(state[f"{p}.conv1.weight"]))
        out[f"{p}.conv1.bias"] = mid.rows(state[f"{p}.conv1.bias"])
        norm(f"{p}.norm2", mid)
        out[f"{p}.conv2.weight"] = outp.rows(mid.columns(state[f"{p}.conv2.weight"]))
        out[f"{p}.conv2.bias"] = outp.rows(state[f"{p}.conv2.bias"])
        out[f"{p}.skip.weight"] = outp.rows(inp.columns(state[f"{p}.skip.weight"]))
        out[f"{p}.skip.bias"] = outp.rows(state[f"{p}.skip.bias"])
    last = stage[-1]
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[f"out_norm.{name}"] = last.rows(state[f"out_norm.{name}"])
    out["out_conv.weight"] = last.columns(state["out_conv.weight"])
    return out, new_config


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import load_file

    parser = argparse.ArgumentParser(
        prog="python -m studio.training.widen", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--generator", type=Path, required=True, help="a model folder or a g_ema snapshot")
    parser.add_argument("--ch", type=int, required=True, help="the new width")
    parser.add_argument("--out", type=Path, required=True, help="the widened snapshot (.safetensors)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = args.generator / "generator.safetensors" if args.generator.is_dir() else args.generator
    if (source.parent / "config.json").exists():
        config = BaseConfig.from_json(json.loads((source.parent / "config.json").read_text(encoding="utf-8")))
    else:
        info = json.loads((source.parent / "model.json").read_text(encoding="utf-8"))
        config = BaseConfig.from_json(info["architecture"]["base"])
    try:
        state, new_config = widen_state(load_file(str(source)), config, args.ch, args.seed)
    except (ValueError, KeyError) as exc:
        print(f"widen: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(args.out, state)
    (args.out.parent / "config.json").write_text(json.dumps(new_config.to_json()), encoding="utf-8")
    print(f"widened {source} from ch {config.ch} to {args.ch}: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
