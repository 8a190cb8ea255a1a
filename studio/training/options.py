"""What a training run is asked to do: its options (torch-free, so the CLI builds its parser without torch)
and their command-line form, shared by ``gan-studio train`` and ``torchrun -m studio.training.train``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA = "data/emoji"
DEFAULT_FEATURES = "data/efficientnet-lite0.safetensors"
DEFAULT_AUGMENT = "color,translation,cutout"  # DiffAugment's policy (studio.training.augment)
# the hole term (--hole-weight, studio.training.base_stage.alpha_holes)
HOLE_SIZE = 3  # px of the 32 px alpha's closing: a hole or notch up to about this wide counts
HOLE_DEPTH = 0.5  # how far below its closing alpha must lie to count (studio.models.holes.DIP_DEPTH)
CHECKPOINT = "checkpoint.pt"


class TrainError(RuntimeError):
    """Training cannot start; one sentence."""


@dataclass
class TrainOptions:
    data: Path
    out: Path
    stage: str = "base"
    resume: bool = False
    device: str | None = None
    minutes: float | None = None
    steps: int | None = None
    batch: int | None = None
    ch: int | None = None
    d_ch: int | None = None  # base stage: the discriminator's width when it differs from the generator's
    run: Path | None = None
    threads: int | None = None
    seed: int = 0
    checkpoint_minutes: float = 3.0
    sample_minutes: float = 6.0
    log_every: int = 25
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    ema_decay: float = 0.999
    # base stage: the EMA generator averages from the first step (it starts at --init-generator's weights) instead
    # of following the generator exactly for the first EMA_START steps
    ema_from_init: bool = False
    # base stage: from this step the learning rates fall on a cosine to 0 at ``steps`` (None: constant)
    lr_decay_from: int | None = None
    mismatch_weight: float = 0.5
    recon_weight: float = 4.0  # L1 between G(z, caption) and that emoji's render (0: pure GAN)
    adv_weight: float = 0.01  # upsampler: weight of the adversarial term next to L1 (0: L1 only)
    dip_augment: float = 0.0  # upsampler: share of inputs given faint dips its 128 px target does not have
    caption_name_prob: float = 0.5
    disc: str = "conv"  # conv (SN-ResNet on RGBA), projected (frozen EfficientNet-Lite0 features) or both
    conv_weight: float = 0.25  # disc "both": the conventional RGBA term's weight beside the projected one
    recon_z: str = "all"  # L1 anchor on every z ("all"), on z = 0 with the emoji's own name ("zero"), or on
    # every z of the rows prompted with the emoji's own name ("names": keywords and other captions stay free)
    diversity_weight: float = 0.0  # mode-seeking term on rows not prompted by a name: two z, pictures apart
    name_languages: str = "en"  # which captions are names for the two above: the English one, or "all"
    other_names_prob: float = 0.0  # share of name draws that take the name in another language (needs "all")
    features: Path = Path(DEFAULT_FEATURES)
    projected_size: int = 64  # the projected discriminator's input size (px)
    init_generator: Path | None = None  # start the base generator (and its EMA) from these weights
    init_discriminator: Path | None = None  # start the discriminators from a run's d_*.safetensors snapshot
    init_upsampler: Path | None = None  # upsampler stage: start from these weights (its critic fresh)
    d_warmup_steps: int = 0  # a run's first steps: only the discriminators learn (a fresh D, a given G)
    cond_noise: float = 0.0  # the generator reads each caption embedding moved by noise of this length
    augment: str = DEFAULT_AUGMENT  # base stage: DiffAugment before the discriminators ("none": off)
    hole_weight: float = 0.0  # base stage: weight of the term against small holes in generated alpha
    bf16: bool | None = None  # None: when the CPU supports it
    quiet: bool = False
    standing_batches: int = 16  # batches that re-estimate the EMA generator's BN statistics


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gan-studio train`` (``--device`` comes from the caller: the CLI's global options)."""
    parser.add_argument("--data", default=DEFAULT_DATA, help="dataset folder from `gan-studio dataset build`")
    parser.add_argument("--out", required=True, help="model folder to write (a run folder sits beside it)")
    parser.add_argument("--stage", choices=("base", "upsampler"), default="base")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run folder's last checkpoint"
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="stop after this many minutes of training"
    )
    parser.add_argument("--steps", type=int, default=None, help="stop at this step")
    parser.add_argument("--batch", type=int, default=None, help="images per step per process")
    parser.add_argument("--ch", type=int, default=None, help="generator / discriminator width")
    parser.add_argument(
        "--d-ch",
        type=int,
        default=None,
        help="base stage: the discriminator's width, if not --ch (e.g. a generator widened by "
        "python -m studio.training.widen beside a discriminator snapshot of the old width)",
    )
    parser.add_argument(
        "--run-dir", default=None, help="run folder for checkpoints and samples (default: runs/<stage>)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--recon-weight",
        type=float,
        default=4.0,
        help="base stage: weight of the L1 term pulling G(z, caption) towards that emoji",
    )
    parser.add_argument(
        "--disc",
        choices=("conv", "projected", "both"),
        default="conv",
        help="base stage: the conventional RGBA discriminator, one on frozen EfficientNet-Lite0 features, "
        "or both (weighed by --conv-weight)",
    )
    parser.add_argument(
        "--conv-weight",
        type=float,
        default=0.25,
        help="--disc both: weight of the conventional RGBA term beside the projected one",
    )
    parser.add_argument(
        "--recon-z",
        choices=("all", "zero", "names"),
        default="all",
        help="base stage: pull every z towards the caption's emoji (all), only z = 0 prompted with the "
        "emoji's name (zero), or every z prompted with the emoji's name (names); the last two leave the "
        "seeds of shared keywords free to differ",
    )
    parser.add_argument(
        "--name-languages",
        choices=("en", "all"),
        default="en",
        help="base stage: which captions count as an emoji's name for --recon-z zero/names and "
        "--diversity-weight: its English emoji-test name only (en), or also its CLDR short name in every "
        "other language (all), so a Chinese or German name is anchored like the English one and not pushed "
        "apart like a shared keyword",
    )
    parser.add_argument(
        "--other-names-prob",
        type=float,
        default=0.0,
        help="base stage, with --name-languages all: the share of name prompts drawn in another language "
        "than English (the emoji's CLDR short name in one of its languages, at random); 0 keeps the English "
        "name, and leaves the other languages' names about 1%% of the draws",
    )
    parser.add_argument(
        "--diversity-weight",
        type=float,
        default=0.0,
        help="base stage: weight of a mode-seeking term (MSGAN) that pushes two seeds of a prompt that is "
        "not an emoji's name (a shared keyword, another caption) to draw different pictures (0: off)",
    )
    parser.add_argument(
        "--mismatch-weight",
        type=float,
        default=0.5,
        help="base stage: weight of the matching-aware term (a real emoji under another caption counts as fake); "
        "0 lets a fresh discriminator beside a trained generator learn real from fake (session 35, beside v4: at "
        "0.5 it scored every real and fake emoji -0.96 within 700 steps and stayed there)",
    )
    parser.add_argument(
        "--lr-g", type=float, default=2e-4, help="base stage: the generator's Adam learning rate"
    )
    parser.add_argument(
        "--lr-d",
        type=float,
        default=2e-4,
        help="the discriminators' Adam learning rate (base stage; the upsampler's critic too): lower it to "
        "keep the discriminator's margin between real and fake narrower",
    )
    parser.add_argument(
        "--lr-decay-from",
        type=int,
        default=None,
        help="base stage: from this step both learning rates fall on a cosine to zero at --steps "
        "(default: constant)",
    )
    parser.add_argument(
        "--features",
        default=DEFAULT_FEATURES,
        help="EfficientNet-Lite0 weights for --disc projected/both "
        "(python -m studio.training.projected writes them)",
    )
    parser.add_argument("--projected-size", type=int, default=64, help="projected discriminator input (px)")
    parser.add_argument(
        "--init-generator",
        default=None,
        help="base stage, new runs: start the generator from these weights (a model folder's "
        "generator.safetensors or a snapshot of the same shape); the discriminators start fresh",
    )
    parser.add_argument(
        "--init-discriminator",
        default=None,
        help="base stage, new runs: start the discriminators from a run's d_<step>.safetensors snapshot (kept "
        "beside each g_ema_<step> snapshot), e.g. with --init-generator of the same step",
    )
    parser.add_argument(
        "--init-upsampler",
        default=None,
        help="upsampler stage, new runs: start the upsampler from these weights (a model folder's "
        "upsampler.safetensors, of the same width); its critic and optimiser start fresh",
    )
    parser.add_argument(
        "--d-warmup-steps",
        type=int,
        default=0,
        help="base stage: for the run's first N steps only the discriminators learn and the generator stays "
        "as it is, so a fresh discriminator beside --init-generator weights first learns what real emoji "
        "look like instead of pushing a trained generator around (0: off)",
    )
    parser.add_argument(
        "--ema-from-init",
        action="store_true",
        help="base stage: the EMA generator averages from the first step, starting at --init-generator's weights, "
        "instead of following the generator exactly for the first 500 steps (at batch 1024 those are half a "
        "million images of a trained generator's first, roughest moves)",
    )
    parser.add_argument(
        "--cond-noise",
        type=float,
        default=0.0,
        help="base stage: the generator reads each caption's embedding moved by random noise of this length "
        "(unit-length embeddings; 0.3 keeps a cosine of about 0.96) while the discriminators judge its picture "
        "against the caption itself, so that nearby prompts it never saw draw like the ones it did (0: off)",
    )
    parser.add_argument(
        "--augment",
        default=DEFAULT_AUGMENT,
        help="base stage: the DiffAugment policy applied to real and generated images before the "
        "discriminators, comma-separated from color, translation, cutout, or none. Cutout cuts a transparent "
        "square out of every image; without it the discriminator overfits sooner (docs/model_history.md, After v3)",
    )
    parser.add_argument(
        "--hole-weight",
        type=float,
        default=0.0,
        help="base stage: weight of a term against small holes and notches in the generated alpha: how much of "
        f"each picture lies more than {HOLE_DEPTH} below its alpha's {HOLE_SIZE} px closing, beyond the most that "
        "a real emoji of its caption has (a heart its cleft, a donut its hole), so a generator drawn towards holes by its "
        "discriminators keeps its shapes whole (0: off)",
    )
    parser.add_argument(
        "--adv-weight",
        type=float,
        default=0.01,
        help="upsampler stage: weight of the adversarial term next to L1 (0: L1 only)",
    )
    parser.add_argument(
        "--dip-augment",
        type=float,
        default=0.0,
        help="upsampler stage: share of 32 px inputs given faint dips (soft spots and strips in their solid parts, "
        "as generated pictures have) against the untouched 128 px target, so the upsampler fills such dips instead "
        "of sharpening them into holes (0: off)",
    )
    parser.add_argument("--checkpoint-minutes", type=float, default=3.0)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        data=Path(args.data),
        out=Path(args.out),
        stage=args.stage,
        resume=args.resume,
        device=args.device,
        minutes=args.minutes,
        steps=args.steps,
        batch=args.batch,
        ch=args.ch,
        d_ch=args.d_ch,
        run=Path(args.run_dir) if args.run_dir else None,
        threads=args.threads,
        seed=args.seed,
        recon_weight=args.recon_weight,
        mismatch_weight=args.mismatch_weight,
        adv_weight=args.adv_weight,
        disc=args.disc,
        conv_weight=args.conv_weight,
        recon_z=args.recon_z,
        diversity_weight=args.diversity_weight,
        name_languages=args.name_languages,
        other_names_prob=args.other_names_prob,
        lr_g=args.lr_g,
        lr_d=args.lr_d,
        lr_decay_from=args.lr_decay_from,
        features=Path(args.features),
        projected_size=args.projected_size,
        init_generator=Path(args.init_generator) if args.init_generator else None,
        init_discriminator=Path(args.init_discriminator) if args.init_discriminator else None,
        init_upsampler=Path(args.init_upsampler) if args.init_upsampler else None,
        d_warmup_steps=args.d_warmup_steps,
        ema_from_init=args.ema_from_init,
        cond_noise=args.cond_noise,
        augment=args.augment,
        hole_weight=args.hole_weight,
        dip_augment=args.dip_augment,
        checkpoint_minutes=args.checkpoint_minutes,
    )
