"""``gan-studio inspect IMAGE`` and ``gan-studio interpolate A B --frames N --out FILE`` (headless, no Qt).

Heavy imports (torch, the engine) stay inside the handlers so ``gan-studio --help`` and ``inspect`` start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.cli import spread_choice


def register(subparsers) -> None:
    inspect = subparsers.add_parser(
        "inspect", help="print the parameters stored in an exported image or animation"
    )
    inspect.add_argument("image", help="a PNG, WebP, JPEG, GIF or MP4 exported by GAN Studio")
    inspect.add_argument("--json", action="store_true", help="print the stored JSON document")
    inspect.set_defaults(func=_inspect)

    interpolate = subparsers.add_parser(
        "interpolate", help="render an interpolation between two prompts as GIF, WebP, MP4 or frames"
    )
    interpolate.add_argument("prompt_a", metavar="PROMPT_A", help="the prompt of the first frame")
    interpolate.add_argument("prompt_b", metavar="PROMPT_B", help="the prompt of the last frame")
    interpolate.add_argument(
        "--frames", type=int, default=24, help="number of frames to render (default: 24)"
    )
    interpolate.add_argument("--seed-a", type=int, default=0, help="seed of the first frame (default: 0)")
    interpolate.add_argument(
        "--seed-b", type=int, default=None, help="seed of the last frame (default: seed A)"
    )
    interpolate.add_argument("--truncation", type=float, default=None, help="default: the model's own")
    interpolate.add_argument(
        "--variety",
        type=float,
        default=0.0,
        help="0..1; how far the seeds wander from the prompts (default 0)",
    )
    interpolate.add_argument(
        "--strength", type=float, default=1.0, help="0..2; how hard the frames follow the prompts (default 1)"
    )
    interpolate.add_argument(
        "--spread",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a prompt that fits several emoji ('cat') draws the one its frame's latent picks (default: on)",
    )
    interpolate.add_argument("--fps", type=float, default=12.0, help="frames per second (default: 12)")
    interpolate.add_argument("--pingpong", action="store_true", help="play forwards, then backwards")
    interpolate.add_argument("--once", action="store_true", help="play once instead of looping (GIF, WebP)")
    interpolate.add_argument("--scale", type=int, default=1, help="integer upscaling 1-8 (default: 1)")
    interpolate.add_argument(
        "--resample",
        choices=("nearest", "lanczos"),
        default="nearest",
        help="how --scale enlarges: crisp pixels or smooth (default: nearest, as image export)",
    )
    interpolate.add_argument(
        "--background",
        default=None,
        help="colour to flatten on, e.g. white or '#202020' (default: keep alpha)",
    )
    interpolate.add_argument(
        "--out",
        required=True,
        help="FILE.gif, FILE.webp, FILE.mp4 or a folder for numbered PNG frames (never overwritten)",
    )
    interpolate.set_defaults(func=_interpolate)


# ----------------------------------------------------------------------------------------------- inspect


def _inspect(args) -> int:
    from studio.cli import UserError
    from studio.io.metadata import MetadataError, read_parameters, to_document
    from studio.untrusted import printable_json

    try:
        parameters = read_parameters(args.image)
    except MetadataError as exc:
        raise UserError(str(exc)) from exc
    # Everything printed came from the file: escape codes and bidi overrides are shown, not obeyed.
    if args.json:
        print(printable_json(json.dumps(to_document(parameters), ensure_ascii=False, indent=2)))
    else:
        print(describe(parameters, args.image))
    return 0


def describe(parameters, image: str | Path = "IMAGE") -> str:
    """A person-readable summary of stored parameters, ending with how to re-render them."""
    request = parameters.request
    width, height = parameters.size
    lines = [
        f"Prompt:       {request.prompt}",
        f"Seed:         {request.seed}",
        f"Truncation:   {request.truncation:g}",
        *([f"Variety:      {request.variety:g}"] if request.variety else []),
        f"Spread:       {'on' if request.spread else 'off'}",
        *([f"Strength:     {request.strength:g}"] if request.strength != 1.0 else []),
        f"Model:        {request.model} (hash {parameters.model_hash or 'unknown'})",
        f"Size:         {width}x{height}",
        f"Device:       {parameters.device}",
        f"Made with:    GAN Studio {parameters.app_version or 'unknown'} (parameters schema {parameters.schema})",
    ]
    for index, scale in request.directions:
        lines.append(f"Slider:       direction {index} {scale:+g}")
    for concept in request.concepts:
        lines.append(f"Concept:      {concept.negative} -> {concept.positive} x{concept.scale:g}")
    if request.latent is not None:
        lines.append(
            f"Latent:       inverted from {request.latent.source or 'a picture'} ({request.latent.dtype})"
        )
    if request.interpolate_to is not None:
        end = request.interpolate_to
        lines.append(f"Towards:      {end.prompt} (seed {end.seed}) at t = {request.t:g}")
    animation = parameters.animation
    if animation:
        lines.append(
            f"Animation:    {animation.get('frames')} frames at {animation.get('fps', 0):g} fps, "
            f"{animation.get('mode', 'frames')}"
            + (", ping-pong" if animation.get("pingpong") else "")
            + ("" if animation.get("loop", True) else ", plays once")
        )
        command = _interpolate_command(parameters, image)
        if command:
            lines.append(f"Re-render:    {command}")
    else:
        lines.append(f"Re-render:    gan-studio generate --from {_shell_quote(str(image))}")
    from studio.untrusted import printable

    return "\n".join(printable(line) for line in lines)  # a prompt's escape codes are shown, not obeyed


def _interpolate_command(parameters, image: str | Path) -> str | None:
    """The ``gan-studio interpolate`` line that remakes an interpolation animation, when it was one."""
    animation = parameters.animation or {}
    request, end = parameters.request, parameters.request.interpolate_to
    if animation.get("mode") != "interpolate" or end is None or not animation.get("frames"):
        return None
    q = _shell_quote
    parts = [
        "gan-studio interpolate", q(request.prompt), q(end.prompt), f"--frames {int(animation['frames'])}",
        f"--seed-a {request.seed} --seed-b {end.seed}", f"--truncation {request.truncation:g}",
        *([f"--variety {request.variety:g}"] if request.variety else []),
        "--spread" if request.spread else "--no-spread",
        *([f"--strength {request.strength:g}"] if request.strength != 1.0 else []),
        f"--fps {float(animation.get('fps', 12)):g}", *(["--pingpong"] if animation.get("pingpong") else []),
        *([] if animation.get("loop", True) else ["--once"]), f"--out {q(str(image))}",
    ]  # fmt: skip
    return " ".join(parts)


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# ----------------------------------------------------------------------------------------------- interpolate


def _open_engine(model: str | None, device: str | None):
    """The engine the command renders with (tests replace this to use a tiny model and a fast encoder)."""
    from studio.engine.engine import Engine

    return Engine(model=model or "emoji", device=device, warm_up=False)


def _interpolate(args) -> int:
    from studio.atomic import remove_stale_temps
    from studio.cli import UserError
    from studio.engine.requests import MAX_FRAMES
    from studio.io.animation import (
        AnimationOptions,
        animation_kind,
        mp4_available,
        play_order,
        save_results_animation,
    )
    from studio.io.files import ExportError

    if not 2 <= args.frames <= MAX_FRAMES:
        raise UserError(f"--frames must be between 2 and {MAX_FRAMES} (got {args.frames}).")
    seed_b = args.seed_a if args.seed_b is None else args.seed_b
    options = AnimationOptions(
        fps=args.fps,
        loop=not args.once,
        pingpong=args.pingpong,
        background=args.background,
        scale=args.scale,
        resample=args.resample,
    )
    out = Path(args.out)
    try:
        kind = animation_kind(out)
        options = options.validated(kind)
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    if kind == "mp4" and not mp4_available():
        raise UserError(
            "MP4 needs the imageio-ffmpeg package (pip install 'gan-studio[video]'); use .gif or .webp."
        )
    if not out.parent.expanduser().is_dir():
        raise UserError(f"The folder {out.parent} does not exist; create it or choose another --out.")
    remove_stale_temps(out.parent.expanduser())  # what an earlier run killed mid-write left behind

    requests = _frame_requests(args, seed_b)  # validates prompts and seeds before the model loads
    engine = _open_engine(args.model, args.device)
    try:
        info = engine.wait_ready()
        truncation = info.default_truncation if args.truncation is None else args.truncation
        requests = [_for_model(request, info.model_name, truncation) for request in requests]
        for request in requests:
            request.validated()
        results = []
        for result in engine.generate_sync(requests):
            if not result.ok:
                raise UserError(f"Frame {result.index + 1} could not be rendered: {result.error}")
            results.append(result)
            print(f"\rRendered {len(results)}/{len(requests)} frames", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        engine.close()
    try:
        written = save_results_animation(results, out, options, mode="interpolate")
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    played = len(play_order(len(results), options.pingpong, options.loop))
    how = f"{len(results)} rendered, played forwards and back" if options.pingpong else ""
    print(f"Wrote {played} frames ({how + ', ' if how else ''}{options.fps:g} fps) to {written}")
    return 0


def _frame_requests(args, seed_b: int):
    import numpy as np

    from studio.engine.requests import Endpoint, GenerationRequest

    end = Endpoint(args.prompt_b, seed_b)
    requests = [
        GenerationRequest(
            args.prompt_a,
            seed=args.seed_a,
            interpolate_to=end,
            t=float(t),
            variety=args.variety,
            strength=args.strength,
            spread=spread_choice(args),
        )
        for t in np.linspace(0.0, 1.0, args.frames)
    ]
    requests[0].validated()
    return requests


def _for_model(request, model_name: str, truncation: float):
    from dataclasses import replace

    return replace(request, model=model_name, truncation=float(truncation))
