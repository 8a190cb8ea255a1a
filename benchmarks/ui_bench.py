"""UI responsiveness benchmark: prints JSON.

Measures main-thread stalls with a 5 ms heartbeat QTimer (the gap between ticks; a smooth UI keeps it near
5 ms) while the real window generates a 64-image batch and while a slider is dragged at 60 Hz, and how long
a 10,000-item gallery takes to open and to scroll top to bottom, and (``--only export`` runs just this) the
stalls while 100 gallery items are exported at 8x on the files worker, next to the same export on the UI
thread.

    python benchmarks/ui_bench.py [--model emoji|PATH] [--device cpu]

Without --model it uses the shipped model when installed, else a tiny random test model (and a hash text
encoder), which measures the UI's own overhead rather than rendering speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)


class Heartbeat:
    """A 5 ms timer on the UI thread; the gaps between its ticks are the main-thread stalls."""

    def __init__(self):
        from PySide6.QtCore import Qt, QTimer

        self.gaps: list[float] = []
        self._last = 0.0
        self.timer = QTimer(interval=5)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        return {
            "ticks": len(self.gaps),
            "p50_ms": percentile(self.gaps, 50),
            "p99_ms": percentile(self.gaps, 99),
            "max_ms": round(max(self.gaps, default=0.0), 2),
        }

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000)
        self._last = now


def engine_source(model: str | None, device: str | None):
    from studio.engine.engine import Engine

    if model:
        return Engine(model=model, device=device), model
    try:
        from studio.models.format import resolve_model

        resolve_model("emoji")
        return Engine(model="emoji", device=device), "emoji"
    except Exception:  # noqa: BLE001 - no shipped model: fall back to the tiny test model
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import HashTextEncoder, make_tiny_model

        folder = make_tiny_model(Path(tempfile.mkdtemp(prefix="gan-studio-bench-")))
        return Engine(
            model=folder, device=device or "cpu", text_encoder=HashTextEncoder()
        ), "tiny-test (random)"


async def wait_for(predicate, timeout: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark step timed out")
        await asyncio.sleep(0.005)


async def bench_window(app, args) -> dict:
    from studio.ui.main_window import create_main_window

    engine, model_label = engine_source(args.model, args.device)
    window = create_main_window(engine=engine, model_name=model_label)
    window.resize(1400, 900)
    window.show()
    await wait_for(lambda: window.link.is_ready or window.link.error)
    if window.link.error:
        raise SystemExit(window.link.error)
    info = window.link.info
    heartbeat = Heartbeat()
    out: dict = {"model": model_label, "device": info.device_label, "micro_batch": info.micro_batch}

    # 1. A 64-image batch streaming into the gallery.
    window.state.update(prompt="grinning cat", count=64, seed=0, seed_mode="fixed")
    await wait_for(lambda: window.controller.last_preview is not None and not window.link.previews_pending)
    heartbeat.start()
    started = time.perf_counter()
    window.controller.generate()
    await wait_for(lambda: not window.link.generating and window.gallery.gallery.rowCount() >= 64)
    out["batch_64"] = {"seconds": round(time.perf_counter() - started, 2), "stall": heartbeat.stop()}

    # 2. A slider dragged at 60 Hz for 3 seconds (180 positions).
    slider = window.sliders_panel.direction_sliders[0].slider
    stats_before = dict(engine.stats)
    heartbeat.start()
    slider.setSliderDown(True)
    positions = [round(100 * ((i % 120) / 60 - 1)) for i in range(180)]
    next_move = time.perf_counter()
    fps_seen = []
    for position in positions:
        slider.setSliderPosition(position)
        next_move += 1 / 60
        await asyncio.sleep(max(0.0, next_move - time.perf_counter()))
        fps_seen.append(window.link.preview_fps())
    slider.setSliderDown(False)
    await wait_for(lambda: not window.link.previews_pending)
    stall = heartbeat.stop()
    out["slider_drag_60hz"] = {
        "moves": len(positions),
        "previews_requested": engine.stats["previews_requested"] - stats_before["previews_requested"],
        "previews_rendered": engine.stats["previews_rendered"] - stats_before["previews_rendered"],
        "preview_fps_p50": percentile(fps_seen, 50),
        "last_render_ms": round(engine.stats["last_render_ms"], 1),
        "stall": stall,
    }
    gallery = window.gallery.gallery
    images = [gallery.picture(i).image for i in gallery.ids[:64]]
    window.close()
    return out, images


async def bench_export(app, args, items: int = 100, scale: int = 8) -> dict:
    """Export-all of ``items`` gallery images at ``scale``x: main-thread stalls with the files worker, and the
    same export run on the UI thread (how it was written before) for comparison."""
    from studio.io.export import ExportOptions
    from studio.ui.exporting import export_pictures
    from studio.ui.main_window import create_main_window

    engine, model_label = engine_source(args.model, args.device)
    window = create_main_window(engine=engine, model_name=model_label)
    window.show()
    await wait_for(lambda: window.link.is_ready or window.link.error)
    if window.link.error:
        raise SystemExit(window.link.error)
    window.state.update(prompt="grinning cat", count=items, seed=0, seed_mode="fixed")
    window.controller.generate()
    await wait_for(lambda: not window.link.generating and window.gallery.gallery.rowCount() >= items)
    ids = window.gallery.gallery.ids[:items]
    options = ExportOptions(scale=scale)
    heartbeat = Heartbeat()
    out: dict = {"model": model_label, "items": len(ids), "scale": scale}

    folder = Path(tempfile.mkdtemp(prefix="gan-studio-export-worker-"))
    heartbeat.start()
    started = time.perf_counter()
    task = window.jobs.start_export(ids, folder, options)
    await wait_for(task.done)
    out["files_worker"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "files": len(task.result()),
        "stall": heartbeat.stop(),
    }

    folder = Path(tempfile.mkdtemp(prefix="gan-studio-export-ui-thread-"))
    pictures = [window.gallery.gallery.picture(i) for i in ids]
    heartbeat.start()
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    written = export_pictures(pictures, folder, options)  # the old way: on the UI thread, in one go
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.05)
    out["ui_thread_before"] = {"seconds": round(seconds, 2), "files": len(written), "stall": heartbeat.stop()}
    window.close()
    return out


def bench_gallery(app, images) -> dict:
    from PySide6.QtWidgets import QApplication

    from studio.engine.requests import GenerationRequest
    from studio.session import gallery_store
    from studio.session.gallery_store import GalleryStore
    from studio.ui.gallery_view import GalleryView

    # Fill with the batch's real renders; each distinct image is encoded once (filling is not measured).
    encoded: dict[tuple[str, int], bytes] = {}
    for name in ("encode_png", "encode_thumbnail"):
        original = getattr(gallery_store, name)

        def memo(image, *args, _original=original, _name=name):
            key = (_name, id(image))
            if key not in encoded:
                encoded[key] = _original(image, *args)
            return encoded[key]

        setattr(gallery_store, name, memo)
    path = Path(tempfile.mkdtemp(prefix="gan-studio-gallery-")) / "gallery.sqlite"
    with GalleryStore(path) as store:
        filled = time.perf_counter()
        store.add_many(
            [
                (GenerationRequest(f"prompt {i % 97}", seed=i), images[i % len(images)], "bench")
                for i in range(10_000)
            ]
        )
        fill_s = time.perf_counter() - filled
    started = time.perf_counter()
    store = GalleryStore(path)
    view = GalleryView(store)
    view.resize(1200, 300)
    view.show()
    QApplication.processEvents()
    view.viewport().repaint()
    open_s = time.perf_counter() - started
    scrollbar = view.verticalScrollBar()
    QApplication.processEvents()  # the view opens at the newest items; measure scrolling from the top
    scrollbar.setValue(0)
    view.viewport().repaint()
    steps, step_ms = 0, []
    started = time.perf_counter()
    while scrollbar.value() < scrollbar.maximum():
        t0 = time.perf_counter()
        scrollbar.setValue(scrollbar.value() + view.viewport().height())
        view.viewport().repaint()
        QApplication.processEvents()
        step_ms.append((time.perf_counter() - t0) * 1000)
        steps += 1
    scroll_s = time.perf_counter() - started
    waited = time.perf_counter()
    while view.gallery.thumbnails_pending:  # the last page's thumbnails fill in after it is painted
        QApplication.processEvents()
    fill_last_page_ms = (time.perf_counter() - waited) * 1000
    view.close()
    store.close()
    return {
        "items": 10_000,
        "fill_seconds": round(fill_s, 2),
        "open_seconds": round(open_s, 3),
        "scroll_top_to_bottom_seconds": round(scroll_s, 3),
        "scroll_pages": steps,
        "scroll_page_p99_ms": percentile(step_ms, 99),
        "last_page_thumbnails_ms": round(fill_last_page_ms, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="model name or folder (default: emoji if installed, else a tiny test model)"
    )
    parser.add_argument("--device", help="cpu, cuda, mps")
    parser.add_argument(
        "--only", choices=("export",), help="run one part: export = 8x export-all of 100 gallery items"
    )
    args = parser.parse_args()
    if "DISPLAY" not in os.environ and "WAYLAND_DISPLAY" not in os.environ:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = Path(tempfile.mkdtemp(prefix="gan-studio-bench-home-"))
    os.environ["GAN_STUDIO_DATA_DIR"] = str(scratch / "data")  # never touch the person's own gallery
    os.environ["GAN_STUDIO_CONFIG_DIR"] = str(scratch / "config")
    from studio.app import configure_process

    configure_process()  # the same process settings the studio runs with

    import qasync
    from PySide6.QtWidgets import QApplication

    from studio.ui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app, "dark")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    if args.only == "export":
        with loop:
            export = loop.run_until_complete(bench_export(app, args))
        export["goals"] = {"p99_stall_le_50ms": export["files_worker"]["stall"]["p99_ms"] <= 50}
        print(json.dumps({"export_all_8x_100": export}, indent=2))
        return 0
    with loop:
        window_results, images = loop.run_until_complete(bench_window(app, args))
        window_results["export_all_8x_100"] = loop.run_until_complete(bench_export(app, args))
    results = {**window_results, "gallery": bench_gallery(app, images)}
    results["goals"] = {
        "p99_stall_le_50ms": max(
            results["batch_64"]["stall"]["p99_ms"],
            results["slider_drag_60hz"]["stall"]["p99_ms"],
            results["export_all_8x_100"]["files_worker"]["stall"]["p99_ms"],
        )
        <= 50,
        "gallery_open_le_1s": results["gallery"]["open_seconds"] <= 1.0,
    }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
