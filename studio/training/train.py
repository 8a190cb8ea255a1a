"""Trainer for both stages of the cascaded emoji GAN.

- ``base``: the 32 px text-conditional generator of :mod:`studio.models.cgan` against a spectral-norm
  residual discriminator with a projection head on the prompt embedding; hinge loss, a matching-aware
  term (real image + another emoji's caption counts as fake: free, because the projection head reuses the
  real features), DiffAugment, an EMA generator, bf16 autocast on CPUs that support it.
- ``upsampler``: the 4x upsampler, supervised L1 on real 32 -> 128 pairs whose 32 px input is blurred and
  noised so it copes with generated images, plus (``adv_weight`` > 0) a hinge adversarial term from a
  spectral-norm patch discriminator that sees the 128 px image beside the bicubic upscale of its 32 px input,
  so it judges whether the detail is real *for that input* (ESRGAN-style: an L1 run first, then both terms).

Data parallel on several processes (``torchrun``; gloo on CPU, NCCL on CUDA): every process samples its own
batch and the gradients are averaged with an all-reduce before each optimizer step (what
DistributedDataParallel does, written out so that the discriminator can be evaluated several times per step).

A run folder holds ``checkpoint.pt`` (weights + optimizer + RNG state, for exact resume; never shipped),
``snapshots/`` (EMA generator weights, safetensors) and ``samples/`` (grids). The model folder ``--out`` gets
the shipped weights (safetensors via :func:`studio.models.format.save_model`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from studio.models.cgan import (
    BaseConfig,
    BaseGenerator,
    Upsampler,
    UpsamplerConfig,
    premultiplied_to_rgba_uint8,
    rgba_uint8_to_premultiplied,
)
from studio.training.augment import degrade_for_upsampler, diff_augment
from studio.training.dataset import EmojiData, balanced_weights, load_dataset

CHECKPOINT = "checkpoint.pt"
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


class TrainError(RuntimeError):
    """Training cannot start; one sentence."""


@dataclass
class TrainOptions:
    data: Path
    out: Path
    stage: str = "base"
    resume: bool = False
    device: str | None = None
    minutes: float | None = None
    steps: int | None = None
    batch: int | None = None
    ch: int | None = None
    run: Path | None = None
    threads: int | None = None
    seed: int = 0
    checkpoint_minutes: float = 3.0
    sample_minutes: float = 6.0
    log_every: int = 25
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    ema_decay: float = 0.999
    mismatch_weight: float = 0.5
    recon_weight: float = 4.0  # L1 between G(z, caption) and that emoji's render (0: pure GAN)
    adv_weight: float = 0.01  # upsampler: weight of the adversarial term next to L1 (0: L1 only)
    caption_name_prob: float = 0.5
    bf16: bool | None = None  # None: when the CPU supports it
    quiet: bool = False
    standing_batches: int = 16  # batches that re-estimate the EMA generator's BN statistics


# ----------------------------------------------------------------------------------------------- models


class DBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, down: bool, first: bool = False):
        super().__init__()
        self.first, self.down = first, down
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(in_ch, out_ch, 1)) if (in_ch != out_ch or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.skip is not None:
            if self.first:
                s = self.skip(F.avg_pool2d(s, 2) if self.down else s)
            else:
                s = self.skip(s)
                s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ProjectionDiscriminator(nn.Module):
    """SN-ResNet discriminator for 32 px RGBA with a projection head on the text embedding."""

    def __init__(self, ch: int = 32, embed_dim: int = 384, in_channels: int = 4):
        super().__init__()
        self.blocks = nn.Sequential(
            DBlock(in_channels, ch, down=True, first=True),  # 16
            DBlock(ch, ch * 2, down=True),  # 8
            DBlock(ch * 2, ch * 4, down=True),  # 4
            DBlock(ch * 4, ch * 4, down=False),
        )
        self.linear = spectral_norm(nn.Linear(ch * 4, 1))
        self.embed = spectral_norm(nn.Linear(embed_dim, ch * 4, bias=False))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def head(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1) + (self.embed(e) * h).sum(dim=1)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x), e)


class PatchDiscriminator(nn.Module):
    """Upsampler critic: spectral-norm convs over [128 px RGBA, bicubic of its 32 px input] -> 16x16 logits."""

    def __init__(self, ch: int = 32, channels: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = channels * 2
        for out_ch in (ch, ch * 2, ch * 4):  # 128 -> 64 -> 32 -> 16
            layers += [spectral_norm(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            in_ch = out_ch
        layers.append(spectral_norm(nn.Conv2d(in_ch, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, low], dim=1))


def base_config(ch: int) -> BaseConfig:
    return BaseConfig(z_dim=128, embed_dim=384, cond_dim=128, ch=ch, channel_mult=(8, 4, 2, 1))


def upsampler_config(ch: int) -> UpsamplerConfig:
    return UpsamplerConfig(channels=4, ch=ch, n_blocks=4, scale=4, tail_ch=max(8, ch // 2))


# ----------------------------------------------------------------------------------------------- helpers


def cpu_supports_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                return "avx512_bf16" in handle.read() or "amx_bf16" in handle.read()
        except OSError:
            return False


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Dist:
    """Rank/world of a torchrun launch (a single process otherwise)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                dist.init_process_group(backend=backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, module: nn.Module) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_module(self, module: nn.Module) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)

    def all_mean(self, value: float) -> float:
        if not self.enabled:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item() / self.world)

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (so all stop at the same step)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, obj) -> list:
        """Every process's ``obj`` in rank order (a collective: every process must call it)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        gathered: list = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()


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


def save_grid(images: torch.Tensor, rows: int, path: Path) -> None:
    """Premultiplied RGBA batch -> a PNG grid (rows x cols) on a light checkerboard-free grey."""
    from PIL import Image

    rgba = premultiplied_to_rgba_uint8(images).numpy()
    n, h, w, _ = rgba.shape
    cols = math.ceil(n / rows)
    sheet = Image.new("RGBA", (cols * w, rows * h), (235, 235, 235, 255))
    for i in range(n):
        tile = Image.fromarray(rgba[i], "RGBA")
        sheet.alpha_composite(tile, ((i % cols) * w, (i // cols) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.convert("RGB").save(path)


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"


def _read_manifest(folder: Path) -> dict:
    path = folder / "model.json"
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return {}
    return {}


def default_manifest() -> dict:
    return {
        "name": "emoji",
        "version": "0.1.0",
        "description": "Text-conditional emoji GAN: a 32 px base generator and a learned 4x RGBA upsampler.",
        "conditioning": {"kind": "text", "encoder": "all-MiniLM-L6-v2", "embedding_dim": 384},
        "default_truncation": 0.8,
        "license": "SIL Open Font License 1.1 (Noto Color Emoji); model weights Apache-2.0",
        "training_data": "Every fully-qualified emoji of Unicode emoji-test.txt rendered with Noto Color Emoji "
        "(Debian fonts-noto-color-emoji), captions from emoji-test names and CLDR annotations.",
        "metrics": {},
    }


def write_model_folder(
    out: Path,
    generator: BaseGenerator | None,
    upsampler: Upsampler | None,
    training_update: dict | None = None,
) -> None:
    """Write/refresh the model folder, keeping whichever stage is not given from what is there."""
    from studio.models.format import ModelError, load_model, save_model

    manifest = _read_manifest(out) or default_manifest()
    existing = None
    if (generator is None or upsampler is None) and (out / "model.json").exists():
        try:
            existing = load_model(out)
        except ModelError:
            existing = None
    if generator is None:
        if existing is None:
            raise TrainError(f"'{out}' has no base generator yet; train the base stage first.")
        generator = existing.generator
    if upsampler is None and existing is not None:
        upsampler = existing.upsampler
    for key in ("format", "architecture", "resolution", "channels", "z_dim", "files"):
        manifest.pop(key, None)
    if training_update:
        training = dict(manifest.get("training", {}))
        training.update(training_update)
        manifest["training"] = training
    save_model(out, manifest, generator.eval(), upsampler.eval() if upsampler is not None else None)


# ----------------------------------------------------------------------------------------------- training


def _setup(options: TrainOptions):
    if options.threads:
        torch.set_num_threads(options.threads)
    device = pick_device(options.device)
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist = Dist(device)
    data = load_dataset(options.data)
    run = options.run or Path("runs") / options.stage
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
        options.out.mkdir(parents=True, exist_ok=True)
    use_bf16 = options.bf16 if options.bf16 is not None else (device.type == "cpu" and cpu_supports_bf16())
    if device.type == "cuda":
        use_bf16 = torch.cuda.is_bf16_supported() if options.bf16 is None else options.bf16
    return device, dist, data, run, use_bf16


def _log(options: TrainOptions, dist: Dist, text: str) -> None:
    if dist.main and not options.quiet:
        print(text, flush=True)


def train(options: TrainOptions) -> dict:
    """Run one stage; returns a summary dict (step, images/s, losses, minutes)."""
    if options.stage == "base":
        return train_base(options)
    if options.stage == "upsampler":
        return train_upsampler(options)
    raise TrainError(f"Unknown stage '{options.stage}' (use base or upsampler).")


def _stop(options: TrainOptions, step: int, started: float, done_seconds: float) -> bool:
    if options.steps is not None and step >= options.steps:
        return True
    if options.minutes is not None and time.time() - started >= options.minutes * 60.0:
        return True
    return False


def train_base(options: TrainOptions) -> dict:
    device, dist, data, run, use_bf16 = _setup(options)
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
    sampler = CaptionSampler(data, train_index, options.caption_name_prob, options.seed * 1000 + dist.rank)
    torch_rng = torch.Generator().manual_seed(options.seed * 1000 + dist.rank + 1)
    step, trained_seconds, images_seen = 0, 0.0, 0
    ckpt_path = run / CHECKPOINT
    state = None
    if options.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        g_ema.load_state_dict(state["g_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, trained_seconds, images_seen, mine = _restore_progress(state, dist)
        if mine is not None:
            sampler.set_state(mine["sampler"])
            torch_rng.set_state(mine["torch"])
        _log(options, dist, f"resumed {ckpt_path} at step {step}")
    elif options.resume:
        _log(options, dist, f"no checkpoint in {run}; starting from scratch")
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
    _log(
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
            **_progress_fields(
                step, trained_seconds + time.time() - started, images_seen, ranks_state, history
            ),
            "config": base_config(ch).to_json(),
            "batch": batch,
            "world": dist.world,
        }
        _atomic_torch_save(state, ckpt_path)
        from safetensors.torch import save_file

        snap = copy.deepcopy(g_ema).cpu()
        standing_stats(snap, embeddings.cpu(), batches=options.standing_batches)
        (run / "snapshots").mkdir(exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in snap.state_dict().items()},
            str(run / "snapshots" / f"g_ema_{step:07d}.safetensors"),
        )
        (run / "snapshots" / "config.json").write_text(json.dumps(base_config(ch).to_json()))

    stop = _stop(options, step, started, trained_seconds)
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
            _log(
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
        stop = dist.any(_stop(options, step, started, trained_seconds))
    elapsed = time.time() - started
    checkpoint(final=True)
    summary = _run_summary(
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
        _log(options, dist, json.dumps(summary))
    dist.barrier()
    dist.close()
    return summary


def train_upsampler(options: TrainOptions) -> dict:
    device, dist, data, run, use_bf16 = _setup(options)
    batch = options.batch or 16
    ch = options.ch or 32
    torch.manual_seed(options.seed)
    upsampler = Upsampler(upsampler_config(ch)).to(device)
    opt = torch.optim.Adam(upsampler.parameters(), lr=5e-4, betas=(0.9, 0.99))
    adversarial = options.adv_weight > 0
    critic = PatchDiscriminator(ch=ch).to(device)
    opt_d = torch.optim.Adam(critic.parameters(), lr=options.lr_d, betas=(0.0, 0.99))
    big = rgba_uint8_to_premultiplied(torch.from_numpy(data.images128))
    small = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32))
    train_index = data.train_index
    rng = np.random.default_rng(options.seed * 1000 + dist.rank)
    torch_rng = torch.Generator().manual_seed(options.seed * 1000 + dist.rank + 1)
    step, trained_seconds, images_seen = 0, 0.0, 0
    ckpt_path = run / CHECKPOINT
    state = None
    if options.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        upsampler.load_state_dict(state["upsampler"])
        opt.load_state_dict(state["opt"])
        if "critic" in state:
            critic.load_state_dict(state["critic"])
            opt_d.load_state_dict(state["opt_d"])
        elif adversarial:
            _log(options, dist, "the checkpoint has no discriminator (an L1 run): starting a fresh one")
        step, trained_seconds, images_seen, mine = _restore_progress(state, dist)
        if mine is not None:
            rng.bit_generator.state = mine["numpy"]
            torch_rng.set_state(mine["torch"])
        _log(options, dist, f"resumed {ckpt_path} at step {step}")
    history = RunHistory(state, {"batch": batch * dist.world, "adv_weight": options.adv_weight})
    dist.broadcast_module(upsampler)
    dist.broadcast_module(critic)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    started = time.time()
    last_ckpt = started
    window_t, window_imgs, count = time.time(), 0, 0
    sums = {"l1": 0.0, "d": 0.0, "g": 0.0}
    _log(
        options,
        dist,
        f"upsampler: {sum(p.numel() for p in upsampler.parameters()) / 1e6:.3f} M params, batch "
        f"{batch} x {dist.world}, bf16 {use_bf16}, adversarial weight {options.adv_weight}",
    )

    def checkpoint() -> None:
        ranks_state = dist.gather({"numpy": rng.bit_generator.state, "torch": torch_rng.get_state()})
        if dist.main:
            _atomic_torch_save(
                {
                    "upsampler": upsampler.state_dict(),
                    "opt": opt.state_dict(),
                    "critic": critic.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    **_progress_fields(
                        step, trained_seconds + time.time() - started, images_seen, ranks_state, history
                    ),
                    "config": upsampler_config(ch).to_json(),
                },
                ckpt_path,
            )

    stop = _stop(options, step, started, trained_seconds)
    while not stop:
        pick = torch.from_numpy(rng.choice(train_index, batch))
        target = big[pick]
        x = small[pick]
        if rng.random() < 0.5:
            target, x = target.flip(3), x.flip(3)
        x = degrade_for_upsampler(x, torch_rng)
        target, x = target.to(device), x.to(device)
        low = F.interpolate(x, scale_factor=upsampler.config.scale, mode="bicubic", align_corners=False)
        with autocast:
            pred = upsampler(x)
        if adversarial:  # critic step on (real, upsampled) for the same inputs
            with autocast:
                out = critic(torch.cat([target, pred.detach().float()]), torch.cat([low, low])).float()
                loss_d = F.relu(1.0 - out[:batch]).mean() + F.relu(1.0 + out[batch:]).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            dist.average_gradients(critic)
            opt_d.step()
            sums["d"] += float(loss_d.detach())
        l1 = F.l1_loss(pred.float(), target)
        loss = l1
        if adversarial:
            critic.requires_grad_(False)
            with autocast:
                adv_g = -critic(pred.float(), low).float().mean()
            critic.requires_grad_(True)
            loss = l1 + options.adv_weight * adv_g
            sums["g"] += float(adv_g.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        dist.average_gradients(upsampler)
        opt.step()
        step += 1
        images_seen += batch * dist.world
        window_imgs += batch * dist.world
        sums["l1"] += float(l1.detach())
        count += 1
        now = time.time()
        if step % options.log_every == 0:
            adv_text = f" | loss D {sums['d'] / count:.3f} G {sums['g'] / count:.3f}" if adversarial else ""
            _log(
                options,
                dist,
                f"step {step} | {window_imgs / max(now - window_t, 1e-6):.0f} img/s | L1 "
                f"{sums['l1'] / count:.4f}{adv_text} | {(trained_seconds + now - started) / 60:.1f} min",
            )
            window_t, window_imgs, count = now, 0, 0
            sums = dict.fromkeys(sums, 0.0)
        if now - last_ckpt >= options.checkpoint_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
        stop = dist.any(_stop(options, step, started, trained_seconds))
    elapsed = time.time() - started
    checkpoint()
    summary = _run_summary(
        "upsampler", step, images_seen, trained_seconds + elapsed, batch, dist, use_bf16, ch, device
    )
    summary.update(
        threads=torch.get_num_threads(), adv_weight=options.adv_weight, runs=history.runs(step, images_seen)
    )
    if dist.main:
        if (options.out / "model.json").exists():
            write_model_folder(options.out, None, upsampler.cpu().eval(), {"upsampler": summary})
        else:
            from safetensors.torch import save_file

            save_file(
                {k: v.contiguous() for k, v in upsampler.cpu().state_dict().items()},
                str(run / "upsampler.safetensors"),
            )
        _log(options, dist, json.dumps(summary))
    dist.barrier()
    dist.close()
    return summary


class RunHistory:
    """Every run that made a checkpoint, oldest first; a resumed run appends itself, so a model's card can list
    each run's steps, minutes and speed (kept in the checkpoint and in the run summary)."""

    def __init__(self, state: dict | None, settings: dict):
        state = state or {}
        previous = state.get("runs")
        if previous is None and state.get("step"):  # written before runs were recorded
            previous = [
                {"from_step": 0, "to_step": state["step"], "minutes": round(state["seconds"] / 60, 2)}
            ]
        self.previous = list(previous or [])
        self.start_step = int(state.get("step", 0))
        self.start_images = int(state.get("images", 0))
        self.started = time.time()
        self.settings = settings

    def runs(self, step: int, images: int) -> list[dict]:
        seconds = time.time() - self.started
        current = {
            "from_step": self.start_step,
            "to_step": step,
            "minutes": round(seconds / 60, 2),
            "img_per_s": round((images - self.start_images) / max(seconds, 1e-6), 1),
            "threads": torch.get_num_threads(),
            "machine": _machine(),
            **self.settings,
        }
        return [*self.previous, current]


def _progress_fields(step: int, seconds: float, images: int, rng: list, history: RunHistory) -> dict:
    """What both stages' checkpoints record about progress, for an exact resume and the run history."""
    return {
        "step": step,
        "seconds": seconds,
        "images": images,
        "rng": rng,
        "runs": history.runs(step, images),
    }


def _restore_progress(state: dict, dist: Dist) -> tuple[int, float, int, dict | None]:
    """Step, trained seconds and images of a checkpoint, and this process's RNG state (None for a rank the
    checkpoint did not have, e.g. after adding processes)."""
    ranks = state["rng"]
    mine = ranks[dist.rank] if dist.rank < len(ranks) else None
    return state["step"], state["seconds"], state["images"], mine


def _run_summary(stage, step, images_seen, seconds, batch, dist, use_bf16, ch, device) -> dict:
    """What a finished run reports (and the model card quotes): progress, speed and the setup it ran on."""
    return {
        "stage": stage,
        "step": step,
        "images": images_seen,
        "minutes": round(seconds / 60, 2),
        "img_per_s": round(images_seen / max(seconds, 1e-6), 1),
        "batch": batch,
        "processes": dist.world,
        "bf16": use_bf16,
        "ch": ch,
        "device": str(device),
        "machine": _machine(),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun -m studio.training.train ...`` (same options as ``gan-studio train``)."""
    from studio.cli import main as cli_main

    return cli_main(["train", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
