"""The live preview: the current image large, on a checkerboard so transparency shows.

At the largest whole-number zoom that fits the image is scaled nearest-neighbour (crisp pixels); the
"smooth" toggle, or a view too small for 2x, fits the image to the view with smooth scaling instead. Errors and loading messages are drawn where the image would be, so
the person always knows why there is no picture.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.ui import theme
from studio.ui.images import qimage_from_rgba

MIN_CRISP_ZOOM = 2  # below 2x a whole-number zoom wastes most of the room: scale smoothly instead


class PreviewView(QWidget):
    """Shows one image, or a message (with an optional spinner), or an error sentence."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Preview")
        self.setMinimumSize(QSize(200, 200))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAcceptDrops(False)  # the window handles drops
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._message = ""
        self._error = ""
        self._busy = False
        self._smooth = False
        self._spin_angle = 0
        self._spinner = QTimer(self, interval=50)
        self._spinner.timeout.connect(self._spin)

    # --- content ----------------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray | QImage) -> None:
        """Show an RGBA image (numpy straight alpha, or a QImage); clears any message or error."""
        if isinstance(image, QImage):
            self._image = image
            self._array = None
        else:
            self._array = np.asarray(image)
            self._image = qimage_from_rgba(self._array)
        self._error = ""
        self.set_busy(False)
        self._message = ""
        self.update()

    def set_error(self, sentence: str) -> None:
        """Show an error instead of the image (the last image is dropped: it no longer matches the inputs)."""
        self._error = sentence
        self._image = None
        self._array = None
        self.set_busy(False)
        self.update()

    def set_message(self, text: str, busy: bool = False) -> None:
        """A neutral message where the picture will be (e.g. "Loading the model…"), optionally with a spinner."""
        self._message = text
        self._error = ""
        self.set_busy(busy)
        self.update()

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        if busy:
            self._spinner.start()
        else:
            self._spinner.stop()
        self.update()

    def set_smooth(self, smooth: bool) -> None:
        self._smooth = smooth
        self.update()

    @property
    def smooth(self) -> bool:
        return self._smooth

    @property
    def error(self) -> str:
        return self._error

    @property
    def message(self) -> str:
        return self._message

    def image_array(self) -> np.ndarray | None:
        """The shown image as RGBA numpy (None when an error or message is shown)."""
        if self._array is not None:
            return self._array
        if self._image is None:
            return None
        from studio.ui.images import rgba_from_qimage

        return rgba_from_qimage(self._image)

    def image(self) -> QImage | None:
        return self._image

    # --- painting ---------------------------------------------------------------------------------------------
    def _fit(self) -> float:
        margin = 16
        avail_w, avail_h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        return min(avail_w / self._image.width(), avail_h / self._image.height())

    @property
    def drawn_smooth(self) -> bool:
        """Smooth scaling: chosen, or because no whole-number zoom of at least 2x fits (a small window)."""
        if self._image is None or self._image.isNull():
            return self._smooth
        return self._smooth or math.floor(self._fit()) < MIN_CRISP_ZOOM

    def image_rect(self) -> QRect:
        """Where the image is drawn: the largest whole-number zoom that fits (crisp), or fitted (smooth)."""
        if self._image is None or self._image.isNull():
            return QRect()
        fit = self._fit()
        scale = fit if self.drawn_smooth else math.floor(fit)
        w, h = self._image.width(), self._image.height()
        dw, dh = round(w * scale), round(h * scale)
        return QRect((self.width() - dw) // 2, (self.height() - dh) // 2, dw, dh)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt naming
        c = theme.colors()
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(c["window"]))
        if self._image is not None and not self._image.isNull():
            target = self.image_rect()
            painter.fillRect(target, QBrush(theme.checker_tile(c["check_a"], c["check_b"])))
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.drawn_smooth)
            painter.drawImage(target, self._image)
            if self._busy:
                self._draw_spinner(painter, QRectF(target.right() - 28, target.top() + 8, 20, 20), c)
        else:
            box = self._placeholder_rect()
            painter.fillRect(box, QBrush(theme.checker_tile(c["check_a"], c["check_b"])))
            painter.setPen(QPen(QColor(c["border"]), 1, Qt.PenStyle.DashLine))
            painter.drawRect(box.adjusted(0, 0, -1, -1))
            text = self._error or self._message
            if self._busy:
                self._draw_spinner(painter, QRectF(box.center().x() - 14, box.center().y() - 48, 28, 28), c)
            if text:
                font = QFont(self.font())
                font.setPointSizeF(font.pointSizeF() * 1.1)
                painter.setFont(font)
                painter.setPen(QColor(c["danger"] if self._error else c["muted"]))
                painter.drawText(
                    box.adjusted(24, 24, -24, -24),
                    int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                    text,
                )
        painter.end()

    def _placeholder_rect(self) -> QRect:
        side = max(120, min(self.width(), self.height()) - 48)
        side = min(side, 512)
        return QRect((self.width() - side) // 2, (self.height() - side) // 2, side, side)

    def _draw_spinner(self, painter: QPainter, rect: QRectF, c: dict[str, str]) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(c["raised"]), 3))
        painter.drawEllipse(rect)
        pen = QPen(QColor(c["accent"]), 3)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        painter.drawArc(rect, -self._spin_angle * 16, 100 * 16)
        painter.restore()

    def _spin(self) -> None:
        self._spin_angle = (self._spin_angle + 30) % 360
        self.update()
