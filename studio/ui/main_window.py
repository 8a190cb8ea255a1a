"""The studio window: prompt panel (left), live preview (centre), sliders and interpolation docks (right),
the gallery (bottom), a status bar with device, model, render time and preview FPS.

Built by :func:`create_main_window` from an engine or an engine factory, so tests inject a tiny model. The
window shows at once; the engine loads in the background while the preview shows progress, and a missing
or broken model is explained where the picture would be.
"""

from __future__ import annotations

import base64
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QStyle,
    QToolButton,
    QWidget,
)

from studio.session.gallery_store import GalleryStore
from studio.session.history import PromptHistory
from studio.session.settings import Settings
from studio.session.state import SessionState
from studio.ui import theme
from studio.ui.controller import StudioController
from studio.ui.dropping import IMAGE_SUFFIXES, DropHighlight, restore_from_mime
from studio.ui.engine_link import EngineLink
from studio.ui.exporting import PARAMETERS_MIME
from studio.ui.gallery_view import GalleryView
from studio.ui.help import ShortcutSheet, shortcut_rows, show_about
from studio.ui.interpolation_panel import InterpolationPanel
from studio.ui.inversion_flow import InversionFlow
from studio.ui.keys import WindowKeys
from studio.ui.preview_view import PreviewView
from studio.ui.prompt_panel import PromptPanel
from studio.ui.sliders_panel import SlidersPanel
from studio.ui.undo import UndoStack
from studio.ui.window_jobs import WindowJobs


class MainWindow(QMainWindow):
    def __init__(
        self,
        engine_source: Any,
        model_name: str = "emoji",
        settings: Settings | None = None,
        store: GalleryStore | None = None,
    ):
        super().__init__()
        self.setWindowTitle("GAN Studio")
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.store = store or GalleryStore()
        self.history = PromptHistory()
        s = self.settings
        self.state = SessionState(
            model=model_name,
            prompt=s["last_prompt"],
            seed=s["seed"],
            seed_mode=s["seed_mode"],
            count=s["count"],
        )
        self.model_name = model_name
        self.link = EngineLink(engine_source, self)
        self._build_widgets()
        self.undo_stack = UndoStack(self)
        self.controller = StudioController(
            self.state, self.link, self.store, self.history, self.preview, self.gallery, self.undo_stack, self
        )
        self.jobs = WindowJobs(self)
        self.drop_highlight = DropHighlight(self)
        self.keys = WindowKeys(self)
        self.inversion = InversionFlow(self)
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self.resize(1400, 900)
        self._restore_layout()
        self.inversion.dock.hide()  # a saved layout may show it; it belongs to a picture being inverted
        self.preview.set_message(f"Loading the model “{model_name}”…", busy=True)

    # --- building ------------------------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self._home_areas: dict[
            QDockWidget, Qt.DockWidgetArea
        ] = {}  # each dock's area in a new window (_dock)
        self.preview = PreviewView()
        self.preview.set_smooth(bool(self.settings["smooth_preview"]))
        self.setCentralWidget(self.preview)
        self.prompt_panel = PromptPanel(self.state, self.history)
        self.prompt_panel.setObjectName("Panel")
        self.sliders_panel = SlidersPanel(self.state)
        self.interpolation_panel = InterpolationPanel(self.state)
        self.interpolation_panel.frames_spin.setValue(int(self.settings["interpolation_frames"]))
        self.interpolation_panel.fps_spin.setValue(int(self.settings["interpolation_fps"]))
        self.interpolation_panel.set_mode(self.settings["interpolation_mode"])
        self.gallery = GalleryView(self.store)
        self.prompt_dock = self._dock(
            "Prompt", "PromptDock", self.prompt_panel, Qt.DockWidgetArea.LeftDockWidgetArea, scroll=True
        )
        self.sliders_dock = self._dock(
            "Sliders", "SlidersDock", self.sliders_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.interpolation_dock = self._dock(
            "Interpolation",
            "InterpolationDock",
            self.interpolation_panel,
            Qt.DockWidgetArea.LeftDockWidgetArea,
            scroll=True,
        )
        self.gallery_dock = self._dock(
            "Gallery", "GalleryDock", self.gallery, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._size_docks()

    def _size_docks(self) -> None:
        self.resizeDocks([self.prompt_dock, self.sliders_dock], [330, 360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.gallery_dock], [260], Qt.Orientation.Vertical)
        self.resizeDocks([self.prompt_dock, self.interpolation_dock], [520, 330], Qt.Orientation.Vertical)

    def reset_layout(self) -> None:
        """Every panel back where a new window has it: docked, shown, in its place and at its size (a panel
        floated off screen, closed or tabbed away is one menu item from home)."""
        inversion = self.inversion.dock  # shown on demand: only brought back from floating, below
        # in the order _dock made them, so each area stacks its panels as a new window does
        docks = [dock for dock in self._home_areas if dock is not inversion]
        for dock in docks:
            dock.setFloating(False)
            self.removeDockWidget(dock)
        for dock in docks:
            self.addDockWidget(self._home_areas[dock], dock)
            dock.show()
        if inversion.isFloating():
            inversion.setFloating(False)
        self._size_docks()
        self.show_message("The panels are back in their places.")

    def _dock(
        self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = False
    ) -> QDockWidget:
        """A dock for ``widget``; ``scroll``: inside a scroll area, so a short window (a laptop at 150% scaling)
        scrolls the panel instead of growing taller than the screen or drawing one dock over the next."""
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        self._home_areas[dock] = area  # where reset_layout puts it back
        if scroll:
            area_widget = QScrollArea(objectName="DockScroll", widgetResizable=True)
            area_widget.setFrameShape(QScrollArea.Shape.NoFrame)
            area_widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            area_widget.setWidget(widget)
            # only the height gives way: the panel keeps its width, plus room for the scroll bar
            bar = area_widget.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
            area_widget.setMinimumWidth(widget.minimumSizeHint().width() + bar)
            dock.setWidget(area_widget)
        else:
            dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _action(
        self, text: str, slot, keys: str | QKeySequence | None = None, icon: str = "", tip: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if keys is not None:
            action.setShortcut(QKeySequence(keys))
        if icon:
            theme.set_icon(action, icon)
        shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip or text} ({shortcut})" if shortcut else tip or text)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        c, j = self.controller, self.jobs
        self.generate_action = self._action("Generate", c.generate, "Ctrl+Return", "generate")
        self.generate_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])  # keypad
        # the shortcut reaches the window while the prompt's completion list is open, which would stay open over the panel
        self.generate_action.triggered.connect(self.prompt_panel.prompt_edit.hide_completions)
        self.cancel_action = self._action(
            "Cancel", self.cancel, "Esc", "stop", "Stop the inversion or the batch; images made stay"
        )
        self.seed_action = self._action("New seed", self.prompt_panel.roll_seed, "Ctrl+R", "dice")
        self.play_action = self._action(
            "Play / pause interpolation", self.interpolation_panel.toggle_playing, "Space", "play"
        )
        self.open_action = self._action(
            "Open image…",
            j.open_image,
            QKeySequence.StandardKey.Open,
            "open",
            "Restore the parameters stored in an exported image",
        )
        self.paste_action = self._action("Paste parameters", self.paste, QKeySequence.StandardKey.Paste)
        self.paste_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.export_action = self._action(
            "Export selected…", lambda: j.export_items(self.gallery.selected_ids()), "Ctrl+E", "export"
        )
        self.export_all_action = self._action(
            "Export all…", lambda: j.export_items(self.gallery.gallery.ids), "Ctrl+Shift+E"
        )
        self.export_preview_action = self._action("Export preview…", j.export_preview, "Ctrl+Alt+E")
        self.undo_action = self._action("Undo", c.undo, QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(False)
        self.smooth_action = self._action(
            "Smooth preview",
            self._toggle_smooth,
            "Ctrl+M",
            "pixels",
            "Smooth scaling instead of crisp whole-number zoom",
        )
        self.smooth_action.setCheckable(True)
        self.smooth_action.setChecked(self.preview.smooth)
        self.theme_action = self._action("Light theme", self._toggle_theme, "Ctrl+Shift+L", "theme")
        self.reset_layout_action = self._action(
            "Reset layout", self.reset_layout, tip="Every panel back where a new window has it"
        )
        self.theme_action.setCheckable(True)
        self.theme_action.setChecked(self.settings["theme"] == "light")
        self.quit_action = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.shortcuts_action = self._action(
            "Keyboard and mouse…", self.show_shortcuts, QKeySequence.StandardKey.HelpContents
        )
        self.about_action = self._action("About GAN Studio…", self.show_about)

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for action in (
            self.open_action,
            None,
            self.export_action,
            self.export_all_action,
            self.export_preview_action,
            None,
            self.quit_action,
        ):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.paste_action)
        gen_menu = bar.addMenu("&Generate")
        for action in (self.generate_action, self.cancel_action, self.seed_action, self.play_action):
            gen_menu.addAction(action)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.smooth_action)
        view_menu.addAction(self.theme_action)
        view_menu.addSeparator()
        for dock in (self.prompt_dock, self.sliders_dock, self.interpolation_dock, self.gallery_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.reset_layout_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)
        self.menus = [file_menu, edit_menu, gen_menu, view_menu, help_menu]

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.loading_bar = QProgressBar(maximumWidth=120, textVisible=False)
        self.loading_bar.setRange(0, 0)
        self.device_label = QLabel("Device: …")
        self.model_label = QLabel(f"Model: {self.model_name}")
        self.render_label = QLabel("Render: – ms")
        self.fps_label = QLabel("Preview: – fps")
        self.undo_button = QToolButton(text="Undo", toolTip="Undo (Ctrl+Z)")
        self.undo_button.setVisible(False)
        self.undo_button.clicked.connect(self.controller.undo)
        for widget in (
            self.undo_button,
            self.loading_bar,
            self.device_label,
            self.model_label,
            self.render_label,
            self.fps_label,
        ):
            bar.addPermanentWidget(widget)
        self._fps_timer = QTimer(self, interval=500)
        self._fps_timer.timeout.connect(self._update_stats)
        self._fps_timer.start()

    def _connect(self) -> None:
        c, p = self.controller, self.prompt_panel
        p.generate_requested.connect(c.generate)
        p.cancel_requested.connect(c.cancel)
        p.set_ready(False)
        c.message.connect(self.show_message)
        self.inversion.message.connect(self.show_message)
        c.batch_progress.connect(p.set_progress)
        self.undo_stack.changed.connect(self._undo_changed)
        self.sliders_panel.reset_requested.connect(c.reset_sliders)
        c.stats_changed.connect(self._update_stats)
        self.link.progress.connect(self._on_progress)
        self.link.ready.connect(self._on_ready)
        self.link.failed.connect(self._on_failed)
        self.link.nearest_ready.connect(self._show_nearest)
        self.link.spread_ready.connect(self._show_spread)
        self.link.suggestion_ready.connect(self._show_suggestion)
        self.link.reading_ready.connect(self._show_reading)
        self.gallery.deleted.connect(self.jobs.deleted)
        self.gallery.export_requested.connect(self.jobs.export_items)
        self.gallery.message.connect(self.show_message)
        self.sliders_panel.message.connect(self.show_message)
        ip = self.interpolation_panel
        ip.slot_from_preview_requested.connect(c.set_slot_from_preview)
        ip.add_frames_requested.connect(c.generate_frames)
        ip.export_animation_requested.connect(self.jobs.export_animation)
        self.state.subscribe(
            lambda name, value: self._refresh_slots() if name in ("slot_a", "slot_b") else None
        )

    # --- engine lifecycle ----------------------------------------------------------------------------------------
    def start_engine(self) -> None:
        """Create the engine in the background (call after show())."""
        self.link.start()

    def _on_progress(self, text: str) -> None:
        if text and not self.link.is_ready:
            self.preview.set_message(f"{text}\n{self.model_name}", busy=True)

    def _on_ready(self, info: Any) -> None:
        self.loading_bar.setVisible(False)
        self.model_name = info.model_name
        self.state.model = info.model_name
        self.setWindowTitle(f"GAN Studio — {info.model_name}")
        self.device_label.setText(info.device_label)
        self.model_label.setText(f"{info.model_name} · {info.resolution}px · {info.model_hash}")
        self.sliders_panel.set_model(info.num_directions, info.default_truncation)
        if self.state.truncation == 1.0 and info.default_truncation != 1.0:
            self.state.update(truncation=info.default_truncation)
        self.prompt_panel.set_vocabulary(
            self.link.vocabulary_names() or list(info.classes)
        )  # class models: names
        self.prompt_panel.set_ready(True)
        self.link.nearest(self.state.prompt)
        if not self.state.prompt.strip():
            self.preview.set_message("Type a prompt to see a picture.")
        self.show_message(f"Ready: {info.model_name} on {info.device_label}.")

    def _on_failed(self, sentence: str) -> None:
        self.loading_bar.setVisible(False)
        self.device_label.setText("No model")
        self.model_label.setText(f"Model: {self.model_name} (not loaded)")
        self.preview.set_error(sentence)  # the engine's sentence names the model and says what is wrong
        self.show_message("Open another model with: gan-studio --model NAME_OR_FOLDER", 0)

    def _update_stats(self) -> None:
        if self.controller.last_render_ms:
            self.render_label.setText(f"Render: {self.controller.last_render_ms:.0f} ms")
        fps = self.link.preview_fps()
        self.fps_label.setText(f"Preview: {fps:.0f} fps" if fps else "Preview: idle")

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def _show_nearest(self, prompt: str, found: list) -> None:
        """The nearest-concepts line; a quiet hint instead when even the best match is far off."""
        if prompt != self.state.prompt:
            return  # an answer for text that has since changed
        threshold = self.link.info.poor_match_similarity if self.link.info is not None else 0.0
        self.prompt_panel.set_nearest(found, poor=bool(found) and found[0][1] < threshold)

    def _show_suggestion(self, prompt: str, text: str) -> None:
        """A respelling of the prompt the model knows better ("piza" -> "pizza"), offered under it."""
        if prompt == self.state.prompt:
            self.prompt_panel.set_suggestion(text)

    def _show_reading(self, prompt: str, text: str) -> None:
        """What the model reads the prompt as when not as typed ("happy dog" as "dog"), shown on the line under it."""
        if prompt == self.state.prompt:
            self.prompt_panel.set_reading(text)

    def _show_spread(self, prompt: str, names: list) -> None:
        """Which concepts the prompt's seeds spread over (the panel shows them while Spread is on)."""
        if prompt == self.state.prompt:
            self.prompt_panel.set_spread(names)

    def _undo_changed(self) -> None:
        label = self.undo_stack.label
        self.undo_action.setEnabled(bool(label))
        self.undo_action.setText(f"Undo {label}" if label else "Undo")
        self.undo_button.setVisible(bool(label))
        self.undo_button.setToolTip(f"Undo {label} (Ctrl+Z)" if label else "Undo (Ctrl+Z)")

    def show_shortcuts(self) -> ShortcutSheet:
        gallery_actions = [a for a in self.gallery.actions() if a.text()]
        sheet = ShortcutSheet(shortcut_rows(self.menus, {"Gallery": gallery_actions}), self)
        sheet.open()
        return sheet

    def show_about(self):
        info = self.link.info
        return show_about(self, getattr(info, "model_path", None), getattr(info, "model_hash", ""))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.drop_highlight.isVisible():
            self.drop_highlight.setGeometry(self.rect())

    def _refresh_slots(self) -> None:
        self.interpolation_panel.show_slots(
            self.controller.slot_pixmap("a"), self.controller.slot_pixmap("b")
        )

    # --- drop, paste ---------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        """Accept exported images from a file manager and items dragged from the gallery, and say so."""
        mime = event.mimeData()
        if mime.hasFormat(PARAMETERS_MIME) or any(
            url.toLocalFile().lower().endswith(IMAGE_SUFFIXES) for url in mime.urls()
        ):
            event.acceptProposedAction()
            self.drop_highlight.show_over("Drop to restore the picture’s parameters")

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.drop_highlight.hide()

    def cancel(self) -> None:
        """Esc: stop a running inversion, else the running batch."""
        if not self.inversion.cancel():
            self.controller.cancel()

    def open_file(self, path: str) -> bool:
        """Restore an exported image; a picture without parameters is offered for inversion instead."""
        if self.inversion.has_no_parameters(path):
            return self.inversion.offer_file(path)
        return self.controller.restore_file(path)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.drop_highlight.hide()
        if self.restore_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def paste(self, quiet: bool = False) -> bool:
        """Restore from the clipboard; False (and, unless ``quiet``, a sentence) when it holds nothing to restore."""
        handled = self.restore_from_mime(QGuiApplication.clipboard().mimeData())
        if handled is None and not quiet:
            self.show_message("The clipboard holds no picture, GAN Studio image, file or parameters.")
        return handled is not None

    def restore_from_mime(self, mime) -> bool | None:
        """Restore from dropped/pasted files or parameters (see :func:`restore_from_mime`); a picture without
        parameters (a file or pasted pixels) is offered for inversion instead."""
        return restore_from_mime(
            self.controller, mime, open_file=self.open_file, offer_image=self.inversion.offer_image
        )

    # --- persistence ---------------------------------------------------------------------------------------------
    def _restore_layout(self) -> None:
        geometry, layout = self.settings["window_geometry"], self.settings["window_state"]
        if geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(geometry)))
        if layout:
            self.restoreState(QByteArray(base64.b64decode(layout)))

    def save_settings(self) -> None:
        s = self.settings
        s.set("window_geometry", base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii"))
        s.set("window_state", base64.b64encode(bytes(self.saveState().data())).decode("ascii"))
        s.set("last_prompt", self.state.prompt)
        s.set("seed", int(self.state.seed))
        s.set("seed_mode", self.state.seed_mode)
        s.set("count", int(self.state.count))
        s.set("smooth_preview", self.preview.smooth)
        s.set("interpolation_frames", self.interpolation_panel.frames_spin.value())
        s.set("interpolation_fps", self.interpolation_panel.fps_spin.value())
        s.set("interpolation_mode", self.interpolation_panel.mode)
        s.save()

    def _toggle_smooth(self, smooth: bool) -> None:
        self.preview.set_smooth(smooth)

    def _toggle_theme(self, light: bool) -> None:
        name = "light" if light else "dark"
        self.settings.set("theme", name)
        theme.apply_theme(QApplication.instance(), name)
        self.preview.update()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.interpolation_panel.set_playing(False)
        self.controller.cancel()  # a running batch stops; what it stored stays
        self.save_settings()
        self.link.close()
        self.store.close()
        super().closeEvent(event)


def create_main_window(
    engine: Any = None,
    engine_factory: Any = None,
    model_name: str = "emoji",
    settings: Settings | None = None,
    store: GalleryStore | None = None,
    start: bool = True,
) -> MainWindow:
    """Build the window around an engine (or a factory returning one, possibly async) and start loading it."""
    window = MainWindow(engine if engine is not None else engine_factory, model_name, settings, store)
    if start:
        window.start_engine()
    return window
