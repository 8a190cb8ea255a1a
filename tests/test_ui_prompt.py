"""The prompt panel and the window's chrome: history, completion, seed controls, preview zoom, theme, export."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from test_ui_helpers import WAIT_MS, wait_for_preview_of

from studio.io.export import ExportOptions
from studio.io.metadata import read_parameters
from studio.ui.exporting import export_pictures


def test_alt_up_and_down_walk_the_prompt_history(qtbot, make_window):
    window = make_window()
    for prompt in ("red heart", "blue whale"):
        window.history.add(prompt)
    edit = window.prompt_panel.prompt_edit
    edit.setFocus()
    qtbot.keyClick(edit, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert edit.toPlainText() == "blue whale" == window.state.prompt
    qtbot.keyClick(edit, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert edit.toPlainText() == "red heart"
    qtbot.keyClick(edit, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert edit.toPlainText() == "blue whale"
    window.prompt_panel._fill_history_menu()
    assert [a.text() for a in window.prompt_panel.history_menu.actions()] == ["blue whale", "red heart"]


def test_completion_offers_known_concepts_and_the_preview_follows_typing(qtbot, make_window):
    window = make_window()
    panel = window.prompt_panel
    panel.set_vocabulary(["grinning cat", "cat face", "red heart"])
    panel.prompt_edit.setFocus()
    qtbot.keyClicks(panel.prompt_edit, "cat")
    completer = panel.prompt_edit.completer
    assert completer.popup().isVisible() and completer.completionCount() == 2
    completer.activated.emit("grinning cat")
    assert window.state.prompt == "grinning cat"
    wait_for_preview_of(qtbot, window, window.state.preview_request())  # debounced, then rendered


def test_ctrl_enter_while_the_completion_list_is_open_generates_once_and_closes_it(qtbot, make_window):
    window = make_window()
    window.show()
    panel = window.prompt_panel
    panel.set_vocabulary(["grinning cat", "cat face", "red heart"])
    panel.prompt_edit.setFocus()
    qtbot.keyClicks(panel.prompt_edit, "cat")
    popup = panel.prompt_edit.completer.popup()
    assert popup.isVisible()
    started = []
    window.generate_action.triggered.connect(lambda: started.append("action"))
    panel.prompt_edit.submitted.connect(lambda: started.append("submitted"))
    # the open list has the keyboard: the key goes to it, and the window's shortcut takes it from there
    qtbot.keyClick(popup, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert started == ["action"]
    assert not popup.isVisible() and panel.prompt_edit.toPlainText() == "cat"


def test_seed_controls_and_an_invalid_request_is_explained(qtbot, make_window):
    window = make_window()
    panel = window.prompt_panel
    panel.dice_button.click()
    first = window.state.seed
    panel.dice_button.click()
    assert window.state.seed != first and panel.seed_edit.text() == str(window.state.seed)
    window.state.update(prompt="x" * 3000)
    qtbot.waitUntil(lambda: "characters" in window.preview.error, timeout=WAIT_MS)
    window.state.update(prompt="   ")
    qtbot.waitUntil(lambda: window.preview.message.startswith("Type a prompt"), timeout=WAIT_MS)


def test_preview_zoom_modes_and_theme_switch(qtbot, make_window):
    window = make_window()
    window.state.update(prompt="moon")
    wait_for_preview_of(qtbot, window, window.state.preview_request())
    preview = window.preview
    preview.resize(600, 600)
    rect = preview.image_rect()
    assert rect.width() % 128 == 0  # nearest: a whole-number zoom
    window.smooth_action.trigger()
    assert preview.smooth and preview.image_rect().width() >= rect.width()
    window.theme_action.trigger()
    assert window.settings["theme"] == "light"
    window.theme_action.trigger()
    assert window.settings["theme"] == "dark"


def test_export_writes_files_that_restore(qtbot, make_window, tmp_path):
    window = make_window()
    window.state.update(prompt="comet", count=2, seed=5)
    window.controller.generate()
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 2 and not window.link.generating, timeout=WAIT_MS)
    pictures = [gallery.picture(i) for i in gallery.ids]
    written = export_pictures(
        pictures, tmp_path, ExportOptions(format="png", scale=2, template="{prompt}_{seed}")
    )
    assert [p.name for p in written] == ["comet_5.png", "comet_6.png"]
    with Image.open(written[1]) as image:
        assert image.size == (256, 256)
    assert read_parameters(written[1]).request == pictures[1].request
    assert np.array_equal(
        pictures[0].image, window.link.engine.generate_sync(pictures[0].request).__next__().image
    )
