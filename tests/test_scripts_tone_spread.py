"""scripts/tone_spread.py (rule 143): which names spreading over skin tones changes, and how a picture's judge top-5
is read as a hit on the named emoji itself or on any emoji of its base."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from conftest import HashTextEncoder, load_script

from studio.models.vocabulary import Vocabulary

NAMES = ["thumbs up", "thumbs up: dark skin tone", "cat", "ok hand", "ok hand: light skin tone"]


def test_changed_names_are_the_tone_less_bases_only():
    embeddings = HashTextEncoder().encode(NAMES)
    vocabulary = Vocabulary(names=NAMES, groups=[""] * len(NAMES), embeddings=embeddings)
    changed, counts = load_script("tone_spread").changed_names(vocabulary, embeddings)
    assert changed.tolist() == [0, 3]
    assert counts == {"names": 5, "changed": 2, "tone_bases": 2, "changed_not_a_tone_base": []}


class _Judge(torch.nn.Module):
    """Features are the pictures themselves; the subgroup logits are the first three features."""

    def classifier(self, features):
        return features[:, :3]


def test_name_hits_reads_exact_family_and_subgroup(monkeypatch):
    import studio.training.judge as judge_module

    monkeypatch.setattr(judge_module, "judge_features", lambda judge, pictures: pictures)
    # eight real emoji with one-hot features: 0-2 one base (0 and its tones 1, 2), the others single bases
    real = torch.eye(8)
    data = SimpleNamespace(
        base=np.array([0, 0, 0, 3, 4, 5, 6, 7]), subgroup=np.array([0, 0, 0, 2, 1, 1, 2, 2])
    )
    pictures = torch.zeros(2, 8)
    pictures[0, [1, 3, 4, 5, 6]] = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6])  # prompted as 0: tone 1 nearest
    pictures[1, [7, 6, 5, 4, 2]] = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6])  # prompted as 3: not in its top-5
    hits = load_script("tone_spread").name_hits(pictures, np.array([0, 3]), _Judge(), real, data)
    assert hits["exact"].tolist() == [False, False]
    assert hits["family"].tolist() == [True, False]  # a tone of the named base counts for the family only
    assert hits["gan_test"].tolist() == [False, True]  # subgroup logits [0, 1, 0] vs 0; [0, 0, 0.6] vs 2


def test_tone_kinds_tells_plain_names_bases_and_variants():
    kinds = load_script("tone_spread").tone_kinds(
        NAMES + ["kiss: woman, man", "kiss: woman, man, light skin tone"]
    )
    # a couple's tones belong to the emoji named before the first colon ("kiss"), as Vocabulary.skin_tones has them
    assert kinds.tolist() == ["base", "variant", "plain", "base", "variant", "plain", "variant"]


def test_hard_tones_gives_a_seed_one_tone_and_leaves_other_spreads_mixed():
    from studio.engine.latents import seeded_z

    names = [
        "thumbs up",
        "thumbs up: dark skin tone",
        "thumbs up: light skin tone",
        "cat face",
        "grinning cat",
    ]
    encoder = HashTextEncoder()
    vocabulary = Vocabulary(names=names, groups=[""] * len(names), embeddings=encoder.encode(names))
    spreader = load_script("tone_spread").hard_tones(vocabulary)
    z = seeded_z(5, 16)
    found, weights = spreader.mix(encoder.encode(["thumbs up"])[0], z)
    assert found.tolist() == [0, 1, 2] and sorted(weights.tolist()) == [0.0, 0.0, 1.0]
    # a prompt that lists several emoji itself is mixed as spread always mixes it
    listed, mixed = spreader.mix(encoder.encode(["x"])[0], z, chosen=[3, 4])
    assert listed.tolist() == [3, 4] and mixed.min() > 0.0  # softmax weights, never exactly one-hot
