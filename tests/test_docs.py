"""The model card is written once: README's section and docs/model_card.md (the About box) agree, and the
shipped model's headline metrics in it are the ones its model.json holds."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_card() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## The default model")
    end = text.index("\n## ", start + 1)
    return text[start:end].strip()


def test_docs_model_card_is_the_readme_section():
    card = (ROOT / "docs" / "model_card.md").read_text(encoding="utf-8").strip()
    assert card == _readme_card().replace("](docs/", "](")


def _shipped_column(card: str) -> dict[str, str]:
    """The shipped-judge metrics table's first value column (the shipped model's), by row label."""
    lines = card.split("\n")
    header = next(
        i for i, line in enumerate(lines) if line.startswith("| metric | **v") and line.endswith("| v1 |")
    )
    assert "(shipped)**" in lines[header].split(" | ")[1]
    column = {}
    for line in lines[header + 2 :]:
        if not line.startswith("| "):
            break
        label, value = line[2:].split(" | ")[:2]
        column[label] = value
    return column


def test_card_quotes_the_shipped_metrics():
    """The shipped model's column of the card's metrics table holds model.json's numbers, to 3 or 4 digits."""
    metrics = json.loads((ROOT / "resources/models/emoji/model.json").read_text(encoding="utf-8"))["metrics"]
    column = _shipped_column(_readme_card())
    rows = {
        "gan_test_train": "GAN-test, training emoji (name prompt, seed = emoji index)",
        "gan_test_heldout": "GAN-test, held-out emoji",
        "identity_top5": "Identity top-5",
        "kid": "KID (judge features, generated training prompts vs real training emoji)",
        "seed_diversity": "Seed diversity: mean pairwise RMS distance of 8 seeds, 48 prompts (32 px)",
    }
    for key, label in rows.items():
        shown = column[label].replace("*", "").split(" ")[0]
        assert shown in (f"{metrics[key]:.3f}", f"{metrics[key]:.4f}"), (key, shown, metrics[key])
