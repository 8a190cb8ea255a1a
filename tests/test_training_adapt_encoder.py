"""Refitting a model's condition projection onto another prompt encoder (studio/training/adapt_encoder.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.models.format import load_model
from studio.models.text import USE_M3_ID
from studio.training import dataset as ds
from studio.training.adapt_encoder import adapt, ridge

HANDFUL = [
    "grinning face",
    "dog face",
    "cat face",
    "flag: Japan",
    "red heart",
    "rocket",
    "pizza",
    "red apple",
]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    try:
        ds.find_sources()
    except ds.MissingSourcesError as exc:
        pytest.skip(str(exc))
    from conftest import HashTextEncoder

    class HashMultilingual(HashTextEncoder):
        encoder_id, dim = USE_M3_ID, 512
        languages = ("en", "zh", "de")

    source = tmp_path_factory.mktemp("source")
    target = tmp_path_factory.mktemp("target")
    ds.build_dataset(source, encoder=HashTextEncoder(), only=HANDFUL, log=lambda _: None)
    ds.build_dataset(target, encoder=HashMultilingual(), only=HANDFUL, log=lambda _: None)
    return source, target


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 12))
    weight, bias = rng.standard_normal((5, 12)), rng.standard_normal(5)
    fitted_w, fitted_b = ridge(x, x @ weight.T + bias, np.ones(400), strength=1e-9)
    assert np.allclose(fitted_w, weight, atol=1e-4) and np.allclose(fitted_b, bias, atol=1e-4)


def test_adapted_model_reads_the_new_encoder_and_keeps_the_rest(datasets, tiny_model_dir, tmp_path):
    source, target = datasets
    report = adapt(tiny_model_dir, source, target, tmp_path / "adapted", strength=1e-6)
    adapted, original = load_model(tmp_path / "adapted"), load_model(tiny_model_dir)
    assert adapted.info.conditioning.encoder == USE_M3_ID and adapted.info.base.embed_dim == 512
    kept = {k: v for k, v in original.generator.state_dict().items() if not k.startswith("embed_proj.")}
    for key, value in kept.items():
        assert torch.equal(adapted.generator.state_dict()[key], value), key
    assert adapted.generator.embed_proj.weight.shape[1] == 512
    # The fit maps each training caption to the condition the old encoder gave (nearly exactly, with so
    # few captions), and other languages to the condition of the emoji's English name.
    assert report["fit_train"]["english"]["cosine_mean"] > 0.99
    assert report["fit_train"]["other_languages"]["cosine_mean"] > 0.95  # bare keywords fit less exactly
    source_data, target_data = ds.load_dataset(source), ds.load_dataset(target)
    dog = target_data.names.index("dog face")
    chinese = target_data.name_embeddings("zh")[dog]
    english = source_data.name_embeddings()[dog]
    with torch.no_grad():
        new = adapted.generator.condition(torch.from_numpy(chinese)[None])
        old = original.generator.condition(torch.from_numpy(english)[None])
    if not target_data.heldout[dog]:
        assert torch.nn.functional.cosine_similarity(new, old).item() > 0.99
    from studio.models.vocabulary import load_vocabulary

    assert load_vocabulary(adapted.info).embeddings.shape == (len(HANDFUL), 512)


def test_refuses_a_source_dataset_of_another_encoder(datasets, tiny_model_dir, tmp_path):
    source, target = datasets
    with pytest.raises(ValueError, match="encoded with"):
        adapt(tiny_model_dir, target, target, tmp_path / "x")


def test_evaluation_by_language_uses_that_languages_names(datasets):
    _, target = datasets
    data = ds.load_dataset(target)
    chinese, english = data.name_embeddings("zh"), data.name_embeddings("en")
    assert data.has_language("zh").all() and data.has_language("en").all()
    assert not np.allclose(chinese, english)
    rows = np.flatnonzero((data.caption_lang == "zh") & (data.caption_owner == data.names.index("dog face")))
    assert data.captions[rows[0]] == "狗脸"
    assert np.array_equal(chinese[data.names.index("dog face")], data.caption_emb[rows[0]].astype(np.float32))


def test_vocabulary_aliases_match_a_concept_by_any_of_its_names(tmp_path):
    from types import SimpleNamespace

    from studio.models.vocabulary import Aliases, load_vocabulary, save_vocabulary

    rng = np.random.default_rng(3)

    def unit(rows):
        rows = rng.standard_normal((rows, 64)).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    english, other = unit(3), unit(4)
    entries = [{"name": n, "group": "g"} for n in ("cat face", "dog face", "rocket")]
    save_vocabulary(tmp_path, entries, english, (other, np.array([0, 0, 1, 2])))
    vocabulary = load_vocabulary(SimpleNamespace(path=tmp_path, name="t"))
    assert vocabulary.aliases is not None and vocabulary.aliases.codes.dtype == np.int8
    best = vocabulary.nearest(other[1], k=3)
    assert best[0][0] == "cat face" and abs(best[0][1] - 1.0) < 0.01  # shown by its English name
    assert vocabulary.nearest(english[2], k=1)[0][0] == "rocket"
    packed = Aliases.quantize(other, np.arange(4))
    assert np.abs(packed.scores(other[0]) - other @ other[0]).max() < 0.01
