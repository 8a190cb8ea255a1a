"""The upsampler stage: the 4x RGBA upsampler, L1 on real pairs plus a patch critic (see train.py)."""

from __future__ import annotations

import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from studio.models.cgan import Upsampler, rgba_uint8_to_premultiplied
from studio.training.augment import degrade_for_upsampler, faint_dips
from studio.training.networks import PatchDiscriminator, upsampler_config
from studio.training.options import TrainError, TrainOptions
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
    setup_run,
    should_stop,
    write_model_folder,
    write_weights,
)


def train_upsampler(options: TrainOptions) -> dict:
    device, dist, data, run, use_bf16 = setup_run(options)
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
    numpy_seed, torch_seed = rank_seeds(options, dist)
    rng = np.random.default_rng(numpy_seed)
    torch_rng = torch.Generator().manual_seed(torch_seed)
    step, trained_seconds, images_seen = 0, 0.0, 0
    ckpt_path, state = open_checkpoint(options, run)
    if state is not None:
        upsampler.load_state_dict(state["upsampler"])
        opt.load_state_dict(state["opt"])
        if "critic" in state:
            critic.load_state_dict(state["critic"])
            opt_d.load_state_dict(state["opt_d"])
        elif adversarial:
            log_line(options, dist, "the checkpoint has no discriminator (an L1 run): starting a fresh one")
        step, trained_seconds, images_seen, mine = restore_progress(state, dist)
        if mine is not None:
            rng.bit_generator.state = mine["numpy"]
            torch_rng.set_state(mine["torch"])
        log_line(options, dist, f"resumed {ckpt_path} at step {step}")
    elif options.init_upsampler is not None:
        weights = read_weights(options.init_upsampler)
        if not same_shapes(weights, upsampler.state_dict()):
            raise TrainError(
                f"The weights in '{options.init_upsampler}' do not fit this upsampler (another width?)."
            )
        upsampler.load_state_dict(weights)
        log_line(options, dist, f"upsampler initialised from {options.init_upsampler}")
    history = RunHistory(
        state,
        {"batch": batch * dist.world, "adv_weight": options.adv_weight, "dip_augment": options.dip_augment},
    )
    dist.broadcast_module(upsampler)
    dist.broadcast_module(critic)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    started = time.time()
    last_ckpt = started
    window_t, window_imgs, count = time.time(), 0, 0
    sums = {"l1": 0.0, "d": 0.0, "g": 0.0}
    log_line(
        options,
        dist,
        f"upsampler: {sum(p.numel() for p in upsampler.parameters()) / 1e6:.3f} M params, batch "
        f"{batch} x {dist.world}, bf16 {use_bf16}, adversarial weight {options.adv_weight}, faint dips "
        f"{options.dip_augment}",
    )

    def checkpoint() -> None:
        ranks_state = dist.gather({"numpy": rng.bit_generator.state, "torch": torch_rng.get_state()})
        if dist.main:
            save_checkpoint(
                {
                    "upsampler": upsampler.state_dict(),
                    "opt": opt.state_dict(),
                    "critic": critic.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    **progress_fields(
                        step, trained_seconds + time.time() - started, images_seen, ranks_state, history
                    ),
                    "config": upsampler_config(ch).to_json(),
                },
                ckpt_path,
            )

    stop = should_stop(options, step, started)
    while not stop:
        pick = torch.from_numpy(rng.choice(train_index, batch))
        target = big[pick]
        x = small[pick]
        if rng.random() < 0.5:
            target, x = target.flip(3), x.flip(3)
        if options.dip_augment > 0:
            x = faint_dips(x, options.dip_augment, torch_rng)
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
            log_line(
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
        stop = dist.any(should_stop(options, step, started))
    elapsed = time.time() - started
    checkpoint()
    summary = run_summary(
        "upsampler", step, images_seen, trained_seconds + elapsed, batch, dist, use_bf16, ch, device
    )
    summary.update(
        threads=torch.get_num_threads(),
        adv_weight=options.adv_weight,
        dip_augment=options.dip_augment,
        runs=history.runs(step, images_seen),
    )
    if dist.main:
        if (options.out / "model.json").exists():
            write_model_folder(options.out, None, upsampler.cpu().eval(), {"upsampler": summary})
        else:
            write_weights(upsampler.cpu().state_dict(), run / "upsampler.safetensors")
        log_line(options, dist, json.dumps(summary))
    dist.barrier()
    dist.close()
    return summary
