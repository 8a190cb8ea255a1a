"""``gan-studio``: with no command it opens the window; subcommands run headless on the same engine.

Each command module exposes ``register(subparsers)``; a handler takes the parsed args and returns an exit
code, or raises :class:`UserError` (or a ModelError/RequestError) whose message is printed as one sentence.
"""

from __future__ import annotations

import argparse
import functools
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


def global_options(default: object) -> argparse.ArgumentParser:
    """``--model`` and ``--device``, shared by the top level and every command (one parent parser).

    Commands get ``default=argparse.SUPPRESS``: an option given before the command
    (``gan-studio --model X generate ...``) is kept, one given after it wins.
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--model", default=default, help="model name or folder (default: emoji)")
    options.add_argument(
        "--device",
        default=default,
        help="cpu, cuda, cuda:N or mps (default: best available; env GAN_STUDIO_DEVICE)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-studio",
        description="GAN Studio: generate images with pretrained conditional GANs. With no command, opens the studio.",
        parents=[global_options(None)],
    )
    parser.add_argument("--version", action="version", version=f"gan-studio {__version__}")
    command_options = global_options(argparse.SUPPRESS)
    subparsers = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        parser_class=functools.partial(argparse.ArgumentParser, parents=[command_options]),
    )
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
    from studio.logs import log_caught, log_file, setup_logging
    from studio.untrusted import message

    setup_logging()
    try:
        return int(args.func(args) or 0)
    except (UserError, ModelError, RequestError) as exc:
        sentence = message(exc)  # text from files may be in it: printable, and cut short
        log_caught(sentence)
        print(f"gan-studio: error: {sentence}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("gan-studio: interrupted; files already written are kept.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one sentence here, the traceback in the log
        log_caught(f"Unexpected error in '{args.command}'")
        print(
            f"gan-studio: error: something unexpected went wrong ({type(exc).__name__}); "
            f"the details are in {log_file()}.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())


def spread_choice(args) -> bool:
    """``--spread`` / ``--no-spread``, or the studio's default for new images (studio/engine/spread.py)."""
    from studio.engine.requests import SPREAD_DEFAULT

    return SPREAD_DEFAULT if args.spread is None else bool(args.spread)
