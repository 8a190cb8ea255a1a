"""What describes a loaded engine, without torch: the window imports this to type what it holds.

Also the one sentence for "this file was made with another model", shared by the window and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineInfo:
    """The loaded model and device, as :meth:`Engine.wait_ready` returns it."""

    model_name: str
    model_hash: str
    model_path: Path
    resolution: int
    base_resolution: int
    default_truncation: float
    num_directions: int
    device_kind: str
    device_label: str
    dtype: str
    conditioning: str
    classes: tuple[str, ...]
    micro_batch: int
    # The window says a prompt was "not understood well" when its best similarity to every known concept is
    # below this (the encoder's calibrated threshold, studio/models/text.py); 0 for class-conditional models.
    poor_match_similarity: float = 0.0


@dataclass(frozen=True)
class ModelMismatch:
    """Why stored parameters will not re-render exactly with the loaded model."""

    sentence: str
    other_model: bool  # True: another model altogether (cannot restore); False: another build of it


def model_mismatch(
    wanted_model: str, wanted_hash: str, loaded_model: str, loaded_hash: str, source: str = "This file"
) -> ModelMismatch | None:
    """None if the loaded model (name, hash) made ``source``; else what differs, as one sentence."""
    hash_note = f" (hash {wanted_hash})" if wanted_hash else ""
    if wanted_model != loaded_model:
        return ModelMismatch(
            f"{source} was made with the model '{wanted_model}'{hash_note}, but '{loaded_model}' is loaded; "
            f"open it with that model (gan-studio --model {wanted_model}) to re-render it exactly.",
            other_model=True,
        )
    if wanted_hash and loaded_hash and wanted_hash != loaded_hash:
        return ModelMismatch(
            f"{source} was made with another build of '{wanted_model}' (hash {wanted_hash}, loaded "
            f"{loaded_hash}), so the picture may differ.",
            other_model=False,
        )
    return None
