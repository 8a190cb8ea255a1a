"""Start-up: the window shows before the model loads, says why when a model is missing, keeps torch off the
path to a visible window, and remembers its layout and choices."""

from __future__ import annotations

import subprocess
import sys

from test_ui_helpers import READY_TIMEOUT_MS, WAIT_MS

from studio.app import model_display_name


def test_a_missing_model_is_explained_where_the_picture_would_be(qtbot, make_window, make_engine):
    window = make_window(engine=make_engine(model="no-such-model"), wait_ready=False)
    qtbot.waitUntil(lambda: bool(window.preview.error), timeout=READY_TIMEOUT_MS)
    assert "no-such-model" in window.preview.error
    assert window.device_label.text() == "No model" and not window.loading_bar.isVisible()
    window.state.update(prompt="cat")
    window.controller.generate()  # nothing to render with: a sentence, no crash
    assert "no-such-model" in window.statusBar().currentMessage()


def test_the_window_shows_while_the_engine_is_still_coming(qtbot, make_window, make_engine):
    import asyncio

    gate = asyncio.Event()

    async def slow_factory():
        await gate.wait()
        return make_engine()

    window = make_window(engine=slow_factory, wait_ready=False)
    assert window.isVisible() and window.preview.message.startswith("Loading")
    assert not window.prompt_panel.generate_button.isEnabled()
    window.state.update(prompt="early bird")  # typed before the model is ready: previewed once it is
    gate.set()
    qtbot.waitUntil(lambda: window.link.is_ready, timeout=READY_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.controller.last_preview is not None, timeout=WAIT_MS)
    assert window.controller.last_preview.request.prompt == "early bird"
    assert window.prompt_panel.generate_button.isEnabled()
    assert "CPU" in window.device_label.text() and "tiny-test" in window.model_label.text()


def test_window_layout_and_choices_persist(qtbot, make_window):
    window = make_window()
    window.resize(760, 680)
    qtbot.waitUntil(lambda: window.size().width() != 1400)
    size = window.size()
    window.sliders_dock.hide()
    window.state.update(prompt="persisted", seed=1234)
    window.close()
    again = make_window()
    assert again.size() == size and again.sliders_dock.isHidden()
    assert again.state.prompt == "persisted" and again.state.seed == 1234


def test_no_torch_on_the_path_to_a_visible_window():
    code = (
        "import sys, studio.app, studio.ui.main_window, studio.ui.theme;"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_model_display_names():
    assert model_display_name(None) == "emoji"
    assert model_display_name("/some/where/my-model") == "my-model"


def test_damaged_settings_and_gallery_still_open_the_window_and_say_so(qtbot, make_window, tmp_path):
    from studio.paths import user_config_dir, user_data_dir

    user_config_dir().mkdir(parents=True)
    (user_config_dir() / "settings.json").write_text(
        '{"window_geometry": "!!!not base64!!!", "interpolation_frames": 1e12, "window_state": "%%%"}'
    )
    user_data_dir().mkdir(parents=True)
    (user_data_dir() / "gallery.sqlite").write_bytes(b"garbage!" * 1000)
    window = make_window()
    assert window.interpolation_panel.frames_spin.value() == 24
    qtbot.waitUntil(lambda: "damaged" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert "gallery file was damaged" in window.statusBar().currentMessage()
    assert any(".damaged-" in p.name for p in user_data_dir().iterdir())


def test_a_read_only_gallery_opens_read_only_and_says_so(qtbot, make_window, monkeypatch):
    from test_session_gallery_store import refuse_read_write_opens

    refuse_read_write_opens(monkeypatch)
    window = make_window()
    qtbot.waitUntil(lambda: "read-only" in window.windowTitle(), timeout=WAIT_MS)
    assert "open read-only" in window.statusBar().currentMessage()
    window.state.update(prompt="owl", count=2)
    window.controller.generate()
    bar = window.statusBar()
    qtbot.waitUntil(lambda: bar.currentMessage().startswith("Made"), timeout=WAIT_MS)
    assert bar.currentMessage().startswith("Made 0 of 2 images: The gallery in")


def test_the_window_removes_unfinished_files_a_killed_window_left(qtbot, make_window):
    from test_atomic import leave_stale_temp

    from studio.paths import user_data_dir

    drag_out = user_data_dir() / "drag-out"
    drag_out.mkdir(parents=True)
    name = leave_stale_temp(drag_out)
    assert (drag_out / name).exists()
    make_window(wait_ready=False)
    assert not (drag_out / name).exists()
