"""The fields of a stored parameters document beside the request: each typed and bounded.

A file's app version, device kind, model hash, size and animation recipe reach a terminal (``inspect``), a
sentence, the gallery and re-renders, so each is checked here before it is used; a violation is a
RequestError sentence that :mod:`studio.io.metadata` turns into a MetadataError naming the file.
"""

from __future__ import annotations

import re
from typing import Any

from studio.engine.requests import MAX_FPS, MAX_FRAMES, GenerationRequest, RequestError
from studio.untrusted import shown


def device_kind(device: str) -> str:
    """``cuda:1`` -> ``cuda``: pixels depend on the kind of device, not which one of them."""
    return (device or "cpu").split(":", 1)[0].strip().lower() or "cpu"


_HEX = re.compile(r"[0-9a-f]{1,64}")
_WORD = re.compile(r"[a-z0-9_-]{1,16}")
MAX_SIDE = 65_536  # pixels; exports go up to 8x of the rendered size


def checked_model_hash(value: object) -> str:
    if value in ("", None):
        return ""
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise RequestError("The stored model hash is not a short hexadecimal text.")
    return value


def checked_device(value: object) -> str:
    kind = device_kind(value) if isinstance(value, str) else ""
    if not _WORD.fullmatch(kind):
        raise RequestError(f"The stored device kind {shown(repr(value), 30)} is not one GAN Studio knows.")
    return kind


def checked_app_version(value: object) -> str:
    if not isinstance(value, str):
        raise RequestError("The stored app version is not a text.")
    return shown(value, 40)


def checked_size(value: object) -> tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SIDE for v in value)
    ):
        raise RequestError(f"The stored size must be two whole numbers from 0 to {MAX_SIDE:,}.")
    return int(value[0]), int(value[1])


def checked_animation(value: object) -> dict[str, Any] | None:
    """The animation recipe, every field checked (it is printed by ``inspect`` and drives re-renders)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError("The stored animation recipe is not an object.")
    frames = value.get("frames")
    if not isinstance(frames, int) or isinstance(frames, bool) or not 1 <= frames <= MAX_FRAMES:
        raise RequestError(f"The animation's frame count must be a whole number from 1 to {MAX_FRAMES:,}.")
    fps = value.get("fps", 12.0)
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= MAX_FPS:
        raise RequestError(f"The animation's fps must be a number above 0 and at most {MAX_FPS:g}.")
    played = value.get("played_frames", frames)
    if not isinstance(played, int) or isinstance(played, bool) or not 0 <= played <= 2 * MAX_FRAMES:
        raise RequestError("The animation's played frame count is not a usable whole number.")
    mode = value.get("mode", "frames")
    if not isinstance(mode, str) or not _WORD.fullmatch(mode):
        raise RequestError(f"The animation mode {shown(repr(mode), 30)} is not one GAN Studio knows.")
    flags = {key: value.get(key, default) for key, default in (("loop", True), ("pingpong", False))}
    if not all(isinstance(flag, bool) for flag in flags.values()):
        raise RequestError("The animation's loop and ping-pong settings must be true or false.")
    requests = value.get("requests", [])
    if not isinstance(requests, list) or len(requests) > frames:
        raise RequestError("The animation's frame requests are not a list of at most one per frame.")
    checked = {"mode": mode, "frames": frames, "played_frames": played, "fps": fps, **flags}
    checked["requests"] = [GenerationRequest.from_json(r).validated().to_json() for r in requests]
    return {key: checked[key] for key in value if key in checked}  # what the file holds, checked
