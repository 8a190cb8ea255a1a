"""Wording directions: what wording a name as people type it adds to its prompt embedding.

"cat emoji" is not "cat" to a sentence encoder: the Universal Sentence Encoder places it nearest the Italian
"faccina stupita" (astonished face), so a worded name missed its emoji and a worded keyword ("heart emoji")
never spread. Over training emoji's names in a few wordings and languages (:data:`FIT_WORDINGS`), the
differences ``unit(e(wording(name))) - unit(e(name))`` lie mostly in a few directions; their top right-singular
vectors, stored as ``wording.safetensors`` in a model folder, are left out of every cosine the vocabulary takes
(studio/models/vocabulary.py). A name's cosine to itself stays 1; a free sentence moves little. No weight changes.

    python -m studio.training.wording --model resources/models/emoji --data data/emoji-usem3-kw

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
    held = set(np.asarray(data.heldout_index).tolist())
    training = np.asarray([i for i in range(len(data.names)) if i not in held])
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
    from studio.models.format import load_model
    from studio.models.text import get_text_encoder
    from studio.models.vocabulary import save_wording
    from studio.training.dataset import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the model folder to write wording.safetensors into")
    parser.add_argument("--data", required=True, help="the dataset folder (its encoder must be the model's)")
    parser.add_argument("--count", type=int, default=600, help="training emoji whose names are worded")
    parser.add_argument("--directions", type=int, default=5, help="how many directions to keep")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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
    path = save_wording(Path(args.model), kept, {"fit": json.dumps(record, ensure_ascii=False)})
    print(json.dumps({"path": str(path), "directions": len(kept), **record}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
