"""Latent and concept sliders re-render the preview live through the engine's latest-wins preview."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from test_ui_helpers import preview_render, wait_for_preview_of

from studio.engine.requests import ConceptSlider


def _drag(slider, positions) -> None:
    """Drag a QSlider handle through ``positions`` the way a mouse drag does (sliderMoved + valueChanged)."""
    slider.setSliderDown(True)
    for position in positions:
        slider.setSliderPosition(position)
        QApplication.processEvents()
    slider.setSliderDown(False)


def test_dragging_a_direction_slider_through_50_positions(qtbot, make_window):
    window = make_window()
    engine = window.link.engine
    window.state.update(prompt="grinning cat", seed=3)
    wait_for_preview_of(qtbot, window, window.state.preview_request())
    requested_before = engine.stats["previews_requested"]
    rendered_before = engine.stats["previews_rendered"]

    _drag(window.sliders_panel.direction_sliders[0].slider, range(2, 102, 2))

    final = window.state.preview_request()
    assert final.directions == ((0, 5.0),)
    shown = wait_for_preview_of(qtbot, window, final)
    requests = engine.stats["previews_requested"] - requested_before
    renders = engine.stats["previews_rendered"] - rendered_before
    assert requests == 50 and 1 <= renders <= requests
    assert np.array_equal(shown, preview_render(engine, final))


def test_adding_and_moving_a_concept_slider(qtbot, make_window):
    window = make_window()
    panel = window.sliders_panel
    window.state.update(prompt="cat face", seed=1)
    qtbot.keyClicks(panel.concept_from, "sad")
    qtbot.keyClicks(panel.concept_to, "happy")
    panel.add_concept_button.click()
    assert len(panel.concept_sliders) == 1 and panel.concept_sliders[0].label.text() == "sad ↔ happy"
    _drag(panel.concept_sliders[0].slider, range(0, 51, 5))
    final = window.state.preview_request()
    assert final.concepts == (ConceptSlider("sad", "happy", 1.0),)
    shown = wait_for_preview_of(qtbot, window, final)
    assert np.array_equal(shown, preview_render(window.link.engine, final))


def test_a_concept_slider_from_a_word_to_itself_is_refused_in_one_sentence(qtbot, make_window):
    window = make_window()
    panel = window.sliders_panel
    panel.concept_from.setText("Happy ")
    panel.concept_to.setText("happy")
    panel.add_concept_button.click()
    assert window.state.concepts == () and not panel.concept_sliders
    assert window.statusBar().currentMessage().startswith("Both ends say “happy”; a concept slider needs two")
    # both words stay in their fields, to be fixed rather than typed again
    assert panel.concept_from.text() == "Happy " and panel.concept_to.text() == "happy"


def test_reset_and_randomize(qtbot, make_window):
    window = make_window()
    panel = window.sliders_panel
    window.state.update(prompt="cat")
    panel.randomize_button.click()
    assert window.state.directions and len(panel.direction_sliders) == 8
    assert [round(s.value(), 2) for s in panel.direction_sliders] == [
        round(window.state.directions.get(i, 0.0), 2) for i in range(8)
    ]
    panel.truncation_slider.slider.setValue(25)
    panel.variety_slider.slider.setValue(40)
    assert window.state.variety == 0.4 and window.state.preview_request().variety == 0.4
    panel.reset_button.click()
    assert window.state.directions == {} and window.state.truncation == 0.8  # the tiny model's default
    assert window.state.variety == 0.0 and panel.variety_slider.value() == 0.0
    assert all(s.value() == 0 for s in panel.direction_sliders)


def test_no_more_concept_sliders_than_a_request_may_carry(qtbot, make_window):
    from studio.engine.requests import MAX_CONCEPTS

    window = make_window()
    panel = window.sliders_panel
    for i in range(MAX_CONCEPTS):
        panel.concept_from.setText(f"sad {i}")
        panel.concept_to.setText(f"happy {i}")
        qtbot.mouseClick(panel.add_concept_button, Qt.MouseButton.LeftButton)
    assert len(window.state.concepts) == MAX_CONCEPTS
    assert not panel.add_concept_button.isEnabled() and not panel.concept_from.isEnabled()
    panel._add_concept()  # Enter in a field cannot sneak one more in either
    assert len(window.state.concepts) == MAX_CONCEPTS
    window.state.remove_concept(0)
    assert panel.add_concept_button.isEnabled()


def test_double_clicking_a_value_resets_its_slider(qtbot, make_window):
    from PySide6.QtCore import Qt

    window = make_window()
    panel = window.sliders_panel
    window.state.update(prompt="cat")
    panel.variety_slider.slider.setValue(60)
    panel.truncation_slider.slider.setValue(30)
    panel.direction_sliders[0].slider.setValue(-40)
    assert window.state.variety == 0.6 and window.state.truncation == 0.6
    for slider in (panel.variety_slider, panel.truncation_slider, panel.direction_sliders[0]):
        qtbot.mouseDClick(slider.value_label, Qt.MouseButton.LeftButton)
    assert window.state.variety == 0.0 and window.state.directions == {}
    assert window.state.truncation == 0.8  # the tiny model's default, not 0
