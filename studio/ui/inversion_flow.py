"""Bring your own picture: a dropped, opened or pasted picture without GAN Studio parameters is offered for
inversion; the inversion streams into the panel and the preview, Esc cancels it, and the result goes to the
gallery (its tooltip names the source file) and becomes the current picture, so every slider acts on it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage

from studio.io.metadata import ForeignParameters
from studio.io.picture import Picture, PictureError, picture_from_rgba, read_picture
from studio.ui.exporting import read_request
from studio.ui.images import rgba_from_qimage
from studio.ui.inversion_panel import InversionPanel

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

log = logging.getLogger(__name__)
PASTED_NAME = "pasted picture"


class InversionFlow(QObject):
    message = Signal(str)

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.link = window.link
        self.panel = InversionPanel()
        self.dock = window._dock(
            "Inversion", "InversionDock", self.panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.dock.hide()
        self.picture: Picture | None = None
        self._running: Picture | None = None
        self.panel.invert_requested.connect(self.start)
        self.panel.cancel_requested.connect(self.cancel)
        self.link.inversion_progress.connect(self._on_progress)
        self.link.inversion_finished.connect(self._on_finished)
        self.link.inversion_failed.connect(self._on_failed)

    # --- offering ------------------------------------------------------------------------------------------------
    @staticmethod
    def has_no_parameters(path: str | Path) -> bool:
        """True for a file that carries no readable GAN Studio parameters (a picture to invert, perhaps)."""
        try:
            read_request(path)
        except ForeignParameters:
            return False  # another tool's parameters: restoring imports what maps
        except ValueError:
            return True
        return False

    def offer_file(self, path: str | Path) -> bool:
        """Offer to invert the picture at ``path``; False (and one sentence) when it cannot be read."""
        try:
            picture = read_picture(path)
        except PictureError as exc:
            log.info("cannot offer %s for inversion", path, exc_info=True)
            self.message.emit(str(exc))
            return False
        return self._offer(picture)

    def offer_image(self, image: QImage | np.ndarray, name: str = PASTED_NAME) -> bool:
        """Offer to invert pixels from the clipboard."""
        try:
            array = rgba_from_qimage(image) if isinstance(image, QImage) else np.asarray(image)
            picture = picture_from_rgba(array, name)
        except PictureError as exc:
            self.message.emit(str(exc))
            return False
        return self._offer(picture)

    def _offer(self, picture: Picture) -> bool:
        self.picture = picture
        self.panel.offer(picture.image, picture.name or PASTED_NAME)
        self.dock.show()
        self.dock.raise_()
        self.message.emit(
            f"{picture.name or 'The ' + PASTED_NAME} has no GAN Studio parameters; "
            "“Invert into the model” finds the model's nearest drawing of it."
        )
        return True

    # --- running -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Invert the offered picture."""
        picture = self.picture
        if picture is None:
            return
        if not self.link.is_ready:
            self.message.emit(self.link.error or "The model is still loading; invert once it is ready.")
            return
        self._running = picture
        self.panel.started(picture.name or PASTED_NAME, 0)
        self.window.preview.set_message("Inverting…", busy=True)
        self.link.invert(picture.image, picture.name)

    @property
    def running(self) -> bool:
        return self._running is not None

    def cancel(self) -> bool:
        """Stop a running inversion (nothing is added); True if one was running."""
        if self._running is None:
            return False
        self._running = None
        self.link.cancel_inversion()
        self.panel.finished(
            "Cancelled; nothing was added to the gallery. Invert again or drop another picture."
        )
        self.window.controller.request_preview()  # the preview goes back to the current picture
        self.message.emit("Inversion cancelled.")
        return True

    def _on_progress(self, progress) -> None:
        if self._running is None:
            return
        self.panel.show_step(progress.step, progress.total, progress.image)
        self.window.preview.set_image(progress.image)
        self.window.preview.set_busy(True)

    def _on_finished(self, outcome) -> None:
        picture, self._running = self._running, None
        if picture is None:
            return
        result = outcome.result
        controller = self.window.controller
        item_id = controller.store.add(result.request, result.image, result.model_hash, result.device)
        controller.gallery.add_items([item_id])
        controller.gallery.flush_incoming()
        controller.show_item(item_id)  # the inverted picture becomes the current one: sliders act on it
        name = picture.name or "the " + PASTED_NAME
        self.panel.finished(
            f"Inverted {name}: {outcome.psnr:.1f} dB (nearest concept “{result.request.prompt}” alone: "
            f"{outcome.baseline_psnr:.1f} dB). It is in the gallery; move the sliders to edit it.",
            result.image,
        )
        self.message.emit(f"Inverted {name} in {outcome.seconds:.1f} s; the result is in the gallery.")

    def _on_failed(self, sentence: str) -> None:
        if self._running is None:
            return
        self._running = None
        self.panel.finished(sentence)
        self.window.controller.request_preview()
        self.message.emit(sentence)
