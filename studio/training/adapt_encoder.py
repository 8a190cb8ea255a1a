"""Move a trained text-conditional model onto another prompt encoder by refitting its condition projection.

The base generator sees a prompt only through ``embed_proj``, one linear layer from the encoder's embedding to
its condition vector. So a model trained on all-MiniLM-L6-v2 (English) can read USE multilingual v3 by fitting
a new linear map, 512-d USE embedding -> the condition the old encoder gave, by weighted ridge regression:

- every English caption of a training emoji -> the condition its own MiniLM embedding gives (the model's
  English behaviour is kept);
- every caption in another language -> the condition of the same emoji's English name (what the model draws
  for that emoji), so "猫", "chat" and "Katze" reach the picture the model draws for "cat face".

Held-out emoji are never fitted: their captions measure the fit (``fit`` block of the report). Nothing else of
the generator changes, so seeds, sliders and the upsampler behave as before. The result is a normal model
folder; ``gan-studio evaluate`` scores it like any other.

    python -m studio.training.adapt_encoder --model emoji --source-data data/emoji-minilm \
        --target-data data/emoji-usem3 --out runs/emoji-usem3
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from studio.models.format import load_model, save_model
from studio.models.vocabulary import dataset_aliases, save_vocabulary
from studio.training.dataset import EmojiData, load_dataset

RIDGE = 1e-2  # relative to the mean diagonal of the weighted Gram matrix; chosen on held-out captions
ENGLISH_SHARE = 0.5  # English rows carry this share of the fit's weight however many other captions there are


def fit_targets(
    source: EmojiData, target: EmojiData, project, english_share: float = ENGLISH_SHARE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target-encoder embeddings X, condition targets Y, row weights w) for every caption of ``target``."""
    if source.names != target.names:
        raise ValueError("the two datasets describe different emoji; build both from the same packages")
    source_english = source.caption_languages == "en"
    by_caption = {
        (int(o), c): k
        for k, (o, c) in enumerate(zip(source.caption_owner, source.captions))
        if source_english[k]
    }
    name_rows = np.flatnonzero(source.caption_is_name)
    name_of = {int(source.caption_owner[k]): k for k in name_rows}
    source_conditions = project(source.caption_emb.astype(np.float32))
    english = target.caption_languages == "en"
    rows = []
    for k, (owner, caption) in enumerate(zip(target.caption_owner, target.captions)):
        owner = int(owner)
        rows.append(by_caption.get((owner, caption), name_of[owner]) if english[k] else name_of[owner])
    x = target.caption_emb.astype(np.float32)
    y = source_conditions[np.asarray(rows)]
    weights = np.where(
        english, ENGLISH_SHARE / max(1, english.sum()), (1 - ENGLISH_SHARE) / max(1, (~english).sum())
    )
    return x, y, weights.astype(np.float64)


def ridge(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, strength: float = RIDGE
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ridge regression with an unpenalised bias: (W as out x in, b)."""
    w = weights / weights.sum()
    mean_x = (w[:, None] * x).sum(0)
    mean_y = (w[:, None] * y).sum(0)
    xc, yc = x - mean_x, y - mean_y
    gram = (xc * w[:, None]).T @ xc
    gram += strength * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
    coef = np.linalg.solve(gram, (xc * w[:, None]).T @ yc)  # in x out
    return coef.T.astype(np.float32), (mean_y - mean_x @ coef).astype(np.float32)


def fit_report(pred: np.ndarray, y: np.ndarray, english: np.ndarray) -> dict:
    """Cosine between fitted and target conditions, and the share of the target variance explained."""

    def block(mask: np.ndarray) -> dict:
        if not mask.any():
            return {}
        p, t = pred[mask], y[mask]
        cosine = np.sum(p * t, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1) + 1e-8)
        explained = 1 - ((p - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum()
        return {
            "captions": int(mask.sum()),
            "cosine_mean": round(float(cosine.mean()), 4),
            "r2": round(float(explained), 4),
        }

    return {"english": block(english), "other_languages": block(~english)}


def adapt(
    model: str | Path,
    source_data: Path,
    target_data: Path,
    out: Path,
    strength: float = RIDGE,
    english_share: float = ENGLISH_SHARE,
) -> dict:
    loaded = load_model(model)
    generator = loaded.generator.eval()
    source, target = load_dataset(source_data), load_dataset(target_data)
    source_encoder = source.manifest.get("encoder")
    if source_encoder != loaded.info.conditioning.encoder:
        raise ValueError(
            f"the source dataset was encoded with {source_encoder}, the model with "
            f"{loaded.info.conditioning.encoder}"
        )

    def project(embeddings: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return generator.embed_proj(torch.from_numpy(embeddings)).numpy()

    x, y, weights = fit_targets(source, target, project, english_share)
    held = target.heldout[target.caption_owner]
    english = target.caption_languages == "en"
    weight, bias = ridge(x[~held], y[~held], weights[~held], strength)
    pred = x @ weight.T + bias
    report = {
        "source_encoder": source_encoder,
        "target_encoder": target.manifest.get("encoder"),
        "ridge": strength,
        "english_share": english_share,
        "fitted_captions": int((~held).sum()),
        "fit_train": fit_report(pred[~held], y[~held], english[~held]),
        "fit_heldout": fit_report(pred[held], y[held], english[held]),
    }
    config = generator.config
    new_config = type(config).from_json({**config.to_json(), "embed_dim": int(x.shape[1])})
    adapted = type(generator)(new_config)
    state = {k: v for k, v in generator.state_dict().items() if not k.startswith("embed_proj.")}
    state["embed_proj.weight"] = torch.from_numpy(weight)
    state["embed_proj.bias"] = torch.from_numpy(bias)
    adapted.load_state_dict(state, strict=True)
    manifest = json.loads((loaded.info.path / "model.json").read_text(encoding="utf-8"))
    for key in ("format", "architecture", "resolution", "channels", "z_dim", "files"):
        manifest.pop(key, None)
    manifest["conditioning"] = {
        **manifest.get("conditioning", {}),
        "encoder": report["target_encoder"],
        "embedding_dim": int(x.shape[1]),
    }
    training = dict(manifest.get("training", {}))
    training["encoder_adaptation"] = {k: v for k, v in report.items()}
    training["encoder_adaptation"]["target_dataset_sha256"] = target.manifest.get("sha256", "")
    manifest["training"] = training
    out = Path(out)
    save_model(
        out, manifest, adapted.eval(), loaded.upsampler.eval() if loaded.upsampler is not None else None
    )
    entries = [
        {"name": name, "group": target.groups[g], "subgroup": target.subgroups[s]}
        for name, g, s in zip(target.names, target.group, target.subgroup)
    ]
    save_vocabulary(out, entries, target.name_embeddings(), dataset_aliases(target))
    judge = loaded.info.path / "judge.safetensors"
    if judge.exists() and judge.resolve() != (out / "judge.safetensors").resolve():
        shutil.copyfile(judge, out / "judge.safetensors")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="emoji")
    parser.add_argument("--source-data", required=True, help="dataset encoded with the model's encoder")
    parser.add_argument("--target-data", required=True, help="the same emoji encoded with the new encoder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--ridge", type=float, default=RIDGE)
    parser.add_argument("--english-share", type=float, default=ENGLISH_SHARE)
    args = parser.parse_args(argv)
    report = adapt(
        args.model,
        Path(args.source_data),
        Path(args.target_data),
        Path(args.out),
        args.ridge,
        args.english_share,
    )
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
