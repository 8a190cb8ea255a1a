"""What happens when the person acts: previews follow the session state, Generate streams into the gallery,
gallery and interpolation actions, restoring a dropped or pasted file. Panels talk to the state; this class
talks to the engine link, the store and the preview, so no panel calls another.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap

from studio.engine.info import model_mismatch
from studio.engine.requests import GenerationRequest, GenerationResult, RequestError
from studio.io.metadata import ForeignParameters
from studio.io.parameters_text import A1111, ParametersTextError, parse_parameters_text
from studio.session.gallery_store import GalleryError, GalleryStore
from studio.session.history import PromptHistory
from studio.session.progress import BatchRate
from studio.session.state import RANDOM_SEED_LIMIT, SEED_RANDOM, InterpolationSlot, SessionState
from studio.ui.engine_link import EngineLink
from studio.ui.exporting import Picture, read_request
from studio.ui.gallery_view import THUMB, GalleryView
from studio.ui.images import qimage_from_rgba
from studio.ui.preview_view import PreviewView
from studio.ui.undo import UndoFailed, UndoStack

log = logging.getLogger(__name__)

PROMPT_DEBOUNCE_MS = 220
THUMBNAIL_IDLE_MS = 150
EDIT_FIELDS = ("prompt", "truncation", "variety", "spread", "strength", "directions", "concepts", "seed")
PREVIEW_FIELDS = (
    "prompt",
    "truncation",
    "variety",
    "spread",
    "strength",
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
    batch_progress = Signal(int, int, bool, str)  # done, total, running, "12.5 img/s · about 3 s left"
    stats_changed = Signal()

    def __init__(
        self,
        state: SessionState,
        link: EngineLink,
        store: GalleryStore,
        history: PromptHistory,
        preview: PreviewView,
        gallery: GalleryView,
        undo: UndoStack,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.state, self.link, self.store, self.history = state, link, store, history
        self.preview, self.gallery, self.undo_stack = preview, gallery, undo
        self.last_preview: GenerationResult | None = None
        self.last_render_ms = 0.0
        self._batch_total = 0
        self._batch_done = 0
        self._batch_rate = BatchRate(0)
        self._batch_stored = 0
        self._store_error: str | None = None  # why images of this batch could not be stored
        self._restoring = False
        self._last_restored: dict | None = None  # the state a restore produced (browsing adds no undo steps)
        self._slot_pixmaps: dict[GenerationRequest, QPixmap] = {}  # what each slot showed when it was set
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
        self._batch_total, self._batch_done, self._batch_stored = total, 0, 0
        self._store_error = None
        self._batch_rate = BatchRate(total)
        self.batch_progress.emit(0, total, True, "")
        self.link.generate(request)

    def cancel(self) -> None:
        self.gallery.flush_incoming()  # everything already stored is shown, and stays
        if self.link.cancel():
            self.message.emit(
                f"Stopped after {self._batch_done} of {self._batch_total}; those images are kept."
            )

    def _on_batch_result(self, result: GenerationResult) -> None:
        self._batch_done += 1
        self._batch_rate.step()
        self.last_render_ms = result.render_ms
        if result.ok and result.image is not None:
            # Committed before it is shown (a crash keeps it); the thumbnail is made later, when idle.
            try:
                item_id = self.store.add(
                    result.request, result.image, result.model_hash, result.device, thumbnail=False
                )
            except GalleryError as exc:  # full disk, read-only gallery: stop, and say what was kept
                if self._store_error is None:
                    log.warning("stopping the batch: an image could not be stored", exc_info=True)
                    self._store_error = str(exc)
                    self.link.cancel()
                self.batch_progress.emit(
                    self._batch_done, self._batch_total, True, self._batch_rate.summary()
                )
                return
            self._batch_stored += 1
            thumb = qimage_from_rgba(result.image).scaled(
                THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self.gallery.gallery.remember_thumbnail(item_id, thumb)
            self.gallery.add_items([item_id])
        else:
            self.message.emit(result.error or "An image could not be rendered.")
        self.batch_progress.emit(self._batch_done, self._batch_total, True, self._batch_rate.summary())
        self.stats_changed.emit()

    def _on_batch_finished(self, finished: bool) -> None:
        self.gallery.flush_incoming()
        self.batch_progress.emit(self._batch_done, self._batch_total, False, "")
        self._thumbnailer.start()
        rate = self._batch_rate.rate
        at = f" at {rate:.1f} img/s" if rate else ""
        if self._store_error is not None:
            self.message.emit(f"Made {self._batch_stored} of {self._batch_total} images: {self._store_error}")
        elif finished:
            stored = self._batch_stored
            failed = self._batch_done - stored
            text = f"Made {stored} image{'s' if stored != 1 else ''}{at}."
            if failed:
                text = f"Made {stored} of {self._batch_total} images{at}; {failed} could not be rendered."
            self.message.emit(text)

    def _fill_thumbnails(self) -> None:
        """Store the thumbnails a batch skipped, a few per tick while nothing else runs."""
        if self.link.generating:
            return
        try:
            if self.store.fill_thumbnails(limit=4) == 0:
                self._thumbnailer.stop()
        except (sqlite3.Error, GalleryError):  # the store closed with the window, or cannot be written
            self._thumbnailer.stop()

    # --- gallery actions -----------------------------------------------------------------------------------------
    def show_item(self, item_id: int) -> None:
        """Show a gallery image and make its parameters the current ones (so sliders act on it)."""
        picture = self.gallery.gallery.picture(item_id)
        if picture is None:
            return
        self.preview.set_image(picture.image)
        replaced = self._restore_state(picture.request, f"showing {describe_request(picture.request)}")
        if replaced:
            self.message.emit(
                f"Showing {describe_request(picture.request)}; it replaced your setup ({replaced}). "
                "Ctrl+Z brings that back."
            )
        self.request_preview()

    def _restore_state(self, request: GenerationRequest, label: str) -> str:
        """Take a stored request as the current state without the edit rules (and without a typing delay).

        What it replaced goes on the undo stack (once per run of restores: browsing the gallery with the
        arrow keys keeps one step back to the person's own setup); returns a description of it, or ''.
        """
        before = self.state.snapshot()
        self._apply_state(lambda: self.state.restore(request))
        after = self.state.snapshot()
        replaced = ""
        if before != after and before != self._last_restored:
            self.undo_stack.push(label, lambda: self._bring_back(before))
            replaced = describe_replaced(before, after)
        self._last_restored = after
        return replaced

    def _apply_state(self, change) -> None:
        self._restoring = True
        try:
            change()
        finally:
            self._restoring = False
        self._debounce.stop()
        self.link.nearest(self.state.prompt)

    def _bring_back(self, snapshot: dict) -> None:
        self._apply_state(lambda: self.state.update(**snapshot))
        self._last_restored = None
        self.request_preview()

    def undo(self) -> None:
        """Ctrl+Z outside text fields: take back the newest restore, delete or slider reset."""
        try:
            label = self.undo_stack.undo()
        except UndoFailed:
            return  # it said why; the entry stays for another try
        self.message.emit(f"Undid {label}." if label else "There is nothing to undo.")

    def reset_sliders(self, default_truncation: float | None) -> None:
        """Every slider back to 0 (and truncation to the model's default), undoable."""
        before = self.state.snapshot()
        self.state.reset_sliders(default_truncation)
        if self.state.snapshot() != before:
            self.undo_stack.push("the slider reset", lambda: self._bring_back(before))
            self.message.emit("Sliders reset; Ctrl+Z brings them back.")

    def set_slot_from_item(self, item_id: int, which: str) -> None:
        item = self.gallery.gallery.item(item_id)
        if item is not None:
            self._set_slot(which, item.request, self.gallery.gallery.thumbnail(item_id))

    def set_slot_from_preview(self, which: str) -> None:
        if self.last_preview is None:
            self.message.emit("There is no preview yet to use as " + which.upper() + ".")
            return
        request = self.last_preview.request
        pixmap = QPixmap.fromImage(qimage_from_rgba(self.last_preview.image))
        if request.interpolate_to is not None:  # a frame of an interpolation is not a slot; use its start
            request = replace(request, interpolate_to=None, t=0.0)
            pixmap = None
        self._set_slot(which, request, pixmap)

    def _set_slot(self, which: str, request: GenerationRequest, pixmap: QPixmap | None = None) -> None:
        slot = InterpolationSlot(replace(request, count=1))
        if pixmap is not None:
            self._slot_pixmaps[slot.request] = pixmap
        self.state.update(**{f"slot_{which}": slot})
        if self.state.slot_a is not None and self.state.slot_b is not None:
            self.state.update(preview_mode="interpolation")

    def slot_pixmap(self, which: str) -> QPixmap | None:
        slot = self.state.slot_a if which == "a" else self.state.slot_b
        if slot is None:
            return None
        if slot.request in self._slot_pixmaps:
            return self._slot_pixmaps[slot.request]
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
        self._restore_state(item.request, f"“more like” {describe_request(item.request)}")
        self.state.update(
            seed=random.randint(0, RANDOM_SEED_LIMIT)
        )  # restore fixed the mode: this seed is used
        self.generate()

    def picture_of_preview(self) -> Picture | None:
        result = self.last_preview
        if result is None or result.image is None:
            return None
        return Picture(result.image, result.request, result.model_hash, result.device, result.exact)

    # --- restore ---------------------------------------------------------------------------------------------
    def restore_file(self, path: str | Path) -> bool:
        """Restore prompt, seed, sliders and interpolation from an exported file and re-render it."""
        name = Path(path).name
        try:
            request, model_hash = read_request(path)
        except ForeignParameters as exc:  # e.g. an AUTOMATIC1111 PNG: import what maps
            restored = self.restore_text(exc.text, name)
            return restored if restored is not None else self._say(str(exc))
        except ValueError as exc:
            return self._say(str(exc))
        return self.restore_request(request, model_hash, f"the parameters of {name}")

    def restore_text(self, text: str, source: str = "") -> bool | None:
        """Restore from parameters text (this studio's or A1111's); None when ``text`` is not parameters."""
        try:
            imported = parse_parameters_text(text, self.state.model)
        except ParametersTextError as exc:
            return self._say(f"The parameters{' in ' + source if source else ''} cannot be used: {exc}")
        if imported is None:
            return None
        request = imported.request
        if imported.tool == A1111:  # only prompt and seed carry over; the person's own settings stay
            s = self.state
            request = replace(request, truncation=s.truncation, variety=s.variety, spread=s.spread, strength=s.strength,
                              directions=s.preview_request().directions, concepts=s.concepts)  # fmt: skip
            what = f"the prompt and seed of {source or 'the pasted AUTOMATIC1111 parameters'}"
        else:
            what = f"the parameters of {source}" if source else "the pasted parameters"
        return self.restore_request(request, imported.model_hash, what, imported.ignored_sentence())

    def restore_request(
        self, request: GenerationRequest, model_hash: str = "", source: str = "", note: str = ""
    ) -> bool:
        """Make ``request`` the current state (undoable). ``source`` names it: "the pasted parameters"."""
        source = source or "the parameters"
        info = self.link.info
        mismatch = None
        if info is not None:
            mismatch = model_mismatch(
                request.model,
                model_hash,
                info.model_name,
                info.model_hash,
                source[:1].upper() + source[1:] if source.startswith("the ") else source,
            )
        if mismatch is not None and mismatch.other_model:
            return self._say(mismatch.sentence)
        replaced = self._restore_state(replace(request, model=self.state.model), f"restoring {source}")
        undo_hint = " Ctrl+Z brings back your previous setup." if replaced else ""
        if mismatch is not None:
            self.message.emit(f"Restored. {mismatch.sentence}{undo_hint}")
        else:
            self.message.emit(f"Restored {source}.{' ' + note if note else ''}{undo_hint}")
        self.request_preview()
        return True

    def _say(self, sentence: str) -> bool:
        self.message.emit(sentence)
        return False


def describe_request(request: GenerationRequest) -> str:
    """'“red apple” · seed 36' — how the status bar names a picture."""
    return _named(request.prompt, request.seed)


def _named(prompt: str, seed: int) -> str:
    prompt = prompt.strip()
    return f"“{prompt if len(prompt) <= 40 else prompt[:39] + '…'}” · seed {seed}"


def describe_replaced(before: dict, after: dict) -> str:
    """What a restore replaced, in a few words: '“apple” · seed 5, random seeds, 1 slider moved'."""
    parts = [_named(before["prompt"], before["seed"])]
    if before["seed_mode"] == SEED_RANDOM and after["seed_mode"] != SEED_RANDOM:
        parts.append("random seeds")
    if (before["directions"], before["concepts"]) != (after["directions"], after["concepts"]):
        moved = len(before["directions"]) + sum(1 for c in before["concepts"] if c.scale != 0.0)
        if moved:
            parts.append(f"{moved} slider{'s' if moved != 1 else ''} moved")
    if (before["slot_a"], before["slot_b"]) != (after["slot_a"], after["slot_b"]):
        parts.append("interpolation A/B")
    elif before["preview_mode"] == "interpolation" and after["preview_mode"] != "interpolation":
        parts.append(f"the interpolation at t = {before['t']:.2f}")
    return ", ".join(parts)
