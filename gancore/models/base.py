"""The model contract every GAN follows (after pytorch-CycleGAN-and-pix2pix's base_model).

A model knows everything about itself, so nothing outside `gancore/models/` switches on a model type:
- training: named networks (`networks`: saved as `<name>.*`), groups for optimisation and DDP (`groups`:
  "G" and "D"), one `train_step` in which the D and G phases are visible, `preview(n)` for the grid;
- inference: its `directions()` (direction name -> generator network; one-generator models have one,
  named after the network), `generator(direction)`, `inverse(direction)` for a round trip, and
  `size_multiple` (input sides a fully convolutional generator needs);
- deployment: `export_spec(direction)` (what to export, input/output names, dynamic axes, the pre/post
  processing contract, which ops int8 quantises) and `example_inputs(...)` (real inputs for parity,
  calibration and PSNR).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from gancore.errors import BadInput, Unsupported


@dataclass
class StepContext:
    """What the trainer hands to `train_step`."""
    optimizers: dict[str, torch.optim.Optimizer]
    wrapped: dict[str, nn.Module]          # group name -> module (DDP-wrapped when distributed)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    scaler: torch.amp.GradScaler | None = None

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
    if is_meta(module):
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            parametrized = nn.utils.parametrize.is_parametrized(m, "weight")   # e.g. spectral norm
            nn.init.normal_(m.parametrizations.weight.original if parametrized else m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def is_meta(module: nn.Module) -> bool:
    """Built on the meta device for its shapes only (`registry.meta_shapes`): there is nothing to initialise,
    and drawing random numbers there would import torch's compiler (about a second)."""
    return any(p.is_meta for p in module.parameters())


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """`module` in eval mode for the block, then back in the mode it was in (also when the block raises)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@dataclass(frozen=True)
class ExportSpec:
    """What `gancore.deploy.export` needs to write and check one generator as ONNX."""
    module: nn.Module
    network: str
    direction: str
    input_name: str
    output_name: str
    dynamic_axes: dict
    contract: dict                         # stored in the file's metadata: shapes, ranges, pre/post-processing
    size_multiple: int = 0                 # > 0: fully convolutional, any height/width divisible by this
    quantize_ops: tuple = ("Conv", "ConvTranspose", "Gemm", "MatMul")
    quantize_options: dict = field(default_factory=dict)


def image_io(channels: int, hw: list) -> dict:
    """The contract of an image tensor in [-1, 1] (input or output of a generator)."""
    return {"shape": ["batch", channels, *hw], "dtype": "float32", "layout": "NCHW",
            "channels": "grey" if channels == 1 else "RGB", "range": [-1.0, 1.0], "scale": "x / 127.5 - 1",
            "to_uint8": "round((y + 1) * 127.5), clipped to 0..255"}


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"   # photos the product ships


def example_photos(domain: str | None = None) -> list[Path]:
    """Example photos shipped for a domain name (`<domain>_*.jpg`; all of them for None, none for "")."""
    if domain == "" or not EXAMPLES_DIR.is_dir():
        return []
    return sorted(EXAMPLES_DIR.glob("*.jpg" if domain is None else f"{domain.replace(' ', '_')}_*.jpg"))


def synthetic_photo(size: int, channels: int, seed: int) -> np.ndarray:
    """Smooth random image (C, size, size) in [-1, 1], only when no real photo is available (reports say so)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, channels, 6, 6, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(-1, 1)[0].numpy()


def split_held_out(batches: np.ndarray, source: str) -> dict:
    """Examples (N, ...) -> parity / calibration / held-out batches of 16 (a quarter held out)."""
    k = max(1, len(batches) // 4)
    held, cal = batches[:k], batches[k:] if len(batches) > k else batches
    return {"parity": held[:16], "calibration": [cal[i:i + 16] for i in range(0, len(cal), 16)],
            "held_out": [held[i:i + 16] for i in range(0, len(held), 16)], "source": source}


class GANModel(nn.Module):
    """The contract between a GAN and the rest of the engine; `registry.register(name, ConfigCls, ModelCls)`
    makes a subclass available everywhere (training, CLI, studio, export).

    A model must set or implement:
      model_type, task             its registry name; "noise", "translate" or "inpaint"
      __init__(config)             build its networks from a frozen config dataclass (stored as `self.config`)
      train_step(batch, ctx)       one D phase and one G phase with `ctx.optimizers`; returns named losses
                                   ({"D/real": .., "G/adv": ..})
      preview(n, generator_group)  (images in [-1, 1], images per row) for the preview grid
      export_spec(direction)       what ONNX export writes (`ExportSpec`)
      example_inputs(spec, ...)    real inputs for export parity, int8 calibration and PSNR
      noise(n, generator)          noise models only: the latent batch G draws from

    A model may override (the defaults fit one generator `G` and one discriminator `D`):
      networks(), groups()         named networks saved as `<name>.*`; optimisation / DDP units
      directions(), direction_labels(), inverse(direction)
                                   translation models: direction -> generator network, words, round trip
      discriminator(direction, side), generator_networks(), generator_of(group, direction)
      size_multiple                > 0 for fully convolutional generators (input sides divisible by it)
      extra_tensors(), load_extra_tensors(tensors)
                                   state beyond weights that exact resume needs (e.g. image pools)
    """

    model_type: str = ""
    task: str = ""                     # "noise" (z -> image), "translate" (image -> image), "inpaint"
    size_multiple: int = 0             # > 0 for fully convolutional generators (any size divisible by it)

    def __init__(self, config):
        super().__init__()
        self.config = config

    # ---- training ---------------------------------------------------------------------------------
    # Named networks, saved as `<name>.*` in checkpoints (default: one generator G, one discriminator D).
    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    # Optimisation / DDP units; each is one module whose forward covers one phase.
    def groups(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def generator_networks(self) -> list[str]:
        """Networks inside the generator group (EMA copies are saved as `ema.<name>.*`)."""
        return list(self.directions().values())

    def generator_of(self, group: nn.Module, direction: str | None = None) -> nn.Module:
        """A direction's generator inside (a copy of) the generator group, e.g. the EMA weights."""
        if self.generator_networks() == ["G"]:
            return group
        return getattr(group, self.directions()[self.direction(direction)])

    def train_step(self, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # State beyond weights that exact resume needs (e.g. CycleGAN's history pools).
    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def preview(self, n: int, generator_group: nn.Module, batch=None) -> tuple[torch.Tensor, int]:
        """(images in [-1, 1], images per row) for the preview grid; at most `n` per row."""
        raise NotImplementedError

    # ---- inference --------------------------------------------------------------------------------
    def directions(self) -> dict[str, str]:
        """Direction name -> generator network name."""
        return {"G": "G"}

    def direction_labels(self) -> dict[str, str]:
        """Direction name -> words for people ("horse → zebra")."""
        return {d: d for d in self.directions()}

    def direction(self, name: str | None = None) -> str:
        """A direction by its name or its network's name (None: the first); BadInput names the choices."""
        dirs = self.directions()
        if name is None or name == "":
            return next(iter(dirs))
        if name in dirs:
            return name
        by_network = {net: d for d, net in dirs.items()}
        if name in by_network:
            return by_network[name]
        choices = ", ".join(f"{d!r}" + (f" ({n})" if n != d else "") for d, n in dirs.items())
        raise BadInput(f"{self.model_type} has no direction {name!r}; choose {choices}")

    def generator(self, direction: str | None = None) -> nn.Module:
        return self.networks()[self.directions()[self.direction(direction)]]

    def discriminator(self, direction: str | None = None, side: str = "output") -> nn.Module:
        """The discriminator that judges a direction's output (or its input) images."""
        return self.networks()["D"]

    def inverse(self, direction: str | None = None) -> str | None:
        """The direction that undoes `direction` (for a round trip), or None."""
        return None

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise Unsupported(f"{self.model_type} does not generate from noise")

    # ---- deployment -------------------------------------------------------------------------------
    def export_spec(self, direction: str | None = None) -> ExportSpec:
        raise NotImplementedError

    def example_inputs(self, spec: ExportSpec, calibration_images=None, held_out_images=None,
                       seed: int = 0) -> dict:
        """{"parity": array, "calibration": [arrays], "held_out": [arrays], "source": words}: real inputs."""
        raise NotImplementedError
