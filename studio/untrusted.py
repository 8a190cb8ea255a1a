"""Reading what a file or the clipboard hands us: bounded, typed, and safe to show (no torch, no Qt, no PIL).

Why this exists: images, sidecars, pasted text and model folders come from anywhere. A named pipe called
``x.png`` blocks a plain ``open().read()`` forever, a link to ``/dev/zero`` never ends, a 2 GB sparse sidecar
is read whole; ``Infinity``, ``1e999`` and 5,000-digit integers are valid for Python's ``json`` and then
break ``int()``; deep nesting raises RecursionError; a prompt may carry terminal escape codes or characters
XML forbids. Every reader goes through the few functions here, so the rules live in one place:

- :func:`read_regular_file` opens without blocking, checks on the open handle that it is a regular file and
  not too large, then reads at most the limit;
- :func:`check_regular_file` does the same check for files a library opens itself (safetensors);
- :func:`parse_json` refuses non-finite numbers, huge integers and deep nesting, and replaces lone surrogates;
- :func:`shown` turns any text from a file into a short, printable snippet for a sentence or a terminal;
  :func:`xml_text` into text XML 1.0 accepts.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

MAX_JSON_DEPTH = 32  # our documents nest 4 levels deep; model.json metrics a few more
MAX_INT_DIGITS = 40  # the largest seed has 19 digits
MAX_SHOWN_CHARS = 60  # a value from a file quoted inside a sentence
MAX_MESSAGE_CHARS = 240  # a whole sentence shown to a person (the values inside are cut first)

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0/C1 controls and DEL (terminal escape codes), bidi overrides and isolates (text that reads backwards),
# line and paragraph separators: shown as visible escapes.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# XML 1.0 allows tab, newline, carriage return and everything from U+0020 but surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class UntrustedInputError(ValueError):
    """Raised by the readers here; ``str(error)`` is one sentence naming the file (callers re-raise their type)."""


# ----------------------------------------------------------------------------------------------- files


def read_regular_file(path: str | os.PathLike, max_bytes: int, what: str | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; else UntrustedInputError.

    Opened non-blocking (a named pipe does not wait for a writer) and checked on the open handle, so the
    file cannot be swapped for a pipe or a device between the check and the read.
    """
    path = Path(path)
    what = what or shown(path.name or str(path))
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise UntrustedInputError(f"There is no file {what}; check the name and folder.") from exc
    except IsADirectoryError as exc:
        raise UntrustedInputError(f"{what} is a folder, not a file.") from exc
    except (OSError, ValueError) as exc:
        raise UntrustedInputError(f"{what} could not be opened ({_reason(exc)}).") from exc
    try:
        _check_stat(os.fstat(fd), max_bytes, what)
        chunks, left = [], max_bytes + 1  # one byte more tells a file that grew since fstat
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise UntrustedInputError(f"{what} could not be read ({_reason(exc)}).") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise UntrustedInputError(f"{what} is larger than {_size(max_bytes)}, too large to be read.")
    return data


def check_regular_file(path: str | os.PathLike, max_bytes: int, what: str | None = None) -> os.stat_result:
    """Check that ``path`` is a regular file of at most ``max_bytes`` (for libraries that open it themselves)."""
    path = Path(path)
    what = what or shown(path.name or str(path))
    try:
        result = os.stat(path)
    except FileNotFoundError as exc:
        raise UntrustedInputError(f"There is no file {what}; check the name and folder.") from exc
    except (OSError, ValueError) as exc:
        raise UntrustedInputError(f"{what} could not be opened ({_reason(exc)}).") from exc
    _check_stat(result, max_bytes, what)
    return result


def _check_stat(result: os.stat_result, max_bytes: int, what: str) -> None:
    if stat.S_ISDIR(result.st_mode):
        raise UntrustedInputError(f"{what} is a folder, not a file.")
    if not stat.S_ISREG(result.st_mode):
        raise UntrustedInputError(
            f"{what} is not a regular file (a pipe, a device or a socket), so GAN Studio does not read it."
        )
    if result.st_size > max_bytes:
        raise UntrustedInputError(
            f"{what} is {_size(result.st_size)}, larger than the {_size(max_bytes)} allowed."
        )


def _size(count: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= factor:
            return f"{count / factor:.3g} {unit}"
    return f"{count} bytes"


def _reason(exc: BaseException) -> str:
    return shown(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


# ----------------------------------------------------------------------------------------------- JSON


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON from an untrusted source, or UntrustedInputError naming ``what``.

    Refused: ``NaN``/``Infinity``, numbers that overflow to infinity (``1e999``), integers of more than
    MAX_INT_DIGITS digits, nesting deeper than MAX_JSON_DEPTH. Lone surrogates become U+FFFD.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UntrustedInputError(f"{what} cannot be read: it is not UTF-8 text.") from exc
    try:
        data = json.loads(
            text, parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float
        )
    except _NumberError as exc:
        raise UntrustedInputError(f"{what} cannot be read: {exc} is not a usable number.") from exc
    except RecursionError as exc:
        raise UntrustedInputError(f"{what} cannot be read: it is nested too deeply.") from exc
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise UntrustedInputError(f"{what} cannot be read: it is not valid JSON.") from exc
    return _cleaned(data, what)


class _NumberError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NumberError(name)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _NumberError(f"an integer of {len(text.lstrip('-')):,} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberError(shown(text, 24))
    return value


def _cleaned(data: Any, what: str) -> Any:
    """Check the nesting depth (without recursion) and replace lone surrogates in every string."""
    root = [data]
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise UntrustedInputError(f"{what} cannot be read: it is nested too deeply.")
        if isinstance(container, dict):
            for key in list(container):
                value = container[key]
                clean_key = _no_surrogates(key)
                if clean_key != key:
                    del container[key]
                container[clean_key] = _no_surrogates(value)
                if isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
        else:
            for index, value in enumerate(container):
                container[index] = _no_surrogates(value)
                if isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
    return root[0]


def _no_surrogates(value: Any) -> Any:
    return _SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value


# ----------------------------------------------------------------------------------------------- showing


def printable(text: object) -> str:
    """``text`` with control characters, bidi overrides and surrogates shown as escapes (``\\x1b``)."""
    return _UNPRINTABLE.sub(lambda m: _escape(m.group()), str(text))


def shown(text: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """A printable snippet of ``text`` of at most ``limit`` characters, for a sentence or a terminal."""
    text = printable(text)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def message(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A whole sentence for a person: printable, on one line (newlines shown), at most ``limit`` characters."""
    return shown(text, limit)


def printable_json(text: str) -> str:
    """JSON text (from ``json.dumps``) with the characters :func:`printable` escapes written as ``\\uXXXX``.

    Valid JSON still: outside strings JSON text is ASCII, and inside them ``\\uXXXX`` is the same character.
    """
    # json.dumps already escapes controls inside strings; its raw newlines are the indentation's.
    return _UNPRINTABLE.sub(lambda m: m.group() if m.group() == "\n" else f"\\u{ord(m.group()):04x}", text)


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (NUL, ESC, ...), as visible escapes instead."""
    return _NOT_XML.sub(lambda m: _escape(m.group()), text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
