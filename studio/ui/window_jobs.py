"""The window's file jobs: open an image to restore it, export images and animations, delete with undo.

Dialogs live here so the controller stays free of them; the heavy parts (encoding, writing) are studio.io's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QFileDialog

from studio.io.picture import PICTURE_SUFFIXES
from studio.ui.export_dialog import ExportDialog
from studio.ui.exporting import export_pictures

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow


class WindowJobs:
    def __init__(self, window: MainWindow):
        self.window = window
        self._undo_ids: list[int] = []

    # --- open ------------------------------------------------------------------------------------------------
    def open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window,
            "Open an exported image or any picture",
            self.window.settings["export_folder"],
            "Images (" + " ".join("*" + suffix for suffix in PICTURE_SUFFIXES) + ")",
        )
        if path:
            self.window.open_file(path)

    # --- export ----------------------------------------------------------------------------------------------
    def export_items(self, item_ids: list[int]) -> None:
        pictures = [p for p in (self.window.gallery.gallery.picture(i) for i in item_ids) if p is not None]
        if not pictures:
            self.window.show_message("Select images in the gallery to export.")
            return
        self._export(pictures)

    def export_preview(self) -> None:
        picture = self.window.controller.picture_of_preview()
        if picture is None:
            self.window.show_message("There is no preview to export yet.")
            return
        self._export([picture])

    def _export(self, pictures: list) -> None:
        dialog = ExportDialog(self.window.settings, len(pictures), self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        try:
            written = export_pictures(pictures, dialog.folder(), dialog.options())
        except Exception as exc:  # noqa: BLE001 - ExportError / OSError: one sentence, nothing lost
            self.window.show_message(str(exc))
            return
        self.window.settings.save()
        where = written[0].parent if written else dialog.folder()
        self.window.show_message(
            f"Exported {len(written)} image{'s' if len(written) != 1 else ''} to {where}."
        )

    def export_animation(self, frames: int, fps: float, mode: str) -> None:
        state = self.window.state
        if state.slot_a is None or state.slot_b is None or not self.window.link.is_ready:
            return
        try:
            from studio.io.animation import animation_formats
        except ImportError:
            self.window.show_message("Animation export needs the studio.io package.")
            return
        labels = {
            "gif": "GIF (*.gif)",
            "webp": "Animated WebP (*.webp)",
            "mp4": "MP4 video (*.mp4)",
            "frames": "Folder of PNG frames (*)",
        }
        kinds = animation_formats()
        path, chosen = QFileDialog.getSaveFileName(
            self.window,
            "Export animation",
            self.window.settings["export_folder"] or "",
            ";;".join(labels[k] for k in kinds if k in labels),
        )
        if not path:
            return
        suffix = next((f".{k}" for k, label in labels.items() if label == chosen and k != "frames"), "")
        if suffix and not path.lower().endswith(suffix):
            path += suffix  # the dialog does not always add the chosen type's extension
        requests = [state.interpolation_request(i / (frames - 1)) for i in range(frames)]
        self.window.link.spawn(self.write_animation(requests, path, fps, mode))

    async def write_animation(self, requests, path: str, fps: float, mode: str):
        """Render the frames through the engine, then write them with studio.io; returns the path written."""
        from studio.io.animation import AnimationOptions, save_results_animation

        self.window.show_message(f"Rendering {len(requests)} frames…", 0)
        results = await self.window.link.render_all(requests)
        try:
            written = save_results_animation(
                results, path, AnimationOptions(fps=fps, pingpong=mode == "ping-pong"), mode="interpolate"
            )
        except Exception as exc:  # noqa: BLE001 - ExportError / OSError
            self.window.show_message(str(exc))
            return
        self.window.show_message(f"Wrote {written}.")
        return written

    # --- delete / undo ---------------------------------------------------------------------------------------
    def deleted(self, item_ids: list[int]) -> None:
        self._undo_ids = list(item_ids)
        count = len(item_ids)
        self.window.undo_action.setEnabled(True)
        self.window.undo_button.setVisible(True)
        self.window.show_message(
            f"Deleted {count} image{'s' if count != 1 else ''}. Undo with Ctrl+Z.", 15000
        )

    def undo_delete(self) -> None:
        if not self._undo_ids:
            return
        ids, self._undo_ids = self._undo_ids, []
        self.window.gallery.undo_delete(ids)
        self.window.undo_action.setEnabled(False)
        self.window.undo_button.setVisible(False)
        self.window.show_message(f"Restored {len(ids)} image{'s' if len(ids) != 1 else ''}.")
