"""How much faster a joint-fit step runs with the upsampler channels-last (as ``load_model`` gives it on CPU) than in
the default layout: one step of the rule recipe (``studio.training.joint_fit``: solid 1.3, keep 4, detail 0.3) on the
first ``--count`` training emoji, each layout in turn on fresh copies of the same weights (prints JSON).

    python benchmarks/fit_layout_bench.py --model resources/models/emoji --data data/emoji-usem3-kw \\
        [--critic benchmarks/critic/critic-v4.safetensors] [--count 512] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from studio.engine.bench import machine_report

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resources/models/emoji")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--critic", default="benchmarks/critic/critic-v4.safetensors")
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from studio.models.concepts import load_concepts
    from studio.training import joint_fit as jf
    from studio.training.concept_fit import _fit_inputs

    loaded, vocabulary, data, _names, _start, images, critic = _fit_inputs(
        args.model, args.data, args.critic, 0.0
    )
    table = load_concepts(loaded.info, vocabulary)
    train = data.train_index[: args.count]
    start = jf.start_rows(table, train, loaded.generator.places)
    keep = jf.locality_set(loaded.generator, data, table, count=args.count // 2)
    solid = jf.solid_inside(data.images128[train])
    recipe = jf.Recipe(1, jf.WEIGHT_LR, 4.0, 1.3, jf.FEATURE_MATCH, 9012, 0.0, 0.3)
    seconds: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    rows = {}
    for _ in range(args.repeats):
        for name, layout in LAYOUTS.items():
            generator = copy.deepcopy(loaded.generator)
            upsampler = copy.deepcopy(loaded.upsampler).to(memory_format=layout)
            started = time.perf_counter()
            rows[name], _losses = jf.tune(
                generator, upsampler, critic, images[: len(train)], solid, start, keep, recipe
            )
            seconds[name].append(round(time.perf_counter() - started, 2))
    print(
        json.dumps(
            {
                "machine": machine_report(),
                "emoji": len(train),
                "seconds_a_step": seconds,
                "nchw_vs_channels_last": round(min(seconds["nchw"]) / min(seconds["channels_last"]), 3),
                "rows_max_abs_diff": float((rows["nchw"] - rows["channels_last"]).abs().max()),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
