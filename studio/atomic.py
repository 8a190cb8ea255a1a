"""All-or-nothing file writes: a hidden temporary file in the same folder, renamed over the target when done.

The one temp-file-and-rename of the project (settings, prompt history, drag-out PNGs, exports, checkpoints,
evaluation caches). Torch- and Qt-free. While a temporary file is being written its writer holds a lock on
it (POSIX ``flock``), so :func:`remove_stale_temps` can tell a file whose writer died (kill -9, power cut)
from one another process is still writing, and removes only the first kind.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there, which protects a live writer instead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

TEMP_PREFIX = ".gan-studio-"
TEMP_SUFFIX = ".partial"


def open_temp(folder: str | Path, suffix: str = "") -> tuple[int, Path]:
    """A new, locked temporary file in ``folder`` (same file system, so the final rename is atomic).

    Unlike ``tempfile.mkstemp`` (mode 0600) the file gets the usual permissions (0666 less the umask),
    because it becomes the user's file itself. The caller closes the descriptor when the file is complete.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = Path(folder) / f"{TEMP_PREFIX}{secrets.token_hex(6)}{TEMP_SUFFIX}{suffix}"
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            with contextlib.suppress(
                OSError
            ):  # some network file systems refuse locks: cleanup then skips it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, path
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def write_atomically(path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Replace ``path`` with ``data`` all at once: readers see the old file or the new one, never a part.

    ``data`` is bytes, text (written as UTF-8) or a callable that writes the file at the temporary path it
    is given (``torch.save``, ``np.savez``...). On any failure, a full disk included, the temporary file is
    removed and the exception propagates; ``path`` is untouched.
    """
    path = Path(path)
    fd, temp = open_temp(path.parent, path.suffix)
    try:
        if callable(data):
            data(temp)  # the descriptor stays open (and locked) while the callable writes
            os.close(fd)
        else:
            with os.fdopen(fd, "wb") as file:
                write_all(file, data.encode("utf-8") if isinstance(data, str) else data)
                file.flush()
                os.fsync(file.fileno())  # the bytes reach the disk before the name does
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return path


def write_all(file, data: bytes) -> None:
    """Write ``data`` completely; a separate function so tests can simulate a full disk here."""
    file.write(data)


def remove_stale_temps(folder: str | Path) -> int:
    """Remove the temporary files of writers that died in ``folder``; returns how many were removed.

    A file still locked by a live writer (another window, a running ``generate``) is left alone.
    """
    removed = 0
    try:
        candidates = [p for p in Path(folder).iterdir() if _is_temp_name(p.name)]
    except OSError:
        return 0
    for path in candidates:
        try:
            if path.is_symlink() or not path.is_file():
                continue
            if fcntl is not None and not _writer_is_gone(path):
                continue
            path.unlink()
            removed += 1
        except OSError:  # another process removed it, or (Windows) its writer still has it open
            continue
    if removed:
        log.info("removed %d unfinished temporary file(s) from %s", removed, folder)
    return removed


def _is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and TEMP_SUFFIX in name


def _writer_is_gone(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # locked: a live writer
    finally:
        os.close(fd)
    return True
