"""Keys and clicks as a person uses them: paste restores wherever the focus is, one Ctrl+Z for restores,
deletes and slider resets, Esc closes the completion list before it cancels, window keys from every panel,
and the nearest-concepts line follows the prompt."""

from __future__ import annotations

import concurrent.futures

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication
from test_ui_gallery import _generate as generate_into_gallery
from test_ui_helpers import WAIT_MS

CTRL = Qt.KeyboardModifier.ControlModifier
A1111_TEXT = (
    "a smiling cat, best quality\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 4242, Size: 512x512, Model hash: 6ce0161689"
)


def _generate(qtbot, window, prompt="rocket", count=2, seed=36) -> list[int]:
    return generate_into_gallery(qtbot, window, prompt, count, seed)


def _click(qtbot, widget, pos=None) -> None:
    qtbot.mouseClick(
        widget, Qt.MouseButton.LeftButton, pos=pos if pos is not None else widget.rect().center()
    )
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None)


def _click_item(qtbot, view, row: int) -> None:
    _click(qtbot, view.viewport(), view.visualRect(view.gallery.index(row)).center())


def _press(qtbot, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """A key to whatever has the focus, as a keyboard would send it."""
    qtbot.keyClick(QApplication.focusWidget(), key, modifiers)


def _answer(value) -> concurrent.futures.Future:
    """A finished future holding ``value``: the engine's answer, without a model that knows the prompt."""
    future = concurrent.futures.Future()
    future.set_result(value)
    return future


def _click_prompt(qtbot, window):
    edit = window.prompt_panel.prompt_edit
    _click(qtbot, edit.viewport())
    assert QApplication.focusWidget() is edit
    return edit


def _retype(qtbot, window, edit, text: str, label, expected: str) -> None:
    """Select the whole prompt, type ``text`` over it, and wait for the window to settle on ``expected`` under it."""
    _press(qtbot, Qt.Key.Key_A, CTRL)
    qtbot.keyClicks(edit, text)
    qtbot.waitUntil(lambda: not window.controller.prompt_pending, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: label.text() == expected, timeout=WAIT_MS)


def test_ctrl_v_in_the_prompt_restores_copied_parameters_and_ctrl_z_takes_it_back(qtbot, make_window):
    window = make_window()
    _generate(qtbot, window, "rocket", 1, seed=36)
    view = window.gallery
    _click_item(qtbot, view, 0)
    _press(qtbot, Qt.Key.Key_C, CTRL | Qt.KeyboardModifier.ShiftModifier)  # copy parameters
    window.state.update(prompt="red apple", seed=5)
    edit = _click_prompt(qtbot, window)
    _press(qtbot, Qt.Key.Key_V, CTRL)
    assert edit.toPlainText() == "rocket" and window.state.seed == 36
    message = window.statusBar().currentMessage()
    assert message.startswith("Restored the pasted parameters.") and "Ctrl+Z" in message
    _press(qtbot, Qt.Key.Key_Z, CTRL)  # the prompt box has nothing of its own to undo: the restore goes
    assert edit.toPlainText() == "red apple" and window.state.seed == 5


def test_plain_text_pastes_as_text_and_a1111_text_restores_prompt_and_seed(qtbot, make_window):
    window = make_window()
    window.state.update(prompt="", truncation=0.6)
    edit = _click_prompt(qtbot, window)
    QGuiApplication.clipboard().setText("purple owl")
    _press(qtbot, Qt.Key.Key_V, CTRL)
    assert edit.toPlainText() == "purple owl" and window.state.prompt == "purple owl"
    QGuiApplication.clipboard().setText(A1111_TEXT)
    _press(qtbot, Qt.Key.Key_V, CTRL)
    assert window.state.prompt == "a smiling cat, best quality" and window.state.seed == 4242
    assert window.state.truncation == 0.6  # A1111 has no truncation: the person's own stays
    message = window.statusBar().currentMessage()
    assert "prompt and seed" in message and "negative prompt" in message and "Sampler" in message


def test_clicking_a_gallery_item_says_what_it_replaced_and_ctrl_z_brings_it_back(qtbot, make_window):
    window = make_window()
    _generate(qtbot, window, "rocket", 2, seed=36)
    state = window.state
    state.update(prompt="red apple", seed=7, seed_mode="random")
    state.add_concept("sad", "happy", 1.08)
    view = window.gallery
    _click_item(qtbot, view, 0)
    assert state.prompt == "rocket" and state.seed_mode == "fixed"
    message = window.statusBar().currentMessage()
    assert "replaced" in message and "red apple" in message and "1 slider moved" in message
    _click_item(qtbot, view, 1)  # browsing on keeps one step back to the person's own setup
    assert state.seed == 37
    assert window.undo_action.text().startswith("Undo showing")
    _press(qtbot, Qt.Key.Key_Z, CTRL)
    assert state.prompt == "red apple" and state.seed == 7 and state.seed_mode == "random"
    assert [c.scale for c in state.concepts] == [1.08]
    assert window.sliders_panel.concept_sliders[0].value() == pytest.approx(1.08, abs=0.01)


def test_slider_reset_and_delete_share_the_undo(qtbot, make_window):
    window = make_window()
    ids = _generate(qtbot, window, "kite", 2, seed=1)
    window.state.set_direction(2, 1.5)
    _click(qtbot, window.sliders_panel.reset_button)
    assert window.state.directions == {}
    view = window.gallery
    _click_item(qtbot, view, 1)
    _press(qtbot, Qt.Key.Key_Delete)
    assert view.gallery.ids == ids[:1]
    _press(qtbot, Qt.Key.Key_Z, CTRL)
    assert view.gallery.ids == ids
    _press(qtbot, Qt.Key.Key_Z, CTRL)  # the gallery click (a restore), then the reset
    _press(qtbot, Qt.Key.Key_Z, CTRL)
    assert window.state.directions == {2: 1.5}
    assert not window.undo_action.isEnabled()


def test_esc_closes_the_completion_list_first_and_cancels_the_batch_after(qtbot, make_window, make_engine):
    window = make_window(engine=make_engine(micro_batch=2))
    window.prompt_panel.set_vocabulary(["cat face", "cat", "grinning cat", "catamaran"])
    window.state.update(prompt="", count=400, seed=0)
    edit = _click_prompt(qtbot, window)
    qtbot.keyClicks(edit, "ca")
    popup = edit.completer.popup()
    assert popup.isVisible()
    window.controller.generate()
    qtbot.waitUntil(lambda: window.gallery.gallery.rowCount() >= 2, timeout=WAIT_MS)
    _press(qtbot, Qt.Key.Key_Escape)
    assert not popup.isVisible() and window.link.generating
    _press(qtbot, Qt.Key.Key_Escape)
    assert not window.link.generating and "kept" in window.statusBar().currentMessage()


def test_window_keys_work_from_every_panel_but_type_in_text_fields(qtbot, make_window):
    window = make_window()
    a, b = _generate(qtbot, window, "sun", 2, seed=10)
    window.gallery.slot_requested.emit(a, "a")
    window.gallery.slot_requested.emit(b, "b")
    panel = window.interpolation_panel
    places = [
        (window.gallery.viewport(), window.gallery.visualRect(window.gallery.gallery.index(0)).center()),
        (window.preview, None),
        (window.sliders_panel.reset_button, None),
        (panel.set_b_button, None),
        (panel.scrub, None),
    ]
    for widget, pos in places:
        _click(qtbot, widget, pos)
        panel.set_playing(False)
        _press(qtbot, Qt.Key.Key_Space)
        assert panel.playing, type(QApplication.focusWidget()).__name__
        _press(qtbot, Qt.Key.Key_Space)
        assert not panel.playing
    edit = _click_prompt(qtbot, window)
    _press(qtbot, Qt.Key.Key_Space)
    assert not panel.playing and edit.toPlainText().endswith(" ")


def test_nearest_concepts_clear_with_the_prompt_and_a_poor_match_says_so(qtbot, make_window):
    window = make_window()
    answers = {"cat": [("cat", 0.82), ("cat face", 0.71)], "zqxv": [("zebra", 0.11), ("fax", 0.09)]}

    window.link.engine.nearest_concepts = lambda prompt, k=3: _answer(answers.get(prompt.strip(), []))
    label = window.prompt_panel.nearest_label
    edit = _click_prompt(qtbot, window)
    qtbot.keyClicks(edit, "cat")
    qtbot.waitUntil(lambda: label.text() == "cat · cat face", timeout=WAIT_MS)
    _press(qtbot, Qt.Key.Key_A, CTRL)
    _press(qtbot, Qt.Key.Key_Backspace)
    qtbot.waitUntil(lambda: not window.controller.prompt_pending, timeout=WAIT_MS)
    assert label.text() == ""
    qtbot.keyClicks(edit, "zqxv")
    qtbot.waitUntil(lambda: label.text() != "", timeout=WAIT_MS)
    assert label.text() == "Not a concept the model knows well; closest: zebra · fax"


def test_the_line_under_the_prompt_names_what_its_seeds_spread_over(qtbot, make_window):
    window = make_window()
    spread = {"cat": ["cat", "cat face", "black cat", "grinning cat"], "dog face": ["dog face"]}

    window.link.engine.nearest_concepts = lambda prompt, k=3: _answer([("cat", 0.9), ("cat face", 0.8)])
    window.link.engine.spread_concepts = lambda prompt: _answer(spread.get(prompt.strip(), []))
    label = window.prompt_panel.nearest_label
    edit = _click_prompt(qtbot, window)
    qtbot.keyClicks(edit, "cat")
    expected = "Seeds draw one of 4: cat · cat face · black cat · …"
    qtbot.waitUntil(lambda: label.text() == expected, timeout=WAIT_MS)
    assert "grinning cat" in label.toolTip()
    window.prompt_panel.spread_check.setChecked(False)  # off: the nearest concepts again
    assert label.text() == "cat · cat face"
    window.prompt_panel.spread_check.setChecked(True)
    assert label.text() == expected
    _retype(qtbot, window, edit, "dog face", label, "cat · cat face")  # one concept: nothing to spread over


def test_the_line_under_the_prompt_says_how_the_model_read_it(qtbot, make_window):
    """ "happy dog" is read as "dog" (name words): the line says so before what the seeds draw, and a prompt read as
    typed says nothing of it."""
    window = make_window()

    window.link.engine.nearest_concepts = lambda prompt, k=3: _answer([("dog", 1.0), ("hot dog", 0.84)])
    window.link.engine.spread_concepts = lambda prompt: _answer(["dog", "dog face", "poodle"])
    window.link.engine.reading = lambda prompt: _answer("dog" if prompt == "happy dog" else prompt)
    label = window.prompt_panel.nearest_label
    edit = _click_prompt(qtbot, window)
    qtbot.keyClicks(edit, "happy dog")
    expected = "Read as “dog” · Seeds draw one of 3: dog · dog face · poodle"
    qtbot.waitUntil(lambda: label.text() == expected, timeout=WAIT_MS)
    assert "reads this prompt as “dog”" in label.toolTip()
    window.prompt_panel.spread_check.setChecked(False)
    assert label.text() == "Read as “dog” · dog · hot dog"
    _retype(qtbot, window, edit, "dog", label, "dog · hot dog")  # read as typed: the nearest names alone


def test_a_prompt_that_asks_for_any_emoji_says_what_spread_draws(qtbot, make_window):
    """The engine gives "emoji" no nearest names but a showcase to spread over: the line says so, spread on or off."""
    window = make_window()
    showcase = ["grinning face", "dog", "carrot", "globe"]

    window.link.engine.nearest_concepts = lambda prompt, k=3: _answer([])
    window.link.engine.spread_concepts = lambda prompt: _answer(showcase)
    label = window.prompt_panel.nearest_label
    edit = _click_prompt(qtbot, window)
    qtbot.keyClicks(edit, "emoji")
    expected = "Seeds draw one of 4: grinning face · dog · carrot · …"
    qtbot.waitUntil(lambda: label.text() == expected, timeout=WAIT_MS)
    window.prompt_panel.spread_check.setChecked(False)
    assert label.text() == "Any emoji: with Spread on, seeds draw one of 4"
    assert "carrot" in label.toolTip()


def test_a_respelling_the_model_knows_better_is_offered_and_taken_with_a_click(qtbot, make_window):
    window = make_window()

    window.link.engine.suggestion = lambda prompt: _answer("pizza" if prompt == "piza" else None)
    panel = window.prompt_panel
    edit = _click_prompt(qtbot, window)
    qtbot.keyClicks(edit, "piza")
    qtbot.waitUntil(lambda: panel.suggestion_label.isVisible(), timeout=WAIT_MS)
    assert "Did you mean" in panel.suggestion_label.text() and "pizza" in panel.suggestion_label.text()
    panel.suggestion_label.linkActivated.emit("take")
    assert edit.toPlainText() == "pizza" and window.state.prompt == "pizza"
    qtbot.waitUntil(lambda: not panel.suggestion_label.isVisible(), timeout=WAIT_MS)  # no offer for "pizza"
