"""Conversions between the engine's RGBA numpy images, PNG bytes and Qt images (no torch here)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def qimage_from_rgba(image: np.ndarray) -> QImage:
    """A QImage that owns a copy of an H x W x 4 straight-alpha uint8 array."""
    data = np.ascontiguousarray(image, dtype=np.uint8)
    if data.ndim == 3 and data.shape[2] == 3:
        data = np.ascontiguousarray(
            np.concatenate([data, np.full(data.shape[:2] + (1,), 255, np.uint8)], axis=2)
        )
    height, width = data.shape[:2]
    return QImage(data.data, width, height, width * 4, QImage.Format.Format_RGBA8888).copy()


def rgba_from_qimage(image: QImage) -> np.ndarray:
    """An H x W x 4 straight-alpha uint8 array from any QImage."""
    converted = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height = converted.width(), converted.height()
    buffer = np.frombuffer(converted.constBits(), np.uint8, count=converted.sizeInBytes())
    return buffer.reshape(height, converted.bytesPerLine())[:, : width * 4].reshape(height, width, 4).copy()


def qimage_from_png(data: bytes) -> QImage:
    image = QImage()
    image.loadFromData(data, "PNG")
    return image
