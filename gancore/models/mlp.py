"""The classic fully connected GAN (Goodfellow et al. 2014), in its classic architecture.

G: latent 100 -> 256 -> 512 -> 784, LeakyReLU 0.2, Tanh.  D: 784 -> 512 -> 256 -> 1 with Dropout 0.3.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gancore.augment import parse_policy
from gancore.models.noise_gan import NoiseGAN


@dataclass(frozen=True)
class MLPGANConfig:
    latent_dim: int = 100            # length of the noise vector z
    g_hidden: tuple = (256, 512)     # widths of G's hidden layers (a comma list on the command line)
    d_hidden: tuple = (512, 256)     # widths of D's hidden layers
    dropout: float = 0.3             # dropout after each of D's hidden layers (0 = none)
    image_size: int = 28             # side of the square images, pixels
    image_channels: int = 1          # 1 = grey, 3 = RGB
    loss: str = "bce"                # "bce" (non-saturating) or "hinge"
    augment: str = ""                # DiffAugment policy for D's inputs: a comma list of color, translation, cutout
    ada_target: float = 0.0          # > 0: adaptive augmentation probability (ADA) aiming E[sign D(real)] at this

    def __post_init__(self):
        parse_policy(self.augment)


class MLPGenerator(nn.Module):
    def __init__(self, cfg: MLPGANConfig):
        super().__init__()
        self.shape = (cfg.image_channels, cfg.image_size, cfg.image_size)
        dims = [cfg.latent_dim, *cfg.g_hidden]
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers += [nn.Linear(dims[-1], cfg.image_channels * cfg.image_size ** 2), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z.flatten(1)).view(-1, *self.shape)   # (N, latent) -> (N, C, H, W)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: MLPGANConfig):
        super().__init__()
        dims = [cfg.image_channels * cfg.image_size ** 2, *cfg.d_hidden]
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout)]
        layers += [nn.Linear(dims[-1], 1)]   # logits; the sigmoid lives in the loss
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))


class MLPGAN(NoiseGAN):
    model_type = "mlp"
    quantize_ops = ("Gemm", "MatMul")

    def __init__(self, config: MLPGANConfig):
        super().__init__(config)
        self.G = MLPGenerator(config)
        self.D = MLPDiscriminator(config)
