"""Frozen entry point: the same ``gan-studio`` command the wheel installs (no command opens the window)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen Windows/macOS process that spawns workers must hand them to multiprocessing first.
    multiprocessing.freeze_support()
    from studio.cli import main

    sys.exit(main())
