"""Wording directions (studio/training/wording.py, studio/models/vocabulary.py): a name worded as people type it
("cat emoji") matches what the bare name matches, the bare name matches exactly as before, and the stored file is
checked and part of the model's hash."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from conftest import HashTextEncoder
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.models.concepts import ConceptConditioner, ConceptConditions
from studio.models.format import WORDING_FILE, ModelError, load_model, read_model_info
from studio.models.vocabulary import Vocabulary, fold, load_vocabulary, save_vocabulary, save_wording
from studio.training.wording import fit_wording, phrase_language, pick_showcase

NAMES = ["cat face", "grinning cat", "black cat", "dog face", "rocket", "pizza"]
KEYWORDS = {"cat": [0, 1, 2]}
SUFFIXES = (" emoji", " icon", " Emoji", "的表情符号", " symbol")


class WordedEncoder(HashTextEncoder):
    """Hash vectors, except that a text ending in a wording (" emoji", " icon", …) is its bare text's vector plus
    that wording's own fixed direction (each about as long as the text's), as a sentence encoder roughly does."""

    def __init__(self):
        super().__init__()
        self.wordings = {suffix: self._hash("wording:" + suffix) for suffix in SUFFIXES}

    def _hash(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(self.dim)
        return vector / np.linalg.norm(vector)

    def encode(self, prompts):
        out = []
        for prompt in prompts:
            suffix = next((s for s in SUFFIXES if prompt.endswith(s)), None)
            if suffix is None:
                out.append(self._hash(prompt))
            else:
                vector = self._hash(prompt[: -len(suffix)]) + 1.2 * self.wordings[suffix]
                out.append(vector / np.linalg.norm(vector))
        return np.asarray(out, np.float32).reshape(len(out), self.dim)


class FakeData:
    """What :func:`fit_wording` reads of a dataset: names per language, the held-out and the training emoji."""

    def __init__(self, count: int = 80):
        self.names = [f"thing {i}" for i in range(count)]
        self.heldout_index = np.arange(0, count, 10)
        self.train_index = np.setdiff1d(np.arange(count), self.heldout_index)

    def name_texts(self, language: str):
        return [f"{language} thing {i}" for i in range(len(self.names))]


FIT = ("{} emoji", "{} icon", "de:{} Emoji", "zh:{}的表情符号")


def _vocabulary(encoder, wording=None) -> Vocabulary:
    from studio.models.vocabulary import Keywords

    texts = list(KEYWORDS)
    keywords = Keywords.quantize(encoder.encode(texts), [np.array(KEYWORDS[t]) for t in texts])
    return Vocabulary(NAMES, [""] * len(NAMES), encoder.encode(NAMES), None, keywords, wording)


@pytest.fixture(scope="module")
def fitted():
    encoder = WordedEncoder()
    directions, singular = fit_wording(FakeData(), encoder.encode, FIT, count=60, directions=4)
    return encoder, directions, singular


def test_the_fit_finds_the_directions_wordings_add_and_only_those(fitted):
    encoder, directions, singular = fitted
    assert directions.shape == (4, encoder.dim)
    np.testing.assert_allclose(directions @ directions.T, np.eye(4), atol=1e-5)
    # each fitted wording's direction lies (almost) wholly in the kept span; a wording never fitted ("symbol") not
    for suffix in (" emoji", " icon", " Emoji", "的表情符号"):
        assert np.linalg.norm(directions @ encoder.wordings[suffix]) > 0.97, suffix
    assert np.linalg.norm(directions @ encoder.wordings[" symbol"]) < 0.3
    assert singular[3] > 5 * singular[4]  # four wordings, four directions, then noise


def test_fit_never_reads_held_out_names():
    seen: list[str] = []

    def encode(texts):
        seen.extend(texts)
        return WordedEncoder().encode(texts)

    data = FakeData()
    fit_wording(data, encode, ("{} emoji",), count=1000, directions=1)
    held = {f"en thing {i}" for i in data.heldout_index.tolist()}
    assert seen and not held & {text.removesuffix(" emoji") for text in seen}


def test_a_worded_name_or_keyword_finds_what_the_bare_one_finds(fitted):
    encoder, directions, _ = fitted
    plain, worded = _vocabulary(encoder), _vocabulary(encoder, directions)
    for name in NAMES:
        for suffix in (" emoji", " icon", "的表情符号"):
            query = encoder.encode([name + suffix])[0]
            assert plain.nearest(query, 1)[0][1] < 0.7  # the wording hides the name from a plain cosine
            best, score = worded.nearest(query, 1)[0]
            assert best == name and score > 0.99
    # a keyword worded spreads like the bare keyword; without the directions it falls below the floor
    cat_emoji = encoder.encode(["cat emoji"])[0]
    assert plain.matches(cat_emoji, 0.005, 16, 0.7, 0.4).size == 0
    assert sorted(worded.matches(cat_emoji, 0.005, 16, 0.7, 0.4).tolist()) == [0, 1, 2]


def test_bare_names_and_keywords_match_exactly_as_without_the_directions(fitted):
    encoder, directions, _ = fitted
    plain, worded = _vocabulary(encoder), _vocabulary(encoder, directions)
    for text in [*NAMES, "cat", "a sentence about nothing"]:
        query = encoder.encode([text])[0]
        assert (
            worded.matches(query, 0.005, 16, 0.7, 0.4).tolist()
            == plain.matches(query, 0.005, 16, 0.7, 0.4).tolist()
        )
        assert [n for n, _ in worded.nearest(query, 3)] == [n for n, _ in plain.nearest(query, 3)]
    for i, name in enumerate(NAMES):
        own = worded.english_scores(encoder.encode([name])[0])
        assert own[i] == pytest.approx(1.0, abs=1e-5)


def test_the_concept_gate_reads_worded_names_through_the_directions(fitted):
    encoder, directions, _ = fitted
    conditions = np.arange(len(NAMES) * 2, dtype=np.float32).reshape(len(NAMES), 2)
    table = ConceptConditions(conditions, np.ones(len(NAMES), bool))  # the table's gate: 0.85 to 0.97

    def gate(vocabulary, prompt):
        return ConceptConditioner(None, vocabulary, table).gate(encoder.encode([prompt])[0])

    assert gate(_vocabulary(encoder), "rocket emoji")[1] == 0.0  # plain cosine about 0.64: none of the row
    assert gate(_vocabulary(encoder, directions), "rocket emoji") == (4, 1.0)
    assert (
        gate(_vocabulary(encoder, directions), "rocket") == gate(_vocabulary(encoder), "rocket") == (4, 1.0)
    )


def test_phrase_language_reads_a_language_prefix():
    assert phrase_language("de:{} Emoji") == ("de", "{} Emoji")
    assert phrase_language("zh_Hant:{}表情") == ("zh_Hant", "{}表情")
    assert phrase_language("{} emoji") == ("en", "{} emoji")
    assert phrase_language("note: {}") == ("en", "note: {}")  # a space after the colon: not a language


@pytest.fixture
def worded_model_dir(tiny_model_dir, tmp_path, fitted):
    encoder, directions, _ = fitted
    folder = tmp_path / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, folder)
    entries = [{"name": name, "group": "", "subgroup": ""} for name in NAMES]
    save_vocabulary(folder, entries, encoder.encode(NAMES)[:, : HashTextEncoder.dim])
    return folder


def test_the_stored_directions_load_and_change_the_model_hash(worded_model_dir, fitted):
    _, directions, _ = fitted
    before = load_model(worded_model_dir).hash
    assert load_vocabulary(read_model_info(worded_model_dir)).wording is None
    save_wording(worded_model_dir, directions, {"fit": "{}"})
    loaded = load_vocabulary(read_model_info(worded_model_dir))
    np.testing.assert_array_equal(loaded.wording, directions)
    assert load_model(worded_model_dir).hash != before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:, :10], r"do not match its vocabulary\.$"),
        (lambda d: 2 * d, r"are damaged \(the directions must be orthonormal\)\.$"),
        (lambda d: np.full_like(d, np.nan), r"are damaged \(1 to 64 finite rows expected\)\.$"),
        (lambda d: np.zeros((0, d.shape[1]), np.float32), r"are damaged \(1 to 64 finite rows expected\)\.$"),
        (None, r"are damaged \(\w+\)\.$"),
    ],
)
def test_damaged_wording_files_are_one_sentence(worded_model_dir, fitted, damage, message):
    _, directions, _ = fitted
    if damage is None:
        (worded_model_dir / WORDING_FILE).write_bytes(b"not a safetensors file")
    else:
        save_wording(worded_model_dir, damage(directions))
    with pytest.raises(ModelError, match=r"^The wording directions of 'tiny-test' " + message):
        load_vocabulary(read_model_info(worded_model_dir))


def test_a_prompt_nearest_an_unfitted_name_is_gated_on_plain_cosines():
    """The directions only let a prompt find its own fitted name: a held-out emoji's name (nearest of all: its own,
    unfitted) borrows its fitted neighbour's row by the plain cosine, exactly as without them."""
    rng = np.random.default_rng(3)
    dim = 64
    wording = np.zeros((1, dim), np.float32)
    wording[0, 0] = 1.0
    shared, own_a, own_b = (rng.standard_normal(dim) for _ in range(3))
    for v in (shared, own_a, own_b):
        v[0] = 0.0

    def unit(v):
        return (v / np.linalg.norm(v)).astype(np.float32)

    along = 1.5 * np.linalg.norm(shared) * wording[0]  # both names lie far along the wording direction
    names = np.stack([unit(shared + 0.7 * own_a + along), unit(shared + 0.7 * own_b + along)])
    table = ConceptConditions(
        np.eye(2, dtype=np.float32), np.array([True, False])
    )  # only the first has a row

    def gate(directions):
        vocabulary = Vocabulary(["fitted", "held out"], ["", ""], names, wording=directions)
        return ConceptConditioner(None, vocabulary, table).gate(names[1])

    plain_cosine = float(names[0] @ names[1])
    with_directions = Vocabulary(["fitted", "held out"], ["", ""], names, wording=wording).english_scores(
        names[1]
    )
    assert (
        0.85 < plain_cosine < 0.97 and with_directions[0] < 0.85
    )  # the directions alone would lend none of it
    assert gate(None)[0] == 0 and gate(None)[1] > 0.0
    assert gate(wording) == gate(None)


def _with_generic(encoder, directions, showcase=(3, 4, 5)) -> Vocabulary:
    vocabulary = _vocabulary(encoder, directions)
    vocabulary.generic = encoder.encode(["emoji", "an emoji"])
    vocabulary.showcase = np.asarray(showcase, np.int64)
    return vocabulary


def test_a_generic_prompt_names_nothing_and_spreads_over_the_showcase(fitted):
    encoder, directions, _ = fitted
    vocabulary = _with_generic(encoder, directions)
    table = ConceptConditions(np.eye(len(NAMES), dtype=np.float32), np.ones(len(NAMES), bool))
    for text in ("emoji", "an emoji"):
        query = encoder.encode([text])[0]
        assert vocabulary.is_generic(query)
        assert vocabulary.matches(query, 0.005, 16, 0.7, 0.4).tolist() == [3, 4, 5]
        assert vocabulary.matches(query, 0.005, 2, 0.7, 0.4).tolist() == [3, 4]  # spread's limit holds
        assert vocabulary.nearest(query, 3) == []
        # no fitted row: the projection's own guess
        assert ConceptConditioner(None, vocabulary, table).gate(query) == (-1, 0.0)
    # a model without generic texts matches the same prompt as any other
    assert not _vocabulary(encoder, directions).is_generic(encoder.encode(["emoji"])[0])


def test_every_other_prompt_matches_exactly_as_without_generic_texts(fitted):
    encoder, directions, _ = fitted
    generic, without = _with_generic(encoder, directions), _vocabulary(encoder, directions)
    table = ConceptConditions(np.eye(len(NAMES), dtype=np.float32), np.ones(len(NAMES), bool))
    texts = [
        *NAMES,
        "cat",
        "cat emoji",
        "rocket icon",
        "pizza的表情符号",
        "emojis",
        "a sentence about nothing",
    ]
    for text in texts:
        query = encoder.encode([text])[0]
        assert not generic.is_generic(query), text
        assert (
            generic.matches(query, 0.005, 16, 0.7, 0.4).tolist()
            == without.matches(query, 0.005, 16, 0.7, 0.4).tolist()
        )
        assert generic.nearest(query, 3) == without.nearest(query, 3)
        gates = [ConceptConditioner(None, v, table).gate(query) for v in (generic, without)]
        assert gates[0] == gates[1], text


def test_the_showcase_takes_each_group_in_turn_from_new_subgroups():
    groups = ["faces"] * 4 + ["animals"] * 3 + ["flags"] * 2
    subgroups = ["smile", "smile", "sad", "sad", "cat", "dog", "dog", "country", "country"]
    names = ["grin", "beam", "frown", "cry: light skin tone", "cat", "dog", "poodle", "flag: A", "flag: B"]
    scores = np.array([1, 5, 2, 9, 0, 3, 4, 1, 1], float)
    eligible = np.array([True] * 8 + [False])
    picked = pick_showcase(scores, groups, subgroups, names, eligible, size=16)
    # faces: beam (best smile), then frown (the sad one left: the skin-tone variant never); animals: poodle (best),
    # then cat (dog's subgroup used); flags: A (B is not eligible), then nothing new
    assert [names[i] for i in picked] == ["beam", "poodle", "flag: A", "frown", "cat"]
    assert [names[i] for i in pick_showcase(scores, groups, subgroups, names, eligible, size=2)] == [
        "beam",
        "poodle",
    ]
    assert [names[i] for i in pick_showcase(np.zeros(9), groups, subgroups, names, eligible, size=3)] == [
        "grin",
        "cat",
        "flag: A",
    ]  # ties: the first


def test_the_generic_texts_and_showcase_round_trip_and_change_the_model_hash(worded_model_dir, fitted):
    encoder, directions, _ = fitted
    save_wording(worded_model_dir, directions, {"fit": "{}"})
    before = load_model(worded_model_dir).hash
    generic = 2.0 * encoder.encode(["emoji", "Emoji"])[:, : HashTextEncoder.dim]
    save_wording(worded_model_dir, directions, {"fit": "{}"}, generic, np.array([5, 0]), 0.99)
    loaded = load_vocabulary(read_model_info(worded_model_dir))
    np.testing.assert_allclose(np.linalg.norm(loaded.generic, axis=1), 1.0, atol=1e-6)  # stored as unit rows
    assert loaded.showcase.tolist() == [5, 0] and loaded.generic_cosine == pytest.approx(0.99)
    assert load_model(worded_model_dir).hash != before


@pytest.mark.parametrize(
    ("generic", "showcase", "cosine", "message"),
    [
        (lambda g: g[:, :10], np.array([0, 1]), None, r"the generic texts must be 1 to 64 rows"),
        (lambda g: np.zeros_like(g), np.array([0, 1]), None, r"a generic text is not a finite, non-zero row"),
        (
            lambda g: np.full_like(g, np.inf),
            np.array([0, 1]),
            None,
            r"a generic text is not a finite, non-zero row",
        ),
        (lambda g: g, np.array([0, 0]), None, r"the showcase must name 2 to 64 different concepts"),
        (lambda g: g, np.array([0, len(NAMES)]), None, r"the showcase must name 2 to 64 different concepts"),
        (lambda g: g, np.array([0.0, 1.0]), None, r"the showcase must name 2 to 64 different concepts"),
        (lambda g: g, None, None, r"the showcase must name 2 to 64 different concepts"),
        (lambda g: g, np.array([0, 1]), 0.5, r"the generic texts' cosine must lie in \[0\.9, 1\]"),
        (lambda g: g, np.array([0, 1]), float("nan"), r"the generic texts' cosine must lie in \[0\.9, 1\]"),
    ],
)
def test_damaged_generic_texts_or_showcase_are_one_sentence(
    worded_model_dir, fitted, generic, showcase, cosine, message
):
    encoder, directions, _ = fitted
    rows = encoder.encode(["emoji", "Emoji"])[:, : HashTextEncoder.dim]
    if (
        showcase is not None and showcase.dtype.kind == "f"
    ):  # save_wording stores int64: write the floats as they are
        from safetensors.numpy import save_file

        save_file(
            {"directions": directions, "generic": rows, "showcase": showcase.astype(np.float32)},
            str(worded_model_dir / WORDING_FILE),
        )
    else:
        save_wording(worded_model_dir, directions, None, generic(rows), showcase, cosine)
    with pytest.raises(ModelError, match=r"^The wording directions of 'tiny-test' are damaged \(" + message):
        load_vocabulary(read_model_info(worded_model_dir))


CHARS = [
    "🐱",
    "😺",
    "🐈‍⬛",
    "🐶",
    "🚀",
    "🍕",
]  # NAMES' emoji; "black cat" is a ZWJ sequence that starts with 🐈


def _spelled(chars=CHARS, names=NAMES) -> Vocabulary:
    return Vocabulary(
        list(names), [""] * len(names), np.zeros((len(names), 4), np.float32), chars=list(chars)
    )


@pytest.mark.parametrize(
    ("prompt", "spelled"),
    [
        ("🐱", "cat face"),
        ("a 🍕 party", "a pizza party"),
        ("🐈‍⬛", "black cat"),  # the longest sequence, not a cat followed by stray joiners
        ("🐈‍⬛️", "black cat"),  # a variation selector typed after it changes nothing
        ("🚀🐶", "rocket dog face"),
        ("sad 🚀!", "sad rocket !"),
        ("猫🐱", "猫 cat face"),
    ],
)
def test_emoji_in_a_prompt_are_spelled_out_as_their_names(prompt, spelled):
    assert _spelled().spell_out(prompt) == spelled


def test_a_prompt_without_a_known_emoji_is_returned_as_it_is():
    vocabulary = _spelled()
    for prompt in (
        "cat face",
        "  two  spaces ",
        "猫",
        "🦄 unicorn",
        "🐈",
    ):  # 🐈 alone: not in this vocabulary
        assert vocabulary.spell_out(prompt) is prompt
    assert Vocabulary(NAMES, [""] * len(NAMES), np.zeros((len(NAMES), 4))).spell_out("🐱") == "🐱"  # no chars


def test_text_symbols_are_spelled_out_only_with_their_emoji_selector():
    vocabulary = _spelled(["©️", "❤️", "", "", "", ""], ["copyright", "red heart", "a", "b", "c", "d"])
    assert vocabulary.spell_out("© 2026") == "© 2026"  # the plain symbol is text
    assert vocabulary.spell_out("©️") == "copyright"
    assert vocabulary.spell_out("❤") == vocabulary.spell_out("❤️") == "red heart"  # not one of the six


def test_the_engine_reads_an_emoji_as_its_name(worded_model_dir, fitted):
    from conftest import open_engine

    _, directions, _ = fitted
    save_wording(worded_model_dir, directions, chars=CHARS)
    with open_engine(worded_model_dir) as engine:
        emoji, name, other = engine.embed(["🐱", "cat face", "🐶"]).result(timeout=30)
        np.testing.assert_array_equal(emoji, name)
        assert not np.array_equal(emoji, other)
        assert engine.nearest_concepts("🐱").result(timeout=30)[0] == (
            "cat face",
            pytest.approx(1.0, abs=1e-3),
        )


def test_damaged_emoji_characters_are_one_sentence(worded_model_dir, fitted):
    _, directions, _ = fitted
    for chars in (CHARS[:3], [*CHARS[:5], 7], [*CHARS[:5], "x" * 33]):
        save_wording(worded_model_dir, directions, chars=chars)
        with pytest.raises(ModelError, match=r"the emoji characters must be one short text per concept\)\.$"):
            load_vocabulary(read_model_info(worded_model_dir))


def test_a_prompt_of_several_emoji_lists_their_concepts_once_each():
    vocabulary = _spelled()
    assert vocabulary.emoji_list("🐱🐶") == [0, 3]
    assert vocabulary.emoji_list(" 🐱 🐶🐱 ") == [0, 3]
    assert vocabulary.emoji_list("🐈‍⬛🚀") == [2, 4]
    assert vocabulary.emoji_list("🐱") == [0]
    for prompt in (
        "a 🐱🐶",
        "🐱🐶!",
        "cat",
        "🦄🐱",
    ):  # words, punctuation or an unknown emoji among them: a prompt
        assert vocabulary.emoji_list(prompt) == [], prompt


def test_the_engine_spreads_a_prompt_of_several_emoji_over_them(worded_model_dir, fitted):
    from conftest import open_engine

    _, directions, _ = fitted
    save_wording(worded_model_dir, directions, chars=CHARS)
    with open_engine(worded_model_dir) as engine:
        assert engine.spread_concepts("🚀🍕").result(timeout=30) == ["rocket", "pizza"]
        assert engine.spread_concepts("🍕 🚀 🍕").result(timeout=30) == ["pizza", "rocket"]
        # the same names typed as words are read by their cosines, as before, whatever was typed first
        assert engine.spread_concepts("rocket pizza").result(timeout=30) == []


def _images(engine, prompt: str, spread: bool, count: int) -> np.ndarray:
    """The tiny model's ``count`` images of ``prompt`` from seed 20, spread on or off."""
    from studio.engine.requests import GenerationRequest

    request = GenerationRequest(prompt, seed=20, count=count, model="tiny-test", spread=spread)
    return np.stack([result.image for result in engine.generate_sync(request)])


def test_the_seeds_of_several_emoji_draw_them_and_the_same_words_typed_do_not(worded_model_dir, fitted):
    from conftest import open_engine

    _, directions, _ = fitted
    save_wording(worded_model_dir, directions, chars=CHARS)

    def images(engine, prompt, spread):
        return _images(engine, prompt, spread, count=6)

    with open_engine(worded_model_dir) as engine:
        words = images(engine, "rocket pizza", True)
        listed = images(engine, "🚀🍕", True)
        assert np.array_equal(
            images(engine, "🚀🍕", False), images(engine, "rocket pizza", False)
        )  # same text
        assert not np.array_equal(listed, words)  # spread: each seed leans to the rocket or the pizza
        assert np.array_equal(images(engine, "rocket pizza", True), words)  # typed after the emoji: unchanged


@pytest.mark.parametrize(
    ("prompt", "corrected"),
    [
        ("piza", "pizza"),  # a letter left out
        ("rokcet", "rocket"),  # two letters swapped: one edit
        ("grining cat", "grinning cat"),
        ("Rokcet", "Rocket"),  # a capital kept
        ("ROCKET", "rocket"),  # capitals only: the encoder reads them as other words
        ("a rocket", None),  # "a" is too short to respell, "rocket" is a name word
        ("OK", None),  # short capitals are left alone (OK, SOS, NEW)
        ("sunglasses", None),  # no name word within two edits
        ("ピザ", None),  # other scripts are not respelled
        (
            "x" * 2000,
            None,
        ),  # a hostile prompt: words longer than any name's are never looked up (2 M deletions)
    ],
)
def test_a_prompt_is_respelled_in_the_names_words(prompt, corrected):
    assert _spelled().correction(prompt) == corrected


def test_the_edit_distance_counts_a_swap_as_one_and_stops_past_its_limit():
    from studio.models.vocabulary import _edits

    assert _edits("rokcet", "rocket", 2) == 1
    assert _edits("piza", "pizza", 1) == 1
    assert _edits("cat", "cat", 1) == 0
    assert _edits("kitten", "sitting", 3) == 3
    assert _edits("kitten", "sitting", 1) == 2  # limit + 1 as soon as it must exceed the limit


def test_the_engine_offers_a_respelling_only_when_it_matches_a_name_better(worded_model_dir):
    from conftest import open_engine

    with open_engine(worded_model_dir) as engine:
        assert engine.suggestion("piza").result(timeout=30) == "pizza"
        assert engine.suggestion("pizza").result(timeout=30) is None  # nothing to respell
        # "rocket launch" is respelled but names nothing better (hash embeddings: no name near it): no offer
        assert engine.suggestion("rokcet launch").result(timeout=30) is None
        assert engine.suggestion("").result(timeout=30) is None


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("EMOJI", "emoji"),
        ("  An   EMOJI!  ", "an emoji"),
        ("emoji?!", "emoji"),
        ("«Émoji»", "émoji"),
        ("絵文字！", "絵文字"),  # full-width punctuation
        ("อีโมจิ.", "อีโมจิ"),  # a Thai vowel mark ends the word: kept
        ("ＥＭＯＪＩ", "emoji"),  # full-width letters (NFKC)
        ("emoji heart", "emoji heart"),
        ("!?", ""),
    ],
)
def test_fold_keeps_the_words_and_drops_case_outer_punctuation_and_spacing(text, folded):
    assert fold(text) == folded


def _with_texts(encoder, directions, texts=("emoji", "an emoji", "Emoji")) -> Vocabulary:
    vocabulary = _with_generic(encoder, directions)
    vocabulary.generic = encoder.encode(list(texts))
    vocabulary.generic_texts = list(texts)
    return vocabulary


@pytest.mark.parametrize(
    ("prompt", "read"),
    [
        ("EMOJI", "emoji"),
        ("emoji!", "emoji"),
        (" An emoji. ", "an emoji"),
        ("Emoji", "Emoji"),  # a generic text itself stays as it is
        ("emoji heart", "emoji heart"),  # a word more: another prompt
        ("EMOJI HEART", "EMOJI HEART"),
        ("emojis?!cat", "emojis?!cat"),
        ("🐱", "cat face"),  # emoji are still spelled out
        ("", ""),
    ],
)
def test_a_generic_text_is_read_up_to_case_outer_punctuation_and_spacing(fitted, prompt, read):
    encoder, directions, _ = fitted
    vocabulary = _with_texts(encoder, directions)
    vocabulary.chars = CHARS
    assert vocabulary.reading(prompt) == read
    if read in vocabulary.generic_texts:
        assert vocabulary.is_generic(encoder.encode([vocabulary.reading(prompt)])[0])


def test_without_stored_texts_a_prompt_is_read_as_typed(fitted):
    encoder, directions, _ = fitted
    vocabulary = _with_generic(encoder, directions)  # generic rows, no texts (a v10 or v11 folder)
    assert vocabulary.reading("EMOJI!") == "EMOJI!"
    assert _vocabulary(encoder, directions).reading("emoji!") == "emoji!"


def test_the_generic_texts_round_trip_and_the_engine_spreads_a_folded_one(worded_model_dir, fitted):
    from conftest import open_engine

    encoder, directions, _ = fitted
    texts = ["emoji", "random emojis"]
    generic = HashTextEncoder().encode(texts)  # the engine's encoder in tests
    save_wording(worded_model_dir, directions, None, generic, np.array([0, 4]), None, None, texts)
    assert load_vocabulary(read_model_info(worded_model_dir)).generic_texts == texts
    with open_engine(worded_model_dir) as engine:
        for prompt in ("EMOJI!", "Random Emojis.", "emoji"):
            assert engine.spread_concepts(prompt).result(timeout=30) == ["cat face", "rocket"], prompt
        assert (
            engine.suggestion("EMOJI").result(timeout=30) is None
        )  # already read as "emoji": nothing to offer
        assert engine.spread_concepts("emoji rocket").result(timeout=30) != ["cat face", "rocket"]


@pytest.mark.parametrize(
    "texts",
    ['["emoji"]', '"emoji"', "not json", '["emoji", 3]', '["emoji", "' + "x" * 65 + '"]'],
)
def test_damaged_generic_texts_are_one_sentence(worded_model_dir, fitted, texts):
    encoder, directions, _ = fitted
    rows = HashTextEncoder().encode(["emoji", "an emoji"])
    tensors = {"directions": directions, "generic": rows, "showcase": np.array([0, 1], np.int64)}
    _assert_refused_as_damaged(
        worded_model_dir,
        tensors,
        {"generic_texts": texts},
        r"the generic texts must be one text of at most 64 characters per generic row",
    )


def _assert_refused_as_damaged(folder, tensors: dict, metadata: dict, reason: str) -> None:
    """``wording.safetensors`` written as given (no writer's checks) is refused in one sentence giving ``reason``."""
    from safetensors.numpy import save_file

    save_file(tensors, str(folder / WORDING_FILE), metadata=metadata)
    with pytest.raises(
        ModelError, match=r"^The wording directions of 'tiny-test' are damaged \(" + reason + r"\)\.$"
    ):
        load_vocabulary(read_model_info(folder))


def test_capitals_that_hide_a_generic_text_are_offered_it(worded_model_dir, fitted):
    """A folder whose generic rows come without their texts (v10, v11) reads "EMOJI" as typed: it is offered."""
    from conftest import open_engine

    encoder, directions, _ = fitted
    generic = HashTextEncoder().encode(["emoji"])  # the engine's encoder in tests
    save_wording(worded_model_dir, directions, None, generic, np.array([0, 4]))
    with open_engine(worded_model_dir) as engine:
        assert engine.suggestion("EMOJI").result(timeout=30) == "emoji"
        assert engine.suggestion("emoji").result(timeout=30) is None


EMOJI_TEXT = st.text(
    alphabet=st.sampled_from([*"".join(CHARS), "\ufe0f", "\u200d", " ", "a", "©", "猫", "🦄", "x", "R"]),
    max_size=40,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(EMOJI_TEXT)
def test_reading_emoji_never_fails_and_leaves_prompts_without_them_as_they_are(prompt):
    vocabulary = _spelled()
    spelled = vocabulary.spell_out(prompt)
    assert isinstance(spelled, str)
    assert not any(char in spelled for char in ("🐱", "🐶", "🚀", "🍕", "😺"))  # every known emoji is read
    listed = vocabulary.emoji_list(prompt)
    assert len(listed) == len(set(listed)) and all(0 <= i < len(NAMES) for i in listed)
    if not any(key in prompt.replace("\ufe0f", "") for key in vocabulary._spelling):
        assert spelled is prompt and listed == []
    assert vocabulary.correction(prompt) is None or isinstance(vocabulary.correction(prompt), str)


def test_the_word_index_finds_what_comparing_every_word_finds():
    """The symmetric-deletion index is only a shortcut: on random words and typos it gives the respelling a scan of
    every name word gives."""
    from studio.models.vocabulary import _edits

    rng = np.random.default_rng(11)
    letters = np.array(list("abcdefghij"))  # few letters: many near neighbours, ties included
    names = [" ".join("".join(rng.choice(letters, rng.integers(4, 9))) for _ in range(2)) for _ in range(150)]
    vocabulary = Vocabulary(names, [""] * len(names), np.zeros((len(names), 4), np.float32))
    words = vocabulary._name_words

    def scan(word):
        reach = 1 if len(word) < 6 else 2
        near = [w for w in words if _edits(word, w, reach) <= reach]
        return min(near, key=lambda w: (_edits(word, w, reach), -words[w], w)) if near else word

    for _ in range(400):
        word = list(rng.choice(list(words)))
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(word)))
            word[i : i + 1] = [] if rng.random() < 0.3 and len(word) > 4 else [str(rng.choice(letters))]
        query = "".join(word)
        if query in words:
            continue
        assert (vocabulary.correction(query) or query) == scan(query), query


def _named(below: float | None = 0.8) -> Vocabulary:
    """NAMES on the hash encoder with name words read below ``below``: every text but a name lies near nothing."""
    vocabulary = _vocabulary(HashTextEncoder())
    vocabulary.name_words_below = below
    return vocabulary


def _name_reading(vocabulary: Vocabulary, prompt: str) -> tuple[str, list[int]]:
    encode = HashTextEncoder().encode
    return vocabulary.name_reading(prompt, encode([prompt])[0], encode)


@pytest.mark.parametrize(
    ("prompt", "read"),
    [
        ("happy rocket", ("rocket", [])),
        ("a big, shiny rocket!", ("rocket", [])),  # outer punctuation of each word is not part of it
        ("the grinning cat please", ("grinning cat", [])),  # the longest run first: "cat" alone is no name
        ("rocket rocket", ("rocket", [])),  # one concept: its first run
        # several: spread chooses among them, in prompt order
        ("pizza and a rocket", ("pizza rocket", [5, 4])),
        ("rocket", ("rocket", [])),  # one word is never cut
        ("grinning cat", ("grinning cat", [])),  # a name as a whole: left alone
        ("happy cat", ("happy cat", [])),  # no run is a name ("cat" is a keyword, not a name)
        (
            "one two three four five six seven rocket pizza",
            ("one two three four five six seven rocket pizza", []),
        ),
    ],
)
def test_a_prompt_whose_words_are_a_name_reads_as_those_words(prompt, read):
    assert _name_reading(_named(), prompt) == read


def test_name_words_leave_every_prompt_alone_when_off_or_when_the_whole_prompt_is_near_a_name():
    for prompt in ("happy rocket", "pizza and a rocket"):
        assert _name_reading(_named(None), prompt) == (prompt, [])  # a folder without the setting: as before
        assert _name_reading(_named(-1.0), prompt) == (prompt, [])  # every prompt lies within -1 of a name


def test_name_words_round_trip_change_the_hash_and_refuse_damage(worded_model_dir, fitted):
    _, directions, _ = fitted
    save_wording(worded_model_dir, directions)
    before = load_model(worded_model_dir).hash
    assert load_vocabulary(read_model_info(worded_model_dir)).name_words_below is None
    save_wording(worded_model_dir, directions, name_words_below=0.8)
    assert load_vocabulary(read_model_info(worded_model_dir)).name_words_below == 0.8
    assert load_model(worded_model_dir).hash != before
    for value in ("0.2", "1.5", "nan", "many"):
        _assert_refused_as_damaged(
            worded_model_dir,
            {"directions": directions},
            {"name_words_below": value},
            r"the name words' cosine must lie in \[0\.5, 1\]",
        )


def test_the_engine_draws_a_prompt_by_its_name_words(worded_model_dir, fitted):
    from conftest import open_engine

    _, directions, _ = fitted
    save_wording(worded_model_dir, directions, name_words_below=0.8)

    def images(engine, prompt, spread):
        return _images(engine, prompt, spread, count=4)

    with open_engine(worded_model_dir) as engine:
        for spread in (False, True):
            assert np.array_equal(images(engine, "happy rocket", spread), images(engine, "rocket", spread))
        assert not np.array_equal(images(engine, "happy pizza", False), images(engine, "rocket", False))
        embedded = engine.embed(["a shiny rocket", "rocket"]).result(timeout=30)
        np.testing.assert_array_equal(embedded[0], embedded[1])
        assert engine.nearest_concepts("a shiny rocket").result(timeout=30)[0] == (
            "rocket",
            pytest.approx(1.0, abs=1e-3),
        )
        assert engine.spread_concepts("pizza and a rocket").result(timeout=30) == ["pizza", "rocket"]
        assert engine.spread_concepts("rocket pizza").result(timeout=30) == ["rocket", "pizza"]
        listed = images(engine, "pizza and a rocket", True)  # each seed leans to one of them
        assert not np.array_equal(listed, images(engine, "pizza and a rocket", False))


NAME_WORDS_TEXT = st.lists(
    st.sampled_from(["rocket", "pizza", "grinning", "cat", "face", "happy", "a", "and", "!", "«»", "猫", ""]),
    max_size=10,
).map(" ".join)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(NAME_WORDS_TEXT)
def test_name_words_never_fail_and_read_only_names_that_the_prompt_holds(prompt):
    vocabulary = _named()
    text, chosen = _name_reading(vocabulary, prompt)
    if (text, chosen) == (prompt, []):
        return
    names = [NAMES[i] for i in chosen] if chosen else [text]
    words = f" {' '.join(w.strip('!«»') for w in prompt.split() if w.strip('!«»'))} "
    assert all(f" {name} " in words for name in names)  # each run read: a name typed, punctuation aside
    assert text == " ".join(names) and len(set(chosen)) == len(chosen)
    assert len(chosen) != 1  # one concept reads as its run, with nothing to spread over


def test_a_long_prompt_is_never_cut_into_name_words():
    from studio.models.vocabulary import NAME_WORDS_CHARS

    long = "happy " + "x" * (NAME_WORDS_CHARS - len("happy  rocket")) + " rocket"
    assert len(long) == NAME_WORDS_CHARS  # at the limit: cut
    assert _name_reading(_named(), long) == ("rocket", [])
    longer = long.replace("happy", "happy!")
    assert len(longer) == NAME_WORDS_CHARS + 1 and _name_reading(_named(), longer) == (longer, [])


def test_many_prompts_scored_at_once_score_as_each_alone():
    """Name words score every run of words in one pass over the names (Vocabulary._plain_name_scores): the same
    cosines as one prompt at a time, aliases (other languages' names, int8) included."""
    from studio.models.vocabulary import Aliases

    encoder = HashTextEncoder()
    rng = np.random.default_rng(5)
    owner = rng.integers(0, len(NAMES), 300)
    rows = encoder.encode([f"alias {i}" for i in range(300)])
    vocabulary = _vocabulary(encoder)
    vocabulary.aliases = Aliases.quantize(rows, owner)
    queries = np.concatenate([rows[:20], encoder.encode(["rocket", "a cat", "pizza party"])])
    together = vocabulary._plain_name_scores(queries)
    alone = np.stack([vocabulary.name_scores(q, plain=True) for q in queries])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert together[:20].max(1).min() > 0.99  # an alias's own text is its name


def test_a_scan_converts_any_number_of_int8_rows_at_a_time_to_the_same_cosines():
    """The int8 names are turned to float a chunk at a time (vocabulary.SCAN_CHUNK, sized to stay in cache): the
    chunk changes the speed, never a cosine, for one prompt or many at once."""
    from studio.models.vocabulary import SCAN_CHUNK, _int8_scores, _quantize

    rng = np.random.default_rng(3)
    codes, scales = _quantize(rng.standard_normal((5000, 16)).astype(np.float32))
    kept = rng.uniform(0.5, 1.0, 5000).astype(np.float32)
    one = rng.standard_normal(16).astype(np.float32)
    many = rng.standard_normal((16, 3)).astype(np.float32)
    for query, lengths in ((one, kept), (many, None)):  # one prompt with the wording's lengths, many without
        exact = (codes.astype(np.float64) * scales[:, None].astype(np.float64)) @ query
        exact = exact if lengths is None else exact / lengths
        for chunk in (None, 7, 1000, SCAN_CHUNK, 8192):
            scores = _int8_scores(codes, scales, query, lengths, chunk=chunk)
            np.testing.assert_allclose(scores, exact, atol=1e-5)


def test_a_prompts_name_scores_are_scanned_once_and_kept(monkeypatch):
    """Reading a prompt for name words, finding its fitted concept and spreading it all ask for its scores over
    every name: the int8 aliases are scanned once a prompt (the last SCANS_KEPT prompts kept, read-only), with
    and without the wording directions kept apart, and new names or directions drop what was kept."""
    from studio.models import vocabulary as vocabulary_module
    from studio.models.vocabulary import SCANS_KEPT, Aliases

    encoder = HashTextEncoder()
    rng = np.random.default_rng(6)
    rows = encoder.encode([f"alias {i}" for i in range(50)])
    vocabulary = _vocabulary(encoder, wording=np.eye(1, encoder.dim, dtype=np.float32))
    vocabulary.aliases = Aliases.quantize(rows, rng.integers(0, len(NAMES), 50))
    scans = []
    scan = vocabulary_module._int8_scores
    monkeypatch.setattr(vocabulary_module, "_int8_scores", lambda *a, **k: scans.append(1) or scan(*a, **k))
    query = encoder.encode(["alias 3"])[0]

    worded = vocabulary.name_scores(query)
    assert len(scans) == 1
    assert vocabulary.nearest(query, k=1)[0][1] == pytest.approx(float(worded.max()))
    assert np.array_equal(vocabulary.name_scores(query), worded) and len(scans) == 1  # kept
    plain = vocabulary.name_scores(query, plain=True)
    assert len(scans) == 2 and not np.array_equal(plain, worded)  # the plain cosines are their own scan
    with pytest.raises(ValueError, match="read-only"):
        worded[0] = 0.0
    for i in range(SCANS_KEPT):  # newer prompts push the first out
        vocabulary.name_scores(encoder.encode([f"other {i}"])[0])
    count = len(scans)
    vocabulary.name_scores(query)
    assert len(scans) == count + 1

    vocabulary.aliases = Aliases.quantize(rows[:10], np.zeros(10, np.int64))  # new aliases: scanned again
    fresh = _vocabulary(encoder, wording=vocabulary.wording)
    fresh.aliases = vocabulary.aliases
    np.testing.assert_array_equal(vocabulary.name_scores(query), fresh.name_scores(query))


def test_typing_a_letter_scans_only_the_runs_of_words_it_changed(monkeypatch):
    """Name words score every run of 1 to NAME_RUN_MAX words; the runs' scores are kept (RUNS_KEPT), so a letter
    typed at the end of a prompt scans only the runs that end in its last word, and reads as it would alone."""
    from studio.models import vocabulary as vocabulary_module

    scanned = []
    scan = vocabulary_module._int8_scores

    def counted(codes, scales, query, *args, **kwargs):
        scanned.append(query.shape)
        return scan(codes, scales, query, *args, **kwargs)

    monkeypatch.setattr(vocabulary_module, "_int8_scores", counted)
    typed = _named()
    typed.aliases = vocabulary_module.Aliases.quantize(HashTextEncoder().encode(["rakete"]), np.array([4]))
    _name_reading(typed, "pizza and a rocke")
    scanned.clear()
    assert _name_reading(typed, "pizza and a rocket") == ("pizza rocket", [5, 4])
    # the batch of runs scanned (the whole prompt is one vector)
    runs = [shape[1] for shape in scanned if len(shape) == 2]
    assert runs == [3]  # "rocket", "a rocket", "and a rocket"; the 6 runs without the last word were kept
    fresh = _named()
    fresh.aliases = typed.aliases
    for prompt in ("pizza and a rocket", "rocket and a pizza", "pizza and a rocke"):
        assert _name_reading(typed, prompt) == _name_reading(fresh, prompt)
