"""Fuzzing the untrusted-input readers with Hypothesis: a result or one sentence, never another exception.

Targets: the metadata document parser, the image reader (mutated PNG/WebP/JPEG bytes), the paste parser,
the request parser and ``model.json``. The property is the same everywhere: the reader returns a valid
value or raises the project's one-sentence error type (MetadataError / RequestError / ModelError) with a
short, printable, single-line message. Examples are derandomized (the same thousands every CI run, in a
bounded time); set ``GAN_STUDIO_FUZZ_SCALE=10`` for a longer, random run. Every failure Hypothesis ever
found is kept below as an ``@example``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from studio.engine.requests import GenerationRequest, RequestError
from studio.errors import ModelError
from studio.io.metadata import (
    ImageParameters,
    MetadataError,
    parameters_from_text,
    parse_document,
    read_parameters,
    save_options,
    to_document,
)
from studio.untrusted import MAX_MESSAGE_CHARS

SCALE = float(os.environ.get("GAN_STUDIO_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int):
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def assert_sentence(error: Exception) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message, message
    assert len(message) <= MAX_MESSAGE_CHARS, (len(message), message[:300])
    assert not any(ch in message for ch in "\x00\x1b\x07"), message


# ----------------------------------------------------------------------------------------------- strategies

HOSTILE_TEXT = st.sampled_from(
    ["", " ", "\x00", "\x1b[2J", "\ud800", "\u202e", "../..", "/etc", "~", "x" * 3000, "😀" * 10, "emoji"]
)
HOSTILE_NUMBERS = st.sampled_from(
    [0, -1, 1, 2**63, 2**63 - 1, 10**39, -(10**39), 0.5, -0.0, 1e308, 3.0, 1e-320, True, False]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), HOSTILE_TEXT, HOSTILE_NUMBERS
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=8,
)

VALID_PARAMETERS = ImageParameters(
    GenerationRequest("a cat", seed=3, truncation=0.7, directions=((1, 0.5),), model="emoji"),
    model_hash="1a2b3c4d",
    size=(128, 128),
)
VALID_REQUEST = VALID_PARAMETERS.request.to_json()
VALID_DOCUMENT = to_document(VALID_PARAMETERS) | {
    "animation": {"mode": "interpolate", "frames": 2, "fps": 12.0, "loop": True, "requests": [VALID_REQUEST]}
}


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


def mutated(base):
    """``base`` with one to three of its values (at any depth) replaced by hostile ones."""

    @st.composite
    def build(draw):
        value = base
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(list(_paths(value))))
            value = _replaced(value, path, draw(JSON_VALUES))
        return value

    return build()


def to_text(value) -> str:
    return json.dumps(value, allow_nan=True)


# Raw JSON text a file may hold that ``json.dumps`` would never write.
RAW_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(0, 5000)),
    st.builds(
        lambda d: '{"schema": 1, "request": {"prompt": "x", "seed": ' + "9" * d + "}}", st.integers(1, 6000)
    ),
    st.sampled_from(
        ["Infinity", "-Infinity", "NaN", "1e999", '{"schema": 1e999}', '"\\ud800"', "{}", "[]", "null"]
    ),
)


# ----------------------------------------------------------------------------------------------- documents


@fuzz_settings(1000)
@given(st.one_of(mutated(VALID_DOCUMENT).map(to_text), JSON_VALUES.map(to_text), RAW_TEXT))
@example('{"schema": 1, "request": {"prompt": "x", "seed": Infinity}}')
@example('{"schema": 1, "request": {"prompt": "x"}, "size": [1e999, 1]}')
@example('{"schema": 1, "request": {"prompt": "x"}, "animation": {"frames": 2.5, "fps": "12"}}')
@example('{"schema": 1, "request": {"prompt": "x"}, "app_version": "\\ud800"}')
@example('{"schema": 1, "request": {"prompt": "x", "model": "/abs/path"}}')
@example('{"schema": 0, "prompt": "x", "width": Infinity}')
@example('{"schema": 1, "request": {"prompt": "x", "directions": [[1]]}}')
@example('{"schema": 1, "request": {"prompt": "x", "directions": {"a": 1}}}')
@example('{"schema": 1, "request": {"prompt": "x", "concepts": [1]}}')
@example('{"schema": 1, "request": {"prompt": "x", "interpolate_to": {"prompt": "y"}}}')
@example('{"\\ud800": 1, "schema": 1, "request": {"prompt": "x"}}')
def test_fuzz_metadata_documents(text):
    try:
        parameters = parse_document(text, "fuzz.png")
    except MetadataError as error:
        assert_sentence(error)
    else:
        assert isinstance(parameters, ImageParameters)
        assert parameters.request.validated() is parameters.request


@fuzz_settings(600)
@given(st.one_of(mutated(VALID_DOCUMENT).map(to_text), mutated(VALID_REQUEST).map(to_text), RAW_TEXT))
@example('{"prompt": "x", "count": 10000}')
@example('{"prompt": ' + "[" * 5000 + "]" * 5000 + "}")
def test_fuzz_paste_parser(text):
    try:
        parameters = parameters_from_text(text)
    except MetadataError as error:
        assert_sentence(error)
    else:
        assert parameters is None or parameters.request.validated() is parameters.request


@fuzz_settings(800)
@given(st.one_of(mutated(VALID_REQUEST), JSON_VALUES))
@example({"prompt": "x", "seed": 2**63 - 1, "count": 2})
@example({"prompt": "x", "truncation": 10**39})
@example({"prompt": "x", "directions": [[True, 1.0]]})
def test_fuzz_request_parser(data):
    try:
        request = GenerationRequest.from_json(data).validated()
    except RequestError as error:
        assert_sentence(error)
    else:
        assert GenerationRequest.from_json(request.to_json()) == request


# ----------------------------------------------------------------------------------------------- images


def _exported(image_format: str) -> bytes:
    parameters = ImageParameters(GenerationRequest("a cat \x1b", seed=3, model="emoji"), size=(8, 8))
    buffer = io.BytesIO()
    Image.new("RGBA" if image_format == "png" else "RGB", (8, 8)).save(
        buffer, image_format.upper(), **save_options(parameters, image_format)
    )
    return buffer.getvalue()


EXPORTED = {fmt: _exported(fmt) for fmt in ("png", "webp", "jpeg")}


@st.composite
def mutated_image(draw):
    image_format = draw(st.sampled_from(sorted(EXPORTED)))
    data = bytearray(EXPORTED[image_format])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "copy"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:  # a chunk of the file again, elsewhere (duplicated chunks and copies)
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + draw(st.integers(1, 200))]
    return image_format, bytes(data)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="gan-studio-fuzz-") as folder:
        yield Path(folder)


@fuzz_settings(600)
@given(case=mutated_image())
def test_fuzz_image_reader(scratch, case):
    image_format, data = case
    path = scratch / f"fuzz.{image_format}"
    path.write_bytes(data)
    try:
        parameters = read_parameters(path)
    except MetadataError as error:
        assert_sentence(error)
    else:
        assert parameters.request.validated() is parameters.request


# ----------------------------------------------------------------------------------------------- model.json


@pytest.fixture(scope="module")
def model_manifest(tiny_model_dir):
    return json.loads((tiny_model_dir / "model.json").read_text(encoding="utf-8"))


@fuzz_settings(400)
@given(data=st.data())
@example(data=None)
def test_fuzz_model_json(scratch, model_manifest, data):
    from studio.models.format import ModelInfo, read_model_info

    folder = scratch / "model"
    folder.mkdir(exist_ok=True)
    if data is None:  # a deep list: RecursionError before the limits
        text = "[" * 100_000 + "]" * 100_000
    else:
        text = data.draw(st.one_of(mutated(model_manifest).map(to_text), RAW_TEXT), label="model.json")
    (folder / "model.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        info = read_model_info(folder)
    except ModelError as error:
        assert_sentence(error)
    else:
        assert isinstance(info, ModelInfo) and 0 < info.resolution <= 1024
