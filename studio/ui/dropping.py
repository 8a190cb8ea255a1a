"""Files and parameters arriving by drag and drop or the clipboard: what they restore, and the outline
that shows a person where a drop goes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from studio.io.picture import PICTURE_SUFFIXES
from studio.ui import theme
from studio.ui.exporting import PARAMETERS_MIME, request_from_json_text

if TYPE_CHECKING:
    from studio.ui.controller import StudioController

IMAGE_SUFFIXES = PICTURE_SUFFIXES  # exported images restore; any other picture is offered for inversion


def restore_from_mime(
    controller: StudioController,
    mime,
    open_file: Callable[[str], bool] | None = None,
    offer_image: Callable[[object], bool] | None = None,
) -> bool | None:
    """Restore from dropped/pasted files, parameters JSON or parameters text (this studio's or A1111's).

    True: restored. False: it was an image or parameters, but could not be restored (the status bar says
    why). None: nothing in it is an image or parameters (plain text, say). ``open_file`` opens an image file
    (default: restore its parameters); ``offer_image`` takes pasted pixels without parameters (inversion).
    """
    if mime is None:
        return None
    for url in mime.urls():
        path = url.toLocalFile()
        if path and Path(path).suffix.lower() in IMAGE_SUFFIXES:
            return (open_file or controller.restore_file)(path)
    texts = []
    if mime.hasFormat(PARAMETERS_MIME):
        texts.append(bytes(mime.data(PARAMETERS_MIME).data()).decode("utf-8", "replace"))
    if mime.hasText():
        texts.append(mime.text())
    for text in texts:
        try:
            request = request_from_json_text(text)
        except ValueError as exc:  # GAN Studio's parameters, but unusable: say why (already logged)
            controller.message.emit(str(exc))
            return False
        if request is not None:
            return controller.restore_request(request, source="the pasted parameters")
    for text in texts:
        restored = controller.restore_text(text)
        if restored is not None:
            return restored
    if (
        offer_image is not None and mime.hasImage()
    ):  # pixels without parameters (a screenshot, a copied picture)
        return offer_image(mime.imageData())
    return None


class DropHighlight(QWidget):
    """An outline and a sentence over the window while a file is dragged over it (mouse-transparent)."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.text = "Drop to restore its parameters"
        self.hide()

    def show_over(self, text: str) -> None:
        self.text = text
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()

    def paintEvent(self, event) -> None:  # noqa: N802
        c = theme.colors()
        painter = QPainter(self)
        accent = QColor(c["accent"])
        fill = QColor(accent)
        fill.setAlpha(40)
        painter.fillRect(self.rect(), fill)
        painter.setPen(QPen(accent, 4))
        painter.drawRect(self.rect().adjusted(2, 2, -2, -2))
        font = self.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor(c["text"]))
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignCenter), self.text)
        painter.end()
