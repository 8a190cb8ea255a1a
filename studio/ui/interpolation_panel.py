"""The interpolation panel: slots A and B, a scrub slider that renders live, Play/Pause (Space) looping or
ping-pong at a chosen FPS, the frame count, "Add frames to gallery" and "Export animation…".

z is slerped and the prompt embedding lerped by the engine; this panel only moves ``t`` in the session
state and asks the window (through signals) for the batch jobs.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.session.state import InterpolationSlot, SessionState
from studio.ui.theme import set_icon

SCRUB_STEPS = 1000
MODES = ("loop", "ping-pong")


class SlotView(QFrame):
    """One end of the interpolation: a thumbnail and its prompt and seed."""

    def __init__(self, letter: str, parent=None):
        super().__init__(parent)
        self.setObjectName("Slot")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.letter = QLabel(letter, objectName="SectionTitle")
        self.thumb = QLabel(objectName="SlotThumb")
        self.thumb.setFixedSize(48, 48)
        self.thumb.setScaledContents(True)
        self.text = QLabel(
            "empty — pick one from the gallery (right-click) or the preview", objectName="Hint"
        )
        self.text.setWordWrap(True)
        layout.addWidget(self.letter)
        layout.addWidget(self.thumb)
        layout.addWidget(self.text, 1)

    def show_slot(self, slot: InterpolationSlot | None, pixmap: QPixmap | None) -> None:
        self.text.setText(
            slot.label if slot else "empty — pick one from the gallery (right-click) or the preview"
        )
        self.thumb.setPixmap(pixmap if pixmap is not None else QPixmap())


class InterpolationPanel(QWidget):
    slot_from_preview_requested = Signal(str)  # "a" or "b"
    add_frames_requested = Signal(int)  # frame count
    export_animation_requested = Signal(int, float, str)  # frames, fps, mode

    def __init__(self, state: SessionState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._frame = 0
        self._direction = 1
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)
        self._build()
        state.subscribe(self._on_state_changed)
        self._sync()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 12)
        layout.setSpacing(6)
        slots = QGridLayout()
        self.slot_a = SlotView("A")
        self.slot_b = SlotView("B")
        self.set_a_button = QToolButton(text="A ← preview", toolTip="Use the current preview as A")
        self.set_b_button = QToolButton(text="B ← preview", toolTip="Use the current preview as B")
        self.set_a_button.clicked.connect(lambda: self.slot_from_preview_requested.emit("a"))
        self.set_b_button.clicked.connect(lambda: self.slot_from_preview_requested.emit("b"))
        slots.addWidget(self.slot_a, 0, 0)
        slots.addWidget(self.set_a_button, 0, 1)
        slots.addWidget(self.slot_b, 1, 0)
        slots.addWidget(self.set_b_button, 1, 1)
        slots.setColumnStretch(0, 1)
        layout.addLayout(slots)

        scrub_row = QHBoxLayout()
        self.play_button = QToolButton(toolTip="Play / pause the interpolation (Space)", checkable=True)
        set_icon(self.play_button, "play")
        self.play_button.toggled.connect(self.set_playing)
        self.scrub = QSlider(
            Qt.Orientation.Horizontal, toolTip="Scrub from A (left) to B (right); renders live"
        )
        self.scrub.setRange(0, SCRUB_STEPS)
        self.scrub.valueChanged.connect(self._on_scrub)
        self.t_label = QLabel("t = 0.00", objectName="Hint")
        self.t_label.setMinimumWidth(64)
        scrub_row.addWidget(self.play_button)
        scrub_row.addWidget(self.scrub, 1)
        scrub_row.addWidget(self.t_label)
        layout.addLayout(scrub_row)

        options = QHBoxLayout()
        self.frames_spin = QSpinBox(
            minimum=2, maximum=600, value=24, suffix=" frames", toolTip="Frames from A to B"
        )
        self.fps_spin = QSpinBox(
            minimum=1, maximum=60, value=12, suffix=" fps", toolTip="Playback and export speed"
        )
        self.fps_spin.valueChanged.connect(self._retime)
        self.mode_combo = QComboBox(toolTip="Loop: A→B, A→B…  Ping-pong: A→B→A…")
        self.mode_combo.addItems(["Loop", "Ping-pong"])
        options.addWidget(self.frames_spin)
        options.addWidget(self.fps_spin)
        options.addWidget(self.mode_combo)
        layout.addLayout(options)

        actions = QHBoxLayout()
        self.add_frames_button = QPushButton(
            "Add frames to gallery", toolTip="Render every frame into the gallery"
        )
        set_icon(self.add_frames_button, "frames")
        self.add_frames_button.clicked.connect(
            lambda: self.add_frames_requested.emit(self.frames_spin.value())
        )
        self.export_button = QPushButton(
            "Export animation…", toolTip="GIF, WebP or MP4 with the recipe embedded"
        )
        set_icon(self.export_button, "export")
        self.export_button.clicked.connect(
            lambda: self.export_animation_requested.emit(
                self.frames_spin.value(), float(self.fps_spin.value()), self.mode
            )
        )
        actions.addWidget(self.add_frames_button)
        actions.addWidget(self.export_button)
        layout.addLayout(actions)
        layout.addStretch(1)

    @property
    def mode(self) -> str:
        return MODES[self.mode_combo.currentIndex()]

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex(MODES.index(mode) if mode in MODES else 1)

    # --- slots and scrubbing -------------------------------------------------------------------------------------
    def show_slots(self, pixmap_a: QPixmap | None, pixmap_b: QPixmap | None) -> None:
        self.slot_a.show_slot(self.state.slot_a, pixmap_a)
        self.slot_b.show_slot(self.state.slot_b, pixmap_b)

    def _on_scrub(self, value: int) -> None:
        if self.ready:
            self.state.update(t=value / SCRUB_STEPS, preview_mode="interpolation")

    @property
    def ready(self) -> bool:
        return self.state.slot_a is not None and self.state.slot_b is not None

    # --- playback ------------------------------------------------------------------------------------------------
    def toggle_playing(self) -> None:
        self.play_button.setChecked(not self.play_button.isChecked())

    def set_playing(self, playing: bool) -> None:
        if playing and not self.ready:
            self.play_button.setChecked(False)
            return
        if self.play_button.isChecked() != playing:
            self.play_button.setChecked(playing)  # re-enters with the same value
            return
        set_icon(self.play_button, "pause" if playing else "play")
        if playing:
            frames = self.frames_spin.value()
            self._frame = round(self.state.t * (frames - 1))
            self._retime()
            self._timer.start()
        else:
            self._timer.stop()

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def _retime(self) -> None:
        self._timer.setInterval(max(1, round(1000 / self.fps_spin.value())))

    def _advance(self) -> None:
        last = self.frames_spin.value() - 1
        if self.mode == "ping-pong":
            if not 0 <= self._frame + self._direction <= last:
                self._direction = -self._direction
            self._frame += self._direction
        else:
            self._frame = (self._frame + 1) % (last + 1)
        self.scrub.setValue(round(self._frame / last * SCRUB_STEPS))

    # --- state -> widgets ----------------------------------------------------------------------------------------
    def _on_state_changed(self, name: str, value: object) -> None:
        if name in ("slot_a", "slot_b", "t"):
            self._sync()

    def _sync(self) -> None:
        ready = self.ready
        for widget in (self.scrub, self.play_button, self.add_frames_button, self.export_button):
            widget.setEnabled(ready)
        if not ready and self.playing:
            self.set_playing(False)
        self.scrub.blockSignals(True)
        self.scrub.setValue(round(self.state.t * SCRUB_STEPS))
        self.scrub.blockSignals(False)
        self.t_label.setText(f"t = {self.state.t:.2f}")
