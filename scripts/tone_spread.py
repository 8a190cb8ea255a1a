"""Rule 143's numbers: what spreading a full name over its skin tones (studio/engine/spread.py ``SPREAD_TONES``) does
to what the studio draws, measured before (tones off) and after (on) in one run on one model folder. Prints JSON.

    python scripts/tone_spread.py --model resources/models/emoji --data data/emoji-usem3-kw --out runs/v78/tones.json
    python scripts/tone_spread.py --look runs/v78/look.png   # the look grid only: before | after, 12 names x 8 seeds
    python scripts/tone_spread.py --by-kind                   # as drawn today: identity by kind of name, round 0

Parts (the rule's bars): ``exactness`` (every English name's matches before and after: which changed, and whether
each is the tone-less base of skin-tone variants), ``keywords`` (evaluate's ``keyword_metrics`` on the card's 50
shared keywords, per judge and arm), ``names`` (the changed training names at ``--rounds``: the share of pictures whose
judge top-5 holds the named emoji itself, and any emoji of its base (a tone), per judge and arm; and at round 0, the
seed evaluate uses, how much the whole card's identity top-5 and GAN-test move), ``cost`` (median milliseconds of
``Spreader.matches`` per prompt, fresh cache, over the keywords and changed names). ``--pick hard`` draws the after arm
with one tone's own row a seed (:func:`hard_tones`) instead of spread's mix. ``--by-kind`` instead scores every
training name as the studio draws it (spread off) at round 0, split into ``plain`` (no skin tones), ``base`` (the
tone-less emoji of a family with tones) and ``variant`` (a skin tone): is a tone drawn worse than its base?
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

JUDGES = {
    "judge-5500": "benchmarks/judge/judge-5500.safetensors",
    "shipped": "resources/models/emoji/judge.safetensors",
}
LOOK_NAMES, LOOK_SEED, LOOK_ROUND = 12, 143, 3134


def tone_kinds(names: list[str]) -> np.ndarray:
    """Per name: ``variant`` (it names a skin tone), ``base`` (some other name is one of its tones) or ``plain``."""
    from studio.models.vocabulary import _skin_tone_base

    bases = {_skin_tone_base(name) for name in names if "skin tone" in name}
    return np.asarray(["variant" if "skin tone" in n else "base" if n in bases else "plain" for n in names])


def changed_names(vocabulary, embeddings: np.ndarray) -> tuple[np.ndarray, dict]:
    """The English names whose spread matches differ with tones on, and the exactness counts."""
    from studio.engine.spread import Spreader

    off, on = Spreader(vocabulary, tones=False), Spreader(vocabulary, tones=True)
    changed = [i for i, e in enumerate(embeddings) if not np.array_equal(off.matches(e), on.matches(e))]
    # the tone-less bases: the names whose skin_tones lists more than themselves
    families = {i for i in range(len(vocabulary.names)) if len(vocabulary.skin_tones(i)) > 1}
    outside = [vocabulary.names[i] for i in changed if i not in families]
    return np.asarray(changed, np.int64), {
        "names": len(embeddings),
        "changed": len(changed),
        "tone_bases": len(families),
        "changed_not_a_tone_base": outside,
    }


def match_cost(vocabulary, embeddings: np.ndarray) -> dict:
    """Median ms per :meth:`Spreader.matches` on a fresh cache, tones off and on, interleaved prompt by prompt."""
    from studio.engine.spread import Spreader

    off, on = Spreader(vocabulary, tones=False), Spreader(vocabulary, tones=True)
    times: dict[str, list[float]] = {"before": [], "after": []}
    for e in embeddings:
        for arm, spreader in (("before", off), ("after", on)):
            start = time.perf_counter()
            spreader.matches(e)
            times[arm].append(1000 * (time.perf_counter() - start))
    return {arm: round(float(np.median(t)), 3) for arm, t in times.items()} | {"prompts": len(embeddings)}


def hard_tones(vocabulary):
    """A spreader with tones on whose seeds each draw one tone's own row (the z's top weight, all of it) where a
    prompt spreads over one emoji's tones, instead of spread's softmax mix of them (``--pick hard``: a probe of
    whether rule 143's mixes or the tones' rows drew worse)."""
    from studio.engine.spread import Spreader

    class HardTones(Spreader):
        def mix(self, embedding, z, chosen=None):
            mixed = super().mix(embedding, z, chosen)
            if mixed is None or chosen is not None:
                return mixed
            found, weights = mixed
            if not np.array_equal(found, self.vocabulary.skin_tones(int(found[0]))[: len(found)]):
                return mixed  # several emoji, not one emoji's tones: spread as ever
            return found, np.eye(len(found))[int(np.argmax(weights))]

    return HardTones(vocabulary, tones=True)


def arm_generators(model, vocabulary, pick: str = "mix") -> dict:
    from studio.engine.spread import Spreader
    from studio.training.evaluate import SpreadGenerator, drawn_generator

    drawn = drawn_generator(model)
    after = hard_tones(vocabulary) if pick == "hard" else Spreader(vocabulary, tones=True)
    return {
        "before": SpreadGenerator(drawn, Spreader(vocabulary, tones=False)).eval(),
        "after": SpreadGenerator(drawn, after).eval(),
    }


def name_hits(pictures: torch.Tensor, rep: np.ndarray, judge, real_feats, data) -> dict[str, np.ndarray]:
    """Per picture of emoji ``rep``: its own emoji in the judge's top-5, any emoji of its base there, its subgroup."""
    from studio.training.evaluate import nearest_real
    from studio.training.judge import judge_features

    features = judge_features(judge, pictures)
    top5 = nearest_real(features, real_feats).numpy()
    base = np.asarray(data.base, np.int64)
    with torch.no_grad():
        subgroup = judge.classifier(features).argmax(1).numpy()
    return {
        "exact": (top5 == rep[:, None]).any(1),
        "family": (base[top5] == base[rep][:, None]).any(1),
        "gan_test": subgroup == np.asarray(data.subgroup, np.int64)[rep],
    }


def measure(args) -> dict:
    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.models.format import load_model
    from studio.models.vocabulary import load_vocabulary
    from studio.training.dataset import load_dataset
    from studio.training.evaluate import keyword_metrics, round_pictures, shared_keywords
    from studio.training.judge import judge_features, load_judge

    torch.manual_seed(0)
    model, data = load_model(args.model), load_dataset(args.data)
    vocabulary = load_vocabulary(model.info)
    english = data.name_embeddings("en").astype(np.float32)
    changed, exactness = changed_names(vocabulary, english)
    train = np.setdiff1d(changed, data.heldout_index)
    keywords = shared_keywords(data, 50)
    prompts = np.concatenate(
        [data.caption_emb[[row for row, _ in keywords]].astype(np.float32), english[train]]
    )
    out = {
        "model": str(args.model),
        "psi": model.info.default_truncation,
        "exactness": exactness
        | {"changed_training": len(train), "changed_heldout": len(changed) - len(train)},
        "cost_ms": match_cost(vocabulary, prompts),
    }
    psi = model.info.default_truncation
    generators = arm_generators(model, vocabulary, args.pick)
    rounds = [int(r) for r in args.rounds.split(",")]
    pictures = {
        arm: round_pictures(g, model.upsampler, data, psi, train, rounds) for arm, g in generators.items()
    }
    first = {arm: round_pictures(g, model.upsampler, data, psi, train, [0]) for arm, g in generators.items()}
    train_count = len(data.named_index("en"))
    real128 = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    out["keywords"], out["names"] = {}, {}
    for judge_name, path in JUDGES.items():
        judge, _ = load_judge(Path(path))
        real_feats = judge_features(judge, real128)
        out["keywords"][judge_name] = {
            arm: {
                k: round(v, 4)
                for k, v in keyword_metrics(g, model.upsampler, data, judge, psi, real_feats).items()
            }
            for arm, g in generators.items()
        }
        names: dict = {"rounds": rounds, "names": len(train)}
        for arm in generators:
            hits = name_hits(*pictures[arm], judge, real_feats, data)
            names[arm] = {k: round(float(v.mean()), 4) for k, v in hits.items()}
            at0 = name_hits(*first[arm], judge, real_feats, data)
            names[arm + "_round0_hits"] = {k: int(v.sum()) for k, v in at0.items()}
        names["round0_card_delta"] = {
            k: round((names["after_round0_hits"][k] - names["before_round0_hits"][k]) / train_count, 4)
            for k in ("exact", "gan_test")
        } | {"training_names": train_count}
        out["names"][judge_name] = names
    return out


def by_kind(args) -> dict:
    """Identity top-5 (own emoji; any emoji of its base) and GAN-test of every training name by :func:`tone_kinds`."""
    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.models.format import load_model
    from studio.training.dataset import load_dataset
    from studio.training.evaluate import drawn_generator, round_pictures
    from studio.training.judge import judge_features, load_judge

    model, data = load_model(args.model), load_dataset(args.data)
    train = data.named_index("en")
    kinds = tone_kinds([str(name) for name in data.names])[train]
    pictures = round_pictures(
        drawn_generator(model).eval(), model.upsampler, data, model.info.default_truncation, train, [0]
    )
    real128 = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    out: dict = {"model": str(args.model), "round": 0, "spread": False}
    for judge_name, path in JUDGES.items():
        judge, _ = load_judge(Path(path))
        hits = name_hits(*pictures, judge, judge_features(judge, real128), data)
        out[judge_name] = {
            kind: {"names": int((kinds == kind).sum())}
            | {k: round(float(v[kinds == kind].mean()), 4) for k, v in hits.items()}
            for kind in ("plain", "base", "variant")
        } | {"all": {k: round(float(v.mean()), 4) for k, v in hits.items()}}
    return out


def look(args) -> Path:
    """12 changed training names by a seeded choice, 8 seeds each: before (left) and after (right)."""
    from PIL import Image, ImageDraw

    from studio.models.format import load_model
    from studio.models.vocabulary import load_vocabulary
    from studio.training.dataset import load_dataset
    from studio.training.evaluate import composite, generate

    model, data = load_model(args.model), load_dataset(args.data)
    vocabulary = load_vocabulary(model.info)
    english = data.name_embeddings("en").astype(np.float32)
    changed, _ = changed_names(vocabulary, english)
    train = np.setdiff1d(changed, data.heldout_index)
    picked = np.sort(np.random.default_rng(LOOK_SEED).choice(train, LOOK_NAMES, replace=False))
    generators = arm_generators(model, vocabulary, args.pick)
    rows = []
    for index in picked:
        seeds = [int(index) + 100000 * LOOK_ROUND + k for k in range(8)]
        prompt = torch.from_numpy(english[[int(index)] * 8])
        halves = [
            np.concatenate(
                list(composite(generate(g, model.upsampler, prompt, seeds, model.info.default_truncation))), 1
            )
            for g in generators.values()
        ]
        gap = np.full((halves[0].shape[0], 32, 3), 255, np.uint8)
        rows.append(np.concatenate([halves[0], gap, halves[1]], 1))
    grid = Image.fromarray(np.concatenate(rows, 0))
    draw = ImageDraw.Draw(grid)
    for r, index in enumerate(picked):
        draw.text((4, 128 * r + 2), f"{r + 1}. {data.names[index]}", fill=(0, 0, 0))
    path = Path(args.look)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resources/models/emoji")
    parser.add_argument("--data", default="data/emoji-usem3-kw")
    parser.add_argument("--rounds", default="3130,3131,3132,3133")
    parser.add_argument("--out", default="", help="write the JSON here too")
    parser.add_argument("--look", default="", help="write only the look grid to this PNG")
    parser.add_argument("--by-kind", action="store_true", help="identity by kind of name instead")
    parser.add_argument(
        "--pick",
        choices=("mix", "hard"),
        default="mix",
        help="after: spread's mix of the tones, or one tone a seed",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.look:
        print(look(args))
        return 0
    result = by_kind(args) if args.by_kind else measure(args)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
