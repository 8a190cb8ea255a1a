"""Safe file names and all-or-nothing writes, shared by image export and animation export.

Why this exists: people type prompts such as ``../../etc/passwd`` or ``CON`` and export into folders on full
disks, network shares and USB sticks. A name built from a prompt must stay inside the chosen folder on every
OS, an export must never replace an earlier one, and a failure half way must leave nothing behind.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path

from studio.atomic import TEMP_PREFIX, TEMP_SUFFIX, open_temp
from studio.atomic import write_all as _write_all  # tests simulate a full disk by patching this name
from studio.errors import UserError

MAX_NAME_BYTES = 200  # most file systems allow 255 bytes; leave room for "_12" and temp prefixes
MAX_UNIQUE_TRIES = 10_000

# Characters Windows forbids in names, plus the separators of every OS.
_FORBIDDEN = set('<>:"/\\|?*')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{stem}{n}" for stem in ("COM", "LPT") for n in [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]
}
_KEEP_FORMAT_CHARS = {"\u200d", "\u200c"}  # zero-width joiners hold emoji sequences together


class ExportError(UserError):
    """A file could not be written; ``str(error)`` is one sentence saying what happened and what to do."""


# ----------------------------------------------------------------------------------------------- names


def safe_name_part(text: str, max_chars: int | None = None) -> str:
    """Make ``text`` usable inside a file name on Windows, macOS and Linux (may return "")."""
    text = unicodedata.normalize("NFC", str(text))
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _FORBIDDEN:
            out.append("_")
        elif ch.isspace() or category in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif category in ("Cs", "Co", "Cn") or (category == "Cf" and ch not in _KEEP_FORMAT_CHARS):
            continue  # surrogates, private use, unassigned, bidi overrides: invisible or misleading in names
        else:
            out.append(ch)
    cleaned = re.sub(r"\s+", " ", "".join(out)).strip()
    if max_chars is not None and len(cleaned) > max_chars:
        cleaned = cleaned[:max_chars].rstrip(" \u200d\u200c")
    return cleaned


def safe_file_stem(stem: str) -> str:
    """A complete, safe stem: no leading/trailing dots or spaces, not a reserved device name, never empty."""
    stem = safe_name_part(stem).strip(" .")
    stem = _truncate_utf8(stem, MAX_NAME_BYTES).strip(" .")
    if not stem:
        return "image"
    # Windows treats "CON", "con.txt" and "CON .png" alike: the part before the first dot is what matters.
    if stem.split(".", 1)[0].strip(" ").upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return stem


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore").rstrip(" \u200d\u200c")


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    """The first of ``stem.suffix``, ``stem_1.suffix``, ``stem_2.suffix`` ... that does not exist yet."""
    return folder / (free_stem(folder, stem, (suffix,)) + suffix)


def free_stem(folder: Path, stem: str, suffixes: tuple[str, ...]) -> str:
    """The first of ``stem``, ``stem_1`` ... for which no ``stem + suffix`` exists (for file + sidecar pairs)."""
    for n in range(MAX_UNIQUE_TRIES):
        candidate = stem if n == 0 else f"{stem}_{n}"
        if not any(os.path.lexists(folder / (candidate + suffix)) for suffix in suffixes):
            return candidate
    raise ExportError(f"{folder} already holds {MAX_UNIQUE_TRIES:,} files named {stem}; choose another name.")


# ----------------------------------------------------------------------------------------------- folders


def check_folder(folder: str | Path) -> Path:
    """Return ``folder`` as an absolute Path if it is an existing folder, else raise ExportError."""
    folder = Path(folder).expanduser()
    try:
        exists, is_dir = folder.exists(), folder.is_dir()
    except (OSError, ValueError) as exc:  # e.g. a NUL character, or a path too long for the system
        raise ExportError(f"{str(folder)!r} is not a usable folder path; choose another folder.") from exc
    if not exists:
        raise ExportError(f"The folder {folder} does not exist; create it or choose another folder.")
    if not is_dir:
        raise ExportError(f"{folder} is a file, not a folder; choose a folder to export into.")
    return folder.resolve()


def prepare_folder(folder: str | Path) -> Path:
    """:func:`check_folder`, but a missing folder whose parent exists is made first (the pictures folder of a new
    account, "~/Pictures/emoji" typed into the export dialog); a deeper missing path is more likely a typo and is
    refused as check_folder refuses it. Raises ExportError with one sentence."""
    path = Path(folder).expanduser()
    try:
        missing = not path.exists() and path.parent.is_dir()
    except (OSError, ValueError):
        missing = False  # check_folder says what is wrong with the path
    if missing:
        try:
            path.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise ExportError(
                f"The folder {path} does not exist and GAN Studio cannot make it ({exc.strerror or exc}); "
                "choose another folder."
            ) from exc
    return check_folder(path)


def describe_os_error(exc: OSError, target: Path) -> str:
    """One sentence for a failed write, naming the place and what to do."""
    folder = target.parent
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"The disk holding {folder} is full, so {target.name} was not saved; free some space and try again."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or isinstance(exc, PermissionError):
        return f"GAN Studio may not write into {folder} (it is read-only or you lack permission); choose another folder."
    if exc.errno == errno.ENAMETOOLONG:
        return f"The file name for {folder} is too long for this disk; use a shorter name template."
    if isinstance(exc, FileNotFoundError):
        return f"The folder {folder} disappeared while saving; choose an existing folder."
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{target.name} could not be saved in {folder} ({reason}); nothing was written."


# ----------------------------------------------------------------------------------------------- writes


def _create_temp(folder: Path, suffix: str = "") -> tuple[int, str]:
    """A new, locked temporary file in ``folder`` (see :func:`studio.atomic.open_temp`)."""
    fd, path = open_temp(folder, suffix)
    return fd, str(path)


def _create_temp_folder(parent: Path) -> Path:
    """A new hidden folder in ``parent`` with the usual permissions (``tempfile.mkdtemp`` makes it 0700)."""
    for _ in range(100):
        path = parent / f"{TEMP_PREFIX}{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent))


def _publish(temp: Path, folder: Path, stem: str, suffix: str) -> Path:
    """Give the finished temporary file its final, unused name without ever replacing another file."""
    while True:
        target = unique_path(folder, stem, suffix)
        try:
            # A hard link fails if the name was taken meanwhile: no other exporter's file is ever replaced.
            os.link(temp, target)
        except FileExistsError:
            continue
        except OSError:
            # File systems without hard links (FAT, some network shares): check, then rename.
            if os.path.lexists(target):
                continue
            os.replace(temp, target)
            return target
        os.unlink(temp)
        return target


def write_new_file(folder: str | Path, stem: str, suffix: str, data: bytes | Callable[[Path], None]) -> Path:
    """Write a new file ``stem[_n].suffix`` in ``folder`` all at once and return its path.

    ``data`` is the file's bytes, or a callable that writes the file at the temporary path it is given (for
    encoders such as ffmpeg that want a path). On any failure the temporary file is removed and ExportError
    says why; on success the file appears under its final name complete, never half written.
    """
    folder = check_folder(folder)
    stem = safe_file_stem(stem)
    target_for_errors = folder / f"{stem}{suffix}"
    temp: Path | None = None
    try:
        fd, temp_name = _create_temp(folder, suffix)
        temp = Path(temp_name)
        if callable(data):
            try:
                data(temp)  # our descriptor stays open, holding the lock that marks the file as live
            finally:
                os.close(fd)
        else:
            with os.fdopen(fd, "wb") as file:
                _write_all(file, data)
                file.flush()
                os.fsync(file.fileno())  # the bytes reach the disk before the name does
        return _publish(temp, folder, stem, suffix)
    except OSError as exc:
        raise ExportError(describe_os_error(exc, target_for_errors)) from exc
    finally:
        if temp is not None and temp.exists():
            try:
                temp.unlink()
            except OSError:
                pass


def new_folder(parent: str | Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Create a new folder ``name[_n]`` in ``parent``, filled by ``fill`` in a hidden temporary folder first.

    An existing empty folder of that name is reused; a non-empty one is left alone and ``name_1`` is made.
    """
    parent = check_folder(parent)
    stem = safe_file_stem(name)
    temp: Path | None = None
    try:
        temp = _create_temp_folder(parent)
        fill(temp)
        while True:
            target = parent / stem
            n = 0
            while os.path.lexists(target) and not _is_empty_dir(target):
                n += 1
                target = parent / f"{stem}_{n}"
            try:
                if target.exists():
                    target.rmdir()  # empty: Windows cannot rename onto an existing folder
                os.rename(temp, target)
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    continue
                raise
            temp = None
            return target
    except OSError as exc:
        raise ExportError(describe_os_error(exc, parent / stem)) from exc
    finally:
        if temp is not None and temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _is_empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not any(path.iterdir())
    except OSError:
        return False
