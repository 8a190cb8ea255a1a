"""The window as a person meets it: interpolation thumbnails, a small screen, batch progress numbers,
animation scale, dropping files (highlight, AUTOMATIC1111 PNGs), the Help menu and a quick quit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image, PngImagePlugin
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog
from test_ui_helpers import WAIT_MS, wait_for_preview_of

A1111_TEXT = (
    "a smiling cat\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 4242, Size: 512x512, Model: v1-5"
)


def _type_prompt(qtbot, window, text: str) -> None:
    edit = window.prompt_panel.prompt_edit
    qtbot.mouseClick(edit.viewport(), Qt.MouseButton.LeftButton, pos=edit.viewport().rect().center())
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    wait_for_preview_of(qtbot, window, window.state.preview_request())


def _click(qtbot, widget) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=widget.rect().center())


def test_setting_b_from_the_preview_keeps_a_thumbnail(qtbot, make_window):
    window = make_window()
    panel = window.interpolation_panel
    _type_prompt(qtbot, window, "sun")
    _click(qtbot, panel.set_a_button)
    assert not panel.slot_a.thumb.pixmap().isNull()
    _type_prompt(qtbot, window, "moon")
    _click(qtbot, panel.set_b_button)
    assert window.state.preview_mode == "interpolation"
    assert not panel.slot_a.thumb.pixmap().isNull() and not panel.slot_b.thumb.pixmap().isNull()
    _type_prompt(qtbot, window, "star")  # leaving the interpolation keeps both thumbnails
    assert not panel.slot_a.thumb.pixmap().isNull() and not panel.slot_b.thumb.pixmap().isNull()


def test_a_small_window_zooms_the_preview_past_1x_and_keeps_the_newest_images_in_view(qtbot, make_window):
    window = make_window()
    window.state.update(prompt="owl", count=40, seed=0)
    window.controller.generate()
    gallery = window.gallery
    qtbot.waitUntil(lambda: gallery.gallery.rowCount() == 40 and not window.link.generating, timeout=WAIT_MS)
    wait_for_preview_of(qtbot, window, window.state.preview_request())
    gallery.scrollToBottom()
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.width() == 1024)
    preview = window.preview
    # The column the preview had on a 1024x700 screen under X (wider side panels there): about 280 px.
    window.resizeDocks(
        [window.sliders_dock],
        [window.sliders_dock.width() + preview.width() - 280],
        Qt.Orientation.Horizontal,
    )
    qtbot.waitUntil(lambda: preview.width() <= 290)
    rect = preview.image_rect()
    room = min(preview.width(), preview.height()) - 32
    assert rect.width() > 128  # never back at 1x in a column more than twice as wide
    if preview.drawn_smooth:
        assert room // 128 < 2 and abs(rect.width() - room) <= 1
    else:
        assert rect.width() == 128 * (room // 128) >= 256
    qtbot.waitUntil(lambda: gallery.viewport().rect().contains(gallery.visualRect(gallery.gallery.index(39))))


def test_a_short_window_scrolls_the_side_panels_instead_of_stacking_them(qtbot, make_window):
    # 1280x720 logical (a 1080p laptop at 150%) less a taskbar and a title bar leaves about 600 px for the window
    window = make_window()
    assert window.minimumSizeHint().height() <= 560
    window.resize(1000, 560)
    qtbot.waitUntil(lambda: window.height() == 560)
    prompt, interpolation = window.prompt_dock, window.interpolation_dock
    assert not prompt.geometry().intersects(interpolation.geometry())
    scroll = prompt.widget()
    assert scroll.widget() is window.prompt_panel and scroll.verticalScrollBar().maximum() > 0
    # the panel is cut by its own dock, not drawn under the next one; Generate is a scroll away
    button = window.prompt_panel.generate_button
    scroll.ensureWidgetVisible(button)
    top_left = button.mapTo(scroll.viewport(), button.rect().topLeft())
    assert scroll.viewport().rect().contains(QRect(top_left, button.size()))


def test_reset_layout_brings_every_panel_home(qtbot, make_window):
    window = make_window()
    left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
    home = {
        d: window.dockWidgetArea(d)
        for d in (window.prompt_dock, window.interpolation_dock, window.sliders_dock)
    }
    window.prompt_dock.setFloating(True)
    window.gallery_dock.close()
    window.tabifyDockWidget(window.sliders_dock, window.interpolation_dock)
    assert window.dockWidgetArea(window.interpolation_dock) == right
    assert "Reset layout" in [a.text() for a in window.menus[3].actions()]
    window.reset_layout_action.trigger()
    docks = (window.prompt_dock, window.interpolation_dock, window.sliders_dock, window.gallery_dock)
    qtbot.waitUntil(lambda: all(d.isVisible() and not d.isFloating() for d in docks))
    assert {d: window.dockWidgetArea(d) for d in home} == home and home[window.prompt_dock] == left
    assert not window.tabifiedDockWidgets(window.sliders_dock)
    # the prompt above the interpolation panel, both in the left column
    qtbot.waitUntil(
        lambda: window.prompt_dock.geometry().bottom() < window.interpolation_dock.geometry().top()
    )


def test_a_batch_shows_images_per_second_and_time_left(qtbot, make_window, make_engine):
    window = make_window(engine=make_engine(micro_batch=2))
    window.state.update(prompt="owl", count=400, seed=0)
    _click(qtbot, window.prompt_panel.generate_button)
    label = window.prompt_panel.progress_label
    qtbot.waitUntil(lambda: "img/s" in label.text(), timeout=WAIT_MS)
    assert " of 400 · " in label.text() and "left" in label.text()
    window.controller.cancel()


def test_animation_export_uses_the_export_scale(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    window.settings.set("export_scale", 2)
    window.settings.set("export_resample", "lanczos")
    window.state.update(prompt="sun", count=2, seed=10)
    window.controller.generate()
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 2 and not window.link.generating, timeout=WAIT_MS)
    a, b = gallery.ids
    window.gallery.slot_requested.emit(a, "a")
    window.gallery.slot_requested.emit(b, "b")
    target = tmp_path / "clip.gif"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), "GIF (*.gif)"))
    panel = window.interpolation_panel
    panel.frames_spin.setValue(4)
    _click(qtbot, panel.export_button)
    qtbot.waitUntil(target.exists, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Wrote"), timeout=WAIT_MS)
    with Image.open(target) as image:
        assert image.size == (256, 256)


def _drag(window, mime: QMimeData, drop: bool) -> None:
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(60, 60), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    assert window.drop_highlight.isVisible()  # the person sees where a drop goes
    if drop:
        QApplication.sendEvent(
            window, QDropEvent(QPointF(60, 60), Qt.DropAction.CopyAction, mime, buttons, modifiers)
        )
    else:
        QApplication.sendEvent(window, QDragLeaveEvent())
    assert not window.drop_highlight.isVisible()


def test_dragging_highlights_and_an_a1111_png_imports_prompt_and_seed(qtbot, make_window, tmp_path):
    window = make_window()
    path = tmp_path / "from-a1111.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_TEXT)
    Image.new("RGB", (64, 64), "white").save(path, pnginfo=info)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    _drag(window, mime, drop=False)
    _drag(window, mime, drop=True)
    assert window.state.prompt == "a smiling cat" and window.state.seed == 4242
    message = window.statusBar().currentMessage()
    assert "from-a1111.png" in message and "negative prompt" in message and "Steps" in message


def test_help_lists_every_shortcut_and_about_names_versions_and_licences(qtbot, make_window):
    from studio.ui.help import ShortcutSheet

    window = make_window()
    assert window.menuBar().actions()[-1].text() == "&Help"
    window.gallery.setFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: bool(window.findChildren(ShortcutSheet)))
    rows = window.findChildren(ShortcutSheet)[0].texts()
    for action in window.actions():
        if not action.shortcut().isEmpty():
            keys = action.shortcut().toString(action.shortcut().SequenceFormat.NativeText)
            assert any(keys in row[1] and row[2] == action.text().rstrip("…") for row in rows), action.text()
    assert any(row[0] == "Gallery" and "Delete" in row[2] for row in rows)
    # the sheet fits its width: long descriptions wrap onto more lines instead of scrolling sideways or being cut
    table = window.findChildren(ShortcutSheet)[0].table
    longest = max(range(table.rowCount()), key=lambda r: len(table.item(r, 2).text()))
    qtbot.waitUntil(lambda: table.rowHeight(longest) > table.rowHeight(0))
    assert sum(table.columnWidth(c) for c in range(3)) <= table.viewport().width()
    about = window.show_about()
    text = about.findChild(type(window.model_label)).text()
    assert "Qt " in text and "PySide6 " in text and "Open Font License" in text and "model card" in text


def test_the_process_ends_when_the_window_closes_without_python_teardown(tiny_model_dir, tmp_path):
    """Closing stores everything and then leaves at once: the seconds Python's teardown spent collecting
    torch's modules (and waiting for a torch import still running) are skipped."""
    marker = tmp_path / "teardown-ran"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
        "from studio.cli import main\n"
        f"sys.exit(main(['--model', {str(tiny_model_dir)!r}, '--device', 'cpu']))\n"
    )
    env = dict(os.environ, GAN_STUDIO_QUIT_AFTER_MS="1500", QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not marker.exists()
    assert (Path(env["GAN_STUDIO_CONFIG_DIR"]) / "settings.json").is_file()  # stored before leaving
