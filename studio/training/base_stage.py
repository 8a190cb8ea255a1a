"""The base stage: the 32 px text-conditional generator against a projection discriminator (see train.py)."""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studio.models.cgan import BaseGenerator, rgba_uint8_to_premultiplied
from studio.training.augment import diff_augment
from studio.training.dataset import EmojiData, balanced_weights
from studio.training.networks import ProjectionDiscriminator, base_config
from studio.training.options import TrainOptions
from studio.training.runs import (
    RunHistory,
    log_line,
    open_checkpoint,
    progress_fields,
    rank_seeds,
    restore_progress,
    run_summary,
    save_checkpoint,
    save_grid,
    setup_run,
    should_stop,
    write_model_folder,
)

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
    """Draws emoji (group-balanced) and one of their captions (the name with probability ``name_prob``)."""

    def __init__(self, data: EmojiData, index: np.ndarray, name_prob: float, seed: int):
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

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(emoji indices, caption row indices)."""
        pick = np.searchsorted(self.cum, self.rng.random(n) * self.cum[-1], side="right")
        emoji = self.index[np.minimum(pick, len(self.index) - 1)]
        use_name = self.rng.random(n) < self.name_prob
        other = 1 + np.floor(self.rng.random(n) * np.maximum(self.counts[emoji] - 1, 1)).astype(np.int64)
        offset = np.where(use_name | (self.counts[emoji] <= 1), 0, other)
        return emoji, self.caption_order[self.starts[emoji] + offset]

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


def train_base(options: TrainOptions) -> dict:
    device, dist, data, run, use_bf16 = setup_run(options)
    batch = options.batch or 32
    ch = options.ch or 16
    torch.manual_seed(options.seed)
    generator = BaseGenerator(base_config(ch)).to(device)
    discriminator = ProjectionDiscriminator(ch=ch, embed_dim=data.caption_emb.shape[1]).to(device)
    g_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=options.lr_g, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=options.lr_d, betas=(0.0, 0.99))
    images = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32)).to(device)
    embeddings = torch.from_numpy(data.caption_emb.astype(np.float32)).to(device)
    train_index = data.train_index
    sampler_seed, torch_seed = rank_seeds(options, dist)
    sampler = CaptionSampler(data, train_index, options.caption_name_prob, sampler_seed)
    torch_rng = torch.Generator().manual_seed(torch_seed)
    step, trained_seconds, images_seen = 0, 0.0, 0
    ckpt_path, state = open_checkpoint(options, run, device)
    if state is not None:
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        g_ema.load_state_dict(state["g_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, trained_seconds, images_seen, mine = restore_progress(state, dist)
        if mine is not None:
            sampler.set_state(mine["sampler"])
            torch_rng.set_state(mine["torch"])
        log_line(options, dist, f"resumed {ckpt_path} at step {step}")
    elif options.resume:
        log_line(options, dist, f"no checkpoint in {run}; starting from scratch")
    history = RunHistory(
        state,
        {
            "batch": batch * dist.world,
            "recon_weight": options.recon_weight,
            "mismatch_weight": options.mismatch_weight,
        },
    )
    dist.broadcast_module(generator)
    dist.broadcast_module(discriminator)
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
    sums = {"d": 0.0, "g": 0.0, "l1": 0.0, "d_real": 0.0, "d_fake": 0.0}
    count = 0
    log_line(
        options,
        dist,
        f"base: {sum(p.numel() for p in generator.parameters()) / 1e6:.2f} M G params, "
        f"{sum(p.numel() for p in discriminator.parameters()) / 1e6:.2f} M D params, batch {batch} x "
        f"{dist.world}, bf16 {use_bf16}, device {device}, {len(train_index)} training emoji",
    )

    def checkpoint(final: bool = False) -> None:
        ranks_state = dist.gather({"sampler": sampler.state(), "torch": torch_rng.get_state()})
        if not dist.main:
            return
        state = {
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict(),
            "g_ema": g_ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            **progress_fields(
                step, trained_seconds + time.time() - started, images_seen, ranks_state, history
            ),
            "config": base_config(ch).to_json(),
            "batch": batch,
            "world": dist.world,
        }
        save_checkpoint(state, ckpt_path)
        from safetensors.torch import save_file

        snap = copy.deepcopy(g_ema).cpu()
        standing_stats(snap, embeddings.cpu(), batches=options.standing_batches)
        (run / "snapshots").mkdir(exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in snap.state_dict().items()},
            str(run / "snapshots" / f"g_ema_{step:07d}.safetensors"),
        )
        (run / "snapshots" / "config.json").write_text(json.dumps(base_config(ch).to_json()))

    stop = should_stop(options, step, started)
    while not stop:
        emoji, rows = sampler.sample(batch)
        e = embeddings[torch.from_numpy(rows).to(device)]
        real = images[torch.from_numpy(emoji).to(device)]
        perm = torch.randperm(batch, generator=torch_rng)
        e_wrong = e[perm.to(device)]
        z = torch.randn(batch, generator.config.z_dim, generator=torch_rng).to(device)
        # discriminator step: real and fake in one pass
        with autocast:
            with torch.no_grad():
                fake = generator(z, e)
            both = diff_augment(torch.cat([real, fake.float()]), generator=torch_rng)
            h = discriminator.features(both)
            out = discriminator.head(h, torch.cat([e, e]))
            d_real, d_fake = out[:batch].float(), out[batch:].float()
            d_wrong = discriminator.head(h[:batch], e_wrong).float()
            same = (rows[perm.numpy()] == rows) | (emoji[perm.numpy()] == emoji)
            wrong_mask = torch.from_numpy(~same).to(device).float()
            loss_d = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
            loss_d = loss_d + options.mismatch_weight * (F.relu(1.0 + d_wrong) * wrong_mask).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        dist.average_gradients(discriminator)
        opt_d.step()
        # generator step
        discriminator.requires_grad_(False)
        z = torch.randn(batch, generator.config.z_dim, generator=torch_rng).to(device)
        with autocast:
            fake = generator(z, e)
            adv_g = -discriminator(diff_augment(fake.float(), generator=torch_rng), e).float().mean()
            recon = F.l1_loss(fake.float(), real)
            loss_g = adv_g + options.recon_weight * recon
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        dist.average_gradients(generator)
        opt_g.step()
        discriminator.requires_grad_(True)
        ema_update(g_ema, generator, options.ema_decay if step > 500 else 0.0)
        step += 1
        images_seen += batch * dist.world
        window_imgs += batch * dist.world
        sums["d"] += float(loss_d.detach())
        sums["g"] += float(adv_g.detach())
        sums["l1"] += float(recon.detach())
        sums["d_real"] += float(d_real.detach().mean())
        sums["d_fake"] += float(d_fake.detach().mean())
        count += 1
        now = time.time()
        if step % options.log_every == 0:
            rate = window_imgs / max(now - window_t, 1e-6)
            log_line(
                options,
                dist,
                f"step {step} | {rate:.0f} img/s | loss D {sums['d'] / count:.3f} G "
                f"{sums['g'] / count:.3f} L1 {sums['l1'] / count:.3f} | D(real) {sums['d_real'] / count:.2f} D(fake) {sums['d_fake'] / count:.2f}"
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
    summary.update(
        threads=torch.get_num_threads(),
        recon_weight=options.recon_weight,
        mismatch_weight=options.mismatch_weight,
        runs=history.runs(step, images_seen),
    )
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
        )
        log_line(options, dist, json.dumps(summary))
    dist.barrier()
    dist.close()
    return summary
