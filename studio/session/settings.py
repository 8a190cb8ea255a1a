"""Persisted settings: a small JSON file in the user config folder, with typed defaults.

Declarative (one table of names and defaults) rather than scattered ``QSettings`` calls; the UI stores
window geometry and dock layout here as base64 strings. Saving writes a temporary file and renames it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.paths import user_config_dir

DEFAULTS: dict[str, Any] = {
    "window_geometry": "",
    "window_state": "",
    "last_prompt": "",
    "seed": 0,
    "seed_mode": "fixed",
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


class Settings:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else user_config_dir() / "settings.json"
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
        """Write the file; returns False (and keeps the values in memory) if the folder is not writable."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._values, indent=1, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.path)
            return True
        except OSError:
            return False

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        # Keep only known names whose type matches the default, so a hand-edited file cannot break the UI.
        return {k: v for k, v in data.items() if k in DEFAULTS and type(v) is type(DEFAULTS[k])}
