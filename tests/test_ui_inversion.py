"""Bring your own picture: drop, open or paste a picture without parameters, invert it, edit the result."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QImage
from test_ui_helpers import WAIT_MS, close_to_stored, wait_for_preview_of
from test_ui_restore import _drop

from studio.engine.requests import ExplicitLatent, GenerationRequest
from studio.io.export import export_result
from studio.session.state import SessionState
from studio.ui.images import qimage_from_rgba


def _picture(tmp_path, name="sun.png"):
    path = tmp_path / name
    image = Image.new("RGB", (60, 40), "skyblue")
    image.paste((255, 220, 0), (20, 10, 40, 30))
    image.save(path)
    return path


def _drop_file(window, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    _drop(window, mime)


def _gallery_count(window) -> int:
    return len(window.store.ids())


def test_a_dropped_picture_is_offered_then_inverted_into_the_gallery(qtbot, make_window, tmp_path):
    window = make_window()
    _drop_file(window, _picture(tmp_path))
    flow = window.inversion
    assert flow.dock.isVisible() and flow.panel.invert_button.isVisible()
    # the whole panel shows, its Invert button not a scroll away
    button = flow.panel.invert_button
    qtbot.waitUntil(lambda: flow.dock.rect().contains(button.mapTo(flow.dock, button.rect().bottomRight())))
    assert "sun.png has no GAN Studio parameters" in window.statusBar().currentMessage()
    assert flow.panel.original.image_array() is not None and _gallery_count(window) == 0

    steps = []
    window.link.inversion_progress.connect(lambda progress: steps.append(progress.step))
    flow.panel.invert_button.click()
    assert flow.running and flow.panel.cancel_button.isVisible()
    qtbot.waitUntil(lambda: _gallery_count(window) == 1, timeout=WAIT_MS)
    assert steps and steps == sorted(steps)
    # The result is the current picture: its latent is in the state, and the preview renders it again.
    latent = window.state.latent
    assert latent is not None and latent.source == "sun.png"
    item = window.store.item(window.store.ids()[0])
    assert item.request.latent == latent
    tooltip = window.gallery.gallery.data(window.gallery.gallery.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    assert "inverted from sun.png" in tooltip
    shown = wait_for_preview_of(qtbot, window, window.state.preview_request())
    assert close_to_stored(shown, window.store.image(item.id))  # the preview path: one row alone on CPU
    assert "dB" in flow.panel.title.text() and not flow.running

    # A slider moves the inverted picture like any other.
    window.state.set_direction(0, 3.0)
    moved = wait_for_preview_of(qtbot, window, window.state.preview_request())
    assert window.state.preview_request().latent == latent and not np.array_equal(moved, shown)


def test_escape_cancels_and_nothing_reaches_the_gallery(qtbot, make_window, tmp_path):
    window = make_window()
    _drop_file(window, _picture(tmp_path))
    cancelled = []

    def press_escape_once(progress):
        if not cancelled:
            cancelled.append(progress.step)
            window.cancel_action.trigger()  # the Esc shortcut's action

    window.link.inversion_progress.connect(press_escape_once)
    window.inversion.start()
    qtbot.waitUntil(lambda: bool(cancelled), timeout=WAIT_MS)
    assert not window.inversion.running and "Cancelled" in window.inversion.panel.title.text()
    # The engine keeps serving, and the cancelled inversion never lands in the gallery.
    window.state.update(prompt="a red kite")
    wait_for_preview_of(qtbot, window, window.state.preview_request())
    future = window.link.engine.preview(GenerationRequest("later", model="tiny-test"))
    assert future.result(WAIT_MS / 1000) is not None
    qtbot.waitUntil(lambda: not window.link.inverting, timeout=WAIT_MS)
    assert _gallery_count(window) == 0


def test_a_pasted_picture_is_offered(qtbot, make_window):
    window = make_window()
    pixels = np.zeros((20, 30, 4), np.uint8)
    pixels[..., 0], pixels[..., 3] = 200, 255
    mime = QMimeData()
    mime.setImageData(qimage_from_rgba(pixels))
    QGuiApplication.clipboard().setMimeData(mime)
    window.paste()
    assert window.inversion.dock.isVisible() and window.inversion.picture.name == "pasted picture"


def test_an_exported_image_still_restores_instead_of_being_offered(qtbot, make_window, tmp_path):
    window = make_window()
    result = next(window.link.engine.generate_sync(GenerationRequest("cat", seed=4, model="tiny-test")))
    _drop_file(window, export_result(result, tmp_path))
    assert window.state.seed == 4 and not window.inversion.dock.isVisible()


def test_an_unreadable_picture_is_one_sentence(qtbot, make_window, tmp_path):
    window = make_window()
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    _drop_file(window, path)
    assert not window.inversion.dock.isVisible()
    assert "notes.png is not a picture GAN Studio can read" in window.statusBar().currentMessage()


def test_a_new_prompt_or_seed_leaves_the_inverted_picture():
    latent = ExplicitLatent.from_arrays(np.zeros(16), np.ones(16), source="sun.png")
    state = SessionState(model="tiny-test")
    state.restore(GenerationRequest("sun", latent=latent, model="tiny-test"))
    assert state.preview_request().latent == latent
    state.set_direction(1, 2.0)  # sliders keep it
    assert state.latent == latent
    heard = []
    state.subscribe(lambda name, value: heard.append(name))
    state.update(prompt="moon")
    assert state.latent is None and "latent" in heard
    state.restore(GenerationRequest("sun", latent=latent, model="tiny-test"))
    state.update(seed=99)
    assert state.latent is None


def test_an_inverted_picture_can_be_interpolation_b():
    latent = ExplicitLatent.from_arrays(np.zeros(16), np.ones(16), source="sun.png")
    state = SessionState(model="tiny-test")
    from studio.session.state import InterpolationSlot

    state.update(
        slot_a=InterpolationSlot(GenerationRequest("cat", seed=1, model="tiny-test")),
        slot_b=InterpolationSlot(GenerationRequest("sun", latent=latent, model="tiny-test")),
    )
    assert state.interpolation_request(0.5).interpolate_to.latent == latent


def test_a_fully_transparent_paste_is_one_sentence(qtbot, make_window):
    window = make_window()
    image = QImage(8, 8, QImage.Format.Format_RGBA8888)
    image.fill(0)
    assert window.inversion.offer_image(image) is False
    assert "fully transparent" in window.statusBar().currentMessage()
    assert not window.inversion.dock.isVisible()
