"""The window's file jobs: open an image to restore it, export images and animations, delete with undo.

Dialogs live here so the controller stays free of them; the heavy parts (encoding, writing) are studio.io's
and run on the files worker (studio.ui.exporting.files_worker), one file at a time, awaited from an asyncio
task: the UI thread only reads the store and moves the progress bar. A file job shows a progress bar and a
Cancel button in the status bar; Cancel stops before the next file, and every file already written is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QStandardPaths, QTimer
from PySide6.QtWidgets import QDialog, QFileDialog, QProgressBar, QToolButton

from studio.io.picture import PICTURE_SUFFIXES
from studio.session.gallery_store import GalleryError
from studio.ui.export_dialog import ExportDialog
from studio.ui.exporting import (
    Picture,
    export_pictures,
    export_stored,
    files_worker,
    remove_unfinished_files,
)
from studio.ui.undo import UndoFailed

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

log = logging.getLogger(__name__)

# One step of a file job: called on the UI thread (it may read the store), it returns the work for the
# files worker (a callable returning the path written), or None to skip.
FileStep = Callable[[], Callable[[], Path] | None]


class WindowJobs:
    def __init__(self, window: MainWindow):
        self.window = window
        self.job: asyncio.Task | None = None
        self._cancel_requested = False
        self._in_worker = False
        self.job_progress = QProgressBar(maximumWidth=160, textVisible=True, visible=False)
        self.job_cancel = QToolButton(text="Cancel", visible=False, toolTip="Stop after the current file")
        self.job_cancel.clicked.connect(self.cancel_job)
        window.statusBar().addPermanentWidget(self.job_progress)
        window.statusBar().addPermanentWidget(self.job_cancel)
        QTimer.singleShot(0, self.show_notices)  # once the window (and its status bar) is built
        remove_unfinished_files(window.settings["export_folder"])
        # Again after the model's "Ready" line (which would otherwise replace them), appended to it.
        window.link.ready.connect(lambda info: QTimer.singleShot(0, lambda: self.show_notices(after=True)))

    # --- start-up ---------------------------------------------------------------------------------------------
    def show_notices(self, after: bool = False) -> None:
        """Say what opening the settings and the gallery had to do (a damaged file kept aside, a read-only
        folder...); a read-only gallery is also named in the title bar for as long as the window is open."""
        store = self.window.store
        notices = [n for n in (self.window.settings.notice, store.notice) if n]
        if store.read_only and "read-only" not in self.window.windowTitle():
            self.window.setWindowTitle(f"{self.window.windowTitle()} (read-only gallery)")
        if notices:
            current = self.window.statusBar().currentMessage() if after else ""
            self.window.show_message(" ".join([current, *notices]).strip(), 0)

    # --- open ------------------------------------------------------------------------------------------------
    def open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window,
            "Open an exported image or any picture",
            self.start_folder(),
            "Images (" + " ".join("*" + suffix for suffix in PICTURE_SUFFIXES) + ")",
        )
        if path:
            self.window.open_file(path)

    def start_folder(self) -> str:
        """Where a file dialog opens: the folder last exported to while it exists, else the user's pictures folder
        (their home without one), never the folder the app happened to be started from."""
        saved = self.window.settings["export_folder"]
        if saved and Path(saved).is_dir():
            return saved
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        return pictures if pictures and Path(pictures).is_dir() else str(Path.home())

    # --- export ----------------------------------------------------------------------------------------------
    def export_items(self, item_ids: list[int]) -> None:
        ids = list(item_ids)
        if not ids:
            self.window.show_message("Select images in the gallery to export.")
            return
        dialog = ExportDialog(self.window.settings, len(ids), self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.start_export(ids, dialog.folder(), dialog.options())

    def export_preview(self) -> None:
        picture = self.window.controller.picture_of_preview()
        if picture is None:
            self.window.show_message("There is no preview to export yet.")
            return
        dialog = ExportDialog(self.window.settings, 1, self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.start_file_job(self._export_preview(picture, dialog.folder(), dialog.options()))

    async def _export_preview(self, picture: Picture, folder: str | Path, options: object):
        """Write the preview; a CPU live preview (one row alone) is first rendered the stored way, so the
        file holds exactly the pixels ``generate --from`` gives back."""
        if not picture.exact:
            results = await self.window.link.render_all([picture.request])
            if not results or not results[0].ok:
                self.window.show_message(
                    results[0].error if results else "The preview could not be rendered."
                )
                return None
            done = results[0]
            picture = Picture(done.image, done.request, done.model_hash, done.device, done.exact)
        return await self._export_files([self._picture_step(picture, folder, options)], 1)

    def start_export(
        self, item_ids: Sequence[int], folder: str | Path, options: object
    ) -> asyncio.Task | None:
        """Export gallery items on the files worker; returns the job's task (None if one is running)."""
        steps = [self._item_step(item_id, folder, options, index) for index, item_id in enumerate(item_ids)]
        return self.start_file_job(self._export_files(steps, len(steps)))

    def _item_step(self, item_id: int, folder: str | Path, options: object, index: int) -> FileStep:
        def step():
            store = self.window.store
            item, png = store.item(item_id), store.png(item_id)
            if item is None or png is None:
                return None  # deleted meanwhile
            return lambda: export_stored(png, item, folder, options, index)

        return step

    @staticmethod
    def _picture_step(picture: Picture, folder: str | Path, options: object) -> FileStep:
        return lambda: lambda: export_pictures([picture], folder, options)[0]

    async def _export_files(self, steps: Sequence[FileStep], total: int) -> list[Path]:
        written: list[Path] = []
        failure = None
        try:
            await self._write_files("Exporting", steps, written)
        except Exception as exc:  # noqa: BLE001 - ExportError / OSError: one sentence, files so far kept
            log.warning("export failed", exc_info=True)
            failure = str(exc)
        self.window.settings.save()
        noun = "image" if total == 1 else "images"
        where = f" to {written[0].parent}" if written else ""
        if failure is not None and not written:
            self.window.show_message(f"Nothing was exported: {failure}", 0)
        elif failure is not None:
            self.window.show_message(f"Exported {len(written)} of {total} {noun}{where}; then: {failure}", 0)
        elif self._cancel_requested:
            self.window.show_message(
                f"Export stopped after {len(written)} of {total} {noun}{where}; those files are kept."
            )
        else:
            self.window.show_message(
                f"Exported {len(written)} {'image' if len(written) == 1 else 'images'}{where}."
            )
        return written

    async def _write_files(self, what: str, steps: Sequence[FileStep], written: list[Path]) -> None:
        """Run ``steps`` one by one on the files worker, moving the progress bar; stops early on Cancel."""
        self._show_progress(what, 0, len(steps))
        for done, step in enumerate(steps, 1):
            if self._cancel_requested:
                return
            work = step()
            if work is not None:
                written.append(await self._in_files_worker(work))
            self._show_progress(what, done, len(steps))

    async def _in_files_worker(self, work: Callable[[], object]) -> object:
        self._in_worker = True
        try:
            return await asyncio.wrap_future(files_worker().submit(work))
        finally:
            self._in_worker = False

    # --- file jobs: progress and cancel ------------------------------------------------------------------------
    def start_file_job(self, coroutine) -> asyncio.Task | None:
        """Run a file job (one at a time); its progress bar and Cancel button show while it runs."""
        if self.job is not None and not self.job.done():
            coroutine.close()
            self.window.show_message("Another export is still running; cancel it or wait until it ends.")
            return None
        self._cancel_requested = False
        self._show_progress("Starting", 0, 0)
        self.job = self.window.link.spawn(coroutine)
        self.job.add_done_callback(lambda task: self._hide_progress())
        return self.job

    def cancel_job(self) -> None:
        """Stop the running file job before its next file (a file being written is finished, never cut)."""
        if self.job is None or self.job.done():
            return
        self._cancel_requested = True
        if not self._in_worker:
            self.job.cancel()  # waiting on the engine (rendering frames): stop that at once

    def _show_progress(self, what: str, done: int, total: int) -> None:
        self.job_progress.setRange(0, max(total, 0))
        self.job_progress.setValue(done)
        self.job_progress.setFormat(f"{what} %v/%m" if total else what)
        self.job_progress.setVisible(True)
        self.job_cancel.setVisible(True)

    def _hide_progress(self) -> None:
        self.job_progress.setVisible(False)
        self.job_cancel.setVisible(False)

    # --- animation ---------------------------------------------------------------------------------------------
    def export_animation(self, frames: int, fps: float, mode: str) -> None:
        state = self.window.state
        if state.slot_a is None or state.slot_b is None or not self.window.link.is_ready:
            return
        try:
            from studio.io.animation import animation_formats, interpolation_stem
        except ImportError:
            self.window.show_message("Animation export needs the studio.io package.")
            return
        labels = {
            "gif": "GIF (*.gif)",
            "webp": "Animated WebP (*.webp)",
            "mp4": "MP4 video (*.mp4)",
            "frames": "Folder of PNG frames (*)",
        }
        kinds = [k for k in animation_formats() if k in labels]
        suggested = (
            Path(self.start_folder())
            / f"{interpolation_stem(state.slot_a.request, state.slot_b.request)}.{kinds[0]}"
        )
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Export animation", str(suggested), ";;".join(labels[k] for k in kinds)
        )
        if not path:
            return
        self.window.settings.set("export_folder", str(Path(path).parent))  # the next dialog opens here
        suffix = next((f".{k}" for k, label in labels.items() if label == chosen and k != "frames"), "")
        if suffix and not path.lower().endswith(suffix):
            path += suffix  # the dialog does not always add the chosen type's extension
        requests = [state.interpolation_request(i / (frames - 1)) for i in range(frames)]
        self.start_file_job(self.write_animation(requests, path, fps, mode))

    async def write_animation(self, requests, path: str, fps: float, mode: str):
        """Render the frames through the engine, then encode them on the files worker; returns the path."""
        from studio.io.animation import AnimationOptions, save_results_animation

        self._show_progress(f"Rendering {len(requests)} frames", 0, 0)
        self.window.show_message(f"Rendering {len(requests)} frames…", 0)
        try:
            results = await self.window.link.render_all(requests)
        except asyncio.CancelledError:
            self.window.show_message("Animation export cancelled; nothing was written.")
            raise
        if self._cancel_requested:
            self.window.show_message("Animation export cancelled; nothing was written.")
            return None
        self._show_progress("Encoding", 0, 0)
        settings = self.window.settings  # the export dialog's scale and resampling apply to animations too
        options = AnimationOptions(
            fps=fps,
            pingpong=mode == "ping-pong",
            scale=int(settings["export_scale"]),
            resample=settings["export_resample"],
        )
        try:
            written = await self._in_files_worker(
                lambda: save_results_animation(results, path, options, mode="interpolate")
            )
        except Exception as exc:  # noqa: BLE001 - ExportError / OSError
            log.warning("animation export failed", exc_info=True)
            self.window.show_message(str(exc))
            return None
        self.window.show_message(f"Wrote {written}.")
        return written

    # --- delete / undo ---------------------------------------------------------------------------------------
    def deleted(self, item_ids: list[int]) -> None:
        ids = list(item_ids)
        images = f"{len(ids)} image{'s' if len(ids) != 1 else ''}"
        self.window.undo_stack.push(f"the delete of {images}", lambda: self._undo_delete(ids))
        self.window.show_message(f"Deleted {images}. Undo with Ctrl+Z.", 15000)

    def _undo_delete(self, ids: list[int]) -> None:
        try:
            self.window.gallery.undo_delete(ids)
        except GalleryError as exc:  # full disk: nothing restored yet, and Undo stays available
            self.window.show_message(str(exc))
            raise UndoFailed from exc
