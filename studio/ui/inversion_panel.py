"""The inversion panel: the person's picture and the model's drawing of it, side by side, with progress.

Shown when a picture without GAN Studio parameters is dropped, opened or pasted. It offers "Invert into
the model"; while the inversion runs the right side follows it step by step and Cancel (or Esc) stops it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from studio.ui.preview_view import PreviewView


class InversionPanel(QWidget):
    invert_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Panel")
        self.original = PreviewView()
        self.inversion = PreviewView()
        for view in (self.original, self.inversion):
            view.setMinimumSize(160, 160)
            view.set_smooth(True)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.progress = QProgressBar(textVisible=True)
        self.progress.setVisible(False)
        self.invert_button = QPushButton("Invert into the model")
        self.invert_button.setToolTip(
            "Find the model's nearest drawing of this picture, then edit it with the sliders"
        )
        self.invert_button.clicked.connect(self.invert_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the inversion (Esc)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.setVisible(False)

        pair = QHBoxLayout()
        for caption, view in (("Your picture", self.original), ("The model's drawing", self.inversion)):
            column = QVBoxLayout()
            label = QLabel(caption)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            column.addWidget(label)
            column.addWidget(view, 1)
            pair.addLayout(column, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.invert_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(pair, 1)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)

    def offer(self, picture: np.ndarray, name: str) -> None:
        """Show a picture waiting to be inverted."""
        self.original.set_image(picture)
        self.inversion.set_message("Not inverted yet.")
        self.title.setText(f"{name} has no GAN Studio parameters. Invert it into the model to edit it here.")
        self._set_running(False)
        self.invert_button.setText("Invert into the model")

    def started(self, name: str, total_steps: int) -> None:
        self.title.setText(f"Inverting {name}… (Esc cancels)")
        self.inversion.set_message("Looking for the nearest concepts…", busy=True)
        self.progress.setRange(0, total_steps)
        self.progress.setValue(0)
        self._set_running(True)

    def show_step(self, step: int, total: int, image: np.ndarray) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(step)
        self.inversion.set_image(image)

    def finished(self, text: str, image: np.ndarray | None = None) -> None:
        if image is not None:
            self.inversion.set_image(image)
        self.title.setText(text)
        self._set_running(False)
        self.invert_button.setText("Invert again")

    def _set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.invert_button.setVisible(not running)
