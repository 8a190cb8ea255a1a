"""Keys the whole window answers, wherever the focus is: the rules a QAction shortcut alone cannot express.

- Window shortcuts win over widgets that would swallow the key for themselves (an item view taking Space),
  except in text fields, where keys type.
- Esc first closes an open popup (the prompt's completion list, a menu), and only then cancels a batch.
- Ctrl+V in a text field restores the clipboard when it holds parameters (this studio's or A1111's) or
  image files; plain text pastes as text.
- Ctrl+Z in a text field with nothing of its own to undo takes back the window's last restore, delete or
  slider reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDialog,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

TEXT_FIELDS = (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit)


def is_text_field(widget: QObject | None) -> bool:
    return isinstance(widget, TEXT_FIELDS) and not getattr(widget, "isReadOnly", lambda: False)()


def text_field_can_undo(widget: QWidget) -> bool:
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return widget.document().isUndoAvailable()
    if isinstance(widget, QAbstractSpinBox):
        widget = widget.findChild(QLineEdit)
    return isinstance(widget, QLineEdit) and widget.isUndoAvailable()


class WindowKeys(QObject):
    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        QApplication.instance().installEventFilter(self)
        window.destroyed.connect(lambda: QApplication.instance().removeEventFilter(self))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        kind = event.type()
        if kind not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            return False
        if not isinstance(watched, QWidget) or not self._in_window(watched):
            return False
        assert isinstance(event, QKeyEvent)
        if kind == QEvent.Type.ShortcutOverride:
            return self._shortcut_override(watched, event)
        if is_text_field(watched):
            return self._text_key(watched, event)
        return False

    def _in_window(self, widget: QWidget) -> bool:
        """The window itself, a floating dock of it, or a popup it opened (not its dialogs: they own their keys)."""
        window = widget.window()
        if window is self.window:
            return True
        parent = window.parentWidget()
        return not isinstance(window, QDialog) and parent is not None and parent.window() is self.window

    def _shortcut_override(self, widget: QWidget, event: QKeyEvent) -> bool:
        if event.key() == Qt.Key.Key_Escape and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            popup = QApplication.activePopupWidget()
            if popup is not None and popup.isVisible():
                popup.close()
                event.accept()
                return True  # Esc spent on closing what was open; the batch runs on
        if is_text_field(widget):
            return False  # keys type; the field decides what it takes
        if self._window_shortcut(event):
            event.ignore()
            return True  # no widget may claim a window shortcut for itself
        return False

    def _window_shortcut(self, event: QKeyEvent) -> bool:
        pressed = QKeySequence(event.keyCombination())
        for action in self.window.actions():
            if action.isEnabled() and action.shortcutContext() != Qt.ShortcutContext.WidgetShortcut:
                if any(
                    key.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch
                    for key in action.shortcuts()
                ):
                    return True
        return False

    def _text_key(self, field: QWidget, event: QKeyEvent) -> bool:
        if event.matches(QKeySequence.StandardKey.Paste):
            return self.window.paste(quiet=True)  # parameters or files restore; anything else is typed
        if event.matches(QKeySequence.StandardKey.Undo) and not text_field_can_undo(field):
            self.window.controller.undo()
            return True
        return False
