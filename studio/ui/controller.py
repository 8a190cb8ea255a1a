"""What happens when the person acts: previews follow the session state, Generate streams into the gallery,
gallery and interpolation actions, restoring a dropped or pasted file. Panels talk to the state; this class
talks to the engine link, the store and the preview, so no panel calls another.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap

from studio.engine.requests import GenerationRequest, GenerationResult, RequestError
from studio.session.gallery_store import GalleryStore
from studio.session.history import PromptHistory
from studio.session.state import RANDOM_SEED_LIMIT, InterpolationSlot, SessionState
from studio.ui.engine_link import EngineLink
from studio.ui.exporting import Picture, read_request
from studio.ui.gallery_view import THUMB, GalleryView
from studio.ui.images import qimage_from_rgba
from studio.ui.preview_view import PreviewView

PROMPT_DEBOUNCE_MS = 220
THUMBNAIL_IDLE_MS = 150
EDIT_FIELDS = ("prompt", "truncation", "directions", "concepts", "seed")
PREVIEW_FIELDS = (
    "prompt",
    "truncation",
    "directions",
    "concepts",
    "slot_a",
    "slot_b",
    "t",
    "preview_mode",
    "seed",
    "latent",
)


class StudioController(QObject):
    message = Signal(str)  # a sentence for the status bar
    batch_progress = Signal(int, int, bool)  # done, total, running
    stats_changed = Signal()

    def __init__(
        self,
        state: SessionState,
        link: EngineLink,
        store: GalleryStore,
        history: PromptHistory,
        preview: PreviewView,
        gallery: GalleryView,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.state, self.link, self.store, self.history = state, link, store, history
        self.preview, self.gallery = preview, gallery
        self.last_preview: GenerationResult | None = None
        self.last_render_ms = 0.0
        self._batch_total = 0
        self._batch_done = 0
        self._restoring = False
        self._debounce = QTimer(self, singleShot=True, interval=PROMPT_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._prompt_settled)
        self._thumbnailer = QTimer(self, interval=THUMBNAIL_IDLE_MS)
        self._thumbnailer.timeout.connect(self._fill_thumbnails)
        self._thumbnailer.start()  # catches up on any a crash left unmade
        state.subscribe(self._on_state_changed)
        link.preview_ready.connect(self._show_preview)
        link.batch_result.connect(self._on_batch_result)
        link.batch_finished.connect(self._on_batch_finished)
        link.ready.connect(lambda info: self.request_preview())
        gallery.show_requested.connect(self.show_item)
        gallery.slot_requested.connect(self.set_slot_from_item)
        gallery.more_like_requested.connect(self.more_like)

    @property
    def prompt_pending(self) -> bool:
        """True while typing has not yet settled into a preview request."""
        return self._debounce.isActive()

    # --- previews ------------------------------------------------------------------------------------------------
    def _on_state_changed(self, name: str, value: object) -> None:
        if self._restoring or name not in PREVIEW_FIELDS:
            return
        if name in EDIT_FIELDS and self.state.preview_mode != "single":
            # Editing the picture's own inputs leaves the interpolation; that change requests the preview.
            self.state.update(preview_mode="single")
            if name != "prompt":
                return
        if name == "prompt":
            self._debounce.start()  # typing: wait until the person pauses
        else:
            self.request_preview()

    def _prompt_settled(self) -> None:
        self.request_preview()
        self.link.nearest(self.state.prompt)

    def request_preview(self) -> None:
        """Ask for the preview of the current state (the engine keeps only the newest request)."""
        if self.link.error:
            return
        request = self.state.preview_request()
        if not request.prompt.strip():
            self.preview.set_message("Type a prompt to see a picture.")
            return
        try:
            request.validated()
        except RequestError as exc:
            self.preview.set_error(str(exc))
            return
        if self.link.is_ready:
            self.preview.set_busy(True)
        self.link.preview(request)

    def _show_preview(self, result: GenerationResult) -> None:
        self.last_render_ms = result.render_ms
        if result.ok and result.image is not None:
            self.last_preview = result
            self.preview.set_image(result.image)
            self.preview.set_busy(self.link.previews_pending)
        else:
            self.preview.set_error(result.error or "The picture could not be rendered.")
        self.stats_changed.emit()

    # --- batches -------------------------------------------------------------------------------------------------
    def generate(self) -> None:
        """Generate ``count`` images from the current prompt into the gallery."""
        if not self.link.is_ready:
            self.message.emit(
                self.link.error or "The model is still loading; Generate works once it is ready."
            )
            return
        self.state.next_seed()
        request = self.state.generation_request()
        try:
            request.validated()
        except RequestError as exc:
            self.preview.set_error(str(exc))
            self.message.emit(str(exc))
            return
        self.history.add(request.prompt)
        self._start_batch(request, request.count)

    def generate_frames(self, count: int) -> None:
        """Render ``count`` interpolation frames A→B into the gallery."""
        if not self.link.is_ready or self.state.slot_a is None or self.state.slot_b is None:
            return
        frames = [self.state.interpolation_request(i / (count - 1)) for i in range(count)]
        self._start_batch(frames, count)

    def _start_batch(self, request, total: int) -> None:
        self._batch_total, self._batch_done = total, 0
        self.batch_progress.emit(0, total, True)
        self.link.generate(request)

    def cancel(self) -> None:
        self.gallery.flush_incoming()  # everything already stored is shown, and stays
        if self.link.cancel():
            self.message.emit(
                f"Stopped after {self._batch_done} of {self._batch_total}; those images are kept."
            )

    def _on_batch_result(self, result: GenerationResult) -> None:
        self._batch_done += 1
        self.last_render_ms = result.render_ms
        if result.ok and result.image is not None:
            # Committed before it is shown (a crash keeps it); the thumbnail is made later, when idle.
            item_id = self.store.add(
                result.request, result.image, result.model_hash, result.device, thumbnail=False
            )
            thumb = qimage_from_rgba(result.image).scaled(
                THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self.gallery.gallery.remember_thumbnail(item_id, thumb)
            self.gallery.add_items([item_id])
        else:
            self.message.emit(result.error or "An image could not be rendered.")
        self.batch_progress.emit(self._batch_done, self._batch_total, True)
        self.stats_changed.emit()

    def _on_batch_finished(self, finished: bool) -> None:
        self.gallery.flush_incoming()
        self.batch_progress.emit(self._batch_done, self._batch_total, False)
        self._thumbnailer.start()
        if finished:
            self.message.emit(f"Made {self._batch_done} image{'s' if self._batch_done != 1 else ''}.")

    def _fill_thumbnails(self) -> None:
        """Store the thumbnails a batch skipped, a few per tick while nothing else runs."""
        if self.link.generating:
            return
        try:
            if self.store.fill_thumbnails(limit=4) == 0:
                self._thumbnailer.stop()
        except sqlite3.Error:  # the store closed with the window
            self._thumbnailer.stop()

    # --- gallery actions -----------------------------------------------------------------------------------------
    def show_item(self, item_id: int) -> None:
        """Show a gallery image and make its parameters the current ones (so sliders act on it)."""
        picture = self.gallery.gallery.picture(item_id)
        if picture is None:
            return
        self.preview.set_image(picture.image)
        self._restore_state(picture.request)
        self.request_preview()

    def _restore_state(self, request: GenerationRequest) -> None:
        """Take a stored request as the current state without the edit rules (and without a typing delay)."""
        self._restoring = True
        try:
            self.state.restore(request)
        finally:
            self._restoring = False
        self._debounce.stop()
        self.link.nearest(self.state.prompt)

    def set_slot_from_item(self, item_id: int, which: str) -> None:
        item = self.gallery.gallery.item(item_id)
        if item is not None:
            self._set_slot(which, item.request)

    def set_slot_from_preview(self, which: str) -> None:
        if self.last_preview is None:
            self.message.emit("There is no preview yet to use as " + which.upper() + ".")
            return
        request = self.last_preview.request
        if request.interpolate_to is not None:  # a frame of an interpolation is not a slot; use its start
            request = replace(request, interpolate_to=None, t=0.0)
        self._set_slot(which, request)

    def _set_slot(self, which: str, request: GenerationRequest) -> None:
        slot = InterpolationSlot(replace(request, count=1))
        self.state.update(**{f"slot_{which}": slot})
        if self.state.slot_a is not None and self.state.slot_b is not None:
            self.state.update(preview_mode="interpolation")

    def slot_pixmap(self, which: str) -> QPixmap | None:
        slot = self.state.slot_a if which == "a" else self.state.slot_b
        if slot is None:
            return None
        for item_id in reversed(self.gallery.gallery.ids[-2000:]):
            item = self.gallery.gallery.item(item_id)
            if item is not None and item.request == slot.request:
                return self.gallery.gallery.thumbnail(item_id)
        if self.last_preview is not None and self.last_preview.request == slot.request:
            return QPixmap.fromImage(qimage_from_rgba(self.last_preview.image))
        return None

    def more_like(self, item_id: int) -> None:
        """Same prompt and sliders, new seeds."""
        item = self.gallery.gallery.item(item_id)
        if item is None:
            return
        self._restore_state(item.request)
        self.state.update(
            seed=random.randint(0, RANDOM_SEED_LIMIT)
        )  # restore fixed the mode: this seed is used
        self.generate()

    def picture_of_preview(self) -> Picture | None:
        result = self.last_preview
        if result is None or result.image is None:
            return None
        return Picture(result.image, result.request, result.model_hash, result.device)

    # --- restore -------------------------------------------------------------------------------------------------
    def restore_file(self, path: str | Path) -> bool:
        """Restore prompt, seed, sliders and interpolation from an exported file and re-render it."""
        try:
            request, model_hash = read_request(path)
        except ValueError as exc:
            self.message.emit(str(exc))
            return False
        return self.restore_request(request, model_hash, Path(path).name)

    def restore_request(self, request: GenerationRequest, model_hash: str = "", source: str = "") -> bool:
        info = self.link.info
        if info is not None and request.model != info.model_name:
            needs = f"{request.model}" + (f" (hash {model_hash})" if model_hash else "")
            self.message.emit(
                f"{source or 'These parameters'} were made with the model {needs}, but {info.model_name} is loaded; "
                "open the studio with that model to restore it exactly."
            )
            return False
        self._restore_state(replace(request, model=self.state.model))
        if info is not None and model_hash and model_hash != info.model_hash:
            self.message.emit(
                f"Restored; note the file was made with a different build of {info.model_name} "
                f"(hash {model_hash}, loaded {info.model_hash}), so pixels may differ."
            )
        else:
            self.message.emit(f"Restored the parameters{' of ' + source if source else ''}.")
        self.request_preview()
        return True
