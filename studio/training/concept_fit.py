"""Fit a model's concept conditions (studio/models/concepts.py): per training emoji, the projected condition
that makes the frozen base generator draw that emoji's own 32 px render.

Adam on the conditions only, starting from ``embed_proj(English name)``; the loss is L1 on premultiplied RGBA
between the generator's drawing at fresh random z (``z_per_step`` per emoji per step, z ~ N(0, I) as psi 1
draws them) and the real render, summed over every training emoji per step (full batch), the learning rate
decaying on a cosine to 0; ``--discriminator`` adds a trainer's frozen ``-D(drawing, name)`` term, which keeps
the drawings from sliding to the smooth average picture that L1 alone rewards. Each stored condition moves
``--share`` of the way from ``embed_proj(name)`` to its fit. Held-out emoji are never fitted (they keep drawing
through ``embed_proj``), so held-out scores stay a test of what the model does with names it never saw. No
weight changes. Session 32's candidates and their scores are in the model's history (docs/model_history.md, *After v4, session 32*).

    python -m studio.training.concept_fit --model runs/emoji-concepts --data data/emoji-usem3-kw \
        --steps 100 --seed 1234 --bf16 --threads 2 --share 0.375 \
        --discriminator runs/v11/sdn/snapshots/d_0005524.safetensors

writes ``concepts.safetensors`` into the model folder (the vocabulary there must list the dataset's emoji).
``--feature-match W`` adds W times the gap between the critic's pooled features of the drawing and of the real
render (session 34: identity and realism rise together), ``--hole-weight W`` W times the drawings' small holes
beyond their real render's, ``--tear-weight W`` W times the same holes at 128 px (through the model's
upsampler, where the tear count sees them) beyond what the folder's current table draws; ``--rescale F``
moves an existing table F of the way back towards the projections instead of fitting, and ``--guard-against
TABLE`` (with it) guards each row against another table's row rather than the projection; ``--guard-tear PX``
also puts back a row that tears by more than PX pixels on ``--guard-tear-seeds`` of its seeds; ``--guard-ladder
S`` (repeatable) tries a failing row S of the way from where it would go back before putting it back;
``--guard-first-seed`` given twice pools two seed sets (a step must pass on both); ``--checkpoint FILE`` saves the
fit's state every 5 steps and, run again, resumes from it (a fit of hours outlives a stopped process).
``--add-full TABLE --full-margin PX --full-net-margin NET`` fits nothing either: it gives the folder's table TABLE's
rows (a fit kept at share 1 with no guard) as its second rows, whose picture the engine shows, its narrow dips filled
from the first rows' picture at the same z, wherever it opens no more than PX wide-dip pixels (15 px closing) where
the first rows' picture is solid and has no more than NET beyond the first's in all (studio/models/holes.py;
sessions 46–47); ``--screen-seeds K --screen-margin S`` keeps a row's second row only where, at each of K seeds of
its own, its picture is shown and opens at most S such pixels (with ``--screen-net-margin N``, and has at most N
beyond the first's in all; session 49); with ``--screen-detail F --data DATA``, and its picture keeps at least F
of the interior detail per px of the first row's picture or of the real emoji, whichever has less (session 51: a
drawing that blurs or blanks has no dips to count, yet the looks see it).
``--layered`` fits layered rows instead (one condition per place of the base that reads it, as StyleGAN's W+;
session 53), each from the folder's own row for a training emoji, guards them against those rows (``--guard``, with
the whole table's row numbers for seeds) and writes the rows the guard keeps into the folder's table as its layered
rows; its plain rows, gates and record stay as they are (studio/models/concepts.py). With it, ``--share S`` keeps each
row S of the way from its plain row, ``--keep-layers`` adds rows only for concepts without one (a lower rung), and
``--tear-weight W`` holds each row to the tears its plain row draws (session 56; ``--tear-where-solid``: counted only
where the real emoji is solid, session 57) and ``--detail-weight W`` to the interior detail its plain row draws at
each z (session 60). ``--screen-layers`` keeps only the layered rows that pass the
``--screen-*`` bars against their plain rows (``--screen-detail-own``: the detail floor on the plain row's own picture;
``--screen-mean-dips``: no more deep-dip px on average than the plain row's; ``--screen-edge F``: a mean alpha edge
length at least F times the plain row's, session 57; ``--screen-marks F``: at least F times the plain row's dark-mark
px at each seed; ``--screen-enclosed N``: at most N see-through px enclosed where the plain row is solid at each seed,
session 63; ``--screen-real-solid-dips``: no more deep-dip px where the real emoji is solid on average than the plain
row's, session 65), and ``--add-layers FOLDER`` joins another folder's layered rows
for the concepts without one (``--own-names-only``: drawn only for their own names, a prompt that borrows one taking
its plain row; sessions 55–56).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from studio.models.cgan import rgba_uint8_to_premultiplied
from studio.models.concepts import DEFAULT_HIGH, DEFAULT_LOW, ConceptConditions, save_concepts
from studio.models.holes import TEAR_CLOSING
from studio.training.runs import bf16_if_native, save_checkpoint

log = logging.getLogger(__name__)

STEPS = 100
LEARNING_RATE = 0.03
Z_PER_STEP = 2
ADV_WEIGHT = 0.25  # with --discriminator: v4's recipe ratio (adversarial 1 beside recon 4)
# with --discriminator: weight of the critic's feature matching, mean |h(drawing) - h(real)| over its pooled
# features; 0.872 makes the term equal the L1 term at v4's first step (session 34, rule 43)
FEATURE_MATCH = 0.0
# weight of the hole term: how far each drawing's small holes and notches at 32 px (base_stage.alpha_holes) lie
# above its own real render's, so a fit that reaches for detail the base cannot draw pays for the tears it makes
HOLE_WEIGHT = 0.0
# weight of the tear term: the same dips counted where the ship rules count them, at 128 px through the model's
# upsampler with a 7 px closing (GUARD_CLOSING), beyond what the table the fit replaces draws (session 38, rule 56)
TEAR_WEIGHT = 0.0
# the tear term's reference seeds: TEAR_SEED + TEAR_SEEDS x row + k, apart from the guard's 900M and 910M
TEAR_SEED = 920_000_000
TEAR_SEEDS = 4
CHECKPOINT_EVERY = 5  # with a checkpoint file: steps between saves of the fit's state
DETAIL_FLOOR = 1e-4  # the detail term divides by the start row's detail per px, never by less than this
SHARE = 0.5  # how far each stored condition moves from embed_proj(name) towards its fit
CHUNK = 512  # emoji per forward pass (the gradient is summed over every chunk before a step)
GUARD_SEED = 900_000_000  # the guard's seeds: GUARD_SEED + max(8, seeds) x row + k, far from any evaluation's
GUARD_SEEDS = 4  # draws per row and condition
GUARD_TEAR_SEEDS = 2  # with a tear (--guard-tear): on how many of a row's seeds it must tear to go back
FULL_MARGIN = 100.0  # --add-full: wide-dip px a second's filled picture may open where the first's is solid
FULL_NET_MARGIN = 300.0  # --add-full: and wide-dip px it may have beyond the first's in all
# --screen-seeds: a row's seeds are SCREEN_SEED + seeds x row + k, far from any evaluation's and the guard's
SCREEN_SEED = 940_000_000
GUARD_CLOSING = TEAR_CLOSING  # px of the 128 px closing, as the hearts gate counts (scripts/heart_check.py)


def fit_conditions(
    generator,
    images: torch.Tensor,
    start: torch.Tensor,
    steps: int = STEPS,
    lr: float = LEARNING_RATE,
    z_per_step: int = Z_PER_STEP,
    seed: int = 0,
    bf16: bool = False,
    on_step: Callable[[int, float], None] | None = None,
    discriminator=None,
    names: torch.Tensor | None = None,
    adv_weight: float = 0.0,
    feature_match: float = 0.0,
    hole_weight: float = 0.0,
    upsampler=None,
    tear_weight: float = 0.0,
    tear_limit: torch.Tensor | None = None,
    tear_solid: torch.Tensor | None = None,
    checkpoint: Path | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    detail_weight: float = 0.0,
) -> tuple[torch.Tensor, list[float]]:
    """Conditions (``N x cond_dim``, or layered ``N x places x cond_dim`` from a layered ``start``: one per place
    that reads them, :func:`layered`) that make ``generator`` (frozen) draw ``images`` (premultiplied RGBA at its
    resolution), from ``start``; and the mean L1 of each step (before its update). With a (frozen)
    ``discriminator`` the loss adds ``adv_weight`` times its mean ``-D(drawing, name)`` (``names``: each emoji's
    prompt embedding), which keeps the drawings from sliding to the smooth average picture L1 alone rewards,
    and ``feature_match`` times the mean absolute gap between the critic's pooled features of the drawing and
    of the real picture (what it looks at, rather than each pixel). ``hole_weight`` adds that times how far each
    drawing's share of small holes (:func:`studio.training.base_stage.alpha_holes`) lies above its real
    picture's (0 below it), the tears a fit makes when it reaches for detail the base cannot draw.
    ``tear_weight`` adds that times how far the drawing at each row's first z of a step lies above its
    ``tear_limit`` in the same dips measured at 128 px through the (frozen) ``upsampler`` with the tear count's
    7 px closing (:func:`tears_128`; the limits: :func:`tear_limits` of the table the fit replaces): where the
    upsampler turns a faint 32 px dip into a tear, which the 32 px term does not see (session 35, rule 49). One z
    per row, not all: at 128 px the term costs several times the rest of a step. ``tear_solid`` (a mask per
    picture, :func:`solid_masks`) counts those dips only where the real emoji is solid. ``detail_weight`` adds that
    times how far the interior detail per px of the same 128 px drawing falls short of what ``start``'s row draws at
    the same z, as a share of the latter (:func:`detail_128`; 0 at or above it): the detail the layered rows' screen
    holds each row to, which L1 towards a 32 px render smooths away. With ``checkpoint`` (a file
    path) the fit saves its state there every ``checkpoint_every`` steps and, where that file already holds the
    state of the same fit, goes on from it: a fit stopped part way ends as it would have uninterrupted."""
    from studio.training.base_stage import alpha_holes

    if steps < 1 or z_per_step < 1 or not lr > 0:
        raise ValueError("Fitting needs at least one step, one z per step and a positive learning rate.")
    generator.eval()
    for parameter in generator.parameters():
        parameter.requires_grad_(False)
    if feature_match and discriminator is None:
        raise ValueError("Feature matching needs a discriminator.")
    if discriminator is not None:
        discriminator.eval()
        for parameter in discriminator.parameters():
            parameter.requires_grad_(False)
        with torch.no_grad():
            real_features = torch.cat(
                [discriminator.features(images[i : i + CHUNK]).float() for i in range(0, len(images), CHUNK)]
            )
    real_holes = alpha_holes(images) if hole_weight else None
    if tear_weight:
        if upsampler is None or tear_limit is None or len(tear_limit) != len(images):
            raise ValueError("The tear term needs the model's upsampler and a tear limit per picture.")
        if tear_solid is not None and len(tear_solid) != len(images):
            raise ValueError("The tear term's solid masks need one per picture.")
    if detail_weight and upsampler is None:
        raise ValueError("The detail term needs the model's upsampler.")
    if tear_weight or detail_weight:
        upsampler.eval()
        for parameter in upsampler.parameters():
            parameter.requires_grad_(False)
    conditions = start.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([conditions], lr=lr)
    noise = torch.Generator().manual_seed(seed)
    z_dim, count = generator.config.z_dim, len(images)
    losses: list[float] = []
    recipe = {
        "steps": steps, "lr": lr, "z_per_step": z_per_step, "seed": seed, "bf16": bf16, "adv_weight": adv_weight,
        "feature_match": feature_match, "hole_weight": hole_weight, "tear_weight": tear_weight,
        "critic": discriminator is not None, "start": _digest(start), "images": _digest(images),
        "tear_limit": None if tear_limit is None else _digest(tear_limit),
        **({} if tear_solid is None else {"tear_solid": _digest(tear_solid)}),
        **({"detail_weight": detail_weight} if detail_weight else {}),  # absent at 0: older checkpoints resume
    }  # fmt: skip
    if checkpoint is not None and Path(checkpoint).exists():
        losses = _resume(Path(checkpoint), recipe, conditions, optimizer, noise)
    for step in range(len(losses), steps):
        for group in optimizer.param_groups:
            # a float, not numpy's: torch.load(weights_only=True) reads a checkpoint's optimizer state back
            group["lr"] = float(lr * 0.5 * (1 + np.cos(np.pi * step / steps)))
        optimizer.zero_grad()
        total = 0.0
        for first in range(0, count, CHUNK):
            rows = slice(first, min(first + CHUNK, count))
            chunk = tile(conditions[rows], z_per_step)
            z = torch.randn(len(chunk), z_dim, generator=noise)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                drawn = generator.synthesize(z, chunk)
                if discriminator is not None:
                    features = discriminator.features(drawn)
                    logits = discriminator.head(features, names[rows].repeat(z_per_step, 1))
            target = images[rows].repeat(z_per_step, 1, 1, 1)
            loss = (drawn.float() - target).abs().mean(dim=(1, 2, 3)).sum() / (count * z_per_step)
            total_loss = loss
            if discriminator is not None:
                total_loss = total_loss + adv_weight * (-logits.float().sum() / (count * z_per_step))
                if feature_match:
                    gap = (features.float() - real_features[rows].repeat(z_per_step, 1)).abs().mean(1)
                    total_loss = total_loss + feature_match * gap.sum() / (count * z_per_step)
            if hole_weight:
                excess = torch.relu(alpha_holes(drawn.float()) - real_holes[rows].repeat(z_per_step))
                total_loss = total_loss + hole_weight * excess.sum() / (count * z_per_step)
            if tear_weight or detail_weight:
                first = len(chunk) // z_per_step  # every row's first z (chunk repeats the rows)
                big = upscale_128(upsampler, drawn[:first], bf16)
            if tear_weight:
                solid = None if tear_solid is None else tear_solid[rows]
                excess = torch.relu(_tear_share(big, solid) - tear_limit[rows])
                total_loss = total_loss + tear_weight * excess.sum() / count
            if detail_weight:
                short = detail_shortfall(generator, upsampler, z[:first], start[rows], big, bf16)
                total_loss = total_loss + detail_weight * short.sum() / count
            total_loss.backward()
            total += float(loss.detach())
        optimizer.step()
        losses.append(total)
        if on_step is not None:
            on_step(step, total)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            _save_state(Path(checkpoint), recipe, conditions, optimizer, noise, losses)
    return conditions.detach(), losses


def tile(rows: torch.Tensor, times: int) -> torch.Tensor:
    """``rows`` (N x cond_dim, or N x places x cond_dim for layered rows) repeated ``times`` over, row after row."""
    return rows.repeat(times, *([1] * (rows.dim() - 1)))


def layered(rows: torch.Tensor, places: int) -> torch.Tensor:
    """Layered rows (N x places x cond_dim) that draw exactly what ``rows`` (N x cond_dim) draw: each row at every
    place (:meth:`studio.models.cgan.BaseGenerator.synthesize`), where a layered fit starts."""
    return rows[:, None, :].expand(-1, places, -1).clone()


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().float().contiguous().numpy().tobytes()).hexdigest()


def _save_state(path: Path, recipe: dict, conditions, optimizer, noise, losses: list[float]) -> None:
    """The fit's state after ``len(losses)`` steps, saved all at once (a fit killed while saving leaves the
    previous state whole: :func:`studio.training.runs.save_checkpoint`)."""
    state = {
        "recipe": json.dumps(recipe, sort_keys=True),
        "conditions": conditions.detach().clone(),
        "optimizer": optimizer.state_dict(),
        "noise": noise.get_state(),
        "losses": torch.tensor(losses, dtype=torch.float64),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, path)


def _resume(path: Path, recipe: dict, conditions, optimizer, noise) -> list[float]:
    """Load a state :func:`_save_state` wrote for the same ``recipe`` into the fit; its losses so far."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        same = state["recipe"] == json.dumps(recipe, sort_keys=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same sentence
        raise ValueError(f"The fit's checkpoint {path} cannot be read; delete it to start over.") from error
    if not same:
        raise ValueError(
            f"The fit's checkpoint {path} belongs to another fit (other settings, names or limits); "
            "delete it or give another path."
        )
    with torch.no_grad():
        conditions.copy_(state["conditions"])
    optimizer.load_state_dict(state["optimizer"])
    noise.set_state(state["noise"])
    log.info("Resumed the concept fit from %s at step %d", path, len(state["losses"]))
    return [float(loss) for loss in state["losses"]]


def tears_128(
    upsampler, images: torch.Tensor, bf16: bool = False, solid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per 32 px picture (premultiplied RGBA): :func:`studio.training.base_stage.alpha_holes` of its 4x upscale
    with the tear count's 7 px closing, the differentiable twin of the guard's deep-dip count. The upscale is
    clamped to [-1, 1] straight-through, so a hole whose alpha the upsampler drives below 0 still gets a
    gradient (a plain clamp passes none there). With ``solid`` (per picture a 1 x 128 x 128 mask, 1 where its
    real emoji is solid) only the dips inside the mask count: a hole where the real emoji has none, not a notch
    of an outline the real emoji has too (the twin of :func:`studio.models.holes.dips_where_solid`)."""
    return _tear_share(upscale_128(upsampler, images, bf16), solid)


def upscale_128(upsampler, images: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """The 4x upscale of 32 px pictures as float, clamped to [-1, 1] straight-through (:func:`tears_128`)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        big = upsampler(images, clamp=False)
    return clamp_straight_through(big)


def clamp_straight_through(big: torch.Tensor) -> torch.Tensor:
    """``big`` as float, clamped to [-1, 1] with the gradient of no clamp, so a hole whose alpha the upsampler drives
    below 0 still gets one (a plain clamp passes none there)."""
    big = big.float()
    return big + (big.clamp(-1.0, 1.0) - big).detach()


def _tear_share(big: torch.Tensor, solid: torch.Tensor | None) -> torch.Tensor:
    from studio.training.base_stage import alpha_holes

    if solid is None:
        return alpha_holes(big, GUARD_CLOSING)
    return alpha_holes(big, GUARD_CLOSING, per_pixel=True).mul(solid).mean(dim=(1, 2, 3))


def detail_128(big: torch.Tensor) -> torch.Tensor:
    """Per 128 px picture: its interior detail per px (:func:`studio.training.evaluate.picture_detail`'s first two
    parts; the layered rows' screen measures it so, :func:`detail_per_px`; 0 for a picture with no interior),
    differentiable in the picture's colour; the interior (where alpha stays solid under the erosion) is a mask, not a
    gradient path."""
    from studio.training.evaluate import detail_parts

    detail, interior, _ = detail_parts(big)
    return detail / interior.clamp(min=1.0)


def detail_shortfall(reference, upsampler, z, start: torch.Tensor, big: torch.Tensor, bf16: bool = False):
    """Per drawing (``big``: the 128 px upscale of what a fit draws at ``z``): how far its interior detail per px
    (:func:`detail_128`) falls below what ``reference`` (the frozen start weights) draws at the same ``z`` with the
    ``start`` rows, as a share of the latter (0 at or above it): the detail term of the layered fit and of the joint
    fit (studio/training/joint_fit.py), the measure the row choice's ``--detail`` guard reads, both pictures clamped as
    the guard sees them (straight-through, so an unclamped ``big`` keeps its gradient)."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        before = reference.synthesize(z, start.float())
    own = detail_128(upscale_128(upsampler, before, bf16)).detach()
    return torch.relu(own - detail_128(clamp_straight_through(big))) / own.clamp(min=DETAIL_FLOOR)


def solid_masks(images128: torch.Tensor) -> torch.Tensor:
    """Per real emoji (uint8 RGBA, N x 128 x 128 x 4): 1 where it is solid (alpha above one half), 0 elsewhere, as
    ``N x 1 x 128 x 128`` floats: where :func:`tears_128` counts dips with ``--tear-where-solid``."""
    return (images128[..., 3] > 127).float().unsqueeze(1)


@torch.no_grad()
def tear_limits(
    generator, upsampler, conditions: torch.Tensor, seeds: int = TEAR_SEEDS, first_seed: int = TEAR_SEED,
    batch: int = 128, solid: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Per row of ``conditions``: the largest :func:`tears_128` of its drawings at psi 1 on ``seeds`` seeds
    (``first_seed + seeds x row + k``), the most the fit's tear term lets that row's fit draw. The largest, not
    the mean: a row's tears come and go with z, and at its mean the term would bite on half the seeds of the
    very row it holds the fit to (session 38). With ``solid`` (a mask per row, :func:`solid_masks`), counted
    only where the row's real emoji is solid, as the fit then counts them."""
    from studio.training.evaluate import latents

    seed_list = [first_seed + seeds * row + k for row in range(len(conditions)) for k in range(seeds)]
    z = latents(seed_list, generator.config.z_dim, 1.0)
    rows = conditions.float().repeat_interleave(seeds, 0)
    masks = None if solid is None else solid.repeat_interleave(seeds, 0)
    shares = [
        tears_128(
            upsampler,
            generator.synthesize(z[i : i + batch], rows[i : i + batch]),
            solid=None if masks is None else masks[i : i + batch],
        )
        for i in range(0, len(z), batch)
    ]
    return torch.cat(shares).reshape(len(conditions), seeds).amax(1)


@torch.no_grad()
def guard_conditions(
    generator,
    upsampler,
    start: torch.Tensor,
    conditions: torch.Tensor,
    margin: float,
    seeds: int = GUARD_SEEDS,
    first_seed: int | tuple[int, ...] = GUARD_SEED,
    batch: int = 128,
    tear: float | None = None,
    tear_seeds: int = GUARD_TEAR_SEEDS,
    ladder: tuple[float, ...] = (),
    row_numbers: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """``conditions`` with every row that draws more holes than its ``start`` put back to ``start``, and a report.

    Per row, ``seeds`` drawings at psi 1 (seeds ``first_seed + max(8, seeds) x row + k``) at both conditions, upsampled (when
    ``upsampler`` is given) and counted with :func:`studio.training.base_stage.deep_dips`; a row whose mean exceeds
    the start's by more than ``margin`` pixels is reverted. A fit that reaches for detail the base cannot draw (a
    real emoji's thin motion arcs) draws it as tears; this keeps that row's picture as the name's projection draws
    it. With ``tear``, a row also goes back where on ``tear_seeds`` or more of its seeds it draws more than ``tear``
    pixels beyond the start at the same seed: a tear that comes and goes with z, which a mean over seeds hides
    (session 34's anatomical heart). With a ``ladder`` of fractions (each in (0, 1), tried largest first), a row
    that fails is tried again at each fraction of the way from its start to its condition, on the same seeds and
    by the same test, and keeps the first that passes instead of going all the way back. Several ``first_seed``
    pool seed sets: every step is drawn on each set, and a row keeps a step only where it passes on every set
    (the mean margin and the tear count are each taken per set). ``row_numbers``: each row's number in the seeds'
    formula (by default its position), so a part of a table is guarded on the seeds the whole table's guard gives
    it."""
    from studio.models.holes import deep_dips
    from studio.training.evaluate import latents

    if not 1 <= seeds <= 64:
        raise ValueError("The guard draws 1 to 64 seeds per row.")
    if any(not 0 < step < 1 for step in ladder):
        raise ValueError("Each step of the guard's ladder must lie strictly between 0 and 1.")
    firsts = (first_seed,) if isinstance(first_seed, int) else tuple(first_seed)
    if not firsts:
        raise ValueError("The guard needs at least one seed set.")
    count, stride, sets = len(conditions), max(8, seeds), len(firsts)
    start, conditions = start.float(), conditions.float()
    numbers = torch.arange(count) if row_numbers is None else torch.as_tensor(row_numbers).long()
    if numbers.shape != (count,):
        raise ValueError("The guard needs one row number per condition.")

    def count_dips(rows: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Deep-dip pixels of ``rows`` (one per index in ``which``) on those rows' own seeds of every set:
        (len, sets, seeds)."""
        counts, local = [], np.repeat(np.arange(len(which)), seeds)
        for base in firsts:
            seed_list = [base + stride * int(numbers[r]) + k for r in which.numpy() for k in range(seeds)]
            z = latents(seed_list, generator.config.z_dim, 1.0)
            for first in range(0, len(z), batch):
                drawn = generator.synthesize(z[first : first + batch], rows[local[first : first + batch]])
                if upsampler is not None:
                    drawn = upsampler(drawn)
                counts.append(deep_dips(drawn.float(), GUARD_CLOSING).float())
        if not counts:
            return torch.zeros(0, sets, seeds)
        return torch.cat(counts).reshape(sets, len(which), seeds).transpose(0, 1)

    def fails(stored: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        by_mean = (stored.mean(2) > reference.mean(2) + margin).any(1)
        by_tears = torch.zeros(len(stored), dtype=torch.bool)
        if tear is not None:
            by_tears = (((stored - reference) > tear).sum(2) >= tear_seeds).any(1)
        return by_mean, by_tears

    everyone = torch.arange(count)
    dips = {"start": count_dips(start, everyone), "stored": count_dips(conditions, everyone)}
    by_mean, by_tears = fails(dips["stored"], dips["start"])
    revert = by_mean | by_tears
    per_row = (-1,) + (1,) * (conditions.dim() - 1)  # a row's mask over every place of a layered row too
    guarded = torch.where(revert.view(per_row), start, conditions)
    guarded_dips = torch.where(revert[:, None, None], dips["start"], dips["stored"])
    kept_at = {}
    for step in sorted(ladder, reverse=True):
        which = torch.nonzero(revert).flatten()
        if not len(which):
            break
        rows = start[which] + step * (conditions[which] - start[which])
        tried = count_dips(rows, which)
        passes = ~torch.logical_or(*fails(tried, dips["start"][which]))
        guarded[which[passes]] = rows[passes]
        guarded_dips[which[passes]] = tried[passes]
        revert[which[passes]] = False
        kept_at[f"{step:g}"] = int(passes.sum())
    report = {
        "margin": margin,
        "seeds": seeds,
        "first_seed": firsts[0] if sets == 1 else list(firsts),
        "reverted": int(revert.sum()),
        "tear": tear,
        "tear_seeds": tear_seeds if tear is not None else None,
        "reverted_by_tears_only": int((by_tears & ~by_mean).sum()),
        "dips_start": round(float(dips["start"].mean()), 2),
        "dips_stored": round(float(dips["stored"].mean()), 2),
        "dips_guarded": round(float(guarded_dips.mean()), 2),
    }
    if ladder:
        report["ladder"] = kept_at  # rows kept at each step (they count in no other field but dips_guarded)
    return guarded, report


def load_critic(path: Path, embed_dim: int):
    """The conventional projection discriminator of a trainer's ``d_*.safetensors`` snapshot (its width read
    from the weights), for the fit's adversarial term."""
    from studio.training.networks import ProjectionDiscriminator
    from studio.training.options import TrainError
    from studio.training.runs import read_weights

    state = {k.removeprefix("conv."): v for k, v in read_weights(path).items() if k.startswith("conv.")}
    if "blocks.0.conv1.bias" not in state:
        raise TrainError(f"'{path}' holds no conventional discriminator.")
    critic = ProjectionDiscriminator(ch=int(state["blocks.0.conv1.bias"].shape[0]), embed_dim=embed_dim)
    try:
        critic.load_state_dict(state)
    except RuntimeError as exc:
        raise TrainError(
            f"The discriminator in '{path}' does not fit this model's prompt embeddings."
        ) from exc
    return critic


def _model_and_names(model: str | Path, data_folder: str | Path):
    """The model folder, its vocabulary, the dataset (checked against it), the training emoji's English name
    embeddings and their projections ``embed_proj(name)`` (where every fit starts)."""
    from studio.models.format import ModelError, load_model
    from studio.models.vocabulary import load_vocabulary
    from studio.training.dataset import load_dataset

    loaded = load_model(model)
    if loaded.info.conditioning.kind != "text":
        raise ModelError("Concept conditions are for text models; this one is conditioned on classes.")
    vocabulary = load_vocabulary(loaded.info)
    data = load_dataset(data_folder)
    if vocabulary is None or vocabulary.names != data.names:
        raise ModelError(
            f"The vocabulary of '{loaded.info.name}' does not list the dataset's emoji in the dataset's order."
        )
    names = torch.from_numpy(data.name_embeddings("en")[data.train_index])
    with torch.no_grad():
        start = loaded.generator.condition(names).float()
    return loaded, vocabulary, data, names, start


def _fit_inputs(model: str | Path, data_folder: str | Path, discriminator, feature_match: float):
    """What a fit of the folder's conditions starts from: :func:`_model_and_names`, the training emoji's pictures
    (premultiplied, at the generator's resolution) and the critic of ``discriminator`` (None without one)."""
    from studio.models.format import ModelError

    if feature_match and discriminator is None:
        raise ModelError("Feature matching compares the critic's features: give --discriminator as well.")
    loaded, vocabulary, data, names, start = _model_and_names(model, data_folder)
    images = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[data.train_index]))
    if images.shape[-1] != loaded.generator.config.resolution:
        raise ModelError("The dataset's small renders are not the generator's resolution.")
    critic = None if discriminator is None else load_critic(Path(discriminator), names.shape[1])
    return loaded, vocabulary, data, names, start, images, critic


def rescale_model_concepts(
    model: str | Path,
    data_folder: str | Path,
    factor: float,
    guard: float | None = None,
    guard_seeds: int = GUARD_SEEDS,
    guard_first_seed: int | tuple[int, ...] = GUARD_SEED,
    reference: str | Path | None = None,
    guard_tear: float | None = None,
    guard_tear_seeds: int = GUARD_TEAR_SEEDS,
    guard_ladder: tuple[float, ...] = (),
) -> dict:
    """Move every row of the folder's table ``factor`` of the way from ``embed_proj(name)`` to where it is now
    (rows at their projection stay there), guard the result as :func:`fit_model_concepts` does, and write it
    back; returns the report (the table's earlier metadata kept beside it). With ``reference`` (another
    ``concepts.safetensors`` for the same vocabulary, e.g. the shipped one) the guard compares each row with
    that table's row and puts it back there instead of to the projection."""
    from studio.models.concepts import CONCEPTS_FILE, concepts_metadata, load_concepts, read_concepts
    from studio.models.format import ModelError

    if not 0 < factor <= 1:
        raise ModelError("The factor to rescale by must lie in (0, 1].")
    loaded, vocabulary, data, _, start = _model_and_names(model, data_folder)
    table = load_concepts(loaded.info, vocabulary)
    if table is None:
        raise ModelError(f"'{loaded.info.name}' has no concept table to rescale.")
    metadata = concepts_metadata(loaded.info.path / CONCEPTS_FILE)
    train = data.train_index
    now = torch.from_numpy(table.conditions[train])
    stored = start + factor * (now - start)
    guard_report = None
    if guard is not None:
        against = start
        if reference is not None:
            other = read_concepts(Path(reference))
            if other.conditions.shape != table.conditions.shape:
                raise ModelError(f"The table '{reference}' is not for this model's concepts.")
            against = torch.from_numpy(other.conditions[train])
        stored, guard_report = guard_conditions(
            loaded.generator, loaded.upsampler, against, stored, guard, guard_seeds, guard_first_seed,
            tear=guard_tear, tear_seeds=guard_tear_seeds, ladder=guard_ladder,
        )  # fmt: skip
        guard_report["against"] = "projection" if reference is None else str(reference)
    conditions = table.conditions.copy()
    conditions[train] = stored.numpy()
    report = {"factor": factor, "guard": guard_report, "dataset_sha256": data.manifest.get("sha256", "")}
    metadata["rescale"] = json.dumps(report)
    save_concepts(loaded.info.path, replace(table, conditions=conditions), metadata)
    return report


def fit_model_concepts(
    model: str | Path,
    data_folder: str | Path,
    steps: int = STEPS,
    lr: float = LEARNING_RATE,
    z_per_step: int = Z_PER_STEP,
    seed: int = 0,
    bf16: bool = False,
    quiet: bool = False,
    share: float = SHARE,
    discriminator: str | Path | None = None,
    adv_weight: float = ADV_WEIGHT,
    guard: float | None = None,
    feature_match: float = FEATURE_MATCH,
    guard_seeds: int = GUARD_SEEDS,
    guard_first_seed: int | tuple[int, ...] = GUARD_SEED,
    hole_weight: float = HOLE_WEIGHT,
    guard_tear: float | None = None,
    guard_tear_seeds: int = GUARD_TEAR_SEEDS,
    guard_ladder: tuple[float, ...] = (),
    tear_weight: float = TEAR_WEIGHT,
    checkpoint: str | Path | None = None,
) -> dict:
    """Fit the conditions of ``data_folder``'s training emoji for the model folder ``model`` and write its
    ``concepts.safetensors``, each condition moved ``share`` of the way from ``embed_proj(name)`` to its fit
    (with ``guard``, rows that draw more than that many extra hole pixels go back: :func:`guard_conditions`);
    returns the report (also stored in the file's metadata). ``tear_weight`` holds each row's fit to the tears
    the folder's current table draws for it (the projection's where the folder has none): :func:`tear_limits`.
    ``checkpoint``: a file the fit saves its state to as it goes and resumes from (:func:`fit_conditions`)."""
    from studio.models.concepts import load_concepts
    from studio.models.format import ModelError

    if not 0 < share <= 1:
        raise ModelError("The share of the fit to keep must lie in (0, 1].")
    if hole_weight < 0 or tear_weight < 0:
        which, weight = ("hole", hole_weight) if hole_weight < 0 else ("tear", tear_weight)
        raise ModelError(f"The {which} term's weight must be 0 or more (got {weight}).")
    loaded, vocabulary, data, names, start, images, critic = _fit_inputs(
        model, data_folder, discriminator, feature_match
    )
    generator, train = loaded.generator, data.train_index
    started = time.time()
    report_step = _step_printer(steps, started, quiet)
    limits, tear_reference = None, None
    if tear_weight:
        replaced = load_concepts(loaded.info, vocabulary)
        reference, tear_reference = start, "projection"
        if replaced is not None:
            own = torch.from_numpy(replaced.fitted[train])[:, None]
            reference = torch.where(own, torch.from_numpy(replaced.conditions[train]), start)
            tear_reference = "table"
        limits = tear_limits(generator, loaded.upsampler, reference)
    fitted, losses = fit_conditions(
        generator,
        images,
        start,
        steps,
        lr,
        z_per_step,
        seed,
        bf16,
        report_step,
        critic,
        names,
        adv_weight,
        feature_match,
        hole_weight,
        upsampler=loaded.upsampler,
        tear_weight=tear_weight,
        tear_limit=limits,
        checkpoint=None if checkpoint is None else Path(checkpoint),
    )
    stored = start + share * (fitted - start)
    guard_report = None
    if guard is not None:
        stored, guard_report = guard_conditions(
            generator, loaded.upsampler, start, stored, guard, guard_seeds, guard_first_seed,
            tear=guard_tear, tear_seeds=guard_tear_seeds, ladder=guard_ladder,
        )  # fmt: skip
    conditions = np.zeros((len(data.names), generator.config.cond_dim), np.float32)
    conditions[train] = stored.numpy()
    mask = np.zeros(len(data.names), bool)
    mask[train] = True
    report = {
        "steps": steps,
        "lr": lr,
        "z_per_step": z_per_step,
        "seed": seed,
        "bf16": bf16,
        "share": share,
        "discriminator": None if discriminator is None else str(discriminator),
        "adv_weight": adv_weight if discriminator is not None else 0.0,
        "feature_match": feature_match if discriminator is not None else 0.0,
        "hole_weight": hole_weight,
        "tear_weight": tear_weight,
        "tear_reference": tear_reference,
        "fitted": int(mask.sum()),
        "l1_first": round(losses[0], 4),
        "l1_last": round(losses[-1], 4),
        "moved": round(float((fitted - start).norm(dim=1).mean() / start.norm(dim=1).mean()), 4),
        "guard": guard_report,
        "minutes": round((time.time() - started) / 60, 1),
        "dataset_sha256": data.manifest.get("sha256", ""),
    }
    table = ConceptConditions(conditions, mask, DEFAULT_LOW, DEFAULT_HIGH)
    save_concepts(loaded.info.path, table, {"fit": json.dumps(report)})
    return report


def _step_printer(steps: int, started: float, quiet: bool) -> Callable[[int, float], None]:
    """What a fit calls each step: print the loss every 10 steps and at the last (nothing when ``quiet``)."""

    def report_step(step: int, loss: float) -> None:
        if not quiet and (step % 10 == 0 or step == steps - 1):
            print(
                json.dumps({"step": step, "l1": round(loss, 4), "s": round(time.time() - started)}),
                flush=True,
            )

    return report_step


def fit_layered_rows(
    model: str | Path,
    data_folder: str | Path,
    steps: int = STEPS,
    lr: float = LEARNING_RATE,
    z_per_step: int = Z_PER_STEP,
    seed: int = 0,
    bf16: bool = False,
    quiet: bool = False,
    discriminator: str | Path | None = None,
    feature_match: float = FEATURE_MATCH,
    guard: float | None = None,
    guard_seeds: int = GUARD_SEEDS,
    guard_first_seed: int | tuple[int, ...] = GUARD_SEED,
    guard_tear: float | None = None,
    guard_tear_seeds: int = GUARD_TEAR_SEEDS,
    checkpoint: str | Path | None = None,
    share: float = 1.0,
    keep_layers: bool = False,
    tear_weight: float = 0.0,
    tear_where_solid: bool = False,
    detail_weight: float = 0.0,
) -> dict:
    """Fit layered rows (:func:`layered`: one condition per place of the base) for the folder's table, each from the
    table's own row of a training emoji and kept ``share`` of the way from it (1: whole), guard them against those rows
    (with ``guard``; the seeds of each row's number in the whole table), and write the rows that differ from where they
    started into the folder's ``concepts.safetensors`` as its layered rows (studio/models/concepts.py); its plain rows,
    gates and earlier record stay. With ``keep_layers`` the table's layered rows stay and the fit adds rows only for
    the concepts without one (a lower rung of a ladder: a smaller share where the whole row failed a screen); else
    they are replaced. ``tear_weight`` holds each row's fit to the tears its plain row draws (:func:`tear_limits`
    of the plain rows, :func:`fit_conditions`' tear term at 128 px), so the fit pays for the holes it opens as it
    moves rather than only being screened for them afterwards; with ``tear_where_solid`` the term counts only the
    dips where the row's real emoji is solid (:func:`solid_masks`), so an outline may keep the notches its real
    emoji has (session 57: counted everywhere, the term smoothed outlines). ``detail_weight`` holds each row's
    interior detail per px at 128 px to what its plain row draws at the same z (:func:`fit_conditions`' detail term),
    the screen's detail floor paid for as the fit moves (session 59: 505 of 897 screened-out whole rows lost detail).
    Returns the report (also in the file's metadata under ``layers``)."""
    from studio.models.concepts import CONCEPTS_FILE, concepts_metadata, load_concepts
    from studio.models.format import ModelError

    loaded, vocabulary, data, names, _, images, critic = _fit_inputs(
        model, data_folder, discriminator, feature_match
    )
    table = load_concepts(loaded.info, vocabulary)
    train = data.train_index
    if table is None or not table.fitted[train].all():
        raise ModelError(
            f"Layered rows start from the table's own rows: '{loaded.info.name}' needs a table fitted for every "
            "training emoji first."
        )
    if not 0.0 < share <= 1.0:
        raise ModelError("A layered row's share lies in (0, 1].")
    if not tear_weight >= 0:
        raise ModelError(f"The tear term's weight must be 0 or more (got {tear_weight}).")
    if tear_where_solid and not tear_weight:
        raise ModelError(
            "Counting tears where the real emoji is solid needs the tear term (a tear weight above 0)."
        )
    if not detail_weight >= 0:
        raise ModelError(f"The detail term's weight must be 0 or more (got {detail_weight}).")
    generator = loaded.generator
    started = time.time()
    begin = layered(torch.from_numpy(table.conditions[train]).float(), generator.places)
    solid = solid_masks(torch.from_numpy(data.images128[train])) if tear_where_solid else None
    limits = tear_limits(generator, loaded.upsampler, begin, solid=solid) if tear_weight else None
    fitted, losses = fit_conditions(
        generator, images, begin, steps, lr, z_per_step, seed, bf16, _step_printer(steps, started, quiet),
        critic, names, 0.0, feature_match if critic is not None else 0.0,
        upsampler=loaded.upsampler if tear_weight or detail_weight else None, tear_weight=tear_weight,
        tear_limit=limits, tear_solid=solid, checkpoint=None if checkpoint is None else Path(checkpoint),
        detail_weight=detail_weight,
    )  # fmt: skip
    if share != 1.0:  # a whole row stays bit for bit the fit's
        fitted = torch.lerp(begin, fitted, share)
    guard_report = None
    if guard is not None:
        fitted, guard_report = guard_conditions(
            generator, loaded.upsampler, begin, fitted, guard, guard_seeds, guard_first_seed,
            tear=guard_tear, tear_seeds=guard_tear_seeds, row_numbers=torch.from_numpy(train),
        )  # fmt: skip
    kept = (fitted != begin).flatten(1).any(dim=1).numpy()
    earlier = table.layered if keep_layers and table.layered is not None else np.zeros(0, np.int64)
    kept &= ~np.isin(train, earlier)  # a concept with a layered row keeps it
    report = {
        "steps": steps,
        "lr": lr,
        "z_per_step": z_per_step,
        "seed": seed,
        "bf16": bf16,
        "places": generator.places,
        "discriminator": None if discriminator is None else str(discriminator),
        "feature_match": feature_match if discriminator is not None else 0.0,
        "fitted": len(train),
        "share": share,
        **({"tear_weight": tear_weight} if tear_weight else {}),
        **({"tear_where_solid": True} if tear_where_solid else {}),
        **({"detail_weight": detail_weight} if detail_weight else {}),
        "kept": int(kept.sum()),
        "l1_first": round(losses[0], 4),
        "l1_last": round(losses[-1], 4),
        "guard": guard_report,
        "minutes": round((time.time() - started) / 60, 1),
        "dataset_sha256": data.manifest.get("sha256", ""),
    }
    metadata = concepts_metadata(loaded.info.path / CONCEPTS_FILE)
    if len(earlier):  # the rows kept, with the records of the fit and screen that made them
        report["kept_layers"] = len(earlier)
        report["earlier"] = {
            key: json.loads(metadata[key]) for key in ("layers", "layers_screen") if key in metadata
        }
    metadata["layers"] = json.dumps(report)
    rows = np.ascontiguousarray(fitted[torch.from_numpy(kept)].numpy(), np.float32)
    base = table if len(earlier) else replace(table, layers=None, layered=None, lent=None)
    save_concepts(loaded.info.path, _with_layers(base, rows, train[kept]), metadata)
    return report


def _with_layers(table, rows: np.ndarray, numbers: np.ndarray, lent: bool = True):
    """``table`` with the layered rows ``rows`` of the concepts ``numbers`` joined to its own, in row-number order
    (none at all: a table without layered rows); the joined rows are lent to prompts that borrow them, or (``lent``
    False) drawn only for their own names (studio/models/concepts.py ``lent``)."""
    numbers = np.asarray(numbers, np.int64)
    flags = np.full(len(numbers), lent)
    if table.layers is not None:
        earlier = np.ones(len(table.layered), bool) if table.lent is None else table.lent
        rows, numbers = np.concatenate([table.layers, rows]), np.concatenate([table.layered, numbers])
        flags = np.concatenate([earlier, flags])
    if not len(numbers):
        return replace(table, layers=None, layered=None, lent=None)
    order = np.argsort(numbers, kind="stable")
    return replace(
        table,
        layers=np.ascontiguousarray(rows[order], np.float32),
        layered=numbers[order],
        lent=flags[order],  # save_concepts writes no flags when every row is lent
    )


def add_full_rows(
    model: str | Path,
    source: str | Path,
    margin: float = FULL_MARGIN,
    net_margin: float = FULL_NET_MARGIN,
    screen_seeds: int = 0,
    screen_margin: float = 0.0,
    screen_net_margin: float = float("inf"),
    screen_detail: float = 0.0,
    data: str | Path | None = None,
) -> dict:
    """Give the folder's concept table the rows of ``source`` (another table for the same vocabulary, e.g. a fit
    kept at share 1 with no guard) as its second rows (studio/models/concepts.py ``full``), shown wherever their
    picture, its narrow dips filled from the first rows', opens no more than ``margin`` wide-dip pixels where the
    first rows' picture is solid and no more than ``net_margin`` beyond the first rows' picture in all
    (studio/models/holes.py ``second_or_first``); every other tensor and metadata value is kept. With
    ``screen_seeds`` K, each row is first drawn both ways at K seeds of its own (:func:`screen_full_rows`) and keeps
    no second row (it draws as the first) unless, at every one, its second's picture is shown and opens no more than
    ``screen_margin`` wide-dip pixels where the first's is solid (and, with ``screen_net_margin``, has no more than
    that many beyond the first's in all): whether a fit's drawing tears depends on z, but a row that tears at one
    seed tears at others more often than not (session 49). With ``screen_detail`` F > 0 (and the dataset ``data``),
    the shown picture must also keep at least F of the interior detail per px (studio/training/evaluate.py
    ``picture_detail``) of the first row's picture or of the real emoji, whichever has less: a second drawing may
    clean up the first's scribbles down to the real emoji's detail, not blur below it. Returns the record also
    stored in the file's metadata (``full``)."""
    from studio.models.concepts import CONCEPTS_FILE, concepts_metadata, read_concepts
    from studio.models.format import ModelError

    if not (np.isfinite(margin) and margin >= 0 and net_margin >= 0):  # NaN fails every comparison
        raise ModelError("The second rows' margins must be 0 or more pixels.")
    path = Path(model) / CONCEPTS_FILE
    table, rows = read_concepts(path), read_concepts(Path(source))
    if rows.conditions.shape != table.conditions.shape or not np.array_equal(rows.fitted, table.fitted):
        raise ModelError(
            "The second rows must come from a table of the same concepts, fitted on the same emoji."
        )
    if screen_seeds < 0 or not (np.isfinite(screen_margin) and screen_margin >= 0 and screen_net_margin >= 0):
        raise ModelError("The second rows' screen takes 0 or more seeds and a margin of 0 or more pixels.")
    if not 0.0 <= screen_detail <= 1.0 or (screen_detail > 0 and (not screen_seeds or data is None)):
        raise ModelError("The screen's detail floor lies in [0, 1] and needs --screen-seeds and the dataset.")
    real_detail = None
    if screen_detail > 0:
        real_detail = _real_detail(Path(model), data)
    keep = table.fitted.copy()
    if screen_seeds:
        keep &= screen_full_rows(
            Path(model),
            table.conditions,
            rows.conditions,
            margin,
            net_margin,
            screen_seeds,
            screen_margin,
            screen_net_margin,
            screen_detail=screen_detail,
            real_detail=real_detail,
        )
    full = np.where(keep[:, None], rows.conditions, table.conditions).astype(np.float32)
    source_meta = concepts_metadata(Path(source))
    record = {
        "margin": float(margin),
        "net_margin": float(net_margin),
        "source_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
        "source_fit": json.loads(source_meta["fit"]) if "fit" in source_meta else None,
        "rows": int(keep.sum()),
    }
    if screen_seeds:
        record.update(
            screen_seeds=int(screen_seeds),
            screen_margin=float(screen_margin),
            screened=int(table.fitted.sum()),
        )
        if np.isfinite(screen_net_margin):
            record["screen_net_margin"] = float(screen_net_margin)
        if screen_detail > 0:
            record["screen_detail"] = float(screen_detail)
    metadata = {**concepts_metadata(path), "full": json.dumps(record)}
    updated = replace(table, full=full, full_margin=float(margin), full_net_margin=float(net_margin))
    save_concepts(Path(model), updated, metadata)
    return record


def screen_layered_rows(
    model: str | Path,
    seeds: int,
    screen_margin: float,
    screen_net_margin: float = float("inf"),
    screen_detail: float = 0.0,
    data: str | Path | None = None,
    detail_own: bool = False,
    mean_dips: bool = False,
    edge: float = 0.0,
    marks: float = 0.0,
    enclosed: float = float("inf"),
    real_solid_dips: bool = False,
) -> dict:
    """Keep only the layered rows of the folder's table (``fit_layered_rows``) whose picture, at each of ``seeds``
    seeds of the row's own, covers half the plain row's alpha, opens no more than ``screen_margin`` wide-dip pixels where
    the plain row's picture is solid, has no more than ``screen_net_margin`` beyond it in all and (``screen_detail``
    > 0, with the dataset ``data``) keeps that share of the plain row's or the real emoji's interior detail per px,
    whichever is less (:func:`screen_full_rows`, the second rows' screen), or with ``detail_own`` of the plain row's
    own (a flat icon's marks kept even where the real emoji has less detail), and (``mean_dips``) whose pictures have
    no more deep-dip px on average over those seeds than the plain row's (a row may not add a few holes at every
    seed), and (``edge`` > 0) whose pictures' mean alpha edge length over those seeds is at least ``edge`` times the
    plain row's (an outline kept, not smoothed), and (``marks`` > 0) whose pictures keep at each seed at least that
    share of the plain row's dark-mark px (eyes, mouths, flecks: ``evaluate.dark_marks``), and (``enclosed``
    finite) whose pictures have at each seed no more than that many see-through px enclosed where the plain row's is
    solid (``holes.enclosed_where_solid``), and (``real_solid_dips``, with the dataset ``data``) whose pictures have
    no more deep-dip px where the real emoji is solid on average over those seeds than the plain row's (rows_verify's
    ``holes_where_real_solid``, the ship rules' bar since rule 119); the rest draw their plain rows again. Returns
    the record also stored in the file's metadata (``layers_screen``)."""
    from studio.models.concepts import CONCEPTS_FILE, concepts_metadata, read_concepts
    from studio.models.format import ModelError

    path = Path(model) / CONCEPTS_FILE
    table = read_concepts(path) if path.is_file() else None
    if table is None or table.layers is None:
        raise ModelError(f"'{model}' has no layered rows to screen; fit them with --layered first.")
    if seeds < 1 or not (np.isfinite(screen_margin) and screen_margin >= 0 and screen_net_margin >= 0):
        raise ModelError("The layered rows' screen takes 1 or more seeds and a margin of 0 or more pixels.")
    if not 0.0 <= screen_detail <= 1.0 or (screen_detail > 0 and data is None and not detail_own):
        raise ModelError("The screen's detail floor lies in [0, 1] and needs the dataset.")
    if not 0.0 <= edge <= 1.0:
        raise ModelError(f"The screen's edge floor lies in [0, 1] (got {edge}).")
    if not 0.0 <= marks <= 1.0:
        raise ModelError(f"The screen's dark-mark floor lies in [0, 1] (got {marks}).")
    if not enclosed >= 0:
        raise ModelError(f"The screen's enclosed-hole margin is 0 or more pixels (got {enclosed}).")
    if real_solid_dips and data is None:
        raise ModelError("The screen's count of holes where the real emoji is solid needs the dataset.")
    real_detail = None
    if screen_detail > 0:  # the floor is the lower of the two; +inf leaves the plain row's own
        real_detail = (
            np.full(len(table.conditions), np.inf) if detail_own else _real_detail(Path(model), data)
        )
    passed = screen_full_rows(
        Path(model), table.conditions, table.place_rows(), 0.0, float("inf"), seeds, screen_margin,
        screen_net_margin, screen_detail=screen_detail, real_detail=real_detail, mean_dips=mean_dips, edge=edge,
        marks=marks, enclosed=enclosed, real=_real_pictures(Path(model), data) if real_solid_dips else None,
    )  # fmt: skip
    keep = passed[table.layered]
    record = {
        "seeds": int(seeds),
        "margin": float(screen_margin),
        "net_margin": float(screen_net_margin) if np.isfinite(screen_net_margin) else None,
        "detail": float(screen_detail),
        **({"detail_of": "the plain row's own picture"} if detail_own and screen_detail > 0 else {}),
        **({"mean_dips": "no more than the plain row's"} if mean_dips else {}),
        **({"edge": float(edge), "edge_of": "the plain row's mean edge length"} if edge > 0 else {}),
        **({"marks": float(marks), "marks_of": "the plain row's px at each seed"} if marks > 0 else {}),
        **({"enclosed": float(enclosed)} if np.isfinite(enclosed) else {}),
        **({"real_solid_dips": "no more than the plain row's"} if real_solid_dips else {}),
        "screened": len(table.layered),
        "kept": int(keep.sum()),
    }
    lent = None if table.lent is None else table.lent[keep]
    rows = (table.layers[keep], table.layered[keep], lent) if keep.any() else (None, None, None)
    metadata = {**concepts_metadata(path), "layers_screen": json.dumps(record)}
    save_concepts(Path(model), replace(table, layers=rows[0], layered=rows[1], lent=rows[2]), metadata)
    return record


def add_layered_rows(model: str | Path, source: str | Path, lent: bool = True) -> dict:
    """Give the folder's table the layered rows of ``source``'s table for the concepts it has none for (a rung fitted
    and screened apart, joined to rows already judged); both tables must hold the same plain rows. With ``lent``
    False the joined rows draw only their own names: a prompt that borrows one (a held-out emoji's name) takes its
    plain row (studio/models/concepts.py ``lent``). Returns the record also stored in the file's metadata
    (``layers_added``)."""
    from studio.models.concepts import CONCEPTS_FILE, concepts_metadata, read_concepts
    from studio.models.format import ModelError

    path, other = Path(model) / CONCEPTS_FILE, Path(source) / CONCEPTS_FILE
    table = read_concepts(path) if path.is_file() else None
    rung = read_concepts(other) if other.is_file() else None
    if table is None or rung is None or rung.layers is None:
        raise ModelError(f"'{source}' has no layered rows to add, or '{model}' has no concept table.")
    if not np.array_equal(table.conditions, rung.conditions):
        raise ModelError(
            f"'{source}' holds other plain rows than '{model}': its layered rows were fitted from them."
        )
    new = ~np.isin(rung.layered, table.layered if table.layered is not None else np.zeros(0, np.int64))
    made = concepts_metadata(other)
    record = {
        "source": str(source),
        "added": int(new.sum()),
        "kept": 0 if table.layered is None else len(table.layered),
        "lent": bool(lent),
        "source_records": {key: json.loads(made[key]) for key in ("layers", "layers_screen") if key in made},
    }
    metadata = concepts_metadata(path)
    if "layers_added" in metadata:  # a second rung joined: the first one's record stays inside this one
        record["earlier"] = json.loads(metadata["layers_added"])
    metadata["layers_added"] = json.dumps(record)
    save_concepts(Path(model), _with_layers(table, rung.layers[new], rung.layered[new], lent), metadata)
    return record


@torch.no_grad()
def screen_full_rows(
    model: Path,
    first: np.ndarray,
    second: np.ndarray,
    margin: float,
    net_margin: float,
    seeds: int,
    screen_margin: float,
    screen_net_margin: float = float("inf"),
    batch: int = 128,
    screen_detail: float = 0.0,
    real_detail: np.ndarray | None = None,
    mean_dips: bool = False,
    edge: float = 0.0,
    marks: float = 0.0,
    enclosed: float = float("inf"),
    real: np.ndarray | None = None,
) -> np.ndarray:
    """Per row of the two tables (conditions, as the engine draws a prompt whose row is its own): whether at each of
    ``seeds`` seeds of the row's own (``SCREEN_SEED + seeds x row + k``) the second row's picture (128 px, through
    the folder's upsampler) is shown (``second_or_first`` at ``margin`` and ``net_margin``) and opens no more than
    ``screen_margin`` wide-dip pixels where the first row's picture is solid, and (when ``screen_net_margin`` is
    finite) has no more than that many beyond the first's in all, and (``screen_detail`` > 0) keeps at least that
    share of the interior detail per px of the first's picture or of ``real_detail[row]`` (the real emoji's),
    whichever is less, and (``mean_dips``) has no more deep-dip px (``holes.deep_dips`` at ``TEAR_CLOSING``, the
    hearts' count) on average over the seeds than the first's, and (``edge`` > 0) has a mean alpha edge length
    (``picture_detail``'s) over the seeds of at least ``edge`` times the first's, and (``marks`` > 0) has at each
    seed at least ``marks`` times the first's dark-mark px (``evaluate.dark_marks``), and (``enclosed`` finite) has
    at each seed no more than that many see-through px enclosed where the first's is solid
    (``holes.enclosed_where_solid``), and (``real`` given: each row's real emoji, uint8 RGBA at 128 px) has no more
    deep-dip px where the real emoji is solid (``holes.dips_where_solid`` at ``TEAR_CLOSING``) on average over the seeds
    than the first's. Rows that are equal pass.
    ``second`` may hold layered rows (V x places x cond_dim): their picture is then shown as drawn, nothing filled,
    wherever it covers half the first's alpha (``holes.covers``; ``margin`` and ``net_margin`` unused), as the
    engine draws a table's layered rows."""
    from studio.models import holes
    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.models.format import load_model
    from studio.training.evaluate import dark_marks, latents, picture_detail

    if screen_detail > 0 and real_detail is None:
        raise ValueError("a detail floor needs the real emoji's detail")
    loaded = load_model(model)
    generator, upsampler = loaded.generator.eval(), loaded.upsampler
    layered = second.ndim == 3
    plain = first[:, None] if layered else first  # broadcast over the places of layered rows
    differs = np.flatnonzero((plain != second).reshape(len(first), -1).any(axis=1))
    pairs = [(int(row), k) for row in differs for k in range(seeds)]
    passed = np.ones(len(first), dtype=bool)
    # deep-dip px the shown pictures have beyond the first's, summed over the seeds: anywhere, where the real is solid
    added = np.zeros(len(first))
    added_real = np.zeros(len(first))
    edges = np.zeros((2, len(first)))  # summed alpha edge length over the seeds: the first's, the shown
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        which = np.array([row for row, _ in chunk])
        z = latents([SCREEN_SEED + seeds * row + k for row, k in chunk], generator.config.z_dim, 1.0)
        pictures = []
        for table in (first, second):
            drawn = generator.synthesize(z, torch.from_numpy(np.ascontiguousarray(table[which], np.float32)))
            pictures.append(upsampler(drawn) if upsampler is not None else drawn)
        if layered:
            shown, took = pictures[1], holes.covers(pictures[1], pictures[0])
        else:
            shown, took = holes.second_or_first(pictures[1], pictures[0], margin, net_margin)
        fails = ~took | (holes.new_wide_dips(shown, pictures[0]) > screen_margin)
        if np.isfinite(screen_net_margin):
            fails |= holes.net_wide_dips(shown, pictures[0]) > screen_net_margin
        if screen_detail > 0:
            floor = np.minimum(detail_per_px(pictures[0]), real_detail[which])
            fails |= torch.from_numpy(detail_per_px(shown) < screen_detail * floor)
        if marks > 0:
            fails |= dark_marks(shown) < marks * dark_marks(pictures[0])
        if np.isfinite(enclosed):
            fails |= holes.enclosed_where_solid(shown, pictures[0]) > enclosed
        passed[which[fails.numpy()]] = False
        if mean_dips:
            closing = holes.TEAR_CLOSING
            more = holes.deep_dips(shown, closing) - holes.deep_dips(pictures[0], closing)
            np.add.at(added, which, more.double().numpy())
        if real is not None:
            solid = rgba_uint8_to_premultiplied(torch.from_numpy(real[which]))
            shown_dips, first_dips = (
                holes.dips_where_solid(p, solid, holes.TEAR_CLOSING) for p in (shown, pictures[0])
            )
            np.add.at(added_real, which, (shown_dips - first_dips).double().numpy())
        if edge > 0:
            for side, picture in enumerate((pictures[0], shown)):
                np.add.at(edges[side], which, picture_detail(picture)[2].double().numpy())
    if mean_dips:
        passed &= added <= 0
    if real is not None:
        passed &= added_real <= 0
    if edge > 0:
        passed &= edges[1] >= edge * edges[0]
    return passed


@torch.no_grad()
def detail_per_px(pictures: torch.Tensor) -> np.ndarray:
    """Per picture (premultiplied RGBA in [-1, 1]): interior detail over interior px (:func:`detail_128`, the fit's
    term's measure, without gradients; 0 for a picture with no interior)."""
    return detail_128(pictures).numpy()


def _real_pictures(model: Path, data_folder: str | Path) -> np.ndarray:
    """Per row of the folder's concept table (its vocabulary's emoji, in the dataset's order): the real emoji, uint8
    RGBA at 128 px."""
    from studio.models.format import ModelError, load_model
    from studio.models.vocabulary import load_vocabulary
    from studio.training.dataset import load_dataset

    vocabulary = load_vocabulary(load_model(model).info)
    data = load_dataset(data_folder)
    if vocabulary is None or vocabulary.names != data.names:
        raise ModelError("The dataset does not list the model's vocabulary's emoji in its order.")
    return data.images128


def _real_detail(model: Path, data_folder: str | Path, batch: int = 256) -> np.ndarray:
    """Per row of the folder's concept table: the real emoji's interior detail per px at 128 px."""
    from studio.models.cgan import rgba_uint8_to_premultiplied

    images = _real_pictures(model, data_folder)
    return np.concatenate(
        [
            detail_per_px(rgba_uint8_to_premultiplied(torch.from_numpy(images[start : start + batch])))
            for start in range(0, len(images), batch)
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder (concepts.safetensors is written there)")
    parser.add_argument("--data", help="the dataset the model was trained on (every use but --add-full)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--z-per-step", type=int, default=Z_PER_STEP)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--share",
        type=float,
        default=None,
        help=f"how far to move towards each fit, (0, 1] (default {SHARE}; with --layered 1)",
    )
    parser.add_argument(
        "--discriminator", default=None, help="a trainer's d_*.safetensors: add its -D term to the fit's loss"
    )
    parser.add_argument("--adv-weight", type=float, default=ADV_WEIGHT)
    parser.add_argument(
        "--feature-match",
        type=float,
        default=FEATURE_MATCH,
        help="with --discriminator: weight of matching the critic's features of the real picture",
    )
    parser.add_argument(
        "--hole-weight",
        type=float,
        default=HOLE_WEIGHT,
        help="weight of a term against small holes in the drawings beyond their real render's (0: off)",
    )
    parser.add_argument(
        "--tear-weight",
        type=float,
        default=TEAR_WEIGHT,
        help="weight of a term against tears at 128 px beyond what the folder's current table draws (0: off)",
    )
    parser.add_argument(
        "--tear-where-solid",
        action="store_true",
        help="with --layered --tear-weight: count the tear term's dips only where the real emoji is solid",
    )
    parser.add_argument(
        "--detail-weight",
        type=float,
        default=0.0,
        help="with --layered: weight of a term against interior detail at 128 px below the plain row's (0: off)",
    )
    parser.add_argument(
        "--guard",
        type=float,
        default=None,
        help="put back rows whose drawings have more than this many extra hole pixels (128 px) than the name's",
    )
    parser.add_argument(
        "--rescale",
        type=float,
        default=None,
        help="instead of fitting: move the folder's table this share of the way from the names' projections",
    )
    parser.add_argument(
        "--guard-seeds", type=int, default=GUARD_SEEDS, help="the guard's draws per row (1-64)"
    )
    parser.add_argument(
        "--guard-first-seed",
        type=int,
        action="append",
        default=None,
        help=f"where the guard's seeds start (default {GUARD_SEED}); repeat it to pool seed sets: a row keeps a "
        "step only where it passes on every set",
    )
    parser.add_argument(
        "--guard-tear",
        type=float,
        default=None,
        help="with --guard: also put back rows that draw more than this many extra hole pixels on "
        "--guard-tear-seeds of their seeds (a tear that comes and goes with z)",
    )
    parser.add_argument("--guard-tear-seeds", type=int, default=GUARD_TEAR_SEEDS)
    parser.add_argument(
        "--guard-ladder",
        type=float,
        action="append",
        default=[],
        help="with --guard: a failing row is tried this fraction of the way from where it would go back "
        "(repeatable, each in (0, 1), largest first) and keeps the first that passes",
    )
    parser.add_argument(
        "--guard-against",
        default=None,
        help="with --rescale: a concepts.safetensors whose rows the guard compares with and puts back",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help=f"save the fit's state to this file every {CHECKPOINT_EVERY} steps, and resume from it where it "
        "already holds the same fit's",
    )
    parser.add_argument(
        "--add-full",
        default=None,
        help="instead of fitting: give the folder's table this concepts.safetensors' rows as its second rows",
    )
    parser.add_argument(
        "--full-margin",
        type=float,
        default=FULL_MARGIN,
        help="with --add-full: the wide-dip pixels (15 px closing) a second row's filled picture may open where the "
        "first's is solid",
    )
    parser.add_argument(
        "--full-net-margin",
        type=float,
        default=FULL_NET_MARGIN,
        help="with --add-full: the wide-dip pixels it may have beyond the first's in all (inf: no such check)",
    )
    parser.add_argument(
        "--screen-seeds",
        type=int,
        default=0,
        help="with --add-full: keep a row's second row only if its picture is shown at each of this many seeds of "
        "its own, opening no more than --screen-margin wide-dip pixels where the first's is solid",
    )
    parser.add_argument(
        "--screen-margin",
        type=float,
        default=0.0,
        help="with --screen-seeds: the wide-dip pixels a screened second row may open at each seed",
    )
    parser.add_argument(
        "--screen-net-margin",
        type=float,
        default=float("inf"),
        help="with --screen-seeds: and the wide-dip pixels it may have beyond the first's in all at each seed",
    )
    parser.add_argument(
        "--screen-detail",
        type=float,
        default=0.0,
        help="with --screen-seeds and --data: the share of the first row's or the real emoji's interior detail per "
        "px (whichever is less) a screened second row's picture must keep at each seed (0: no such check)",
    )
    parser.add_argument(
        "--layered",
        action="store_true",
        help="fit layered rows (one condition per place of the base) from the folder's table rows and add the "
        "rows --guard keeps to its table",
    )
    parser.add_argument(
        "--screen-detail-own",
        action="store_true",
        help="with --screen-layers and --screen-detail: the floor is the plain row's own detail, not the lower of it "
        "and the real emoji's",
    )
    parser.add_argument(
        "--screen-mean-dips",
        action="store_true",
        help="with --screen-layers: a row also fails when its pictures have more deep-dip px on average over its seeds "
        "than the plain row's",
    )
    parser.add_argument(
        "--screen-edge",
        type=float,
        default=0.0,
        help="with --screen-layers: a row also fails when its pictures' mean alpha edge length over its seeds is "
        "below this share of the plain row's (0: off)",
    )
    parser.add_argument(
        "--screen-marks",
        type=float,
        default=0.0,
        help="with --screen-layers: a row also fails when at any of its seeds its picture has fewer dark-mark px "
        "(eyes, mouths, flecks) than this share of the plain row's (0: off)",
    )
    parser.add_argument(
        "--screen-enclosed",
        type=float,
        default=float("inf"),
        help="with --screen-layers: a row also fails when at any of its seeds its picture has more than this many "
        "see-through px enclosed by opaque ones where the plain row's picture is solid (holes, not notches)",
    )
    parser.add_argument(
        "--screen-real-solid-dips",
        action="store_true",
        help="with --screen-layers and --data: a row also fails when its pictures have more deep-dip px where the real "
        "emoji is solid on average over its seeds than the plain row's",
    )
    parser.add_argument(
        "--add-layers",
        metavar="FOLDER",
        help="instead of fitting: add FOLDER's layered rows (fitted from the same plain rows) for the concepts the "
        "folder's table has none for",
    )
    parser.add_argument(
        "--own-names-only",
        action="store_true",
        help="with --add-layers: the added rows draw only their own names; a prompt that borrows one (a held-out "
        "emoji's name) takes its plain row",
    )
    parser.add_argument(
        "--keep-layers",
        action="store_true",
        help="with --layered: keep the table's layered rows and add the fit's rows only for the concepts without one "
        "(with a --share below 1: a lower rung for the rows the whole fit lost)",
    )
    parser.add_argument(
        "--screen-layers",
        action="store_true",
        help="instead of fitting: keep only the folder's layered rows that pass --screen-seeds, --screen-margin, "
        "--screen-net-margin and --screen-detail against its plain rows",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast (CPUs with native bf16 only; float32 elsewhere, with a note)",
    )
    args = parser.parse_args(argv)
    if args.guard_against is not None and args.rescale is None:
        parser.error(
            "--guard-against goes with --rescale (a fit's guard compares with the names' projections)."
        )
    if args.tear_weight and args.rescale is not None:
        parser.error(
            "--tear-weight is a term of the fit; --rescale moves the folder's table without fitting."
        )
    if args.guard_tear is not None and args.guard is None:
        parser.error("--guard-tear adds to a guard: give --guard as well.")
    if args.guard_ladder and args.guard is None:
        parser.error("--guard-ladder adds to a guard: give --guard as well.")
    if any(not 0 < step < 1 for step in args.guard_ladder):
        parser.error("Each --guard-ladder step must lie strictly between 0 and 1.")
    if args.keep_layers and not args.layered:
        parser.error("--keep-layers goes with --layered.")
    if args.own_names_only and args.add_layers is None:
        parser.error("--own-names-only goes with --add-layers.")
    first_seeds = tuple(args.guard_first_seed or (GUARD_SEED,))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.screen_layers:
        if args.layered or args.add_full is not None or args.rescale is not None:
            parser.error("--screen-layers screens the folder's layered rows; it goes with no other mode.")
        record = screen_layered_rows(
            args.model, args.screen_seeds, args.screen_margin, args.screen_net_margin, args.screen_detail,
            args.data, detail_own=args.screen_detail_own, mean_dips=args.screen_mean_dips, edge=args.screen_edge,
            marks=args.screen_marks, enclosed=args.screen_enclosed, real_solid_dips=args.screen_real_solid_dips,
        )  # fmt: skip
        print(json.dumps(record, indent=2))
        return 0
    if (
        args.screen_detail_own
        or args.screen_mean_dips
        or args.screen_edge
        or args.screen_marks
        or np.isfinite(args.screen_enclosed)
        or args.screen_real_solid_dips
    ):
        parser.error(
            "--screen-detail-own, --screen-mean-dips, --screen-edge, --screen-marks, --screen-enclosed and "
            "--screen-real-solid-dips go with --screen-layers."
        )
    if args.add_layers is not None:
        if args.layered or args.add_full is not None or args.rescale is not None:
            parser.error("--add-layers joins another folder's layered rows; it goes with no other mode.")
        print(json.dumps(add_layered_rows(args.model, args.add_layers, not args.own_names_only), indent=2))
        return 0
    if args.data is None and args.add_full is None:
        parser.error("the following arguments are required: --data")
    if args.tear_where_solid and not (args.layered and args.tear_weight):
        parser.error("--tear-where-solid goes with --layered and a --tear-weight above 0.")
    if args.detail_weight and not args.layered:
        parser.error("--detail-weight is a term of the layered fit: give --layered as well.")
    if args.layered and args.hole_weight:
        parser.error("--hole-weight is a term of the plain fit; the layered fit takes --tear-weight.")
    if args.layered and (args.add_full is not None or args.rescale is not None or args.guard_ladder):
        parser.error(
            "--layered fits layered rows; it goes with neither --add-full, --rescale nor --guard-ladder."
        )
    if args.add_full is not None:
        record = add_full_rows(
            args.model,
            args.add_full,
            args.full_margin,
            args.full_net_margin,
            args.screen_seeds,
            args.screen_margin,
            args.screen_net_margin,
            args.screen_detail,
            args.data,
        )
        print(json.dumps(record, indent=2))
        return 0
    if args.rescale is not None:
        report = rescale_model_concepts(
            args.model,
            args.data,
            args.rescale,
            args.guard,
            args.guard_seeds,
            first_seeds,
            args.guard_against,
            args.guard_tear,
            args.guard_tear_seeds,
            tuple(args.guard_ladder),
        )
        print(json.dumps(report, indent=2))
        return 0
    bf16 = bf16_if_native(args.bf16)
    if args.layered:
        report = fit_layered_rows(
            args.model, args.data, args.steps, args.lr, args.z_per_step, args.seed, bf16,
            discriminator=args.discriminator, feature_match=args.feature_match, guard=args.guard,
            guard_seeds=args.guard_seeds, guard_first_seed=first_seeds, guard_tear=args.guard_tear,
            guard_tear_seeds=args.guard_tear_seeds, checkpoint=args.checkpoint,
            share=1.0 if args.share is None else args.share, keep_layers=args.keep_layers,
            tear_weight=args.tear_weight, tear_where_solid=args.tear_where_solid,
            detail_weight=args.detail_weight,
        )  # fmt: skip
        print(json.dumps(report, indent=2))
        return 0
    report = fit_model_concepts(
        args.model,
        args.data,
        args.steps,
        args.lr,
        args.z_per_step,
        args.seed,
        bf16,
        share=SHARE if args.share is None else args.share,
        discriminator=args.discriminator,
        adv_weight=args.adv_weight,
        guard=args.guard,
        feature_match=args.feature_match,
        guard_seeds=args.guard_seeds,
        guard_first_seed=first_seeds,
        hole_weight=args.hole_weight,
        tear_weight=args.tear_weight,
        guard_tear=args.guard_tear,
        guard_tear_seeds=args.guard_tear_seeds,
        guard_ladder=tuple(args.guard_ladder),
        checkpoint=args.checkpoint,
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
