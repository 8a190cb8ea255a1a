"""The prompt panel: prompt with history and completion, seed (fixed/random, dice), count, truncation, variety,
Generate / Cancel, and the "nearest concepts" line that shows how the model understood the prompt.

It edits the session state and mirrors it back; it never talks to the engine (the window does).
"""

from __future__ import annotations

import html
import random

from PySide6.QtCore import QRegularExpression, QStringListModel, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QCompleter,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.requests import MAX_COUNT, MAX_SEED, MAX_STRENGTH, MAX_TRUNCATION, MAX_VARIETY
from studio.session.history import PromptHistory
from studio.session.state import RANDOM_SEED_LIMIT, SEED_FIXED, SEED_RANDOM, SessionState
from studio.ui import theme
from studio.ui.theme import set_icon

# The tooltip of the line under the prompt, unless it says what Spread picks among.
NEAREST_TIP = "The concepts the model knows that are closest to this prompt"


class PromptEdit(QPlainTextEdit):
    """A multi-line prompt: Alt+Up/Down walk the history, Ctrl+Enter submits, completion pops up while typing."""

    submitted = Signal()
    history_older = Signal()
    history_newer = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self.setPlaceholderText("Describe the picture, e.g. “grinning cat”")
        self.completer = QCompleter(self)
        self.completer.setWidget(self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setMaxVisibleItems(10)
        self.completer.setModel(QStringListModel(self))
        self.completer.activated.connect(self._complete_with)

    def set_completions(self, names: list[str]) -> None:
        self.completer.model().setStringList(sorted(set(names), key=str.lower))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        popup = self.completer.popup()
        key, mods = event.key(), event.modifiers()
        if popup.isVisible() and key in (
            Qt.Key.Key_Return,
            Qt.Key.Key_Enter,
            Qt.Key.Key_Escape,
            Qt.Key.Key_Tab,
        ):
            event.ignore()  # the popup handles these
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and mods & Qt.KeyboardModifier.ControlModifier:
            self.hide_completions()
            self.submitted.emit()
            return
        if mods & Qt.KeyboardModifier.AltModifier and key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            (self.history_older if key == Qt.Key.Key_Up else self.history_newer).emit()
            return
        super().keyPressEvent(event)
        if event.text() and event.text().isprintable():
            self._offer_completions()

    def _offer_completions(self) -> None:
        text = self.toPlainText().strip()
        if len(text) < 2 or "\n" in text or not self.completer.model().rowCount():
            self.completer.popup().hide()
            return
        self.completer.setCompletionPrefix(text)
        if self.completer.completionCount() == 0:
            self.completer.popup().hide()
            return
        rect = self.cursorRect()
        rect.setWidth(max(240, self.width() // 2))
        self.completer.complete(rect)

    def hide_completions(self) -> None:
        """Close the completion list (a generation started: the list has nothing more to offer)."""
        self.completer.popup().hide()

    def _complete_with(self, text: str) -> None:
        self.setPlainText(text)
        cursor = self.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.setTextCursor(cursor)


class BatchProgress(QWidget):
    """A thin progress bar that repaints lazily (QProgressBar.setValue repaints the window synchronously,
    which stalls the UI once per streamed image)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFixedHeight(6)
        self.fraction = 0.0

    def set_fraction(self, fraction: float) -> None:
        self.fraction = min(1.0, max(0.0, fraction))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        c = theme.colors()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(c["raised"]))
        painter.drawRoundedRect(self.rect(), 3, 3)
        if self.fraction > 0:
            painter.setBrush(QColor(c["accent"]))
            painter.drawRoundedRect(0, 0, max(6, round(self.width() * self.fraction)), self.height(), 3, 3)
        painter.end()


class PromptPanel(QWidget):
    generate_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, state: SessionState, history: PromptHistory, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.history = history
        self._build()
        self._sync_from_state()
        state.subscribe(self._on_state_changed)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)

        self.history_button = QToolButton(toolTip="Earlier prompts (Alt+↑ / Alt+↓ in the prompt box)")
        set_icon(self.history_button, "history")
        self.history_button.setAutoRaise(True)
        self.history_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.history_menu = QMenu(self.history_button)
        self.history_menu.aboutToShow.connect(self._fill_history_menu)
        self.history_button.setMenu(self.history_menu)
        self.history_button.setStyleSheet("QToolButton::menu-indicator { image: none; }")

        self.prompt_edit = PromptEdit()
        self.prompt_edit.setFixedHeight(84)
        self.prompt_edit.setToolTip("What to draw. Ctrl+Enter generates; Alt+↑/↓ recalls earlier prompts.")
        self.prompt_edit.textChanged.connect(self._on_prompt_edited)
        self.prompt_edit.submitted.connect(self.generate_requested)
        self.prompt_edit.history_older.connect(lambda: self._recall(self.history.older()))
        self.prompt_edit.history_newer.connect(lambda: self._recall(self.history.newer()))
        layout.addWidget(self.prompt_edit)

        self._nearest_line: tuple[str, bool] = ("", False)  # the nearest concepts' text, and whether poor
        self._spread_names: list[str] = []  # the concepts the prompt's seeds spread over (engine's answer)
        self._reading = ""  # what the model reads the prompt as, when not as typed ("happy dog": "dog")
        self.nearest_label = QLabel("", objectName="Nearest")
        self.nearest_label.setWordWrap(True)
        self.nearest_label.setToolTip(NEAREST_TIP)
        # "Did you mean pizza?" for a prompt the model reads clearly better respelled (Engine.suggestion); a click takes it
        self.suggestion_label = QLabel("", objectName="Suggestion")
        self.suggestion_label.setTextFormat(Qt.TextFormat.RichText)
        self.suggestion_label.setToolTip("The model knows this spelling better; click it to use it")
        self.suggestion_label.linkActivated.connect(self._take_suggestion)
        self.suggestion_label.setVisible(False)
        self._suggestion = ""
        lines = QVBoxLayout()
        lines.setSpacing(2)
        lines.addWidget(self.nearest_label)
        lines.addWidget(self.suggestion_label)
        under_prompt = QHBoxLayout()
        under_prompt.addLayout(lines, 1)
        under_prompt.addWidget(self.history_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(under_prompt)

        form = QFormLayout()
        form.setContentsMargins(0, 4, 0, 0)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(6)
        seed_row = QHBoxLayout()
        seed_row.setSpacing(4)
        self.seed_edit = QLineEdit()
        self.seed_edit.setValidator(
            QRegularExpressionValidator(QRegularExpression(r"\d{0,19}"), self.seed_edit)
        )
        self.seed_edit.setToolTip("Image i of a batch uses seed + i; the same seed gives the same picture")
        self.seed_edit.editingFinished.connect(self._on_seed_edited)
        self.seed_mode_button = QToolButton(checkable=True)
        self.seed_mode_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.seed_mode_button.toggled.connect(self._on_seed_mode_toggled)
        self.dice_button = QToolButton(toolTip="New random seed (Ctrl+R)")
        set_icon(self.dice_button, "dice")
        self.dice_button.clicked.connect(self.roll_seed)
        seed_row.addWidget(self.seed_edit, 1)
        seed_row.addWidget(self.seed_mode_button)
        seed_row.addWidget(self.dice_button)
        form.addRow("Seed", seed_row)

        self.count_spin = QSpinBox(minimum=1, maximum=MAX_COUNT, toolTip="How many images Generate makes")
        self.count_spin.valueChanged.connect(lambda value: self.state.update(count=value))
        form.addRow("Images", self.count_spin)
        self.truncation_spin = self._amount_spin(
            form,
            "Truncation",
            "truncation",
            MAX_TRUNCATION,
            "Lower: more typical pictures; higher: more varied ones",
        )
        self.variety_spin = self._amount_spin(
            form,
            "Variety",
            "variety",
            MAX_VARIETY,
            "0: the seeds of a prompt stay close to it; higher: each seed wanders further, so the pictures "
            "differ more and each is a little less like the prompt",
        )
        self.strength_spin = self._amount_spin(
            form,
            "Strength",
            "strength",
            MAX_STRENGTH,
            "How hard the picture follows the prompt: 1 as trained; above 1 more typical of the prompt's kind "
            "(and less of the one emoji it names), below 1 vaguer",
        )
        self.spread_check = QCheckBox("Seeds pick among the emoji it fits")
        self.spread_check.setToolTip(
            "On: when the prompt fits several emoji ('cat', 'heart', '猫'), each seed draws one of them; a "
            "full emoji name is drawn as it is either way"
        )
        self.spread_check.toggled.connect(lambda checked: self.state.update(spread=checked))
        form.addRow("Spread", self.spread_check)
        layout.addLayout(form)

        buttons = QHBoxLayout()
        self.generate_button = QPushButton(
            "Generate", objectName="Primary", toolTip="Generate the batch (Ctrl+Enter)"
        )
        set_icon(self.generate_button, "generate", "#ffffff")
        self.generate_button.clicked.connect(self.generate_requested)
        self.cancel_button = QPushButton("Cancel", toolTip="Stop the batch; images already made stay (Esc)")
        set_icon(self.cancel_button, "stop")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = BatchProgress()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.progress_label = QLabel("", objectName="Hint")
        layout.addWidget(self.progress_label)
        layout.addStretch(1)

    # --- from the window ----------------------------------------------------------------------------------------
    def set_vocabulary(self, names: list[str]) -> None:
        self.prompt_edit.set_completions(names)

    def set_nearest(self, concepts: list[tuple[str, float]], poor: bool = False) -> None:
        """The concepts nearest to the prompt; ``poor``: even the best is far off, so say so quietly."""
        names = " · ".join(name for name, _ in concepts)
        if poor:
            names = f"Not a concept the model knows well; closest: {names}"
        self._nearest_line = (names, poor)
        self._show_line()

    def set_suggestion(self, text: str) -> None:
        """Offer ``text`` as a respelling of the prompt ("" hides the offer)."""
        self._suggestion = text
        if text:
            self.suggestion_label.setText(f'Did you mean <a href="take">{html.escape(text)}</a>?')
        self.suggestion_label.setVisible(bool(text))

    def _take_suggestion(self, _link: str = "") -> None:
        if self._suggestion:
            self._recall(self._suggestion)
            self.prompt_edit.setFocus()

    def set_reading(self, text: str) -> None:
        """What the model reads the prompt as ("" when as typed): "🐱" as "cat face", "happy dog" as "dog"."""
        self._reading = text
        self._show_line()

    def set_spread(self, names: list[str]) -> None:
        """The concepts the prompt's seeds spread over; shown instead of the nearest ones while Spread is on."""
        self._spread_names = list(names)
        self._show_line()

    def _show_line(self) -> None:
        text, poor = self._nearest_line
        names = self._spread_names
        tip, spread_tip = NEAREST_TIP, "With Spread on, each seed draws one of: " + ", ".join(names)
        if self.state.spread and len(names) >= 2 and not poor:
            text = (
                f"Seeds draw one of {len(names)}: "
                + " · ".join(names[:3])
                + (" · …" if len(names) > 3 else "")
            )
            tip = spread_tip
        elif not text and len(names) >= 2:  # no nearest names but a spread: a prompt that asks for any emoji
            text = f"Any emoji: with Spread on, seeds draw one of {len(names)}"
            tip = spread_tip
        if self._reading:  # "happy dog" draws a dog: say so, or the adjective seems ignored
            text = f"Read as “{self._reading}”" + (f" · {text}" if text else "")
            tip = (
                f"The model reads this prompt as “{self._reading}”: emoji as their names, a few words around a "
                f"name as the name. {tip}"
            )
        self.nearest_label.setToolTip(tip)
        self.nearest_label.setText(text)
        self.nearest_label.setProperty("poor", poor)

    def set_progress(self, done: int, total: int, running: bool, rate: str = "") -> None:
        """Show batch progress (``rate``: "12.5 img/s · about 3 s left"); not ``running`` re-enables Generate."""
        self.generate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        self.progress.set_fraction(done / max(total, 1))
        self.progress_label.setText(f"{done} of {total}" + (f" · {rate}" if rate else "") if running else "")

    def set_ready(self, ready: bool) -> None:
        self.generate_button.setEnabled(ready)

    def roll_seed(self) -> None:
        self.state.update(seed=random.randint(0, RANDOM_SEED_LIMIT))

    # --- edits -> state -----------------------------------------------------------------------------------------
    def _on_prompt_edited(self) -> None:
        self.state.update(prompt=self.prompt_edit.toPlainText())

    def _amount_spin(
        self, form: QFormLayout, label: str, field: str, maximum: float, tip: str
    ) -> QDoubleSpinBox:
        """A 0..maximum box (steps of 0.05, two decimals) that sets the session's ``field``, as a row of ``form``."""
        spin = QDoubleSpinBox(minimum=0.0, maximum=maximum, singleStep=0.05, decimals=2, toolTip=tip)
        spin.valueChanged.connect(lambda value: self.state.update(**{field: value}))
        form.addRow(label, spin)
        return spin

    def _on_seed_edited(self) -> None:
        text = self.seed_edit.text().strip()
        if text:
            self.state.update(seed=min(int(text), MAX_SEED))
        else:
            self.seed_edit.setText(str(self.state.seed))

    def _on_seed_mode_toggled(self, random_mode: bool) -> None:
        self.state.update(seed_mode=SEED_RANDOM if random_mode else SEED_FIXED)
        self._label_seed_mode()

    def _recall(self, prompt: str | None) -> None:
        if prompt is not None:
            self.prompt_edit.setPlainText(prompt)
            self.prompt_edit.moveCursor(self.prompt_edit.textCursor().MoveOperation.End)

    def _fill_history_menu(self) -> None:
        self.history_menu.clear()
        entries = list(reversed(self.history.entries))[:25]
        if not entries:
            self.history_menu.addAction("No earlier prompts").setEnabled(False)
        for prompt in entries:
            label = prompt if len(prompt) < 60 else prompt[:57] + "…"
            self.history_menu.addAction(label, lambda p=prompt: self._recall(p))

    # --- state -> widgets ---------------------------------------------------------------------------------------
    def _on_state_changed(self, name: str, value: object) -> None:
        if name == "spread":
            self._show_line()
        if name == "prompt":
            self._spread_names = []  # until the engine says which concepts the new prompt fits
            self._reading = ""  # until the engine says how it reads the new prompt
            self.set_suggestion("")  # an offer for the old text no longer applies
        if name in ("prompt", "seed", "seed_mode", "count", "truncation", "variety", "spread", "strength"):
            self._sync_from_state()

    def _sync_from_state(self) -> None:
        s = self.state
        if self.prompt_edit.toPlainText() != s.prompt:
            self.prompt_edit.blockSignals(True)
            self.prompt_edit.setPlainText(s.prompt)
            self.prompt_edit.blockSignals(False)
        if self.seed_edit.text() != str(s.seed):
            self.seed_edit.setText(str(s.seed))
        spins = (
            (self.count_spin, s.count),
            (self.truncation_spin, s.truncation),
            (self.variety_spin, s.variety),
            (self.strength_spin, s.strength),
        )
        for widget, value in spins:
            if widget.value() != value:
                widget.blockSignals(True)
                widget.setValue(value)
                widget.blockSignals(False)
        if self.spread_check.isChecked() != s.spread:
            self.spread_check.blockSignals(True)
            self.spread_check.setChecked(s.spread)
            self.spread_check.blockSignals(False)
        self.seed_mode_button.blockSignals(True)
        self.seed_mode_button.setChecked(s.seed_mode == SEED_RANDOM)
        self.seed_mode_button.blockSignals(False)
        self._label_seed_mode()

    def _label_seed_mode(self) -> None:
        random_mode = self.seed_mode_button.isChecked()
        self.seed_mode_button.setText("Random" if random_mode else "Fixed")
        set_icon(self.seed_mode_button, "shuffle" if random_mode else "lock")
        self.seed_mode_button.setToolTip(
            "Random: each Generate draws a new seed. Click for Fixed."
            if random_mode
            else "Fixed: Generate reuses this seed. Click for Random."
        )
