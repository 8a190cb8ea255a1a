"""Persisted settings: a small JSON file in the user config folder, with typed defaults.

Declarative (one table of names and defaults) rather than scattered ``QSettings`` calls; the UI stores
window geometry and dock layout here as base64 strings. Saving writes a temporary file and renames it
(studio.atomic); reading checks every value, so a hand-edited or damaged file never stops the window.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.atomic import write_atomically
from studio.engine.requests import MAX_COUNT, MAX_PROMPT_CHARS, MAX_SEED
from studio.io.export import FORMATS, MAX_SCALE
from studio.paths import user_config_dir
from studio.session.state import SEED_FIXED, SEED_RANDOM

log = logging.getLogger(__name__)

FRAMES_RANGE = (2, 600)  # interpolation frames A→B
FPS_RANGE = (1, 60)
INTERPOLATION_MODES = ("loop", "ping-pong")
MAX_TEXT_CHARS = 4096
MAX_LAYOUT_CHARS = 64 * 1024  # window geometry / dock layout, base64
MAX_FILE_BYTES = 1024 * 1024

DEFAULTS: dict[str, Any] = {
    "window_geometry": "",
    "window_state": "",
    "last_prompt": "",
    "seed": 0,
    "seed_mode": SEED_FIXED,
    "count": 8,
    "export_folder": "",
    "export_format": "png",
    "export_scale": 4,
    "export_resample": "nearest",
    "export_template": "{prompt}_{seed}",
    "theme": "dark",
    "smooth_preview": False,
    "interpolation_fps": 12,
    "interpolation_frames": 24,
    "interpolation_mode": "ping-pong",
}


def _is_base64(value: str) -> bool:
    if len(value) > MAX_LAYOUT_CHARS:
        return False
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def _within(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: low <= value <= high


# What a stored value must satisfy beyond having its default's type; a value that fails falls back alone.
VALID: dict[str, Callable[[Any], bool]] = {
    "window_geometry": _is_base64,
    "window_state": _is_base64,
    "last_prompt": lambda value: len(value) <= MAX_PROMPT_CHARS,
    "seed": _within(0, MAX_SEED),
    "seed_mode": lambda value: value in (SEED_FIXED, SEED_RANDOM),
    "count": _within(1, MAX_COUNT),
    "export_folder": lambda value: len(value) <= MAX_TEXT_CHARS and "\0" not in value,
    "export_format": lambda value: value in FORMATS,
    "export_scale": _within(1, MAX_SCALE),
    "export_resample": lambda value: value in ("nearest", "lanczos"),
    "export_template": lambda value: len(value) <= MAX_TEXT_CHARS,
    "theme": lambda value: value in ("dark", "light"),
    "smooth_preview": lambda value: True,
    "interpolation_fps": _within(*FPS_RANGE),
    "interpolation_frames": _within(*FRAMES_RANGE),
    "interpolation_mode": lambda value: value in INTERPOLATION_MODES,
}


class Settings:
    """The settings file. A value that is missing, of the wrong type or out of range falls back to its
    default on its own (logged); a file that is not a JSON object is kept as ``settings.json.bad`` and
    :attr:`notice` says so, for the window to show."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else user_config_dir() / "settings.json"
        self.notice: str | None = None
        self._values: dict[str, Any] = dict(DEFAULTS)
        self._listeners: list[Callable[[str, Any], None]] = []
        self._values.update(self._load())

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def set(self, name: str, value: Any) -> None:
        if self._values.get(name) != value:
            self._values[name] = value
            for listener in list(self._listeners):
                listener(name, value)

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        self._listeners.append(listener)

    def save(self) -> bool:
        """Write the file all at once; returns False (and keeps the values in memory) if it cannot be written
        (read-only folder, full disk), leaving no temporary file behind."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(self._values, indent=1, ensure_ascii=False))
            return True
        except OSError:
            log.warning("settings could not be saved to %s", self.path, exc_info=True)
            return False

    def _load(self) -> dict[str, Any]:
        if not os.path.lexists(self.path):
            return {}
        try:
            if not self.path.is_file() or self.path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"{self.path} is not a settings file of at most {MAX_FILE_BYTES} bytes")
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("settings file %s could not be read; using defaults", self.path, exc_info=True)
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            data = None
        if not isinstance(data, dict):
            self._keep_bad_file()
            return {}
        kept = {}
        for name, value in data.items():
            if name not in DEFAULTS:
                continue
            if type(value) is type(DEFAULTS[name]) and VALID[name](value):
                kept[name] = value
            else:
                log.warning("setting %r has an invalid value (%.80r); using %r", name, value, DEFAULTS[name])
        return kept

    def _keep_bad_file(self) -> None:
        bad = self.path.with_name(self.path.name + ".bad")
        try:
            os.replace(self.path, bad)
        except OSError:
            log.warning("damaged settings file %s could not be renamed", self.path, exc_info=True)
            bad = self.path
        log.warning("settings file %s is damaged; kept as %s, using defaults", self.path, bad)
        self.notice = (
            f"The settings file was damaged; it was kept as {bad} and the default settings are used."
        )
