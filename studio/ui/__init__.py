"""The studio's Qt widgets (PySide6). Nothing here imports torch; all work goes through the engine's API."""

from __future__ import annotations

import sys


def _keep_none_alive() -> None:
    """Work around PySide6 6.12 abi3 wheels on CPython < 3.12.

    Every PySide6 call that returns None (each void method: ``QPainter.fillRect``, ``QWidget.update``…)
    hands back None without a new reference. From 3.12 None is immortal and nothing happens; before that,
    each call drains one reference and after some thousands of paints the interpreter aborts with
    "Fatal Python error: none_dealloc: deallocating None". None is a static object that is never freed,
    so giving it a reference count no session can drain is safe.
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    refcount = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is a PyObject's first field
    if refcount.value < 1 << 40:
        refcount.value += 1 << 50


_keep_none_alive()
