"""What spread costs the engine, side by side with spread off in one run (prints JSON).

    python benchmarks/spread_bench.py [--threads 1] [--repeats 40]

- ``match_ms``: matching one new prompt against every name, other-language name and shared keyword of the
  model's vocabulary (once per prompt; the engine keeps the last 256), median over distinct prompts.
- ``image_ms``: one exact image of a shared keyword ("cat", seeds differ every time so nothing is cached but
  the prompt), spread on and off interleaved, median; ``preview_ms``: the same as a live preview (one row).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="emoji")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads torch may use (1: one core)")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    from studio.engine.bench import machine_report, request_ms, side_by_side
    from studio.engine.devices import set_threads
    from studio.engine.engine import Engine
    from studio.engine.requests import GenerationRequest

    set_threads(args.threads)
    engine = Engine(args.model, device="cpu")
    info = engine.wait_ready()
    renderer = engine._renderer  # noqa: SLF001 - the benchmark times the engine's own encoder and spreader
    spreader = renderer.spreader
    vocabulary = spreader.vocabulary
    words = ["cat", "heart", "flag", "fruit", "bird", "moon", "ball", "tree", "car", "star", "sun", "music"]
    embeddings = renderer.encode(words)
    match_ms = []
    for embedding in embeddings:
        started = time.perf_counter()
        spreader.matches(embedding)  # a prompt it has not matched before: the whole scan
        match_ms.append((time.perf_counter() - started) * 1000.0)

    def timed(spread: bool, i: int, preview: bool) -> float:  # i = -1: the warm-up, which caches the match
        request = GenerationRequest(
            "cat", seed=0 if i < 0 else 1000 + i, model=info.model_name, spread=spread
        )
        return request_ms(engine, request, preview)

    report: dict = {
        "machine": machine_report(),
        "model": info.model_name,
        "concepts": len(vocabulary.names),
        "keywords": 0 if vocabulary.keywords is None else len(vocabulary.keywords.codes),
        "match_ms_median": round(statistics.median(match_ms), 2),
        "match_ms_max": round(max(match_ms), 2),
    }
    for preview in (False, True):
        timing = side_by_side(
            lambda i, preview=preview: timed(True, i, preview),
            lambda i, preview=preview: timed(False, i, preview),
            args.repeats,
        )
        report["preview_ms" if preview else "image_ms"] = {
            "spread_on_median": round(timing["first_median"], 2),
            "spread_off_median": round(timing["second_median"], 2),
            "on_vs_off": round(timing["ratio"], 3),
        }
    engine.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
