"""What a fitted concept table (studio/models/concepts.py) costs the engine, side by side without it in one run
(prints JSON). Needs a model folder that ships ``concepts.safetensors``.

    python benchmarks/concepts_bench.py [--model emoji] [--threads 1] [--repeats 40]

- ``match_ms``: finding the fitted concept nearest one new prompt (every name in every language; once per
  prompt, then cached), median over distinct prompts.
- ``name_image_ms`` / ``name_preview_ms``: one exact image / live preview of a full name ("red heart"; seeds
  differ every time, so no preview is answered from the cache), with the table and with the plain projection
  interleaved, medians.
- ``spread_image_ms`` / ``spread_preview_ms``: the same for a shared keyword with spread on ("cat": each image
  mixes its concepts' own conditions).
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
    from studio.models.concepts import ConceptConditioner

    set_threads(args.threads)
    engine = Engine(args.model, device="cpu")
    info = engine.wait_ready()
    renderer = engine._renderer  # noqa: SLF001 - the benchmark swaps the engine's own conditioner
    table = renderer.project
    if not isinstance(table, ConceptConditioner):
        raise SystemExit(f"'{args.model}' ships no concept table.")
    plain = renderer.generator.condition
    words = [
        "grinning face",
        "pizza",
        "rocket",
        "dog face",
        "Herz",
        "心",
        "corazón",
        "a red car",
        "moon",
        "tree",
    ]
    match_ms = []
    for embedding in renderer.encode(words):
        started = time.perf_counter()
        table.nearest(embedding)  # a prompt it has not matched before: the whole scan
        match_ms.append((time.perf_counter() - started) * 1000.0)

    def timed(project, prompt: str, spread: bool, seed: int, preview: bool) -> float:
        renderer.project = project
        request = GenerationRequest(prompt, seed=seed, model=info.model_name, spread=spread)
        return request_ms(engine, request, preview)

    report: dict = {
        "machine": machine_report(),
        "model": info.model_name,
        "fitted_concepts": int(table.table.fitted.sum()),
        "match_ms_median": round(statistics.median(match_ms), 2),
        "match_ms_max": round(max(match_ms), 2),
    }
    for kind, prompt, spread in (("name", "red heart", False), ("spread", "cat", True)):
        for preview in (False, True):
            # warm-up at seed 0 (caches the match); then seeds no request before used, so no preview is cached
            timing = side_by_side(
                lambda i, p=prompt, s=spread, v=preview: timed(table, p, s, 0 if i < 0 else 1000 + i, v),
                lambda i, p=prompt, s=spread, v=preview: timed(plain, p, s, 0 if i < 0 else 5000 + i, v),
                args.repeats,
            )
            report[f"{kind}_{'preview' if preview else 'image'}_ms"] = {
                "table_median": round(timing["first_median"], 2),
                "plain_median": round(timing["second_median"], 2),
                "table_vs_plain": round(timing["ratio"], 3),
            }
    renderer.project = table
    engine.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
