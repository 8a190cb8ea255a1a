"""Generate from the keyboard: items stream into the gallery in order; Esc stops the batch and keeps what came."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from test_ui_helpers import WAIT_MS, direct_render, wait_for_preview_of

from studio.engine.requests import GenerationRequest


def test_ctrl_enter_streams_n_items_into_the_gallery_in_order(qtbot, make_window):
    window = make_window()
    panel = window.prompt_panel
    panel.count_spin.setValue(6)
    panel.seed_edit.setText("40")
    panel.seed_edit.editingFinished.emit()
    qtbot.keyClicks(panel.prompt_edit, "grinning cat")
    qtbot.keyClick(panel.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 6 and not window.link.generating, timeout=WAIT_MS)
    items = [gallery.item(i) for i in gallery.ids]
    assert [item.seed for item in items] == list(range(40, 46))
    assert {item.prompt for item in items} == {"grinning cat"}
    # The stored pixels are the engine's pixels for that item's own request.
    first = gallery.picture(gallery.ids[0])
    assert np.array_equal(first.image, direct_render(window.link.engine, first.request))
    assert window.history.entries[-1] == "grinning cat"
    # Thumbnails of a streamed batch are written when the window is idle.
    qtbot.waitUntil(lambda: window.store.thumbnail(gallery.ids[-1]) is not None, timeout=WAIT_MS)
    assert not panel.progress.isVisible() and panel.generate_button.isEnabled()


def test_escape_mid_batch_stops_within_a_micro_batch_and_keeps_what_arrived(qtbot, make_window, make_engine):
    engine = make_engine(micro_batch=2)
    window = make_window(engine=engine)
    window.state.update(prompt="owl", count=200, seed=0)
    wait_for_preview_of(qtbot, window, window.state.preview_request())
    window.prompt_panel.generate_button.click()
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() >= 4, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.link.previews_pending, timeout=WAIT_MS)
    rendered_before = engine.stats["images"]
    qtbot.keyClick(window.preview, Qt.Key.Key_Escape)
    arrived = gallery.rowCount()
    qtbot.waitUntil(lambda: not window.link.generating, timeout=WAIT_MS)
    # A one-image probe is served after whatever the cancelled batch still had queued: no sleep needed.
    # (Awaited on the loop: blocking the UI thread would keep the cancellation from reaching the engine.)

    async def probe():
        return [result async for result in engine.generate(GenerationRequest("probe", model="tiny-test"))]

    task = window.link.spawn(probe())
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    assert task.result()[0].ok and not engine._streams
    assert gallery.rowCount() <= arrived + 2
    # at most the micro-batch in flight and one more (plus the probe)
    assert engine.stats["images"] - 1 - rendered_before <= 2 * 2
    assert window.store.count() == gallery.rowCount() < 200
    assert [gallery.item(i).seed for i in gallery.ids] == list(range(gallery.rowCount()))
    assert "kept" in window.statusBar().currentMessage()


def test_random_seed_mode_draws_a_new_seed_each_generate(qtbot, make_window):
    window = make_window()
    window.state.update(prompt="fox", count=1, seed=7)
    window.prompt_panel.seed_mode_button.click()
    assert window.state.seed_mode == "random"
    window.controller.generate()
    qtbot.waitUntil(
        lambda: window.gallery.gallery.rowCount() == 1 and not window.link.generating, timeout=WAIT_MS
    )
    assert window.gallery.gallery.item(window.gallery.gallery.ids[0]).seed == window.state.seed


def test_a_full_disk_during_generate_is_counted_and_said(qtbot, make_window, monkeypatch):
    from test_session_gallery_store import full_disk

    window = make_window()
    window.state.update(prompt="owl", count=16, seed=0)
    wait_for_preview_of(qtbot, window, window.state.preview_request())
    full_disk(window.store, monkeypatch, after=3)
    window.controller.generate()
    bar = window.statusBar()
    qtbot.waitUntil(lambda: bar.currentMessage().startswith("Made"), timeout=WAIT_MS)
    assert bar.currentMessage().startswith("Made 3 of 16 images: The disk holding")
    assert "full" in bar.currentMessage()
    gallery = window.gallery.gallery
    assert window.store.count() == gallery.rowCount() == 3  # what it says is what is there
    monkeypatch.undo()
    window.controller.generate()  # room again: the next batch is stored whole
    qtbot.waitUntil(lambda: bar.currentMessage().startswith("Made 16 images"), timeout=WAIT_MS)
    assert window.store.count() == gallery.rowCount() == 19


def test_variety_set_in_the_prompt_panel_reaches_the_slider_and_every_stored_image(qtbot, make_window):
    window = make_window()
    panel = window.prompt_panel
    window.state.update(prompt="grinning cat", count=3, seed=5)
    panel.variety_spin.setValue(0.45)
    assert window.state.variety == 0.45 and window.sliders_panel.variety_slider.value() == 0.45
    panel.generate_button.click()
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 3 and not window.link.generating, timeout=WAIT_MS)
    pictures = [gallery.picture(item_id) for item_id in gallery.ids]
    assert [p.request.variety for p in pictures] == [0.45] * 3
    assert np.array_equal(pictures[1].image, direct_render(window.link.engine, pictures[1].request))
    plain = direct_render(window.link.engine, GenerationRequest("grinning cat", seed=6, model="tiny-test"))
    assert not np.array_equal(pictures[1].image, plain)  # the variety moved the picture
    window.sliders_panel.reset_button.click()
    assert window.state.variety == 0.0 and panel.variety_spin.value() == 0.0


def test_the_spread_box_follows_the_state_and_reaches_every_stored_image(qtbot, make_window):
    window = make_window()
    panel = window.prompt_panel
    assert panel.spread_check.isChecked() and window.state.spread  # new images spread by default
    window.state.update(prompt="grinning cat", count=2, seed=5)
    panel.spread_check.setChecked(False)
    assert window.state.spread is False
    panel.generate_button.click()
    gallery = window.gallery.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 2 and not window.link.generating, timeout=WAIT_MS)
    pictures = [gallery.picture(item_id) for item_id in gallery.ids]
    assert [p.request.spread for p in pictures] == [False, False]
    # restoring a request made with spread ticks the box again; Reset leaves the mode alone
    window.controller.restore_request(GenerationRequest("cat", seed=3, model="tiny-test", spread=True))
    assert window.state.spread is True and panel.spread_check.isChecked()
    panel.strength_spin.setValue(1.25)
    assert window.state.strength == 1.25 and window.state.preview_request().strength == 1.25
    assert abs(window.sliders_panel.strength_slider.value() - 1.25) <= 0.02  # the slider follows (one step)
    window.sliders_panel.strength_slider.moved.emit(1.5)
    assert window.state.strength == 1.5 and panel.strength_spin.value() == 1.5
    window.sliders_panel.reset_button.click()
    assert panel.spread_check.isChecked() and panel.strength_spin.value() == 1.0
