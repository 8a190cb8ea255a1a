"""The latent sliders dock: top closed-form (SeFa) directions by rank, concept sliders the person adds by
naming two prompts, truncation, variety and prompt-strength sliders, Reset and Randomize.

Every move goes straight into the session state; the window turns state changes into latest-wins previews,
so a fast drag renders the newest position and never builds a backlog.
"""

from __future__ import annotations

import random

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.requests import MAX_CONCEPTS, MAX_STRENGTH, MAX_TRUNCATION, MAX_VARIETY
from studio.session.state import SessionState
from studio.ui.theme import set_icon

SHOWN_DIRECTIONS = 8
DIRECTION_RANGE = 5.0  # slider ends, in units of the direction's (unit) length times sqrt(z) spread
CONCEPT_RANGE = 2.0
STEPS = 100  # slider ticks each side of 0


class OffsetSlider(QWidget):
    """A labelled horizontal slider for a float in [-span, span] (or [0, span] when ``signed`` is False).

    Double-clicking it puts it back to ``reset_value`` (0, 1 for the prompt strength, or the model's default
    truncation)."""

    moved = Signal(float)

    def __init__(self, label: str, span: float, signed: bool = True, tooltip: str = "", parent=None):
        super().__init__(parent)
        self.span = span
        self.signed = signed
        self.reset_value = 0.0
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.label = QLabel(label)
        self.label.setMinimumWidth(84)
        self.label.setToolTip(tooltip)
        self.slider = QSlider(Qt.Orientation.Horizontal, objectName="Centered" if signed else "")
        self.slider.setRange(-STEPS if signed else 0, STEPS)
        self.slider.setToolTip(tooltip + ("\nDouble-click the value to reset it." if tooltip else ""))
        self.slider.valueChanged.connect(self._on_slider)
        self.value_label = QLabel("0.00", objectName="Hint")
        self.value_label.setMinimumWidth(40)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.value_label)

    def value(self) -> float:
        return self.slider.value() * self.span / STEPS

    def set_value(self, value: float) -> None:
        """Move the handle without emitting ``moved``."""
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * STEPS / self.span))
        self.slider.blockSignals(False)
        self.value_label.setText(f"{value:+.2f}" if self.signed else f"{value:.2f}")

    def _on_slider(self, ticks: int) -> None:
        value = ticks * self.span / STEPS
        self.value_label.setText(f"{value:+.2f}" if self.signed else f"{value:.2f}")
        self.moved.emit(value)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.slider.setValue(round(self.reset_value * STEPS / self.span))


class SlidersPanel(QWidget):
    reset_requested = Signal(float)  # the model's default truncation; the controller resets (undoably)
    message = Signal(str)  # one sentence for the status bar

    def __init__(self, state: SessionState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.default_truncation = 1.0
        self.direction_sliders: list[OffsetSlider] = []
        self.concept_sliders: list[OffsetSlider] = []
        self._build()
        state.subscribe(self._on_state_changed)
        self._sync_from_state()

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        body = QWidget(objectName="Panel")
        scroll.setWidget(body)
        outer.addWidget(scroll)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 8, 12, 12)
        layout.setSpacing(6)

        self.truncation_slider = OffsetSlider(
            "Truncation", MAX_TRUNCATION, signed=False, tooltip="Lower: more typical; higher: more varied"
        )
        self.truncation_slider.moved.connect(lambda value: self.state.update(truncation=value))
        layout.addWidget(self.truncation_slider)
        self.variety_slider = OffsetSlider(
            "Variety",
            MAX_VARIETY,
            signed=False,
            tooltip="Higher: each seed wanders further from the prompt, so the seeds draw more different "
            "pictures, each a little less like the prompt",
        )
        self.variety_slider.moved.connect(lambda value: self.state.update(variety=value))
        layout.addWidget(self.variety_slider)
        self.strength_slider = OffsetSlider(
            "Strength",
            MAX_STRENGTH,
            signed=False,
            tooltip="How hard the picture follows the prompt: 1 as trained; higher: more typical of the "
            "prompt's kind and less of the one emoji it names",
        )
        self.strength_slider.reset_value = 1.0
        self.strength_slider.moved.connect(lambda value: self.state.update(strength=value))
        layout.addWidget(self.strength_slider)

        layout.addWidget(QLabel("LATENT DIRECTIONS", objectName="SectionTitle"))
        self.directions_box = QVBoxLayout()
        self.directions_box.setSpacing(4)
        layout.addLayout(self.directions_box)
        self.no_directions = QLabel("Available once the model has loaded.", objectName="Hint")
        self.directions_box.addWidget(self.no_directions)

        layout.addWidget(QLabel("CONCEPT SLIDERS", objectName="SectionTitle"))
        add_row = QGridLayout()
        add_row.setHorizontalSpacing(4)
        self.concept_from = QLineEdit(placeholderText="from, e.g. sad")
        self.concept_to = QLineEdit(placeholderText="to, e.g. happy")
        self.add_concept_button = QToolButton(
            toolTip="Add a slider that moves the prompt from one idea to the other"
        )
        set_icon(self.add_concept_button, "add")
        self.add_concept_button.clicked.connect(self._add_concept)
        self.concept_to.returnPressed.connect(self._add_concept)
        add_row.addWidget(self.concept_from, 0, 0)
        add_row.addWidget(QLabel("↔"), 0, 1)
        add_row.addWidget(self.concept_to, 0, 2)
        add_row.addWidget(self.add_concept_button, 0, 3)
        layout.addLayout(add_row)
        self.concepts_box = QVBoxLayout()
        self.concepts_box.setSpacing(4)
        layout.addLayout(self.concepts_box)

        buttons = QHBoxLayout()
        self.reset_button = QPushButton(
            "Reset",
            toolTip="All sliders and variety back to 0, prompt strength to 1 and truncation to the model's default",
        )
        set_icon(self.reset_button, "reset")
        self.reset_button.clicked.connect(lambda: self.reset_requested.emit(self.default_truncation))
        self.randomize_button = QPushButton("Randomize", toolTip="Random positions for the latent directions")
        set_icon(self.randomize_button, "dice")
        self.randomize_button.clicked.connect(self.randomize)
        buttons.addWidget(self.reset_button)
        buttons.addWidget(self.randomize_button)
        layout.addLayout(buttons)
        layout.addStretch(1)

    # --- from the window ----------------------------------------------------------------------------------------
    def set_model(self, num_directions: int, default_truncation: float) -> None:
        """Build one slider per shown direction (by rank: 1 moves the picture most)."""
        self.default_truncation = default_truncation
        self.truncation_slider.reset_value = default_truncation
        for slider in self.direction_sliders:
            slider.deleteLater()
        self.direction_sliders = []
        self.no_directions.setVisible(num_directions == 0)
        for index in range(min(num_directions, SHOWN_DIRECTIONS)):
            slider = OffsetSlider(
                f"Direction {index + 1}",
                DIRECTION_RANGE,
                tooltip=f"Closed-form latent direction ranked {index + 1} (SeFa): moves the picture along "
                "one of the generator's strongest axes of change",
            )
            slider.moved.connect(lambda value, i=index: self.state.set_direction(i, value))
            self.directions_box.addWidget(slider)
            self.direction_sliders.append(slider)
        self._sync_from_state()

    def randomize(self, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        count = len(self.direction_sliders)
        step = DIRECTION_RANGE / STEPS  # land on slider ticks, so each handle shows its offset exactly
        offsets = {
            i: round(max(-STEPS, min(STEPS, round(rng.gauss(0.0, 1.5) / step))) * step, 6)
            for i in range(count)
        }
        self.state.update(directions=offsets)

    # --- edits --------------------------------------------------------------------------------------------------
    def _add_concept(self) -> None:
        negative, positive = self.concept_from.text().strip(), self.concept_to.text().strip()
        if len(self.state.concepts) >= MAX_CONCEPTS:
            return
        if not negative or not positive:
            (self.concept_from if not negative else self.concept_to).setFocus()
            return
        if negative.casefold() == positive.casefold():  # a slider from a word to itself would move nothing
            self.message.emit(
                f"Both ends say “{positive}”; a concept slider needs two different ideas, e.g. sad ↔ happy."
            )
            self.concept_to.setFocus()
            self.concept_to.selectAll()
            return
        self.state.add_concept(negative, positive)
        self.concept_from.clear()
        self.concept_to.clear()

    # --- state -> widgets ---------------------------------------------------------------------------------------
    def _on_state_changed(self, name: str, value: object) -> None:
        if name in ("directions", "concepts", "truncation", "variety", "strength"):
            self._sync_from_state()

    def _sync_from_state(self) -> None:
        self.truncation_slider.set_value(self.state.truncation)
        self.variety_slider.set_value(self.state.variety)
        self.strength_slider.set_value(self.state.strength)
        for index, slider in enumerate(self.direction_sliders):
            slider.set_value(self.state.directions.get(index, 0.0))
        concepts = self.state.concepts
        room = len(concepts) < MAX_CONCEPTS  # a request carries at most this many (studio/engine/requests.py)
        for widget in (self.concept_from, self.concept_to, self.add_concept_button):
            widget.setEnabled(room)
        self.add_concept_button.setToolTip(
            "Add a slider that moves the prompt from one idea to the other"
            if room
            else f"At most {MAX_CONCEPTS} concept sliders; remove one to add another."
        )
        labels = [f"{c.negative} ↔ {c.positive}" for c in concepts]
        if [s.label.text() for s in self.concept_sliders] != labels:
            self._rebuild_concepts(labels)
        for slider, concept in zip(self.concept_sliders, concepts, strict=False):
            slider.set_value(concept.scale)

    def _rebuild_concepts(self, labels: list[str]) -> None:
        for slider in self.concept_sliders:
            slider.setParent(None)
            slider.deleteLater()
        self.concept_sliders = []
        for position, label in enumerate(labels):
            slider = OffsetSlider(
                label, CONCEPT_RANGE, tooltip=f"Moves the prompt from “{label.replace(' ↔ ', '” towards “')}”"
            )
            slider.moved.connect(lambda value, p=position: self.state.set_concept_scale(p, value))
            remove = QToolButton(toolTip="Remove this concept slider")
            set_icon(remove, "remove")
            remove.setAutoRaise(True)
            remove.clicked.connect(lambda _=False, p=position: self.state.remove_concept(p))
            slider.layout().addWidget(remove)
            self.concepts_box.addWidget(slider)
            self.concept_sliders.append(slider)
