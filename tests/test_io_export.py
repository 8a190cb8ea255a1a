"""Export: formats, scaling, safe names for hostile prompts, never overwriting, and all-or-nothing writes."""

from __future__ import annotations

import errno
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import studio.io.files as files
from studio.engine.requests import MAX_PROMPT_CHARS, GenerationRequest, GenerationResult
from studio.io.export import ExportError, ExportOptions, export_image, export_result, file_stem
from studio.io.files import safe_file_stem, safe_name_part
from studio.io.metadata import ImageParameters, read_parameters

WINDOWS_FORBIDDEN = set('<>:"/\\|?*')
WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(10)),
    *(f"LPT{i}" for i in range(10)),
}


def pixels(seed: int = 0, size: int = 16) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 4), dtype=np.uint8)
    image[: size // 2, : size // 2, 3] = 0  # a transparent corner with colours underneath
    return image


def params(prompt: str = "a red apple", seed: int = 42, model: str = "emoji") -> ImageParameters:
    return ImageParameters(
        GenerationRequest(prompt, seed=seed, model=model), model_hash="1a2b3c4d", size=(16, 16)
    )


def assert_safe_name(path: Path, folder: Path) -> None:
    name = path.name
    assert path.parent == folder.resolve()
    assert not any(ch in WINDOWS_FORBIDDEN for ch in name)
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
    assert not path.stem.endswith((".", " ")) and not name.startswith((".", " "))
    assert name.split(".")[0].upper() not in WINDOWS_RESERVED
    assert len(name.encode("utf-8")) <= 255


def only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------------------------- formats


def test_png_keeps_alpha_and_exact_pixels(tmp_path):
    image = pixels()
    path = export_image(image, params(), tmp_path)
    assert path.name == "a red apple_42.png"
    with Image.open(path) as stored:
        assert stored.mode == "RGBA"
        assert np.array_equal(np.asarray(stored), image)


def test_webp_lossless_is_exact_and_lossy_is_smaller(tmp_path):
    image = pixels(size=64)
    lossless = export_image(image, params(), tmp_path, ExportOptions(format="webp"))
    lossy = export_image(image, params(), tmp_path, ExportOptions(format="webp", lossless=False, quality=30))
    with Image.open(lossless) as stored:
        assert np.array_equal(np.asarray(stored), image)
    assert lossy.name == "a red apple_42_1.webp"
    assert read_parameters(lossy) == params()


def test_jpeg_is_flattened_on_white_by_default(tmp_path):
    image = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    path = export_image(image, params(), tmp_path, ExportOptions(format="jpg"))
    assert path.suffix == ".jpg"
    with Image.open(path) as stored:
        assert stored.mode == "RGB"
        assert np.asarray(stored).min() >= 250


@pytest.mark.parametrize("background", ["#202020", (32, 32, 32), "rgb(32,32,32)"])
def test_background_flattens_png(tmp_path, background):
    image = np.zeros((8, 8, 4), np.uint8)
    path = export_image(image, params(), tmp_path, ExportOptions(background=background))
    with Image.open(path) as stored:
        assert stored.mode == "RGB"
        assert (np.asarray(stored) == 32).all()


def test_integer_upscaling(tmp_path):
    image = pixels()
    nearest = export_image(image, params(), tmp_path, ExportOptions(scale=4))
    with Image.open(nearest) as stored:
        assert stored.size == (64, 64)
        assert np.array_equal(np.asarray(stored), image.repeat(4, axis=0).repeat(4, axis=1))
    lanczos = export_image(image, params(), tmp_path, ExportOptions(scale=8, resample="lanczos"))
    with Image.open(lanczos) as stored:
        assert stored.size == (128, 128)


@pytest.mark.parametrize(
    "options, message",
    [
        (ExportOptions(format="bmp"), "cannot export"),
        (ExportOptions(scale=9), "scale"),
        (ExportOptions(scale=0), "scale"),
        (ExportOptions(scale=1.5), "scale"),
        (ExportOptions(resample="cubic"), "nearest"),
        (ExportOptions(quality=0), "quality"),
        (ExportOptions(background="not-a-colour"), "not a colour"),
        (ExportOptions(template="{prompt}_{steps}"), "{steps}"),
        (ExportOptions(template="{prompt.__class__}"), "not known"),
        (ExportOptions(template="{prompt"), "brace"),
        (ExportOptions(template="  "), "empty"),
    ],
)
def test_bad_options_are_one_sentence(tmp_path, options, message):
    with pytest.raises(ExportError, match=message.replace("{", r"\{").replace("}", r"\}")) as error:
        export_image(pixels(), params(), tmp_path, options)
    assert "\n" not in str(error.value)
    assert only_files(tmp_path) == []


def test_result_that_failed_is_not_exported(tmp_path):
    failed = GenerationResult(GenerationRequest("x"), error="The prompt is empty.")
    with pytest.raises(ExportError, match="not rendered"):
        export_result(failed, tmp_path)


def test_export_result_uses_its_index_and_parameters(tmp_path):
    result = GenerationResult(
        GenerationRequest("cat", seed=5), index=3, image=pixels(), model_hash="deadbeef"
    )
    path = export_result(result, tmp_path, ExportOptions(template="{prompt}-{index:03d}-{seed}"))
    assert path.name == "cat-003-5.png"
    assert read_parameters(path).model_hash == "deadbeef"


# ----------------------------------------------------------------------------------------------- names


HOSTILE_PROMPTS = [
    "../../etc/passwd",
    "..\\..\\Windows\\System32\\drivers",
    "/absolute/path",
    "CON",
    "con.tar.gz",
    "COM1",
    "nul ",
    "LPT9.txt",
    "x" * 10_000,
    "🍎" * 5_000,
    "first line\nsecond line\r\n\tthird",
    "nul\x00byte and \x1bescape",
    "trailing dots...",
    " . ",
    "...",
    'a<b>c:d"e|f?g*h',
    "\u202egnp.exe",
    "🍎 apple 👩‍👩‍👧 family",
]


@pytest.mark.parametrize("prompt", HOSTILE_PROMPTS, ids=range(len(HOSTILE_PROMPTS)))
def test_hostile_prompts_make_safe_names_inside_the_folder(tmp_path, prompt):
    folder = tmp_path / "exports"
    folder.mkdir()
    path = export_image(pixels(), params(prompt), folder, ExportOptions(template="{prompt}"))
    assert_safe_name(path, folder)
    assert only_files(folder) == [path.name]
    assert only_files(tmp_path) == ["exports"]
    if len(prompt) <= MAX_PROMPT_CHARS:  # longer prompts are not valid requests, so they do not restore
        assert read_parameters(path).request.prompt == prompt


def test_emoji_stay_in_names(tmp_path):
    path = export_image(pixels(), params("🍎 apple 👩‍👩‍👧"), tmp_path)
    assert path.name == "🍎 apple 👩‍👩‍👧_42.png"


def test_long_prompts_are_shortened():
    stem = file_stem(params("word " * 2000), ExportOptions())
    assert len(stem) <= 80 and stem.endswith("_42")


def test_template_fields(tmp_path):
    options = ExportOptions(template="{date}_{model}_{prompt}_{seed}_{index}")
    stem = file_stem(params(model="/models/my-model"), options, index=7, when=datetime(2026, 1, 2))
    assert stem == "2026-01-02_my-model_a red apple_42_7"


def test_template_separators_cannot_leave_the_folder(tmp_path):
    path = export_image(pixels(), params(), tmp_path, ExportOptions(template="../{prompt}/../../{seed}"))
    assert_safe_name(path, tmp_path)


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("CON", "_CON"),
        ("con.png", "_con.png"),
        ("Com1", "_Com1"),
        ("CONSOLE", "CONSOLE"),
        ("name. . ", "name"),
        ("", "image"),
        ("\x00\x01", "image"),
        ("a/b", "a_b"),
    ],
)
def test_safe_file_stem(raw, safe):
    assert safe_file_stem(raw) == safe


def test_safe_name_part_keeps_emoji_joiners_and_drops_bidi_overrides():
    assert safe_name_part("👩‍👩‍👧") == "👩‍👩‍👧"
    assert safe_name_part("a\u202eb") == "ab"


# ----------------------------------------------------------------------------------------------- never overwrite


def test_never_overwrites(tmp_path):
    first = export_image(pixels(1), params(), tmp_path)
    original = first.read_bytes()
    second = export_image(pixels(2), params(), tmp_path)
    third = export_image(pixels(3), params(), tmp_path)
    assert [first.name, second.name, third.name] == [
        "a red apple_42.png",
        "a red apple_42_1.png",
        "a red apple_42_2.png",
    ]
    assert first.read_bytes() == original


def test_a_name_taken_while_writing_is_not_replaced(tmp_path, monkeypatch):
    """Another program creates the chosen name between choosing it and renaming: the export moves on."""
    taken = tmp_path / "a red apple_42.png"
    real_fsync = os.fsync

    def fsync_then_race(fd):
        real_fsync(fd)
        if not taken.exists():
            taken.write_bytes(b"someone else's file")

    monkeypatch.setattr(files.os, "fsync", fsync_then_race)
    path = export_image(pixels(), params(), tmp_path)
    assert path.name == "a red apple_42_1.png"
    assert taken.read_bytes() == b"someone else's file"


# ----------------------------------------------------------------------------------------------- failures


def test_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    def write_half_then_fail(file, data):
        file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_write_all", write_half_then_fail)
    with pytest.raises(ExportError, match="full") as error:
        export_image(pixels(), params(), tmp_path)
    assert "\n" not in str(error.value)
    assert only_files(tmp_path) == []


def test_read_only_folder_gives_one_sentence(tmp_path, monkeypatch):
    # Tests run as root, for whom chmod does not block writes: simulate the refusal where the file is made.
    def refuse(folder, suffix=""):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files, "_create_temp", refuse)
    with pytest.raises(ExportError, match="read-only or you lack permission"):
        export_image(pixels(), params(), tmp_path)
    assert only_files(tmp_path) == []


def test_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files, "_publish", refuse)
    with pytest.raises(ExportError, match="read-only"):
        export_image(pixels(), params(), tmp_path)
    assert only_files(tmp_path) == []


def test_encoder_crash_leaves_nothing(tmp_path, monkeypatch):
    def crash(file, data):
        file.write(data[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "_write_all", crash)
    with pytest.raises(KeyboardInterrupt):
        export_image(pixels(), params(), tmp_path)
    assert only_files(tmp_path) == []


def test_missing_folder_and_file_as_folder(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export_image(pixels(), params(), tmp_path / "missing")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_image(pixels(), params(), a_file)


def test_prepare_folder_makes_one_missing_level_and_refuses_the_rest(tmp_path, monkeypatch):
    made = files.prepare_folder(tmp_path / "Pictures")
    assert made == (tmp_path / "Pictures").resolve() and made.is_dir()
    assert files.prepare_folder(made) == made  # an existing folder as it is
    with pytest.raises(ExportError, match="does not exist"):
        files.prepare_folder(tmp_path / "typo" / "deeper")  # more than one level missing: likely a typo
    assert not (tmp_path / "typo").exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        files.prepare_folder(a_file)

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ExportError, match=r"cannot make it \(Permission denied\); choose another folder\.$"):
        files.prepare_folder(tmp_path / "locked")


def test_jpeg_refuses_parameters_that_do_not_fit(tmp_path):
    from studio.engine.requests import ConceptSlider

    concepts = tuple(ConceptSlider("🙂" * 1000, "🙁" * 1000, 0.1) for _ in range(5))
    parameters = ImageParameters(GenerationRequest("x", concepts=concepts), size=(16, 16))
    with pytest.raises(ExportError, match="PNG or WebP"):
        export_image(pixels(), parameters, tmp_path, ExportOptions(format="jpeg"))
    assert only_files(tmp_path) == []


def test_exported_files_get_ordinary_permissions(tmp_path):
    """The temporary file becomes the export, so it must not keep a private 0600 mode."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = export_image(pixels(), params(), tmp_path)
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
