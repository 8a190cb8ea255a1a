"""The emoji dataset: every fully-qualified emoji of ``emoji-test.txt`` rendered with Noto Color Emoji.

``build_dataset(out)`` writes two files into ``out``:

- ``emoji.npz`` (uint8 images and small index arrays, no pickles):
  ``images128`` (N x 128 x 128 x 4 straight-alpha RGBA), ``images32`` (N x 32 x 32 x 4),
  ``group`` / ``subgroup`` / ``base`` (int32 per emoji), ``heldout`` (bool per emoji),
  ``caption_owner`` (int32 per caption: which emoji it describes), ``caption_is_name`` (bool),
  ``caption_lang`` (the CLDR language of each caption), ``caption_emb`` (captions x D float16, the prompt
  encoder's unit rows) and the strings ``names``, ``emoji``, ``captions``, ``groups``, ``subgroups``;
- ``manifest.json``: counts per group and per caption language, the encoder, the source package versions,
  the sha256 of ``emoji.npz``.

Captions come in every language the prompt encoder knows (its ``languages``; CLDR's annotations carry names
and keywords for them), so a model learns "猫" and "chat" from the pictures directly, not only through the
encoder's alignment of translations.

The held-out split is a fixed function of the *base* emoji (skin-tone modifiers removed) and a seed, so it
is the same whatever subset is built and all skin-tone variants of a base fall on the same side.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.atomic import write_atomically

EMOJI_TEST_CANDIDATES = (
    Path("/usr/share/unicode/emoji/emoji-test.txt"),
    Path("/usr/share/unicode-data/emoji/emoji-test.txt"),
)
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),
)
CLDR_ROOT_CANDIDATES = (Path("/usr/share/unicode/cldr/common"), Path("/usr/share/unicode-cldr/common"))
PACKAGES = ("fonts-noto-color-emoji", "unicode-data", "unicode-cldr-core")
DATA_FILE = "emoji.npz"
MANIFEST_FILE = "manifest.json"
SPLIT_SEED = "gan-studio-emoji-split-v1"
HELDOUT_FRACTION = 0.10
SKIN_TONES = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
RENDER_SIZE = 109  # the one bitmap strike of Noto Color Emoji
_LINE = re.compile(r"^([0-9A-F ]+?)\s*;\s*fully-qualified\s*#\s*(\S+)\s+E\d+\.\d+\s+(.+)$")


class MissingSourcesError(RuntimeError):
    """A Debian package the dataset needs is not installed; the message is one sentence."""


@dataclass
class EmojiRecord:
    emoji: str
    name: str
    group: str
    subgroup: str
    codepoints: tuple[int, ...]
    captions: list[str] = field(default_factory=list)  # English; the first is the emoji-test name
    foreign: dict[str, list[str]] = field(default_factory=dict)  # CLDR language -> captions

    @property
    def base_key(self) -> str:
        """The emoji without skin-tone modifiers or variation selectors: variants share it."""
        return "".join(chr(c) for c in self.codepoints if c not in SKIN_TONES and c != 0xFE0F)


@dataclass
class Sources:
    emoji_test: Path
    font: Path
    annotations: list[Path]  # English

    def annotations_for(self, language: str) -> list[Path]:
        """CLDR's annotation files (plain and derived) for a language id such as ``zh`` or ``zh_Hant``."""
        cldr = self.annotations[0].parents[1]
        return [
            p
            for p in (cldr / d / f"{language}.xml" for d in ("annotations", "annotationsDerived"))
            if p.exists()
        ]


def find_sources() -> Sources:
    """Locate the packaged files; raises MissingSourcesError naming the packages to install."""
    emoji_test = next((p for p in EMOJI_TEST_CANDIDATES if p.exists()), None)
    font = next((p for p in FONT_CANDIDATES if p.exists()), None)
    cldr = next((p for p in CLDR_ROOT_CANDIDATES if (p / "annotations" / "en.xml").exists()), None)
    missing = []
    if font is None:
        missing.append("fonts-noto-color-emoji")
    if emoji_test is None:
        missing.append("unicode-data")
    if cldr is None:
        missing.append("unicode-cldr-core")
    if missing:
        raise MissingSourcesError(
            "The emoji dataset needs the Debian packages "
            + ", ".join(missing)
            + f"; install them with `sudo apt-get install {' '.join(missing)}`."
        )
    annotations = [cldr / "annotations" / "en.xml"]
    derived = cldr / "annotationsDerived" / "en.xml"
    if derived.exists():
        annotations.append(derived)
    return Sources(emoji_test, font, annotations)


def parse_emoji_test(path: Path) -> list[EmojiRecord]:
    records = []
    group = subgroup = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            match = _LINE.match(line)
            if match:
                cps = tuple(int(c, 16) for c in match.group(1).split())
                records.append(
                    EmojiRecord("".join(map(chr, cps)), match.group(3).strip(), group, subgroup, cps)
                )
    return records


def parse_annotations(paths: Sequence[Path]) -> dict[str, tuple[str, list[str]]]:
    """emoji (without FE0F) -> (tts short name, keywords)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for path in paths:
        root = ET.parse(path).getroot()
        for node in root.iter("annotation"):
            cp = (node.get("cp") or "").replace("\ufe0f", "")
            text = (node.text or "").strip()
            tts, keywords = out.get(cp, ("", []))
            if node.get("type") == "tts":
                tts = text
            else:
                keywords = [k.strip() for k in text.split("|") if k.strip()]
            out[cp] = (tts, keywords)
    return out


def foreign_captions(tts: str, keywords: Sequence[str]) -> list[str]:
    """Captions in another language: its short name, the name with up to four keywords, and each keyword
    alone (a keyword that several emoji share, such as "cat", names all of them: the model learns to draw
    any of them, one per seed)."""
    captions = [tts] if tts else []
    extra = [k for k in keywords if k.lower() != tts.lower()]
    if extra:
        captions.append(f"{tts}, {', '.join(extra[:4])}" if tts else ", ".join(extra[:4]))
    return list(dict.fromkeys(captions + extra))


def make_captions(record: EmojiRecord, tts: str, keywords: Sequence[str]) -> list[str]:
    """The prompts that describe one emoji; the first is always its emoji-test name, the last ones its CLDR
    keywords alone (see :func:`foreign_captions`)."""
    name = record.name
    sub = record.subgroup.replace("-", " ")
    captions = [name]
    if tts and tts.lower() != name.lower():
        captions.append(tts)
    extra = [k for k in keywords if k.lower() not in (name.lower(), tts.lower())]
    if extra:
        captions.append(f"{tts or name}, {', '.join(extra[:4])}")
    captions.append(f"{name} ({sub}, {record.group.lower()})")
    return list(dict.fromkeys(captions + extra))


def is_heldout(base_key: str, seed: str = SPLIT_SEED, fraction: float = HELDOUT_FRACTION) -> bool:
    digest = hashlib.sha256((seed + "|" + base_key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < fraction


def render_emoji(text: str, font) -> tuple[np.ndarray, np.ndarray] | None:
    """Render one emoji: (128 x 128 x 4, 32 x 32 x 4) straight-alpha uint8, or None when nothing is drawn."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (320, 320), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((40, 40), text, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None:
        return None
    crop = canvas.crop(box)
    side = max(crop.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
    square = square.convert("RGBa")  # resample premultiplied so edges keep no stray colour
    big = square.resize((128, 128), Image.Resampling.LANCZOS).convert("RGBA")
    small = square.resize((32, 32), Image.Resampling.BOX).convert("RGBA")
    return np.asarray(big, np.uint8), np.asarray(small, np.uint8)


def package_versions() -> dict[str, str]:
    versions = {}
    for pkg in PACKAGES:
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, timeout=10
            )
            versions[pkg] = out.stdout.strip() if out.returncode == 0 else "unknown"
        except (OSError, subprocess.SubprocessError):
            versions[pkg] = "unknown"
    return versions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_dataset(
    out: str | Path,
    limit: int | None = None,
    encoder=None,
    only: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    languages: Sequence[str] | None = None,
) -> dict:
    """Render, caption, embed and split the emoji; write ``emoji.npz`` + ``manifest.json``; return the manifest.

    ``limit`` keeps the first N emoji (in emoji-test order); ``only`` keeps the named emoji (tests).
    ``encoder`` is a text encoder (default: studio.models.text.DEFAULT_ENCODER); captions are made in every
    language in its ``languages`` (English only when it has none), or in ``languages`` when given.
    """
    from PIL import ImageFont

    sources = find_sources()
    records = parse_emoji_test(sources.emoji_test)
    if only is not None:
        wanted = set(only)
        records = [r for r in records if r.emoji in wanted or r.name in wanted]
    if limit is not None:
        records = records[:limit]
    annotations = parse_annotations(sources.annotations)
    if encoder is None:
        from studio.models.text import DEFAULT_ENCODER, get_text_encoder

        encoder = get_text_encoder(DEFAULT_ENCODER, disk_cache=False)
    inner = getattr(encoder, "inner", encoder)  # skip the prompt cache: it is smaller than this batch
    languages = [lang for lang in (languages or getattr(inner, "languages", ("en",))) if lang != "en"]
    foreign = {lang: parse_annotations(sources.annotations_for(lang)) for lang in languages}
    known_share = getattr(inner, "known_share", None)

    def readable(caption: str) -> bool:
        # A caption the encoder reads as nothing but unknown pieces (e.g. a Chinese name whose characters
        # its vocabulary lacks) would teach the model to draw that emoji for every unreadable prompt.
        return known_share is None or known_share(caption) > 0

    font = ImageFont.truetype(str(sources.font), RENDER_SIZE)
    kept: list[EmojiRecord] = []
    big, small, skipped = [], [], []
    for i, record in enumerate(records):
        rendered = render_emoji(record.emoji, font)
        if rendered is None:
            skipped.append(record.name)
            continue
        tts, keywords = annotations.get(record.emoji.replace("\ufe0f", ""), ("", []))
        record.captions = make_captions(record, tts, keywords)
        key = record.emoji.replace("\ufe0f", "")
        record.foreign = {
            lang: [c for c in foreign_captions(*foreign[lang][key]) if readable(c)]
            for lang in languages
            if key in foreign[lang]
        }
        kept.append(record)
        big.append(rendered[0])
        small.append(rendered[1])
        if (i + 1) % 500 == 0:
            log(f"rendered {i + 1}/{len(records)}")
    if not kept:
        raise MissingSourcesError(
            "No emoji could be rendered; reinstall the Debian package fonts-noto-color-emoji."
        )
    groups = sorted({r.group for r in kept}, key=[r.group for r in kept].index)
    subgroups = sorted({r.subgroup for r in kept}, key=[r.subgroup for r in kept].index)
    bases = sorted({r.base_key for r in kept}, key=[r.base_key for r in kept].index)
    captions, owner, is_name, caption_lang = [], [], [], []
    for i, record in enumerate(kept):
        tagged = [("en", c) for c in record.captions]
        tagged += [(lang, c) for lang, texts in record.foreign.items() for c in texts]
        for j, (lang, caption) in enumerate(tagged):
            captions.append(caption)
            owner.append(i)
            is_name.append(j == 0)
            caption_lang.append(lang)
    log(f"encoding {len(captions)} captions in {1 + len(languages)} languages with {encoder.encoder_id}")
    unique = list(dict.fromkeys(captions))
    vectors = np.concatenate(
        [np.asarray(inner.encode(unique[i : i + 1024]), np.float32) for i in range(0, len(unique), 1024)]
    )
    index = {c: k for k, c in enumerate(unique)}
    caption_emb = vectors[[index[c] for c in captions]].astype(np.float16)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {
        "images128": np.stack(big),
        "images32": np.stack(small),
        "group": np.array([groups.index(r.group) for r in kept], np.int32),
        "subgroup": np.array([subgroups.index(r.subgroup) for r in kept], np.int32),
        "base": np.array([bases.index(r.base_key) for r in kept], np.int32),
        "heldout": np.array([is_heldout(r.base_key) for r in kept], bool),
        "caption_owner": np.array(owner, np.int32),
        "caption_is_name": np.array(is_name, bool),
        "caption_lang": np.array(caption_lang),
        "caption_emb": caption_emb,
        "names": np.array([r.name for r in kept]),
        "emoji": np.array([r.emoji for r in kept]),
        "captions": np.array(captions),
        "groups": np.array(groups),
        "subgroups": np.array(subgroups),
    }
    write_atomically(out / DATA_FILE, lambda temp: np.savez_compressed(temp, **arrays))
    heldout = arrays["heldout"]
    manifest = {
        "file": DATA_FILE,
        "sha256": sha256_file(out / DATA_FILE),
        "count": len(kept),
        "skipped": skipped,
        "captions": len(captions),
        "captions_by_language": dict(Counter(caption_lang)),
        "heldout": int(heldout.sum()),
        "heldout_bases": int(len({r.base_key for r, h in zip(kept, heldout) if h})),
        "bases": len(bases),
        "groups": dict(Counter(r.group for r in kept)),
        "subgroups": len(subgroups),
        "split": {"seed": SPLIT_SEED, "fraction": HELDOUT_FRACTION, "by": "base emoji (skin tones removed)"},
        "render": {"font_size": RENDER_SIZE, "sizes": [128, 32], "alpha": "straight RGBA uint8"},
        "encoder": getattr(encoder, "encoder_id", "unknown"),
        "sources": {
            "emoji_test": str(sources.emoji_test),
            "font": str(sources.font),
            "annotations": [str(p) for p in sources.annotations],
        },
        "packages": package_versions(),
    }
    (out / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    log(
        f"wrote {out / DATA_FILE}: {len(kept)} emoji, {len(captions)} captions, {int(heldout.sum())} held out"
    )
    return manifest


@dataclass
class EmojiData:
    """The dataset in memory (numpy), as the trainer and the evaluation read it."""

    images128: np.ndarray
    images32: np.ndarray
    group: np.ndarray
    subgroup: np.ndarray
    base: np.ndarray
    heldout: np.ndarray
    caption_owner: np.ndarray
    caption_is_name: np.ndarray
    caption_emb: np.ndarray
    names: list[str]
    emoji: list[str]
    captions: list[str]
    groups: list[str]
    subgroups: list[str]
    manifest: dict
    caption_lang: np.ndarray | None = None  # CLDR language per caption (None: an English-only dataset)
    _every_name: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def train_index(self) -> np.ndarray:
        return np.flatnonzero(~self.heldout)

    @property
    def heldout_index(self) -> np.ndarray:
        return np.flatnonzero(self.heldout)

    @property
    def caption_languages(self) -> np.ndarray:
        """The CLDR language of each caption ("en" for every caption of an English-only dataset)."""
        if self.caption_lang is None:
            return np.full(len(self.captions), "en")
        return np.asarray(self.caption_lang)

    def name_captions(self, every_language: bool = False) -> np.ndarray:
        """Per caption: whether it is its emoji's name. English only (``caption_is_name``, the emoji-test
        name), or with ``every_language`` also each emoji's first caption in every other language: its CLDR
        short name, the caption :meth:`name_embeddings` prompts with."""
        if not every_language or self.caption_lang is None:
            return self.caption_is_name
        if self._every_name is None:
            languages, language_id = np.unique(self.caption_languages, return_inverse=True)
            pair = self.caption_owner.astype(np.int64) * len(languages) + language_id
            _, first = np.unique(pair, return_index=True)  # captions are stored emoji by emoji, name first
            names = self.caption_is_name.copy()
            names[first[languages[language_id[first]] != "en"]] = True
            self._every_name = names
        return self._every_name

    def _name_rows(self, language: str) -> np.ndarray:
        """The caption rows of the emoji's names in ``language`` (at most one per emoji)."""
        if language == "en":
            return np.flatnonzero(self.caption_is_name)
        # the first caption of each emoji in that language: its CLDR short name
        return np.flatnonzero(self.name_captions(every_language=True) & (self.caption_languages == language))

    def name_embeddings(self, language: str = "en") -> np.ndarray:
        """N x D float32: the embedding of each emoji's own name (its first caption) in ``language``; zero rows
        for emoji without a caption in that language (see :meth:`has_language`)."""
        rows = self._name_rows(language)
        out = np.zeros((len(self.names), self.caption_emb.shape[1]), np.float32)
        out[self.caption_owner[rows]] = self.caption_emb[rows].astype(np.float32)
        return out

    def name_texts(self, language: str = "en") -> list[str | None]:
        """Each emoji's own name in ``language``, the text :meth:`name_embeddings` embeds; None for emoji
        without a caption in that language."""
        out: list[str | None] = [None] * len(self.names)
        for row in self._name_rows(language).tolist():
            out[int(self.caption_owner[row])] = str(self.captions[row])
        return out

    def named_index(self, language: str, heldout: bool = False) -> np.ndarray:
        """The training emoji (``heldout``: the held-out ones) that have a caption in ``language``, in dataset order."""
        index = self.heldout_index if heldout else self.train_index
        return index[self.has_language(language)[index]]

    def has_language(self, language: str) -> np.ndarray:
        """Per emoji: whether it has a caption in ``language``."""
        if language == "en":
            return np.ones(len(self.names), bool)
        out = np.zeros(len(self.names), bool)
        out[self.caption_owner[self.caption_languages == language]] = True
        return out


def load_dataset(folder: str | Path) -> EmojiData:
    folder = Path(folder)
    path = folder / DATA_FILE if folder.is_dir() else folder
    if not path.exists():
        raise FileNotFoundError(
            f"There is no emoji dataset at '{path}'; build it with `gan-studio dataset build`."
        )
    manifest_path = path.parent / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    with np.load(path, allow_pickle=False) as data:
        d = {k: data[k] for k in data.files}
    return EmojiData(
        images128=d["images128"],
        images32=d["images32"],
        group=d["group"],
        subgroup=d["subgroup"],
        base=d["base"],
        heldout=d["heldout"],
        caption_owner=d["caption_owner"],
        caption_is_name=d["caption_is_name"],
        caption_emb=d["caption_emb"],
        names=[str(s) for s in d["names"]],
        emoji=[str(s) for s in d["emoji"]],
        captions=[str(s) for s in d["captions"]],
        groups=[str(s) for s in d["groups"]],
        subgroups=[str(s) for s in d["subgroups"]],
        manifest=manifest,
        caption_lang=d.get("caption_lang"),
    )


def balanced_weights(group: np.ndarray, base: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Sampling probabilities over ``index``: the variants of one base emoji share one base's weight, and a
    group's total weight grows with the square root of its number of bases (People & Body's skin tones do
    not drown the animals, and the 9 components do not get a tenth of the steps)."""
    base_sizes = Counter(base[index].tolist())
    bases_per_group: dict[int, set] = {}
    for i in index:
        bases_per_group.setdefault(int(group[i]), set()).add(int(base[i]))
    weights = np.array(
        [len(bases_per_group[int(group[i])]) ** -0.5 / base_sizes[int(base[i])] for i in index], np.float64
    )
    return weights / weights.sum()


def make_synthetic_dataset(out: str | Path, count: int = 12, dim: int = 384, seed: int = 0) -> Path:
    """A tiny dataset of coloured discs and squares in the real file format (tests; no fonts needed)."""
    rng = np.random.default_rng(seed)
    big = np.zeros((count, 128, 128, 4), np.uint8)
    yy, xx = np.mgrid[:128, :128]
    for i in range(count):
        colour = rng.integers(40, 255, 3)
        r = 30 + 6 * (i % 5)
        mask = (
            (yy - 64) ** 2 + (xx - 64) ** 2 < r * r if i % 2 == 0 else (abs(yy - 64) < r) & (abs(xx - 64) < r)
        )
        big[i, mask, :3] = colour
        big[i, mask, 3] = 255
    small = big.reshape(count, 32, 4, 32, 4, 4).mean(axis=(2, 4)).round().astype(np.uint8)
    names = [f"shape {i}" for i in range(count)]
    captions, owner, is_name = [], [], []
    for i, name in enumerate(names):
        # the last caption is a keyword every disc (or every square) shares
        for j, caption in enumerate((name, f"{name}, synthetic", "disc" if i % 2 == 0 else "square")):
            captions.append(caption)
            owner.append(i)
            is_name.append(j == 0)
    texts = sorted(set(captions))
    vectors = rng.standard_normal((len(texts), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    emb = vectors[[texts.index(c) for c in captions]]  # one text, one embedding
    heldout = np.zeros(count, bool)
    heldout[-max(1, count // 6) :] = True
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / DATA_FILE,
        images128=big,
        images32=small,
        group=np.array([i % 2 for i in range(count)], np.int32),
        subgroup=np.array([i % 4 for i in range(count)], np.int32),
        base=np.arange(count, dtype=np.int32),
        heldout=heldout,
        caption_owner=np.array(owner, np.int32),
        caption_is_name=np.array(is_name, bool),
        caption_emb=emb.astype(np.float16),
        names=np.array(names),
        emoji=np.array(names),
        captions=np.array(captions),
        groups=np.array(["even", "odd"]),
        subgroups=np.array(["s0", "s1", "s2", "s3"]),
    )
    manifest = {"file": DATA_FILE, "sha256": sha256_file(out / DATA_FILE), "count": count, "synthetic": True}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    return out
