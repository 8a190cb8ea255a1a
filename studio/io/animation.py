"""Animations (interpolations, slider sweeps) as GIF, animated WebP, MP4 or a numbered folder of PNG frames.

Each file carries the animation's recipe (the per-frame requests, fps, loop, ping-pong, mode) so it can be
made again: GIF in its comment extension, WebP in EXIF UserComment and XMP like still images, MP4 in a JSON
sidecar (``clip.mp4.json``), a frame folder in ``animation.json`` plus each PNG's own parameters.

Transparency: WebP keeps full alpha. GIF has only on/off transparency: with ``background=None`` pixels under
50 % alpha become the transparent palette entry (hard edges); with a background colour frames are composited
on it first, which looks better for soft edges. MP4 has no alpha and is always composited (white by default).
GIF and WebP encoders fold a frame identical to the one before into it (its time is kept), so a sequence
with repeated neighbours can hold fewer frames than were rendered.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from studio.engine.requests import MAX_FPS, GenerationRequest, GenerationResult
from studio.io.export import Colour, encode, flatten, parse_colour, to_pil, upscale
from studio.io.export import ExportOptions as _ImageOptions
from studio.io.files import (
    ExportError,
    check_folder,
    free_stem,
    new_folder,
    safe_file_stem,
    safe_name_part,
    write_new_file,
)
from studio.io.metadata import (
    RECIPE_FILE,
    ImageParameters,
    parameters_for,
    read_parameters,
    save_options,
    sidecar_json,
)

ANIMATION_SUFFIXES = {".gif": "gif", ".webp": "webp", ".mp4": "mp4"}
MAX_GIF_FPS = 50.0  # GIF counts time in 1/100 s and browsers slow anything faster than 1/50 s
GIF_ALPHA_THRESHOLD = 128
TRANSPARENT_INDEX = 255


@dataclass(frozen=True)
class AnimationOptions:
    """How frames are played and written; ``background`` None keeps alpha where the format can."""

    fps: float = 12.0
    loop: bool = True  # play forever (GIF/WebP); False plays once
    pingpong: bool = False  # play forwards then backwards
    background: Colour | str | None = None
    scale: int = 1
    resample: str = "nearest"
    quality: int = 90  # lossy WebP / MP4 quality (1..100)
    lossless: bool = True  # WebP

    def validated(self, kind: str | None = None) -> AnimationOptions:
        """A normalised copy, or ExportError with one sentence."""
        if (
            isinstance(self.fps, bool)
            or not isinstance(self.fps, (int, float))
            or not 0 < self.fps <= MAX_FPS
        ):
            raise ExportError(
                f"Frames per second must be a number above 0 and at most {MAX_FPS:g} (got {self.fps!r})."
            )
        if kind == "gif" and self.fps > MAX_GIF_FPS:
            raise ExportError(
                f"GIF cannot play faster than {MAX_GIF_FPS:g} fps; lower the fps or use WebP or MP4."
            )
        # Scale, resample and quality follow the still-image rules.
        _ImageOptions(scale=self.scale, resample=self.resample, quality=self.quality).validated()
        return replace(self, fps=float(self.fps), background=parse_colour(self.background))


def mp4_available() -> bool:
    """True when imageio-ffmpeg (which ships an ffmpeg binary) imports and finds its ffmpeg."""
    try:
        import imageio_ffmpeg

        return bool(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # noqa: BLE001 - a missing or broken optional dependency just hides MP4
        return False


def animation_formats() -> list[str]:
    """The formats that can be written here: ``gif``, ``webp``, ``frames`` and ``mp4`` when available."""
    return ["gif", "webp", *(["mp4"] if mp4_available() else []), "frames"]


def animation_kind(out: str | Path) -> str:
    """``gif``, ``webp``, ``mp4`` from the suffix, or ``frames`` for a path without one (a folder)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in ANIMATION_SUFFIXES:
        return ANIMATION_SUFFIXES[suffix]
    if not suffix or out.is_dir():
        return "frames"
    raise ExportError(
        f"GAN Studio writes animations as .gif, .webp, .mp4 or a folder of frames, not {suffix} files."
    )


def interpolation_stem(a: GenerationRequest, b: GenerationRequest) -> str:
    """A file name (no suffix) that says what an interpolation shows: "cat-0-to-red heart-7" (each prompt made
    name-safe and shortened; "image" for a prompt with nothing name-safe in it)."""

    def end(request: GenerationRequest) -> str:
        return f"{safe_name_part(request.prompt, max_chars=40) or 'image'}-{request.seed}"

    return safe_file_stem(f"{end(a)}-to-{end(b)}")


def play_order(count: int, pingpong: bool, loop: bool = True) -> list[int]:
    """Frame indices in playing order. Ping-pong 0..n-1..1 loops seamlessly; played once it ends on 0."""
    forward = list(range(count))
    if not pingpong or count < 2:
        return forward
    backward = forward[-2:0:-1] if loop else forward[-2::-1]
    return forward + backward


def frame_durations(count: int, fps: float, tick_ms: int = 1) -> list[int]:
    """Per-frame durations in ms, rounded to the format's tick so the total time matches ``fps`` closely."""
    period = 1000.0 / fps
    ends = [round((i + 1) * period / tick_ms) * tick_ms for i in range(count)]
    starts = [0, *ends[:-1]]
    return [max(tick_ms, end - start) for start, end in zip(starts, ends, strict=True)]


def animation_recipe(
    requests: Sequence[GenerationRequest], options: AnimationOptions, mode: str = "interpolate"
) -> dict[str, Any]:
    """What made the animation: every frame's request, how they play, and the mode (interpolate / sweep)."""
    options = options.validated()
    return {
        "mode": mode,
        "frames": len(requests),
        "played_frames": len(play_order(len(requests), options.pingpong, options.loop)),
        "fps": options.fps,
        "loop": options.loop,
        "pingpong": options.pingpong,
        "requests": [request.to_json() for request in requests],
    }


def save_results_animation(
    results: Sequence[GenerationResult],
    out: str | Path,
    options: AnimationOptions | None = None,
    mode: str = "interpolate",
) -> Path:
    """Write engine results as an animation at ``out`` (never replacing a file) and return the path written."""
    if not results:
        raise ExportError("There are no frames to write; render at least one frame first.")
    for result in results:
        if not result.ok or result.image is None:
            raise ExportError(
                f"Frame {result.index + 1} was not rendered ({result.error or 'no image'}), so no animation was written."
            )
    options = (options or AnimationOptions()).validated()
    frame_parameters = [parameters_for(result) for result in results]
    recipe = animation_recipe([result.request for result in results], options, mode)
    parameters = replace(frame_parameters[0], animation=recipe)
    return save_animation([result.image for result in results], out, options, parameters, frame_parameters)


def save_animation(
    frames: Sequence[np.ndarray],
    out: str | Path,
    options: AnimationOptions | None = None,
    parameters: ImageParameters | None = None,
    frame_parameters: Sequence[ImageParameters] | None = None,
) -> Path:
    """Write RGBA uint8 frames to ``out`` (.gif, .webp, .mp4 or a folder) and return the path written.

    ``parameters`` (with ``animation`` set to the recipe) is embedded in the file; ``frame_parameters`` gives
    each PNG of a frame folder its own parameters. An existing ``out`` is never replaced: ``name_1`` is used.
    """
    out = Path(out).expanduser()
    kind = animation_kind(out)
    options = (options or AnimationOptions()).validated(kind)
    if not frames:
        raise ExportError("There are no frames to write; render at least one frame first.")
    shapes = {np.asarray(frame).shape for frame in frames}
    if len(shapes) != 1:
        raise ExportError("The frames have different sizes, so they cannot form one animation.")
    if frame_parameters is not None and len(frame_parameters) != len(frames):
        raise ValueError("frame_parameters must have one entry per frame")
    pictures = [upscale(to_pil(frame), options.scale, options.resample) for frame in frames]
    order = play_order(len(pictures), options.pingpong, options.loop)
    if kind == "frames":
        parent, name = _frame_folder_place(out)
        return _write_frame_folder(pictures, order, parent, name, options, parameters, frame_parameters)
    folder = check_folder(out.parent)
    stem = safe_file_stem(out.stem)
    if kind == "gif":
        data = _gif_bytes([pictures[i] for i in order], options, parameters)
        return write_new_file(folder, stem, ".gif", data)
    if kind == "webp":
        data = _webp_bytes([pictures[i] for i in order], options, parameters)
        return write_new_file(folder, stem, ".webp", data)
    return _write_mp4([pictures[i] for i in order], folder, stem, options, parameters)


def _gif_bytes(
    pictures: list[Image.Image], options: AnimationOptions, parameters: ImageParameters | None
) -> bytes:
    if options.background is not None:
        paletted = [flatten(p, options.background).quantize(256) for p in pictures]
        extra: dict[str, Any] = {}
    else:
        paletted = [_with_transparent_index(p) for p in pictures]
        # Disposal 2 clears each frame to transparent, so see-through areas never show the frame before.
        extra = {"transparency": TRANSPARENT_INDEX, "disposal": 2}
    buffer = io.BytesIO()
    if options.loop:
        extra["loop"] = 0
    if parameters is not None:
        extra.update(save_options(parameters, "gif"))
    paletted[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=paletted[1:],
        duration=frame_durations(len(paletted), options.fps, tick_ms=10),
        optimize=False,
        **extra,
    )
    return buffer.getvalue()


def _with_transparent_index(picture: Image.Image) -> Image.Image:
    """Up to 255 colours, with palette entry 255 for pixels under half opacity."""
    rgba = picture.convert("RGBA")
    paletted = rgba.convert("RGB").quantize(TRANSPARENT_INDEX)
    indices = np.array(paletted, dtype=np.uint8)
    indices[np.asarray(rgba)[..., 3] < GIF_ALPHA_THRESHOLD] = TRANSPARENT_INDEX
    palette = (paletted.getpalette() or [])[: 3 * TRANSPARENT_INDEX]
    palette += [0] * (3 * 256 - len(palette))
    result = Image.fromarray(indices, "P")
    result.putpalette(palette)
    result.info["transparency"] = TRANSPARENT_INDEX
    return result


def _webp_bytes(
    pictures: list[Image.Image], options: AnimationOptions, parameters: ImageParameters | None
) -> bytes:
    if options.background is not None:
        pictures = [flatten(p, options.background) for p in pictures]
    extra: dict[str, Any] = save_options(parameters, "webp") if parameters is not None else {}
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        "WEBP",
        save_all=True,
        append_images=pictures[1:],
        duration=frame_durations(len(pictures), options.fps),
        loop=0 if options.loop else 1,
        lossless=options.lossless,
        quality=options.quality,
        exact=True,
        background=(0, 0, 0, 0),
        **extra,
    )
    return buffer.getvalue()


def _write_mp4(
    pictures: list[Image.Image],
    folder: Path,
    stem: str,
    options: AnimationOptions,
    parameters: ImageParameters | None,
) -> Path:
    if not mp4_available():
        raise ExportError(
            "MP4 needs the imageio-ffmpeg package (pip install 'gan-studio[video]'); use .gif or .webp."
        )
    import imageio_ffmpeg

    background = options.background or (255, 255, 255)
    rgb = [np.asarray(flatten(p, background)) for p in pictures]
    height, width = rgb[0].shape[:2]
    # H.264 in yuv420p needs even sizes: pad odd edges with the background instead of resizing.
    padded_h, padded_w = height + height % 2, width + width % 2
    if (padded_h, padded_w) != (height, width):
        canvas = np.empty((padded_h, padded_w, 3), np.uint8)
        canvas[:] = background
        rgb = [_paste(canvas.copy(), frame) for frame in rgb]

    def write_video(path: Path) -> None:
        writer = imageio_ffmpeg.write_frames(
            str(path),
            (padded_w, padded_h),
            fps=options.fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            quality=max(1.0, options.quality / 10),
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart"],
        )
        try:
            writer.send(None)
            for frame in rgb:
                writer.send(np.ascontiguousarray(frame))
        except (OSError, RuntimeError, BrokenPipeError) as exc:
            writer.close()
            raise OSError(getattr(exc, "errno", None), f"ffmpeg could not write the video: {exc}") from exc
        writer.close()

    stem = free_stem(folder, stem, (".mp4", ".mp4.json"))
    video = write_new_file(folder, stem, ".mp4", write_video)
    if parameters is not None:
        try:
            write_new_file(folder, video.name, ".json", sidecar_json(parameters).encode("utf-8"))
        except ExportError:
            video.unlink(missing_ok=True)  # a video without its recipe is not what was asked for
            raise
    return video


def _paste(canvas: np.ndarray, frame: np.ndarray) -> np.ndarray:
    canvas[: frame.shape[0], : frame.shape[1]] = frame
    return canvas


def _frame_folder_place(out: Path) -> tuple[Path, str]:
    """Where a frame folder goes: ``out`` itself, or a ``frames`` folder inside an existing, busy ``out``.

    A missing or empty ``out`` becomes the frame folder; an earlier frame folder is kept and ``out_1`` made
    beside it; any other non-empty folder (``.``, ``~/Pictures``) gets a new ``frames`` folder inside it.
    """
    try:
        busy = out.is_dir() and any(out.iterdir())
    except OSError:
        busy = False
    if busy and not (out / RECIPE_FILE).exists() and not (out / "frame_0001.png").exists():
        return check_folder(out), "frames"
    return check_folder(out.absolute().parent), out.absolute().name


def _write_frame_folder(
    pictures: list[Image.Image],
    order: list[int],
    parent: Path,
    name: str,
    options: AnimationOptions,
    parameters: ImageParameters | None,
    frame_parameters: Sequence[ImageParameters] | None,
) -> Path:
    png_options = _ImageOptions(format="png", background=options.background)

    def fill(folder: Path) -> None:
        for position, index in enumerate(order, start=1):
            picture = pictures[index]
            if frame_parameters is not None:
                data = encode(picture, frame_parameters[index], png_options)
            else:
                picture = flatten(picture, options.background) if options.background else picture
                buffer = io.BytesIO()
                picture.save(buffer, "PNG")
                data = buffer.getvalue()
            (folder / f"frame_{position:04d}.png").write_bytes(data)
        if parameters is not None:
            (folder / RECIPE_FILE).write_text(sidecar_json(parameters), encoding="utf-8")

    return new_folder(parent, name, fill)


def read_recipe(path: str | Path) -> dict[str, Any] | None:
    """The animation recipe stored with ``path`` (a GIF, WebP, MP4 or frame folder), or None if it has none."""
    return read_parameters(path).animation


__all__ = [
    "AnimationOptions",
    "animation_formats",
    "animation_kind",
    "animation_recipe",
    "frame_durations",
    "mp4_available",
    "play_order",
    "read_recipe",
    "save_animation",
    "save_results_animation",
]
