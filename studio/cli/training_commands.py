"""``gan-studio dataset build``, ``gan-studio train`` and ``gan-studio evaluate`` (headless, no Qt)."""

from __future__ import annotations

import argparse
import json

from studio.training.options import DEFAULT_DATA, add_train_arguments, options_from_args


def register(subparsers) -> None:
    dataset = subparsers.add_parser("dataset", help="build the emoji training set from Debian's packages")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", metavar="ACTION")
    build = dataset_sub.add_parser("build", help="render, caption, embed and split every emoji")
    build.add_argument("--out", default=DEFAULT_DATA, help=f"output folder (default: {DEFAULT_DATA})")
    build.add_argument("--limit", type=int, help="keep only the first N emoji (quick tries)")
    build.add_argument(
        "--encoder",
        default=None,
        help="prompt encoder id (default: universal-sentence-encoder-multilingual-3)",
    )
    build.add_argument(
        "--languages",
        default=None,
        help="comma-separated CLDR languages for captions, e.g. en,zh,de (default: every one the encoder knows)",
    )
    build.set_defaults(func=_dataset_build)
    dataset.set_defaults(func=lambda args: _usage(dataset))

    train = subparsers.add_parser("train", help="train (or resume) a stage of the cascaded emoji GAN")
    add_train_arguments(train)
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("evaluate", help="measure a model offline with the judge classifier")
    evaluate.add_argument("--data", default=DEFAULT_DATA, help="dataset folder")
    evaluate.add_argument(
        "--judge", default=None, help="judge weights (default: the model's judge.safetensors)"
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--samples", default=None, help="write the fixed prompts x seeds grid to this PNG")
    evaluate.add_argument("--write-metrics", action="store_true", help="store the metrics in the model.json")
    evaluate.add_argument("--train-judge", action="store_true", help="(re)train the judge first")
    evaluate.add_argument("--judge-minutes", type=float, default=8.0)
    evaluate.add_argument("--no-metrics", action="store_true", help="only write --samples")
    evaluate.add_argument(
        "--snapshots",
        default=None,
        help="score every EMA snapshot in this run folder (held-out GAN-test) with the model's upsampler",
    )
    evaluate.add_argument("--limit", type=int, default=600, help="--snapshots: training emoji per snapshot")
    evaluate.add_argument("--psi", type=float, default=None, help="truncation (default: the model's)")
    evaluate.add_argument(
        "--language", default="en", help="prompt each emoji by its CLDR name in this language (e.g. zh, de)"
    )
    evaluate.add_argument(
        "--spread",
        action="store_true",
        help="score the model as the studio draws it with spread on (the default for new images) rather than "
        "the weights alone",
    )
    evaluate.set_defaults(func=_evaluate)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _dataset_build(args) -> int:
    from studio.cli import UserError
    from studio.models.text import DEFAULT_ENCODER, get_text_encoder
    from studio.training.dataset import MissingSourcesError, build_dataset

    languages = [x.strip() for x in args.languages.split(",") if x.strip()] if args.languages else None
    try:
        encoder = get_text_encoder(args.encoder or DEFAULT_ENCODER, disk_cache=False)
        manifest = build_dataset(args.out, limit=args.limit, encoder=encoder, languages=languages)
    except MissingSourcesError as exc:
        raise UserError(str(exc)) from exc
    print(
        json.dumps({k: manifest[k] for k in ("count", "captions", "heldout", "sha256")}, ensure_ascii=False)
    )
    return 0


def _train(args) -> int:
    from studio.cli import UserError
    from studio.training.train import TrainError, train

    try:
        train(options_from_args(args))
    except (TrainError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    return 0


def _evaluate(args) -> int:
    from studio.app import DEFAULT_MODEL
    from studio.cli import UserError
    from studio.training.evaluate import EvaluateError, run_evaluate

    args.model = args.model or DEFAULT_MODEL
    try:
        metrics = run_evaluate(args)
    except (EvaluateError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    if metrics is not None and args.snapshots and not args.json:
        best = metrics["best"]
        print(
            f"best: {best['file']} (step {best['step']}): held-out GAN-test {best['gan_test_heldout']}, "
            f"training GAN-test {best['gan_test_train']}, identity top-5 {best['identity_top5']}"
        )
    elif metrics is not None:
        if args.json:
            print(json.dumps(metrics, indent=2))
        else:
            for key, value in metrics.items():
                print(f"{key}: {value}")
    return 0
