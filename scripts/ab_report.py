"""Compare base generators side by side: every metric of `gan-studio evaluate` with one or more judges, the
shared-keyword seed metrics, and one sample grid of the same prompts and seeds per arm.

    python scripts/ab_report.py --data data/emoji-usem3-kw --judge runs/judge2.safetensors \
        --arm a=runs/ab/a-all/snapshots/g_ema_0003125.safetensors --arm b=... \
        --shipped resources/models/emoji --shipped-data data/emoji-minilm \
        --json docs/bench/ab.json --grid docs/ab_samples.png

An arm is ``name=snapshot`` (its ``config.json`` beside it; every such arm uses the upsampler of
``--upsampler``, default the shipped model's) or ``name=FOLDER``, a model folder drawn as the studio draws it
(its concept table, its upsampler). ``--shipped`` adds a whole model folder as a row, evaluated on the dataset
built with its own encoder (``--shipped-data``) and prompted with the same keyword texts through that encoder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from studio.models.cgan import BaseConfig, BaseGenerator, rgba_uint8_to_premultiplied
from studio.models.format import load_model, read_model_info, resolve_model
from studio.models.text import get_text_encoder
from studio.training.dataset import load_dataset
from studio.training.evaluate import (
    ConceptGenerator,
    SpreadGenerator,
    VariedGenerator,
    WordedNames,
    composite,
    drawn_generator,
    evaluate_model,
    generate,
    heldout_gan_test,
    keyword_metrics,
)
from studio.training.judge import judge_features, load_judge
from studio.training.wording import phrase_language

GRID_PROMPTS = ("grinning face", "pizza", "rocket", "flag: Japan", "dog face", "cat", "heart", "猫")
GRID_SEEDS = (0, 1, 2, 3, 4, 5)
CONCEPTS_SUFFIX = "#concepts"


def load_snapshot(path: Path) -> BaseGenerator:
    """A snapshot (``config.json`` beside it); ``SNAPSHOT#concepts`` draws it with the fitted concept table
    beside it (``concepts.safetensors``, studio/models/concepts.py) matched against the shipped vocabulary."""
    from safetensors.torch import load_file

    if path.name.endswith(CONCEPTS_SUFFIX):
        from studio.models.concepts import CONCEPTS_FILE, ConceptConditioner, read_concepts
        from studio.models.vocabulary import load_vocabulary
        from studio.training.evaluate import ConceptGenerator

        generator = load_snapshot(path.with_name(path.name[: -len(CONCEPTS_SUFFIX)]))
        vocabulary = load_vocabulary(load_model(Path("resources/models/emoji")).info)
        table = read_concepts(path.parent / CONCEPTS_FILE)
        return ConceptGenerator(generator, ConceptConditioner(generator, vocabulary, table))
    config = BaseConfig.from_json(json.loads((path.parent / "config.json").read_text(encoding="utf-8")))
    generator = BaseGenerator(config)
    generator.load_state_dict(load_file(str(path)))
    return generator.eval()


def regated(generator: ConceptGenerator, low: float, high: float) -> ConceptGenerator:
    """The same generator and concept table with one gate for every row, rising from ``low`` to ``high`` (a
    table's gate per row, if it has one, is dropped)."""
    from dataclasses import replace

    from studio.models.concepts import ConceptConditioner

    if not -1.0 <= low < high <= 1.0:
        raise SystemExit(f"A gate must rise within [-1, 1]: {low}:{high}.")
    conditioner = generator.conditioner
    table = replace(conditioner.table, low=low, high=high, row_low=None, row_high=None)
    return ConceptGenerator(
        generator.generator,
        ConceptConditioner(generator.generator, conditioner.vocabulary, table),
        generator.upsampler,
    )


def grid_rows(generator, upsampler, encoder, psi: float) -> np.ndarray:
    emb = torch.from_numpy(np.asarray(encoder.encode(list(GRID_PROMPTS)), np.float32))
    rows = []
    for k in range(len(GRID_PROMPTS)):
        images = generate(generator, upsampler, emb[[k] * len(GRID_SEEDS)], GRID_SEEDS, psi)
        rows.append(np.concatenate(list(composite(images)), axis=1))
    return np.concatenate(rows, axis=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--judge", action="append", required=True)
    parser.add_argument("--arm", action="append", default=[])
    parser.add_argument("--upsampler", default="resources/models/emoji")
    parser.add_argument("--shipped", default=None)
    parser.add_argument("--shipped-data", default=None)
    parser.add_argument("--shipped-label", default="shipped", help="the --shipped row's name")
    parser.add_argument("--psi", type=float, default=0.8)
    parser.add_argument("--limit", type=int, default=None, help="training emoji to score (default: all)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--grid", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--grid-only", action="store_true", help="draw --grid without scoring the arms")
    parser.add_argument(
        "--language", action="append", default=[], help="also score name prompts in these CLDR languages"
    )
    parser.add_argument(
        "--fresh-seeds",
        type=int,
        default=0,
        help="also score held-out GAN-test on K fresh seeds per emoji (rounds 1..K) in every language",
    )
    parser.add_argument(
        "--variety",
        type=float,
        action="append",
        default=[],
        help="also score every arm as the engine renders it at this variety (rows NAME@V); repeatable",
    )
    parser.add_argument(
        "--strength",
        type=float,
        action="append",
        default=[],
        help="also score every arm as the engine renders it at this prompt strength (rows NAME*S); repeatable",
    )
    parser.add_argument(
        "--keyword-phrase",
        action="append",
        default=[],
        help="also score the shared keywords worded this way, e.g. 'a {}' (keys kw[PHRASE]_...); repeatable",
    )
    parser.add_argument(
        "--name-phrase",
        action="append",
        default=[],
        help="also score the name prompts worded this way, e.g. '{} emoji' or 'de:{} Emoji' (names in that "
        "language), through the dataset's encoder (keys name[PHRASE]_...); repeatable",
    )
    parser.add_argument(
        "--gate",
        action="append",
        default=[],
        help="also score every arm with a concept table at this gate LOW:HIGH (the cosines between which a "
        "prompt takes its nearest concept's fitted condition; rows NAME~LOW:HIGH); repeatable",
    )
    parser.add_argument(
        "--spread",
        action="store_true",
        help="also score every arm as the engine renders it with spread on (rows NAME+spread; the "
        "vocabulary of --upsampler's model folder)",
    )
    parser.add_argument(
        "--spread-only", action="store_true", help="with --spread: score only the spread rows"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    upsampler = load_model(Path(args.upsampler)).upsampler.eval()
    encoder = get_text_encoder(data.manifest["encoder"], disk_cache=False)
    judges = [(Path(p).stem, *load_judge(Path(p))) for p in args.judge]
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    arms: list[tuple[str, BaseGenerator, object, object, object]] = []
    folders: dict[str, Path] = {}  # arm -> its model folder (its vocabulary spreads its prompts)
    for spec in args.arm:
        name, path = spec.split("=", 1)
        if (Path(path) / "model.json").is_file():
            folders[name] = Path(path)
            model = load_model(Path(path))
            arms.append((name, drawn_generator(model).eval(), model.upsampler.eval(), data, None))
        else:
            arms.append((name, load_snapshot(Path(path)), upsampler, data, None))
    if args.shipped:
        model = load_model(Path(args.shipped))
        shipped_encoder = get_text_encoder(model.info.conditioning.encoder, disk_cache=False)
        arms.insert(
            0,
            (
                args.shipped_label,
                model.generator.eval(),
                model.upsampler.eval(),
                load_dataset(args.shipped_data),
                shipped_encoder,
            ),
        )
    arms += [
        (f"{name}@{v:g}", VariedGenerator(generator, v), *rest)
        for v in args.variety
        for name, generator, *rest in list(arms)
    ]
    arms += [
        (f"{name}*{s:g}", VariedGenerator(generator, 0.0, s), *rest)
        for s in args.strength
        for name, generator, *rest in list(arms)
        if "@" not in name
    ]
    tabled = [arm for arm in arms if isinstance(arm[1], ConceptGenerator)]
    for spec in args.gate:
        low, high = (float(x) for x in spec.split(":"))
        arms += [
            (f"{name}~{low:g}:{high:g}", regated(generator, low, high), *rest)
            for name, generator, *rest in tabled
        ]
    if args.spread:
        from studio.engine.spread import Spreader
        from studio.models.vocabulary import load_vocabulary

        spreaders: dict[Path, Spreader] = {}

        def spreader(arm: str) -> Spreader:
            """A model-folder arm (and its @/*/~ variants) spreads through its own vocabulary, others through
            --upsampler's."""
            folder = next(
                (
                    f
                    for n, f in folders.items()
                    if arm == n or (arm.startswith(n) and arm[len(n) : len(n) + 1] in ("@", "*", "~"))
                ),
                Path(args.upsampler),
            )
            if folder not in spreaders:
                spreaders[folder] = Spreader(load_vocabulary(read_model_info(resolve_model(folder))))
            return spreaders[folder]

        spread = [
            (f"{name}+spread", SpreadGenerator(generator, spreader(name)), *rest)
            for name, generator, *rest in arms
        ]
        arms = spread if args.spread_only else arms + spread
    report: dict = {"data": args.data, "psi": args.psi, "variety": args.variety, "judges": {}, "arms": {}}
    caches: dict = {}
    grids = []
    real_feats = {} if args.grid_only else {name: judge_features(judge, real) for name, judge, _ in judges}
    for name, generator, arm_upsampler, arm_data, arm_encoder in arms:
        report["arms"][name] = {}
        for judge_name, judge, info in [] if args.grid_only else judges:
            report["judges"][judge_name] = info
            started = time.time()
            cache = caches.setdefault((judge_name, id(arm_data)), {})
            metrics: dict = {}
            for language in ("en", *args.language):  # English: every metric; others: name prompts only
                scored = evaluate_model(
                    generator,
                    arm_upsampler,
                    arm_data,
                    judge,
                    psi=args.psi,
                    limit=args.limit,
                    upsampler_eval=False,
                    real_cache=cache,
                    keywords=0,
                    language=language,
                )
                prefix = "" if language == "en" else f"{language}_"
                if language == "en":
                    metrics.update(scored)
                else:
                    for key in ("gan_test_train", "gan_test_heldout", "identity_top5", "kid"):
                        metrics[f"{prefix}{key}"] = scored[key]
                if args.fresh_seeds > 0:
                    metrics[f"{prefix}gan_test_heldout_fresh"] = heldout_gan_test(
                        generator,
                        arm_upsampler,
                        arm_data,
                        judge,
                        args.psi,
                        range(1, args.fresh_seeds + 1),
                        language,
                    )
            encode = None if arm_encoder is None else arm_encoder.encode
            metrics.update(
                keyword_metrics(
                    generator, arm_upsampler, data, judge, args.psi, real_feats[judge_name], encode=encode
                )
            )
            for spec in args.name_phrase:
                language, phrase = phrase_language(spec)
                worded = evaluate_model(
                    generator, arm_upsampler, WordedNames(arm_data, encoder.encode, phrase), judge,
                    psi=args.psi, limit=args.limit, upsampler_eval=False, real_cache=cache, keywords=0,
                    language=language,
                )  # fmt: skip
                for key in ("gan_test_train", "gan_test_heldout", "identity_top5", "kid"):
                    metrics[f"name[{spec}]_{key}"] = worded[key]
            for phrase in args.keyword_phrase:
                worded = keyword_metrics(
                    generator, arm_upsampler, data, judge, args.psi, real_feats[judge_name],
                    encode=(arm_encoder or encoder).encode, phrase=phrase,
                )  # fmt: skip
                metrics.update({f"kw[{phrase}]_{key}": value for key, value in worded.items()})
            metrics["seconds"] = round(time.time() - started, 1)
            report["arms"][name][judge_name] = {
                k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
            }
            print(name, judge_name, json.dumps(report["arms"][name][judge_name]), flush=True)
        grids.append((name, grid_rows(generator, arm_upsampler, arm_encoder or encoder, args.psi)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.grid:
        label_w = 150
        blocks = []
        for name, rows in grids:
            canvas = Image.new("RGB", (label_w + rows.shape[1], rows.shape[0]), (255, 255, 255))
            canvas.paste(Image.fromarray(rows), (label_w, 0))
            draw = ImageDraw.Draw(canvas)
            draw.text((6, 6), name, fill=(0, 0, 0))
            for k, prompt in enumerate(GRID_PROMPTS):
                draw.text(
                    (6, 24 + k * 128 + 50), prompt if prompt.isascii() else "(zh) cat", fill=(60, 60, 60)
                )
            blocks.append(np.asarray(canvas))
        Image.fromarray(np.concatenate(blocks, axis=0)).save(args.grid)
        print(f"wrote {args.grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
