"""User and resource folders without importing torch (studio.models.format imports it at the top).

Mirrors ``studio.models.format.user_data_dir / user_config_dir / resources_dir`` exactly (same environment
overrides, same platformdirs names) so the window can find its gallery and styles before torch loads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    override = os.environ.get("GAN_STUDIO_RESOURCES")
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def user_data_dir() -> Path:
    override = os.environ.get("GAN_STUDIO_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("gan-studio", appauthor=False))


def user_config_dir() -> Path:
    override = os.environ.get("GAN_STUDIO_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("gan-studio", appauthor=False))
