"""The gallery: a virtualised icon list over the SQLite store, thumbnails decoded lazily and cached.

The model holds only the list of ids; row data is read from the store a page at a time when a row is first
painted, and thumbnails are decoded on first paint and kept in an LRU cache, so 10,000 items open at once.
Per-item actions live in the context menu; keyboard: arrows, Enter (show), Delete, Ctrl+C, Ctrl+Shift+C.
"""

from __future__ import annotations

import bisect
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QGuiApplication, QImage, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QMenu, QStyle, QStyledItemDelegate, QWidget

from studio.session.gallery_store import GalleryError, GalleryItem, GalleryStore, decode_png
from studio.ui import theme
from studio.ui.exporting import PARAMETERS_MIME, Picture, drag_mime_data, parameters_json, parameters_text
from studio.ui.images import qimage_from_png, qimage_from_rgba

ID_ROLE = Qt.ItemDataRole.UserRole + 1
STARRED_ROLE = Qt.ItemDataRole.UserRole + 2
CELL = 104
THUMB = 96
PAGE = 200
ROW_CACHE_LIMIT = 5000
THUMB_CACHE_LIMIT = 2000
APPEND_INTERVAL_MS = 80  # newly made items appear in groups at ~12 Hz while a batch streams
PENDING_LIMIT = 120  # about two pages of a large gallery
DECODE_SLICE_S = 0.006  # longest stretch of thumbnail decoding before the UI gets a turn


class GalleryModel(QAbstractListModel):
    def __init__(self, store: GalleryStore, parent=None):
        super().__init__(parent)
        self.store = store
        self._ids: list[int] = store.ids()
        self._starred: set[int] = store.starred_ids()  # the delegate paints stars without reading rows
        self._rows: dict[int, GalleryItem] = {}
        self._thumbs: OrderedDict[int, QPixmap] = OrderedDict()
        self._pending: OrderedDict[int, None] = OrderedDict()  # ids whose thumbnails painting asked for
        self._decoder = QTimer(self, singleShot=True, interval=0)
        self._decoder.timeout.connect(self._decode_pending)

    # --- Qt model ------------------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._ids)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._ids):
            return None
        item_id = self._ids[index.row()]
        if role == ID_ROLE:
            return item_id
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(item_id)
        if role == STARRED_ROLE:
            return item_id in self._starred
        if role == Qt.ItemDataRole.ToolTipRole:
            item = self.item_at(index.row())
            return f"{item.prompt}\n{_origin(item)}" + (" · ★" if item.starred else "") if item else None
        if role == Qt.ItemDataRole.AccessibleTextRole:
            item = self.item_at(index.row())
            return f"{item.prompt}, seed {item.seed}" if item else None
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return ["text/uri-list", "image/png", PARAMETERS_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:  # noqa: N802
        """Dragged items become PNG files (with parameters) that a file manager can drop."""
        entries = []
        for item_id in [self._ids[i.row()] for i in indexes if i.isValid()]:
            item, png = self.item(item_id), self.store.png(item_id)
            if item is not None and png is not None:
                entries.append((png, item, f"{item.request.prompt[:40]}_{item.request.seed}_{item_id}"))
        return drag_mime_data(entries)

    # --- lookups -------------------------------------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return list(self._ids)

    def id_at(self, row: int) -> int:
        return self._ids[row]

    def is_starred(self, item_id: int) -> bool:
        return item_id in self._starred

    def row_of(self, item_id: int) -> int:
        """The row of an id, or -1 (ids are kept in ascending order: rows are oldest first)."""
        row = bisect.bisect_left(self._ids, item_id)
        return row if row < len(self._ids) and self._ids[row] == item_id else -1

    def item_at(self, row: int) -> GalleryItem | None:
        item_id = self._ids[row]
        if item_id not in self._rows:
            if len(self._rows) > ROW_CACHE_LIMIT:
                self._rows.clear()
            start = max(0, row - PAGE // 4)
            try:
                self._rows.update(self.store.items(self._ids[start : start + PAGE]))
            except sqlite3.Error:
                return None
        return self._rows.get(item_id)

    def item(self, item_id: int) -> GalleryItem | None:
        row = self.row_of(item_id)
        return self.item_at(row) if row >= 0 else self.store.item(item_id)

    def thumbnail(self, item_id: int) -> QPixmap | None:
        pixmap = self._thumbs.get(item_id)
        if pixmap is not None:
            self._thumbs.move_to_end(item_id)
            return pixmap
        try:
            data = self.store.thumbnail(item_id)
            if data is None:  # not made yet (fill_thumbnails catches up): scale the full image
                data = self.store.png(item_id)
                if data is None:
                    return None
                image = qimage_from_png(data).scaled(
                    THUMB,
                    THUMB,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            else:
                image = qimage_from_png(data)
        except sqlite3.Error:  # the store was closed under a late repaint (window closing)
            return None
        self.remember_thumbnail(item_id, image)
        return self._thumbs[item_id]

    def thumbnail_soon(self, item_id: int) -> QPixmap | None:
        """The cached thumbnail, or None after queueing it for decoding on a later turn of the event loop.

        Painting never decodes: a page of new rows fills in over the next few frames, in slices of at most
        DECODE_SLICE_S, so scrolling a large gallery stays smooth.
        """
        pixmap = self._thumbs.get(item_id)
        if pixmap is not None:
            self._thumbs.move_to_end(item_id)
            return pixmap
        self._pending[item_id] = None
        self._pending.move_to_end(item_id)
        while len(self._pending) > PENDING_LIMIT:  # rows scrolled past long ago: re-queued if painted again
            self._pending.popitem(last=False)
        if not self._decoder.isActive():
            self._decoder.start()
        return None

    @property
    def thumbnails_pending(self) -> int:
        return len(self._pending)

    def _decode_pending(self) -> None:
        started = time.perf_counter()
        rows = []
        while self._pending and time.perf_counter() - started < DECODE_SLICE_S:
            item_id, _ = self._pending.popitem(last=True)  # newest first: what is on screen now
            if item_id not in self._thumbs and self.thumbnail(item_id) is not None:
                rows.append(self.row_of(item_id))
        rows = [r for r in rows if r >= 0]
        if rows:
            self.dataChanged.emit(
                self.index(min(rows)), self.index(max(rows)), [Qt.ItemDataRole.DecorationRole]
            )
        if self._pending:
            self._decoder.start()

    def remember_thumbnail(self, item_id: int, image: QImage) -> None:
        """Cache a thumbnail made elsewhere (a fresh result), so painting it decodes nothing."""
        pixmap = QPixmap.fromImage(image)
        self._thumbs[item_id] = pixmap
        while len(self._thumbs) > THUMB_CACHE_LIMIT:
            self._thumbs.popitem(last=False)

    def picture(self, item_id: int) -> Picture | None:
        item = self.item(item_id)
        data = self.store.png(item_id)
        if item is None or data is None:
            return None
        return Picture(decode_png(data), item.request, item.model_hash, item.device)

    # --- changes -------------------------------------------------------------------------------------------------
    def append(self, item_ids: Sequence[int]) -> None:
        if not item_ids:
            return
        first = len(self._ids)
        self.beginInsertRows(QModelIndex(), first, first + len(item_ids) - 1)
        self._ids.extend(item_ids)
        self.endInsertRows()

    def reload(self) -> None:
        self.beginResetModel()
        self._ids = self.store.ids()
        self._starred = self.store.starred_ids()
        self._rows.clear()
        self.endResetModel()

    def remove(self, item_ids: Sequence[int]) -> None:
        doomed = set(item_ids)
        for row in sorted((r for r, i in enumerate(self._ids) if i in doomed), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._ids[row]
            self.endRemoveRows()

    def set_starred(self, item_ids: Sequence[int], starred: bool) -> None:
        self.store.set_starred(item_ids, starred)
        (self._starred.update if starred else self._starred.difference_update)(item_ids)
        for item_id in item_ids:
            self._rows.pop(item_id, None)
            row = self.row_of(item_id)
            if row >= 0:
                self.dataChanged.emit(self.index(row), self.index(row))


class ThumbnailDelegate(QStyledItemDelegate):
    """A thumbnail on a checkerboard, crisp when scaled by a whole number, with a star badge."""

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        return QSize(CELL, CELL)

    def paint(self, painter: QPainter, option, index) -> None:
        c = theme.colors()
        rect: QRect = option.rect.adjusted(3, 3, -3, -3)
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(c["accent"] if selected else c["raised"]))
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.drawRoundedRect(option.rect.adjusted(1, 1, -1, -1), 6, 6)
        painter.fillRect(rect, theme.checker_tile())
        # Ask the Python model directly: index.data() round trips through QVariant on every paint, and with
        # PySide6 6.12 on Python 3.11 that path leaks references to None until the interpreter aborts.
        model = index.model()
        row = index.row()
        if not isinstance(model, GalleryModel) or row >= model.rowCount():
            painter.restore()
            return
        pixmap = model.thumbnail_soon(model.id_at(row))
        if pixmap is not None and not pixmap.isNull():
            side = min(rect.width(), rect.height())
            target = QRect(
                rect.x() + (rect.width() - side) // 2, rect.y() + (rect.height() - side) // 2, side, side
            )
            painter.drawPixmap(target, pixmap)
        if model.is_starred(model.id_at(row)):
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            theme.icon("star-filled", "#ffc940").paint(
                painter, QRect(rect.right() - 19, rect.top() + 3, 16, 16)
            )
        painter.restore()


class GalleryView(QListView):
    show_requested = Signal(int)
    slot_requested = Signal(int, str)  # id, "a" or "b"
    more_like_requested = Signal(int)
    export_requested = Signal(list)
    deleted = Signal(list)
    message = Signal(str)

    def __init__(self, store: GalleryStore, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Gallery")
        self.gallery = GalleryModel(store, self)
        self.setModel(self.gallery)
        self.setItemDelegate(ThumbnailDelegate(self))
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setGridSize(QSize(CELL, CELL))
        self.setSpacing(0)
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(CELL // 3)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._context_menu)
        self.activated.connect(lambda index: self.show_requested.emit(index.data(ID_ROLE)))
        self.clicked.connect(lambda index: self.show_requested.emit(index.data(ID_ROLE)))
        # Arrow keys browse: the current item follows into the preview.
        self.selectionModel().currentChanged.connect(self._current_changed)
        self._add_shortcuts()
        self._opened = False
        self._quiet_current = False
        self._incoming: list[int] = []
        self._follow = False
        self._append_timer = QTimer(self, singleShot=True, interval=APPEND_INTERVAL_MS)
        self._append_timer.timeout.connect(self.flush_incoming)
        # A person looking at the newest images keeps seeing them when the window is resized (rows re-wrap).
        self._at_newest = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(lambda value: setattr(self, "_at_newest", value >= bar.maximum()))
        bar.rangeChanged.connect(lambda low, high: bar.setValue(high) if self._at_newest else None)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._opened:  # open at the newest images, where a returning person left off
            self._opened = True
            QTimer.singleShot(0, self.scrollToBottom)

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid() and self.hasFocus() and not self._quiet_current:
            self.show_requested.emit(self.gallery.id_at(current.row()))

    def mousePressEvent(self, event) -> None:  # noqa: N802
        # A right press picks the item its menu is for, but does not load it into the editor: that would replace
        # the prompt and sliders someone is working on just to copy or export an image (the menu has "Show in preview").
        with self._quietly(event.button() == Qt.MouseButton.RightButton):
            super().mousePressEvent(event)

    def focusInEvent(self, event) -> None:  # noqa: N802
        # Focus from the keyboard makes the first item current and shows it (arrow keys browse from there); focus from
        # a click leaves that to the click, which shows the item under the pointer (left) or only picks it (right).
        with self._quietly(event.reason() == Qt.FocusReason.MouseFocusReason):
            super().focusInEvent(event)

    @contextmanager
    def _quietly(self, quiet: bool):
        """While inside, a change of the current item does not show it (when ``quiet``)."""
        self._quiet_current = quiet
        try:
            yield
        finally:
            self._quiet_current = False

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.gallery.rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(QColor(theme.colors()["muted"]))
            painter.drawText(
                self.viewport().rect(),
                int(Qt.AlignmentFlag.AlignCenter),
                "Generated images appear here. Type a prompt and press Ctrl+Enter.",
            )
            painter.end()

    def _add_shortcuts(self) -> None:
        for text, keys, slot in (  # the texts also name them in Help ▸ Keyboard and mouse
            ("Copy image", QKeySequence.StandardKey.Copy, self.copy_image),
            ("Copy parameters", QKeySequence("Ctrl+Shift+C"), self.copy_parameters),
            ("Delete selected images", QKeySequence.StandardKey.Delete, self.delete_selected),
            ("Star / unstar", QKeySequence("S"), self.toggle_star),
        ):
            action = QAction(text, self)
            action.setShortcut(keys)
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            action.triggered.connect(slot)
            self.addAction(action)

    # --- selection helpers ---------------------------------------------------------------------------------------
    def selected_ids(self) -> list[int]:
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        if not rows and self.currentIndex().isValid():
            rows = [self.currentIndex().row()]
        return [self.gallery.ids[r] for r in rows]

    def add_items(self, item_ids: Sequence[int], follow: bool = True) -> None:
        """Show newly stored items (already committed), at most APPEND_INTERVAL_MS after they arrive.

        A streaming batch appends in small groups rather than one repaint per image: each append scrolls
        and repaints the whole visible gallery, which would otherwise take most of the UI thread.
        """
        self._incoming.extend(item_ids)
        self._follow = self._follow or follow
        if not self._append_timer.isActive():
            self._append_timer.start()

    def flush_incoming(self) -> None:
        """Show every item still waiting to be appended (on cancel and at the end of a batch)."""
        self._append_timer.stop()
        if self._incoming:
            ids, self._incoming = self._incoming, []
            self.gallery.append(ids)
            if self._follow:
                self.scrollToBottom()
        self._follow = False

    # --- actions -------------------------------------------------------------------------------------------------
    def copy_image(self) -> None:
        ids = self.selected_ids()
        picture = self.gallery.picture(ids[0]) if ids else None
        if picture is None:
            return
        mime = QMimeData()
        mime.setImageData(qimage_from_rgba(picture.image))
        mime.setText(parameters_text(picture))
        mime.setData(PARAMETERS_MIME, parameters_json(picture).encode("utf-8"))
        QGuiApplication.clipboard().setMimeData(mime)
        self.message.emit("Copied the image.")

    def copy_parameters(self) -> None:
        ids = self.selected_ids()
        picture = self.gallery.picture(ids[0]) if ids else None
        if picture is None:
            return
        mime = QMimeData()
        mime.setText(parameters_text(picture))
        mime.setData(PARAMETERS_MIME, parameters_json(picture).encode("utf-8"))
        QGuiApplication.clipboard().setMimeData(mime)
        self.message.emit("Copied the parameters.")

    def toggle_star(self) -> None:
        ids = self.selected_ids()
        if ids:
            try:
                self.gallery.set_starred(ids, not self.gallery.is_starred(ids[0]))
            except GalleryError as exc:  # read-only gallery, full disk: nothing changed
                self.message.emit(str(exc))

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        row = self.gallery.row_of(ids[0])
        try:
            self.gallery.store.delete(ids)
        except GalleryError as exc:  # read-only gallery, full disk: nothing deleted
            self.message.emit(str(exc))
            return
        self.gallery.remove(ids)
        if self.gallery.rowCount():
            self.setCurrentIndex(self.gallery.index(min(row, self.gallery.rowCount() - 1)))
        self.deleted.emit(ids)

    def undo_delete(self, item_ids: Sequence[int]) -> None:
        self.gallery.store.undelete(item_ids)
        self._append_timer.stop()
        self._incoming = []  # the reload below reads them from the store
        self.gallery.reload()
        selection = self.selectionModel()
        for item_id in item_ids:
            row = self.gallery.row_of(item_id)
            if row >= 0:
                selection.select(self.gallery.index(row), selection.SelectionFlag.Select)
        if item_ids:
            self.scrollTo(self.gallery.index(max(0, self.gallery.row_of(item_ids[0]))))

    def _context_menu(self, position) -> None:
        index = self.indexAt(position)
        if not index.isValid():
            return
        if not self.selectionModel().isSelected(index):
            self.setCurrentIndex(index)
        item_id = index.data(ID_ROLE)
        menu = QMenu(self)
        entries = [
            ("Show in preview", "image", "Enter", lambda: self.show_requested.emit(item_id)),
            ("Use as interpolation A", "interpolate", "", lambda: self.slot_requested.emit(item_id, "a")),
            ("Use as interpolation B", "interpolate", "", lambda: self.slot_requested.emit(item_id, "b")),
            ("More like this", "generate", "", lambda: self.more_like_requested.emit(item_id)),
            None,
            ("Copy image", "copy", "Ctrl+C", self.copy_image),
            ("Copy parameters", "copy", "Ctrl+Shift+C", self.copy_parameters),
            ("Export…", "export", "Ctrl+E", lambda: self.export_requested.emit(self.selected_ids())),
            None,
            ("Unstar" if self.gallery.is_starred(item_id) else "Star", "star", "S", self.toggle_star),
            ("Delete", "delete", "Del", self.delete_selected),
        ]
        for entry in entries:
            if entry is None:
                menu.addSeparator()
                continue
            text, icon_name, keys, slot = entry
            action = menu.addAction(theme.icon(icon_name), text, slot)
            if keys:
                action.setShortcut(QKeySequence(keys))
        menu.exec(self.viewport().mapToGlobal(position))


def _origin(item) -> str:
    """ "seed N", or for an inverted picture the name of the file it came from (its link to the source)."""
    try:
        latent = item.request.latent if '"latent"' in item.request_json else None
    except ValueError:  # a damaged row still gets a tooltip
        latent = None
    if latent is None:
        return f"seed {item.seed}"
    return f"inverted from {latent.source}" if latent.source else "inverted from a pasted picture"
