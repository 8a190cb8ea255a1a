"""DiffAugment for premultiplied RGBA in [-1, 1]: colour, translation and cutout, differentiable.

The same random transform family is applied to real and generated images before the discriminator sees
them (Zhao et al., 2020), so the discriminator cannot memorise the 3,300 training emoji. Work happens in
[0, 1] premultiplied space so "empty" is 0 in every channel: translated-in borders and cut-out squares
become transparent, and colour changes never touch transparent pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from studio.training.options import DEFAULT_AUGMENT


def _colour(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    rgb, alpha = x[:, :3], x[:, 3:4]
    rand = torch.rand(n, 3, 1, 1, generator=generator, device="cpu").to(x.device, x.dtype)
    brightness = (rand[:, 0:1] - 0.5) * 0.5  # +-0.25, scaled by alpha (premultiplied)
    rgb = rgb + brightness * alpha
    mean = rgb.mean(dim=1, keepdim=True)
    rgb = (rgb - mean) * (rand[:, 1:2] * 2.0) + mean  # saturation in [0, 2]
    # contrast in [0.5, 1.5] about the image's mean colour, scaled by alpha like the brightness, so that a
    # transparent pixel stays (0, 0, 0, 0) (about the mean alone, it turned a tint of the mean)
    pixel_mean = rgb.mean(dim=(1, 2, 3), keepdim=True) * alpha
    rgb = (rgb - pixel_mean) * (rand[:, 2:3] + 0.5) + pixel_mean
    return torch.cat([rgb, alpha], dim=1)


def _translation(x: torch.Tensor, generator: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = torch.randint(-sh, sh + 1, (n, 1, 1), generator=generator, device="cpu").to(x.device)
    shift_x = torch.randint(-sw, sw + 1, (n, 1, 1), generator=generator, device="cpu").to(x.device)
    grid_y = torch.arange(h, device=x.device).view(1, h, 1) + shift_y + 1
    grid_x = torch.arange(w, device=x.device).view(1, 1, w) + shift_x + 1
    grid_y = grid_y.clamp(0, h + 1).expand(n, h, w)
    grid_x = grid_x.clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, (1, 1, 1, 1))  # zero = transparent
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[batch, grid_y, grid_x].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=generator, device="cpu").to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=generator, device="cpu").to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = oy - ch // 2, ox - cw // 2
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    mask = (~inside).to(x.dtype).unsqueeze(1)
    return x * mask


_AUGMENTS = {"color": _colour, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,cutout"`` -> ("color", "cutout"); ``""`` or ``"none"``: no augmentation. Raises ValueError
    (one sentence) for a name DiffAugment does not have."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    if names == ("none",):
        return ()
    unknown = [name for name in names if name not in _AUGMENTS]
    if unknown:
        raise ValueError(
            f"'{unknown[0]}' is not a DiffAugment policy; use any of {', '.join(_AUGMENTS)} (comma-separated) "
            "or none."
        )
    return names


def diff_augment(
    x: torch.Tensor, policy: str = DEFAULT_AUGMENT, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Augment premultiplied RGBA in [-1, 1] (N x 4 x H x W); returns the same layout. Cutout makes a
    transparent square hole in every image, real and fake alike."""
    names = parse_policy(policy)
    if not names:
        return x
    y = (x + 1.0) * 0.5
    for name in names:
        y = _AUGMENTS[name](y, generator)
    return y * 2.0 - 1.0


def degrade_for_upsampler(x32: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur and noise a batch of 32 px premultiplied RGBA inputs so the upsampler copes with generated ones."""
    n = x32.shape[0]
    sigma = torch.rand(n, generator=generator) * 1.0  # 0..1 px gaussian blur
    radius = 2
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.exp(-(coords[None] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    y = (x32 + 1.0) * 0.5
    c = y.shape[1]
    k = kernels.to(y.dtype)
    # separable per-sample blur via grouped conv (batch folded into channels)
    yy = y.reshape(1, n * c, *y.shape[2:])
    kx = k.repeat_interleave(c, 0).view(n * c, 1, 1, -1)
    ky = k.repeat_interleave(c, 0).view(n * c, 1, -1, 1)
    yy = F.conv2d(F.pad(yy, (radius, radius, 0, 0), mode="replicate"), kx, groups=n * c)
    yy = F.conv2d(F.pad(yy, (0, 0, radius, radius), mode="replicate"), ky, groups=n * c)
    y = yy.view_as(y)
    noise_level = torch.rand(n, 1, 1, 1, generator=generator) * 0.03
    y = y + torch.randn(y.shape, generator=generator) * noise_level
    alpha = y[:, 3:4].clamp(0.0, 1.0)
    rgb = torch.minimum(y[:, :3].clamp_min(0.0), alpha)  # stay a valid premultiplied image
    return torch.cat([rgb, alpha], dim=1) * 2.0 - 1.0


def faint_dips(
    x32: torch.Tensor,
    share: float,
    generator: torch.Generator | None = None,
    most: int = 4,
    depth: tuple[float, float] = (0.15, 0.6),
    width: tuple[float, float] = (0.6, 2.0),
    solid: float = 0.9,
) -> torch.Tensor:
    """Faint dips, as a generator draws them, bitten into ``share`` of a batch of 32 px premultiplied RGBA inputs
    (the upsampler's ``--dip-augment``): 1 to ``most`` soft spots or strips (a Gaussian ``width`` px across, up to
    3x as long, at any angle) centred on pixels whose alpha is above ``solid``, each taking ``depth`` of every
    channel at its centre. The upsampler learns from these against the untouched 128 px picture, where the dip is
    solid, so it stops sharpening such dips into the holes that tear generated pictures (session 48)."""
    n, _, height, breadth = x32.shape
    y = (x32 + 1.0) * 0.5
    out = x32.clone()
    rows = torch.arange(height, dtype=torch.float32)[:, None]
    cols = torch.arange(breadth, dtype=torch.float32)[None, :]

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(1, generator=generator))

    for i in range(n):
        if float(torch.rand(1, generator=generator)) >= share:
            continue
        spots = torch.nonzero(y[i, 3] > solid)
        if len(spots) == 0:
            continue
        keep = torch.ones(height, breadth)
        count = int(torch.randint(1, most + 1, (1,), generator=generator))
        for _ in range(count):
            row, col = spots[int(torch.randint(len(spots), (1,), generator=generator))].tolist()
            across = uniform(*width)
            along = across * uniform(1.0, 3.0)
            angle = torch.tensor(uniform(0.0, torch.pi))
            cos, sin = torch.cos(angle), torch.sin(angle)
            dy, dx = rows - row, cols - col
            u, v = dx * cos + dy * sin, dy * cos - dx * sin
            blob = torch.exp(-0.5 * ((u / along) ** 2 + (v / across) ** 2))
            keep *= 1.0 - uniform(*depth) * blob
        out[i] = (y[i] * keep.to(y.dtype)) * 2.0 - 1.0
    return out
