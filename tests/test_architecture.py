"""Layering contracts (pyproject's import-linter section): core layers never import Qt; the UI never imports torch."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)
    # import-linter configures logging with disable_existing_loggers: keep studio's loggers working for
    # the tests that run after this one.
    loggers = [item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    disabled = [logger.disabled for logger in loggers]
    try:
        assert lint_imports(no_cache=True, no_logo=True) == 0
    finally:
        os.chdir(cwd)
        for logger, was_disabled in zip(loggers, disabled, strict=True):
            logger.disabled = was_disabled


def test_core_layers_import_without_qt_installed():
    """Importing every core module with PySide6 made unimportable must work (a runtime check of the contract)."""
    code = (
        "import sys, pkgutil, importlib\n"
        "sys.modules['PySide6'] = None\n"
        "sys.modules['qasync'] = None\n"
        "import studio\n"
        "for layer in ('engine', 'models', 'session', 'io', 'training'):\n"
        "    package = importlib.import_module('studio.' + layer)\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
