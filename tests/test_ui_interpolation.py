"""Interpolation: set A and B from the gallery, scrub, play; the preview is the engine's render at t."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_ui_helpers import WAIT_MS, close_to_stored, preview_render, wait_for_preview_of

from studio.engine.requests import Endpoint


def _two_items(qtbot, window) -> list[int]:
    window.state.update(prompt="sun", count=2, seed=10)
    window.controller.generate()
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 2 and not window.link.generating, timeout=WAIT_MS)
    return gallery.ids


def test_set_a_and_b_then_scrub(qtbot, make_window):
    window = make_window()
    a, b = _two_items(qtbot, window)
    window.gallery.slot_requested.emit(a, "a")
    window.gallery.slot_requested.emit(b, "b")
    panel = window.interpolation_panel
    assert panel.scrub.isEnabled() and "seed 10" in panel.slot_a.text.text()
    panel.scrub.setValue(350)
    request = window.state.preview_request()
    assert request.interpolate_to == Endpoint("sun", 11) and request.t == 0.35
    shown = wait_for_preview_of(qtbot, window, request)
    assert np.array_equal(shown, preview_render(window.link.engine, request))
    # t = 0 is image A (the stored one, to within the live preview's one-row rounding).
    panel.scrub.setValue(0)
    shown = wait_for_preview_of(qtbot, window, window.state.preview_request())
    assert close_to_stored(shown, window.gallery.gallery.picture(a).image)


def test_play_advances_t_and_add_frames_fills_the_gallery(qtbot, make_window):
    window = make_window()
    a, b = _two_items(qtbot, window)
    window.gallery.slot_requested.emit(a, "a")
    window.gallery.slot_requested.emit(b, "b")
    panel = window.interpolation_panel
    panel.fps_spin.setValue(60)
    window.play_action.trigger()
    assert panel.playing
    qtbot.waitUntil(lambda: window.state.t > 0.2, timeout=WAIT_MS)
    window.play_action.trigger()
    assert not panel.playing
    panel.frames_spin.setValue(5)
    panel.add_frames_button.click()
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 7 and not window.link.generating, timeout=WAIT_MS)
    assert [gallery.item(i).request.t for i in gallery.ids[2:]] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_export_animation_writes_every_frame(qtbot, make_window, tmp_path):
    from PIL import Image

    window = make_window()
    a, b = _two_items(qtbot, window)
    window.gallery.slot_requested.emit(a, "a")
    window.gallery.slot_requested.emit(b, "b")
    requests = [window.state.interpolation_request(i / 5) for i in range(6)]
    task = window.link.spawn(window.jobs.write_animation(requests, str(tmp_path / "clip.gif"), 10.0, "loop"))
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    written = task.result()
    with Image.open(written) as image:
        assert image.n_frames == 6


def test_export_animation_suggests_a_name_in_the_pictures_folder_and_remembers_the_folder(
    qtbot, make_window, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QFileDialog

    window = make_window()
    a, b = _two_items(qtbot, window)
    window.gallery.slot_requested.emit(a, "a")
    window.gallery.slot_requested.emit(b, "b")
    asked = []
    chosen = tmp_path / "clips" / "mine.gif"
    chosen.parent.mkdir()
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *args: asked.append(args[2]) or (str(chosen), "GIF (*.gif)")
    )
    window.settings.set("export_folder", "")
    window.jobs.export_animation(4, 10.0, "loop")
    suggested = asked[0]
    # never the folder the app was started from: the pictures folder, or home where there is none
    assert suggested.endswith("sun-10-to-sun-11.gif") and not suggested.startswith(str(Path.cwd()))
    qtbot.waitUntil(chosen.exists, timeout=WAIT_MS)
    assert window.settings["export_folder"] == str(chosen.parent)
    window.jobs.export_animation(4, 10.0, "loop")  # the next dialog opens where the last file went
    assert asked[1] == str(chosen.parent / "sun-10-to-sun-11.gif")
    window.settings.set("export_folder", str(tmp_path / "unplugged"))  # a folder that has gone away
    assert window.jobs.start_folder() == str(Path(asked[0]).parent)
