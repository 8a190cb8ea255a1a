"""The gallery on disk: one SQLite file in the user data folder, one row per image.

Each row holds the PNG, a small thumbnail, the one-image request as JSON (what reproduces the pixels), the
model hash, a star and the time it was made. Every add is its own committed transaction in WAL mode, so a
crash in the middle of a batch keeps every image that was already on screen. Deleting is soft (a flag) so
it can be undone; flagged rows are purged the next time the store opens.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from studio.engine.requests import GenerationRequest
from studio.paths import user_data_dir

THUMBNAIL_SIZE = 96
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    request_json TEXT NOT NULL,
    model_hash TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT 'cpu',
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    starred INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    png BLOB NOT NULL,
    thumbnail BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS items_live ON items (deleted, id);
"""


@dataclass(frozen=True)
class GalleryItem:
    """A gallery row without its image bytes (those are fetched on demand)."""

    id: int
    created: float
    prompt: str
    seed: int
    request_json: str
    model_hash: str
    device: str
    width: int
    height: int
    starred: bool

    @property
    def request(self) -> GenerationRequest:
        return GenerationRequest.from_json(json.loads(self.request_json))


_ITEM_COLUMNS = "id, created, prompt, seed, request_json, model_hash, device, width, height, starred"


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an H x W x 4 (or x 3) uint8 image, fast compression (the gallery is a cache of pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
    picture = Image.fromarray(np.ascontiguousarray(image))
    if max(picture.size) > size:
        picture = picture.resize((size, size * picture.height // picture.width), Image.Resampling.BOX)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """An RGBA uint8 array from PNG bytes."""
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("RGBA"))


class GalleryStore:
    """The SQLite gallery. Not thread-safe by design: the UI thread is its only user."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else user_data_dir() / "gallery.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None)  # explicit transactions only
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        # Checkpoint (the only step that waits on fsync) every ~16 MB rather than 4 MB, so it rarely falls
        # inside a streaming batch; closing the store checkpoints the rest.
        self._db.execute("PRAGMA wal_autocheckpoint=4000")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._purge_deleted()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------------------------
    def add(
        self,
        request: GenerationRequest,
        image: np.ndarray,
        model_hash: str = "",
        device: str = "cpu",
        thumbnail: bool = True,
    ) -> int:
        """Store one image (one transaction); returns its id. See :meth:`add_many` for ``thumbnail``."""
        return self.add_many([(request, image, model_hash, device)], thumbnail)[0]

    def add_many(self, entries: Iterable[tuple], thumbnail: bool = True) -> list[int]:
        """Store several ``(request, image, model_hash[, device])`` in ONE transaction; returns ids in order.

        ``thumbnail=False`` leaves the thumbnail to :meth:`fill_thumbnails` (the pixels are safe either way),
        which takes its encoding off the path of a streaming batch.
        """
        ids = []
        with self._transaction():  # all or nothing: a failure half-way leaves none of these rows
            for request, image, model_hash, *device in entries:
                row = (
                    time.time(),
                    request.prompt,
                    request.seed,
                    json.dumps(request.to_json(), ensure_ascii=False),
                    model_hash,
                    device[0] if device else "cpu",
                    int(image.shape[1]),
                    int(image.shape[0]),
                    encode_png(image),
                    encode_thumbnail(image) if thumbnail else b"",
                )
                cursor = self._db.execute(
                    "INSERT INTO items (created, prompt, seed, request_json, model_hash, device, width, height, png,"
                    " thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def set_starred(self, item_ids: Sequence[int], starred: bool) -> None:
        with self._transaction():
            self._db.executemany(
                "UPDATE items SET starred = ? WHERE id = ?", [(int(starred), i) for i in item_ids]
            )

    def delete(self, item_ids: Sequence[int]) -> list[int]:
        """Soft-delete; returns the ids, to hand back to :meth:`undelete` for undo."""
        ids = [int(i) for i in item_ids]
        with self._transaction():
            self._db.executemany("UPDATE items SET deleted = 1 WHERE id = ?", [(i,) for i in ids])
        return ids

    def undelete(self, item_ids: Sequence[int]) -> None:
        with self._transaction():
            self._db.executemany("UPDATE items SET deleted = 0 WHERE id = ?", [(int(i),) for i in item_ids])

    # --- reading ----------------------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM items WHERE deleted = 0").fetchone()[0])

    def ids(self) -> list[int]:
        """Every live id, oldest first (a 10,000-item gallery answers in milliseconds: ints only)."""
        return [row[0] for row in self._db.execute("SELECT id FROM items WHERE deleted = 0 ORDER BY id")]

    def starred_ids(self) -> set[int]:
        return {row[0] for row in self._db.execute("SELECT id FROM items WHERE starred = 1 AND deleted = 0")}

    def items(self, item_ids: Sequence[int]) -> dict[int, GalleryItem]:
        """Row data (no image bytes) for the given ids, deleted or not."""
        found: dict[int, GalleryItem] = {}
        ids = [int(i) for i in item_ids]
        for start in range(0, len(ids), 500):  # stay under SQLite's parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE id IN ({marks})", chunk):
                found[row[0]] = GalleryItem(*row[:9], bool(row[9]))
        return found

    def item(self, item_id: int) -> GalleryItem | None:
        return self.items([item_id]).get(int(item_id))

    def page(self, offset: int, limit: int) -> list[GalleryItem]:
        """Live rows ``offset .. offset + limit`` in gallery order."""
        rows = self._db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE deleted = 0 ORDER BY id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [GalleryItem(*row[:9], bool(row[9])) for row in rows]

    def thumbnail(self, item_id: int) -> bytes | None:
        """The thumbnail PNG, or None if the item is unknown or its thumbnail is not made yet."""
        row = self._db.execute("SELECT thumbnail FROM items WHERE id = ?", (int(item_id),)).fetchone()
        return bytes(row[0]) if row and row[0] else None

    def fill_thumbnails(self, limit: int = 8) -> int:
        """Make up to ``limit`` missing thumbnails (one transaction); returns how many were made."""
        rows = self._db.execute(
            "SELECT id, png FROM items WHERE length(thumbnail) = 0 AND deleted = 0 ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            return 0
        made = [(encode_thumbnail(decode_png(bytes(png))), item_id) for item_id, png in rows]
        with self._transaction():
            self._db.executemany("UPDATE items SET thumbnail = ? WHERE id = ?", made)
        return len(made)

    def png(self, item_id: int) -> bytes | None:
        row = self._db.execute("SELECT png FROM items WHERE id = ?", (int(item_id),)).fetchone()
        return bytes(row[0]) if row else None

    def image(self, item_id: int) -> np.ndarray | None:
        data = self.png(item_id)
        return decode_png(data) if data is not None else None

    # --- internals --------------------------------------------------------------------------------------------
    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _purge_deleted(self) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM items WHERE deleted = 1")


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
