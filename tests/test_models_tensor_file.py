"""The project's safetensors writer: equal content gives equal bytes, the file reads back whole, the shipped files
are already in that form (so re-running the commands that wrote them gives the same bytes and model hash)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save

from studio.models.tensor_file import METADATA_KEY, save_tensors, stable_bytes

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "resources" / "models").glob("*/*.safetensors")) + sorted(
    (ROOT / "benchmarks").glob("*/*.safetensors")
)
TENSORS = {
    "weight": np.arange(12, dtype=np.float32).reshape(3, 4),
    "index": np.arange(5, dtype=np.int64),
    "mask": np.array([1, 0, 1], np.uint8),
}


def _header(data: bytes) -> dict:
    return json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])


def _read(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="np") as handle:
        return handle.metadata() or {}, {key: handle.get_tensor(key) for key in handle.keys()}


metadata_dicts = st.dictionaries(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
        lambda k: k != METADATA_KEY
    ),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    min_size=2,
    max_size=8,
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(metadata=metadata_dicts, data=st.data())
def test_equal_content_gives_equal_bytes_in_any_key_order(tmp_path_factory, metadata, data):
    order = data.draw(st.permutations(list(metadata)))
    first = save_tensors(tmp_path_factory.mktemp("a") / "t.safetensors", TENSORS, metadata)
    second = save_tensors(
        tmp_path_factory.mktemp("b") / "t.safetensors", TENSORS, {k: metadata[k] for k in order}
    )
    assert first.read_bytes() == second.read_bytes()
    assert list(_header(first.read_bytes())[METADATA_KEY]) == sorted(metadata)
    read_metadata, tensors = _read(first)
    assert read_metadata == metadata
    assert tensors.keys() == TENSORS.keys()
    for key, value in TENSORS.items():
        assert tensors[key].dtype == value.dtype and np.array_equal(tensors[key], value)


def test_a_header_already_in_order_is_kept_byte_for_byte():
    """Without metadata, or with one key, the bytes are exactly safetensors' own: the re-serialised header (the
    path files with unsorted metadata take) is the same JSON text safetensors writes."""
    for metadata in (None, {"only": 'é/"x\u0001\n'}):
        data = save(TENSORS, metadata)
        assert stable_bytes(data) is data
    data = save(TENSORS, {"b": "2", "a": "1é"})
    stable = stable_bytes(data)
    assert stable[8:].endswith(data[8 + int.from_bytes(data[:8], "little") :])  # the tensor bytes untouched
    assert stable_bytes(stable) is stable
    assert int.from_bytes(stable[:8], "little") % 8 == 0
    assert list(_header(stable)[METADATA_KEY]) == ["a", "b"]


def test_torch_tensors_are_written_from_any_device_layout(tmp_path):
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # not contiguous
    path = save_tensors(tmp_path / "w.safetensors", {"w": weight, "n": torch.tensor(3)}, {"z": "1", "a": "2"})
    metadata, tensors = _read(path)
    assert metadata == {"z": "1", "a": "2"}
    assert np.array_equal(tensors["w"], weight.numpy())
    assert int(tensors["n"]) == 3


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, (1 << 40).to_bytes(8, "little") + b"{}"])
def test_bytes_that_are_not_safetensors_are_refused(data):
    with pytest.raises(ValueError, match="not a safetensors file"):
        stable_bytes(data)


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_tensors(tmp_path / "t.safetensors", TENSORS, {"fit": "old"})
    before = path.read_bytes()

    def full_disk(file, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("studio.atomic.write_all", full_disk)
    with pytest.raises(OSError):
        save_tensors(path, {"weight": TENSORS["weight"] * 2}, {"fit": "new"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_file_is_written_as_the_writer_writes(path):
    """A re-run of the command that wrote a shipped file gives its bytes back (the model hash with them)."""
    data = path.read_bytes()
    assert stable_bytes(data) is data
