"""Conditional GAN architectures of the default model: a 32 px text-conditional base and a 4x upsampler.

Both are plain ``nn.Module``s built from the hyper-parameters stored in a model's ``model.json`` so that
tests can build tiny random instances and the shipped model can be loaded without pickles.

Conventions shared with the trainer and the engine:
- images are RGBA in [-1, 1], channels first, colour *premultiplied* by alpha (transparent pixels are 0 in
  every channel, so blurry edges never pick up a stray colour);
- the base generator sees ``[z ; projected condition]``; its first linear layer is the "first weight that
  sees z" used for closed-form (SeFa) directions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BaseConfig:
    """Hyper-parameters of :class:`BaseGenerator` (stored under ``architecture.base`` in model.json)."""

    z_dim: int = 128
    embed_dim: int = 384  # size of the text embedding (all-MiniLM-L6-v2: 384)
    num_classes: int = 0  # > 0: class-conditional (a learned table) instead of text
    cond_dim: int = 128
    ch: int = 64
    channel_mult: tuple[int, ...] = (4, 4, 2, 1)  # widths at 4, 8, 16, 32 px
    out_channels: int = 4

    @property
    def resolution(self) -> int:
        return 4 * 2 ** (len(self.channel_mult) - 1)

    @property
    def places(self) -> int:
        """How many places read the condition: the first linear layer, then each up-block's two norms."""
        return 1 + 2 * (len(self.channel_mult) - 1)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> BaseConfig:
        data = dict(data)
        if "channel_mult" in data:
            data["channel_mult"] = tuple(data["channel_mult"])
        return cls(**data)


@dataclass(frozen=True)
class UpsamplerConfig:
    """Hyper-parameters of :class:`Upsampler` (stored under ``architecture.upsampler``)."""

    channels: int = 4
    ch: int = 64
    n_blocks: int = 4
    scale: int = 4
    tail_ch: int = 32

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> UpsamplerConfig:
        return cls(**data)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias are predicted from the conditioning vector (BigGAN style)."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.gain.bias)
        nn.init.zeros_(self.bias.weight)
        nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = 1.0 + self.gain(cond)
        bias = self.bias(cond)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling; same values as ``F.interpolate(mode="nearest")``, several times
    faster on CPU (one strided copy instead of the generic interpolation kernel)."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class GeneratorBlock(nn.Module):
    """Residual up-block: CBN-ReLU-up-conv-CBN-ReLU-conv, with a 1x1 conv on the upsampled skip."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int):
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_ch, cond_dim)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(out_ch, cond_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond2: torch.Tensor | None = None) -> torch.Tensor:
        """``cond`` feeds both norms, or the first only where ``cond2`` feeds the second."""
        h = F.relu(self.norm1(x, cond))
        h = upsample2x(h)
        h = self.conv1(h)
        h = self.conv2(F.relu(self.norm2(h, cond if cond2 is None else cond2)))
        return h + self.skip(upsample2x(x))


class BaseGenerator(nn.Module):
    """Text- (or class-) conditional generator at 32 px: ``forward(z, condition) -> RGBA in [-1, 1]``.

    ``condition`` is a float embedding (text) of size ``embed_dim`` or a long tensor of class indices.
    """

    def __init__(self, config: BaseConfig):
        super().__init__()
        self.config = config
        if config.num_classes > 0:
            self.class_embedding = nn.Embedding(config.num_classes, config.cond_dim)
        else:
            self.embed_proj = nn.Linear(config.embed_dim, config.cond_dim)
        mult = config.channel_mult
        full_cond = config.z_dim + config.cond_dim
        self.fc = nn.Linear(full_cond, 4 * 4 * config.ch * mult[0])
        self.blocks = nn.ModuleList(
            GeneratorBlock(config.ch * a, config.ch * b, full_cond) for a, b in zip(mult[:-1], mult[1:])
        )
        self.out_norm = nn.BatchNorm2d(config.ch * mult[-1])
        self.out_conv = nn.Conv2d(config.ch * mult[-1], config.out_channels, 3, padding=1)

    def condition(self, condition: torch.Tensor) -> torch.Tensor:
        """Project a text embedding (or look up a class) into the generator's conditioning space."""
        if self.config.num_classes > 0:
            return self.class_embedding(condition)
        return self.embed_proj(condition)

    def z_weight(self) -> torch.Tensor:
        """The first weight that sees z (``out x z_dim``), used for closed-form latent directions."""
        return self.fc.weight[:, : self.config.z_dim]

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.synthesize(z, self.condition(condition))

    @property
    def places(self) -> int:
        """How many places read the condition: the first linear layer, then each block's two norms."""
        return self.config.places

    def synthesize(self, z: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """Render from z and an already projected condition (lets the engine blend conditions linearly).

        ``projected`` is ``N x cond_dim`` (one condition read at every place) or ``N x places x cond_dim``, one
        condition per place that reads it, in :attr:`places` order (layered concept rows, as StyleGAN's W+:
        a fit moves the coarse and the fine layers apart). The same row at every place draws exactly what the
        two-dimensional condition draws."""
        if projected.dim() == 2:
            cond = torch.cat([z, projected], dim=1)
            x = self.fc(cond).view(z.shape[0], -1, 4, 4)
            for block in self.blocks:
                x = block(x, cond)
        else:
            if projected.shape[1] != self.places:
                raise ValueError(
                    f"Layered conditions need {self.places} places, one per layer that reads them; "
                    f"these have {projected.shape[1]}."
                )
            conds = [torch.cat([z, projected[:, k]], dim=1) for k in range(self.places)]
            x = self.fc(conds[0]).view(z.shape[0], -1, 4, 4)
            for k, block in enumerate(self.blocks):
                x = block(x, conds[1 + 2 * k], conds[2 + 2 * k])
        return torch.tanh(self.out_conv(F.relu(self.out_norm(x))))


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class Upsampler(nn.Module):
    """Learned 4x super-resolution for RGBA: predicts a residual over the bicubic upscale of its input."""

    def __init__(self, config: UpsamplerConfig):
        super().__init__()
        if config.scale not in (2, 4, 8):
            raise ValueError("the upsampler's scale must be 2, 4 or 8")
        self.config = config
        ch, tail = config.ch, config.tail_ch
        self.head = nn.Conv2d(config.channels, ch, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(ch) for _ in range(config.n_blocks)))
        ups: list[nn.Module] = []
        in_ch = ch
        for _ in range(config.scale.bit_length() - 1):
            ups += [nn.Conv2d(in_ch, tail * 4, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2)]
            in_ch = tail
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(tail, config.channels, 3, padding=1)

    def forward(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """The 4x picture, clamped to [-1, 1]; ``clamp=False`` returns it unclamped (a fit that needs gradients
        where a pixel lies beyond the range, as a hole's alpha at 0 does, clamps it straight-through itself)."""
        base = F.interpolate(x, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        h = self.head(x)
        h = h + self.body(h)
        out = base + self.tail(self.up(h))
        return out.clamp(-1.0, 1.0) if clamp else out


def upsampler_layout(device_type: str) -> torch.memory_format:
    """The memory layout the upsampler's weights run fastest in on ``device_type``: channels-last on the CPU, where
    oneDNN then runs its 3x3 convolutions without reordering each one (the engine benchmark's ``upsampler_layout``;
    README, *Engine* under *Benchmarks*), the default elsewhere (not measured on a GPU)."""
    return torch.channels_last if device_type == "cpu" else torch.contiguous_format


def premultiplied_to_rgba_uint8(images: torch.Tensor) -> torch.Tensor:
    """``N x 4 x H x W`` premultiplied RGBA in [-1, 1] -> ``N x H x W x 4`` straight-alpha uint8 (on CPU)."""
    x = ((images.float() + 1.0) * 0.5).clamp(0.0, 1.0)
    rgb, alpha = x[:, :3], x[:, 3:4]
    straight = torch.where(alpha > 1e-3, (rgb / alpha.clamp_min(1e-3)).clamp(0.0, 1.0), torch.zeros_like(rgb))
    out = torch.cat([straight, alpha], dim=1)
    return (out * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()


def rgba_uint8_to_premultiplied(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`premultiplied_to_rgba_uint8` (``N x H x W x 4`` uint8 -> premultiplied [-1, 1])."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    rgb, alpha = x[:, :3], x[:, 3:4]
    return torch.cat([rgb * alpha, alpha], dim=1) * 2.0 - 1.0
