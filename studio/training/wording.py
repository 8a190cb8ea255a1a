"""Wording directions: what wording a name as people type it adds to its prompt embedding.

"cat emoji" is not "cat" to a sentence encoder: the Universal Sentence Encoder places it nearest the Italian
"faccina stupita" (astonished face), so a worded name missed its emoji and a worded keyword ("heart emoji")
never spread. Over training emoji's names in a few wordings and languages (:data:`FIT_WORDINGS`), the
differences ``unit(e(wording(name))) - unit(e(name))`` lie mostly in a few directions; their top right-singular
vectors, stored as ``wording.safetensors`` in a model folder, are left out of every cosine the vocabulary takes
(studio/models/vocabulary.py). A name's cosine to itself stays 1; a free sentence moves little. No weight changes.

    python -m studio.training.wording --model resources/models/emoji --data data/emoji-usem3-kw

The same command stores the generic texts (:data:`GENERIC_TEXTS`: "emoji", "an emoji", "Emoji", "絵文字", …) and a
showcase (:func:`pick_showcase`): such a prompt names no emoji in particular, and with spread its seeds draw the
showcase, emoji from every group that the model draws surely by the model's own judge; and each emoji's
character, which a prompt may hold instead of its name ("🐱"). ``--name-words-below C`` (v13: 0.xx) also stores the
cosine below which a prompt is read by its words that are names ("happy dog" as "dog"; Vocabulary.name_reading).

Training and documentation only: the app reads the stored directions.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

# The wordings the directions are fitted on (a language prefix words that language's names). Rules that score
# worded names use others ("{} symbol", "fr:emoji {}", …) so the directions are checked on wordings they never saw.
FIT_WORDINGS = (
    "{} emoji",
    "an emoji of a {}",
    "{} icon",
    "a picture of a {}",
    "de:{} Emoji",
    "zh:{}的表情符号",
    "es:emoji de {}",
)

# Texts people type for any emoji, in the encoder's languages (studio/models/vocabulary.py ``Vocabulary.is_generic``).
# Only these texts: the encoder puts "om emoji" as near "emoji" (cosine 0.94) as a paraphrase, so nearness alone
# would take worded names too (docs/model_history.md, *How v10 was chosen*); a prompt is read as one of them up to case, outer
# punctuation and spacing ("EMOJI!", ``Vocabulary.reading``; *How v12 was chosen*).
GENERIC_TEXTS = (
    "emoji",
    "emojis",
    "an emoji",
    "any emoji",
    "some emoji",
    "random emoji",
    "a random emoji",
    "random emojis",
    "some emojis",
    "any emojis",
    "icon",
    "icons",
    "an icon",
    "Emoji",
    "Emojis",
    "ein Emoji",
    "émoji",
    "un emoji",
    "un émoji",
    "表情符号",
    "表情符號",
    "絵文字",
    "이모지",
    "эмодзи",
    "إيموجي",
    "อีโมจิ",
)
SHOWCASE_SIZE = 16  # spread's limit (studio/engine/spread.py SPREAD_LIMIT)
SHOWCASE_ROUNDS = (7, 8, 9)  # seed rounds the showcase is scored on (evaluation uses rounds 0-3)


def pick_showcase(
    scores: np.ndarray, groups, subgroups, names, eligible: np.ndarray, size: int = SHOWCASE_SIZE
):
    """``size`` concept indices for a prompt that names none: the groups take turns in their first appearance's
    order, each taking its best-scoring ``eligible`` concept from a subgroup not used yet (ties: the first; never a
    skin-tone variant), so 16 picks over Unicode's 9 groups give the first seven two and the last two one.
    ``scores``: per concept, how surely the model draws it."""
    ranked: dict = {}
    for i in sorted(range(len(names)), key=lambda i: (-float(scores[i]), i)):
        if eligible[i] and "skin tone" not in names[i]:
            ranked.setdefault(groups[i], []).append(i)
    picked: list[int] = []
    used: set = set()
    while len(picked) < size:
        took = False
        for group in dict.fromkeys(groups):
            pick = next((i for i in ranked.get(group, []) if subgroups[i] not in used), None)
            if pick is None or len(picked) == size:
                continue
            picked.append(pick)
            used.add(subgroups[pick])
            took = True
        if not took:
            break
    return np.asarray(picked, np.int64)


def showcase_scores(model, data, judge, rounds=SHOWCASE_ROUNDS) -> np.ndarray:
    """Per emoji of the dataset: over ``rounds`` of seeds, how often the model drawing its English name (as the
    studio draws it, spread off) lands in its own subgroup plus how often it is among the 5 real emoji nearest the
    picture (``judge``'s features); held-out emoji score 0."""
    import torch

    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.training.evaluate import drawn_generator, judge_hits
    from studio.training.judge import judge_features

    training = np.asarray(data.train_index, np.int64)
    real = judge_features(judge, rgba_uint8_to_premultiplied(torch.from_numpy(data.images128)))
    hits = judge_hits(
        drawn_generator(model),
        model.upsampler,
        data,
        judge,
        model.info.default_truncation,
        training,
        rounds,
        real_features=real,
    )
    scores = np.zeros(len(data.names))
    scores[training] = hits["gan_test"].sum(0) + hits["identity"].sum(0)
    return scores


def phrase_language(spec: str) -> tuple[str, str]:
    """``'de:{} Emoji'`` -> ``('de', '{} Emoji')``; a phrase without a language prefix words English names."""
    match = re.fullmatch(r"([a-z]{2,3}(?:_[A-Za-z]+)?):(.*)", spec, flags=re.S)
    if match and "{}" in match.group(2):
        return match.group(1), match.group(2)
    return "en", spec


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def fit_wording(
    data, encode, wordings=FIT_WORDINGS, count: int = 600, directions: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``directions`` right-singular vectors (k x D float32, orthonormal) of the differences between
    ``count`` training emoji's names (never held-out ones; ``seed`` picks them) worded each way and bare, and all
    the singular values (descending, for the report). ``encode``: texts -> embeddings."""
    training = np.asarray(data.train_index)
    picked = np.sort(np.random.default_rng(seed).choice(training, min(count, len(training)), replace=False))
    differences = []
    for spec in wordings:
        language, phrase = phrase_language(spec)
        texts = data.name_texts(language)
        names = [texts[i] for i in picked.tolist() if texts[i]]
        if not names:
            continue
        bare = _unit_rows(encode(names))
        worded = _unit_rows(encode([phrase.format(name) for name in names]))
        differences.append(worded - bare)
    if not differences:
        raise ValueError("No training emoji has a name in any of the wordings' languages.")
    _, singular, right = np.linalg.svd(np.concatenate(differences), full_matrices=False)
    return right[:directions].astype(np.float32), singular


def main() -> int:
    import torch

    from studio.models.format import load_model
    from studio.models.text import get_text_encoder
    from studio.models.vocabulary import GENERIC_COSINE, save_wording
    from studio.training.dataset import load_dataset, sha256_file
    from studio.training.judge import JUDGE_FILE, load_judge

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the model folder to write wording.safetensors into")
    parser.add_argument("--data", required=True, help="the dataset folder (its encoder must be the model's)")
    parser.add_argument("--count", type=int, default=600, help="training emoji whose names are worded")
    parser.add_argument("--directions", type=int, default=5, help="how many directions to keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", help="the judge that scores the showcase (default: the model folder's)")
    parser.add_argument(
        "--name-words-below",
        type=float,
        default=None,
        help="read a prompt no name lies this close to (cosine) by its words that are names ('happy dog' as "
        "'dog'; Vocabulary.name_reading); default: off",
    )
    args = parser.parse_args()
    if args.name_words_below is not None and not 0.5 <= args.name_words_below <= 1.0:
        parser.error("--name-words-below must lie in [0.5, 1].")
    data = load_dataset(args.data)
    model = load_model(args.model)
    if model.info.conditioning.encoder != data.manifest["encoder"]:
        parser.error("the dataset's encoder is not the model's")
    encoder = get_text_encoder(model.info.conditioning.encoder, disk_cache=False)
    kept, singular = fit_wording(
        data, encoder.encode, count=args.count, directions=args.directions, seed=args.seed
    )
    record = {
        "wordings": list(FIT_WORDINGS),
        "count": args.count,
        "seed": args.seed,
        "singular": [round(float(v), 4) for v in singular[:16]],
    }
    judge_path = Path(args.judge) if args.judge else model.info.path / JUDGE_FILE
    judge, _ = load_judge(judge_path)
    with torch.no_grad():
        scores = showcase_scores(model, data, judge)
    showcase = pick_showcase(
        scores, data.group.tolist(), data.subgroup.tolist(), list(data.names), ~data.heldout
    )
    generic = np.asarray(encoder.encode(list(GENERIC_TEXTS)), np.float32)
    shown = {  # the texts themselves are stored once, as "generic_texts" (what prompts are folded to)
        "generic_cosine": GENERIC_COSINE,
        "showcase": [str(data.names[i]) for i in showcase],
        "showcase_rounds": list(SHOWCASE_ROUNDS),
        "showcase_judge": sha256_file(judge_path)[:16],
    }
    metadata = {
        "fit": json.dumps(record, ensure_ascii=False),
        "generic": json.dumps(shown, ensure_ascii=False),
    }
    chars = [str(char) for char in data.emoji]  # spelled out as names in prompts (Vocabulary.spell_out)
    texts = list(GENERIC_TEXTS)
    path = save_wording(
        Path(args.model),
        kept,
        metadata,
        generic,
        showcase,
        GENERIC_COSINE,
        chars,
        texts,
        args.name_words_below,
    )
    print(
        json.dumps(
            {"path": str(path), "directions": len(kept), **record, "generic": texts, **shown},
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
