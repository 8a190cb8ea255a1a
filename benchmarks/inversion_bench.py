"""Inversion benchmark: reconstruction quality, time and editability; prints JSON, optionally writes a grid.

    python benchmarks/inversion_bench.py --data data/emoji --heldout 100 --threads 2 \
        --out docs/bench/inversion.json --grid docs/inversion_grid.png

Measures, on held-out emoji (never trained on) and on 20 non-emoji pictures drawn here with Pillow:
reconstruction PSNR (composited over white, 128 px) and judge-feature cosine against the picture, for the
inversion and for the nearest-concept render without optimisation (the baseline); seconds per inversion at
the default steps; quality against steps on a subset; and how much SeFa directions at +-3 move an inverted
z compared with a sampled one (RMS pixel change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from studio.engine.engine import Engine
from studio.engine.inversion import DEFAULT_STEPS, over_white, reconstruction_psnr
from studio.engine.requests import GenerationRequest
from studio.io.picture import read_picture
from studio.models.cgan import rgba_uint8_to_premultiplied

SEFA_DIRECTIONS = (0, 1, 2, 3, 4)
SEFA_SCALE = 3.0


# ----------------------------------------------------------------------------------------------- pictures


def non_emoji_pictures(folder: Path) -> list[Path]:
    """Ten drawings and ten procedural 'photos' (noise, gradients, blur), saved as PNG and JPEG files."""
    rng = np.random.default_rng(14)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    def drawing(name: str, size: tuple[int, int], paint, background=(255, 255, 255, 0)) -> None:
        image = Image.new("RGBA", size, background)
        paint(ImageDraw.Draw(image), size)
        path = folder / f"{name}.png"
        image.save(path)
        paths.append(path)

    drawing(
        "sun", (200, 200), lambda d, s: d.ellipse((30, 30, 170, 170), fill="gold", outline="orange", width=8)
    )
    drawing(
        "heart",
        (200, 180),
        lambda d, s: (
            d.ellipse((20, 20, 105, 105), fill="crimson"),
            d.ellipse((95, 20, 180, 105), fill="crimson"),
            d.polygon([(24, 80), (176, 80), (100, 170)], fill="crimson"),
        ),
    )
    drawing(
        "house",
        (220, 200),
        lambda d, s: (
            d.rectangle((40, 90, 180, 190), fill="tan", outline="black", width=4),
            d.polygon([(30, 95), (110, 20), (190, 95)], fill="firebrick"),
            d.rectangle((95, 130, 125, 190), fill="saddlebrown"),
        ),
    )
    drawing(
        "tree",
        (160, 220),
        lambda d, s: (
            d.rectangle((70, 140, 90, 215), fill="sienna"),
            d.ellipse((20, 20, 140, 160), fill="forestgreen"),
        ),
    )
    drawing(
        "smiley",
        (200, 200),
        lambda d, s: (
            d.ellipse((10, 10, 190, 190), fill="yellow", outline="black", width=6),
            d.ellipse((60, 60, 85, 95), fill="black"),
            d.ellipse((115, 60, 140, 95), fill="black"),
            d.arc((50, 80, 150, 160), 20, 160, fill="black", width=8),
        ),
    )
    star = [
        (
            100 + 90 * math.cos(math.pi / 2 + i * math.pi / 5) * (1 if i % 2 == 0 else 0.4),
            100 - 90 * math.sin(math.pi / 2 + i * math.pi / 5) * (1 if i % 2 == 0 else 0.4),
        )
        for i in range(10)
    ]
    drawing("star", (200, 200), lambda d, s: d.polygon(star, fill="gold", outline="darkorange"))
    drawing(
        "car",
        (260, 140),
        lambda d, s: (
            d.rounded_rectangle((10, 50, 250, 110), 20, fill="royalblue"),
            d.polygon([(60, 50), (90, 15), (180, 15), (210, 50)], fill="lightsteelblue"),
            d.ellipse((40, 90, 90, 138), fill="black"),
            d.ellipse((170, 90, 220, 138), fill="black"),
        ),
    )
    drawing(
        "flower",
        (200, 200),
        lambda d, s: (
            [
                d.ellipse(
                    (
                        100 + 55 * math.cos(a) - 35,
                        100 + 55 * math.sin(a) - 35,
                        100 + 55 * math.cos(a) + 35,
                        100 + 55 * math.sin(a) + 35,
                    ),
                    fill="hotpink",
                )
                for a in np.linspace(0, 2 * math.pi, 7)[:-1]
            ],
            d.ellipse((70, 70, 130, 130), fill="gold"),
        ),
    )
    drawing(
        "letter_A",
        (200, 200),
        lambda d, s: d.polygon(
            [(20, 190), (100, 10), (180, 190), (140, 190), (100, 90), (60, 190)], fill="navy"
        ),
    )
    drawing(
        "moon_sky",
        (200, 200),
        lambda d, s: (
            d.ellipse((40, 40, 160, 160), fill="lightyellow"),
            d.ellipse((75, 30, 185, 140), fill=(20, 20, 60, 255)),
        ),
        background=(20, 20, 60, 255),
    )

    def photo(name: str, pixels: np.ndarray, blur: float = 0.0) -> None:
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        path = folder / f"{name}.jpg"
        image.save(path, quality=90)
        paths.append(path)

    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    noise = lambda scale: np.asarray(  # noqa: E731 - smooth noise: small random field, upscaled
        Image.fromarray((rng.random((scale, scale)) * 255).astype(np.uint8)).resize(
            (w, h), Image.Resampling.BICUBIC
        ),
        np.float64,
    )
    sky = np.stack([90 + 80 * yy, 150 + 70 * yy, 230 + 0 * yy], -1)
    ground = np.stack([60 + 0 * yy, 140 + 30 * yy, 50 + 0 * yy], -1)
    photo(
        "landscape",
        np.where((yy > 0.6 + 0.05 * np.sin(xx * 9))[..., None], ground, sky) + rng.normal(0, 6, (h, w, 3)),
    )
    photo(
        "sunset",
        np.stack([255 - 60 * yy, 120 + 60 * (1 - yy) * (1 - yy), 80 + 120 * yy], -1)
        + rng.normal(0, 5, (h, w, 3)),
    )
    photo("clouds", np.stack([noise(6) * 0.5 + 120, noise(6) * 0.5 + 140, 0 * yy + 230], -1), blur=3)
    photo(
        "marble",
        np.repeat((128 + 127 * np.sin(xx * 20 + noise(8) / 20))[..., None], 3, -1) * [0.9, 0.85, 0.8],
    )
    photo(
        "sand",
        np.stack([noise(40) * 0.3 + 180, noise(40) * 0.3 + 150, noise(40) * 0.2 + 100], -1)
        + rng.normal(0, 10, (h, w, 3)),
    )
    bokeh = np.zeros((h, w, 3)) + 20
    for _ in range(25):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(10, 40)
        bokeh[(yy * h - cy) ** 2 + (xx * w - cx) ** 2 < r * r] += rng.integers(40, 120, 3)
    photo("bokeh", bokeh, blur=4)
    apple = np.zeros((h, w, 3)) + [235, 230, 220]
    inside = ((yy * h - 130) ** 2 + (xx * w - 160) ** 2) < 80**2
    apple[inside] = [190, 25, 30]
    apple[inside & (((yy * h - 100) ** 2 + (xx * w - 135) ** 2) < 18**2)] = [250, 200, 200]
    photo("apple_photo", apple + rng.normal(0, 6, (h, w, 3)), blur=2)
    photo("plasma", np.stack([noise(5), noise(5), noise(5)], -1), blur=1)
    photo(
        "night_city",
        np.stack([noise(30), noise(30) * 0.8, noise(30) * 0.3], -1) * (yy[..., None] > 0.4) * 0.8 + 10,
    )
    photo(
        "ocean",
        np.stack([20 + 30 * yy, 80 + 60 * yy, 160 + 60 * yy], -1)
        + np.sin(yy * 80 + noise(10) / 30)[..., None] * 15,
    )
    return paths


# ----------------------------------------------------------------------------------------------- measures


def judge_cosine(judge, image: np.ndarray, original: np.ndarray) -> float:
    tensors = rgba_uint8_to_premultiplied(torch.from_numpy(np.stack([image, original])))
    with torch.no_grad():
        features = judge.features(tensors)
    return float(torch.nn.functional.cosine_similarity(features[:1], features[1:]).item())


def render(engine: Engine, request: GenerationRequest) -> np.ndarray:
    result = next(engine.generate_sync(request))
    if not result.ok:
        raise RuntimeError(result.error)
    return result.image


def sefa_rms(engine: Engine, request: GenerationRequest) -> dict[int, float]:
    """RMS change (0-255 scale, composited over white) of the picture at direction k = +-3, per k."""
    centre = over_white(render(engine, request))
    out = {}
    for k in SEFA_DIRECTIONS:
        changes = [
            float(
                np.sqrt(
                    (
                        (over_white(render(engine, replace(request, directions=((k, s),)))) - centre) ** 2
                    ).mean()
                )
            )
            * 255
            for s in (SEFA_SCALE, -SEFA_SCALE)
        ]
        out[k] = sum(changes) / 2
    return out


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def invert(engine: Engine, picture: np.ndarray, steps: int, name: str = ""):
    started = time.perf_counter()
    outcome = engine.invert(picture, steps, name).result()
    return outcome, time.perf_counter() - started


def evaluate_set(engine, judge, pictures, steps, label, log) -> tuple[dict, list]:
    rows = []
    for i, (name, picture) in enumerate(pictures):
        outcome, seconds = invert(engine, picture, steps, name)
        rows.append(
            {
                "name": name,
                "nearest": outcome.baseline.request.prompt,
                "psnr_inversion": reconstruction_psnr(outcome.result.image, picture),
                "psnr_baseline": reconstruction_psnr(outcome.baseline.image, picture),
                "cosine_inversion": judge_cosine(judge, outcome.result.image, picture),
                "cosine_baseline": judge_cosine(judge, outcome.baseline.image, picture),
                "seconds": seconds,
                "outcome": outcome,
            }
        )
        if (i + 1) % 10 == 0:
            log(f"{label}: {i + 1}/{len(pictures)}")
    summary = {"count": len(rows), "steps": steps}
    for key in ("psnr_inversion", "psnr_baseline", "cosine_inversion", "cosine_baseline", "seconds"):
        summary[key] = summarise([r[key] for r in rows])
    summary["psnr_gain_db"] = summarise([r["psnr_inversion"] - r["psnr_baseline"] for r in rows])
    summary["cosine_gain"] = summarise([r["cosine_inversion"] - r["cosine_baseline"] for r in rows])
    summary["inversion_beats_baseline_psnr"] = sum(r["psnr_inversion"] > r["psnr_baseline"] for r in rows)
    summary["inversion_beats_baseline_cosine"] = sum(
        r["cosine_inversion"] > r["cosine_baseline"] for r in rows
    )
    return summary, rows


def grid(engine, rows, originals, path: Path) -> None:
    """Rows of original / nearest concept / inversion / inversion + SeFa direction 0 at +3, on white."""
    tile, pad, label_h = 128, 6, 16
    columns = ("original", "nearest concept", "inversion", "inversion + slider 0 (+3)")
    image = Image.new(
        "RGB", (len(columns) * (tile + pad) + pad, label_h + len(rows) * (tile + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(image)
    for c, title in enumerate(columns):
        draw.text((pad + c * (tile + pad), 2), title, fill="black")
    for r, row in enumerate(rows):
        outcome = row["outcome"]
        slid = render(engine, replace(outcome.result.request, directions=((0, SEFA_SCALE),)))
        for c, tile_image in enumerate(
            (originals[row["name"]], outcome.baseline.image, outcome.result.image, slid)
        ):
            rgba = Image.fromarray(tile_image, "RGBA")
            x, y = pad + c * (tile + pad), label_h + pad + r * (tile + pad)
            image.paste(rgba, (x, y), rgba)
    # 256 colours keep the docs picture small (~180 KB instead of ~630 KB) with no visible change.
    image.quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data/emoji")
    parser.add_argument("--heldout", type=int, default=100, help="held-out emoji to invert (0 = all 345)")
    parser.add_argument("--curve", type=int, default=30, help="held-out emoji for the quality-vs-steps curve")
    parser.add_argument("--curve-steps", default="25,50,100,150,300")
    parser.add_argument("--sefa", type=int, default=20, help="inverted and sampled z for the SeFa comparison")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--out", default=None, help="write the JSON here too")
    parser.add_argument("--grid", default=None, help="write the picture grid here")
    parser.add_argument(
        "--timing-only", action="store_true", help="only seconds per inversion on the held-out subset"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log = lambda text: print(text, file=__import__("sys").stderr, flush=True)  # noqa: E731

    from studio.training.dataset import load_dataset

    data = load_dataset(args.data)
    heldout = data.heldout_index
    if args.heldout and args.heldout < len(heldout):
        heldout = heldout[np.linspace(0, len(heldout) - 1, args.heldout).round().astype(int)]
    emoji = [(f"{data.names[i]}", data.images128[i]) for i in heldout]

    engine = Engine(device="cpu")
    info = engine.wait_ready()
    inverter = engine._inverter()
    judge = inverter.judge
    started = time.perf_counter()
    bank_cached = inverter._cache_path() is not None and inverter._cache_path().exists()
    inverter.bank()
    bank_seconds = time.perf_counter() - started
    invert(engine, emoji[0][1], 5)  # warm-up

    report: dict = {
        "model": info.model_name,
        "model_hash": info.model_hash,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared)",
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
        "default_steps": args.steps,
        "concept_bank": {
            "concepts": len(inverter.bank().names),
            "seconds": round(bank_seconds, 2),
            "from_cache": bank_cached,
        },
        "psnr": "dB, 128 px, both images composited over white",
        "cosine": "judge penultimate features (resources/models/emoji/judge.safetensors), 64 px premultiplied",
        "heldout_subset": "all"
        if len(heldout) == int(data.heldout.sum())
        else f"{len(heldout)} of {int(data.heldout.sum())}, evenly spaced",
    }
    log(f"bank: {bank_seconds:.1f} s; inverting {len(emoji)} held-out emoji")
    if args.timing_only:
        seconds = [invert(engine, picture, args.steps)[1] for _, picture in emoji]
        report["seconds"] = summarise(seconds)
        report["seconds_each"] = [round(s, 3) for s in seconds]
        report["load_average_at_end"] = os.getloadavg()
        engine.close()
        text = json.dumps(report, indent=2)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0
    report["heldout"], emoji_rows = evaluate_set(engine, judge, emoji, args.steps, "held-out", log)
    report["heldout_per_emoji"] = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "outcome"}
        for r in emoji_rows
    ]

    with tempfile.TemporaryDirectory() as folder:
        paths = non_emoji_pictures(Path(folder))
        others = [(p.name, read_picture(p).image) for p in paths]
        report["non_emoji"], other_rows = evaluate_set(engine, judge, others, args.steps, "non-emoji", log)
        report["non_emoji_per_picture"] = [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "outcome"}
            for r in other_rows
        ]

    curve = []
    subset = emoji[:: max(1, len(emoji) // max(1, args.curve))][: args.curve]
    for steps in [int(s) for s in args.curve_steps.split(",")] if subset else []:
        summary, _ = evaluate_set(engine, judge, subset, steps, f"curve {steps}", log)
        curve.append(
            {
                "steps": steps,
                **{
                    k: summary[k]["mean"]
                    for k in (
                        "psnr_inversion",
                        "psnr_baseline",
                        "cosine_inversion",
                        "cosine_baseline",
                        "seconds",
                    )
                },
            }
        )
    report["quality_vs_steps"] = {"count": len(subset), "points": curve}

    sampled = [
        GenerationRequest(
            prompt=emoji[i][0], seed=1000 + i, truncation=info.default_truncation, model=info.model_name
        )
        for i in range(min(args.sefa, len(emoji)))
    ]
    inverted_rms = [sefa_rms(engine, r["outcome"].result.request) for r in emoji_rows[: args.sefa]]
    sampled_rms = [sefa_rms(engine, request) for request in sampled]
    report["sefa_rms"] = {
        "scale": SEFA_SCALE,
        "count": len(inverted_rms),
        "units": "RMS change of 0-255 pixel values, composited over white, mean of +3 and -3",
        "inverted": {k: round(statistics.fmean(r[k] for r in inverted_rms), 3) for k in SEFA_DIRECTIONS},
        "sampled": {k: round(statistics.fmean(r[k] for r in sampled_rms), 3) for k in SEFA_DIRECTIONS},
    }
    report["load_average_at_end"] = os.getloadavg()
    if args.grid:
        originals = dict(emoji) | dict(others)
        grid(
            engine,
            emoji_rows[:: max(1, len(emoji_rows) // 6)][:6] + other_rows[::4][:5],
            originals,
            Path(args.grid),
        )
    engine.close()
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
