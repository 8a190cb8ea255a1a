"""Choose, per training emoji, between two concept tables for the same weights: keep the second table's row (a joint
fit's, e.g. rule 122's T3) only where it draws that emoji better than the first's (the shipped table) on seeds no rule
draws, and write the first folder with the chosen rows in.

    python scripts/row_choice.py --base resources/models/emoji --rows runs/v67/T3r --data data/emoji-usem3-kw \
        --judge judge-5500=benchmarks/judge/judge-5500.safetensors --judge shipped=resources/models/emoji/judge.safetensors \
        --out runs/v68/C1 --json runs/v68/C1.json --threads 2

Both folders must hold the same base weights, upsampler and plain rows (the second a copy of the first with another
``concepts.safetensors``). Each fitted training emoji is drawn with each table's own row (psi 1, spread off) at
``--seeds`` seeds (2 by default) ``SCREEN_SEED + seeds x concept + k`` (far above every rule's rounds) and upsampled;
per row and table, the means over the seeds of: the L1 at 128 px to the real emoji's render (premultiplied RGBA), each
judge's cosine between the picture's features and the real emoji's, and the deep-dip px (the hearts gate's count). The
second table's row is kept where **every** judge's cosine rises, the L1 does not rise, and its deep dips stay within
``--margin`` px of the larger of the first row's and the real emoji's own (an outline as notched as the real one is no
tear); with ``--detail F``, also only where at every seed its interior detail (concept_fit's ``detail_per_px``) is at
least F x the first row's at the same z (rule 123's looks: without it six of 24 pictures drew plainer); with ``--marks
F``, also only where at every seed its dark-mark px (``evaluate.dark_marks``: eyes, mouths, flecks) are at least F x the
first row's (rule 125's looks: an orangutan lost its eye while its interior detail rose), or with ``--marks-real`` at
least F x the smaller of the first row's and the real emoji's own (a drawing more speckled than the real emoji may lose
the excess: session 70 found the marks floor turning away a smiling face that gained its dark sunglasses, one broad
dark band in place of many specks); with ``--enclosed N``, also
only where at every seed it has at most N more see-through px enclosed where the real emoji is solid than the first row
(``holes.enclosed_where_solid``; rule 126's looks: finger gaps drawn as enclosed holes). One judge alone misses what
another sees (session 66: judge-5500 sees T3's grinning face lose its grin, the shipped judge does not), and L1 alone
rewards a flat mouth. Every other emoji keeps the first table's row (layered or plain) byte for byte, and held-out names
borrow as the first table lends. A row the second table draws exactly as the first is not scored (it cannot be kept).

With ``--share S`` the second table's rows are first moved S of the way from the first table's row of the same emoji
(its layered row, or its plain row at every place): a lower rung of a ladder, for the emoji whose whole row failed a
guard (session 68: ``--base`` v17's folder, whose rows already taken from T3 are then the same in both and not scored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.concepts import (
    ConceptConditioner,
    ConceptConditions,
    changed_concepts,
    concepts_metadata,
    load_concepts,
    save_concepts,
)
from studio.models.format import CONCEPTS_FILE, load_model, read_model_info
from studio.models.holes import deep_dips, enclosed_where_solid
from studio.models.vocabulary import load_vocabulary
from studio.training.concept_fit import detail_per_px
from studio.training.dataset import load_dataset
from studio.training.evaluate import dark_marks, latents
from studio.training.judge import judge_features, load_judge

SCREEN_SEED = 3_000_000_000
SEEDS = 2
MARGIN = 30.0  # px: concept_screen's --tear
CLOSING = 7  # px at 128 px, the hearts gate's


@torch.no_grad()
def row_scores(
    model,
    table,
    concepts: np.ndarray,
    real: torch.Tensor,
    judges: dict,
    enclosed: bool = True,
    batch: int = 128,
    seeds: int = SEEDS,
) -> dict:
    """Per concept, the means over ``seeds`` seeds of the L1 to ``real`` (premultiplied 128 px), each judge's cosine
    to the real emoji's features and the deep dips, and per seed the interior detail, dark marks and (``enclosed``: a
    flood fill, the slowest of them) the see-through px enclosed where the real emoji is solid, for ``table``'s rows
    through the model's weights."""
    generator, upsampler = model.generator.eval(), model.upsampler.eval()
    rows = ConceptConditioner(generator, load_vocabulary(model.info), table).of_concepts(concepts).float()
    reals = {name: F.normalize(judge_features(judge, real), dim=1) for name, judge in judges.items()}
    sums: dict[str, np.ndarray] = {}
    for k in range(seeds):
        z = latents([SCREEN_SEED + seeds * int(c) + k for c in concepts], generator.config.z_dim, 1.0)
        pictures = torch.cat(
            [
                upsampler(generator.synthesize(z[i : i + batch], rows[i : i + batch])).float()
                for i in range(0, len(z), batch)
            ]
        )
        drawn = {"l1": (pictures - real).abs().mean((1, 2, 3)), "dips": deep_dips(pictures, CLOSING).float()}
        # per seed, the same z in both tables: interior detail and dark-mark px
        sums[f"detail_{k}"] = detail_per_px(pictures).astype(np.float64)
        sums[f"marks_{k}"] = dark_marks(pictures).numpy().astype(np.float64)
        if enclosed:
            sums[f"enclosed_{k}"] = enclosed_where_solid(pictures, real).numpy().astype(np.float64)
        for name, judge in judges.items():
            drawn[name] = (F.normalize(judge_features(judge, pictures), dim=1) * reals[name]).sum(1)
        for key, value in drawn.items():
            sums[key] = sums.get(key, 0.0) + value.numpy().astype(np.float64) / seeds
    return sums


def choose(
    first: dict,
    second: dict,
    real_dips: np.ndarray,
    judges,
    margin: float = MARGIN,
    detail: float = 0.0,
    marks: float = 0.0,
    enclosed: float = float("inf"),
    seeds: int = SEEDS,
    real_marks: np.ndarray | None = None,
) -> np.ndarray:
    """Where the second table's row is kept: every judge's cosine rises, L1 does not, the deep dips stay within
    ``margin`` of the larger of the first row's and the real emoji's own, and (``detail`` > 0) at every seed its
    interior detail is at least ``detail`` x the first row's at the same z, and (``marks`` > 0) its dark-mark px
    (eyes, mouths, flecks: ``evaluate.dark_marks``) at least ``marks`` x the first row's (with ``real_marks``, the real
    emoji's own dark-mark px, x the smaller of the two), and (``enclosed`` finite) its
    see-through px enclosed where the real emoji is solid (``holes.enclosed_where_solid``: holes, not notches) at most
    ``enclosed`` more than the first row's; "every seed" is each of the ``seeds`` the scores were drawn at."""
    keep = second["l1"] <= first["l1"]
    for name in judges:
        keep &= second[name] > first[name]

    def at_every_seed(key: str, holds) -> np.ndarray:
        return np.logical_and.reduce([holds(second[f"{key}_{k}"], first[f"{key}_{k}"]) for k in range(seeds)])

    if detail > 0:
        keep &= at_every_seed("detail", lambda mine, theirs: mine >= detail * theirs)
    if marks > 0:
        ceiling = np.inf if real_marks is None else np.asarray(real_marks, np.float64)
        keep &= at_every_seed("marks", lambda mine, theirs: mine >= marks * np.minimum(theirs, ceiling))
    if np.isfinite(enclosed):
        keep &= at_every_seed("enclosed", lambda mine, theirs: mine <= theirs + enclosed)
    return keep & (second["dips"] <= np.maximum(first["dips"], real_dips) + margin)


def toward(first: ConceptConditions, second: ConceptConditions, share: float) -> ConceptConditions:
    """``second`` with each of its layered rows moved ``share`` of the way from ``first``'s row of the same concept (its
    layered row, or its plain row at every place); share 1 gives ``second`` itself."""
    if not 0.0 < share <= 1.0:
        raise ValueError("A share lies in (0, 1].")
    if second.layers is None:
        raise ValueError("The second table has no layered rows to move.")
    if share == 1.0:
        return second
    start = first.place_rows(places=second.places)[second.layered]
    moved = start + np.float32(share) * (second.layers - start)
    return dataclasses.replace(second, layers=moved.astype(np.float32))


def merged_table(
    first: ConceptConditions, second: ConceptConditions, chosen: np.ndarray
) -> ConceptConditions:
    """``first`` with the layered rows of the concepts ``chosen`` (numbers) taken from ``second``, with second's lent
    flags; every other concept keeps first's row, layered or plain."""
    if not (
        np.array_equal(first.conditions, second.conditions) and np.array_equal(first.fitted, second.fitted)
    ):
        raise ValueError("The two tables must share their plain rows.")
    if second.layers is None:
        raise ValueError("The second table has no layered rows to choose from.")
    chosen = set(np.asarray(chosen, np.int64).tolist())
    source = {int(c): k for k, c in enumerate(second.layered)}
    if not chosen <= set(source):
        raise ValueError("Every chosen concept needs a layered row in the second table.")
    rows, numbers, lent = [], [], []
    firsts = {} if first.layers is None else {int(c): k for k, c in enumerate(first.layered)}
    for concept in sorted(set(firsts) | chosen):
        table, k = (second, source[concept]) if concept in chosen else (first, firsts[concept])
        rows.append(table.layers[k])
        numbers.append(concept)
        lent.append(True if table.lent is None else bool(table.lent[k]))
    if not rows:
        return first
    return ConceptConditions(
        first.conditions, first.fitted, first.low, first.high, first.row_low, first.row_high,
        first.full, first.full_margin, first.full_net_margin,
        np.stack(rows).astype(np.float32), np.asarray(numbers, np.int64), np.asarray(lent, bool),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="model folder whose table is the first")
    parser.add_argument("--rows", required=True, help="the same folder with the second table")
    parser.add_argument("--data", required=True)
    parser.add_argument("--judge", action="append", required=True, help="name=judge.safetensors (repeatable)")
    parser.add_argument("--margin", type=float, default=MARGIN)
    parser.add_argument(
        "--detail", type=float, default=0.0, help="keep a row only where its interior detail is at least this x the "
        "first row's at every seed (0: no such floor; rule 123's looks found pictures plainer without it)"
    )  # fmt: skip
    parser.add_argument(
        "--marks", type=float, default=0.0, help="keep a row only where its dark-mark px are at least this x the "
        "first row's at every seed (0: no such floor; rule 125's looks found pictures that lost an eye or a face "
        "while the interior detail rose)"
    )  # fmt: skip
    parser.add_argument(
        "--marks-real", action="store_true", help="hold the marks floor to the smaller of the first row's dark-mark "
        "px and the real emoji's own (a drawing more speckled than the real emoji may lose the excess)"
    )  # fmt: skip
    parser.add_argument(
        "--enclosed", type=float, default=float("inf"), help="keep a row only where at every seed it has at most this "
        "many more see-through px enclosed where the real emoji is solid than the first row (default: no such check; "
        "rule 126's looks found finger gaps drawn as enclosed holes)"
    )  # fmt: skip
    parser.add_argument(
        "--share", type=float, default=1.0, help="move the second table's rows this share of the way from the first "
        "table's rows before choosing (default 1: as they are; 0.5: a half rung)"
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, default=SEEDS, help=f"screen seeds per row (default {SEEDS}; seed k of concept c is "
        f"{SCREEN_SEED:,} + seeds x c + k): more seeds, fewer rows whose holes come and go with z"
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="new model folder (must not exist)")
    parser.add_argument("--json", help="per-row scores and the choice")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seeds < 1:
        raise ValueError("The screen needs one seed or more.")
    base, rows_folder, out = Path(args.base), Path(args.rows), Path(args.out)
    if out.exists():
        raise FileExistsError(f"{out} exists")
    for name in ("generator.safetensors", "upsampler.safetensors"):
        if (base / name).read_bytes() != (rows_folder / name).read_bytes():
            raise ValueError(f"The two folders must share {name}.")
    model = load_model(base)
    vocabulary = load_vocabulary(model.info)
    first = load_concepts(model.info, vocabulary)
    second = toward(first, load_concepts(read_model_info(rows_folder), vocabulary), args.share)
    data = load_dataset(args.data)
    if list(vocabulary.names) != list(data.names):
        raise ValueError("The data's emoji are not the vocabulary's concepts.")
    train = np.asarray(data.train_index)
    layered = np.zeros(len(first.fitted), bool)
    layered[second.layered] = True
    concepts = train[first.fitted[train] & layered[train]]
    concepts = concepts[np.isin(concepts, changed_concepts(first, second))]  # the same row cannot be kept
    judges = {name: load_judge(Path(path))[0] for name, path in (j.split("=", 1) for j in args.judge)}
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128[concepts]))
    real_dips = deep_dips(real, CLOSING).float().numpy()
    real_marks = dark_marks(real).numpy().astype(np.float64) if args.marks_real else None
    scores = {
        label: row_scores(
            model, table, concepts, real, judges, enclosed=bool(np.isfinite(args.enclosed)), seeds=args.seeds
        )
        for label, table in (("first", first), ("second", second))
    }
    guards = {"margin": args.margin, "detail": args.detail, "marks": args.marks, "enclosed": args.enclosed}
    keep = choose(
        scores["first"],
        scores["second"],
        real_dips,
        judges,
        **guards,
        seeds=args.seeds,
        real_marks=real_marks,
    )
    table = merged_table(first, second, concepts[keep])
    record = {
        "script": "scripts/row_choice.py", "base": str(base), "rows": str(rows_folder),
        "judges": dict(j.split("=", 1) for j in args.judge),
        **{k: (v if np.isfinite(v) else None) for k, v in guards.items()},  # no enclosed check: None
        "share": args.share, **({"marks_real": True} if args.marks_real else {}),
        "seeds": args.seeds, "screen_seed": SCREEN_SEED, "rows_scored": int(len(concepts)), "kept": int(keep.sum()),
    }  # fmt: skip
    shutil.copytree(base, out)
    meta = concepts_metadata(base / CONCEPTS_FILE)
    save_concepts(out, table, {**meta, "row_choice": json.dumps(record)})
    print(json.dumps(record))
    if args.json:
        per_row = {
            f"{label}_{key}": [round(float(v), 5) for v in values]
            for label, table_scores in scores.items()
            for key, values in table_scores.items()
        }
        report = {
            **record,
            "concepts": concepts.tolist(),
            "kept_rows": keep.tolist(),
            "real_dips": real_dips.tolist(),
            **({} if real_marks is None else {"real_marks": real_marks.tolist()}),
            **per_row,
        }
        Path(args.json).write_text(json.dumps(report) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
