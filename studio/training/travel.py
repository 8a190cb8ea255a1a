"""The training set in a form that travels to a machine which cannot build it (a lent GPU machine: no Debian
font or CLDR packages there, and at most 64 MiB of files reach it), and back into a dataset folder there.

The 342,024 caption embeddings (368 MB) are what does not fit, and they are the cheapest part to remake: there are
only 145,418 different caption texts, and the prompt encoder embeds one in about 0.8 ms on one core. So ``pack``
keeps every array of the dataset but the embeddings and the 128 px renders (the base stage trains on the 32 px
ones; the upsampler and the judges do not train on a travel copy), stores each caption as an index into its
unique texts, and keeps 1,024 captions' stored embeddings as a check. ``unpack`` embeds the texts again in
parallel worker processes, refuses the result unless those 1,024 agree with the stored ones, and writes a
dataset folder the trainer reads as it reads the original (128 px renders all zero; the manifest says so).

    python -m studio.training.travel pack --data data/emoji-usem3-kw --out .gpu/kit        (here: 7.5 MB)
    python -m studio.training.travel unpack --kit .gpu/kit --out data/emoji-usem3-kw --workers 16   (there)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from studio.atomic import write_atomically
from studio.training.dataset import DATA_FILE, MANIFEST_FILE, load_dataset, sha256_file

KIT_FILE = "kit.npz"
KIT_MANIFEST = "manifest.json"
CHECK_ROWS = 1024  # captions whose stored embedding travels along as the check
CHECK_SEED = 20261204
# the most an embedding made there may differ from the stored one in any coordinate (stored as float16: its
# rounding step near 0.1 is 6e-5; the same numpy forward on another CPU differs by a few of those at most)
CHECK_TOLERANCE = 2e-3
CHUNK = 2048  # texts per task of a worker process
# every array of the dataset file but these two travels as it is
LEFT_BEHIND = ("caption_emb", "images128")


class TravelError(Exception):
    """The kit cannot be made or unpacked; one sentence."""


def pack(data_folder: str | Path, out: str | Path, check_rows: int = CHECK_ROWS) -> dict:
    """Write ``kit.npz`` and ``manifest.json`` (the dataset's, with a ``travel`` record) into ``out``; returns
    the travel record."""
    data_folder, out = Path(data_folder), Path(out)
    path = data_folder / DATA_FILE
    if not path.exists():
        raise TravelError(
            f"There is no dataset at '{data_folder}' to pack; build it with `gan-studio dataset build`."
        )
    manifest_path = data_folder / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files if key not in LEFT_BEHIND}
        embeddings = stored["caption_emb"]
        big_shape = stored["images128"].shape
    texts, caption_text = np.unique(arrays.pop("captions"), return_inverse=True)
    rng = np.random.default_rng(CHECK_SEED)
    rows = np.sort(rng.choice(len(caption_text), size=min(check_rows, len(caption_text)), replace=False))
    arrays.update(
        texts=texts,
        caption_text=caption_text.astype(np.int32),
        check_rows=rows.astype(np.int64),
        check_emb=embeddings[rows],
        images128_shape=np.array(big_shape, np.int64),
    )
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / KIT_FILE, lambda temp: np.savez_compressed(temp, **arrays))
    record = {
        "source_sha256": manifest.get("sha256") or sha256_file(path),
        "captions": int(len(caption_text)),
        "texts": int(len(texts)),
        "embedding_dim": int(embeddings.shape[1]),
        "check_rows": int(len(rows)),
        "kit_sha256": sha256_file(out / KIT_FILE),
    }
    (out / KIT_MANIFEST).write_text(
        json.dumps({**manifest, "travel": record}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return record


_worker_encoder = None


def _start_worker() -> None:
    global _worker_encoder
    from studio.models.usem3 import UseM3Encoder

    _worker_encoder = UseM3Encoder(threads=1)
    _worker_encoder.load()


def _encode_chunk(texts: list[str]) -> np.ndarray:
    return _worker_encoder.encode(texts)


def embed_texts(
    texts: Sequence[str], workers: int = 1, encoder=None, log: Callable[[str], None] = print
) -> np.ndarray:
    """``len(texts) x D`` float32 embeddings of ``texts``: in ``workers`` processes with the USE multilingual v3
    encoder each, or with ``encoder`` (anything with ``encode(list) -> array``) in this process."""
    chunks = [list(texts[i : i + CHUNK]) for i in range(0, len(texts), CHUNK)]
    started = time.time()
    if encoder is not None or workers <= 1:
        if encoder is None:
            _start_worker()
            encoder = _worker_encoder
        parts = [np.asarray(encoder.encode(chunk), np.float32) for chunk in chunks]
    else:
        try:
            with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker) as pool:
                parts = list(pool.map(_encode_chunk, chunks))
        except (OSError, BrokenProcessPool) as error:  # a sandbox without worker processes
            # one process on every core instead
            log(f"worker processes failed ({error}); embedding in this process")
            from studio.models.usem3 import UseM3Encoder

            encoder = UseM3Encoder(threads=workers)
            parts = [np.asarray(encoder.encode(chunk), np.float32) for chunk in chunks]
    log(f"embedded {len(texts)} texts in {time.time() - started:.1f} s ({workers} workers)")
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def unpack(
    kit: str | Path, out: str | Path, workers: int = 1, encoder=None, log: Callable[[str], None] = print
) -> dict:
    """Embed the kit's texts again and write ``emoji.npz`` + ``manifest.json`` into ``out``; returns the check's
    record (also in the manifest's ``travel``). Raises :class:`TravelError` when the check fails."""
    kit, out = Path(kit), Path(out)
    if not (kit / KIT_FILE).exists():
        raise TravelError(
            f"There is no travel kit at '{kit}'; make one with `python -m {__spec__.name} pack`."
        )
    manifest = json.loads((kit / KIT_MANIFEST).read_text(encoding="utf-8"))
    with np.load(kit / KIT_FILE, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    texts = [str(text) for text in arrays.pop("texts")]
    caption_text = arrays.pop("caption_text")
    rows, expected = arrays.pop("check_rows"), arrays.pop("check_emb").astype(np.float32)
    vectors = embed_texts(texts, workers, encoder, log)
    if vectors.shape != (len(texts), expected.shape[1]):
        raise TravelError(
            f"The encoder gives {vectors.shape[1]}-d embeddings; the kit was made with {expected.shape[1]}-d ones."
        )
    caption_emb = vectors[caption_text].astype(np.float16)
    gap = float(np.abs(caption_emb[rows].astype(np.float32) - expected).max()) if len(rows) else 0.0
    if not gap <= CHECK_TOLERANCE:
        raise TravelError(
            f"The embeddings made here differ from the stored ones by up to {gap:.4f} (at most {CHECK_TOLERANCE} "
            "allowed): this is not the encoder the dataset was built with."
        )
    arrays.update(
        captions=np.array(texts)[caption_text],
        caption_emb=caption_emb,
        images128=np.zeros(tuple(int(n) for n in arrays.pop("images128_shape")), np.uint8),
    )
    out.mkdir(parents=True, exist_ok=True)
    # uncompressed: the embeddings do not shrink much, and compressing 350 MB costs more than it saves here
    write_atomically(out / DATA_FILE, lambda temp: np.savez(temp, **arrays))
    travel = {
        **manifest.get("travel", {}),
        "unpacked_sha256": sha256_file(out / DATA_FILE),
        "check_max_gap": gap,
        "images128": "all zero: a travel copy trains the base stage only",
    }
    manifest = {**manifest, "sha256": travel.get("source_sha256", ""), "travel": travel}
    (out / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    load_dataset(out)  # the trainer's reader takes it
    return travel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack", help="a dataset folder -> a travel kit")
    packing.add_argument("--data", required=True, help="dataset folder (gan-studio dataset build)")
    packing.add_argument("--out", required=True, help="kit folder to write")
    unpacking = verbs.add_parser(
        "unpack", help="a travel kit -> a dataset folder (embeds the captions again)"
    )
    unpacking.add_argument("--kit", required=True, help="kit folder (from pack)")
    unpacking.add_argument("--out", required=True, help="dataset folder to write")
    unpacking.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoder processes")
    args = parser.parse_args(argv)
    try:
        if args.verb == "pack":
            record = pack(args.data, args.out)
        else:
            record = unpack(args.kit, args.out, args.workers)
    except (TravelError, FileNotFoundError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
