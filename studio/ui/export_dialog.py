"""The export dialog: folder, format (PNG / WebP / JPEG), transparency or a background colour, 1×–8× scale
with nearest or Lanczos, quality and the file-name template. Parameters are always embedded."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.io.export import ExportOptions
from studio.io.files import prepare_folder
from studio.session.settings import Settings
from studio.ui.theme import set_icon

FORMATS = (("PNG", "png"), ("WebP", "webp"), ("JPEG", "jpeg"))


class ExportDialog(QDialog):
    def __init__(self, settings: Settings, count: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle(f"Export {count} image{'s' if count != 1 else ''}")
        self._background = QColor("#ffffff")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        folder_row = QHBoxLayout()
        self.folder_edit = QLineEdit(settings["export_folder"] or str(Path.home() / "Pictures"))
        browse = QPushButton("Choose…")
        set_icon(browse, "open")
        browse.clicked.connect(self._choose_folder)
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)

        self.format_combo = QComboBox()
        for label, value in FORMATS:
            self.format_combo.addItem(label, value)
        self.format_combo.setCurrentIndex(
            max(
                0,
                [v for _, v in FORMATS].index(settings["export_format"])
                if settings["export_format"] in [v for _, v in FORMATS]
                else 0,
            )
        )
        self.format_combo.currentIndexChanged.connect(self._update_enabled)
        form.addRow("Format", self.format_combo)

        background_row = QHBoxLayout()
        self.transparent_check = QCheckBox("Keep transparency", checked=True)
        self.transparent_check.toggled.connect(self._update_enabled)
        self.colour_button = QPushButton("Background…")
        self.colour_button.clicked.connect(self._choose_colour)
        background_row.addWidget(self.transparent_check)
        background_row.addWidget(self.colour_button)
        form.addRow("Background", background_row)

        scale_row = QHBoxLayout()
        self.scale_spin = QSpinBox(minimum=1, maximum=8, value=int(settings["export_scale"]), suffix="×")
        self.resample_combo = QComboBox()
        self.resample_combo.addItem("Nearest (crisp pixels)", "nearest")
        self.resample_combo.addItem("Lanczos (smooth)", "lanczos")
        self.resample_combo.setCurrentIndex(max(0, self.resample_combo.findData(settings["export_resample"])))
        self.resample_combo.setToolTip("Also used for animations (GIF, WebP, MP4)")
        scale_row.addWidget(self.scale_spin)
        scale_row.addWidget(self.resample_combo, 1)
        form.addRow("Scale", scale_row)

        self.quality_spin = QSpinBox(minimum=1, maximum=100, value=95, toolTip="JPEG and lossy WebP quality")
        self.lossless_check = QCheckBox("Lossless WebP", checked=True)
        self.lossless_check.toggled.connect(self._update_enabled)
        quality_row = QHBoxLayout()
        quality_row.addWidget(self.quality_spin)
        quality_row.addWidget(self.lossless_check)
        form.addRow("Quality", quality_row)

        self.template_edit = QLineEdit(settings["export_template"])
        self.template_edit.setToolTip("Fields: {prompt} {seed} {index} {date} {model}")
        form.addRow("File names", self.template_edit)
        layout.addLayout(form)
        layout.addWidget(
            QLabel(
                "Every file carries its full parameters; drop it back on the window to restore it.",
                objectName="Hint",
            )
        )
        self.error_label = QLabel("", objectName="Hint")
        self.error_label.setStyleSheet("color: #ef6b73;")
        self.error_label.setWordWrap(True)
        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._update_enabled()

    def folder(self) -> Path:
        return Path(self.folder_edit.text()).expanduser()

    def options(self) -> ExportOptions:
        """The chosen options (validated by studio.io when the export runs)."""
        image_format = self.format_combo.currentData()
        flatten = image_format == "jpeg" or not self.transparent_check.isChecked()
        return ExportOptions(
            format=image_format,
            scale=self.scale_spin.value(),
            resample=self.resample_combo.currentData(),
            background=self._background.name() if flatten else None,
            quality=self.quality_spin.value(),
            lossless=self.lossless_check.isChecked(),
            template=self.template_edit.text() or "{prompt}_{seed}",
        )

    def _accept(self) -> None:
        if not self.folder_edit.text().strip():
            self.error_label.setText("Choose a folder to export into.")
            return
        try:
            options = self.options()
            if options is not None:
                options.validated()
            prepare_folder(self.folder())
        except Exception as exc:  # noqa: BLE001 - ExportError: shown as its sentence, the dialog stays open
            self.error_label.setText(str(exc))
            return
        self.settings.set("export_folder", str(self.folder()))
        self.settings.set("export_format", self.format_combo.currentData())
        self.settings.set("export_scale", self.scale_spin.value())
        self.settings.set("export_resample", self.resample_combo.currentData())
        self.settings.set("export_template", self.template_edit.text())
        self.accept()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _choose_colour(self) -> None:
        colour = QColorDialog.getColor(self._background, self, "Background colour")
        if colour.isValid():
            self._background = colour
            self.transparent_check.setChecked(False)
            self._update_enabled()

    def _update_enabled(self) -> None:
        image_format = self.format_combo.currentData()
        self.transparent_check.setEnabled(image_format != "jpeg")
        self.colour_button.setText(f"Background {self._background.name()}")
        lossy = image_format == "jpeg" or (image_format == "webp" and not self.lossless_check.isChecked())
        self.quality_spin.setEnabled(lossy)
        self.lossless_check.setEnabled(image_format == "webp")
