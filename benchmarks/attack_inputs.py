"""Rerun issue 12's attacks on untrusted input and print JSON: cases tried, failures, anything lost.

    python benchmarks/attack_inputs.py [--cases 5000] [--cli 300] [--seed 12]

Mutated PNG/WebP/JPEG/GIF files (hostile values in the stored document, broken copies, byte damage) go
through the reader, ``inspect`` (in process) and the paste parser; a sample also through the CLI as a
subprocess (``inspect`` and ``generate --from``). Special files (named pipes, /dev/zero links, a sparse 2 GB
sidecar) and broken model folders go through the reader, ``gan-studio models`` and ``load_model``.

A *failure* is any exception other than the one-sentence error types, a message that is not one printable
line of at most 240 characters, escape codes on stdout, a hang (10 s per case) or a CLI traceback. *Lost*
counts files that hold an intact copy of their parameters but were not restored.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import ExifTags, Image, PngImagePlugin  # noqa: E402

from studio.cli import main as cli_main  # noqa: E402
from studio.engine.requests import ConceptSlider, Endpoint, GenerationRequest  # noqa: E402
from studio.errors import ModelError, UserError  # noqa: E402
from studio.io.metadata import (  # noqa: E402
    ImageParameters,
    MetadataError,
    document_json,
    read_parameters,
    save_options,
    xmp_packet,
)

try:
    from studio.io.metadata import parameters_from_text
except ImportError:  # a checkout from before issue 12 (for a before/after comparison): the window's parser
    from studio.ui.exporting import request_from_json_text as parameters_from_text

MAX_MESSAGE_CHARS = 240

HANG_SECONDS = 10
HOSTILE = [
    "Infinity", "-Infinity", "NaN", "1e999", "9" * 4301, "3.5", '"12"', "true", "null", "[]", "{}", '"\\ud800"',
    '"\\u001b]0;owned\\u0007\\u001b[2J"', '"\\u0000"', '"/etc"', '"../../x"', '"~root"', "10000", "-1",
    "[" * 20000 + "]" * 20000, '"' + "x" * 200_000 + '"', "1e308", "2.5", '"\\u202eevil"',
    json.dumps([{"negative": "a", "positive": "b", "scale": 1.0}] * 2000),
]  # fmt: skip


class Hang(Exception):
    pass


def rich_parameters(prompt: str = "a red apple") -> ImageParameters:
    request = GenerationRequest(
        prompt, seed=42, truncation=0.7, directions=((0, 1.5), (3, -2.0)),
        concepts=(ConceptSlider("sad", "happy", 0.5),), interpolate_to=Endpoint("a pear", 7), t=0.25, model="emoji",
    )  # fmt: skip
    recipe = {"mode": "interpolate", "frames": 2, "fps": 12.0, "loop": True, "pingpong": False,
              "played_frames": 2, "requests": [request.to_json(), request.to_json()]}  # fmt: skip
    return ImageParameters(request, model_hash="1a2b3c4d", size=(8, 8), animation=recipe)


def leaf_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the scalar values in compact JSON text (numbers, strings, literals)."""
    spans, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if text[j + 1] != ":":  # a value, not a key
                spans.append((i, j + 1))
            i = j + 1
        elif ch in "-0123456789tfn":
            j = i
            while j < len(text) and text[j] not in ",]}":
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def mutate_document(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        spans = leaf_spans(text)
        start, end = rng.choice(spans)
        text = text[:start] + rng.choice(HOSTILE) + text[end:]
    return text


def write_png(path: Path, document: str | None, extra_xmp: bool = False) -> None:
    info = PngImagePlugin.PngInfo()
    if document is not None:
        info.add_itxt("gan-studio", document, zip=True)
    Image.new("RGBA", (8, 8)).save(path, "PNG", pnginfo=info)


def write_exif_xmp(path: Path, image_format: str, exif_document: str | None, xmp: bytes | None) -> None:
    exif = Image.Exif()
    if exif_document is not None:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"ASCII\0\0\0" + exif_document.encode(
            "utf-8", "surrogatepass"
        )
    options = {"exif": exif}
    if xmp is not None:
        options["xmp"] = xmp
    Image.new("RGB", (8, 8)).save(path, image_format, **options)


def xmp_for(document: str) -> bytes:
    from xml.sax.saxutils import escape

    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:ganstudio="urn:gan-studio:metadata:1">'
        f"<ganstudio:parameters>{escape(document)}</ganstudio:parameters></rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode("utf-8", "surrogatepass")


BAD_XMP = b'<?xml version="1.0" encoding="x-unknown"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'


def make_case(folder: Path, index: int, rng: random.Random) -> tuple[Path, str, bool]:
    """(file, the document text it holds, whether an intact copy must be restored)."""
    try:
        return _make_case(folder, index, rng)
    except ValueError:  # JPEG's EXIF holds at most 64 kB: such a document goes into a PNG instead
        path = folder / f"c{index}.png"
        bad = mutate_document(document_json(rich_parameters()), rng)
        write_png(path, bad)
        return path, bad, False


def _make_case(folder: Path, index: int, rng: random.Random) -> tuple[Path, str, bool]:
    good = document_json(rich_parameters(rng.choice(["a red apple", "a cat\x1b[2J", "a \x00 sun 😀"])))
    bad = mutate_document(good, rng)
    kind = rng.choice(
        ["png", "webp", "jpeg", "gif", "webp-xmp-hides-exif", "jpeg-bad-first", "bytes", "sidecar"]
    )
    if kind == "png":
        path = folder / f"c{index}.png"
        write_png(path, bad)
        return path, bad, False
    if kind in ("webp", "jpeg"):
        path = folder / f"c{index}.{kind}"
        write_exif_xmp(path, kind.upper(), bad, xmp_for(bad))
        return path, bad, False
    if kind == "gif":
        path = folder / f"c{index}.gif"
        Image.new("P", (8, 8)).save(path, "GIF", comment=bad.encode("utf-8", "surrogatepass"))
        return path, bad, False
    if kind == "webp-xmp-hides-exif":  # the case: an XMP with an unknown encoding beside a valid EXIF
        path = folder / f"c{index}.webp"
        write_exif_xmp(path, "WEBP", good, BAD_XMP)
        return path, good, True
    if kind == "jpeg-bad-first":  # a damaged EXIF copy, an intact XMP copy
        path = folder / f"c{index}.jpeg"
        write_exif_xmp(path, "JPEG", bad, xmp_packet(rich_parameters()))
        return path, bad, True
    if kind == "sidecar":
        path = folder / f"c{index}.mp4"
        path.write_bytes(b"")
        (folder / f"c{index}.mp4.json").write_text(bad, encoding="utf-8", errors="surrogatepass")
        return path, bad, False
    # byte damage of a valid export
    image_format = rng.choice(["png", "webp", "jpeg"])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(
        buffer, image_format.upper(), **save_options(rich_parameters(), image_format)
    )
    data = bytearray(buffer.getvalue())
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(data))
        op = rng.random()
        if op < 0.5:
            data[at] = rng.randrange(256)
        elif op < 0.8:
            del data[at : at + rng.randint(1, 50)]
        else:
            data[at:at] = os.urandom(rng.randint(1, 20))
    path = folder / f"c{index}.{image_format}"
    path.write_bytes(bytes(data))
    return path, good, False


def check_sentence(message: str) -> str | None:
    if not message or "\n" in message.strip() or "Traceback" in message:
        return "not one line"
    if len(message) > MAX_MESSAGE_CHARS + len("gan-studio: error: "):
        return f"message of {len(message)} characters"
    if any(ch in message for ch in "\x00\x1b\x07"):
        return "control characters in the message"
    return None


def run_guarded(fn, *args):
    """``fn(*args)``, or Hang after HANG_SECONDS. A thread, not SIGALRM: with torch's threads the alarm may
    go to another thread and never interrupt a blocking open() of a named pipe (the thread is left behind)."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(HANG_SECONDS)
    if worker.is_alive():
        raise Hang()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def attempt(part: dict, label: str, fn, *args) -> bool:
    """True if ``fn(*args)`` returned, False if it raised; anything but one short sentence is a failure."""
    try:
        run_guarded(fn, *args)
        return True
    except (MetadataError, ModelError) as exc:
        problem = check_sentence(str(exc))
    except Hang:
        problem = "hang"
    except BaseException as exc:  # noqa: BLE001 - what the attack looks for
        problem = f"{type(exc).__name__}: {str(exc)[:80]}"
    if problem:
        part["failures"].append(f"{label}: {problem}")
    return False


def attack_files(folder: Path, cases: int, rng: random.Random, stats: dict) -> list[tuple[Path, str]]:
    samples = []
    for index in range(cases):
        path, text, must_restore = make_case(folder, index, rng)
        samples.append((path, text))
        # 1. the reader
        stats["reader"]["tried"] += 1
        stats["reader"]["intact_copy"] += must_restore
        if attempt(stats["reader"], path.name, read_parameters, path):
            stats["reader"]["restored"] += 1
        elif must_restore:
            stats["lost"].append(path.name)
        # 2. inspect, in process
        stats["inspect"]["tried"] += 1
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run_guarded(cli_main, ["inspect", str(path)])
            problem = None
            if code not in (0, 2):
                problem = f"exit {code}"
            elif code == 2:
                problem = check_sentence(err.getvalue())
            elif any(ch in out.getvalue() for ch in "\x00\x1b\x07\u202e") or err.getvalue():
                problem = "escape codes or stderr output on success"
            if problem:
                stats["inspect"]["failures"].append(f"{path.name}: {problem}")
        except Hang:
            stats["inspect"]["failures"].append(f"{path.name}: hang")
        except BaseException as exc:  # noqa: BLE001
            stats["inspect"]["failures"].append(f"{path.name}: {type(exc).__name__}")
        # 3. the paste parser, with the same document text
        stats["paste"]["tried"] += 1
        attempt(stats["paste"], path.name, parameters_from_text, text)
    return samples


def run_cli(argv: list[str], env: dict, timeout: float = 120) -> tuple[int | None, str, str]:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "studio", *argv], cwd=ROOT, env=env, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, "", "hang"
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def attack_cli(samples, count: int, generate: int, env: dict, out: Path, stats: dict) -> None:
    for index, (path, _) in enumerate(samples[:count]):
        commands = [["inspect", str(path)]]
        if index < generate:
            commands.append(["generate", "--from", str(path), "--out", str(out)])
        for argv in commands:
            stats["cli"]["tried"] += 1
            started = time.perf_counter()
            code, stdout, stderr = run_cli(argv, env)
            stats["cli"]["seconds"] = stats["cli"].get("seconds", 0) + time.perf_counter() - started
            problem = None
            if code is None:
                problem = "hang"
            elif code not in (0, 2):
                problem = f"exit {code}: {stderr[-200:]}"
            elif "Traceback" in stderr or "MemoryError" in stderr:
                problem = "traceback"
            elif code == 2 and (check_sentence(stderr) or stderr.count("\n") > 1):
                problem = check_sentence(stderr) or "more than one line"
            elif any(ch in stdout for ch in "\x00\x1b\x07\u202e"):
                problem = "escape codes on stdout"
            if problem:
                stats["cli"]["failures"].append(f"{' '.join(argv[:1])} {path.name}: {problem}")


def attack_special_files(folder: Path, stats: dict) -> None:
    special = folder / "special"
    special.mkdir()
    os.mkfifo(special / "pipe.png")
    (special / "zero.png").symlink_to("/dev/zero")
    (special / "clip.mp4").write_bytes(b"")
    with open(special / "clip.mp4.json", "wb") as handle:
        handle.truncate(2 << 30)
    os.mkfifo(special / "pipe.mp4.json")
    (special / "pipe.mp4").write_bytes(b"")
    for name in ("pipe.png", "zero.png", "clip.mp4", "pipe.mp4"):
        stats["special"]["tried"] += 1
        if attempt(stats["special"], name, read_parameters, special / name):
            stats["special"]["failures"].append(f"{name}: read")


def model_folders(models: Path, tiny: Path) -> dict[str, str]:
    """Broken copies of a working model: folder name -> what was done to it."""
    import torch
    from safetensors.torch import load_file, save_file

    def edit(name, change):
        folder = models / name
        shutil.copytree(tiny, folder)
        data = json.loads((folder / "model.json").read_text())
        change(data)
        (folder / "model.json").write_text(json.dumps(data))
        return folder

    done = {}
    json_edits = {
        "trunc-abc": lambda d: d.update(default_truncation="abc"),
        "channels-four": lambda d: d.update(channels="four"),
        "metrics-list": lambda d: d.update(metrics=[1]),
        "cond-list": lambda d: d.update(conditioning=[]),
        "arch-list": lambda d: d.update(architecture=[1]),
        "zdim-1e6": lambda d: d["architecture"]["base"].update(z_dim=1e6),
        "zdim-million": lambda d: d["architecture"]["base"].update(z_dim=1_000_000),
        "ch-1e5": lambda d: d["architecture"]["base"].update(ch=100_000),
        "res-32768": lambda d: (
            d["architecture"]["base"].update(channel_mult=[1] * 11),
            d.update(resolution=32768),
        ),
        "name-abs": lambda d: d.update(name="/etc"),
        "files-abs": lambda d: d["files"].update(generator="/etc/passwd"),
    }
    for name, change in json_edits.items():
        edit(name, change)
        done[name] = "model.json"
    deep = models / "deep"
    shutil.copytree(tiny, deep)
    (deep / "model.json").write_text("{" + '"a":{' * 50_000 + "}" * 50_001)
    done["deep"] = "model.json"
    for name, value in (("nan", float("nan")), ("inf", float("inf")), ("big", 1e38)):
        folder = edit(f"weights-{name}", lambda d: None)
        tensors = load_file(str(folder / "generator.safetensors"))
        tensors = {k: (torch.full_like(t, value) if t.is_floating_point() else t) for k, t in tensors.items()}
        save_file(tensors, str(folder / "generator.safetensors"))
        done[f"weights-{name}"] = "weights"
    for target in ("model.json", "generator.safetensors", "vocabulary.json"):
        for kind in ("fifo", "zero"):
            folder = edit(f"{kind}-{target.split('.')[0]}", lambda d: None)
            path = folder / target
            if path.exists():
                path.unlink()
            os.mkfifo(path) if kind == "fifo" else path.symlink_to("/dev/zero")
            done[folder.name] = target
    return done


# One process per model folder: a pipe opened by a native library (safetensors) blocks holding the GIL,
# and an allocation of gigabytes is measured best in a process of its own.
LOAD_MODEL = """
import resource, sys
from studio.errors import ModelError
from studio.models.format import load_model
from studio.models.vocabulary import load_vocabulary
try:
    load_vocabulary(load_model(sys.argv[1]).info)
    print("LOADED")
except ModelError as exc:
    print("SENTENCE", exc)
finally:
    print("RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def attack_models(folder: Path, env: dict, stats: dict) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_tiny_model

    tiny = make_tiny_model(folder / "tiny")
    (tiny / "vocabulary.json").write_text(json.dumps([{"name": "a"}]))
    models = Path(env["GAN_STUDIO_DATA_DIR"]) / "models"
    models.mkdir(parents=True)
    broken = model_folders(models, tiny)
    peak = 0
    for name in broken:
        stats["models"]["tried"] += 1
        try:
            done = subprocess.run(
                [sys.executable, "-c", LOAD_MODEL, str(models / name)],
                cwd=ROOT, env=env, capture_output=True, timeout=60, text=True, errors="replace",
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            stats["models"]["failures"].append(f"{name}: hang")
            continue
        lines = done.stdout.splitlines()
        peak = max([peak] + [int(line.split()[1]) for line in lines if line.startswith("RSS_MB")])
        sentence = next((line[len("SENTENCE ") :] for line in lines if line.startswith("SENTENCE")), None)
        if "LOADED" in lines:
            stats["models"]["failures"].append(f"{name}: loaded")
        elif sentence is None:
            stats["models"]["failures"].append(f"{name}: {done.stderr.strip().splitlines()[-1:]}")
        elif check_sentence(sentence):
            stats["models"]["failures"].append(f"{name}: {check_sentence(sentence)}")
    stats["models"]["peak_rss_mb_of_a_load"] = peak
    stats["models"]["tried"] += 1
    code, stdout, stderr = run_cli(["models"], env, timeout=120)
    listed = stdout.count("(broken)")
    # `models` reads model.json only: broken weights and vocabularies are refused by load_model above.
    expected = sum(target == "model.json" for target in broken.values())
    stats["models"]["models_command"] = {"exit": code, "broken_listed": listed, "broken_model_json": expected}
    if code != 0 or "Traceback" in stderr or listed != expected:
        stats["models"]["failures"].append(f"gan-studio models: exit {code}, {listed} of {expected} listed")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--cli", type=int, default=300, help="cases also run through the CLI as a subprocess")
    parser.add_argument("--generate", type=int, default=10, help="of those, also through generate --from")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    stats = {
        part: {"tried": 0, "failures": []}
        for part in ("reader", "inspect", "paste", "cli", "special", "models")
    }
    stats["lost"] = []
    stats["reader"].update(restored=0, intact_copy=0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gan-studio-attack-") as tmp:
        folder = Path(tmp)
        env = dict(
            os.environ, GAN_STUDIO_LOG_DIR=str(folder / "logs"), GAN_STUDIO_DATA_DIR=str(folder / "data")
        )
        env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        os.environ.update(
            GAN_STUDIO_LOG_DIR=env["GAN_STUDIO_LOG_DIR"], GAN_STUDIO_DATA_DIR=env["GAN_STUDIO_DATA_DIR"]
        )
        (folder / "files").mkdir()
        samples = attack_files(folder / "files", args.cases, rng, stats)
        attack_special_files(folder, stats)
        attack_models(folder, env, stats)
        attack_cli(samples, args.cli, args.generate, env, folder / "out", stats)
        log_bytes = (
            sum(p.stat().st_size for p in (folder / "logs").glob("*")) if (folder / "logs").is_dir() else 0
        )
    summary = {
        part: {"tried": s["tried"], "failures": len(s["failures"]), "examples": s["failures"][:5]}
        | {k: v for k, v in s.items() if k not in ("tried", "failures")}
        for part, s in stats.items()
        if part != "lost"
    }
    summary["lost"] = {"count": len(stats["lost"]), "examples": stats["lost"][:5]}
    summary["total_tried"] = sum(s["tried"] for k, s in stats.items() if k != "lost")
    summary["total_failures"] = sum(len(s["failures"]) for k, s in stats.items() if k != "lost")
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    summary["log_bytes"] = log_bytes
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2, ensure_ascii=True))
    return 0 if summary["total_failures"] == 0 and not stats["lost"] else 1


if __name__ == "__main__":
    with contextlib.suppress(UserError):
        sys.exit(main())
