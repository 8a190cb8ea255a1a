"""The numbers of a concept-table ship rule (rules 79-85 of the model's history): model folders side by side on seed
rounds no evaluation has drawn, under each judge, as the engine draws them (second rows and their checks included).

    python scripts/rows_verify.py --arm v13=resources/models/emoji --arm W9=runs/v47/W9 --rounds 280,290 \
        --json runs/v47/verify_280_290.json

Per arm, spread off, every training and held-out emoji prompted by its English name at seed = index + 100,000 x
round for each round: GAN-test (the judge's subgroup) on training and held-out emoji, identity top-5 (the emoji among
the five nearest real ones in judge features) and KID against the real training emoji; the deep dips a picture has
(7 px closing at 128 px) and those where the real emoji is solid; the pictures' interior detail and outline length
(``summarize_detail``), also over just the pictures where an arm's differ from the first arm's; then, spread on, the
keyword metrics (precision / coverage / RMS between seeds) of ``keyword_metrics``. Judges are ``name=path``; by
default judge-5500 and the first arm's own (shipped) judge.

``--look ROUND --look-out PREFIX`` (an arm after the first whose table has second or layered rows; the last such)
writes the rules' look: the 24 training emoji at seed = index + 100,000 x ROUND whose shown second-row picture has the most wide dips beyond
the first row's picture (``PREFIX_net.png``) and the 24 that open the most wide dips where the first row's picture is
solid (``PREFIX_new.png``), and the 24 whose shown picture has the least interior detail beside the first row's
(``PREFIX_detail.png``): real | first row | shown, on grey 240 and on dark grey 64, where a hole shows dark; beside
each grid, ``PREFIX_<order>_alpha.png`` shows the same rows' alpha (first row | shown; white opaque, black
see-through, red part see-through), an aid to telling a hole from a dark painted mark. An arm
whose table has layered rows and no second rows is looked at beside the first arm instead: real | first arm |
this arm, over the pictures where the two differ.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from studio.engine.spread import Spreader
from studio.models.cgan import premultiplied_to_rgba_uint8, rgba_uint8_to_premultiplied
from studio.models.format import load_model
from studio.models.holes import CLEAR_ALPHA, TEAR_CLOSING, deep_dips, dips_where_solid
from studio.models.vocabulary import load_vocabulary
from studio.training.dataset import load_dataset
from studio.training.evaluate import (
    SpreadGenerator,
    drawn_generator,
    keyword_metrics,
    kid,
    nearest_real,
    picture_detail,
    round_pictures,
    summarize_detail,
)
from studio.training.judge import judge_features, load_judge


def score_arm(
    folder: Path, data, judges: dict, reals: dict, rounds: list[int]
) -> tuple[dict, tuple, torch.Tensor]:
    """One arm's numbers (see the module's docstring), and per picture of a training emoji its ``picture_detail``
    parts and its exported bytes (to find where two arms differ without holding two arms' float pictures)."""
    model = load_model(folder)
    drawn = drawn_generator(model)
    labels = torch.from_numpy(data.subgroup.astype(np.int64))
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    row: dict = {}
    kept = None
    for part, index in (("train", data.train_index), ("heldout", data.heldout_index)):
        pictures, rep = round_pictures(drawn, model.upsampler, data, 1.0, index, rounds)
        for name, judge in judges.items():
            features = judge_features(judge, pictures)
            with torch.no_grad():
                hits = judge.classifier(features).argmax(1) == labels[rep]
            row[f"{name} {part} gan_test"] = round(float(hits.float().mean()), 4)
            if part == "train":
                top5 = nearest_real(features, reals[name])
                found = (top5 == torch.from_numpy(rep)[:, None]).any(1)
                row[f"{name} identity_top5"] = round(float(found.float().mean()), 4)
                row[f"{name} kid"] = round(kid(features, reals[name][torch.from_numpy(data.train_index)]), 4)
        if part == "train":
            row["dips"] = round(float(deep_dips(pictures, TEAR_CLOSING).float().mean()), 2)
            holes = dips_where_solid(pictures, real[rep], TEAR_CLOSING)
            row["holes_where_real_solid"] = round(float(holes.float().mean()), 2)
            parts = picture_detail(pictures)
            row["detail"] = summarize_detail(*parts)
            kept = (parts, premultiplied_to_rgba_uint8(pictures))
    spread = SpreadGenerator(drawn, Spreader(load_vocabulary(model.info)))
    for name, judge in judges.items():
        found = keyword_metrics(spread, model.upsampler, data, judge, 1.0, reals[name])
        row[f"{name} keywords"] = [
            round(found["keyword_precision"], 4),
            round(found["keyword_coverage"], 2),
            round(found["keyword_rms"], 4),
        ]
    return row, *kept


def _detail(pictures: torch.Tensor) -> torch.Tensor:
    """Per picture, its interior detail a px (``picture_detail``); NaN-free: pictures with under 200 interior px
    count as having none, so they never head the detail look."""
    detail, interior, _ = picture_detail(pictures)
    return torch.where(interior >= 200, detail / interior.clamp(min=1.0), torch.zeros_like(detail))


def write_looks(
    folder: Path, data, look_round: int, prefix: str, against: Path | None = None, count: int = 24
) -> dict:
    """The three look grids of ``--look`` (see the module's docstring); returns the names and counts shown. A table
    without second rows (layered rows) is looked at beside ``against`` (the first arm): its pictures where they
    differ from that arm's, in place of the shown second-row pictures beside the first row's."""
    from studio.models.holes import second_or_first
    from studio.training.evaluate import ConceptGenerator

    model = load_model(folder)
    drawn = drawn_generator(model)
    index = data.train_index
    if drawn.full is None:
        base = load_model(against)
        first, _ = round_pictures(drawn_generator(base), base.upsampler, data, 1.0, index, [look_round])
        shown, _ = round_pictures(drawn, model.upsampler, data, 1.0, index, [look_round])
        took = (shown != first).flatten(1).any(1)
        return _save_looks(data, index, first, shown, took, prefix, count)
    first, _ = round_pictures(
        ConceptGenerator(model.generator, drawn.conditioner), model.upsampler, data, 1.0, index, [look_round]
    )
    second, _ = round_pictures(
        ConceptGenerator(model.generator, drawn.full), model.upsampler, data, 1.0, index, [look_round]
    )
    table = drawn.full.table
    shown, took = second_or_first(second, first, table.full_margin, table.full_net_margin)
    return _save_looks(data, index, first, shown, took, prefix, count)


def _alpha_tile(picture: torch.Tensor) -> np.ndarray:
    """One picture's alpha as the exported pixels carry it, grey (white opaque, black see-through), red
    where it is part see-through (alpha 0.1-0.9, soft outlines too): a hole or a faint spot reads at a glance."""
    alpha = premultiplied_to_rgba_uint8(picture)[0, ..., 3].numpy()
    tile = np.repeat(alpha[..., None], 3, -1)
    tile[(alpha > 255 * CLEAR_ALPHA) & (alpha < 230)] = (220, 40, 40)  # black below: what counts as a hole
    return tile


def _save_looks(data, index, first, shown, took, prefix: str, count: int) -> dict:
    """The grids of the pictures ``shown`` beside ``first`` where ``took``, in the three orders."""
    from PIL import Image

    from studio.models.holes import net_wide_dips, new_wide_dips
    from studio.training.evaluate import composite

    orders = {
        "net": net_wide_dips(shown, first).float(),
        "new": new_wide_dips(shown, first).float(),
        "detail": _detail(first) - _detail(shown),
    }
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128[index]))
    report = {"shown_share": round(float(took.float().mean()), 4)}
    for order, excess in orders.items():
        excess[~took] = -1e9
        picked = torch.argsort(excess, descending=True)[:count].tolist()
        rows = [
            np.concatenate(
                [composite(x[[j]], grey)[0] for grey in (240, 64) for x in (real, first, shown)], 1
            )
            for j in picked
        ]
        Image.fromarray(np.concatenate(rows, 0)).save(f"{prefix}_{order}.png", optimize=True)
        alphas = [np.concatenate([_alpha_tile(x[[j]]) for x in (first, shown)], 1) for j in picked]
        Image.fromarray(np.concatenate(alphas, 0)).save(f"{prefix}_{order}_alpha.png", optimize=True)
        value = (lambda v: round(v, 4)) if order == "detail" else int
        report[order] = [(str(data.names[index[j]]), value(float(excess[j]))) for j in picked]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arm", action="append", required=True, help="name=model folder")
    parser.add_argument("--rounds", required=True, help="comma-separated seed rounds, e.g. 280,290")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--judge", action="append", default=[], help="name=judge.safetensors (repeatable)")
    parser.add_argument("--look", type=int, default=None, help="the seed round of the look grids")
    parser.add_argument("--look-out", default="runs/look", help="the look grids' path prefix")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arms = [a.split("=", 1) for a in args.arm]
    rounds = [int(r) for r in args.rounds.split(",")]
    judge_paths = dict(j.split("=", 1) for j in args.judge) or {
        "judge-5500": "benchmarks/judge/judge-5500.safetensors",
        "shipped": str(Path(arms[0][1]) / "judge.safetensors"),
    }
    data = load_dataset(args.data)
    judges = {name: load_judge(path)[0] for name, path in judge_paths.items()}
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    reals = {name: judge_features(judge, real) for name, judge in judges.items()}
    report: dict = {"rounds": rounds, "judges": judge_paths}
    for name, folder in arms:
        started = time.time()
        report[name], parts, pixels = score_arm(Path(folder), data, judges, reals, rounds)
        if name == arms[0][0]:
            base_parts, base_pixels = parts, pixels
        else:  # where this arm's picture differs from the first arm's: both arms' detail there
            differs = (pixels != base_pixels).flatten(1).any(1)
            report[name]["detail where it differs"] = {
                "pictures": int(differs.sum()),
                arms[0][0]: summarize_detail(*(x[differs] for x in base_parts)),
                name: summarize_detail(*(x[differs] for x in parts)),
            }
        report[name]["minutes"] = round((time.time() - started) / 60, 1)
        print(name, json.dumps(report[name]), flush=True)
    if args.look is not None:
        from studio.models.concepts import read_concepts

        tables = [Path(folder) / "concepts.safetensors" for _, folder in arms[1:]]
        looked = [
            t.parent
            for t in tables
            if t.is_file() and (read_concepts(t).full is not None or read_concepts(t).layers is not None)
        ]
        if not looked:
            parser.error("--look needs an arm after the first whose concept table has second or layered rows")
        report["look"] = write_looks(looked[-1], data, args.look, args.look_out, Path(arms[0][1]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
