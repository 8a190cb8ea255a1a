"""``gan-studio``: with no command it opens the window; subcommands run headless on the same engine.

Each command module exposes ``register(subparsers)``; a handler takes the parsed args and returns an exit
code, or raises :class:`UserError` (or a ModelError/RequestError) whose message is printed as one sentence.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from studio import __version__
from studio.errors import ModelError, UserError

# Command modules, imported only to register their parsers (heavy imports live inside the handlers).
COMMAND_MODULES = (
    "studio.cli.engine_commands",
    "studio.cli.training_commands",
    "studio.cli.io_commands",
    "studio.cli.invert_command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-studio",
        description="GAN Studio: generate images with pretrained conditional GANs. With no command, opens the studio.",
    )
    parser.add_argument("--version", action="version", version=f"gan-studio {__version__}")
    parser.add_argument("--model", help="model name or folder to open in the studio (default: emoji)")
    parser.add_argument(
        "--device", help="cpu, cuda, cuda:N or mps (default: best available; env GAN_STUDIO_DEVICE)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from studio.app import main as app_main

        return app_main(model=args.model, device=args.device)
    from studio.engine.requests import RequestError

    try:
        return int(args.func(args) or 0)
    except (UserError, ModelError, RequestError) as exc:
        print(f"gan-studio: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("gan-studio: interrupted; files already written are kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
