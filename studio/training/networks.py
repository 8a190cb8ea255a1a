"""The discriminators both stages train against, and the generator shapes the shipped model uses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from studio.models.cgan import BaseConfig, UpsamplerConfig


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


def base_config(ch: int, embed_dim: int) -> BaseConfig:
    """The base generator's shape at width ``ch`` for a text encoder of ``embed_dim`` dimensions."""
    return BaseConfig(z_dim=128, embed_dim=embed_dim, cond_dim=128, ch=ch, channel_mult=(8, 4, 2, 1))


def upsampler_config(ch: int) -> UpsamplerConfig:
    return UpsamplerConfig(channels=4, ch=ch, n_blocks=4, scale=4, tail_ch=max(8, ch // 2))
