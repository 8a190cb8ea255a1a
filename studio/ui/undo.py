"""The window's one undo stack: restores (gallery click, paste, drop), deletes and slider resets.

An entry is a label for the menu and the status bar, and the function that takes the change back. Typing
in a text field keeps its own undo; the window's stack answers Ctrl+Z everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

UNDO_LIMIT = 50


class UndoFailed(Exception):
    """An undo could not be done; the person has been told why, and the entry stays for another try."""


class UndoStack(QObject):
    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._entries: list[tuple[str, Callable[[], None]]] = []

    def push(self, label: str, undo: Callable[[], None]) -> None:
        """Remember how to take back the change just made (``label``: "the restore of “cat”")."""
        self._entries.append((label, undo))
        del self._entries[:-UNDO_LIMIT]
        self.changed.emit()

    @property
    def label(self) -> str:
        """What Ctrl+Z would take back ('' when nothing)."""
        return self._entries[-1][0] if self._entries else ""

    def undo(self) -> str:
        """Take back the newest change; returns its label ('' when there was nothing to undo).

        An undo that raises :class:`UndoFailed` (it said why, e.g. the disk is full) stays on the stack."""
        if not self._entries:
            return ""
        label, undo = self._entries[-1]
        undo()
        self._entries.pop()
        self.changed.emit()
        return label
