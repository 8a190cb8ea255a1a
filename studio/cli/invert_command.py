"""``gan-studio invert IMAGE [--steps N] [--out FILE]``: find the model's nearest drawing of any picture.

Writes the inverted image with its parameters (an explicit latent), so ``gan-studio generate --from FILE``
re-renders it byte for byte, and prints the reconstruction error against the picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.cli import UserError

OUT_FORMATS = {".png": "png", ".webp": "webp", ".jpg": "jpeg", ".jpeg": "jpeg"}


def register(subparsers: argparse._SubParsersAction) -> None:
    invert = subparsers.add_parser(
        "invert",
        help="invert any picture into the model's latent space and write the result with its parameters",
    )
    invert.add_argument("image", metavar="IMAGE", help="a PNG, JPEG, WebP, GIF, BMP or TIFF picture")
    invert.add_argument("--steps", type=int, default=None, help="optimisation steps (default: 150)")
    invert.add_argument(
        "--out", default=None, help="output file, .png/.webp/.jpg (default: IMAGE-inverted.png here)"
    )
    invert.set_defaults(func=cmd_invert)


def cmd_invert(args: argparse.Namespace) -> int:
    from studio.engine.inversion import MAX_STEPS
    from studio.io.picture import read_picture

    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise UserError(f"--steps must be between 1 and {MAX_STEPS}.")
    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}-inverted.png")
    image_format = OUT_FORMATS.get(out.suffix.lower())
    if image_format is None:
        raise UserError(f"The output file '{out.name}' must end in .png, .webp or .jpg.")
    if out.parent != Path("") and not out.parent.is_dir():
        raise UserError(f"The folder '{out.parent}' does not exist; create it or choose another --out.")
    picture = read_picture(args.image)

    from studio.engine.engine import Engine
    from studio.io.export import ExportOptions, export_result

    engine = Engine(model=args.model or "emoji", device=args.device, warm_up=False)
    try:
        engine.wait_ready()
        tty = sys.stderr.isatty()

        def progress(step) -> None:
            line = f"step {step.step}/{step.total}  loss {step.loss:.4f}"
            print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

        outcome = engine.invert(picture.image, args.steps, picture.name, on_progress=progress).result()
        if tty:
            print(file=sys.stderr)
        template = out.stem.replace("{", "{{").replace("}", "}}")  # a literal name, not a template
        options = ExportOptions(format=image_format, template=template)
        path = export_result(outcome.result, out.parent if str(out.parent) else ".", options)
    finally:
        engine.close()
    print(
        f"Wrote {path}: PSNR {outcome.psnr:.2f} dB against {picture.name} "
        f"(nearest concept '{outcome.baseline.request.prompt}' alone: {outcome.baseline_psnr:.2f} dB), "
        f"{outcome.steps} steps in {outcome.seconds:.1f} s."
    )
    return 0
