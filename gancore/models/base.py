"""The small model contract every GAN follows (after pytorch-CycleGAN-and-pix2pix's base_model).

A model owns named networks (`networks`: saved as `<name>.*`), groups them for optimisation and DDP
(`groups`: e.g. "G" and "D"), and implements one `train_step` in which the D and G phases are visible.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


@dataclass
class StepContext:
    """What the trainer hands to `train_step`."""
    optimizers: dict[str, torch.optim.Optimizer]
    wrapped: dict[str, nn.Module]          # group name -> module (DDP-wrapped when distributed)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    scaler: torch.amp.GradScaler | None = None
    extra: dict = field(default_factory=dict)

    def step(self, group: str, loss: torch.Tensor) -> None:
        """Backward + optimizer step for one group, through the GradScaler when fp16 is on."""
        opt = self.optimizers[group]
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
        else:
            loss.backward()
            opt.step()


def init_dcgan_weights(module: nn.Module, std: float = 0.02) -> None:
    """N(0, 0.02) for convolutions and linear layers, N(1, 0.02) for norm scales (Radford et al. 2016)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            parametrized = nn.utils.parametrize.is_parametrized(m, "weight")   # e.g. spectral norm
            nn.init.normal_(m.parametrizations.weight.original if parametrized else m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GANModel(nn.Module):
    model_type: str = ""
    task: str = ""                     # "noise" (z -> image), "translate" (image -> image), "inpaint"
    generator_group: str = "G"         # the group that gets an EMA copy and is exported

    def __init__(self, config):
        super().__init__()
        self.config = config

    # Named networks, saved as `<name>.*` in checkpoints.
    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    # Optimisation / DDP units; each is one module whose forward covers one phase.
    def groups(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def generator_networks(self) -> list[str]:
        """Networks inside the generator group (EMA copies are saved as `ema.<name>.*`)."""
        return ["G"]

    def train_step(self, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # State beyond weights that exact resume needs (e.g. CycleGAN's history pools).
    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def preview(self, n: int, generator_group: nn.Module, batch=None) -> torch.Tensor:
        """A batch of images in [-1, 1] for the preview grid."""
        raise NotImplementedError
