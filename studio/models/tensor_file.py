"""safetensors files whose bytes depend on their content only: the one writer of the project's weight files.

``safetensors`` writes a file's metadata (``__metadata__``) in hash-map order, which changes from one process to
the next, so writing the same tensors and metadata twice could give two files with different bytes, and the
model hash (:func:`studio.models.format.load_model`, over the weight files' bytes) would change with no change
in content. :func:`save_tensors` writes the metadata's keys in sorted order; the tensors' entries are already
in a fixed order (safetensors sorts them). A header that is already so is kept byte for byte, so files without
metadata are exactly what ``safetensors`` writes. Writes are atomic (:func:`studio.atomic.write_atomically`):
a failure, a full disk included, leaves the old file whole. Torch- and Qt-free (torch tensors are accepted).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from studio.atomic import write_atomically

METADATA_KEY = "__metadata__"
_LENGTH_BYTES = 8  # the header's length, a little-endian u64, starts the file
_ALIGN = 8  # the header is padded with spaces so the tensor data starts on an 8-byte boundary


def stable_bytes(data: bytes) -> bytes:
    """A safetensors file's bytes with its metadata keys in sorted order; ``data`` itself when they already are
    (or when it has no metadata). ValueError when ``data`` does not start with a safetensors header."""
    if len(data) < _LENGTH_BYTES:
        raise ValueError("not a safetensors file (shorter than its header length)")
    size = int.from_bytes(data[:_LENGTH_BYTES], "little")
    if size > len(data) - _LENGTH_BYTES:
        raise ValueError("not a safetensors file (its header runs past the end)")
    header = json.loads(data[_LENGTH_BYTES : _LENGTH_BYTES + size])
    metadata = header.get(METADATA_KEY)
    if not metadata or list(metadata) == sorted(metadata):
        return data
    ordered = {METADATA_KEY: dict(sorted(metadata.items()))}
    ordered.update((key, value) for key, value in header.items() if key != METADATA_KEY)
    text = json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % _ALIGN)
    return len(text).to_bytes(_LENGTH_BYTES, "little") + text + data[_LENGTH_BYTES + size :]


def save_tensors(
    path: str | Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``tensors`` (all numpy arrays, or all torch tensors: moved to the CPU and made contiguous) with
    ``metadata`` to ``path``, atomically, the metadata's keys sorted: equal content gives equal bytes."""
    meta = dict(metadata) if metadata else None
    if any(type(value).__module__.startswith("torch") for value in tensors.values()):
        from safetensors.torch import save

        data = save({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, meta)
    else:
        import numpy as np
        from safetensors.numpy import save

        data = save({key: np.ascontiguousarray(value) for key, value in tensors.items()}, meta)
    return write_atomically(path, stable_bytes(data))
