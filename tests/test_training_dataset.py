"""The emoji dataset builder on a handful of emoji (needs the Debian packages; skipped where they are absent)."""

from __future__ import annotations

import numpy as np
import pytest

from studio.training import dataset as ds

HANDFUL = [
    "grinning face",
    "dog face",
    "flag: Japan",
    "waving hand",
    "waving hand: dark skin tone",
    "red heart",
]


def _sources_or_skip():
    try:
        return ds.find_sources()
    except ds.MissingSourcesError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    _sources_or_skip()
    from conftest import HashTextEncoder

    out = tmp_path_factory.mktemp("emoji-data")
    manifest = ds.build_dataset(out, encoder=HashTextEncoder(), only=HANDFUL, log=lambda _: None)
    return out, manifest, ds.load_dataset(out)


def test_captions_and_manifest(built):
    out, manifest, data = built
    assert sorted(data.names) == sorted(HANDFUL)
    assert manifest["count"] == len(HANDFUL)
    assert set(manifest["packages"]) == set(ds.PACKAGES)
    assert manifest["sha256"] == ds.sha256_file(out / ds.DATA_FILE)
    dog = data.names.index("dog face")
    dog_captions = [c for c, o in zip(data.captions, data.caption_owner) if o == dog]
    assert dog_captions[0] == "dog face"  # the emoji-test name first
    assert any("pet" in c for c in dog_captions)  # a CLDR keyword
    assert any("animal-mammal" in c.replace(" ", "-") for c in dog_captions)  # the subgroup
    assert data.caption_emb.shape == (len(data.captions), 384)
    assert data.subgroups[data.subgroup[dog]] == "animal-mammal"
    assert data.groups[data.group[dog]] == "Animals & Nature"


def test_images_keep_alpha(built):
    _, _, data = built
    assert data.images128.shape == (len(HANDFUL), 128, 128, 4) and data.images128.dtype == np.uint8
    assert data.images32.shape == (len(HANDFUL), 32, 32, 4)
    for image in data.images128:
        alpha = image[..., 3]
        assert alpha[0, 0] == 0 or alpha[-1, -1] == 0  # transparent background
        assert alpha.max() == 255
        # cropped to the box and centred: touches two opposite edges
        rows, cols = np.flatnonzero(alpha.max(1)), np.flatnonzero(alpha.max(0))
        assert (rows[0] <= 1 and rows[-1] >= 126) or (cols[0] <= 1 and cols[-1] >= 126)


def test_split_is_stable_and_by_base(built):
    _, _, data = built
    hand = [data.names.index(n) for n in ("waving hand", "waving hand: dark skin tone")]
    assert data.base[hand[0]] == data.base[hand[1]]
    assert data.heldout[hand[0]] == data.heldout[hand[1]]
    # a fixed function of the base emoji, whatever else is built
    records = {r.name: r for r in ds.parse_emoji_test(ds.find_sources().emoji_test)}
    for i, name in enumerate(data.names):
        assert data.heldout[i] == ds.is_heldout(records[name].base_key)
    fraction = np.mean([ds.is_heldout(r.base_key) for r in records.values()])
    assert 0.05 < fraction < 0.2


def test_missing_packages_sentence(monkeypatch, tmp_path):
    monkeypatch.setattr(ds, "FONT_CANDIDATES", (tmp_path / "none.ttf",))
    monkeypatch.setattr(ds, "CLDR_ROOT_CANDIDATES", (tmp_path,))
    with pytest.raises(ds.MissingSourcesError) as info:
        ds.find_sources()
    message = str(info.value)
    assert "fonts-noto-color-emoji" in message and "unicode-cldr-core" in message
    assert message.count(".") <= 2 and "\n" not in message


def test_cli_reports_missing_packages(monkeypatch, capsys, tmp_path):
    from studio.cli import main

    monkeypatch.setattr(ds, "FONT_CANDIDATES", (tmp_path / "none.ttf",))
    assert main(["dataset", "build", "--out", str(tmp_path / "d")]) == 2
    assert "fonts-noto-color-emoji" in capsys.readouterr().err


def test_balanced_weights_give_groups_sqrt_mass():
    group = np.array([0] * 10 + [1] * 2)
    base = np.array([0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7])  # base 0 has five variants
    w = ds.balanced_weights(group, base, np.arange(12))
    assert np.isclose(w.sum(), 1.0)
    assert np.isclose(w[:5].sum(), w[5])  # variants share one base's weight
    assert np.isclose(w[:10].sum() / w[10:].sum(), np.sqrt(6) / np.sqrt(2))


def test_captions_in_every_language_the_encoder_knows(tmp_path):
    _sources_or_skip()
    from conftest import HashTextEncoder

    class Multilingual(HashTextEncoder):
        languages = ("en", "zh", "ja", "de", "fr", "es")

    manifest = ds.build_dataset(tmp_path, encoder=Multilingual(), only=HANDFUL, log=lambda _: None)
    data = ds.load_dataset(tmp_path)
    by_language = manifest["captions_by_language"]
    assert set(by_language) == {"en", "zh", "ja", "de", "fr", "es"}
    assert sum(by_language.values()) == len(data.captions) == len(data.caption_lang)
    dog = data.names.index("dog face")
    dog_captions = {
        (str(lang), c) for c, o, lang in zip(data.captions, data.caption_owner, data.caption_lang) if o == dog
    }
    assert ("zh", "狗脸") in dog_captions and ("de", "Hundegesicht") in dog_captions
    assert (
        data.captions[int(np.flatnonzero(data.caption_owner == dog)[0])] == "dog face"
    )  # the name stays first
    assert int(data.caption_is_name.sum()) == len(HANDFUL)  # one name caption per emoji, the English one


def test_captions_the_encoder_cannot_read_are_left_out(tmp_path):
    _sources_or_skip()
    from conftest import HashTextEncoder

    class ReadsNoChinese(HashTextEncoder):
        languages = ("en", "zh", "de")

        def known_share(self, text):
            return 0.0 if any("\u4e00" <= ch <= "\u9fff" for ch in text) else 1.0

    manifest = ds.build_dataset(tmp_path, encoder=ReadsNoChinese(), only=HANDFUL, log=lambda _: None)
    assert "zh" not in manifest["captions_by_language"] and manifest["captions_by_language"]["de"] > 0
