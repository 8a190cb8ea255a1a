"""What a live preview costs while a prompt is typed: every keystroke makes a new prompt (prints JSON).

    python benchmarks/typing_bench.py [--threads 1] [--rounds 2]

Each prompt is typed letter by letter; every prefix is a prompt the engine has not seen, so each preview pays for
reading it (name words, studio/models/vocabulary.py), matching it against every name, other-language name and
shared keyword (the concept table and spread, on as in the window) and one row's forward pass. Two engines on the
same model take turns keystroke by keystroke: ``now`` scans the vocabulary as the code does, ``before`` as it did
until session 48 (int8 rows turned to float 8,192 at a time for one prompt and 2,048 for a batch of runs of words,
and no prompt's or run's name scores kept: ``vocabulary._int8_scores``, ``SCANS_KEPT`` and ``RUNS_KEPT`` set before
each call), so the machine's noise falls on both alike. The text encoder is process-wide with its own cache: a third engine types everything
once first, so neither arm pays for encoding and the numbers are what the vocabulary and the renderer cost.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

PROMPTS = [
    "a dog wearing a party hat",
    "smiling face with sunglasses",
    "perro feliz",
    "red heart",
    "cat and dog",
    "rocket",
]


def _summary(values: list[float]) -> dict:
    array = np.asarray(values)
    return {
        "p50_ms": round(float(np.percentile(array, 50)), 2),
        "p90_ms": round(float(np.percentile(array, 90)), 2),
        "max_ms": round(float(array.max()), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="emoji")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads torch may use (1: one core)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="times each prompt is typed (fresh engines each)"
    )
    args = parser.parse_args()

    from studio.engine.bench import machine_report, request_ms
    from studio.engine.devices import set_threads
    from studio.engine.engine import Engine
    from studio.engine.requests import SPREAD_DEFAULT, GenerationRequest
    from studio.models import vocabulary

    set_threads(args.threads)
    scan = vocabulary._int8_scores  # noqa: SLF001 - the benchmark swaps the scan for the one it replaced

    def scan_before(codes, scales, query, kept=None, chunk=None):
        return scan(codes, scales, query, kept, 8192 if query.ndim == 1 else 2048)

    arms = {
        "now": (scan, vocabulary.SCANS_KEPT, vocabulary.RUNS_KEPT),
        "before": (scan_before, 0, 0),
    }

    def preview(engine: Engine, text: str, seed: int) -> float:  # spread as the window sets it
        request = GenerationRequest(text, seed=seed, model=engine.info.model_name, spread=SPREAD_DEFAULT)
        return request_ms(engine, request, preview=True)

    times: dict[str, list[float]] = {name: [] for name in arms}
    prefixes = [prompt[:end] for prompt in PROMPTS for end in range(1, len(prompt) + 1)]
    model_name = ""
    for round_ in range(args.rounds):
        engines = {name: Engine(args.model, device="cpu") for name in ["warm", *arms]}
        for engine in engines.values():
            model_name = engine.wait_ready().model_name
        for text in prefixes:  # the encoder's cache learns every reading and its name-word runs
            preview(engines["warm"], text, round_)
        for i, text in enumerate(prefixes):
            for name in list(arms) if i % 2 == 0 else list(arms)[::-1]:  # who goes first alternates
                vocabulary._int8_scores, vocabulary.SCANS_KEPT, vocabulary.RUNS_KEPT = arms[name]
                times[name].append(preview(engines[name], text, round_))
        for engine in engines.values():
            engine.close()
    vocabulary._int8_scores, vocabulary.SCANS_KEPT, vocabulary.RUNS_KEPT = arms["now"]
    report = {
        "machine": machine_report(),
        "model": model_name,
        "prompts": PROMPTS,
        "previews_per_arm": len(times["now"]),
        "encoder": "cached (a third engine typed every prefix first)",
        **{name: _summary(values) for name, values in times.items()},
    }
    report["now_vs_before_p50"] = round(float(np.median(times["now"]) / np.median(times["before"])), 3)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
