"""Start-up benchmark (JSON): how long a person waits for the first image, from the CLI and from the window.

Each measurement is a fresh process with the disk's file cache warm, in an empty home (no settings, no
embedding cache) unless said otherwise:

- ``cli``: ``gan-studio generate "red apple" -n 1`` wall time, median of ``--runs``: ``new_prompt`` (the
  embedding cache is empty, so the prompt encoder loads and runs) and ``seen_prompt`` (the same prompt again:
  the on-disk embedding cache answers and the encoder never loads).
- ``window``: process start -> window shown -> first preview painted, with ``last_prompt`` = "red apple"
  in the settings (offscreen Qt platform).
- ``encoders``: import + load and warm one-prompt latency of each known encoder, in fresh processes.
- ``--before PATH``: the same CLI measurements for another checkout (e.g. ``git worktree add /tmp/before
  <commit>``) run by this interpreter, side by side in the same run.

Usage: python benchmarks/startup_bench.py [--runs 5] [--before PATH] [--out docs/bench/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WINDOW = r"""
import os, sys, time
started = float(sys.argv[1])
from PySide6.QtWidgets import QApplication
from studio.ui import preview_view

marks = {}
original = preview_view.PreviewView.set_image

def set_image(self, image):
    original(self, image)
    if "first_preview_s" not in marks:
        marks["first_preview_s"] = time.time() - started
        import json
        print(json.dumps(marks), flush=True)
        os._exit(0)

preview_view.PreviewView.set_image = set_image
from studio.ui import main_window
real_show = main_window.MainWindow.show if hasattr(main_window, "MainWindow") else None
if real_show is not None:
    def show(self):
        real_show(self)
        marks.setdefault("window_shown_s", time.time() - started)
    main_window.MainWindow.show = show
import studio.app
sys.exit(studio.app.main())
"""


def _home(scratch: Path) -> dict:
    env = dict(os.environ)
    for key, sub in (
        ("GAN_STUDIO_CACHE_DIR", "cache"),
        ("GAN_STUDIO_CONFIG_DIR", "config"),
        ("GAN_STUDIO_DATA_DIR", "data"),
    ):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(scratch / sub)
    env["HOME"] = str(scratch)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def _cli_runs(tree: Path, runs: int) -> dict:
    """generate -n 1 from ``tree``: new prompts (cold embedding cache) and one prompt seen before."""
    out: dict = {"new_prompt_s": [], "seen_prompt_s": []}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        env = _home(scratch)
        command = [sys.executable, "-m", "studio", "generate"]
        for kind in ("new_prompt_s", "seen_prompt_s"):
            for i in range(runs):
                prompt = f"red apple {i}" if kind == "new_prompt_s" else "red apple"
                if kind == "new_prompt_s":
                    for cache in (scratch / "cache").glob("*"):
                        cache.unlink()
                target = scratch / f"out-{kind}-{i}"
                started = time.perf_counter()
                done = subprocess.run(
                    [*command, prompt, "-n", "1", "--seed", "7", "--out", str(target)],
                    cwd=tree,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    return {
                        "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
                    }
                out[kind].append(round(elapsed, 3))
    return {
        **out,
        "new_prompt_median_s": round(statistics.median(out["new_prompt_s"]), 3),
        "seen_prompt_median_s": round(statistics.median(out["seen_prompt_s"]), 3),
    }


def _window_runs(runs: int) -> dict:
    shown, first = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch_name:
            scratch = Path(scratch_name)
            env = _home(scratch)
            (scratch / "config" / "settings.json").write_text(json.dumps({"last_prompt": "red apple"}))
            started = time.time()
            done = subprocess.run(
                [sys.executable, "-c", _WINDOW, repr(started)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if not lines:
                return {"error": (done.stderr.strip().splitlines() or ["no preview"])[-1]}
            marks = json.loads(lines[-1])
            first.append(round(marks["first_preview_s"], 3))
            if "window_shown_s" in marks:
                shown.append(round(marks["window_shown_s"], 3))
    report = {"first_preview_s": first, "first_preview_median_s": round(statistics.median(first), 3)}
    if shown:
        report.update(window_shown_s=shown, window_shown_median_s=round(statistics.median(shown), 3))
    return report


_ENCODER = r"""
import json, sys, time
t0 = time.perf_counter()
from studio.models.text import get_text_encoder
encoder = get_text_encoder(sys.argv[1], disk_cache=False)
t1 = time.perf_counter()
encoder.inner.load()
t2 = time.perf_counter()
encoder.encode(["warm up"])
lat = []
for i in range(100):
    s = time.perf_counter(); encoder.encode([f"new prompt {i}"]); lat.append(1000 * (time.perf_counter() - s))
lat.sort()
print(json.dumps({"import_s": round(t1 - t0, 3), "load_s": round(t2 - t1, 3),
                  "encode_ms_p50": round(lat[49], 2), "encode_ms_p95": round(lat[94], 2)}))
"""


def _encoders() -> dict:
    from studio.models.text import MINILM_ID, USE_M3_ID

    out = {}
    for encoder_id in (USE_M3_ID, MINILM_ID):
        done = subprocess.run(
            [sys.executable, "-c", _ENCODER, encoder_id],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out[encoder_id] = (
            json.loads(done.stdout.strip().splitlines()[-1])
            if done.returncode == 0
            else {"error": done.stderr.strip()[-300:]}
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", default=None, help="another checkout to measure side by side (CLI only)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks.encoder_bench import machine

    report: dict = {"machine": machine(), "runs": args.runs}
    if args.before:
        report["cli_before"] = _cli_runs(Path(args.before).resolve(), args.runs)
    report["cli"] = _cli_runs(ROOT, args.runs)
    report["window"] = _window_runs(args.runs)
    report["encoders"] = _encoders()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
