"""Prompt embeddings kept on disk (SQLite in the user cache folder), so a prompt seen before never runs the encoder.

Keyed by the encoder's cache key (its id and package version) and the prompt; the vector is stored as its exact
float32 bytes, so a cached embedding renders the same pixels as a fresh one. Bounded: past ``max_rows`` the
least recently used tenth is dropped. Any trouble with the file (damaged, locked, read-only, full disk) costs
only the cache: a damaged file is set aside as ``.bad`` with a logged warning, other errors switch the cache off
for this process, and the encoder keeps working.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_FILE = "embeddings.sqlite3"
DEFAULT_MAX_ROWS = 20_000  # ~40 MB of 512-d vectors
_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    encoder TEXT NOT NULL,
    prompt TEXT NOT NULL,
    vector BLOB NOT NULL,
    used REAL NOT NULL,
    PRIMARY KEY (encoder, prompt)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS embeddings_used ON embeddings (used);
"""


def user_cache_dir() -> Path:
    """The user's cache folder for GAN Studio (``GAN_STUDIO_CACHE_DIR`` overrides)."""
    override = os.environ.get("GAN_STUDIO_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("gan-studio", appauthor=False))


class EmbeddingCache:
    """A bounded, thread-safe, crash-proof prompt -> vector store for one process."""

    def __init__(self, path: Path | None = None, max_rows: int = DEFAULT_MAX_ROWS):
        self.path = Path(path) if path is not None else user_cache_dir() / CACHE_FILE
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._disabled = False

    # ------------------------------------------------------------------------------------------ public
    def get_many(self, encoder_key: str, prompts: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """The cached vectors among ``prompts`` (missing ones are simply absent)."""
        if not prompts:
            return {}
        with self._lock:
            db = self._connection()
            if db is None:
                return {}
            found: dict[str, np.ndarray] = {}
            try:
                unique = list(dict.fromkeys(prompts))
                for start in range(0, len(unique), 500):
                    part = unique[start : start + 500]
                    marks = ",".join("?" * len(part))
                    rows = db.execute(
                        f"SELECT prompt, vector FROM embeddings WHERE encoder = ? AND prompt IN ({marks})",
                        [encoder_key, *part],
                    ).fetchall()
                    for prompt, blob in rows:
                        if len(blob) == 4 * dim:
                            found[prompt] = np.frombuffer(blob, np.float32).copy()
                if found:
                    now = time.time()
                    db.executemany(
                        "UPDATE embeddings SET used = ? WHERE encoder = ? AND prompt = ?",
                        [(now, encoder_key, p) for p in found],
                    )
                    db.commit()
            except sqlite3.Error as exc:
                self._fail(exc)
            return found

    def put_many(self, encoder_key: str, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        with self._lock:
            db = self._connection()
            if db is None:
                return
            now = time.time()
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO embeddings (encoder, prompt, vector, used) VALUES (?, ?, ?, ?)",
                    [
                        (encoder_key, p, np.ascontiguousarray(v, np.float32).tobytes(), now)
                        for p, v in vectors.items()
                    ],
                )
                (count,) = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()
                if count > self.max_rows:
                    drop = count - self.max_rows + self.max_rows // 10
                    db.execute(
                        "DELETE FROM embeddings WHERE (encoder, prompt) IN "
                        "(SELECT encoder, prompt FROM embeddings ORDER BY used LIMIT ?)",
                        (drop,),
                    )
                db.commit()
            except sqlite3.Error as exc:
                self._fail(exc)

    def __len__(self) -> int:
        with self._lock:
            db = self._connection()
            if db is None:
                return 0
            try:
                return int(db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            except sqlite3.Error as exc:
                self._fail(exc)
                return 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ------------------------------------------------------------------------------------------ inside
    def _connection(self) -> sqlite3.Connection | None:
        if self._db is not None or self._disabled:
            return self._db
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                self._fail(exc)
                return None
            bad = self.path.with_name(self.path.name + ".bad")
            log.warning("The embedding cache %s is damaged (%s); set aside as %s.", self.path, exc, bad)
            try:
                os.replace(self.path, bad)
                self._db = self._open()
            except (OSError, sqlite3.Error) as again:
                self._fail(again)
        except OSError as exc:
            self._fail(exc)
        return self._db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=2.0, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("SELECT COUNT(*) FROM embeddings").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _fail(self, exc: BaseException) -> None:
        log.warning(
            "The embedding cache %s is switched off for this session: %s", self.path, exc, exc_info=True
        )
        self._disabled = True
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text
