"""Dropping, opening or pasting an exported image restores the state and re-renders the same pixels: the preview
shows the live render of exactly the stored request, which on CPU (one row alone) lies within 2/255 of the file's
exact pixels (tests/test_engine_batching.py) and is re-rendered exactly before it is written again."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from test_ui_helpers import close_to_stored, preview_render, wait_for_preview_of

from studio.engine.requests import ConceptSlider, Endpoint, GenerationRequest
from studio.io.export import export_result


def _drop(window, mime: QMimeData) -> None:
    """What a file manager's drag does: enter (accepted), then drop."""
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(
        window, QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    )


def test_dropping_an_exported_png_restores_state_and_pixels(qtbot, make_window, tmp_path):
    window = make_window()
    engine = window.link.engine
    request = GenerationRequest(
        "smiling cat",
        seed=77,
        truncation=0.6,
        directions=((1, 2.5),),
        concepts=(ConceptSlider("sad", "happy", 0.75),),
        model="tiny-test",
    )
    result = next(iter(engine.generate_sync(request)))
    path = export_result(result, tmp_path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    _drop(window, mime)
    state = window.state
    assert (state.prompt, state.seed, state.truncation, state.directions) == (
        "smiling cat",
        77,
        0.6,
        {1: 2.5},
    )
    assert window.sliders_panel.direction_sliders[1].value() == 2.5
    assert window.sliders_panel.concept_sliders[0].label.text() == "sad ↔ happy"
    shown = wait_for_preview_of(qtbot, window, request)
    assert np.array_equal(shown, preview_render(window.link.engine, request))
    with Image.open(path) as image:
        assert close_to_stored(shown, np.asarray(image.convert("RGBA")))


def test_dropped_interpolation_frame_restores_a_b_and_t(qtbot, make_window, tmp_path):
    window = make_window()
    request = GenerationRequest("sun", seed=1, interpolate_to=Endpoint("moon", 2), t=0.4, model="tiny-test")
    result = next(iter(window.link.engine.generate_sync(request)))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(export_result(result, tmp_path)))])
    _drop(window, mime)
    assert window.state.slot_b.request.prompt == "moon" and window.state.t == 0.4
    assert window.interpolation_panel.scrub.value() == 400
    shown = wait_for_preview_of(qtbot, window, request)
    assert np.array_equal(shown, preview_render(window.link.engine, request))
    assert close_to_stored(shown, result.image)


def test_files_without_parameters_and_pasted_json(qtbot, make_window, tmp_path):
    window = make_window()
    plain = tmp_path / "plain.png"
    Image.new("RGBA", (8, 8)).save(plain)
    assert not window.controller.restore_file(plain)
    assert "no GAN Studio parameters" in window.statusBar().currentMessage()
    mime = QMimeData()
    mime.setText('{"prompt": "pasted owl", "seed": 9, "model": "tiny-test"}')
    assert window.restore_from_mime(mime)
    assert window.state.prompt == "pasted owl" and window.state.seed == 9
    other = QMimeData()
    other.setText('{"prompt": "x", "model": "someone-elses-model"}')
    assert not window.restore_from_mime(other)
    assert "someone-elses-model" in window.statusBar().currentMessage()


def test_parameters_from_another_build_restore_with_the_mismatch_sentence(qtbot, make_window):
    window = make_window()
    request = GenerationRequest("owl", seed=3, model="tiny-test")
    assert window.controller.restore_request(request, "00000000", "owl.png")
    message = window.statusBar().currentMessage()
    assert message.startswith("Restored. owl.png was made with another build of 'tiny-test' (hash 00000000")
    assert window.state.prompt == "owl"


def test_pasting_deeply_nested_json_says_what_the_clipboard_holds(qtbot, make_window):
    from PySide6.QtCore import QMimeData

    window = make_window()
    mime = QMimeData()
    mime.setText("[" * 100_000 + "]" * 100_000)
    assert window.restore_from_mime(mime) is None  # no RecursionError: plain text, nothing to restore
