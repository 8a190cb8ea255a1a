"""Where GAN Studio keeps things: shipped resources, user data (gallery, user models) and settings.

Torch-free, so the window can find its gallery and styles before the engine loads. Each folder can be
overridden by an environment variable (tests and portable installs use them).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """The folder holding ``models/``, ``icons/`` and ``styles/``: in a checkout, an install or a bundle."""
    override = os.environ.get("GAN_STUDIO_RESOURCES")
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def user_data_dir() -> Path:
    """Gallery and user models (``GAN_STUDIO_DATA_DIR`` overrides)."""
    override = os.environ.get("GAN_STUDIO_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("gan-studio", appauthor=False))


def user_config_dir() -> Path:
    """Settings (``GAN_STUDIO_CONFIG_DIR`` overrides)."""
    override = os.environ.get("GAN_STUDIO_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("gan-studio", appauthor=False))


def user_log_dir() -> Path:
    """The log file's folder (``GAN_STUDIO_LOG_DIR`` overrides)."""
    override = os.environ.get("GAN_STUDIO_LOG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_log_dir("gan-studio", appauthor=False))
