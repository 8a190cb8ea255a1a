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


def test_card_quotes_the_shipped_metrics():
    metrics = json.loads((ROOT / "resources/models/emoji/model.json").read_text(encoding="utf-8"))["metrics"]
    card = _readme_card()
    for key in ("gan_test_train", "gan_test_heldout", "identity_top5", "kid", "seed_diversity"):
        assert f"{metrics[key]:.3f}" in card, key
