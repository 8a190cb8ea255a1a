"""Export-all, animations and drag-out PNGs are written on the files worker, with progress and Cancel."""

from __future__ import annotations

import errno
import threading

from test_ui_gallery import _generate
from test_ui_helpers import WAIT_MS

import studio.ui.exporting as exporting
from studio.io.export import ExportOptions
from studio.io.files import ExportError, describe_os_error


def _record_threads(monkeypatch, gate=None, fail_at=None):
    """Wrap the export of one image: note its thread; optionally wait on ``gate`` or fail at a call."""
    real = exporting.export_image
    calls = []

    def export_image(image, parameters, folder, options, index):
        calls.append(threading.current_thread().name)
        if gate is not None and len(calls) == 2:
            gate["entered"].set()
            assert gate["release"].wait(WAIT_MS / 1000)
        if fail_at is not None and len(calls) == fail_at:
            raise ExportError(describe_os_error(OSError(errno.ENOSPC, "full"), folder / "x.png"))
        return real(image, parameters, folder, options, index)

    monkeypatch.setattr(exporting, "export_image", export_image)
    return calls


def test_export_all_runs_on_the_files_worker_with_progress(qtbot, make_window, monkeypatch, tmp_path):
    window = make_window()
    ids = _generate(qtbot, window, "kite", 4, seed=1)
    calls = _record_threads(monkeypatch)
    task = window.jobs.start_export(ids, tmp_path, ExportOptions(scale=2))
    assert window.jobs.job_progress.isVisible() and window.jobs.job_cancel.isVisible()
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    assert len(task.result()) == 4 and len(list(tmp_path.glob("*.png"))) == 4
    assert calls and all(name.startswith("gan-studio-files") for name in calls)
    assert window.statusBar().currentMessage() == f"Exported 4 images to {tmp_path}."
    # the bar hides in the task's done callback, which asyncio runs on the next turn of the loop
    qtbot.waitUntil(lambda: not window.jobs.job_progress.isVisible(), timeout=WAIT_MS)


def test_cancel_stops_an_export_after_the_current_file_and_keeps_what_was_written(
    qtbot, make_window, monkeypatch, tmp_path
):
    window = make_window()
    ids = _generate(qtbot, window, "kite", 5, seed=1)
    gate = {"entered": threading.Event(), "release": threading.Event()}
    _record_threads(monkeypatch, gate=gate)
    task = window.jobs.start_export(ids, tmp_path, None)
    qtbot.waitUntil(gate["entered"].is_set, timeout=WAIT_MS)  # the second file is being written
    window.jobs.job_cancel.click()
    gate["release"].set()
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    assert len(list(tmp_path.glob("*.png"))) == 2  # the one in progress is finished, never cut
    assert window.statusBar().currentMessage().startswith("Export stopped after 2 of 5 images")


def test_a_full_disk_during_export_says_how_many_were_written(qtbot, make_window, monkeypatch, tmp_path):
    window = make_window()
    ids = _generate(qtbot, window, "kite", 5, seed=1)
    _record_threads(monkeypatch, fail_at=3)
    task = window.jobs.start_export(ids, tmp_path, None)
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    message = window.statusBar().currentMessage()
    assert message.startswith(f"Exported 2 of 5 images to {tmp_path}; then: The disk holding")
    assert len(list(tmp_path.glob("*.png"))) == 2


def test_drag_out_files_are_written_on_the_files_worker(qtbot, make_window, monkeypatch):
    window = make_window()
    _generate(qtbot, window, "kite", 2, seed=1)
    threads = []
    real = exporting.write_png

    def write_png(picture, path):
        threads.append(threading.current_thread().name)
        return real(picture, path)

    monkeypatch.setattr(exporting, "write_png", write_png)
    model = window.gallery.gallery
    mime = model.mimeData([model.index(0), model.index(1)])
    paths = [url.toLocalFile() for url in mime.urls()]
    assert len(paths) == 2 and all(paths)
    assert threads == ["gan-studio-files_0"] * 2


def test_cancel_while_frames_render_writes_no_animation(qtbot, make_window, tmp_path):
    from test_engine import occupy_worker

    window = make_window()
    a, b = _generate(qtbot, window, "kite", 2, seed=1)[-2:]
    window.gallery.slot_requested.emit(a, "a")
    window.gallery.slot_requested.emit(b, "b")
    requests = [window.state.interpolation_request(i / 5) for i in range(6)]
    gate = occupy_worker(window.link.engine)  # the frames wait behind it: the job is surely rendering
    task = window.jobs.start_file_job(
        window.jobs.write_animation(requests, str(tmp_path / "clip.gif"), 10, "loop")
    )
    bar = window.statusBar()
    qtbot.waitUntil(lambda: bar.currentMessage().startswith("Rendering 6 frames"), timeout=WAIT_MS)
    window.jobs.job_cancel.click()
    gate.set()
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    assert bar.currentMessage() == "Animation export cancelled; nothing was written."
    assert not (tmp_path / "clip.gif").exists()
    qtbot.waitUntil(lambda: not window.jobs.job_progress.isVisible(), timeout=WAIT_MS)


def test_an_exported_preview_holds_the_stored_pixels_not_the_one_row_preview(qtbot, make_window, tmp_path):
    import numpy as np
    from PIL import Image

    from studio.io.metadata import read_parameters

    window = make_window()
    window.prompt_panel.prompt_edit.setPlainText("green kite")
    qtbot.waitUntil(
        lambda: (
            window.controller.last_preview is not None
            and window.controller.last_preview.request.prompt == "green kite"
        ),
        timeout=WAIT_MS,
    )
    picture = window.controller.picture_of_preview()
    assert not picture.exact  # a CPU live preview renders one row alone
    task = window.jobs.start_file_job(window.jobs._export_preview(picture, tmp_path, ExportOptions(scale=1)))
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    (path,) = tmp_path.glob("*.png")
    stored = next(iter(window.link.engine.generate_sync(read_parameters(path).request)))
    assert stored.exact and np.array_equal(np.asarray(Image.open(path).convert("RGBA")), stored.image)


def test_the_export_dialog_makes_a_missing_folder_or_stays_open_with_one_sentence(
    qtbot, make_window, tmp_path
):
    from studio.ui.export_dialog import ExportDialog

    window = make_window()
    dialog = ExportDialog(window.settings, 1, window)
    qtbot.addWidget(dialog)
    dialog.folder_edit.setText(str(tmp_path / "typo" / "emoji"))
    dialog._accept()
    assert dialog.result() != dialog.DialogCode.Accepted and "does not exist" in dialog.error_label.text()
    dialog.folder_edit.setText(
        str(tmp_path / "emoji")
    )  # one level missing: made, as the pictures folder would be
    dialog._accept()
    assert dialog.result() == dialog.DialogCode.Accepted and (tmp_path / "emoji").is_dir()
    assert window.settings["export_folder"] == str(tmp_path / "emoji")


def test_an_export_that_writes_nothing_says_so_in_one_sentence(qtbot, make_window, tmp_path):
    window = make_window()
    window.state.update(prompt="kite", count=1, seed=1)
    window.controller.generate()
    qtbot.waitUntil(
        lambda: window.gallery.gallery.rowCount() == 1 and not window.link.generating, timeout=WAIT_MS
    )
    window.jobs.start_export(window.gallery.gallery.ids, tmp_path / "gone", ExportOptions())
    qtbot.waitUntil(
        lambda: window.statusBar().currentMessage().startswith("Nothing was exported"), timeout=WAIT_MS
    )
    assert "does not exist" in window.statusBar().currentMessage()
