"""Help ▸ Keyboard shortcuts (a sheet built from the window's real actions, so it cannot go stale) and
Help ▸ About (versions, the model card and the licences of the weights and the emoji they learnt from)."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import PySide6
from PySide6.QtCore import Qt, QTimer, QUrl, qVersion
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio import __version__
from studio.paths import resources_dir

MOUSE = (
    ("Drag an image onto the window", "Restore the parameters it carries (GAN Studio or AUTOMATIC1111)"),
    ("Click a gallery image", "Show it and make its parameters the current ones (Ctrl+Z undoes)"),
    ("Right-click a gallery image", "Interpolation A / B, more like this, copy, export, star, delete"),
    ("Drag gallery images out", "PNG files with their parameters, for a file manager"),
    ("Double-click a slider's value", "Reset that slider (to 0; truncation to the model's default)"),
)
PROMPT_KEYS = (
    ("Alt+Up / Alt+Down", "Earlier / later prompt (in the prompt box)"),
    ("Tab / Enter", "Take the highlighted completion"),
)
NOTO_EMOJI_LICENCE = "Noto Color Emoji: SIL Open Font License 1.1"


def shortcut_rows(menus: list[QMenu], widget_actions: dict[str, list[QAction]]) -> list[tuple[str, str, str]]:
    """(section, keys, what) for every action with a shortcut: the menus' actions, then each panel's own."""
    rows = []
    sections = [(menu.title().replace("&", ""), menu.actions()) for menu in menus]
    for section, actions in [*sections, *widget_actions.items()]:
        for action in actions:
            keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())
            if keys and action.text():
                rows.append((section, keys, action.text().replace("&", "").rstrip("…")))
    rows += [("Prompt", keys, what) for keys, what in PROMPT_KEYS]
    rows += [("Mouse", gesture, what) for gesture, what in MOUSE]
    return rows


class ShortcutSheet(QDialog):
    def __init__(self, rows: list[tuple[str, str, str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        self.resize(640, 560)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(len(rows), 3, self)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "Does"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setWordWrap(True)
        for row, values in enumerate(rows):
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        # the last column takes the width that is left and wraps its text (no sideways scrolling for a long line)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        header.sectionResized.connect(self._fit_rows)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _fit_rows(self, *_args) -> None:
        """Row heights for the wrapped texts, once the columns have their final widths (after layout)."""
        QTimer.singleShot(0, self.table.resizeRowsToContents)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self._fit_rows()

    def texts(self) -> list[tuple[str, str, str]]:
        t = self.table
        return [tuple(t.item(r, c).text() for c in range(3)) for r in range(t.rowCount())]  # type: ignore[misc]


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)  # reads the installed metadata: torch itself is never imported here
    except metadata.PackageNotFoundError:
        return "not installed"


def about_html(model_path: Path | None, model_hash: str = "") -> str:
    """The About text: versions, the model (name, hash, licence, card) and the licences."""
    model_name, licence = "not loaded", "unknown"
    if model_path is not None:
        try:
            manifest = json.loads((Path(model_path) / "model.json").read_text(encoding="utf-8"))
            model_name = (
                f"{manifest.get('name', Path(model_path).name)} {manifest.get('version', '')}".strip()
            )
            licence = str(manifest.get("license", licence))
        except (OSError, ValueError):
            model_name = Path(model_path).name
    card = resources_dir().parent / "docs" / "model_card.md"
    card_link = (
        f'<a href="{QUrl.fromLocalFile(str(card)).toString()}">model card</a>'
        if card.is_file()
        else "model card: docs/model_card.md in the source"
    )
    versions = (
        f"GAN Studio {__version__} · Python {platform.python_version()} · Qt {qVersion()} · "
        f"PySide6 {PySide6.__version__} · torch {_package_version('torch')}"
    )
    return (
        f"<h3>GAN Studio {__version__}</h3>"
        "<p>Generate, steer and interpolate images with pretrained conditional GANs; every picture carries "
        "the parameters that remake it.</p>"
        f"<p>{versions}</p>"
        f"<p><b>Model:</b> {model_name}{' · hash ' + model_hash if model_hash else ''} ({card_link})<br>"
        f"<b>Model licence:</b> {licence}<br>"
        f"<b>Training images:</b> {NOTO_EMOJI_LICENCE}</p>"
        "<p><b>GAN Studio code licence:</b> Apache-2.0</p>"
    )


def show_about(parent: QWidget, model_path: Path | None, model_hash: str = "") -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle("About GAN Studio")
    layout = QVBoxLayout(dialog)
    label = QLabel(about_html(model_path, model_hash))
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setOpenExternalLinks(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
    layout.addWidget(label)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)
    dialog.setMinimumWidth(480)
    dialog.open()
    return dialog
