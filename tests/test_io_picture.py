"""Every kind of picture a person may bring: read, upright, RGBA, letterboxed; anything else one sentence."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from studio.io.picture import MAX_PICTURE_PIXELS, PictureError, picture_from_rgba, read_picture


def _save(path, image, **options):
    image.save(path, **options)
    return path


def _alpha_box(image: np.ndarray):
    ys, xs = np.nonzero(image[..., 3] > 0)
    return xs.min(), xs.max(), ys.min(), ys.max()


@pytest.mark.parametrize(
    "name, make",
    [
        ("rgba.png", lambda: Image.new("RGBA", (40, 40), (255, 0, 0, 255))),
        ("rgb.png", lambda: Image.new("RGB", (40, 40), (255, 0, 0))),
        ("photo.jpg", lambda: Image.new("RGB", (40, 40), (255, 0, 0))),
        ("photo.webp", lambda: Image.new("RGB", (40, 40), (255, 0, 0))),
        ("cmyk.jpg", lambda: Image.new("CMYK", (40, 40), (0, 255, 255, 0))),
        ("grey.png", lambda: Image.new("L", (40, 40), 76)),
        ("palette.png", lambda: Image.new("RGB", (40, 40), (255, 0, 0)).convert("P")),
        ("bitmap.bmp", lambda: Image.new("RGB", (40, 40), (255, 0, 0))),
    ],
)
def test_each_kind_becomes_a_square_rgba_picture(tmp_path, name, make):
    picture = read_picture(_save(tmp_path / name, make()))
    assert picture.image.shape == (128, 128, 4) and picture.image.dtype == np.uint8
    assert picture.name == name
    centre = picture.image[64, 64].astype(int)
    assert centre[3] == 255
    if name != "grey.png":
        assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60  # red stays red (CMYK too)


def test_sixteen_bit_grey_uses_the_full_range(tmp_path):
    values = np.full((16, 16), 65535 // 2, np.uint16)
    path = tmp_path / "deep.png"
    Image.frombytes("I;16", (16, 16), values.tobytes()).save(path)
    centre = read_picture(path).image[64, 64]
    assert abs(int(centre[0]) - 128) <= 2 and centre[3] == 255


def test_palette_transparency_becomes_alpha_and_is_cropped(tmp_path):
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (10, 10, 30, 20))  # a 20 x 10 red bar on a transparent ground
    path = _save(tmp_path / "sprite.png", image, transparency=0)
    picture = read_picture(path).image
    # Cropped to the bar, which then fills the width; above and below it stays transparent.
    assert _alpha_box(picture)[:2] == (0, 127)
    assert picture[5, 64, 3] == 0 and picture[64, 64, 3] == 255 and picture[64, 64, 0] > 200


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((0, 0, 255), (255, 0, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    centre = read_picture(path).image[64, 64]
    assert centre[2] > 200 and centre[0] < 60


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (80, 40), (255, 255, 255))
    image.paste((255, 0, 0), (0, 0, 40, 40))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    picture = read_picture(_save(tmp_path / "phone.jpg", image, exif=exif)).image
    # Upright it is 40 wide and 80 tall: letterboxed with transparent bars left and right; red on top.
    left, right, top, bottom = _alpha_box(picture)
    assert left > 20 and right < 108 and top == 0 and bottom == 127
    assert picture[20, 64, 0] > 200 and picture[20, 64, 1] < 60


def test_non_square_is_letterboxed_with_transparent_bars(tmp_path):
    picture = read_picture(_save(tmp_path / "wide.png", Image.new("RGB", (200, 100), (0, 255, 0)))).image
    left, right, top, bottom = _alpha_box(picture)
    assert (left, right) == (0, 127) and 28 <= top <= 36 and 91 <= bottom <= 99


def test_tiny_pictures_are_scaled_up(tmp_path):
    assert read_picture(_save(tmp_path / "tiny.png", Image.new("RGB", (8, 8), "red"))).image.shape == (
        128,
        128,
        4,
    )


def _png_header_only(path, width, height):
    """A PNG that claims a size in its header and holds only a few bytes of (broken) pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"\x78\x9c\x01"))
    return path


def test_huge_pictures_are_refused_from_the_header_before_decoding(tmp_path):
    path = _png_header_only(tmp_path / "huge.png", 8000, 8000)
    with pytest.raises(PictureError, match=f"more than {MAX_PICTURE_PIXELS // 1_000_000} million pixels"):
        read_picture(path)  # had it decoded, the missing data would have said "damaged"


@pytest.mark.parametrize(
    "make, sentence",
    [
        (lambda p: p.write_text("hello"), "not a picture GAN Studio can read"),
        (lambda p: _png_header_only(p, 40, 40), "damaged or incomplete"),
        (lambda p: Image.new("RGBA", (10, 10)).save(p, format="PNG"), "fully transparent"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: None, "There is no picture"),
    ],
)
def test_unreadable_input_is_one_sentence(tmp_path, make, sentence):
    path = tmp_path / "thing.png"
    make(path)
    with pytest.raises(PictureError, match=sentence) as caught:
        read_picture(path)
    assert str(caught.value).count(".") >= 1 and "\n" not in str(caught.value)


def test_pixels_from_memory(tmp_path):
    rgb = np.zeros((30, 60, 3), np.uint8)
    rgb[..., 1] = 255
    assert picture_from_rgba(rgb, "clipboard").image.shape == (128, 128, 4)
    with pytest.raises(PictureError):
        picture_from_rgba(np.zeros((0, 4, 4), np.uint8))


_HEADERS = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"BM",
    b"II*\x00",
]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow's note on the way to its error
@settings(max_examples=80, deadline=None)
@given(header=st.sampled_from(_HEADERS), body=st.binary(max_size=300))
def test_any_bytes_give_a_picture_or_one_sentence(tmp_path_factory, header, body):
    path = tmp_path_factory.mktemp("fuzz") / "thing.img"
    path.write_bytes(header + body)
    try:
        picture = read_picture(path)
    except PictureError as exc:
        assert "\n" not in str(exc) and str(exc).endswith(".")
    else:
        assert picture.image.shape == (128, 128, 4)


def test_real_pictures_survive_truncation(tmp_path):
    """Every prefix of a real JPEG and PNG gives a picture or one sentence (a cut-off download)."""
    for name, options in (("cut.jpg", {"quality": 80}), ("cut.png", {})):
        full = tmp_path / name
        Image.effect_noise((64, 48), 40).convert("RGB").save(full, **options)
        data = full.read_bytes()
        for cut in range(0, len(data), max(1, len(data) // 40)):
            part = tmp_path / f"part-{cut}-{name}"
            part.write_bytes(data[:cut])
            try:
                read_picture(part)
            except PictureError:
                pass
