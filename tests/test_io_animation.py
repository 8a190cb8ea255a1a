"""Animations: frame counts, timing, loop and ping-pong, transparency, recipes, and all-or-nothing writes."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import studio.io.files as files
from studio.engine.requests import Endpoint, GenerationRequest, GenerationResult
from studio.io.animation import (
    AnimationOptions,
    animation_formats,
    animation_kind,
    animation_recipe,
    frame_durations,
    interpolation_stem,
    mp4_available,
    play_order,
    read_recipe,
    save_animation,
    save_results_animation,
)
from studio.io.files import ExportError
from studio.io.metadata import ImageParameters, read_parameters

needs_mp4 = pytest.mark.skipif(not mp4_available(), reason="imageio-ffmpeg is not installed")


def make_frames(count: int, size: int = 16) -> list[np.ndarray]:
    """Clearly different frames (encoders fold identical neighbours) with a transparent left column."""
    frames = []
    for i in range(count):
        frame = np.zeros((size, size, 4), np.uint8)
        frame[..., 0] = 255 * i // max(1, count - 1)
        frame[..., 1] = np.arange(size, dtype=np.uint8)[None, :] * (256 // size)
        frame[..., 2] = 40 * (i % 5)
        frame[..., 3] = 255
        frame[:, :2, 3] = 0
        frames.append(frame)
    return frames


def make_results(count: int) -> list[GenerationResult]:
    end = Endpoint("a green pear", 7)
    return [
        GenerationResult(
            GenerationRequest("a red apple", seed=1, interpolate_to=end, t=float(t), model="tiny-test"),
            index=i,
            image=frame,
            model_hash="1a2b3c4d",
        )
        for i, (t, frame) in enumerate(zip(np.linspace(0, 1, count), make_frames(count), strict=True))
    ]


def durations(path: Path) -> list[int]:
    with Image.open(path) as image:
        out = []
        for index in range(image.n_frames):
            image.seek(index)
            image.load()
            out.append(image.info["duration"])
        return out


# ----------------------------------------------------------------------------------------------- timing


def test_interpolation_stem_names_both_ends_name_safe():
    a = GenerationRequest(prompt="cat", model="emoji", seed=0)
    b = GenerationRequest(prompt="red heart", model="emoji", seed=7)
    assert interpolation_stem(a, b) == "cat-0-to-red heart-7"
    odd = GenerationRequest(prompt='a/b:c*"?', model="emoji", seed=3)
    stem = interpolation_stem(odd, replace(a, prompt="x" * 200))
    assert not set('/:*"?') & set(stem) and stem.endswith("-to-" + "x" * 40 + "-0")
    assert interpolation_stem(replace(a, prompt="\u202e"), b).startswith("image-0-to-")  # nothing name-safe


def test_play_order():
    assert play_order(4, pingpong=False) == [0, 1, 2, 3]
    assert play_order(4, pingpong=True) == [0, 1, 2, 3, 2, 1]  # loops back to 0 without repeating it
    assert play_order(4, pingpong=True, loop=False) == [0, 1, 2, 3, 2, 1, 0]
    assert play_order(1, pingpong=True) == [0]


@pytest.mark.parametrize("fps", [1, 7, 12, 24, 30, 50])
def test_frame_durations_keep_total_time(fps):
    gif = frame_durations(24, fps, tick_ms=10)
    assert all(d % 10 == 0 and d > 0 for d in gif)
    assert abs(sum(gif) - 24 * 1000 / fps) <= 5
    webp = frame_durations(24, fps)
    assert abs(sum(webp) - 24 * 1000 / fps) <= 0.5


# ----------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
@pytest.mark.parametrize("count, fps", [(2, 12), (9, 24), (5, 7.5)])
def test_frame_count_and_fps(tmp_path, suffix, count, fps):
    path = save_animation(make_frames(count), tmp_path / f"clip{suffix}", AnimationOptions(fps=fps))
    assert path == tmp_path / f"clip{suffix}"
    with Image.open(path) as image:
        assert image.n_frames == count
        assert image.info["loop"] == 0
    tick = 10 if suffix == ".gif" else 1
    assert abs(sum(durations(path)) - count * 1000 / fps) <= tick / 2
    assert all(abs(d - 1000 / fps) <= tick for d in durations(path))


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_pingpong_and_play_once(tmp_path, suffix):
    path = save_animation(make_frames(5), tmp_path / f"clip{suffix}", AnimationOptions(pingpong=True))
    with Image.open(path) as image:
        assert image.n_frames == 8
    once = save_animation(make_frames(3), tmp_path / f"once{suffix}", AnimationOptions(loop=False))
    with Image.open(once) as image:
        assert image.info.get("loop", 1) != 0


def test_webp_keeps_exact_frames_with_alpha(tmp_path):
    """Lossless animated WebP keeps every visible pixel and the alpha channel exactly.

    (The animation decoder composites frames on a transparent canvas, so colours hidden under alpha 0 read
    back as 0; a still WebP keeps even those.)
    """
    frames = make_frames(4)
    path = save_animation(frames, tmp_path / "clip.webp")
    with Image.open(path) as image:
        for index, frame in enumerate(frames):
            image.seek(index)
            stored = np.asarray(image.convert("RGBA"))
            visible = frame[..., 3] > 0
            assert np.array_equal(stored[..., 3], frame[..., 3])
            assert np.array_equal(stored[visible], frame[visible])


def test_gif_transparency_index_and_background(tmp_path):
    frames = make_frames(3)
    keep = save_animation(frames, tmp_path / "alpha.gif")
    with Image.open(keep) as image:
        for index in range(3):
            image.seek(index)
            rgba = np.asarray(image.convert("RGBA"))
            assert (rgba[:, :2, 3] == 0).all() and (rgba[:, 2:, 3] == 255).all()
    flat = save_animation(frames, tmp_path / "flat.gif", AnimationOptions(background="#ff00ff"))
    with Image.open(flat) as image:
        rgba = np.asarray(image.convert("RGBA"))
        assert (rgba[..., 3] == 255).all()
        assert (rgba[:, :2, :3] == (255, 0, 255)).all()


def test_scale(tmp_path):
    path = save_animation(make_frames(2), tmp_path / "big.webp", AnimationOptions(scale=3))
    with Image.open(path) as image:
        assert image.size == (48, 48)


@needs_mp4
def test_mp4_frame_count_fps_and_sidecar(tmp_path):
    import imageio_ffmpeg

    results = make_results(6)
    path = save_results_animation(results, tmp_path / "clip.mp4", AnimationOptions(fps=15, pingpong=True))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = list(reader)
    assert len(frames) == 10
    assert meta["fps"] == 15
    assert meta["size"] == (16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.mp4.json"]
    recipe = read_parameters(path).animation
    assert recipe["fps"] == 15 and recipe["frames"] == 6 and recipe["played_frames"] == 10


@needs_mp4
def test_mp4_pads_odd_sizes_and_never_overwrites(tmp_path):
    import imageio_ffmpeg

    (tmp_path / "clip.mp4").write_bytes(b"older video")
    (tmp_path / "clip_1.mp4.json").write_text("{}")  # an orphaned sidecar also blocks its name
    path = save_animation(make_frames(3, size=15), tmp_path / "clip.mp4")
    assert path.name == "clip_2.mp4"
    assert (tmp_path / "clip.mp4").read_bytes() == b"older video"
    assert next(imageio_ffmpeg.read_frames(str(path)))["size"] == (16, 16)


def test_frame_folder(tmp_path):
    results = make_results(4)
    folder = save_results_animation(results, tmp_path / "frames", AnimationOptions(pingpong=True, fps=8))
    assert folder == tmp_path / "frames"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["animation.json", *(f"frame_{i:04d}.png" for i in range(1, 7))]
    # Each PNG restores its own frame; the sixth is played frame 1 (ping-pong 0 1 2 3 2 1).
    assert read_parameters(folder / "frame_0006.png").request == results[1].request
    with Image.open(folder / "frame_0004.png") as image:
        assert np.array_equal(np.asarray(image), results[3].image)
    recipe = read_recipe(folder)
    assert recipe["fps"] == 8 and recipe["pingpong"] and len(recipe["requests"]) == 4
    assert read_parameters(folder / "animation.json").animation == recipe


def test_frame_folder_never_overwrites(tmp_path):
    (tmp_path / "frames").mkdir()
    first = save_animation(make_frames(2), tmp_path / "frames")
    assert first == tmp_path / "frames"  # an empty folder is used
    second = save_animation(make_frames(3), tmp_path / "frames")
    assert second == tmp_path / "frames_1"
    assert len(list(first.iterdir())) == 2 and len(list(second.iterdir())) == 3
    # A busy folder that holds no frames (like ".") gets a new frame folder inside it.
    third = save_animation(make_frames(2), tmp_path)
    assert third == tmp_path / "frames_2"
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "holiday.jpg").write_bytes(b"x")
    assert save_animation(make_frames(2), tmp_path / "pictures") == tmp_path / "pictures" / "frames"


def test_recipe_is_embedded_in_gif_and_webp(tmp_path):
    results = make_results(5)
    options = AnimationOptions(fps=10, pingpong=True)
    for suffix in (".gif", ".webp"):
        path = save_results_animation(results, tmp_path / f"clip{suffix}", options)
        parameters = read_parameters(path)
        assert parameters.request == results[0].request
        recipe = parameters.animation
        assert recipe["mode"] == "interpolate" and recipe["fps"] == 10 and recipe["frames"] == 5
        assert [GenerationRequest.from_json(r) for r in recipe["requests"]] == [r.request for r in results]
        assert recipe == animation_recipe([r.request for r in results], options)
        json.dumps(recipe)  # plain JSON


# ----------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "out, options, message",
    [
        ("clip.avi", AnimationOptions(), "not .avi files"),
        ("clip.gif", AnimationOptions(fps=60), "GIF cannot play faster"),
        ("clip.webp", AnimationOptions(fps=0), "Frames per second"),
        ("clip.webp", AnimationOptions(fps=float("nan")), "Frames per second"),
        ("clip.webp", AnimationOptions(scale=20), "scale"),
        ("missing/clip.gif", AnimationOptions(), "does not exist"),
    ],
)
def test_bad_requests_are_one_sentence(tmp_path, out, options, message):
    with pytest.raises(ExportError, match=message) as error:
        save_animation(make_frames(2), tmp_path / out, options)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_no_frames_or_mixed_sizes(tmp_path):
    with pytest.raises(ExportError, match="no frames"):
        save_animation([], tmp_path / "a.gif")
    with pytest.raises(ExportError, match="different sizes"):
        save_animation([*make_frames(1, 8), *make_frames(1, 16)], tmp_path / "a.gif")
    failed = [*make_results(2), GenerationResult(GenerationRequest("x"), index=2, error="Rendering failed.")]
    with pytest.raises(ExportError, match="Frame 3 was not rendered"):
        save_results_animation(failed, tmp_path / "a.gif")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_full_disk_leaves_no_partial_file(tmp_path, monkeypatch, suffix):
    def write_half_then_fail(file, data):
        file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_write_all", write_half_then_fail)
    with pytest.raises(ExportError, match="full"):
        save_animation(make_frames(3), tmp_path / f"clip{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_frame_folder_failure_leaves_nothing(tmp_path, monkeypatch):
    real_write_bytes = Path.write_bytes
    calls = []

    def fail_on_third(self, data):
        calls.append(self)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", fail_on_third)
    with pytest.raises(ExportError, match="full"):
        save_animation(make_frames(5), tmp_path / "frames")
    assert list(tmp_path.iterdir()) == []


@needs_mp4
def test_mp4_failure_leaves_no_video_or_sidecar(tmp_path, monkeypatch):
    import studio.io.animation as animation

    def fail_sidecar(folder, stem, suffix, data):
        if suffix == ".json":
            raise ExportError("The disk is full.")
        return real(folder, stem, suffix, data)

    real = animation.write_new_file
    monkeypatch.setattr(animation, "write_new_file", fail_sidecar)
    parameters = replace(ImageParameters(GenerationRequest("x")), animation={"frames": 2})
    with pytest.raises(ExportError):
        save_animation(make_frames(2), tmp_path / "clip.mp4", parameters=parameters)
    assert list(tmp_path.iterdir()) == []


def test_kinds_and_formats(tmp_path):
    assert animation_kind("a.GIF") == "gif"
    assert animation_kind(tmp_path / "frames") == "frames"
    assert {"gif", "webp", "frames"} <= set(animation_formats())
    assert ("mp4" in animation_formats()) == mp4_available()


def test_mp4_not_offered_without_imageio_ffmpeg(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ffmpeg(name, *args, **kwargs):
        if name == "imageio_ffmpeg":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ffmpeg)
    assert not mp4_available()
    assert "mp4" not in animation_formats()
    with pytest.raises(ExportError, match="imageio-ffmpeg"):
        save_animation(make_frames(2), tmp_path / "clip.mp4")
