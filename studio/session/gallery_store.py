"""The gallery on disk: one SQLite file in the user data folder, one row per image.

Each row holds the PNG, a small thumbnail, the one-image request as JSON (what reproduces the pixels), the
model hash, a star and the time it was made. Every add is its own committed transaction in WAL mode, so a
crash in the middle of a batch keeps every image that was already on screen; a write that fails (full disk,
read-only folder) raises GalleryError with a sentence and stores nothing. Deleting is soft (a flag) so it can
be undone; flagged rows are purged when a window closes (see GalleryStore.close), never when one opens.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from studio.engine.requests import GenerationRequest
from studio.errors import UserError
from studio.paths import user_data_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; see GalleryStore.close
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

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


class GalleryError(UserError):
    """The gallery file cannot be used or written; ``str(error)`` is one sentence for a person."""


class GalleryStore:
    """The SQLite gallery. Not thread-safe by design: the UI thread is its only user.

    Opening never fails for a person's reason: a damaged file is moved aside (kept) and a fresh gallery
    started; a gallery written by a newer GAN Studio is left untouched and this window keeps its images in
    memory; a read-only folder opens the gallery read-only. Each case leaves one sentence in :attr:`notice`
    for the window to show. Every write either commits or raises :class:`GalleryError` with a sentence.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else user_data_dir() / "gallery.sqlite"
        self.read_only = False
        self.notice: str | None = None  # what the person should know about this gallery, if anything
        self._deleted_here: set[int] = set()  # soft-deleted by this window: purged when it closes
        self._holder: int | None = None
        try:
            self._db = self._open_writable()
        except _NewerSchema as newer:
            log.warning(
                "gallery %s has format %s > %s; left untouched", self.path, newer.version, SCHEMA_VERSION
            )
            self._db = self._open_in_memory(
                f"The gallery {self.path} was written by a newer GAN Studio (format {newer.version}); it is left "
                "untouched and this window keeps its new images only until it closes. Update GAN Studio to see it."
            )
        except _Damaged as damaged:
            log.warning("gallery %s is damaged (%s)", self.path, damaged.reason, exc_info=damaged.__cause__)
            self._db = self._start_afresh(damaged.reason)
        except _NotWritable as refusal:
            log.warning(
                "gallery %s is not writable; opening it read-only", self.path, exc_info=refusal.__cause__
            )
            self._db = self._open_read_only(refusal.cause)

    # --- opening ----------------------------------------------------------------------------------------------
    def _open_writable(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), isolation_level=None)  # explicit transactions only
        except (OSError, sqlite3.Error) as exc:
            raise _NotWritable(_cause(exc, self.path.parent)) from exc
        try:
            version = _schema_version(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            # Checkpoint (the only step that waits on fsync) every ~16 MB rather than 4 MB, so it rarely falls
            # inside a streaming batch; closing the store checkpoints the rest.
            db.execute("PRAGMA wal_autocheckpoint=4000")
            db.executescript(_SCHEMA)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            db.close()
            if _is_damage(exc):
                raise _Damaged(
                    "not a gallery database" if "not a database" in str(exc) else str(exc)
                ) from exc
            raise _NotWritable(_cause(exc, self.path.parent)) from exc
        except BaseException:
            db.close()
            raise
        self._hold()
        return db

    def _start_afresh(self, reason: str) -> sqlite3.Connection:
        """Move the damaged file (and its WAL files) aside as ``<name>.damaged-<time>`` and start a new one."""
        kept = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while os.path.lexists(kept):
            kept = kept.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            n += 1
        try:
            os.replace(self.path, kept)
            for extra in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + extra)
                if os.path.lexists(side):
                    os.replace(side, kept.with_name(kept.name + extra))
            db = self._open_writable()
        except (OSError, _GalleryProblem) as exc:
            log.warning("could not start a new gallery beside %s", self.path, exc_info=True)
            return self._open_in_memory(
                f"The gallery file {self.path} is damaged ({reason}) and could not be moved aside ({exc}); this "
                "window keeps its new images only until it closes."
            )
        self.notice = f"The gallery file was damaged ({reason}); it was kept as {kept} and a new, empty gallery was started."
        return db

    def _open_read_only(self, cause: str) -> sqlite3.Connection:
        self.read_only = True
        self.notice = (
            f"The gallery in {self.path.parent} is open read-only because {cause}: images made in this window "
            "are not kept. Free the disk or folder, or set GAN_STUDIO_DATA_DIR to another folder."
        )
        if self.path.exists():
            for options in ("mode=ro", "immutable=1"):  # a WAL gallery in a read-only folder needs immutable
                try:
                    db = sqlite3.connect(f"{self.path.as_uri()}?{options}", uri=True, isolation_level=None)
                except sqlite3.Error:
                    continue
                try:
                    if _schema_version(db) == SCHEMA_VERSION:
                        db.execute("SELECT count(*) FROM items").fetchone()
                        return db
                except (sqlite3.Error, _NewerSchema) as exc:
                    log.info("gallery %s could not be read with %s (%s)", self.path, options, exc)
                db.close()
        return self._open_in_memory(self.notice)

    def _open_in_memory(self, notice: str) -> sqlite3.Connection:
        """A gallery that lives as long as this window (the file on disk cannot be used)."""
        self.notice = notice
        db = sqlite3.connect(":memory:", isolation_level=None)
        db.executescript(_SCHEMA)
        if self.read_only:
            db.execute("PRAGMA query_only=1")  # writes fail with the read-only sentence
        return db

    def _hold(self) -> None:
        """Hold a shared lock on a small file beside the gallery for as long as this store is open, so a
        closing window can tell whether another window (whose Undo may still want its rows) has it open."""
        if fcntl is None:
            return
        try:
            self._holder = os.open(
                self.path.with_name(self.path.name + ".open"), os.O_RDWR | os.O_CREAT, 0o666
            )
            fcntl.flock(self._holder, fcntl.LOCK_SH)
        except OSError:
            log.warning(
                "could not lock %s.open; deleted rows stay until a later close", self.path, exc_info=True
            )

    def _alone(self) -> bool:
        """True if no other store has this gallery open (only known with advisory locks)."""
        if fcntl is None or self._holder is None:
            return False
        try:
            fcntl.flock(self._holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Close; soft-deleted rows are purged here, never on open: this window's own (nobody else can undo
        them), and everyone's when no other window has the gallery open."""
        try:
            if not self.read_only:
                if self._alone():
                    self._purge("deleted = 1", ())
                elif self._deleted_here:
                    ids = sorted(self._deleted_here)
                    self._purge(f"deleted = 1 AND id IN ({','.join('?' * len(ids))})", ids)
        except (sqlite3.Error, GalleryError):
            log.warning("could not purge deleted gallery rows", exc_info=True)  # they stay flagged, not lost
        finally:
            self._db.close()
            if self._holder is not None:
                os.close(self._holder)
                self._holder = None

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
        self._deleted_here.update(ids)
        return ids

    def undelete(self, item_ids: Sequence[int]) -> None:
        ids = [int(i) for i in item_ids]
        with self._transaction():
            self._db.executemany("UPDATE items SET deleted = 0 WHERE id = ?", [(i,) for i in ids])
        self._deleted_here.difference_update(ids)

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
        if self.read_only:
            return 0
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
        return _Transaction(self)

    def _purge(self, where: str, parameters: Sequence[int]) -> None:
        with self._transaction():
            self._db.execute(f"DELETE FROM items WHERE {where}", parameters)

    def write_error(self, exc: sqlite3.Error) -> GalleryError:
        """One sentence for a failed write (full disk, read-only file or folder, I/O error)."""
        text = str(exc).lower()
        if self.read_only or "readonly" in text or "read-only" in text:
            return GalleryError(
                f"The gallery in {self.path.parent} is read-only, so nothing was stored; make the folder "
                "writable or set GAN_STUDIO_DATA_DIR to another folder."
            )
        if "full" in text:
            return GalleryError(
                f"The disk holding {self.path.parent} is full, so the image was not stored; free some space "
                "and try again."
            )
        return GalleryError(f"The gallery could not be written ({exc}); nothing was stored.")


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; a failure rolls back and becomes a GalleryError sentence."""

    def __init__(self, store: GalleryStore):
        self._store = store
        self._db = store._db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._store.write_error(exc) from exc

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as commit_error:
                exc = commit_error
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (SQLITE_FULL does)
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            log.warning("gallery write failed", exc_info=exc)
            raise self._store.write_error(exc) from exc


class _GalleryProblem(Exception):
    """Why the gallery file cannot be opened for writing (handled inside GalleryStore.__init__)."""


class _NewerSchema(_GalleryProblem):
    def __init__(self, version: int):
        super().__init__(version)
        self.version = version


class _Damaged(_GalleryProblem):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _NotWritable(_GalleryProblem):
    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _schema_version(db: sqlite3.Connection) -> int:
    """The file's format version; raises _NewerSchema (the file is left alone) or DatabaseError if damaged."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise _NewerSchema(version)
    # Reading the schema page finds a garbage or truncated file ("not a database", "malformed") at once;
    # a full integrity check would read every image (seconds for a big gallery) on every start.
    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return version


def _is_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc)


def _cause(exc: BaseException, folder: Path) -> str:
    """Why a gallery in ``folder`` cannot be written, as the end of a sentence."""
    text = str(exc).lower()
    if getattr(exc, "errno", None) in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) or "full" in text:
        return "the disk is full"
    if (
        isinstance(exc, PermissionError)
        or getattr(exc, "errno", None) == errno.EROFS
        or "readonly" in text
        or _read_only_folder(folder)
    ):
        return "the folder is read-only"
    return f"it could not be written ({exc})"


def _read_only_folder(folder: Path) -> bool:
    """True for a folder on a read-only file system or one this user may not write into."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False
