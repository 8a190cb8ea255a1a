"""Engine benchmark: raw forward vs the engine, and preview latency under a 60 Hz slider drag.

Ratios are measured side by side in one run, since the machines are shared and noisy. Prints nothing;
``gan-studio bench`` and ``benchmarks/engine_bench.py`` print the returned dict as JSON.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from studio.engine.devices import set_threads
from studio.engine.engine import Engine
from studio.engine.requests import GenerationRequest
from studio.models.format import LoadedModel, ModelError, load_model


def _random_stand_in() -> LoadedModel:
    """The default architecture (BaseConfig/UpsamplerConfig defaults) with random weights, for checkouts
    without the shipped model; its sizes differ from the shipped model's, so its numbers are not the README's."""
    import tempfile
    from pathlib import Path

    from studio.models.cgan import BaseConfig, BaseGenerator, Upsampler, UpsamplerConfig
    from studio.models.format import save_model

    folder = Path(tempfile.mkdtemp()) / "emoji-architecture"
    manifest = {"name": "emoji-architecture", "conditioning": {"kind": "text", "encoder": "all-MiniLM-L6-v2"}}
    save_model(folder, manifest, BaseGenerator(BaseConfig()).eval(), Upsampler(UpsamplerConfig()).eval())
    return load_model(folder)


def _images_per_second(fn, batch: int, repeats: int) -> float:
    fn()  # warm-up at this shape
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return batch * repeats / (time.perf_counter() - started)


def machine_report() -> dict:
    """Which machine and torch a benchmark's numbers come from (every benchmark JSON starts with it)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def request_ms(engine: Engine, request: GenerationRequest, preview: bool) -> float:
    """Wall time of one request through the engine: a live preview (one row) or the exact image(s)."""
    started = time.perf_counter()
    if preview:
        engine.preview(request).result()
    else:
        list(engine.generate_sync(request))
    return (time.perf_counter() - started) * 1000.0


def side_by_side(first, second, repeats: int) -> dict:
    """``first(i)`` and ``second(i)`` (each returns ms) called alternately for ``i`` in ``range(repeats)``, after one
    warm-up call of each with ``i = -1``: the two medians and their ratio (the one number a shared, noisy machine
    lets a benchmark trust)."""
    first(-1), second(-1)
    a, b = [], []
    for i in range(repeats):
        a.append(first(i))
        b.append(second(i))
    return {
        "first_median": float(np.median(a)),
        "second_median": float(np.median(b)),
        "ratio": float(np.median(a) / np.median(b)),
    }


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_benchmark(
    model: str | None = None, device: str | None = None, quick: bool = False, threads: int | None = None
) -> dict:
    """Benchmark the engine; ``threads`` caps torch's CPU threads first (1: the one-core numbers)."""
    set_threads(threads)
    try:
        loaded = load_model(model or "emoji")
        stand_in = False
    except ModelError:
        if model:
            raise
        loaded, stand_in = _random_stand_in(), True
    engine = Engine(loaded, device=device)
    info = engine.wait_ready()
    dev = engine.device_choice.device  # the same device and precision the engine picked
    dtype = engine.device_choice.dtype
    gen, up = loaded.generator, loaded.upsampler
    z_dim, embed_dim = loaded.info.z_dim, loaded.info.base.embed_dim
    repeats = 2 if quick else 5
    report: dict = {
        "machine": machine_report(),
        "model": info.model_name
        if not stand_in
        else "default architecture, random weights (shipped model not installed)",
        "device": info.device_label,
        "dtype": info.dtype,
        "resolution": info.resolution,
    }

    def raw(batch: int, stage: str):
        z = torch.randn(batch, z_dim, device=dev)
        e = torch.nn.functional.normalize(torch.randn(batch, embed_dim, device=dev), dim=1)
        base_in = torch.randn(batch, 4, info.base_resolution, info.base_resolution, device=dev).tanh()

        @torch.inference_mode()
        def run():
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                if stage == "base":
                    out = gen(z, e)
                elif stage == "upsampler":
                    out = up(base_in)
                else:
                    out = gen(z, e)
                    out = up(out) if up is not None else out
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return out

        return run

    prompt = "grinning face with big eyes"
    for batch in (1, 64):
        reps = max(1, repeats * (8 if batch == 1 else 1))
        raw_rate = _images_per_second(raw(batch, "full"), batch, reps)
        request = GenerationRequest(
            prompt, seed=1, count=batch, truncation=info.default_truncation, model=info.model_name
        )

        def through_engine(request=request, batch=batch):
            if batch == 1:
                # Distinct seeds so the engine cannot answer from a cache.
                through_engine.seed += 1
                request = replace(request, seed=through_engine.seed)
            for _ in engine.generate_sync(request):
                pass

        through_engine.seed = 1000
        engine_rate = _images_per_second(through_engine, batch, reps)
        report[f"batch_{batch}"] = {
            "raw_forward_img_s": round(raw_rate, 2),
            "engine_img_s": round(engine_rate, 2),
            "engine_vs_raw": round(engine_rate / raw_rate, 3),
        }
    if up is not None:
        report["stages_batch_1_ms"] = {
            "base": round(1000 / _images_per_second(raw(1, "base"), 1, repeats * 8), 2),
            "upsampler": round(1000 / _images_per_second(raw(1, "upsampler"), 1, repeats * 8), 2),
        }
    report["preview_vs_stored"] = _preview_vs_stored(engine, info, prompt)
    report["precision"] = _compare_precisions(loaded, dev, repeats)
    if up is not None and dev.type == "cpu":
        report["upsampler_layout"] = _compare_layouts(loaded, dev, repeats)
    one_forward_ms = 1000.0 / report["batch_1"]["raw_forward_img_s"]
    report["preview"] = _preview_drag(
        engine, info, prompt, seconds=2.0 if quick else 5.0, one_forward_ms=one_forward_ms
    )
    engine.close()
    return report


def _preview_drag(engine: Engine, info, prompt: str, seconds: float, one_forward_ms: float) -> dict:
    """Request previews at 60 Hz as a slider drag would; measure latency of the ones that rendered."""
    latencies: list[float] = []
    superseded = 0
    pending = []
    period = 1.0 / 60.0
    started = time.perf_counter()
    step = 0
    while time.perf_counter() - started < seconds:
        offset = 3.0 * np.sin(step / 30.0)
        request = GenerationRequest(
            prompt,
            seed=7,
            truncation=info.default_truncation,
            directions=((0, float(offset)),),
            model=info.model_name,
        )
        sent = time.perf_counter()
        future = engine.preview(request)
        future.add_done_callback(
            lambda f, sent=sent: pending.append((f.result(), time.perf_counter() - sent))
        )
        step += 1
        time.sleep(max(0.0, started + step * period - time.perf_counter()))
    final_sent = time.perf_counter()
    final = engine.preview(
        GenerationRequest(
            prompt, seed=7, truncation=info.default_truncation, directions=((0, 3.3),), model=info.model_name
        )
    ).result()
    final_ms = (time.perf_counter() - final_sent) * 1000.0
    for result, latency in list(pending):
        if result is None:
            superseded += 1
        else:
            latencies.append(latency * 1000.0)
    p95 = _percentile(latencies, 95)
    return {
        "requested": step + 1,
        "rendered": len(latencies) + (1 if final is not None else 0),
        "superseded": superseded,
        "latency_ms_p50": round(_percentile(latencies, 50), 2),
        "latency_ms_p95": round(p95, 2),
        "final_request_ms": round(final_ms, 2),
        "one_forward_ms": round(one_forward_ms, 2),
        "goal_p95_ms": round(1.5 * one_forward_ms + 10.0, 2),
        "p95_within_goal": bool(p95 <= 1.5 * one_forward_ms + 10.0),
        "mean_latency_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


def _preview_vs_stored(engine: Engine, info, prompt: str, count: int = 32) -> dict:
    """How far a one-row live preview is from the stored (padded, exact) image of the same request."""
    requests = [
        GenerationRequest(prompt, seed=500 + i, truncation=info.default_truncation, model=info.model_name)
        for i in range(count)
    ]
    stored = [r.image.astype(np.int16) for r in engine.generate_sync(requests)]
    differences = []
    for request, exact in zip(requests, stored):
        preview = engine.preview(request).result()
        if preview is not None and preview.ok:
            differences.append(np.abs(preview.image.astype(np.int16) - exact))
    if not differences:
        return {}
    stacked = np.stack(differences)
    return {
        "images": len(differences),
        "previews_exact": bool(all(d.max() == 0 for d in differences)),
        "max_abs_pixel_diff": int(stacked.max()),
        "share_of_values_differing": round(float((stacked > 0).mean()), 6),
    }


def _seeded_inputs(
    loaded: LoadedModel, dev: torch.device, rows: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same ``rows`` latents and unit prompt embeddings every run (seeds 0 and 1), on ``dev``: what the
    precision and layout comparisons draw."""
    z = torch.randn(rows, loaded.info.z_dim, generator=torch.Generator().manual_seed(0)).to(dev)
    e = torch.nn.functional.normalize(
        torch.randn(rows, loaded.info.base.embed_dim, generator=torch.Generator().manual_seed(1)), dim=1
    ).to(dev)
    return z, e


def _compare_layouts(loaded: LoadedModel, dev: torch.device, repeats: int) -> dict:
    """The upsampler in the default (NCHW) layout against channels-last (what the engine runs on CPU,
    :func:`studio.models.cgan.upsampler_layout`), timed in turns at batch 1 and 16 on the same drawings, and how far
    the pixels move."""
    import copy

    from studio.models.cgan import premultiplied_to_rgba_uint8

    z, e = _seeded_inputs(loaded, dev)
    with torch.inference_mode():
        small = loaded.generator(z, e)
    layouts = {
        name: copy.deepcopy(loaded.upsampler).to(memory_format=layout)
        for name, layout in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last))
    }
    with torch.inference_mode():
        pixels = {name: premultiplied_to_rgba_uint8(up(small).float()).int() for name, up in layouts.items()}
    seconds: dict = {(name, batch): [] for name in layouts for batch in (1, 16)}
    for _ in range(max(2, repeats)):
        for batch, calls in ((1, 8), (16, 1)):
            for name, upsampler in layouts.items():
                with torch.inference_mode():
                    upsampler(small[:batch])  # warm at this shape
                    started = time.perf_counter()
                    for _ in range(calls):
                        upsampler(small[:batch])
                    seconds[name, batch].append((time.perf_counter() - started) / (calls * batch))
    rates = {key: 1.0 / min(times) for key, times in seconds.items()}
    return {
        **{
            name: {f"batch_{batch}_img_s": round(rates[name, batch], 2) for batch in (1, 16)}
            for name in layouts
        },
        "channels_last_vs_nchw": {
            f"batch_{batch}": round(rates["channels_last", batch] / rates["nchw", batch], 3)
            for batch in (1, 16)
        },
        "max_abs_pixel_diff": int((pixels["channels_last"] - pixels["nchw"]).abs().max()),
    }


def _compare_precisions(loaded: LoadedModel, dev: torch.device, repeats: int) -> dict:
    """Speed of each candidate autocast dtype at batch 1 and 16, and how far its pixels move from float32."""
    from studio.models.cgan import premultiplied_to_rgba_uint8

    candidates = [torch.float32, torch.bfloat16] + ([torch.float16] if dev.type == "cuda" else [])
    gen, up = loaded.generator, loaded.upsampler
    z, e = _seeded_inputs(loaded, dev)
    out: dict = {}
    reference = None
    for dtype in candidates:

        @torch.inference_mode()
        def run(batch, dtype=dtype):
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                x = gen(z[:batch], e[:batch])
                x = up(x) if up is not None else x
            return premultiplied_to_rgba_uint8(x.float())

        pixels = run(16).int()
        reference = pixels if reference is None else reference
        name = str(dtype).removeprefix("torch.")
        out[name] = {
            "batch_1_img_s": round(_images_per_second(lambda: run(1), 1, repeats * 4), 2),
            "batch_16_img_s": round(_images_per_second(lambda: run(16), 16, max(1, repeats // 2)), 2),
            "max_abs_pixel_diff_vs_fp32": int((pixels - reference).abs().max()),
            "mean_abs_pixel_diff_vs_fp32": round(float((pixels - reference).abs().float().mean()), 3),
        }
    return out
