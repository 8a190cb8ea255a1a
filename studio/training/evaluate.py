"""Offline evaluation of a cascaded emoji model with the judge (no downloaded Inception weights).

Metrics (all from :func:`evaluate_model`):
- ``judge_ceiling``: the judge's subgroup accuracy on held-out real renders;
- ``gan_test_train`` / ``gan_test_heldout``: its accuracy on images generated from each emoji's own name;
- ``identity_top1`` / ``identity_top5``: for each training emoji's name prompt, is the prompted emoji among
  the k nearest real emoji (cosine, judge features); ``identity_top5_real32`` is the same for the real
  32 px render through the upsampler (what a base that drew each emoji exactly would score);
- ``kid``: kernel inception distance (cubic polynomial kernel, unbiased) in judge features, generated vs real;
- ``seed_diversity``: mean pairwise RMS pixel distance of 8 seeds of one prompt (``real_diversity``: the same
  between different real emoji, for scale);
- ``upsampler_psnr`` / ``bicubic_psnr`` and ``upsampler_judge_accuracy`` / ``bicubic_judge_accuracy`` on
  held-out real 32 px emoji upsampled 4x.

:func:`score_snapshots` ranks a training run's EMA snapshots by the held-out evaluation (GAN-test on the
held-out emoji, several seeds each) so the shipped weights are the best measured ones, not the last ones.

Images are generated exactly as the engine does: ``z = seeded_z(seed, z_dim) * psi``,
``generator(z, embedding)``, then the upsampler.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio.atomic import write_atomically
from studio.engine.latents import seeded_z
from studio.models.cgan import premultiplied_to_rgba_uint8, rgba_uint8_to_premultiplied
from studio.models.holes import alpha_erosion, second_or_first

SAMPLE_PROMPTS = (
    "grinning face",
    "red heart",
    "cat face",
    "pizza",
    "flag: Japan",
    "rocket",
    "woman firefighter",
    "red apple",
)
SAMPLE_SEEDS = (0, 1, 2, 3, 4, 5)
BACKGROUND = 240  # grey that sample grids are composited on


class EvaluateError(RuntimeError):
    """The evaluation cannot run; one sentence."""


def latents(seeds: Sequence[int], z_dim: int, psi: float) -> torch.Tensor:
    """The engine's latents: its seeded z (studio.engine.latents) per seed, times the truncation ``psi``."""
    return torch.stack([seeded_z(s, z_dim) for s in seeds]) * psi


@torch.no_grad()
def generate(
    generator,
    upsampler,
    embeddings: torch.Tensor,
    seeds: Sequence[int],
    psi: float,
    batch: int = 128,
    upsample: bool = True,
) -> torch.Tensor:
    """Premultiplied RGBA in [-1, 1] for each (embedding, seed) pair (same length)."""
    z = latents(seeds, generator.config.z_dim, psi)
    out = []
    for i in range(0, len(z), batch):
        if upsample and upsampler is not None and _shows_more(generator):
            x = generator.pictures(z[i : i + batch], embeddings[i : i + batch].float(), upsampler)
        else:
            x = generator(z[i : i + batch], embeddings[i : i + batch].float())
            if upsample and upsampler is not None:
                x = upsampler(x)
        out.append(x.float())
    return torch.cat(out) if out else torch.zeros(0, 4, 32, 32)


def _shows_more(generator) -> bool:
    """Whether ``generator``'s 128 px pictures are more than its 32 px drawing upsampled (a concept table's second
    rows, whose narrow dips are filled at 128 px): then :meth:`ConceptGenerator.pictures` draws them."""
    drawn = generator.generator if isinstance(generator, SpreadGenerator) else generator
    return isinstance(drawn, ConceptGenerator) and drawn.full is not None


class _DrawnGenerator(torch.nn.Module):
    """A base generator as the engine renders it with one of its options, for scoring: subclasses give
    ``forward(z, embedding)``; ``config`` and ``z_weight`` are the wrapped one's."""

    def __init__(self, generator):
        super().__init__()
        self.generator, self.config = generator, generator.config

    def z_weight(self) -> torch.Tensor:
        return self.generator.z_weight()


class VariedGenerator(_DrawnGenerator):
    """At ``variety`` and prompt ``strength`` (studio/engine/latents.py: ``variety_offsets``,
    ``strengthened_conditions``)."""

    def __init__(self, generator, variety: float, strength: float = 1.0):
        super().__init__(generator)
        self.variety, self.strength = float(variety), float(strength)

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        from studio.engine.latents import strengthened_conditions, varied_conditions

        projected = self.generator.condition(condition)
        if self.strength != 1.0:
            projected = strengthened_conditions(projected, self.generator, self.strength)
        projected = varied_conditions(projected, z, self.generator, self.variety)
        return self.generator.synthesize(z, projected)


class SpreadGenerator(_DrawnGenerator):
    """With ``spread`` on (studio/engine/spread.py): each row's prompt embedding replaced by its z's mix of the
    concepts the prompt fits."""

    def __init__(self, generator, spreader):
        super().__init__(generator)
        self.spreader = spreader

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        rows = embedding.detach().float().cpu().numpy()
        drawn = self.generator
        if isinstance(drawn, ConceptGenerator):  # as the engine: mix the concepts' own conditions

            def conditions(conditioner) -> torch.Tensor:
                return self.spreader.conditions(rows, z, conditioner, embedding.device)

            return drawn.checked(z, conditions)[0]
        spread = self.spreader.embeddings(rows, z)
        return self.generator(z, torch.from_numpy(spread).to(embedding.device))

    def pictures(self, z: torch.Tensor, embedding: torch.Tensor, upsampler) -> torch.Tensor:
        """The 128 px pictures as the engine shows them (``upsampler`` is the model's)."""
        if not isinstance(self.generator, ConceptGenerator):
            return upsampler(self(z, embedding))
        rows = embedding.detach().float().cpu().numpy()

        def conditions(conditioner) -> torch.Tensor:
            return self.spreader.conditions(rows, z, conditioner, embedding.device)

        return self.generator.checked(z, conditions, upsampler)[1]


class ConceptGenerator(_DrawnGenerator):
    """With a fitted concept table (studio/models/concepts.py); with its second rows and the model's ``upsampler``,
    each 128 px picture is the second rows' with its narrow dips filled from the first rows', unless it opens wider
    tears where the first rows' is solid (studio/models/holes.py ``second_or_first``), as the engine draws it; its
    32 px drawing is the rows' whose picture is shown."""

    def __init__(self, generator, conditioner, upsampler=None):
        super().__init__(generator)
        self.conditioner, self.upsampler = conditioner, upsampler
        self.full = conditioner.full_rows() if upsampler is not None else None

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.checked(z, lambda conditioner: conditioner(embedding.float()))[0]

    def pictures(self, z: torch.Tensor, embedding: torch.Tensor, upsampler) -> torch.Tensor:
        """The 128 px pictures as the engine shows them (``upsampler`` is the model's)."""
        return self.checked(z, lambda conditioner: conditioner(embedding.float()), upsampler)[1]

    def checked(
        self, z: torch.Tensor, conditions, upsampler=None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The 32 px drawings of ``conditions(conditioner)`` (the conditions of a batch for a conditioner), with the
        table's second rows where their picture is shown, and (with ``upsampler``, or when the table has second rows)
        the 128 px pictures shown; None for those when neither."""
        first_conditions = conditions(self.conditioner)
        images = self.generator.synthesize(z, first_conditions)
        if self.full is not None:
            second_conditions = conditions(self.full)
            differs = (second_conditions != first_conditions).flatten(1).any(dim=1)
            if bool(differs.any()):
                second = self.generator.synthesize(z, second_conditions)
                first_up = self.upsampler(images)
                table = self.full.table
                shown, took = second_or_first(
                    self.upsampler(second), first_up, table.full_margin, table.full_net_margin
                )
                took = took & differs
                pictures = torch.where(took[:, None, None, None], shown, first_up.float())
                return torch.where(took[:, None, None, None], second, images), pictures
        return images, (upsampler(images) if upsampler is not None else None)


class WordedNames:
    """The dataset with its names worded another way, for scoring paraphrased prompts: each emoji's name in a
    language put into ``phrase`` ("{} emoji", "an emoji of {}") and embedded by ``encode`` (texts ->
    embeddings, the model's encoder). Everything else (images, split, keywords) is the dataset's own."""

    def __init__(self, data, encode, phrase: str):
        if "{}" not in phrase:
            raise ValueError(f"The phrase {phrase!r} has no {{}} for the name.")
        self._data, self._encode, self.phrase = data, encode, phrase
        self._embedded: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str):
        return getattr(self._data, name)

    def name_embeddings(self, language: str = "en") -> np.ndarray:
        if language not in self._embedded:
            texts = self._data.name_texts(language)
            known = [i for i, text in enumerate(texts) if text is not None]
            out = np.zeros((len(texts), self._data.caption_emb.shape[1]), np.float32)
            if known:
                worded = [self.phrase.format(texts[i]) for i in known]
                out[known] = np.asarray(self._encode(worded), np.float32)
            self._embedded[language] = out
        return self._embedded[language]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB over premultiplied RGBA mapped to [0, 1]."""
    mse = float((((a - b) * 0.5) ** 2).mean())
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def kid(x: torch.Tensor, y: torch.Tensor, subsets: int = 20, size: int = 300, seed: int = 0) -> float:
    """Unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over random subsets (as in KID)."""
    rng = np.random.default_rng(seed)
    x, y = x.double(), y.double()
    d = x.shape[1]
    m = min(size, len(x), len(y))
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx = (a @ a.T / d + 1) ** 3
        kyy = (b @ b.T / d + 1) ** 3
        kxy = (a @ b.T / d + 1) ** 3
        value = (kxx.sum() - kxx.diag().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diag().sum()) / (
            m * (m - 1)
        )
        values.append(float(value - 2 * kxy.mean()))
    return float(np.mean(values))


def mean_pairwise_rms(images: torch.Tensor) -> float:
    """Mean RMS distance (in [0, 1] units) over all pairs of a small batch."""
    flat = (images.flatten(1) * 0.5).double()
    dist = torch.cdist(flat, flat) / np.sqrt(flat.shape[1])
    n = len(images)
    return float(dist.sum() / (n * (n - 1)))


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
# px of the alpha erosion that keeps :func:`picture_detail` off outlines and tears (at 128 px)
INTERIOR_EROSION = 5


# A dark mark: an interior px (alpha above 0.9 under a MARKS_EROSION px erosion) whose luminance lies more than
# MARKS_DEPTH under the median of the MARKS_WINDOW px square around it: an eye, a mouth, a fleck (session 63).
MARKS_EROSION, MARKS_WINDOW, MARKS_DEPTH = 5, 9, 0.12
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


@torch.no_grad()
def dark_marks(images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Per picture (premultiplied RGBA in [-1, 1], 128 px): how many px of its interior are dark marks (see
    ``MARKS_DEPTH``), in its straight colour. The interior detail of :func:`picture_detail` is a mean gradient and
    barely moves when a face loses its eyes; the pictures the looks called plainer mostly lost such marks (the model's
    history, *After v16, session 63*). ``batch`` pictures at a time.

    The window's median lies more than the depth above a px exactly when more than half of the window's values do
    (its 41st smallest of 81 is the median, and subtracting the px's luminance keeps their order), so the marks are
    counted from 81 shifted comparisons rather than a median of each px's window: the same px, more than 10x faster
    (session 70, 512 real emoji on one thread: 15.0 s with the median, 1.4 s; the median's form is the test's
    reference)."""
    y = (images.float() + 1.0) * 0.5
    alpha = y[:, 3:4].clamp(0.0, 1.0)
    luma = ((y[:, :3] / alpha.clamp(min=1e-3)).clamp(0.0, 1.0) * _LUMA).sum(1, keepdim=True)
    interior = alpha_erosion(alpha, MARKS_EROSION) > 0.9
    pad, half, counts = MARKS_WINDOW // 2, MARKS_WINDOW**2 // 2, []
    for start in range(0, len(luma), batch):
        part = luma[start : start + batch]
        padded = F.pad(part, (pad, pad, pad, pad), mode="reflect")
        height, width = part.shape[-2:]
        above = torch.zeros(part.shape, dtype=torch.int16)
        for dy in range(MARKS_WINDOW):
            for dx in range(MARKS_WINDOW):
                above += (padded[..., dy : dy + height, dx : dx + width] - part) > MARKS_DEPTH
        counts.append(((above > half) & interior[start : start + batch]).sum((1, 2, 3)))
    return torch.cat(counts) if counts else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def picture_detail(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per picture (premultiplied RGBA in [-1, 1]): the summed absolute Laplacian of its RGB (in [0, 1], the channels'
    mean) over its interior, where alpha stays above 0.9 under a :data:`INTERIOR_EROSION` px erosion (away from its
    outline and any tear), that interior's px count, and the length of its alpha edges (the summed alpha steps
    between neighbouring px). Detail over interior px is how sharp the drawing is inside (a 5 px box blur takes away
    most of it); the edge length how intricate its outline is. Real emoji have more of both than the models' drawings
    (session 50, the model's history)."""
    return detail_parts(images)


def detail_parts(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`picture_detail` with gradients: the detail and edge length are differentiable in the picture (a fit's
    term, studio/training/concept_fit.py ``detail_128``); the interior is a mask."""
    y = (images.float() + 1.0) * 0.5
    rgb, alpha = y[:, :3], y[:, 3:4].clamp(0.0, 1.0)
    interior = alpha_erosion(alpha, INTERIOR_EROSION) > 0.9
    kernel = _LAPLACIAN.to(images.device).repeat(3, 1, 1, 1)
    laplacian = (
        F.conv2d(F.pad(rgb, (1, 1, 1, 1), mode="replicate"), kernel, groups=3).abs().mean(1, keepdim=True)
    )
    edges = (alpha[..., :, 1:] - alpha[..., :, :-1]).abs().sum((1, 2, 3))
    edges = edges + (alpha[..., 1:, :] - alpha[..., :-1, :]).abs().sum((1, 2, 3))
    return (laplacian * interior).sum((1, 2, 3)), interior.sum((1, 2, 3)).float(), edges


def detail_summary(images: torch.Tensor) -> dict:
    """:func:`picture_detail` over a set: the interior detail (summed |Laplacian| over all interior px, a mean per
    px) and the mean alpha edge length a picture."""
    return summarize_detail(*picture_detail(images))


def summarize_detail(detail: torch.Tensor, interior: torch.Tensor, edges: torch.Tensor) -> dict:
    """:func:`detail_summary` from the per-picture parts :func:`picture_detail` returns (or a subset of them)."""
    return {
        "interior_detail": round(float(detail.sum() / interior.sum().clamp(min=1.0)), 5),
        "edge_length": round(float(edges.mean()), 1),
    }


@torch.no_grad()
def nearest_real(features: torch.Tensor, real_features: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Per picture (its judge features), the indices of the ``k`` real emoji nearest it by cosine, nearest first:
    what identity top-1 / top-5 count."""
    sims = F.normalize(features, dim=1) @ F.normalize(real_features, dim=1).T
    return sims.topk(k, dim=1).indices


def gan_test_hits(
    generator,
    upsampler,
    data,
    judge,
    psi: float,
    index: np.ndarray,
    rounds: Sequence[int],
    language: str = "en",
) -> np.ndarray:
    """Judge hits, shape (len(rounds), len(index)): emoji ``index[j]`` prompted by its name in ``language`` at
    seed ``index[j] + k * 100000`` for the k-th of ``rounds``, classified into its own subgroup or not. Two
    generators scored on the same ``index`` and ``rounds`` see the same prompts and latents, so their hits can
    be compared pair by pair (:func:`paired_difference`)."""
    return judge_hits(generator, upsampler, data, judge, psi, index, rounds, language)["gan_test"]


def judge_hits(
    generator,
    upsampler,
    data,
    judge,
    psi: float,
    index: np.ndarray,
    rounds: Sequence[int],
    language: str = "en",
    real_features: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """:func:`gan_test_hits` as ``"gan_test"``; with ``real_features`` (the judge's features of every real emoji at
    128 px, in the dataset's order) also ``"identity"``: whether the prompted emoji itself is among the 5 real emoji
    nearest each picture (cosine), as ``identity_top5`` counts it, on the same pictures."""
    from studio.training.judge import judge_features

    rounds = list(rounds)
    if not rounds:
        raise ValueError("GAN-test needs at least one seed round.")
    index = np.asarray(index, dtype=np.int64)
    if len(index) == 0:
        empty = np.zeros((len(rounds), 0), dtype=bool)
        return {"gan_test": empty} | ({} if real_features is None else {"identity": empty.copy()})
    fake, rep = round_pictures(generator, upsampler, data, psi, index, rounds, language)
    labels = torch.from_numpy(data.subgroup.astype(np.int64))
    features = judge_features(judge, fake)  # one pass of the judge: its logits are the classifier's on these
    with torch.no_grad():
        hits = {"gan_test": (judge.classifier(features).argmax(1) == labels[rep]).numpy()}
    if real_features is not None:
        top5 = nearest_real(features, real_features)
        hits["identity"] = (top5 == torch.from_numpy(rep)[:, None]).any(1).numpy()
    return {name: h.reshape(len(rounds), len(index)) for name, h in hits.items()}


def round_pictures(
    generator, upsampler, data, psi: float, index: np.ndarray, rounds: Sequence[int], language: str = "en"
) -> tuple[torch.Tensor, np.ndarray]:
    """The pictures of emoji ``index`` prompted by their names in ``language`` at seed ``index[j] + k * 100000`` for
    the k-th of ``rounds``, round after round, and the emoji each one is of (``index`` tiled ``len(rounds)`` times)."""
    rep = np.tile(np.asarray(index, dtype=np.int64), len(rounds))
    seeds = [int(i) + 100000 * rounds[k // len(index)] for k, i in enumerate(rep)]
    names = torch.from_numpy(data.name_embeddings(language))
    return generate(generator, upsampler, names[rep], seeds, psi), rep


def heldout_gan_test(
    generator, upsampler, data, judge, psi: float, rounds: Sequence[int] = (0,), language: str = "en"
) -> float:
    """GAN-test on the held-out emoji that have a name in ``language``: each prompted by that name at seed
    ``index + k * 100000`` for every ``k`` in ``rounds``. Round 0 is the seed ``evaluate_model`` always uses;
    ``rounds=range(1, 4)`` scores the same emoji on three fresh seeds each (a check that a difference between
    two generators is not the luck of one seed per emoji). NaN when no held-out emoji has such a name."""
    held_idx = data.named_index(language, heldout=True)
    if len(held_idx) == 0:
        if not list(rounds):
            raise ValueError("Held-out GAN-test needs at least one seed round.")
        return float("nan")  # no held-out emoji has a name in this language
    return float(gan_test_hits(generator, upsampler, data, judge, psi, held_idx, rounds, language).mean())


def paired_difference(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict:
    """``b - a`` for two generators' hits on the same (rounds, emoji) grid, with a bootstrap interval of
    coverage ``level`` that resamples emoji (columns: an emoji's seeds go together, they share its difficulty)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] == 0:
        raise ValueError("Paired hits must have the same (rounds, emoji) shape, with at least one emoji.")
    per_emoji = (b - a).mean(axis=0)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(per_emoji), size=(resamples, len(per_emoji)))
    boot = per_emoji[picks].mean(axis=1)
    if not 0 < level < 1:
        raise ValueError("The interval's coverage must lie between 0 and 1.")
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return {
        "a": float(a.mean()),
        "b": float(b.mean()),
        "difference": float(per_emoji.mean()),
        "interval": [float(low), float(high)],
        "level": level,
        "emoji": int(a.shape[1]),
        "rounds": int(a.shape[0]),
    }


@torch.no_grad()
def evaluate_model(
    generator,
    upsampler,
    data,
    judge,
    psi: float = 1.0,
    limit: int | None = None,
    diversity_prompts: int = 48,
    seed: int = 0,
    upsampler_eval: bool = True,
    heldout_seeds: int = 1,
    real_cache: dict | None = None,
    language: str = "en",
    keywords: int = 50,
) -> dict:
    """Every metric of the module docstring; ``limit`` evaluates a random subset of training emoji and
    ``heldout_seeds`` > 1 averages held-out GAN-test over more seeds per emoji (seed ``index + k * 100000``).
    ``real_cache``: a dict kept across calls with the same data and judge, so the judge's view of the real
    renders is computed once, not once per generator. ``language``: prompt each emoji by its name in that CLDR
    language instead of its English emoji-test name (emoji without one are left out)."""
    from studio.training.judge import judge_features, judge_logits

    generator.eval()
    if upsampler is not None:
        upsampler.eval()
    rng = np.random.default_rng(seed)
    names = torch.from_numpy(data.name_embeddings(language))
    labels = torch.from_numpy(data.subgroup.astype(np.int64))
    real128 = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    real32 = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32))
    train_idx, held_idx = data.named_index(language), data.named_index(language, heldout=True)
    if limit is not None and limit < len(train_idx):
        train_idx = np.sort(rng.choice(train_idx, limit, replace=False))
    metrics: dict = {
        "psi": psi,
        "language": language,
        "train_emoji": int(len(train_idx)),
        "heldout_emoji": int(len(held_idx)),
    }
    cache = {} if real_cache is None else real_cache

    def accuracy_on_real(index: np.ndarray) -> float:
        key = ("accuracy", index.tobytes())
        if key not in cache:
            cache[key] = float(
                (judge_logits(judge, real128[index]).argmax(1) == labels[index]).float().mean()
            )
        return cache[key]

    metrics["judge_ceiling"] = accuracy_on_real(held_idx)
    metrics["judge_train_real_accuracy"] = accuracy_on_real(train_idx)
    fake_train = generate(generator, upsampler, names[train_idx], [int(i) for i in train_idx], psi)
    fake_train_logits = judge_logits(judge, fake_train)
    metrics["gan_test_train"] = float((fake_train_logits.argmax(1) == labels[train_idx]).float().mean())
    metrics["gan_test_heldout"] = heldout_gan_test(
        generator, upsampler, data, judge, psi, range(heldout_seeds), language
    )
    ceiling = metrics["judge_ceiling"]
    metrics["gan_test_train_vs_ceiling"] = metrics["gan_test_train"] / ceiling if ceiling > 0 else None
    # identity: nearest real emoji (all of them) in judge features, cosine
    if "features" not in cache:
        cache["features"] = judge_features(judge, real128)
    real_feats = cache["features"]
    fake_feats = judge_features(judge, fake_train)
    top5 = nearest_real(fake_feats, real_feats)
    target = torch.from_numpy(train_idx).long()
    metrics["identity_top1"] = float((top5[:, 0] == target).float().mean())
    metrics["identity_top5"] = float((top5 == target[:, None]).any(1).float().mean())
    # the same with a base emoji counted as a hit for any of its skin-tone variants
    bases = torch.from_numpy(data.base.astype(np.int64))
    metrics["identity_top5_base"] = float((bases[top5] == bases[target][:, None]).any(1).float().mean())
    if upsampler is not None and upsampler_eval:
        # the metric's own ceiling: real 32 px renders of the same emoji through the upsampler
        real_up = torch.cat(
            [upsampler(real32[train_idx][i : i + 64]).float() for i in range(0, len(train_idx), 64)]
        )
        hits = (nearest_real(judge_features(judge, real_up), real_feats) == target[:, None]).any(1)
        metrics["identity_top5_real32"] = float(hits.float().mean())
    metrics["kid"] = kid(fake_feats, real_feats[torch.from_numpy(data.train_index)])
    # seed diversity
    prompts = rng.choice(data.train_index, min(diversity_prompts, len(data.train_index)), replace=False)
    diversities = []
    for i, emoji in enumerate(prompts):
        imgs = generate(
            generator, None, names[[int(emoji)] * 8], [1000 * i + s for s in range(8)], psi, upsample=False
        )
        diversities.append(mean_pairwise_rms(imgs))
    metrics["seed_diversity"] = float(np.mean(diversities))
    metrics["real_diversity"] = mean_pairwise_rms(real32[torch.from_numpy(prompts[:48])])
    metrics.update(keyword_metrics(generator, upsampler, data, judge, psi, real_feats, count=keywords))
    if upsampler_eval and upsampler is not None:
        metrics.update(evaluate_upsampler(upsampler, data, judge))
    return metrics


def shared_keywords(
    data, count: int = 50, min_emoji: int = 4, seed: int = 0, named: bool = False
) -> list[tuple[int, np.ndarray]]:
    """``count`` English captions that at least ``min_emoji`` emoji share as a keyword (CLDR keywords such as "cat"
    or "heart"), picked at random with a fixed seed: (a caption row, the emoji that carry it). ``named``: the emoji
    whose English name the keyword is carry it too ("star" is the name of ⭐ and a keyword of 26 others; "thumbs up"
    the name of the yellow 👍 and a keyword of its five skin tones). The keywords picked are the same either way;
    without ``named`` a picture of the named emoji is no hit (the metric as measured from v2 to v24)."""
    languages = data.caption_languages
    english = np.flatnonzero((languages == "en") & ~data.caption_is_name)
    texts = np.asarray(data.captions)[english]
    unique, inverse = np.unique(texts, return_inverse=True)
    owners: list[set[int]] = [set() for _ in unique]
    first = np.full(len(unique), -1)
    for text_id, row in zip(inverse, english):
        owners[text_id].add(int(data.caption_owner[row]))
        if first[text_id] < 0:
            first[text_id] = row
    wordy = [any(ch.isalpha() for ch in text) for text in unique]  # not "*" or "-1"
    shared = [i for i in range(len(unique)) if len(owners[i]) >= min_emoji and wordy[i]]
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(shared, min(count, len(shared)), replace=False)) if shared else []
    keywords = [(int(first[i]), np.array(sorted(owners[i]))) for i in picked]
    return with_named_carriers(data, keywords) if named else keywords


def with_named_carriers(data, keywords: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """``keywords`` (:func:`shared_keywords`) with each one's carriers joined by the emoji whose English name it is."""
    by_name: dict[str, list[int]] = {}
    for index, name in enumerate(data.names):
        by_name.setdefault(str(name), []).append(index)
    return [
        (row, np.union1d(owners, by_name.get(str(data.captions[row]), [])).astype(np.int64))
        for row, owners in keywords
    ]


@torch.no_grad()
def keyword_pictures(generator, upsampler, rows: torch.Tensor, seeds: Sequence[int], psi: float):
    """A keyword's draws as :func:`keyword_metrics` scores them: the 32 px drawings and the pictures shown (128 px
    through ``upsampler`` when there is one), one per (embedding row, seed)."""
    base = generate(generator, None, rows, seeds, psi, upsample=False)
    if upsampler is not None and _shows_more(generator):
        return base, generate(generator, upsampler, rows, seeds, psi)
    if upsampler is None:
        return base, base
    return base, torch.cat([upsampler(base[i : i + 64]).float() for i in range(0, len(base), 64)])


@torch.no_grad()
def keyword_metrics(
    generator,
    upsampler,
    data,
    judge,
    psi: float,
    real_feats: torch.Tensor,
    count: int = 50,
    seeds: int = 8,
    sefa_step: float = 3.0,
    encode=None,
    phrase: str = "{}",
) -> dict:
    """Seeds of prompts that fit several emoji should draw several of them. For ``count`` shared keywords,
    ``seeds`` seeds each: ``keyword_precision`` (share of seeds whose nearest real emoji in judge features
    carries the keyword), ``keyword_coverage`` (how many different such emoji the seeds hit, on average),
    both also as ``keyword_precision_named`` / ``keyword_coverage_named``, where the emoji the keyword names
    carries it too (:func:`shared_keywords` ``named``; the same pictures),
    ``keyword_rms`` (mean pairwise RMS between the seeds, 32 px) and ``sefa_rms`` (RMS between the renders
    at -3 and +3 along the strongest closed-form direction, seed 0 of each keyword). ``encode`` (texts ->
    embeddings) prompts a model whose encoder is not the dataset's; ``phrase`` (with ``encode``) words each
    keyword differently, e.g. "a {}" (precision still asks for an emoji that carries the keyword itself)."""
    from studio.engine.latents import closed_form_directions
    from studio.training.judge import judge_features

    keywords = shared_keywords(data, count)
    if not keywords:
        return {}
    named = with_named_carriers(data, keywords)
    if encode is None:
        embeddings = torch.from_numpy(data.caption_emb[[row for row, _ in keywords]].astype(np.float32))
    else:
        texts = [phrase.format(str(data.captions[row])) for row, _ in keywords]
        embeddings = torch.as_tensor(np.asarray(encode(texts), np.float32))
    rows = embeddings.repeat_interleave(seeds, 0)
    seed_list = [1000 * k + s for k in range(len(keywords)) for s in range(seeds)]
    base, shown = keyword_pictures(generator, upsampler, rows, seed_list, psi)
    sims = F.normalize(judge_features(judge, shown), dim=1) @ F.normalize(real_feats, dim=1).T
    nearest = sims.argmax(1).view(len(keywords), seeds).numpy()
    rms = [mean_pairwise_rms(base[k * seeds : (k + 1) * seeds]) for k in range(len(keywords))]
    precision, coverage = _keyword_hits(nearest, keywords)
    precision_named, coverage_named = _keyword_hits(nearest, named)
    direction = closed_form_directions(generator.z_weight(), 1)[0][0]
    z0 = latents([1000 * k for k in range(len(keywords))], generator.config.z_dim, psi)
    plus = generator(z0 + sefa_step * direction, embeddings)
    minus = generator(z0 - sefa_step * direction, embeddings)
    sefa = ((plus - minus) * 0.5).pow(2).flatten(1).mean(1).sqrt()
    return {
        "keywords": len(keywords),
        "keyword_precision": precision,
        "keyword_coverage": coverage,
        "keyword_rms": float(np.mean(rms)),
        "sefa_rms": float(sefa.mean()),
        "keyword_precision_named": precision_named,
        "keyword_coverage_named": coverage_named,
    }


def _keyword_hits(nearest: np.ndarray, keywords: list[tuple[int, np.ndarray]]) -> tuple[float, float]:
    """Precision and coverage of each keyword's seeds (rows of ``nearest``: each seed's nearest real emoji), averaged
    over the keywords: the share of seeds whose nearest emoji carries the keyword, and how many such emoji they hit."""
    precision, coverage = [], []
    for k, (_, owners) in enumerate(keywords):
        hits = np.isin(nearest[k], owners)
        precision.append(hits.mean())
        coverage.append(len(set(nearest[k][hits].tolist())))
    return float(np.mean(precision)), float(np.mean(coverage))


@torch.no_grad()
def evaluate_upsampler(upsampler, data, judge) -> dict:
    from studio.training.judge import judge_logits

    held = torch.from_numpy(data.heldout_index)
    real128 = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128[data.heldout_index]))
    real32 = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[data.heldout_index]))
    labels = torch.from_numpy(data.subgroup.astype(np.int64))[held]
    learned = torch.cat([upsampler(real32[i : i + 64]).float() for i in range(0, len(real32), 64)])
    bicubic = F.interpolate(real32, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
    return {
        "upsampler_psnr": psnr(learned, real128),
        "bicubic_psnr": psnr(bicubic, real128),
        "upsampler_judge_accuracy": float((judge_logits(judge, learned).argmax(1) == labels).float().mean()),
        "bicubic_judge_accuracy": float((judge_logits(judge, bicubic).argmax(1) == labels).float().mean()),
        "real128_judge_accuracy": float((judge_logits(judge, real128).argmax(1) == labels).float().mean()),
    }


SCORES_FILE = "scores.json"
SELECTION_KEY = "gan_test_heldout"


def score_snapshots(
    folder: Path,
    upsampler,
    data,
    judge,
    psi: float,
    limit: int = 600,
    heldout_seeds: int = 3,
    progress=print,
    judge_key: str = "",
) -> dict:
    """Score every ``g_ema_*.safetensors`` in a run's snapshot folder and pick the best by held-out GAN-test
    (ties: training GAN-test). Scores are kept in ``scores.json`` beside them, so a later call only scores
    the new snapshots; returns ``{"key", "best", "rows"}``."""
    from safetensors.torch import load_file

    from studio.models.cgan import BaseConfig, BaseGenerator

    folder = Path(folder)
    paths = sorted(folder.glob("g_ema_*.safetensors"))
    if not paths:
        raise EvaluateError(f"There are no g_ema_*.safetensors snapshots in '{folder}'.")
    config = BaseConfig.from_json(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    settings = {"psi": psi, "limit": limit, "heldout_seeds": heldout_seeds, "judge": judge_key}
    cache_path = folder / SCORES_FILE
    cached: dict = {}
    if cache_path.exists():
        previous = json.loads(cache_path.read_text(encoding="utf-8"))
        if previous.get("settings") == settings:
            cached = {row["file"]: row for row in previous.get("rows", [])}
    rows = []
    real_cache: dict = {}
    for path in paths:
        if path.name in cached:
            rows.append(cached[path.name])
            continue
        generator = BaseGenerator(config)
        generator.load_state_dict(load_file(str(path)))
        metrics = evaluate_model(
            generator.eval(),
            upsampler,
            data,
            judge,
            psi=psi,
            limit=limit,
            diversity_prompts=16,
            upsampler_eval=False,
            heldout_seeds=heldout_seeds,
            real_cache=real_cache,
        )
        keep = ("gan_test_heldout", "gan_test_train", "identity_top5", "identity_top5_base", "kid")
        row = {"file": path.name, "step": int(path.stem.rsplit("_", 1)[1])}
        extra = (
            "seed_diversity", "keyword_precision", "keyword_coverage", "keyword_rms", "sefa_rms",
            "keyword_precision_named", "keyword_coverage_named",
        )  # fmt: skip
        row.update({k: round(metrics[k], 4) for k in (*keep, *extra) if k in metrics})
        rows.append(row)
        progress(json.dumps(row))
    best = max(rows, key=lambda r: (r[SELECTION_KEY], r["gan_test_train"]))
    result = {"settings": settings, "key": SELECTION_KEY, "best": best, "rows": rows}
    write_atomically(cache_path, json.dumps(result, indent=2) + "\n")
    return result


def composite(images: torch.Tensor, background: int = BACKGROUND) -> np.ndarray:
    """Premultiplied RGBA in [-1, 1] -> N x H x W x 3 uint8 over a flat grey, from the same straight-alpha
    uint8 pixels the engine exports (so the grid shows exactly what a person gets)."""
    rgba = premultiplied_to_rgba_uint8(images).float() / 255.0
    alpha = rgba[..., 3:4]
    rgb = rgba[..., :3] * alpha + (1.0 - alpha) * (background / 255.0)
    return (rgb * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def drawn_generator(model):
    """The model's base generator as the studio draws prompts: through its fitted concept conditions
    (studio/models/concepts.py) when the folder ships them, else the weights alone."""
    from studio.models.concepts import ConceptConditioner, load_concepts
    from studio.models.vocabulary import load_vocabulary

    if model.info.conditioning.kind != "text":
        return model.generator
    vocabulary = load_vocabulary(model.info)
    table = load_concepts(model.info, vocabulary)
    if table is None:
        return model.generator
    conditioner = ConceptConditioner(model.generator, vocabulary, table)
    return ConceptGenerator(model.generator, conditioner, model.upsampler)


@torch.no_grad()
def sample_row(
    model,
    encoder,
    prompt: str,
    seeds: Sequence[int] = SAMPLE_SEEDS,
    psi: float | None = None,
    generator=None,
) -> np.ndarray:
    """One row of the sample grid: H x (len(seeds) * W) x 3 uint8 (``generator``: the model's as drawn)."""
    psi = model.info.default_truncation if psi is None else psi
    generator = drawn_generator(model) if generator is None else generator
    emb = torch.from_numpy(np.asarray(encoder.encode([prompt]), np.float32)).repeat(len(seeds), 1)
    images = generate(generator, model.upsampler, emb, seeds, psi)
    return np.concatenate(list(composite(images)), axis=1)


def write_samples(
    model, encoder, path: Path, prompts: Sequence[str] = SAMPLE_PROMPTS, seeds: Sequence[int] = SAMPLE_SEEDS
) -> Path:
    from PIL import Image

    generator = drawn_generator(model)
    rows = [sample_row(model, encoder, p, seeds, generator=generator) for p in prompts]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path


def run_evaluate(args) -> dict | None:
    """The ``gan-studio evaluate`` command."""
    from studio.models.format import load_model
    from studio.training.dataset import load_dataset, sha256_file
    from studio.training.judge import JUDGE_FILE, load_judge, save_judge, train_judge

    model = load_model(args.model)
    if getattr(args, "snapshots", None):
        data = load_dataset(args.data)
        judge_path = Path(args.judge) if args.judge else model.info.path / JUDGE_FILE
        if not judge_path.exists():
            raise EvaluateError(f"There is no judge at '{judge_path}'; pass one with --judge.")
        judge, _ = load_judge(judge_path)
        psi = model.info.default_truncation if args.psi is None else args.psi
        return score_snapshots(
            Path(args.snapshots),
            model.upsampler,
            data,
            judge,
            psi,
            limit=args.limit,
            progress=print,
            judge_key=sha256_file(judge_path)[:16],  # scores of another judge are not reused
        )
    spread = bool(getattr(args, "spread", False))  # score what the studio draws with spread on
    if spread and args.write_metrics:
        raise EvaluateError(
            "--spread scores what the studio draws, while model.json keeps the weights' own metrics; "
            "drop --write-metrics."
        )
    metrics = None
    if args.samples:
        from studio.models.text import get_text_encoder

        write_samples(model, get_text_encoder(model.info.conditioning.encoder), Path(args.samples))
        print(f"wrote {args.samples}")
    if args.no_metrics:
        return None
    data = load_dataset(args.data)
    encoded_with = data.manifest.get("encoder")
    if (
        encoded_with
        and model.info.conditioning.kind == "text"
        and encoded_with != model.info.conditioning.encoder
    ):
        raise EvaluateError(
            f"The dataset's captions were encoded with {encoded_with} but '{model.info.name}' reads "
            f"{model.info.conditioning.encoder}; build one with `gan-studio dataset build --encoder "
            f"{model.info.conditioning.encoder}`."
        )
    judge_path = Path(args.judge) if args.judge else model.info.path / JUDGE_FILE
    if args.train_judge or not judge_path.exists():
        if not args.train_judge:
            raise EvaluateError(
                f"There is no judge at '{judge_path}'; train one with `gan-studio evaluate --train-judge`."
            )
        judge, info = train_judge(data, minutes=args.judge_minutes)
        save_judge(judge, info, judge_path)
    judge, info = load_judge(judge_path)
    psi = model.info.default_truncation if args.psi is None else args.psi
    language = getattr(args, "language", "en") or "en"
    generator = drawn_generator(model)  # with the folder's concept conditions, as the studio draws names
    concepts = isinstance(generator, ConceptGenerator)
    if spread:
        from studio.engine.spread import Spreader
        from studio.models.vocabulary import load_vocabulary

        generator = SpreadGenerator(generator, Spreader(load_vocabulary(model.info)))
    metrics = evaluate_model(
        generator,
        model.upsampler,
        data,
        judge,
        psi=psi,
        language=language,
        upsampler_eval=language == "en",
    )
    if spread:
        metrics["spread"] = True  # what the studio draws, not the weights alone
    if concepts:
        metrics["concepts"] = True  # names drawn through the fitted concept conditions
    metrics["judge"] = {
        k: info.get(k) for k in ("steps", "minutes", "width", "train_accuracy", "heldout_accuracy")
    }
    metrics["dataset_sha256"] = data.manifest.get("sha256", "")
    if args.write_metrics:
        path = model.info.path / "model.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["metrics"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return metrics
