"""What a candidate concept table costs a named prompt: its live preview and its stored image, the first model folder
(the shipped one) beside the others, one engine each on the CPU, taking turns (prints JSON).

    python benchmarks/named_bench.py v13=resources/models/emoji L1=runs/v54/L1 [--threads 1]

The prompts are 24 English names of training emoji whose row the last folder's table changes (its second rows or its
layered rows, else its plain rows, beside the first folder's table), spread evenly over them. Three passes, the order
of the folders alternating from prompt to prompt; the first pass warms each prompt's reading and is not counted.
Medians and 90th percentiles in ms (``studio.engine.bench.request_ms``: a request's wall time through the engine).
The engines are opened once per arm, in rotating order, so that each arm is opened last once: in session 54 the engine
opened last measured slower on stored images whatever its folder (a byte-identical copy of a candidate opened last
took 140.6 ms where the candidate took 103.3). The JSON gives each arm's numbers pooled over the rotations and, under
``rotations``, per rotation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from studio.engine.bench import machine_report, request_ms
from studio.engine.devices import set_threads
from studio.engine.engine import Engine
from studio.engine.requests import GenerationRequest
from studio.models.concepts import changed_concepts, read_concepts
from studio.training.dataset import load_dataset

PROMPTS = 24
PASSES = 3
KINDS = ("preview", "stored")


def changed_rows(first: Path, last: Path) -> np.ndarray:
    """The vocabulary rows whose drawing ``last``'s table changes beside ``first``'s: its second rows; with layered
    rows, the concepts whose row at any place differs from ``first``'s (a layered row gained, lost or changed; all of
    ``last``'s layered rows where none differs, as for a folder timed against a copy of itself); else its plain rows.
    Until session 76 a layered table gave all its layered rows, so the names timed for v15 to v23 were 24 of every
    layered name, not of the changed ones."""
    table = read_concepts(last / "concepts.safetensors")
    if table.full is not None:
        return np.flatnonzero((table.full != table.conditions).any(1))
    before = read_concepts(first / "concepts.safetensors")
    if table.layered is not None:
        changed = changed_concepts(before, table)
        return changed if len(changed) else np.sort(table.layered)
    return np.flatnonzero((table.conditions != before.conditions).any(1))


def measure(arms: dict[str, str], opened: list[str], names: list[str]) -> dict[str, dict[str, list[float]]]:
    """Each arm's request times (ms) for ``names``, its engine opened in the order ``opened`` and closed after."""
    engines = {name: Engine(arms[name], device="cpu") for name in opened}
    times: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in KINDS} for name in arms}
    try:
        for engine in engines.values():
            engine.wait_ready()
        for turn in range(PASSES):
            for i, prompt in enumerate(names):
                for kind in KINDS:
                    for name in list(arms) if i % 2 == 0 else list(arms)[::-1]:
                        engine = engines[name]
                        request = GenerationRequest(prompt, seed=turn * 7 + i, model=engine.info.model_name)
                        ms = request_ms(engine, request, kind == "preview")
                        if turn:
                            times[name][kind].append(ms)
    finally:
        for engine in engines.values():
            engine.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="+", help="name=model folder; the first is the reference")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    arms = dict(arm.split("=", 1) for arm in args.arms)
    folders = [Path(folder) for folder in arms.values()]
    rows = changed_rows(folders[0], folders[-1])
    data = load_dataset(args.data)
    names = [str(data.names[i]) for i in rows[:: max(1, len(rows) // PROMPTS)][:PROMPTS]]
    order = list(arms)
    rotations = [order[r + 1 :] + order[: r + 1] for r in range(len(order))]  # arm r opened last
    runs = [measure(arms, opened, names) for opened in rotations]

    def summary(values: list[float]) -> dict:
        return {
            "p50": round(float(np.median(values)), 1),
            "p90": round(float(np.percentile(values, 90)), 1),
            "n": len(values),
        }

    report = {
        "machine": machine_report(),
        "threads": args.threads,
        "arms": {name: str(folder) for name, folder in arms.items()},
        "names": names,
        **{
            name: {kind: summary([ms for run in runs for ms in run[name][kind]]) for kind in KINDS}
            for name in arms
        },
        "rotations": [
            {
                "opened": opened,
                **{name: {kind: summary(run[name][kind]) for kind in KINDS} for name in arms},
            }
            for opened, run in zip(rotations, runs)
        ],
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
