"""GAN inversion: the z and projected condition that make the generator redraw a given picture.

Runs in the engine's worker thread, a slice of steps at a time, so previews still interleave and a cancel is
seen within one slice. The recipe:

1. **Nearest concepts.** Every concept the model knows (its vocabulary, or its classes) is rendered once at
   the mean z and kept small (16 px, plus the judge's features when the model folder ships a judge). The
   picture's nearest ``CANDIDATES`` by pixel distance (and judge-feature distance) are the starting points.
2. **Optimise.** Adam on z (from fixed random points on the sphere that truncated samples live on: the mean
   z is a flat spot where SeFa directions move the picture less) and the projected condition of every
   candidate at once (one batch), on a pixel
   loss of the picture composited over black and over white at the base resolution (which pins both colour
   and alpha) plus the judge's feature distance. After a quarter of the steps only the best candidate goes
   on. z is kept inside the ball that truncated samples live in, and the condition near where concepts live,
   so the result stays editable by the latent and concept sliders.
3. The result is a plain :class:`GenerationRequest` with an explicit latent (float32), rendered by the same
   renderer as any other request, so exporting it and re-rendering gives the same bytes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio.engine.requests import ExplicitLatent, GenerationRequest, GenerationResult
from studio.models.cgan import premultiplied_to_rgba_uint8, rgba_uint8_to_premultiplied
from studio.models.concepts import ConceptConditioner

log = logging.getLogger(__name__)

DEFAULT_STEPS = 150
MAX_STEPS = 5000
SLICE_STEPS = 25  # steps between previews (and between turns for other work in the worker)
CANDIDATES = 4
SEARCH_SIZE = 16
LEARNING_RATE_Z = 0.08
LEARNING_RATE_CONDITION = 0.02
FEATURE_WEIGHT = 0.5
CONDITION_WEIGHT = 2.0  # pull towards the concept it started from, so concept sliders keep their meaning
JUDGE_FILE = "judge.safetensors"
Z_INIT_SCALE = 1.0  # start from fixed random z on the sphere truncated samples live on (not the mean z)
CACHE_MIN_CONCEPTS = 64  # smaller banks build faster than a cache file is read


@dataclass
class InversionProgress:
    """One streamed step: the current best image (full resolution, straight-alpha RGBA uint8)."""

    step: int
    total: int
    image: np.ndarray
    loss: float


@dataclass
class InversionOutcome:
    """The inverted picture: ``result`` renders ``result.request`` (its explicit latent) like any request."""

    result: GenerationResult
    baseline: GenerationResult  # the nearest concept at the mean z, before any optimisation
    nearest: list[str]
    steps: int
    seconds: float
    loss: float
    psnr: float = 0.0  # reconstruction PSNR (dB) of ``result`` against the picture, see reconstruction_psnr
    baseline_psnr: float = 0.0
    extra: dict = field(default_factory=dict)


class ConceptBank:
    """Every concept a model knows, rendered once at the mean z: names, projected conditions, small renders."""

    def __init__(
        self, names: list[str], conditions: torch.Tensor, small: torch.Tensor, features: torch.Tensor
    ):
        self.names, self.conditions, self.small, self.features = names, conditions, small, features

    def with_renders_from(self, path: Path) -> ConceptBank | None:
        """This bank with the renders cached at ``path``, or None when there is no matching cache."""
        try:
            with np.load(path, allow_pickle=False) as data:
                small, features, count = data["small"], data["features"], int(data["count"])
        except (OSError, KeyError, ValueError):
            return None
        if count != len(self.names) or small.shape[0] != count or features.shape[0] != count:
            return None
        return ConceptBank(
            self.names,
            self.conditions,
            torch.from_numpy(small.astype(np.float32)),
            torch.from_numpy(features),
        )

    def save_renders(self, path: Path) -> None:
        """Keep the renders for the next session (a failure only costs the rebuild next time)."""
        temp = path.with_name(path.name + ".partial.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(
                temp,
                small=self.small.numpy().astype(np.float16),
                features=self.features.numpy().astype(np.float32),
                count=np.int64(len(self.names)),
            )
            os.replace(temp, path)
        except OSError:
            log.warning("could not cache the concept bank at %s", path, exc_info=True)

    @classmethod
    def build(cls, renderer, vocabulary, judge, render: bool = True) -> ConceptBank:
        """Names and projected conditions; with ``render`` also every concept's render at the mean z."""
        generator, info = renderer.generator, renderer.loaded.info
        device = renderer.choice.device
        with torch.no_grad():
            if info.conditioning.kind == "class":
                names = list(info.conditioning.classes)
                conditions = generator.condition(torch.arange(len(names), device=device)).float()
            elif vocabulary is not None and vocabulary.embeddings.shape[1] == info.base.embed_dim:
                names = list(vocabulary.names)
                conditions = generator.condition(torch.from_numpy(vocabulary.embeddings).to(device)).float()
                if isinstance(renderer.project, ConceptConditioner):  # fitted: what their names draw
                    table = renderer.project.table
                    fitted = torch.from_numpy(table.fitted).to(device)
                    conditions[fitted] = torch.from_numpy(table.conditions).to(device)[fitted]
            else:  # a text model without a vocabulary: start from the centre of its condition space
                names = ["picture"]
                conditions = generator.condition(torch.zeros(1, info.base.embed_dim, device=device)).float()
            small, features = [], []
            if not render:
                return cls(names, conditions.cpu(), torch.zeros(0), torch.zeros(0))
            for start in range(0, len(names), 256):
                cond = conditions[start : start + 256]
                images = generator.synthesize(torch.zeros(len(cond), info.z_dim, device=device), cond).float()
                small.append(F.adaptive_avg_pool2d(images, SEARCH_SIZE).cpu())
                if judge is not None:
                    features.append(F.normalize(judge.features(images), dim=1).cpu())
        return cls(
            names,
            conditions.cpu(),
            torch.cat(small),
            torch.cat(features) if features else torch.zeros(len(names), 0),
        )

    def nearest(self, target: torch.Tensor, target_features: torch.Tensor | None, k: int) -> list[int]:
        """Indices of the ``k`` concepts whose mean-z render is closest to ``target`` (1 x 4 x H x W)."""
        small = F.adaptive_avg_pool2d(target.float().cpu(), SEARCH_SIZE)
        distance = (self.small - small).pow(2).mean(dim=(1, 2, 3))
        if target_features is not None and self.features.shape[1]:
            distance = distance + 0.25 * (1.0 - self.features @ F.normalize(target_features.cpu(), dim=1)[0])
        return torch.argsort(distance)[: min(k, len(self.names))].tolist()


class InversionRun:
    """One inversion in progress; :meth:`advance` runs a slice of steps (called by the engine's worker)."""

    def __init__(self, inverter: Inverter, target_rgba: np.ndarray, steps: int, name: str):
        self.inverter, self.total, self.name = inverter, steps, name
        self.step = 0
        self.started = time.perf_counter()
        self.original = np.ascontiguousarray(target_rgba)
        renderer = inverter.renderer
        device = renderer.choice.device
        base = renderer.loaded.info.base_resolution
        full = rgba_uint8_to_premultiplied(torch.from_numpy(np.ascontiguousarray(target_rgba))[None])
        self.target = (
            F.adaptive_avg_pool2d(full, base).to(device) if full.shape[-1] != base else full.to(device)
        )
        judge = inverter.judge
        with torch.no_grad():
            target_features = judge.features(self.target) if judge is not None else None
        self.target_features = target_features
        bank = inverter.bank()
        self.candidates = bank.nearest(self.target, self.target_features, CANDIDATES)
        self.nearest = [bank.names[i] for i in self.candidates]
        rows = len(self.candidates)
        z_dim = renderer.loaded.info.z_dim
        self.start_condition = bank.conditions[self.candidates].to(device)
        self.radius = inverter.z_radius
        self.z = (Z_INIT_SCALE * self.radius / np.sqrt(z_dim)) * _start_z(rows, z_dim).to(device)
        self.z.requires_grad_(True)
        self.condition = self.start_condition.clone().requires_grad_(True)
        self.optimizer = self._optimizer()
        self.narrow_at = max(1, steps // 4) if rows > 1 else -1
        self.loss = float("inf")
        self.best_row = 0

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            [
                {"params": [self.z], "lr": LEARNING_RATE_Z},
                {"params": [self.condition], "lr": LEARNING_RATE_CONDITION},
            ]
        )

    @property
    def done(self) -> bool:
        return self.step >= self.total

    def advance(self, steps: int, cancelled: threading.Event | None = None) -> None:
        generator = self.inverter.renderer.generator
        for _ in range(min(steps, self.total - self.step)):
            if cancelled is not None and cancelled.is_set():
                return
            with torch.enable_grad():
                images = generator.synthesize(self.z, self.condition).float()
                per_row = self._losses(images)
                self.optimizer.zero_grad(set_to_none=True)
                per_row.sum().backward()
                self.optimizer.step()
            with torch.no_grad():
                norms = self.z.norm(dim=1, keepdim=True).clamp_min(1e-8)
                self.z.mul_(torch.clamp(self.radius / norms, max=1.0))
            self.step += 1
            self.best_row = int(torch.argmin(per_row.detach()))
            self.loss = float(per_row.detach()[self.best_row])
            if self.step == self.narrow_at:
                self._keep_best()

    def _losses(self, images: torch.Tensor) -> torch.Tensor:
        """Per-row loss: composited over black and over white (L1), judge features, condition drift."""
        target = self.target.expand_as(images)
        rgb, alpha = (images[:, :3] + 1) * 0.5, (images[:, 3:] + 1) * 0.5
        target_rgb, target_alpha = (target[:, :3] + 1) * 0.5, (target[:, 3:] + 1) * 0.5
        over_black = (rgb - target_rgb).abs().mean(dim=(1, 2, 3))
        over_white = ((rgb + 1 - alpha) - (target_rgb + 1 - target_alpha)).abs().mean(dim=(1, 2, 3))
        loss = over_black + over_white
        if self.inverter.judge is not None:
            features = self.inverter.judge.features(images)
            loss = loss + FEATURE_WEIGHT * (1.0 - F.cosine_similarity(features, self.target_features, dim=1))
        drift = (self.condition - self.start_condition).pow(2).mean(dim=1)
        return loss + CONDITION_WEIGHT * drift

    def _keep_best(self) -> None:
        row = slice(self.best_row, self.best_row + 1)
        self.z = self.z.detach()[row].clone().requires_grad_(True)
        self.condition = self.condition.detach()[row].clone().requires_grad_(True)
        self.start_condition = self.start_condition[row]
        self.candidates = [self.candidates[self.best_row]]
        self.best_row = 0
        self.optimizer = self._optimizer()

    def best_latent(self) -> tuple[np.ndarray, np.ndarray]:
        row = self.best_row
        return (
            self.z.detach()[row].float().cpu().numpy().astype(np.float32),
            self.condition.detach()[row].float().cpu().numpy().astype(np.float32),
        )

    def preview(self) -> InversionProgress:
        """The current best image at full resolution (base render through the upsampler)."""
        renderer = self.inverter.renderer
        with torch.no_grad():
            row = slice(self.best_row, self.best_row + 1)
            images = self.inverter.renderer.generator.synthesize(self.z[row], self.condition[row])
            if renderer.upsampler is not None:
                images = renderer.upsampler(images)
        image = premultiplied_to_rgba_uint8(images)[0].numpy()
        return InversionProgress(self.step, self.total, image, self.loss)

    def request(self) -> GenerationRequest:
        """The request that renders the current best latent (explicit, float32, truncation 1)."""
        z, condition = self.best_latent()
        return GenerationRequest(
            prompt=self.inverter.bank().names[self.candidates[self.best_row]],
            truncation=1.0,
            model=self.inverter.renderer.loaded.info.name,
            latent=ExplicitLatent.from_arrays(z, condition, "float32", self.name),
        )

    def baseline_request(self) -> GenerationRequest:
        """The nearest concept at the mean z: what the picture looks like before any optimisation."""
        bank = self.inverter.bank()
        index = self.candidates[self.best_row]
        return GenerationRequest(
            prompt=bank.names[index],
            truncation=1.0,
            model=self.inverter.renderer.loaded.info.name,
            latent=ExplicitLatent.from_arrays(
                np.zeros(self.z.shape[1], np.float32), bank.conditions[index].numpy(), "float32", self.name
            ),
        )

    def finish(self) -> InversionOutcome:
        renderer = self.inverter.renderer
        result, baseline = renderer.render([self.request(), self.baseline_request()])
        return InversionOutcome(
            result=result,
            baseline=baseline,
            nearest=self.nearest,
            steps=self.step,
            seconds=time.perf_counter() - self.started,
            loss=self.loss,
            psnr=reconstruction_psnr(result.image, self.original) if result.ok else 0.0,
            baseline_psnr=reconstruction_psnr(baseline.image, self.original) if baseline.ok else 0.0,
        )


class Inverter:
    """Owns what every inversion of one loaded model shares: the concept bank and the judge (if shipped)."""

    def __init__(self, renderer, vocabulary):
        self.renderer = renderer
        self.vocabulary = vocabulary
        self.judge = _load_judge(renderer)
        info = renderer.loaded.info
        # Truncated samples have |z| ~ psi * sqrt(z_dim); staying inside keeps the result where sliders work.
        self.z_radius = float(info.default_truncation) * float(np.sqrt(info.z_dim))
        self._bank: ConceptBank | None = None

    def bank(self) -> ConceptBank:
        """The concept bank: from the user's cache when this model's was built before, else built (seconds)."""
        if self._bank is None:
            started = time.perf_counter()
            fresh = ConceptBank.build(self.renderer, self.vocabulary, self.judge, render=False)
            cached = self._cache_path()
            self._bank = fresh.with_renders_from(cached) if cached is not None else None
            if self._bank is None:
                self._bank = ConceptBank.build(self.renderer, self.vocabulary, self.judge)
                if cached is not None and len(self._bank.names) >= CACHE_MIN_CONCEPTS:
                    self._bank.save_renders(cached)
            log.info(
                "concept bank: %d concepts in %.1f s", len(self._bank.names), time.perf_counter() - started
            )
        return self._bank

    def _cache_path(self) -> Path | None:
        from studio.paths import user_data_dir

        loaded = self.renderer.loaded
        judge = "judge" if self.judge is not None else "pixels"
        try:
            return user_data_dir() / "cache" / f"concepts-{loaded.info.path.name}-{loaded.hash}-{judge}.npz"
        except Exception:  # noqa: BLE001 - no user folder: build every time
            return None

    def start(self, target_rgba: np.ndarray, steps: int = DEFAULT_STEPS, name: str = "") -> InversionRun:
        return InversionRun(self, target_rgba, steps, name)

    def invert(
        self,
        target_rgba: np.ndarray,
        steps: int = DEFAULT_STEPS,
        name: str = "",
        on_progress: Callable[[InversionProgress], None] | None = None,
    ) -> InversionOutcome:
        """Run a whole inversion here (benchmarks; the engine slices it between other work instead)."""
        run = self.start(target_rgba, steps, name)
        while not run.done:
            run.advance(SLICE_STEPS)
            if on_progress is not None:
                on_progress(run.preview())
        return run.finish()


def _start_z(rows: int, z_dim: int) -> torch.Tensor:
    """Fixed starting points (the same for every picture, so an inversion is repeatable)."""
    return torch.randn(rows, z_dim, generator=torch.Generator().manual_seed(14))


def over_white(image: np.ndarray) -> np.ndarray:
    """Straight-alpha RGBA uint8 composited over white: H x W x 3 floats in [0, 1]."""
    x = image.astype(np.float64) / 255.0
    return x[..., :3] * x[..., 3:] + (1.0 - x[..., 3:])


def reconstruction_psnr(image: np.ndarray, original: np.ndarray) -> float:
    """PSNR (dB) of two straight-alpha RGBA uint8 images composited over white, at ``original``'s size."""
    if image.shape != original.shape:
        tensor = rgba_uint8_to_premultiplied(torch.from_numpy(np.ascontiguousarray(image))[None])
        tensor = F.interpolate(
            tensor, size=original.shape[:2], mode="area" if image.shape[0] > original.shape[0] else "bilinear"
        )
        image = premultiplied_to_rgba_uint8(tensor)[0].numpy()

    mse = float(((over_white(image) - over_white(original)) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def _load_judge(renderer):
    """The judge network shipped in the model folder (its features sharpen the loss), or None."""
    path = renderer.loaded.info.path / JUDGE_FILE
    if not path.is_file():
        return None
    try:
        from studio.training.judge import load_judge

        judge, _ = load_judge(path)
    except Exception:  # noqa: BLE001 - a damaged judge only loses the feature term
        log.warning("the judge in %s could not be loaded; inverting on pixels only", path, exc_info=True)
        return None
    return judge.to(renderer.choice.device).eval().requires_grad_(False)
