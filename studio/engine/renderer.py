"""Pixels from one-image requests on one device: latents, conditions, the forward pass, error results.

Only the engine's worker thread calls a Renderer, so it needs no locks. Every image that can be stored is
rendered at one fixed, padded shape, so that it never depends on the batch it was rendered in (see
``_forward``); CPU previews alone take a one-row shortcut and say so (``GenerationResult.exact``).
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
import torch

from studio.engine.devices import DeviceChoice
from studio.engine.explicit_latent import endpoint_condition, request_z, start_conditions
from studio.engine.latents import closed_form_directions, strengthened_conditions, varied_conditions
from studio.engine.requests import MAX_DIRECTIONS, GenerationRequest, GenerationResult, RequestError
from studio.engine.spread import SPREAD_LIMIT, Spreader
from studio.models.cgan import premultiplied_to_rgba_uint8, upsampler_layout
from studio.models.concepts import ConceptConditioner, ConceptConditions
from studio.models.format import LoadedModel, ModelError
from studio.models.holes import second_or_first

# Rows of every exact CPU forward. Kernels block differently for different batch sizes (moving the last bit
# of a float, rarely a uint8 pixel), so the shape is fixed for good: changing it changes stored pixels.
# 16 rows is where batched CPU throughput peaks (docs/bench/engine.json).
CPU_FIXED_ROWS = 16
READINGS_KEPT = 256  # prompts whose reading (Renderer.read) is kept


class Renderer:
    def __init__(
        self,
        loaded: LoadedModel,
        choice: DeviceChoice,
        encoder,
        micro_batch: int,
        vocabulary=None,
        concepts: ConceptConditions | None = None,
    ):
        info = loaded.info
        self.loaded = loaded
        self.choice = choice
        self.encoder = encoder
        self.spreader = Spreader(vocabulary)  # what a request's ``spread`` mixes (no vocabulary: nothing)
        # emoji in a prompt are read as their names ("🐱" -> "cat face") when the model knows them, "EMOJI!" as the
        # generic text "emoji", and "happy dog" as "dog" (Vocabulary.reading, Vocabulary.name_reading); each
        # prompt's reading is kept for the last few hundred prompts (name words encode its runs: a few ms)
        self.vocabulary = vocabulary
        self._readings = lru_cache(maxsize=READINGS_KEPT)(self._reading)
        self.generator = loaded.generator.to(choice.device).eval()
        # a prompt that names a fitted concept draws its fitted condition (studio/models/concepts.py)
        self.project = (
            ConceptConditioner(self.generator, vocabulary, concepts)
            if concepts is not None and vocabulary is not None
            else self.generator.condition
        )
        # a table with second rows (fitted without a guard against tears) draws each image with both and shows the
        # second's picture, its narrow dips filled from the first's, unless it opens wide tears (studio/models/holes.py)
        self.project_full = self.project.full_rows() if isinstance(self.project, ConceptConditioner) else None
        self.upsampler = (
            loaded.upsampler.to(choice.device, memory_format=upsampler_layout(choice.device.type)).eval()
            if loaded.upsampler is not None
            else None
        )
        self.directions, _ = closed_form_directions(
            loaded.generator.z_weight(), min(MAX_DIRECTIONS, info.z_dim)
        )
        # Exact renders run at this many rows, zero-padded: the micro-batch on GPUs, a constant on CPU.
        self.fixed_rows = micro_batch if choice.kind == "cuda" else CPU_FIXED_ROWS
        if choice.kind == "cuda":
            torch.backends.cudnn.benchmark = False  # the same algorithm every call keeps pixels reproducible
            torch.backends.cudnn.deterministic = True
        self.renders = 0
        self.images = 0
        self.last_render_ms = 0.0

    @property
    def num_directions(self) -> int:
        return int(self.directions.shape[0])

    def read(self, prompt: str) -> str:
        """What the encoder reads for ``prompt``: known emoji as their names ("🐱" as "cat face"), generic texts up
        to case and punctuation as the text ("EMOJI!" as "emoji"), a prompt read by its name words as those words
        ("happy dog" as "dog"); any other prompt as typed."""
        return self._readings(prompt)[0]

    def listed(self, prompt: str) -> list[int] | None:
        """The concepts a prompt lists, which spread chooses among instead of what the encoder's blend of their
        names matches: several pasted emoji ("🐱🐶") or several name words ("cat and dog"); None for any other."""
        chosen = self._readings(prompt)[1]
        return list(chosen[:SPREAD_LIMIT]) if len(chosen) >= 2 else None

    def _reading(self, prompt: str) -> tuple[str, tuple[int, ...]]:
        vocabulary = self.vocabulary
        if vocabulary is None:
            return prompt, ()
        text = vocabulary.reading(prompt)
        pasted = vocabulary.emoji_list(prompt)
        if len(pasted) >= 2 or vocabulary.name_words_below is None or not text.strip():
            return text, tuple(pasted)
        whole = np.asarray(self.encoder.encode([text]), dtype=np.float32)[0]
        words, chosen = vocabulary.name_reading(text, whole, self.encoder.encode)
        return words, tuple(chosen)

    def encode(self, prompts: list[str]) -> np.ndarray:
        """Prompt embeddings of what the encoder reads for them (:meth:`read`)."""
        return np.asarray(self.encoder.encode([self.read(p) for p in prompts]), dtype=np.float32)

    def render(
        self, requests: list[GenerationRequest], first_index: int = 0, exact: bool = True
    ) -> list[GenerationResult]:
        """Render one-image requests as one micro-batch; invalid ones become error results.

        ``exact=False`` (live previews) lets a CPU render one row alone: about 16x less work than the padded
        shape, and at most a few uint8 levels away from the exact image (tests/test_engine_batching.py).
        """
        exact = exact or self.choice.kind != "cpu"  # padding is free on GPUs: always exact there
        info = self.loaded.info
        results: list[GenerationResult | None] = [None] * len(requests)
        valid: list[int] = []
        for i, request in enumerate(requests):
            try:
                request.validated()
                if request.count != 1:
                    raise RequestError("The engine renders one-image requests here; split the batch first.")
                if request.model not in (info.name, info.path.name):
                    raise RequestError(
                        f"This request is for the model '{request.model}', but '{info.name}' is loaded."
                    )
                valid.append(i)
            except RequestError as exc:
                results[i] = GenerationResult(request=request, index=first_index + i, error=str(exc))
        if valid:
            started = time.perf_counter()
            try:
                images, latents = self._forward_with_retry([requests[i] for i in valid], exact)
            except Exception as exc:  # noqa: BLE001 - a broken render is reported, the engine keeps serving
                for i in valid:
                    results[i] = GenerationResult(
                        request=requests[i], index=first_index + i, error=_render_error(exc)
                    )
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000.0
                self.renders += 1
                self.images += len(valid)
                self.last_render_ms = elapsed_ms
                for j, i in enumerate(valid):
                    results[i] = GenerationResult(
                        request=requests[i],
                        index=first_index + i,
                        image=images[j],
                        latent=latents[j],
                        render_ms=elapsed_ms / len(valid),
                        device=self.choice.kind,
                        model_hash=self.loaded.hash,
                        exact=exact,
                    )
        return results  # type: ignore[return-value]

    def _forward_with_retry(
        self, requests: list[GenerationRequest], exact: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forward in chunks; on CUDA out-of-memory halve the chunk size and retry before giving up."""
        chunk = min(len(requests), self.fixed_rows) if exact else len(requests)
        while True:
            try:
                outputs = [
                    self._forward(requests[i : i + chunk], exact) for i in range(0, len(requests), chunk)
                ]
                return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])
            except torch.cuda.OutOfMemoryError:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 2)
                if self.fixed_rows > 1:
                    # Padded GPU shapes shrink too; later images keep this smaller (still fixed) shape.
                    self.fixed_rows = chunk

    def _conditions(self, requests: list[GenerationRequest], z: torch.Tensor, project=None) -> torch.Tensor:
        """Projected conditions (N x cond_dim, or N x places x cond_dim for a table with layered rows) with spread,
        concepts and interpolation applied.

        Blending after the projection is exact for text models (the projection is linear) and gives class
        models a meaningful in-between too. With ``spread``, a prompt (and the B prompt) is embedded as the
        row's final z mixes the concepts it fits (studio/engine/spread.py); concept sliders stay directions.
        ``project``: the prompt layer to use instead of the renderer's own (the concept table's second rows).
        """
        generator, info, device = self.generator, self.loaded.info, self.choice.device
        project = self.project if project is None else project
        places = getattr(project, "places", None)  # a table with layered rows: N x places x cond_dim
        if info.conditioning.kind == "class":
            names = {name.lower(): i for i, name in enumerate(info.conditioning.classes)}

            def embed(prompts: list[str], zs: list | None = None) -> torch.Tensor:
                missing = [p for p in prompts if p.strip().lower() not in names]
                if missing:
                    raise RequestError(f"'{missing[0]}' is not one of this model's classes.")
                index = torch.tensor([names[p.strip().lower()] for p in prompts], device=device)
                return torch.cat([generator.condition(index[i : i + 1]).float() for i in range(len(prompts))])
        else:

            def embed(prompts: list[str], zs: list | None = None) -> torch.Tensor:
                encoded = self.encode(prompts)
                # the concepts a prompt of pasted emoji lists: read only for spread, which alone uses them
                listed = [self.listed(p) for p in prompts] if zs is not None else None
                if zs is not None and isinstance(project, ConceptConditioner):
                    # spread with a concept table: mix the concepts' own conditions (no snap to one name)
                    return self.spreader.conditions(encoded, zs, project, device, listed)
                if zs is not None:  # spread: each row's z mixes the concepts its prompt fits
                    encoded = self.spreader.embeddings(encoded, zs, listed)
                vectors = torch.from_numpy(encoded).to(device)
                # One row at a time, like the forward pass, so a batch never moves a bit of the result.
                return torch.cat([project(vectors[i : i + 1]).float() for i in range(len(prompts))])

        # An explicit latent (an inverted picture, studio/engine/explicit_latent.py) replaces the embedded prompt.
        spread_z = [z[row] if request.spread else None for row, request in enumerate(requests)]
        # start_conditions embeds the prompts of the rows without an explicit latent, in row order
        starting = [row_z for request, row_z in zip(requests, spread_z) if request.latent is None]
        cond = start_conditions(
            requests, lambda prompts: embed(prompts, starting), generator.config.cond_dim, device, places
        )
        for row, request in enumerate(requests):
            for concept in request.concepts:
                if concept.scale:
                    pair = embed([concept.positive, concept.negative])
                    cond[row] += concept.scale * (pair[0] - pair[1])
            if request.interpolate_to is not None and request.t:
                other = endpoint_condition(
                    request.interpolate_to,
                    lambda prompts, row=row: embed(prompts, [spread_z[row]]),
                    generator.config.cond_dim,
                    device,
                    places,
                )
                cond[row] = torch.lerp(cond[row], other, float(request.t))
        return cond

    def _varied(self, cond: torch.Tensor, z: torch.Tensor, requests: list[GenerationRequest]) -> torch.Tensor:
        """The conditions scaled by each request's prompt ``strength``, then moved by its ``variety`` along the
        direction its final z chooses."""
        strengths = torch.tensor([float(r.strength) for r in requests])
        if bool((strengths != 1.0).any()):
            cond = strengthened_conditions(cond, self.generator, strengths[:, None])
        amounts = torch.tensor([float(r.variety) for r in requests])
        if not amounts.any():
            return cond
        return varied_conditions(cond, z, self.generator, amounts[:, None])

    def _latents(self, requests: list[GenerationRequest]) -> torch.Tensor:
        z_dim = self.loaded.info.z_dim
        rows = []
        for request in requests:
            z = request_z(request, z_dim)  # seeded or explicit z, slerped to B, truncated
            for index, scale in request.directions:
                if index >= self.num_directions:
                    raise RequestError(
                        f"This model has {self.num_directions} latent directions; {index} is out of range."
                    )
                z = z + float(scale) * self.directions[index]
            rows.append(z)
        return torch.stack(rows)

    @torch.inference_mode()
    def _forward(self, requests: list[GenerationRequest], exact: bool) -> tuple[np.ndarray, np.ndarray]:
        """Render rows so that an image never depends on which batch it was in.

        Kernels pick different blockings for different batch sizes, which moves the last float bit and,
        rarely, a uint8 pixel. So every exact forward runs at one fixed shape, zero-padded to
        ``fixed_rows``; a row's values never depend on the other rows' values at a fixed shape, so a
        one-image request reproduces image i of any batch exactly. Inexact (CPU preview) renders run one
        row at a time, a row with a second row (the concept table's) as one batch of the two.
        """
        z = self._latents(requests)
        cond = self._varied(self._conditions(requests, z), z, requests)
        rows = torch.zeros(0, dtype=torch.long)
        if self.project_full is not None:
            # the table's second rows: drawn where they change a row's condition, their narrow dips filled from the
            # first rows' drawing, shown where they open no wide tear where the first's is solid (models/holes.py)
            full = self._varied(self._conditions(requests, z, self.project_full), z, requests)
            rows = (full != cond).flatten(1).any(dim=1).cpu().nonzero().flatten()
        if len(rows) == 0:
            images = self._draw(z, cond, exact)
        else:
            # both drawings in the same forwards: the second rows fill the padded shape's free rows (an exact row's
            # pixels do not depend on the rows beside it), and a live preview draws its pair as one batch of two
            drawn = self._draw(
                torch.cat([z, z[rows]]), torch.cat([cond, full[rows.to(full.device)]]), exact, together=True
            )
            images, second = drawn[: len(z)], drawn[len(z) :]
            table = self.project_full.table
            images[rows] = second_or_first(second, images[rows], table.full_margin, table.full_net_margin)[0]
        return premultiplied_to_rgba_uint8(images).numpy(), z.numpy().astype(np.float32)

    def _draw(self, z: torch.Tensor, cond: torch.Tensor, exact: bool, together: bool = False) -> torch.Tensor:
        """The pictures (premultiplied RGBA in [-1, 1], on CPU) of these rows: exact ones at the fixed shape,
        zero-padded (in as many forwards as the rows need); inexact ones one row at a time, or all in one batch
        with ``together`` (a preview's first and second rows)."""
        device, dtype, rows = self.choice.device, self.choice.dtype, len(z)
        z_dev = z.to(device)
        if exact:
            out = []
            for start in range(0, max(rows, 1), self.fixed_rows):  # no rows: one padded forward, nothing kept
                z_in, cond_in = z_dev[start : start + self.fixed_rows], cond[start : start + self.fixed_rows]
                pad = self.fixed_rows - len(z_in)
                z_in = torch.cat([z_in, torch.zeros(pad, z.shape[1], device=device)])
                cond_in = torch.cat([cond_in, torch.zeros(pad, *cond.shape[1:], device=device)])
                out.append(self._synthesize(z_in, cond_in, dtype)[: self.fixed_rows - pad].cpu())
            return torch.cat(out)
        if together:
            return self._synthesize(z_dev, cond, dtype).cpu()
        return torch.cat(
            [self._synthesize(z_dev[i : i + 1], cond[i : i + 1], dtype) for i in range(rows)]
        ).cpu()

    def _synthesize(self, z: torch.Tensor, cond: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        with torch.autocast(z.device.type, dtype=dtype, enabled=dtype != torch.float32):
            images = self.generator.synthesize(z, cond)
            if self.upsampler is not None:
                images = self.upsampler(images)
        return images.float()


def _render_error(exc: Exception) -> str:
    if isinstance(exc, (RequestError, ModelError)):  # already one sentence (e.g. the encoder to reinstall)
        return str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "The GPU ran out of memory even one image at a time; close other GPU programs or use --device cpu."
    return f"Rendering failed ({type(exc).__name__}: {exc}); the engine is still running."
