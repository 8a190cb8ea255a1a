"""The judge: a small CNN trained only on real emoji renders to predict the emoji's subgroup.

It sees premultiplied RGBA at 64 px (any input size is area-resampled to 64), so it can score both real
renders and the cascade's 128 px output. Its penultimate features (global-average-pooled, ``feature_dim``)
are the space for identity (nearest real emoji) and KID. Trained with translation / scale / colour / blur
/ flip augmentation on the training emoji; its accuracy on the held-out emoji is the "ceiling" that
GAN-test accuracy is compared with.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studio.models.tensor_file import save_tensors

JUDGE_FILE = "judge.safetensors"
JUDGE_SIZE = 64


class Judge(nn.Module):
    def __init__(
        self,
        num_classes: int,
        width: int = 24,
        in_channels: int = 4,
        depth: int = 1,
        flip_average: bool = False,
    ):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        prev = in_channels
        for i, w in enumerate(widths):
            for _ in range(depth):  # ``depth`` conv-BN-ReLU layers per scale
                layers += [
                    nn.Conv2d(prev, w, 3, padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                ]
                prev = w
            if i < len(widths) - 1:
                layers.append(nn.AvgPool2d(2))
        self.body = nn.Sequential(*layers)
        self.feature_dim = widths[-1]
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.num_classes = num_classes
        self.width = width
        self.depth = depth
        self.flip_average = flip_average  # features averaged over the image and its mirror image

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-1] != JUDGE_SIZE:
            if x.shape[-1] > JUDGE_SIZE:
                x = F.adaptive_avg_pool2d(x, JUDGE_SIZE)
            else:
                x = F.interpolate(x, size=JUDGE_SIZE, mode="bilinear", align_corners=False)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x)
        flip = self.flip_average and not self.training
        h = self.body(torch.cat([x, x.flip(-1)]) if flip else x)
        pooled = F.avg_pool2d(h, h.shape[-1]).flatten(1)
        return (pooled[: len(x)] + pooled[len(x) :]) * 0.5 if flip else pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def augment_real(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random scale/translation (affine grid), horizontal flip, colour jitter and blur (premultiplied RGBA)."""
    n = x.shape[0]
    scale = 0.8 + 0.3 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.25
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    y = (x + 1.0) * 0.5
    grid = F.affine_grid(theta, list(y.shape), align_corners=False)
    y = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    rgb, alpha = y[:, :3], y[:, 3:4]
    gain = 0.8 + 0.4 * torch.rand(n, 3, 1, 1, generator=generator)
    rgb = torch.minimum(rgb * gain, alpha)
    y = torch.cat([rgb, alpha], dim=1)
    blur = torch.rand(n, generator=generator) < 0.3
    if blur.any():
        soft = F.avg_pool2d(F.pad(y[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        y = y.clone()
        y[blur] = soft
    return y * 2.0 - 1.0


def train_judge(
    data,
    minutes: float = 8.0,
    batch: int = 64,
    width: int = 24,
    seed: int = 0,
    steps: int | None = None,
    log=print,
    init: Judge | None = None,
    depth: int = 1,
    flip_average: bool = False,
) -> tuple[Judge, dict]:
    """Train on the training emoji (64 px renders); report accuracy on held-out real renders. The learning
    rate follows a cosine from its start to zero over the time (or step) budget."""
    from studio.models.cgan import rgba_uint8_to_premultiplied
    from studio.training.dataset import balanced_weights
    from studio.training.runs import cpu_supports_bf16

    bf16 = cpu_supports_bf16()  # training only; every score is computed in float32

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images = F.adaptive_avg_pool2d(rgba_uint8_to_premultiplied(torch.from_numpy(data.images128)), JUDGE_SIZE)
    labels = torch.from_numpy(data.subgroup.astype(np.int64))
    train_index = data.train_index
    probs = torch.from_numpy(balanced_weights(data.group, data.base, train_index))
    judge = (
        init.train()
        if init is not None
        else Judge(len(data.subgroups), width, depth=depth, flip_average=flip_average)
    )
    width, depth = judge.width, judge.depth
    lr = 2e-3 if init is None else 1e-3
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    started = time.time()
    step = 0
    total_steps = steps or 10**9
    while step < total_steps and time.time() - started < minutes * 60:
        done = max(step / total_steps, (time.time() - started) / (minutes * 60))
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + np.cos(np.pi * min(done, 1.0)))
        pick = torch.from_numpy(train_index)[
            torch.multinomial(probs, batch, replacement=True, generator=generator)
        ]
        x = augment_real(images[pick], generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = judge(x).float()
        loss = F.cross_entropy(logits, labels[pick], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            log(
                f"judge step {step} | loss {float(loss.detach()):.3f} | {(time.time() - started) / 60:.1f} min"
            )
    judge.eval()
    info = {
        "steps": step,
        "minutes": round((time.time() - started) / 60, 2),
        "width": width,
        "depth": depth,
        "flip_average": judge.flip_average,
        "classes": len(data.subgroups),
        "train_accuracy": judge_accuracy(judge, images[train_index], labels[train_index]),
        "heldout_accuracy": judge_accuracy(judge, images[data.heldout_index], labels[data.heldout_index]),
    }
    return judge, info


@torch.no_grad()
def judge_logits(judge: Judge, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([judge(images[i : i + batch]) for i in range(0, len(images), batch)])


@torch.no_grad()
def judge_features(judge: Judge, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([judge.features(images[i : i + batch]) for i in range(0, len(images), batch)])


def judge_accuracy(judge: Judge, images: torch.Tensor, labels: torch.Tensor) -> float:
    if len(images) == 0:
        return float("nan")
    return float((judge_logits(judge, images).argmax(1) == labels).float().mean())


def save_judge(judge: Judge, info: dict, path: Path) -> None:
    meta = {
        "info": json.dumps(info),
        "width": str(judge.width),
        "depth": str(judge.depth),
        "flip_average": str(int(judge.flip_average)),
        "classes": str(judge.num_classes),
    }
    save_tensors(path, judge.state_dict(), meta)


def load_judge(path: Path) -> tuple[Judge, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    judge = Judge(
        int(meta["classes"]),
        int(meta["width"]),
        depth=int(meta.get("depth", 1)),
        flip_average=meta.get("flip_average", "0") == "1",
    )
    judge.load_state_dict(tensors)
    return judge.eval(), json.loads(meta.get("info", "{}"))


def main(argv: list[str] | None = None) -> int:
    """``python -m studio.training.judge --data data/emoji --out runs/judge.safetensors --minutes 12``."""
    import argparse

    from studio.training.dataset import load_dataset
    from studio.training.options import TrainError
    from studio.training.runs import set_training_threads

    parser = argparse.ArgumentParser(description="Train the judge classifier on real emoji renders.")
    parser.add_argument("--data", default="data/emoji")
    parser.add_argument("--out", default="runs/judge.safetensors")
    parser.add_argument(
        "--minutes", type=float, default=None, help="time budget (default 12, or none when --steps is given)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="stop after this many steps (the learning rate's cosine then follows steps, not minutes, so the "
        "same command trains the same judge on a faster or slower machine)",
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=1, help="conv layers per scale")
    parser.add_argument(
        "--flip-average", action="store_true", help="score each image and its mirror image, averaged"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--init", default=None, help="continue from these judge weights")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be a positive number of steps.")
    if args.minutes is None:
        args.minutes = math.inf if args.steps else 12.0
    try:
        set_training_threads(args.threads)
    except TrainError as exc:
        parser.error(str(exc))
    init, previous = load_judge(Path(args.init)) if args.init else (None, {})
    judge, info = train_judge(
        load_dataset(args.data),
        minutes=args.minutes,
        steps=args.steps,
        batch=args.batch,
        width=args.width,
        depth=args.depth,
        flip_average=args.flip_average,
        init=init,
    )
    if previous:
        info["steps"] += previous.get("steps", 0)
        info["minutes"] = round(info["minutes"] + previous.get("minutes", 0), 2)
    save_judge(judge, info, Path(args.out))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
