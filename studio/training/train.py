"""Trainer for both stages of the cascaded emoji GAN.

- ``base``: the 32 px text-conditional generator of :mod:`studio.models.cgan` against a spectral-norm
  residual discriminator with a projection head on the prompt embedding; hinge loss, a matching-aware
  term (real image + another emoji's caption counts as fake: free, because the projection head reuses the
  real features), DiffAugment, an EMA generator, bf16 autocast on CPUs that support it. ``--disc
  projected|both`` swaps in (or adds) a projected discriminator on frozen EfficientNet-Lite0 features
  (:mod:`studio.training.projected`); ``--recon-z zero`` anchors only z = 0 with the emoji's name by L1,
  ``--recon-z names`` every z of a row prompted with the emoji's name (keyword prompts stay free).
- ``upsampler``: the 4x upsampler, supervised L1 on real 32 -> 128 pairs whose 32 px input is blurred and
  noised so it copes with generated images, plus (``adv_weight`` > 0) a hinge adversarial term from a
  spectral-norm patch discriminator that sees the 128 px image beside the bicubic upscale of its 32 px input,
  so it judges whether the detail is real *for that input* (ESRGAN-style: an L1 run first, then both terms).

Data parallel on several processes (``torchrun``; gloo on CPU, NCCL on CUDA): every process samples its own
batch and the gradients are averaged with an all-reduce before each optimizer step (what
DistributedDataParallel does, written out so that the discriminator can be evaluated several times per step).

A run folder holds ``checkpoint.pt`` (weights + optimizer + RNG state, for exact resume; never shipped),
``snapshots/`` (EMA generator weights, safetensors) and ``samples/`` (grids). The model folder ``--out`` gets
the shipped weights (safetensors via :func:`studio.models.format.save_model`).

Modules, one job each: ``options`` (what a run is asked), ``networks`` (discriminators, model shapes),
``runs`` (set-up, checkpoint progress, run history, model folder), ``base_stage``, ``upsampler_stage``; this
module picks the stage and is the ``torchrun`` entry point (it does not import the CLI).
"""

from __future__ import annotations

import argparse
import sys

from studio.training.options import TrainError, TrainOptions, add_train_arguments, options_from_args


def train(options: TrainOptions) -> dict:
    """Run one stage; returns a summary dict (step, images/s, losses, minutes)."""
    for flag, rate in (("--lr-g", options.lr_g), ("--lr-d", options.lr_d)):
        if not 0.0 < rate <= 0.1:  # both stages: the upsampler's critic learns at lr_d
            raise TrainError(f"{flag} must lie above 0 and at most 0.1 (got {rate}).")
    if options.stage == "base":
        from studio.training.base_stage import train_base

        return train_base(options)
    if options.stage == "upsampler":
        from studio.training.upsampler_stage import train_upsampler

        return train_upsampler(options)
    raise TrainError(f"Unknown stage '{options.stage}' (use base or upsampler).")


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun -m studio.training.train ...`` (the options of ``gan-studio train``)."""
    parser = argparse.ArgumentParser(
        prog="torchrun -m studio.training.train", description=__doc__.splitlines()[0]
    )
    add_train_arguments(parser)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    args = parser.parse_args(argv)
    try:
        train(options_from_args(args))
    except (TrainError, FileNotFoundError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
