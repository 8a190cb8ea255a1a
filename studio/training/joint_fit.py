"""Pivotal tuning (session 64, issue #11): every training emoji's layered concept row fitted *together with* the base
generator's weights, written as a new model folder.

``concept_fit --layered`` fits layered rows (one condition per place of the base, studio/models/concepts.py) with the
weights frozen; such rows draw far more of their emoji than the table's (identity top-5 about 0.6 against 0.43 on the
A/B's names) but open holes where the emoji is solid, so screens kept only a fifth of them (sessions 53–63). Two
things change here. A **solid-alpha term** at 128 px: the mean shortfall of the upsampled alpha below 1 where the real
emoji is solid (``SOLID_INSET`` px in from its outline), which sees holes of any width, where the tear term's 7 px
closing sees only narrow dips (``--tear-weight W`` adds W x those dips themselves, counted where the real emoji is solid
as the ship rules' holes bar counts them: :func:`studio.training.concept_fit.tears_128`). And the **base's weights**
move with the rows (as pivotal tuning moves a generator around its inversions), held by a **locality term**:
``KEEP_COUNT`` captions' projections (none of a held-out emoji's) and as many of the table's plain rows, each at a fixed
z, are held to what the start weights draw for them, so prompts that take no layered row draw nearly as before. The
loss: L1 towards each 32 px render + ``feature_match`` x the critic's feature gap (as the layered fit) +
``solid_weight`` x the solid-alpha term (+ ``tear_weight`` x the tear share) (+ ``detail_weight`` x the detail
shortfall: how far each drawing's interior detail per px at 128 px falls below what the start weights draw with the
start row at the same z, as a share of the latter; session 69: the row choice's detail guard turned away more than half
of the rows rule 122's fit made), Adam on rows (lr 0.03) and weights (``weight_lr``, betas 0.5 / 0.999), both on one
cosine, full batch, one z per row a step.

    python -m studio.training.joint_fit --model resources/models/emoji --data data/emoji-usem3-kw \
        --discriminator benchmarks/critic/critic-v4.safetensors --out runs/v65/T1 --steps 60 --threads 2

Rows start from the folder's own rows (layered where it has them); the new folder draws every training name with its
layered row (rows the folder lent to borrowing prompts stay lent, the others draw only their own names), its plain rows
and everything else byte for byte the folder's but ``generator.safetensors``. ``--checkpoint FILE`` saves the state
every ``CHECKPOINT_EVERY`` steps and, run again, resumes from it: a fit stopped part way ends as it would have
uninterrupted. Held-out emoji are never fitted.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from studio.models.holes import alpha_erosion
from studio.training.runs import bf16_if_native, save_checkpoint

log = logging.getLogger(__name__)

STEPS = 60
ROW_LR = 0.03  # concept_fit's LEARNING_RATE
WEIGHT_LR = 1e-4
KEEP = 1.0
SOLID_WEIGHT = 2.0
TEAR_WEIGHT = 0.0  # off: rules 119-122 fitted without it
DETAIL_WEIGHT = 0.0  # off: rules 119-122 fitted without it
FEATURE_MATCH = 0.618  # v6's share of the critic's feature gap
SOLID_INSET = 7  # px of erosion of the real emoji's solid part at 128 px: the outline may move a few px
KEEP_COUNT = 1024  # captions, and again plain rows, in the locality set
KEEP_SEED = 11
SEED = 1234
CHUNK = 512
CHECKPOINT_EVERY = 5


@dataclass(frozen=True)
class Recipe:
    """What a joint fit is told: its steps, the weights' learning rate, the terms' weights and the z seed."""

    steps: int = STEPS
    weight_lr: float = WEIGHT_LR
    keep: float = KEEP
    solid_weight: float = SOLID_WEIGHT
    feature_match: float = FEATURE_MATCH
    seed: int = SEED
    tear_weight: float = TEAR_WEIGHT
    detail_weight: float = DETAIL_WEIGHT

    def told(self) -> dict:
        """The recipe as a checkpoint records it: without a tear or detail weight of 0, so the checkpoints of fits made
        before those terms existed (rules 119-122) still resume."""
        told = asdict(self)
        for term in ("tear_weight", "detail_weight"):
            if not told[term]:
                del told[term]
        return told

    def loss_names(self) -> list[str]:
        """What each of a step's losses is, in :func:`tune`'s order."""
        terms = {"tears": self.tear_weight, "detail": self.detail_weight}
        return ["L1", "solid", "locality"] + [name for name, weight in terms.items() if weight]


def solid_shortfall(big: torch.Tensor, solid: torch.Tensor) -> torch.Tensor:
    """Per 128 px picture (premultiplied RGBA in [-1, 1], unclamped): the mean of ``1 - alpha`` (alpha at most 1) over
    its ``solid`` mask (N x 1 x H x W, 1 where the real emoji is solid): 0 for a picture solid there, the holes' share
    of the mask for a hole of any width, differentiable in alpha."""
    alpha = ((big[:, 3:4].float() + 1.0) * 0.5).clamp(max=1.0)
    return (torch.relu(1.0 - alpha) * solid).sum(dim=(1, 2, 3)) / solid.sum(dim=(1, 2, 3)).clamp(min=1.0)


def solid_inside(images128: np.ndarray, inset: int = SOLID_INSET) -> torch.Tensor:
    """Per real emoji (uint8 RGBA, N x 128 x 128 x 4): 1 where it is solid (alpha above one half) ``inset`` px in from
    every outline (a square erosion), as N x 1 x 128 x 128 floats."""
    from studio.training.concept_fit import solid_masks

    solid = solid_masks(torch.from_numpy(images128))
    return alpha_erosion(solid, inset) if inset > 1 else solid


@torch.no_grad()
def locality_set(generator, data, table, count: int = KEEP_COUNT, seed: int = KEEP_SEED):
    """What the locality term holds: ``count`` captions owned by training emoji through the prompt layer, then
    ``count`` of the table's plain rows of training emoji (fewer where the dataset has fewer), at every place, each at
    a fixed z; and what ``generator`` draws for them now. Returns (z, conditions, drawings)."""
    rng = np.random.default_rng(seed)
    owned = np.flatnonzero(~data.heldout[data.caption_owner])
    captions = rng.choice(owned, min(count, len(owned)), replace=False)
    rows = rng.choice(data.train_index, min(count, len(data.train_index)), replace=False)
    projected = generator.condition(torch.from_numpy(data.caption_emb[captions].astype(np.float32))).float()
    conditions = torch.cat([projected, torch.from_numpy(table.conditions[rows]).float()])
    conditions = conditions[:, None].expand(-1, generator.places, -1).contiguous()
    z = torch.randn(len(conditions), generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    drawn = torch.cat(
        [generator.synthesize(z[i : i + CHUNK], conditions[i : i + CHUNK]) for i in range(0, len(z), CHUNK)]
    )
    return z, conditions, drawn


def start_rows(table, train: np.ndarray, places: int) -> torch.Tensor:
    """Where the fit starts: the table's rows of the emoji ``train`` at every place (its layered rows where it has
    them, else its plain row repeated), N x places x cond_dim."""
    rows = table.place_rows(places=places)[train]
    return torch.from_numpy(np.ascontiguousarray(rows)).float()


def tune(
    generator,
    upsampler,
    critic,
    images: torch.Tensor,
    solid: torch.Tensor,
    start: torch.Tensor,
    keep_set: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    recipe: Recipe = Recipe(),
    bf16: bool = False,
    checkpoint: Path | None = None,
    on_step: Callable[[int, list[float]], None] | None = None,
    tear_solid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[list[float]]]:
    """Fit layered rows (from ``start``, N x places x cond_dim) and ``generator``'s weights (in place) to draw
    ``images`` (N premultiplied 32 px renders; ``solid``: their masks at 128 px, :func:`solid_inside`), the critic and
    the upsampler frozen, as ``recipe`` says. ``tear_solid`` (the real emoji's solid masks at 128 px,
    :func:`studio.training.concept_fit.solid_masks`) is where a tear weight counts the dips. Returns the rows and per
    step [L1, solid shortfall, locality L1] (means before the step), then the tear share and the detail shortfall where
    they are weighed (:meth:`Recipe.loss_names`)."""
    steps, weight_lr, keep, solid_weight, feature_match, tear_weight, detail_weight = (
        recipe.steps, recipe.weight_lr, recipe.keep, recipe.solid_weight, recipe.feature_match, recipe.tear_weight,
        recipe.detail_weight,
    )  # fmt: skip
    weights = (weight_lr, keep, solid_weight, feature_match, tear_weight, detail_weight)
    if steps < 1 or not all(weight >= 0 for weight in weights):
        raise ValueError("The joint fit needs a step or more and weights, rates and terms of 0 or more.")
    if tear_weight and (tear_solid is None or len(tear_solid) != len(images)):
        raise ValueError("The joint fit's tear term needs the real emoji's solid mask for every picture.")
    for module in (critic, upsampler):
        module.eval()
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    with torch.no_grad():
        real_features = torch.cat(
            [critic.features(images[i : i + CHUNK]).float() for i in range(0, len(images), CHUNK)]
        )
    from studio.training.concept_fit import detail_shortfall

    # the start weights, frozen: what the detail term holds each drawing's detail to (copied before a resume)
    reference = _frozen_copy(generator) if detail_weight else None
    generator.eval()  # running BatchNorm statistics stay
    for parameter in generator.parameters():
        parameter.requires_grad_(True)
    rows = start.detach().clone().float().requires_grad_(True)
    row_optimizer = torch.optim.Adam([rows], lr=ROW_LR)
    weight_optimizer = torch.optim.Adam(list(generator.parameters()), lr=weight_lr, betas=(0.5, 0.999))
    noise = torch.Generator().manual_seed(recipe.seed)
    keep_z, keep_conditions, keep_drawn = keep_set
    told = json.dumps(
        {**recipe.told(), "bf16": bf16, "count": len(images), "keep_count": len(keep_z)}, sort_keys=True
    )
    losses: list[list[float]] = []
    if checkpoint is not None and checkpoint.exists():
        losses = _resume(checkpoint, told, rows, generator, row_optimizer, weight_optimizer, noise)
    count = len(images)
    for step in range(len(losses), steps):
        fraction = float(0.5 * (1 + np.cos(np.pi * step / steps)))
        for optimizer, lr in ((row_optimizer, ROW_LR), (weight_optimizer, weight_lr)):
            for group in optimizer.param_groups:
                group["lr"] = lr * fraction
            optimizer.zero_grad()
        l1_sum = solid_sum = keep_sum = tear_sum = detail_sum = 0.0
        for first in range(0, count, CHUNK):
            part = slice(first, min(first + CHUNK, count))
            chunk = rows[part]
            z = torch.randn(len(chunk), generator.config.z_dim, generator=noise)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                drawn = generator.synthesize(z, chunk)
                features = critic.features(drawn)
                big = upsampler(drawn, clamp=False)
            l1 = (drawn.float() - images[part]).abs().mean(dim=(1, 2, 3)).sum() / count
            gap = (features.float() - real_features[part]).abs().mean(1).sum() / count
            short = solid_shortfall(big, solid[part]).sum() / count
            loss = l1 + feature_match * gap + solid_weight * short
            if tear_weight:
                tears = tear_share(big, tear_solid[part]).sum() / count
                loss = loss + tear_weight * tears
                tear_sum += float(tears.detach())
            if detail_weight:
                lost = detail_shortfall(reference, upsampler, z, start[part], big, bf16).sum() / count
                loss = loss + detail_weight * lost
                detail_sum += float(lost.detach())
            loss.backward()
            l1_sum += float(l1.detach())
            solid_sum += float(short.detach())
        for first in range(0, len(keep_z), CHUNK):
            part = slice(first, first + CHUNK)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                drawn = generator.synthesize(keep_z[part], keep_conditions[part])
            held = (drawn.float() - keep_drawn[part]).abs().mean(dim=(1, 2, 3)).sum() / len(keep_z)
            (keep * held).backward()
            keep_sum += float(held.detach())
        row_optimizer.step()
        weight_optimizer.step()
        weighed = [
            total for total, weight in ((tear_sum, tear_weight), (detail_sum, detail_weight)) if weight
        ]
        losses.append([l1_sum, solid_sum, keep_sum, *weighed])
        if on_step is not None:
            on_step(step, losses[-1])
        if checkpoint is not None and (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < steps:
            state = {
                "recipe": told, "rows": rows.detach().clone(), "generator": generator.state_dict(),
                "rows_optimizer": row_optimizer.state_dict(), "weights_optimizer": weight_optimizer.state_dict(),
                "noise": noise.get_state(), "losses": torch.tensor(losses, dtype=torch.float64),
            }  # fmt: skip
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(state, checkpoint)
    generator.eval()
    for parameter in generator.parameters():
        parameter.requires_grad_(False)
    return rows.detach(), losses


def _frozen_copy(generator):
    import copy

    reference = copy.deepcopy(generator).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


def tear_share(big: torch.Tensor, solid: torch.Tensor) -> torch.Tensor:
    """Per 128 px picture (unclamped, as the upsampler draws it): the tear count's dips where its real emoji is
    ``solid``, as concept_fit's tear term measures them (clamped to [-1, 1] straight-through, so an alpha the upsampler
    drives below 0 still gets a gradient)."""
    from studio.training.concept_fit import _tear_share, clamp_straight_through

    return _tear_share(clamp_straight_through(big), solid)


def _resume(
    path: Path, recipe: str, rows, generator, row_optimizer, weight_optimizer, noise
) -> list[list[float]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        same = state["recipe"] == recipe
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same sentence
        raise ValueError(
            f"The joint fit's checkpoint {path} cannot be read; delete it to start over."
        ) from error
    if not same:
        raise ValueError(
            f"The joint fit's checkpoint {path} belongs to another fit; delete it or give another path."
        )
    with torch.no_grad():
        rows.copy_(state["rows"])
    generator.load_state_dict(state["generator"])
    row_optimizer.load_state_dict(state["rows_optimizer"])
    weight_optimizer.load_state_dict(state["weights_optimizer"])
    noise.set_state(state["noise"])
    log.info("Resumed the joint fit from %s at step %d", path, len(state["losses"]))
    return [[float(x) for x in step] for step in state["losses"]]


def joint_fit(
    model: str | Path,
    data_folder: str | Path,
    discriminator: str | Path,
    out: str | Path,
    recipe: Recipe = Recipe(),
    checkpoint: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Write ``out``: a copy of the model folder with tuned weights and a layered row for every training emoji
    (:func:`tune`). Returns the record also stored in the table's metadata under ``joint``."""
    from studio.models.concepts import CONCEPTS_FILE, concepts_metadata, load_concepts, save_concepts
    from studio.models.format import ModelError, load_model
    from studio.training.concept_fit import _fit_inputs, _with_layers, solid_masks
    from studio.training.runs import write_weights

    out = Path(out)
    if out.exists():
        raise ModelError(f"'{out}' exists; give a new folder for the tuned model.")
    loaded, vocabulary, data, _names, _start, images, critic = _fit_inputs(
        model, data_folder, discriminator, 0.0
    )
    table = load_concepts(loaded.info, vocabulary)
    train = data.train_index
    if table is None or not table.fitted[train].all():
        raise ModelError(f"'{loaded.info.name}' needs a concept table fitted for every training emoji first.")
    if loaded.upsampler is None or data.images128 is None:
        raise ModelError("The solid-alpha term needs the model's upsampler and the dataset's 128 px renders.")
    generator, started = loaded.generator, time.time()
    start = start_rows(table, train, generator.places)
    keep_set = locality_set(generator, data, table)
    printer = None if quiet else _printer(recipe, started)
    tear_solid = solid_masks(torch.from_numpy(data.images128[train])) if recipe.tear_weight else None
    rows, losses = tune(
        generator, loaded.upsampler, critic, images, solid_inside(data.images128[train]), start, keep_set, recipe,
        bf16_if_native(True), None if checkpoint is None else Path(checkpoint), printer, tear_solid,
    )  # fmt: skip
    lent = np.zeros(len(train), bool)
    if table.layered is not None:  # rows the folder lent stay lent
        had = np.isin(train, table.layered)
        flags = np.ones(len(table.layered), bool) if table.lent is None else table.lent
        lent[had] = flags[np.searchsorted(table.layered, train[had])]
    record = {
        **recipe.told(), "discriminator": str(discriminator), "fitted": len(train),
        "losses_first": [round(x, 4) for x in losses[0]], "losses_last": [round(x, 4) for x in losses[-1]],
        "minutes": round((time.time() - started) / 60, 1), "dataset_sha256": data.manifest.get("sha256", ""),
    }  # fmt: skip
    metadata = concepts_metadata(loaded.info.path / CONCEPTS_FILE)
    metadata["joint"] = json.dumps(record)
    bare = replace(table, layers=None, layered=None, lent=None)
    tuned = replace(_with_layers(bare, rows.numpy(), train, False), lent=lent)
    # written beside ``out`` and renamed once whole: a fit cut off while writing leaves no folder that looks done
    building = out.with_name(out.name + ".part")
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(loaded.info.path, building)
    try:
        write_weights(generator.state_dict(), building / "generator.safetensors")
        save_concepts(building, tuned, metadata)
        load_model(building)  # the folder loads, or this raises
    except Exception:
        shutil.rmtree(building, ignore_errors=True)
        raise
    building.rename(out)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return record


def _printer(recipe: Recipe, started: float) -> Callable[[int, list[float]], None]:
    names = recipe.loss_names()

    def show(step: int, losses: list[float]) -> None:
        parts = ", ".join(f"{name} {loss:.5f}" for name, loss in zip(names, losses, strict=True))
        print(f"step {step + 1}/{recipe.steps}: {parts} ({(time.time() - started) / 60:.1f} min)", flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    from studio.logs import setup_logging
    from studio.models.format import ModelError
    from studio.training.options import TrainError
    from studio.training.runs import set_training_threads

    parser = argparse.ArgumentParser(
        prog="python -m studio.training.joint_fit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model", required=True, help="model folder with a concept table for every training emoji"
    )
    parser.add_argument("--data", required=True, help="the dataset the model was trained on")
    parser.add_argument("--discriminator", required=True, help="the critic whose features the fit matches")
    parser.add_argument("--out", required=True, help="new model folder to write")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--weight-lr", type=float, default=WEIGHT_LR)
    parser.add_argument("--keep", type=float, default=KEEP, help="weight of the locality term")
    parser.add_argument("--solid-weight", type=float, default=SOLID_WEIGHT)
    parser.add_argument(
        "--tear-weight", type=float, default=TEAR_WEIGHT,
        help="weight of the tears (7 px closing's dips) where the real emoji is solid; 0: off",
    )  # fmt: skip
    parser.add_argument(
        "--detail-weight", type=float, default=DETAIL_WEIGHT,
        help="weight of the interior detail the drawings lose against the start's at the same z; 0: off",
    )  # fmt: skip
    parser.add_argument("--feature-match", type=float, default=FEATURE_MATCH)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--checkpoint", help="state file saved every few steps and resumed from")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    setup_logging()
    set_training_threads(args.threads)
    try:
        recipe = Recipe(
            args.steps,
            args.weight_lr,
            args.keep,
            args.solid_weight,
            args.feature_match,
            args.seed,
            args.tear_weight,
            args.detail_weight,
        )
        record = joint_fit(args.model, args.data, args.discriminator, args.out, recipe, args.checkpoint)
    except (ModelError, TrainError, ValueError, OSError) as error:
        log.exception("The joint fit failed")
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
