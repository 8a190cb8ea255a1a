"""The gallery: survives a restart, Delete with undo, keyboard copy, star, show in preview, drag out as PNG."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from test_ui_helpers import WAIT_MS

from studio.ui.exporting import PARAMETERS_MIME


def _generate(qtbot, window, prompt="cat", count=3, seed=0) -> list[int]:
    window.state.update(prompt=prompt, count=count, seed=seed)
    before = window.gallery.gallery.rowCount()
    window.controller.generate()
    qtbot.waitUntil(
        lambda: window.gallery.gallery.rowCount() == before + count and not window.link.generating,
        timeout=WAIT_MS,
    )
    return window.gallery.gallery.ids


def test_gallery_and_settings_survive_a_restart(qtbot, make_window):
    window = make_window()
    ids = _generate(qtbot, window, "lighthouse", 3, seed=5)
    pixels = window.gallery.gallery.picture(ids[2]).image
    window.prompt_panel.seed_mode_button.click()
    window.close()
    again = make_window()
    gallery = again.gallery.gallery
    assert gallery.ids == ids
    assert np.array_equal(gallery.picture(ids[2]).image, pixels)
    assert again.state.prompt == "lighthouse" and again.state.seed_mode == "random"


def test_delete_and_undo_from_the_keyboard(qtbot, make_window):
    window = make_window()
    ids = _generate(qtbot, window, count=4)
    view = window.gallery
    view.setFocus()
    view.setCurrentIndex(view.gallery.index(1))
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert view.gallery.ids == [ids[0], ids[2], ids[3]] and window.store.count() == 3
    assert window.undo_button.isVisible()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.gallery.ids == ids and window.store.count() == 4
    assert not window.undo_action.isEnabled()


def test_copy_star_show_and_drag_out(qtbot, make_window):
    window = make_window()
    ids = _generate(qtbot, window, "kite", 2, seed=20)
    view = window.gallery
    view.setFocus()
    view.setCurrentIndex(view.gallery.index(1))
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    clipboard = QGuiApplication.clipboard().mimeData()
    assert clipboard.hasImage() and b'"seed":21' in bytes(clipboard.data(PARAMETERS_MIME).data())
    qtbot.keyClick(view, Qt.Key.Key_S)
    assert window.store.item(ids[1]).starred
    view.show_requested.emit(ids[0])
    assert window.state.prompt == "kite" and window.state.seed == 20
    assert np.array_equal(window.preview.image_array(), view.gallery.picture(ids[0]).image)
    mime = view.gallery.mimeData([view.gallery.index(0)])
    path = mime.urls()[0].toLocalFile()
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image.convert("RGBA")), view.gallery.picture(ids[0]).image)
        assert "parameters" in image.text
    # drag files live in the user's folder, and a day-old one is cleared by the next drag
    assert Path(path).parent.name == "drag-out" and str(Path(path)).startswith(
        os.environ["GAN_STUDIO_DATA_DIR"]
    )
    stale = Path(path).with_name("stale.png")
    stale.write_bytes(b"old")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    second = view.gallery.mimeData([view.gallery.index(1)])
    assert second.urls()  # asking for the files waits until the files worker has written them
    assert not stale.exists() and Path(path).exists()


def test_a_right_press_picks_the_item_without_replacing_the_setup_and_a_left_click_shows_it(
    qtbot, make_window
):
    window = make_window()
    ids = _generate(qtbot, window, "kite", 2, seed=20)
    window.show()
    window.activateWindow()
    window.prompt_panel.prompt_edit.setFocus()
    window.state.update(prompt="lighthouse", seed=7)
    view = window.gallery
    shown = []
    view.show_requested.connect(shown.append)
    second = view.visualRect(view.gallery.index(1)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.RightButton, pos=second)
    assert view.selected_ids() == [ids[1]]  # the menu acts on the item under the pointer
    assert shown == [] and window.state.prompt == "lighthouse" and window.state.seed == 7
    first = view.visualRect(view.gallery.index(0)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=first)
    assert shown and shown[-1] == ids[0] and window.state.prompt == "kite" and window.state.seed == 20


def test_ten_thousand_items_open_without_reading_images(qtbot, qloop, tmp_path):
    from studio.engine.requests import GenerationRequest
    from studio.session.gallery_store import GalleryStore
    from studio.ui.gallery_view import GalleryView

    store = GalleryStore(tmp_path / "big.sqlite")
    tiny = np.zeros((4, 4, 4), np.uint8)
    store.add_many([(GenerationRequest("p", seed=s), tiny, "") for s in range(10_000)])
    view = GalleryView(store)
    qtbot.addWidget(view)
    view.resize(800, 400)
    view.show()
    qtbot.waitExposed(view)
    assert view.gallery.rowCount() == 10_000
    assert len(view.gallery._thumbs) < 200  # only visible rows were decoded
    view.scrollToBottom()
    qtbot.waitUntil(lambda: view.indexAt(view.viewport().rect().center()).row() > 9_000)
    view.close()
    store.close()


def test_more_like_this_makes_new_seeds_of_the_same_prompt(qtbot, make_window):
    window = make_window()
    ids = _generate(qtbot, window, "tulip", 2, seed=3)
    window.state.update(prompt="something else", count=3)
    window.gallery.more_like_requested.emit(ids[0])
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 5 and not window.link.generating, timeout=WAIT_MS)
    made = [gallery.item(i) for i in gallery.ids[2:]]
    assert {item.prompt for item in made} == {"tulip"}
    assert made[0].seed not in (3, 4) and [m.seed for m in made] == [made[0].seed + i for i in range(3)]


def test_delete_star_and_undo_on_a_full_disk_say_so_and_change_nothing(qtbot, make_window, monkeypatch):
    from test_session_gallery_store import full_disk

    window = make_window()
    ids = _generate(qtbot, window, count=3)
    view = window.gallery
    view.setFocus()
    view.setCurrentIndex(view.gallery.index(1))
    full_disk(window.store, monkeypatch, after=0, statement="UPDATE")
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert "full" in window.statusBar().currentMessage()
    assert view.gallery.ids == ids and window.store.count() == 3
    qtbot.keyClick(view, Qt.Key.Key_S)
    assert "full" in window.statusBar().currentMessage() and not window.store.item(ids[1]).starred
    monkeypatch.undo()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert window.store.count() == 2
    full_disk(window.store, monkeypatch, after=0, statement="UPDATE")
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "full" in window.statusBar().currentMessage() and window.undo_action.isEnabled()
    monkeypatch.undo()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.gallery.ids == ids and window.store.count() == 3
