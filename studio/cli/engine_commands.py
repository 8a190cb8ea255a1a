"""Headless commands on the engine: ``generate``, ``models``, ``info`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from studio.atomic import remove_stale_temps
from studio.cli import UserError, spread_choice


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser(
        "generate", help="generate images from a prompt and write PNGs with their parameters"
    )
    gen.add_argument("prompt", nargs="?", help="what to draw, e.g. 'red apple' (omit with --from)")
    gen.add_argument("-n", "--count", type=int, default=1, help="number of images (default 1)")
    gen.add_argument(
        "--seed", type=int, default=None, help="base seed; image i uses seed+i (default: random)"
    )
    gen.add_argument(
        "--truncation", type=float, default=None, help="0..2; lower is more typical (default: model's)"
    )
    gen.add_argument(
        "--variety",
        type=float,
        default=0.0,
        help="0..1; how far each seed wanders from the prompt: more different pictures, each less like it "
        "(default 0)",
    )
    gen.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="0..2; how hard the picture follows the prompt: above 1 more typical of its kind (default 1)",
    )
    gen.add_argument(
        "--spread",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="seeds of a prompt that fits several emoji ('cat', 'heart') each draw one of them; a full name "
        "is left as it is (default: on)",
    )
    gen.add_argument("--out", default=".", help="output folder (created when the first image is written)")
    gen.add_argument(
        "--from", dest="from_image", default=None, help="re-render the image whose parameters IMAGE holds"
    )
    gen.set_defaults(func=cmd_generate)

    models = subparsers.add_parser("models", help="list the models GAN Studio can find")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(func=cmd_models)

    info = subparsers.add_parser("info", help="versions, device and precision")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_info)

    bench = subparsers.add_parser("bench", help="engine benchmark (JSON): throughput and preview latency")
    bench.add_argument("--json", action="store_true", help="(always JSON; accepted for symmetry)")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions")
    bench.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads torch may use (e.g. 1: one core; default: torch's)",
    )
    bench.set_defaults(func=cmd_bench)


def _check_output_folder(out: Path) -> Path:
    """Refuse an output path that cannot become a writable folder, creating nothing yet."""
    if out.exists() and not out.is_dir():
        raise UserError(f"The output path '{out}' is a file; give a folder.")
    existing = next((p for p in (out.absolute(), *out.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UserError(f"The output folder '{out}' cannot be created ({existing} is a file).")
    if not os.access(existing, os.W_OK):
        raise UserError(f"The output folder '{out}' is not writable; choose another with --out.")
    return out


def _create_output_folder(out: Path) -> None:
    """Made when the first image is ready, so a refused or failed run leaves no empty folder behind."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"The output folder '{out}' cannot be created ({exc.strerror}).") from exc


def cmd_generate(args: argparse.Namespace) -> int:
    from studio.engine.requests import GenerationRequest, RequestError, check_seed

    if args.from_image:
        from studio.io.metadata import MetadataError, read_parameters

        try:
            params = read_parameters(args.from_image)
        except MetadataError as exc:
            raise UserError(str(exc)) from exc
        request = params.request
        if args.prompt:
            raise UserError("Give either a prompt or --from IMAGE, not both.")
        if args.model:
            model = args.model
        else:  # the file names its model; it never chooses a folder
            from studio.models.format import find_model

            model = find_model(request.model)
        expected_hash = params.model_hash
    else:
        if args.prompt is None:
            raise UserError('Say what to draw, e.g. gan-studio generate "red apple" (or use --from IMAGE).')
        if args.count < 1:
            raise UserError("-n must be at least 1.")
        seed = args.seed if args.seed is not None else _random_seed()
        try:
            check_seed(seed)
        except RequestError as exc:
            raise UserError(str(exc)) from exc
        model = args.model or "emoji"
        # Checked now, before seconds of model loading; the model's own truncation is filled in after.
        GenerationRequest(
            prompt=args.prompt,
            seed=seed,
            count=args.count,
            truncation=1.0 if args.truncation is None else args.truncation,
            variety=args.variety,
            strength=args.strength,
            spread=spread_choice(args),
        ).validated()
        request = None
        expected_hash = None
    out = _check_output_folder(Path(args.out))
    remove_stale_temps(out)  # what an earlier run killed mid-write left behind

    from studio.engine.engine import Engine
    from studio.io.export import ExportOptions, export_result

    engine = Engine(model=model, device=args.device, warm_up=False)
    try:
        info = engine.wait_ready()
        if request is None:
            truncation = info.default_truncation if args.truncation is None else args.truncation
            request = GenerationRequest(
                prompt=args.prompt,
                seed=seed,
                count=args.count,
                truncation=truncation,
                variety=args.variety,
                strength=args.strength,
                spread=spread_choice(args),
                model=info.model_name,
            ).validated()
        else:
            from dataclasses import replace

            from studio.engine.info import model_mismatch

            request = replace(request, model=info.model_name)
            mismatch = model_mismatch(
                params.request.model, expected_hash or "", info.model_name, info.model_hash, "The image"
            )
            if mismatch is not None:
                print(f"gan-studio: warning: {mismatch.sentence}", file=sys.stderr)
        if request.latent is None and request.prompt.strip():
            read = engine.reading(request.prompt).result()
            if read != request.prompt:  # "happy dog" draws a dog: say so, or the adjective seems ignored
                print(f"Reading the prompt as '{read}'.", file=sys.stderr)
        if request.spread and request.latent is None and request.count > 1:
            spread = engine.spread_concepts(request.prompt).result()
            if len(spread) >= 2:  # say why the seeds draw different emoji (--no-spread: one)
                shown = ", ".join(spread[:5]) + (", …" if len(spread) > 5 else "")
                print(f"Spreading the seeds over {len(spread)} emoji: {shown}", file=sys.stderr)
        options = ExportOptions(template="{prompt}_{seed}")
        written = 0
        progress = _Progress(request.count)
        for result in engine.generate_sync(request):
            if not result.ok:
                raise UserError(result.error)
            if written == 0:
                _create_output_folder(out)
            path = export_result(result, out, options, index=result.index)
            written += 1
            progress.step(path)
        progress.done()
        rate = progress.rate.summary()
        print(f"Wrote {written} image(s) to {out}" + (f" ({rate})" if rate else ""), file=sys.stderr)
        return 0
    finally:
        engine.close()


def _random_seed() -> int:
    import secrets

    return secrets.randbelow(2**32)


class _Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int):
        from studio.session.progress import BatchRate

        self.total, self.count, self.tty = total, 0, sys.stderr.isatty()
        self.rate = BatchRate(total)  # counts from the first image: loading and warm-up are not rendering

    def step(self, path: Path) -> None:
        self.count += 1
        self.rate.step()
        width = 30
        filled = int(width * self.count / self.total)
        rate = self.rate.summary()
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.count}/{self.total} {rate} {path.name}"
        if self.tty:
            print("\r" + line[:120].ljust(120), end="", file=sys.stderr, flush=True)
        elif self.count == self.total or self.count % max(1, self.total // 10) == 0:
            print(line, file=sys.stderr)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def cmd_models(args: argparse.Namespace) -> int:
    from studio.models.format import ModelInfo, find_models, model_search_path
    from studio.untrusted import message, printable, printable_json

    found = find_models()  # a broken model is listed with its sentence; text from folders is printed escaped
    if args.json:
        rows = [
            {
                "name": m.name,
                "path": str(m.path),
                "version": m.version,
                "resolution": m.resolution,
                "conditioning": m.conditioning.kind,
                "license": m.license,
            }
            if isinstance(m, ModelInfo)
            else {"error": message(m)}
            for m in found
        ]
        print(printable_json(json.dumps(rows, indent=2, ensure_ascii=False)))
        return 0
    if not found:
        folders = " or ".join(str(p) for p in model_search_path())
        print(f"No models found; put a model folder in {folders}.")
        return 0
    for m in found:
        if isinstance(m, ModelInfo):
            print(printable(f"{m.name:16} {m.version:8} {m.resolution}px {m.conditioning.kind:5} {m.path}"))
        else:
            print(f"(broken)         {message(m)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import numpy
    import PIL
    import torch

    from studio import __version__
    from studio.engine.devices import choose_device
    from studio.models.format import model_search_path
    from studio.paths import user_data_dir

    choice = choose_device(args.device)
    data = {
        "gan_studio": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": str(choice.device),
        "device_label": choice.label,
        "dtype": choice.dtype_name,
        "threads": torch.get_num_threads(),
        "model_folders": [str(p) for p in model_search_path()],
        "user_data": str(user_data_dir()),
    }
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key:14} {value}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from studio.engine.bench import run_benchmark

    report = run_benchmark(model=args.model, device=args.device, quick=args.quick, threads=args.threads)
    print(json.dumps(report, indent=2))
    return 0
