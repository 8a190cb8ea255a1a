"""The concepts a model knows: names (with group/subgroup) and their prompt embeddings.

Stored in the model folder as ``vocabulary.json`` (a list of ``{"name", "group", "subgroup"}``) and
``vocabulary.safetensors`` (``embeddings``: N x D, unit rows, same order). Used for prompt completion and
to show the nearest known concepts to what a person typed.

A model on a multilingual encoder also ships each concept's names in the encoder's other languages (CLDR
short names) as *aliases*: ``alias_codes`` (M x D int8), ``alias_scales`` (M) and ``alias_owner`` (M: the
concept each names). A prompt is matched against every name of a concept and the concept is shown by its
English name, so "猫" is understood as "cat face" as surely as "cat" is (docs/bench/encoders.json:
nearest-name accuracy 0.95x English or better in zh/ja/de/fr/es with aliases, 0.54-0.84x without). int8
keeps the cosine within about 0.01 at a quarter of float32's size.

It may also ship the caption texts (CLDR keywords and names, every language) that at least two concepts
share, each once with the concepts that carry it (``keyword_codes``, ``keyword_scales``, ``keyword_offsets``,
``keyword_owners``): :meth:`Vocabulary.matches` reads them so that "cat" fits every cat
(studio/engine/spread.py).

And it may ship ``wording.safetensors`` (``directions``: k x D orthonormal rows): the directions that wording a
name as people type it ("… emoji", "an icon of …", "… Emoji", "…的表情符号") adds to its embedding, fitted on
training names by :mod:`studio.training.wording`. Every cosine above is then taken with them left out of the
prompt and of the rows, so a worded name or keyword finds what the bare one finds. It changes what such prompts
draw, so it is part of the model's hash.

The same file may also carry ``generic`` (m x D: texts people type for any emoji, "emoji", "an emoji",
"絵文字") and ``showcase`` (concept indices). A prompt that is one of those texts (:meth:`Vocabulary.is_generic`)
names no emoji in particular: it matches no name (nothing under the prompt, no fitted row: the prompt layer's own
guess) and, with spread, its seeds draw the showcase, emoji from every group that the model draws surely
(studio/training/wording.py picks them). Only the texts themselves: the encoder puts "om emoji" as near "emoji"
(0.94) as to anything, so nearness alone would take worded names too. When the metadata also lists the texts
(``generic_texts``), a prompt that is one of them up to case, outer punctuation and spacing is read as that text
(:meth:`Vocabulary.reading`: "EMOJI!" reads "emoji"; :func:`fold`).

And its metadata may carry ``chars``, each concept's emoji ("😀", "❤️", "🏴󠁧󠁢󠁷󠁬󠁳󠁿"): the encoder cannot read emoji, so a prompt that
holds one has it spelled out as its English name before it is encoded (:meth:`Vocabulary.spell_out`: "🐱" reads
"cat face", "a 🍕 party" reads "a pizza party"). A prompt without one is encoded exactly as typed.

Its metadata may also switch on *name words* (``name_words_below``: a cosine, since v13): a prompt of a few words that
no name lies that close to as a whole, but some of whose words *are* a name in some language, is read as those
words (:meth:`Vocabulary.name_reading`: "happy dog" reads "dog", "perro feliz" reads "perro", where the
adjective's shared keyword drew grinning faces), and several names spread over their emoji ("cat and dog").
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from studio.logs import log_caught
from studio.models.format import WORDING_FILE, ModelError, ModelInfo
from studio.models.tensor_file import save_tensors
from studio.untrusted import UntrustedInputError, check_regular_file, parse_json, read_regular_file

_log = logging.getLogger(__name__)

# A prompt this close (plain cosine) to one of a model's generic texts is that text, up to what the encoder ignores.
GENERIC_COSINE = 0.995
VS16 = "\ufe0f"  # the variation selector that asks for an emoji's picture
MAX_CHAR_LENGTH = 32  # code points of one emoji sequence (the longest, a family or a tagged flag, has 10)
MAX_RESPELLED_LETTERS = 24  # longer words are never respelled (a 2,000-letter word would have 2 M deletions)
_WORD = re.compile(r"[^\W\d_]+")  # a run of letters, any script
MAX_GENERIC_TEXT_LENGTH = 64  # characters of one stored generic text
# Name words (Vocabulary.name_reading): a run of words this close (plain cosine) to a name IS that name (a name's
# int8 row keeps its own text's cosine within 0.01); prompts of 2 to NAME_WORDS_MAX words are cut, into runs of
# at most NAME_RUN_MAX words.
NAME_WORDS_COSINE = 0.98
NAME_WORDS_MAX = 8
NAME_RUN_MAX = 4
NAME_WORDS_CHARS = 240  # longer prompts are not cut (the longest name in any language has 101 characters): a
# 2,000-character prompt of 8 words would encode 26 runs of up to 1,000 characters (0.4-0.9 s)
_OUTER = ".,;:!?¡¿\"'()[]{}«»“”‘’„…"  # stripped from each word's ends before a run is encoded
_CONTENT = "LMN"  # Unicode categories fold keeps at a text's ends: letters, marks (Thai vowels), numbers


def fold(text: str) -> str:
    """``text`` as the generic-text test compares it: NFKC, case-folded, white space runs made one space, and
    characters other than letters, marks and digits stripped from both ends ("  An EMOJI! " -> "an emoji",
    "絵文字！" -> "絵文字")."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start])[0] not in _CONTENT:
        start += 1
    while end > start and unicodedata.category(text[end - 1])[0] not in _CONTENT:
        end -= 1
    return text[start:end]


@dataclass
class Aliases:
    """Other names of the concepts (other languages), int8 per row."""

    codes: np.ndarray  # M x D int8
    scales: np.ndarray  # M float32: row = codes * scale
    owner: np.ndarray  # M int: index of the concept each names

    @classmethod
    def quantize(cls, embeddings: np.ndarray, owner: np.ndarray) -> Aliases:
        return cls(*_quantize(embeddings), np.asarray(owner, np.int64))

    def scores(self, query: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
        return _int8_scores(self.codes, self.scales, query, kept)

    def tensors(self) -> dict[str, np.ndarray]:
        """The table as ``vocabulary.safetensors`` stores it (``alias_*``; owners as int32)."""
        return {
            "alias_codes": np.ascontiguousarray(self.codes),
            "alias_scales": self.scales.astype(np.float32),
            "alias_owner": self.owner.astype(np.int32),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> Aliases | None:
        """The table :meth:`tensors` stored, or None when the file has none (KeyError: a part is missing)."""
        if "alias_codes" not in tensors:
            return None
        return cls(
            tensors["alias_codes"].astype(np.int8),
            tensors["alias_scales"].astype(np.float32),
            tensors["alias_owner"].astype(np.int64),
        )


@dataclass
class Keywords:
    """CLDR keywords that several concepts share ("cat", "heart", "猫", "Herz"), every language, each text once
    (int8 rows like the aliases), and the concepts that carry each: ``owners[offsets[i]:offsets[i + 1]]``."""

    codes: np.ndarray  # K x D int8
    scales: np.ndarray  # K float32
    offsets: np.ndarray  # K + 1 int, rising from 0 to len(owners)
    owners: np.ndarray  # concept indices, grouped by keyword

    @classmethod
    def quantize(cls, embeddings: np.ndarray, owners: list[np.ndarray]) -> Keywords:
        offsets = np.concatenate([[0], np.cumsum([len(o) for o in owners])]).astype(np.int64)
        flat = np.concatenate(owners).astype(np.int64) if owners else np.zeros(0, np.int64)
        return cls(*_quantize(embeddings), offsets, flat)

    def tensors(self) -> dict[str, np.ndarray]:
        """The table as ``vocabulary.safetensors`` stores it (``keyword_*``; indices as int32)."""
        return {
            "keyword_codes": np.ascontiguousarray(self.codes),
            "keyword_scales": self.scales,
            "keyword_offsets": self.offsets.astype(np.int32),
            "keyword_owners": self.owners.astype(np.int32),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> Keywords | None:
        """The table :meth:`tensors` stored, or None when the file has none (KeyError: a part is missing)."""
        if "keyword_codes" not in tensors:
            return None
        return cls(
            tensors["keyword_codes"].astype(np.int8),
            tensors["keyword_scales"].astype(np.float32),
            tensors["keyword_offsets"].astype(np.int64),
            tensors["keyword_owners"].astype(np.int64),
        )

    def concept_scores(self, query: np.ndarray, concepts: int, kept: np.ndarray | None = None) -> np.ndarray:
        """Per concept, its best keyword's cosine to ``query`` (-inf for a concept without shared keywords);
        ``kept``: each row's length once the wording directions are left out (None: no wording)."""
        out = np.full(concepts, -np.inf, np.float32)
        if len(self.codes):
            np.maximum.at(
                out,
                self.owners,
                np.repeat(_int8_scores(self.codes, self.scales, query, kept), np.diff(self.offsets)),
            )
        return out

    def valid(self, dim: int, concepts: int) -> bool:
        return bool(
            self.codes.ndim == 2
            and self.codes.shape[1] == dim
            and len(self.codes) == len(self.scales) == len(self.offsets) - 1
            and self.offsets[0] == 0
            and self.offsets[-1] == len(self.owners)
            and (np.diff(self.offsets) >= 0).all()
            and (len(self.owners) == 0 or (self.owners.min() >= 0 and self.owners.max() < concepts))
            and np.isfinite(self.scales).all()
        )


# int8 rows turned to float32 at a time in a scan: 2,048 rows of 512 (4 MB) stay in cache for the product, 2.3x
# faster a prompt than 8,192 (16 MB) on the 54,357 aliases, the same values (benchmarks/typing_bench.py)
SCAN_CHUNK = 2048
# prompts whose scores over every name are kept: reading a prompt for name words, finding its fitted concept and
# spreading it each need them, so a new prompt scans the names once instead of two or three times
SCANS_KEPT = 8
# runs of words whose name scores are kept: typing a letter changes only the runs that end in the last word, so a
# long prompt's keystroke scans a few runs instead of up to 26
RUNS_KEPT = 64
# what every kept score is computed from: setting one of these drops what was kept
_SCANNED = frozenset({"embeddings", "aliases", "keywords", "wording"})


def _quantize(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(embeddings, np.float32).reshape(len(embeddings), -1)
    scales = np.maximum(np.abs(rows).max(axis=1), 1e-8) / 127.0 if len(rows) else np.zeros(0, np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales.astype(np.float32)


def _int8_scores(
    codes: np.ndarray,
    scales: np.ndarray,
    query: np.ndarray,
    kept: np.ndarray | None = None,
    chunk: int | None = None,
) -> np.ndarray:
    """Each int8 row's dot product with ``query`` (a unit vector; or D x R, R of them: rows x R), divided by
    ``kept`` (the rows' lengths once the wording directions are left out, when there are any); ``chunk`` rows at a
    time (default SCAN_CHUNK)."""
    chunk = SCAN_CHUNK if chunk is None else chunk
    out = np.empty((len(codes), *query.shape[1:]), np.float32)
    for start in range(0, len(codes), chunk):
        part = codes[start : start + chunk].astype(np.float32)
        scale = scales[start : start + chunk]
        out[start : start + chunk] = (part @ query) * (scale if query.ndim == 1 else scale[:, None])
    return out if kept is None else out / kept


def _kept_lengths(
    rows: np.ndarray, scales: np.ndarray | None, wording: np.ndarray, chunk: int = SCAN_CHUNK
) -> np.ndarray:
    """Each row's length (rows ``codes * scale`` when ``scales`` is given) with the ``wording`` directions (k x D,
    orthonormal) left out, floored at 1e-6."""
    out = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk].astype(np.float32)
        if scales is not None:
            part *= scales[start : start + chunk, None]
        squared = (part * part).sum(1) - ((part @ wording.T) ** 2).sum(1)
        out[start : start + chunk] = np.sqrt(np.maximum(squared, 1e-12))
    return out


@dataclass
class Vocabulary:
    """The concepts a model knows by name: their English names' embeddings, other languages' names (aliases) and
    the keywords several share. With ``wording`` (k x D orthonormal, ``wording.safetensors``: the directions that
    wording a name as people type it adds to its embedding, "… emoji", "an icon of …", "…的表情符号"), every
    cosine here is taken with those directions left out of both sides, so "cat emoji" matches "cat" as "cat"
    does; a name's cosine to itself stays 1."""

    names: list[str]
    groups: list[str]
    embeddings: np.ndarray  # N x D float32, unit rows
    aliases: Aliases | None = None
    keywords: Keywords | None = None
    wording: np.ndarray | None = None  # k x D float32, orthonormal rows (None: cosines as they are)
    generic: np.ndarray | None = None  # m x D float32 unit rows: texts that ask for any emoji ("emoji")
    showcase: np.ndarray | None = None  # int64 concept indices a generic prompt's seeds spread over
    generic_cosine: float = GENERIC_COSINE  # a prompt this close to a generic text is that text
    chars: list[str] | None = None  # each concept's emoji ("" for none): spelled out as its name in prompts
    generic_texts: list[str] | None = None  # the generic rows' texts: a prompt that folds to one reads as it
    # a prompt no name lies this close to as a whole is read by its words that are names (None: never)
    name_words_below: float | None = None

    def __post_init__(self) -> None:
        self._scans = _Kept(lambda: SCANS_KEPT)  # (query, plain) -> its name scores
        self._runs = _Kept(lambda: RUNS_KEPT)  # a run of words' unit embedding -> its plain name scores

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        if name in _SCANNED and "_runs" in self.__dict__:  # new names or directions: nothing kept holds
            self._scans.clear()
            self._runs.clear()
            for derived in ("_kept", "_alias_groups"):
                self.__dict__.pop(derived, None)

    def name_reading(self, text: str, embedding: np.ndarray, encode) -> tuple[str, list[int]]:
        """What a prompt of a few words reads as when some of its words are a name (with ``name_words_below`` set).

        ``(text, [])`` unchanged when the model has no such setting, when the prompt is longer than NAME_WORDS_CHARS
        or lies within ``name_words_below`` of a name as a whole (``embedding``, its encoding: "a smiling sun" is the
        sun with face), or when none of its runs of 1 to NAME_RUN_MAX consecutive words (fewer than all) is a name:
        within NAME_WORDS_COSINE of one, in any language (``encode`` embeds the runs). Else those runs, the longest
        first, then the leftmost, without overlap: one concept reads as its first run ("happy dog" -> "dog"),
        several as each one's first run joined, with their concepts for spread to choose among ("cat and dog" ->
        "cat dog", [cat, dog])."""
        if self.name_words_below is None or not self.names or len(text) > NAME_WORDS_CHARS:
            return text, []
        words = [word.strip(_OUTER) for word in text.split()]
        words = [word for word in words if word]
        if not 2 <= len(words) <= NAME_WORDS_MAX or self.is_generic(embedding):
            return text, []
        if float(self.name_scores(embedding).max()) >= self.name_words_below:  # one scan of every name
            return text, []
        runs = [(size, start) for size in range(min(NAME_RUN_MAX, len(words) - 1), 0, -1)
                for start in range(len(words) - size + 1)]  # fmt: skip
        texts = [" ".join(words[start : start + size]) for size, start in runs]
        scores = self._plain_name_scores(np.asarray(encode(texts), np.float32))  # runs x concepts, one scan
        found: list[tuple[int, str, int]] = []
        taken: set[int] = set()
        for (size, start), run, row in zip(runs, texts, scores):
            span = set(range(start, start + size))
            concept = int(row.argmax())
            if not taken & span and row[concept] >= NAME_WORDS_COSINE:
                taken |= span
                found.append((start, run, concept))
        if not found:
            return text, []
        found.sort()
        first = {concept: run for _, run, concept in reversed(found)}  # each concept's first run
        concepts = list(dict.fromkeys(concept for _, _, concept in found))
        if len(concepts) == 1:
            return first[concepts[0]], []
        return " ".join(first[concept] for concept in concepts), concepts

    def reading(self, prompt: str) -> str:
        """The text the encoder reads for ``prompt``: its known emoji spelled out as their names (:meth:`spell_out`),
        and a prompt that is one of the generic texts up to case, outer punctuation and spacing read as that text
        ("EMOJI" and "emoji!" read "emoji", "Random emojis." reads "random emojis"). Any other prompt as typed."""
        text = self.spell_out(prompt)
        folds = self._generic_folds
        if not folds or len(text) > 4 * MAX_GENERIC_TEXT_LENGTH or text in self.generic_texts:
            return text  # a generic text itself ("Emoji") is read as typed
        return folds.get(fold(text), text)

    @cached_property
    def _generic_folds(self) -> dict[str, str]:
        """Each generic text's folded form -> the text (the first of texts that fold alike: "emoji", not "Emoji")."""
        if not self.generic_texts or self.generic is None or self.showcase is None:
            return {}
        return {fold(text): text for text in reversed(self.generic_texts)}

    def spell_out(self, prompt: str) -> str:
        """``prompt`` with every emoji of the vocabulary in it replaced by its English name ("🐱" -> "cat face",
        "a 🍕 party" -> "a pizza party"); the longest emoji sequence wins ("👩‍🚒" is a woman firefighter, not a woman
        and a fire engine), a missing or extra variation selector (U+FE0F) does not matter, except for the six
        text symbols (‼ ⁉ © ® ™ ℹ) that are emoji only with it. A prompt without an emoji is returned as it is."""
        pieces = self._emoji_pieces(prompt)
        if pieces is None:
            return prompt
        text = "".join(p if isinstance(p, str) else f" {self.names[p]} " for p in pieces)
        return " ".join(text.split())

    def emoji_list(self, prompt: str) -> list[int]:
        """The concepts of a prompt made only of known emoji (and spaces), each once, in order ("🐱🐶" -> cat face,
        dog face); [] for any other prompt. Spread lets its seeds choose among them (studio/engine/renderer.py)."""
        pieces = self._emoji_pieces(prompt)
        if pieces is None or any(isinstance(p, str) and p.strip() for p in pieces):
            return []
        return list(dict.fromkeys(p for p in pieces if not isinstance(p, str)))

    def _emoji_pieces(self, prompt: str) -> list[str | int] | None:
        """The prompt cut into plain text runs (str) and known emoji (their concept, int); None when it holds none."""
        spelling = self._spelling
        if not spelling or prompt.isascii():
            return None
        pieces: list[str | int] = []
        plain: list[str] = []
        i, longest = 0, self._longest_emoji + 4  # room for variation selectors typed inside
        while i < len(prompt):
            match = None
            for end in range(min(len(prompt), i + longest), i, -1):
                raw = prompt[i:end]
                concept = spelling.get(raw, spelling.get(raw.replace(VS16, "")))
                if concept is not None:
                    match = (concept, end)
                    break
            if match is None:
                plain.append(prompt[i])
                i += 1
                continue
            if plain:
                pieces.append("".join(plain))
                plain = []
            pieces.append(match[0])
            i = match[1] + (1 if prompt[match[1] : match[1] + 1] == VS16 else 0)
        if not any(isinstance(p, int) for p in pieces):
            return None
        if plain:
            pieces.append("".join(plain))
        return pieces

    def correction(self, prompt: str) -> str | None:
        """A spelling of ``prompt`` in the words of the vocabulary's English names, or None when it has none other:
        a prompt in capitals only (4+ letters: not "OK" or "SOS") is lowered ("ROCKET" -> "rocket"; the encoder reads
        capitals as other words), and each Latin word of 4+ letters that no name holds becomes the name word one edit
        away (two for 6+ letters; two letters swapped count as one edit: "rokcet" -> "rocket", "piza" -> "pizza"), the
        most common one when several are. Only a suggestion: the engine offers it when it matches a name better (Engine.suggestion)."""
        text = prompt.lower() if prompt.isupper() and sum(c.isalpha() for c in prompt) >= 4 else prompt
        words = self._name_words

        def fix(match: re.Match) -> str:
            word = match.group(0)
            low = word.lower()
            if not 4 <= len(low) <= MAX_RESPELLED_LETTERS or low in words or not low.isascii():
                return word  # short words, known words, other scripts, and words no name's word is near
            reach = 1 if len(low) < 6 else 2
            candidates = set().union(*(self._word_index.get(key, ()) for key in _deletions(low, reach)))
            near = [w for w in candidates if _edits(low, w, reach) <= reach]
            if not near:
                return word
            best = min(near, key=lambda w: (_edits(low, w, reach), -words[w], w))
            return best.capitalize() if word[:1].isupper() and not word.isupper() else best

        corrected = _WORD.sub(fix, text)
        return corrected if corrected != prompt else None

    @cached_property
    def _word_index(self) -> dict[str, set[str]]:
        """Every name word under each text two deletions or fewer make of it: a word within two edits of a query
        shares one of these with the query's own deletions (symmetric deletion), so no other word needs a look."""
        index: dict[str, set[str]] = {}
        for word in self._name_words:
            if len(word) > MAX_RESPELLED_LETTERS - 2:
                continue  # no query can be within two edits of it
            for key in _deletions(word, 2):
                index.setdefault(key, set()).add(word)
        return index

    @cached_property
    def _name_words(self) -> dict[str, int]:
        """Every lower-case word of the English names and how many names hold it."""
        counts: dict[str, int] = {}
        for name in self.names:
            for word in _WORD.findall(name.lower()):
                counts[word] = counts.get(word, 0) + 1
        return counts

    @cached_property
    def _spelling(self) -> dict[str, int]:
        """Each emoji, without variation selectors, -> its concept; the six text symbols only with theirs."""
        spelling: dict[str, int] = {}
        for index, char in enumerate(self.chars or []):
            bare = char.replace(VS16, "")
            if not bare:
                continue
            key = char if len(bare) == 1 and ord(bare) < 0x2190 else bare  # "©" alone is text, "©️" an emoji
            spelling.setdefault(key, index)
        return spelling

    @cached_property
    def _longest_emoji(self) -> int:
        """Code points of the longest emoji key (0 without any)."""
        return max(map(len, self._spelling), default=0)

    def nearest(self, embedding: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` concepts closest (cosine, over all their names) to ``embedding``, best first; none for a
        generic prompt (:meth:`is_generic`): the nearest names of "emoji" are noise."""
        if not self.names or self.is_generic(embedding):
            return []
        scores = self._name_scores(self._query(embedding))
        k = min(k, len(self.names))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.names[i], float(scores[i])) for i in top]

    def matches(
        self, embedding: np.ndarray, margin: float, limit: int, floor: float, related: float
    ) -> np.ndarray:
        """The concepts a prompt fits about equally well: those whose best name or shared keyword lies within
        ``margin`` (cosine) of the best one and whose own English name lies within ``related`` of the closest
        such name (so "rocket", a keyword of the astronauts too, stays a rocket, while "cat" keeps every cat),
        best first (ties: the English name nearest the prompt first), the skin-tone variants of one emoji
        counted once, at most ``limit``; none when even the best lies below ``floor`` (a sentence no name or
        keyword is close to). A full name usually fits one concept; "cat" fits a dozen; a generic prompt
        (:meth:`is_generic`, "emoji"), the showcase."""
        if not self.names or self.embeddings.shape[1] == 0:
            return np.zeros(0, np.int64)
        if self.is_generic(embedding):
            return self.showcase[:limit].copy()
        query = self._query(embedding)
        own, scores = self._match_scores(query)
        best = float(scores.max())
        if best < floor:
            return np.zeros(0, np.int64)
        close = np.flatnonzero(scores >= best - margin)
        close = close[own[close] >= own[close].max() - related]
        # best score first, then the English name nearest the prompt, then the index (lexsort: last key first)
        close = close[np.lexsort((close, -own[close], -scores[close]))]
        kept: dict[str, int] = {}  # base name -> its best-ranked variant, in rank order
        for index in close.tolist():
            kept.setdefault(_skin_tone_base(self.names[index]), index)
        return np.asarray(list(kept.values())[:limit], np.int64)

    def skin_tones(self, index: int) -> np.ndarray:
        """Concept ``index`` and its skin-tone variants when it is the tone-less base of some ("thumbs up": its five
        tones; "kiss": its couples' tones): the base first, then the variants of one tone, then those of mixed tones,
        each in vocabulary order. Any other concept (a variant itself, an emoji without tones) alone."""
        family = self._tone_families.get(self.names[index]) if 0 <= index < len(self.names) else None
        if family is None or family[0] != index:
            return np.asarray([index], np.int64)
        return family.copy()

    @cached_property
    def _tone_families(self) -> dict[str, np.ndarray]:
        """Tone-less base name -> the base and its skin-tone variants, in :meth:`skin_tones`'s order (bases with
        variants only)."""
        members: dict[str, list[int]] = {}
        for index, name in enumerate(self.names):
            members.setdefault(_skin_tone_base(name), []).append(index)
        families = {}
        for base, indices in members.items():
            bases = [i for i in indices if self.names[i] == base]
            if len(indices) < 2 or not bases:
                continue
            variants = sorted(
                (i for i in indices if i != bases[0]), key=lambda i: (self.names[i].count("skin tone"), i)
            )
            families[base] = np.asarray([bases[0], *variants], np.int64)
        return families

    def is_generic(self, embedding: np.ndarray) -> bool:
        """Whether the prompt is one of the model's generic texts ("emoji", "an emoji", "Emoji", "絵文字"): it asks for
        any emoji, not a particular one."""
        if self.generic is None or self.showcase is None:
            return False
        return float((self.generic @ _unit(embedding)).max()) >= self.generic_cosine

    def match_scores(self, embedding: np.ndarray) -> np.ndarray:
        """Per concept, the cosine between the prompt and the closest of its names and shared keywords (wording
        directions left out): how well the prompt names it, as spread reads it."""
        return self._match_scores(self._query(embedding))[1]

    def _match_scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per concept: the cosine to its English name, and to the closest of its names and shared keywords."""
        own = self._english(query)
        scores = self._name_scores(query, own)
        if self.keywords is not None:
            kept = None if self.wording is None else self._kept["keywords"]
            scores = np.maximum(scores, self.keywords.concept_scores(query, len(self.names), kept))
        return own, scores

    def name_scores(self, embedding: np.ndarray, plain: bool = False) -> np.ndarray:
        """Per concept, the cosine between ``embedding`` and the closest of its names (English or any other
        language); ``plain``: with the wording directions left in (as if there were none)."""
        return self._name_scores(self._query(embedding, plain), plain=plain)

    def english_scores(self, embedding: np.ndarray, plain: bool = False) -> np.ndarray:
        """Per concept, the cosine between ``embedding`` and its English name (``plain`` as above)."""
        return self._english(self._query(embedding, plain), plain)

    def _query(self, embedding: np.ndarray, plain: bool = False) -> np.ndarray:
        """The prompt as every cosine here sees it: a unit vector, without the wording directions."""
        query = _unit(embedding)
        if self.wording is None or plain:
            return query
        return _unit(query - (self.wording @ query) @ self.wording)

    def _english(self, query: np.ndarray, plain: bool = False) -> np.ndarray:
        scores = self.embeddings @ query
        return scores if self.wording is None or plain else scores / self._kept["english"]

    def _name_scores(
        self, query: np.ndarray, own: np.ndarray | None = None, plain: bool = False
    ) -> np.ndarray:
        """Per concept, ``query``'s cosine to the closest of its names (``own``: its English names' scores, when
        already at hand); read-only, the last SCANS_KEPT queries' kept."""
        key = (np.ascontiguousarray(query, np.float32).tobytes(), plain)
        scores = self._scans.get(key)
        if scores is not None:
            return scores
        scores = self._english(query, plain) if own is None else own.copy()
        if self.aliases is not None and len(self.aliases.codes):
            kept = None if self.wording is None or plain else self._kept["aliases"]
            np.maximum.at(scores, self.aliases.owner, self.aliases.scores(query, kept))
        return self._scans.put(key, scores)

    def _plain_name_scores(self, queries: np.ndarray) -> np.ndarray:
        """:meth:`name_scores` (``plain``) of many prompts at once (R x D rows -> R x concepts): one pass over the
        int8 names for those not scored lately (the last RUNS_KEPT are kept) instead of one per prompt."""
        units = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        keys = [row.tobytes() for row in np.ascontiguousarray(units, np.float32)]
        kept = [self._runs.get(key) for key in keys]
        new = [i for i, row in enumerate(kept) if row is None]
        if new:
            for i, row in zip(new, self._scan_plain(units[new])):
                kept[i] = self._runs.put(keys[i], row)
        return np.stack(kept) if kept else np.zeros((0, len(self.names)), np.float32)

    def _scan_plain(self, units: np.ndarray) -> np.ndarray:
        """Plain name scores of unit rows (R x D -> R x concepts), in one pass over the int8 names."""
        scores = self.embeddings @ units.T  # concepts x R
        if self.aliases is not None and len(self.aliases.codes):
            # a maximum per owner over the aliases sorted by owner is 7x faster than np.maximum.at on a 2-D table;
            # same values
            order, starts, owners = self._alias_groups
            aliases = _int8_scores(self.aliases.codes, self.aliases.scales, units.T)
            best = np.maximum.reduceat(aliases[order], starts, axis=0)
            scores[owners] = np.maximum(scores[owners], best)
        return scores.T

    @cached_property
    def _alias_groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The aliases in owner order, where each owner's run starts, and the owners (for a maximum per owner)."""
        order = np.argsort(self.aliases.owner, kind="stable")
        owner = self.aliases.owner[order]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        return order, starts, owner[starts]

    @cached_property
    def _kept(self) -> dict[str, np.ndarray]:
        """Every row's length with the wording directions left out (computed once, at the first match)."""
        kept = {"english": _kept_lengths(self.embeddings, None, self.wording)}
        if self.aliases is not None:
            kept["aliases"] = _kept_lengths(self.aliases.codes, self.aliases.scales, self.wording)
        if self.keywords is not None:
            kept["keywords"] = _kept_lengths(self.keywords.codes, self.keywords.scales, self.wording)
        return kept


class _Kept:
    """The last few values computed for keys (read-only arrays), newest kept; safe across threads."""

    def __init__(self, size: Callable[[], int]):
        self._size = size  # read at every put, so a benchmark can change the module's constant
        self._values: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key) -> np.ndarray | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key, value: np.ndarray) -> np.ndarray:
        value = np.ascontiguousarray(value)  # a row of a batch: its own copy, not a view that keeps the batch
        value.setflags(write=False)
        with self._lock:
            self._values[key] = value
            while len(self._values) > max(self._size(), 0):
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def _deletions(word: str, depth: int) -> set[str]:
    """``word`` and every text made of it by deleting up to ``depth`` letters."""
    found, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance between ``a`` and ``b`` (insertions, deletions, substitutions and swaps of
    two neighbouring letters), or ``limit + 1`` as soon as it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, row = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + cost)
            if before is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, row = row, current
    return row[-1]


def _skin_tone_base(name: str) -> str:
    """The base of a skin-tone variant's Unicode name ("astronaut: light skin tone" -> "astronaut"); other
    names as they are."""
    return name.split(":", 1)[0] if "skin tone" in name else name


def _unit(embedding: np.ndarray) -> np.ndarray:
    query = np.asarray(embedding, np.float32).reshape(-1)
    return query / max(float(np.linalg.norm(query)), 1e-8)


MAX_VOCABULARY_JSON_BYTES = 32 << 20
MAX_EMBEDDINGS_BYTES = 1 << 30
MAX_CONCEPTS = 1_000_000
MAX_NAME_CHARS = 200


def load_vocabulary(info: ModelInfo) -> Vocabulary | None:
    """The model's vocabulary, or None when the folder ships none; ModelError (one sentence) if it is damaged."""
    names_path = info.path / "vocabulary.json"
    tensor_path = info.path / "vocabulary.safetensors"
    if not os.path.lexists(names_path):
        return None
    where = f"The vocabulary of '{info.name}'"
    try:
        entries = parse_json(read_regular_file(names_path, MAX_VOCABULARY_JSON_BYTES, where), where)
        if not isinstance(entries, list) or len(entries) > MAX_CONCEPTS:
            raise UntrustedInputError(
                f"{where} is damaged: it must be a list of at most {MAX_CONCEPTS:,} entries."
            )
        names, groups = [], []
        for entry in entries:
            name = entry.get("name") if isinstance(entry, dict) else None
            group = entry.get("group", "") if isinstance(entry, dict) else None
            if not all(isinstance(text, str) and len(text) <= MAX_NAME_CHARS for text in (name, group)):
                raise UntrustedInputError(f"{where} is damaged: each entry needs a short 'name' text.")
            names.append(name)
            groups.append(group)
        embeddings = np.zeros((len(names), 0), np.float32)
        aliases = keywords = None
        if os.path.lexists(tensor_path):
            check_regular_file(
                tensor_path, MAX_EMBEDDINGS_BYTES, f"The vocabulary embeddings of '{info.name}'"
            )
            embeddings, aliases, keywords = _load_embeddings(tensor_path, info.name)
        if embeddings.shape[0] != len(names):
            raise UntrustedInputError(
                f"{where} names {len(names)} concepts but has {embeddings.shape[0]} embeddings."
            )
        if aliases is not None and not (
            aliases.codes.ndim == 2
            and aliases.codes.shape[1] == embeddings.shape[1]
            and len(aliases.codes) == len(aliases.scales) == len(aliases.owner)
            and (len(aliases.owner) == 0 or (aliases.owner.min() >= 0 and aliases.owner.max() < len(names)))
            and np.isfinite(aliases.scales).all()
        ):
            raise UntrustedInputError(f"The vocabulary aliases of '{info.name}' do not match its concepts.")
        if keywords is not None and not keywords.valid(embeddings.shape[1], len(names)):
            raise UntrustedInputError(f"The vocabulary keywords of '{info.name}' do not match its concepts.")
        extras = _load_wording(info, embeddings.shape[1], len(names))
    except UntrustedInputError as exc:
        log_caught(str(exc), _log)
        raise ModelError(str(exc)) from exc
    return Vocabulary(names, groups, embeddings, aliases, keywords, **extras)


MAX_WORDING_BYTES = 1 << 20
MAX_WORDING_DIRECTIONS = 64
MAX_GENERIC_TEXTS = 64


def _load_wording(info: ModelInfo, dim: int, concepts: int) -> dict:
    """The :class:`Vocabulary` fields the folder's ``wording.safetensors`` gives: wording directions (k x D,
    orthonormal), generic rows (m x D, unit rows) with their texts, cosine and showcase (concept indices), and
    emoji characters (one text per concept); none when it ships no such file, and only those it holds otherwise.
    UntrustedInputError (one sentence) when the file is damaged or does not fit the vocabulary."""
    path = info.path / WORDING_FILE
    if not os.path.lexists(path):
        return {}
    where = f"The wording directions of '{info.name}'"
    check_regular_file(path, MAX_WORDING_BYTES, where)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        directions = tensors["directions"].astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UntrustedInputError(f"{where} are damaged ({type(exc).__name__}).") from exc
    chars = _read_chars(metadata.get("chars"), concepts, where)
    below = _read_name_words_below(metadata.get("name_words_below"), where)
    if dim == 0 or directions.ndim != 2 or directions.shape[1] != dim:
        raise UntrustedInputError(f"{where} do not match its vocabulary.")
    if not 1 <= len(directions) <= MAX_WORDING_DIRECTIONS or not np.isfinite(directions).all():
        raise UntrustedInputError(
            f"{where} are damaged (1 to {MAX_WORDING_DIRECTIONS} finite rows expected)."
        )
    if np.abs(directions @ directions.T - np.eye(len(directions))).max() > 1e-3:
        raise UntrustedInputError(f"{where} are damaged (the directions must be orthonormal).")
    if not {"generic", "showcase", "generic_cosine"} & set(tensors):
        return {"wording": directions, "chars": chars, "name_words_below": below}
    generic = tensors.get("generic", np.zeros((0, 0), np.float32)).astype(np.float32)
    showcase = tensors.get("showcase", np.zeros(0, np.int64))
    cosine = tensors.get("generic_cosine", np.full(1, GENERIC_COSINE, np.float32))
    if generic.ndim != 2 or generic.shape[1] != dim or not 1 <= len(generic) <= MAX_GENERIC_TEXTS:
        raise UntrustedInputError(
            f"{where} are damaged (the generic texts must be 1 to {MAX_GENERIC_TEXTS} rows of the vocabulary's width)."
        )
    lengths = np.linalg.norm(generic, axis=1) if np.isfinite(generic).all() else np.zeros(len(generic))
    if (lengths < 1e-6).any():
        raise UntrustedInputError(f"{where} are damaged (a generic text is not a finite, non-zero row).")
    if (
        showcase.ndim != 1
        or showcase.dtype.kind not in "iu"
        or not 2 <= len(showcase) <= MAX_GENERIC_TEXTS
        or len(np.unique(showcase)) != len(showcase)
        or showcase.min() < 0
        or showcase.max() >= concepts
    ):
        raise UntrustedInputError(
            f"{where} are damaged (the showcase must name 2 to {MAX_GENERIC_TEXTS} different concepts)."
        )
    if cosine.shape != (1,) or not (np.isfinite(cosine).all() and 0.9 <= float(cosine[0]) <= 1.0):
        raise UntrustedInputError(f"{where} are damaged (the generic texts' cosine must lie in [0.9, 1]).")
    return {
        "wording": directions,
        "generic": generic / lengths[:, None],
        "showcase": showcase.astype(np.int64),
        "generic_cosine": float(cosine[0]),
        "chars": chars,
        "name_words_below": below,
        "generic_texts": _read_texts(
            metadata.get("generic_texts"), len(generic), MAX_GENERIC_TEXT_LENGTH, where
        ),
    }


def _read_name_words_below(text: str | None, where: str) -> float | None:
    """The ``name_words_below`` metadata: the cosine below which a prompt is read by its name words (None: absent)."""
    if text is None:
        return None
    try:
        cosine = float(text)
    except ValueError:
        cosine = float("nan")
    if not 0.5 <= cosine <= 1.0:  # also NaN
        raise UntrustedInputError(f"{where} are damaged (the name words' cosine must lie in [0.5, 1]).")
    return cosine


def _read_chars(text: str | None, concepts: int, where: str) -> list[str] | None:
    """The ``chars`` metadata: a JSON list of one short text per concept (None when absent)."""
    return _read_texts(
        text, concepts, MAX_CHAR_LENGTH, where, "the emoji characters must be one short text per concept"
    )


def _read_texts(text: str | None, count: int, longest: int, where: str, damage: str = "") -> list[str] | None:
    """A metadata entry holding a JSON list of ``count`` texts of at most ``longest`` characters (None when absent)."""
    if text is None:
        return None
    try:
        texts = json.loads(text)
    except ValueError:
        texts = None
    if (
        not isinstance(texts, list)
        or len(texts) != count
        or not all(isinstance(t, str) and len(t) <= longest for t in texts)
    ):
        damage = (
            damage or f"the generic texts must be one text of at most {longest} characters per generic row"
        )
        raise UntrustedInputError(f"{where} are damaged ({damage}).")
    return texts


def save_wording(
    folder: Path,
    directions: np.ndarray,
    metadata: dict[str, str] | None = None,
    generic: np.ndarray | None = None,
    showcase: np.ndarray | None = None,
    cosine: float | None = None,
    chars: list[str] | None = None,
    texts: list[str] | None = None,
    name_words_below: float | None = None,
) -> Path:
    """Write ``wording.safetensors`` (k x D orthonormal directions; optionally the generic texts' embeddings, the
    showcase's concept indices, the generic texts' cosine, each concept's emoji, the generic texts themselves,
    one per embedding, and the name words' cosine) into a model folder."""
    path = Path(folder) / WORDING_FILE
    tensors = {"directions": np.ascontiguousarray(directions, np.float32)}
    if generic is not None:
        tensors["generic"] = np.ascontiguousarray(generic, np.float32)
    if showcase is not None:
        tensors["showcase"] = np.ascontiguousarray(showcase, np.int64)
    if cosine is not None:
        tensors["generic_cosine"] = np.asarray([cosine], np.float32)
    if chars is not None:
        metadata = {**(metadata or {}), "chars": json.dumps(chars, ensure_ascii=False)}
    if texts is not None:  # the generic rows' texts, which prompts are folded to (Vocabulary.reading)
        metadata = {**(metadata or {}), "generic_texts": json.dumps(texts, ensure_ascii=False)}
    if name_words_below is not None:  # a prompt no name lies this close to is read by its name words
        metadata = {**(metadata or {}), "name_words_below": repr(float(name_words_below))}
    return save_tensors(path, tensors, metadata)


def _load_embeddings(path: Path, model_name: str) -> tuple[np.ndarray, Aliases | None, Keywords | None]:
    from safetensors.numpy import load_file

    where = f"The vocabulary embeddings of '{model_name}'"
    try:
        tensors = load_file(str(path))
        embeddings = tensors["embeddings"].astype(np.float32)
        aliases, keywords = Aliases.from_tensors(tensors), Keywords.from_tensors(tensors)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UntrustedInputError(f"{where} are damaged ({type(exc).__name__}).") from exc
    if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
        raise UntrustedInputError(f"{where} are damaged (not a finite N x D table).")
    return embeddings, aliases, keywords


def save_vocabulary(
    folder: Path,
    entries: list[dict],
    embeddings: np.ndarray,
    aliases: tuple[np.ndarray, np.ndarray] | None = None,
    keywords: tuple[np.ndarray, list[np.ndarray]] | None = None,
) -> None:
    """Write the vocabulary; ``aliases`` = (M x D embeddings of other names, the concept index of each);
    ``keywords`` = (K x D embeddings of shared keywords, the concept indices of each)."""
    folder = Path(folder)
    (folder / "vocabulary.json").write_text(
        json.dumps(entries, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    tensors = {"embeddings": np.ascontiguousarray(embeddings.astype(np.float16))}
    if aliases is not None:
        tensors.update(Aliases.quantize(*aliases).tensors())
    if keywords is not None:
        tensors.update(Keywords.quantize(*keywords).tensors())
    save_tensors(folder / "vocabulary.safetensors", tensors)


def dataset_aliases(data) -> tuple[np.ndarray, np.ndarray] | None:
    """Each emoji's CLDR short name in every other language of the dataset, as (embeddings, owner)."""
    rows, owners = [], []
    for language in sorted({str(x) for x in data.caption_languages} - {"en"}):
        has = data.has_language(language)
        rows.append(data.name_embeddings(language)[has])
        owners.append(np.flatnonzero(has))
    if not rows:
        return None
    return np.concatenate(rows), np.concatenate(owners)


def dataset_keywords(data, min_concepts: int = 2) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Every caption text (keyword or name, any language) that at least ``min_concepts`` emoji share, once,
    as (embeddings, the emoji that carry each): what lets "cat" spread its seeds over every cat. Skin-tone
    variants of one emoji count as one (a text only they share spreads over nothing)."""
    texts = np.asarray(data.captions)
    unique, first, inverse = np.unique(texts, return_index=True, return_inverse=True)
    owners: list[set[int]] = [set() for _ in unique]
    for text_id, owner in zip(inverse, data.caption_owner):
        owners[text_id].add(int(owner))
    base = [_skin_tone_base(str(name)) for name in data.names]
    shared = [i for i in range(len(unique)) if len({base[k] for k in owners[i]}) >= min_concepts]
    if not shared:
        return None
    embeddings = np.asarray(data.caption_emb[first[shared]], np.float32)
    return embeddings, [np.array(sorted(owners[i]), np.int64) for i in shared]
