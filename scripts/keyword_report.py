"""Where a model's shared-keyword precision comes from: every shared keyword (``evaluate.shared_keywords``, CLDR keywords
four or more emoji carry) drawn as the studio draws it (spread on) at ``keyword_rows.py``'s seeds, each draw sorted by
what spread did with it, and the precision of each kind (a draw is a hit when its nearest real emoji in the judge's
features carries the keyword). Prints JSON.

    python scripts/keyword_report.py --model runs/v76/v24 --keyword-seed 4100000000

Kinds: ``alone``, a keyword spread leaves as it is (it fits fewer than two concepts: ``one_base`` when every emoji that
carries it is one emoji's skin tones); otherwise by the concept the draw's mix weighs most, ``layered`` (it has a
layered row), ``plain`` (a fitted row, not layered) or ``no_row`` (a held-out emoji's name: it borrows); and by that
concept's weight in the mix.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

WEIGHT_BANDS = (0.0, 0.6, 0.9, 0.99)  # lower edges of the top concept's weight bands


def draw_kinds(
    mix, carriers: np.ndarray, base: np.ndarray, fitted: np.ndarray, layered: np.ndarray
) -> list[str]:
    """The kinds a draw belongs to (see the module's text): ``mix`` is spread's (concepts, weights) or None."""
    if mix is None:
        one = len({int(base[c]) for c in carriers}) == 1
        return ["alone", "alone: one_base" if one else "alone: other"]
    concepts, weights = mix
    top = int(concepts[int(np.argmax(weights))])
    row = "layered" if layered[top] else "plain" if fitted[top] else "no_row"
    band = max(edge for edge in WEIGHT_BANDS if float(np.max(weights)) >= edge)
    carries = "top carries the keyword" if top in set(carriers.tolist()) else "top does not carry it"
    return ["spread", f"spread: {row}", f"spread: top weight >= {band:g}", f"spread: {carries}"]


def tally(kinds: list[list[str]], hits: np.ndarray) -> dict:
    """Draws and precision per kind, kinds in name order (each family's total before its parts)."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for draw, hit in zip(kinds, hits):
        for kind in draw:
            groups[kind].append(bool(hit))
    return {
        kind: {"draws": len(groups[kind]), "precision": round(float(np.mean(groups[kind])), 4)}
        for kind in sorted(groups)
    }


def main() -> int:
    import sys

    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(__file__).parent))
    from keyword_rows import KEYWORD_SEED, draw_mixes, keyword_draws, nearest_of_draws

    from studio.engine.spread import Spreader
    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.models.concepts import load_concepts
    from studio.models.format import load_model
    from studio.models.vocabulary import load_vocabulary
    from studio.training.dataset import load_dataset
    from studio.training.evaluate import shared_keywords
    from studio.training.judge import judge_features, load_judge

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a model folder with a concept table")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--judge", default="benchmarks/judge/judge-5500.safetensors")
    parser.add_argument("--seeds", type=int, default=8, help="draws a keyword")
    parser.add_argument("--keyword-seed", type=int, default=KEYWORD_SEED)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    keywords = shared_keywords(data, count=10**6)
    judge = load_judge(Path(args.judge))[0].eval()
    real = F.normalize(
        judge_features(judge, rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))), dim=1
    )
    model = load_model(Path(args.model))
    vocabulary = load_vocabulary(model.info)
    table = load_concepts(model.info, vocabulary)
    if table is None:
        raise SystemExit(f"{args.model} has no concept table.")
    layered = np.zeros(len(table.fitted), bool)
    if table.layered is not None:
        layered[table.layered] = True
    spreader = Spreader(vocabulary)
    rows, seed_list = keyword_draws(data, keywords, args.seeds, args.keyword_seed)
    nearest = nearest_of_draws(model, spreader, rows, seed_list, {"judge": judge}, {"judge": real})["judge"]
    mixes = draw_mixes(model, spreader, rows, seed_list)
    owners = np.repeat(np.arange(len(keywords)), args.seeds)
    hits = np.array([np.isin(nearest[i], keywords[owners[i]][1]) for i in range(len(nearest))])
    kinds = [
        draw_kinds(mix, keywords[owners[i]][1], data.base, table.fitted, layered)
        for i, mix in enumerate(mixes)
    ]
    report = {
        "model": args.model, "judge": args.judge, "keywords": len(keywords), "seeds": args.seeds,
        "keyword_seed": args.keyword_seed, "draws": len(hits), "precision": round(float(hits.mean()), 4),
        "kinds": tally(kinds, hits),
    }  # fmt: skip
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
