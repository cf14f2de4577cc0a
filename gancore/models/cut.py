"""Contrastive unpaired translation: CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020).

One generator and one discriminator, so a step costs a half to a third of CycleGAN's. Content is kept by
PatchNCE instead of a cycle: a patch of the translation, seen through G's own encoder and a small MLP head,
must match the patch at the same place of the input against 255 other patches of that input (InfoNCE,
temperature 0.07), over several encoder layers.

- CUT: `nce_idt=True` adds the same loss on a target-domain photo and G's output for it (G should leave a
  zebra a zebra), which steadies training.
- FastCUT: `nce_idt=False, flip_equivariance=True`: half the steps G sees the input mirrored and its output's
  features are mirrored back before the comparison.

For small compute the discriminator is a 70x70 PatchGAN of width `d_base_channels` whose inputs (real and
fake alike) pass through DiffAugment, and two optional losses help: `lambda_structure`, a self-similarity
structure loss on a frozen EfficientNet-Lite0 (after F-LSeSim, Zheng et al. 2021: the cosine similarities
between sampled places of the photo and of its translation must agree), and `lambda_identity_l1` (off).

The generator is one of the CycleGAN family's (by default the mobile depthwise-separable ResNet at 16
channels, fast enough to translate a 256-px photo interactively) and trains on random `crop_size` crops of
`load_size` loads, the pixel scale of the `image_size` photos it translates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gancore.augment import Augment, parse_policy
from gancore.models.base import GANModel, StepContext, init_dcgan_weights, set_requires_grad
from gancore.models.cyclegan import CycleGAN, CycleGANConfig, PatchDiscriminator, ResnetGenerator, lsgan


@dataclass(frozen=True)
class CUTConfig:
    image_channels: int = 3
    base_channels: int = 16          # generator width (ngf)
    res_blocks: int = 9
    block: str = "depthwise"         # "depthwise" (mobile) or "residual" (the paper's ResNet blocks)
    upsample: str = "resize"
    d_base_channels: int = 32        # PatchGAN width (ndf)
    d_layers: int = 3                # 3 -> the 70x70 PatchGAN
    d_spectral_norm: bool = False
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0          # PatchNCE weight; FastCUT's 10 copies its input on small runs
    nce_idt: bool = True             # CUT: PatchNCE on (zebra, G(zebra)) too
    flip_equivariance: bool = False  # FastCUT: mirror the input half the steps
    nce_layers: str = "0,4,7,10,14"  # indices in G's layer list whose outputs are compared (input .. 5th block)
    num_patches: int = 256
    nce_temperature: float = 0.07
    mlp_dim: int = 256               # the projection head's width
    lambda_structure: float = 0.0    # self-similarity on frozen Lite0 features (F-LSeSim-like); 0 = off
    augment: str = "color,translation,cutout"   # DiffAugment on both of D's inputs ("" = none)
    image_size: int = 256            # translation resizes photos to about this scale
    crop_size: int = 128             # training crops of `load_size` loads (0: image_size)
    load_size: int = 286
    domain_a: str = ""
    domain_b: str = ""

    def __post_init__(self):
        CycleGANConfig(**self._gan_parts())       # the generator's and the discriminator's own checks
        parse_policy(self.augment)
        layers = self.layers()
        if not layers or len(set(layers)) != len(layers) or min(layers) < 0 or max(layers) > 9 + self.res_blocks:
            raise ValueError(f"nce_layers must be distinct indices of G's encoder layers, 0 to {9 + self.res_blocks}")
        if self.num_patches < 2:
            raise ValueError("num_patches must be at least 2")
        if not 0 < self.nce_temperature <= 10:
            raise ValueError("nce_temperature must be in (0, 10]")

    def layers(self) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in self.nce_layers.split(",") if x.strip())
        except ValueError:
            raise ValueError("nce_layers is a comma list of layer indices, e.g. '0,4,7,10,14'") from None

    def _gan_parts(self) -> dict:
        keys = ("image_channels", "base_channels", "res_blocks", "block", "upsample", "d_base_channels",
                "d_layers", "d_spectral_norm", "image_size", "crop_size", "load_size", "domain_a", "domain_b")
        return {k: getattr(self, k) for k in keys}

    def gan_config(self) -> CycleGANConfig:
        return CycleGANConfig(**self._gan_parts())


def encoder_channels(net: nn.Sequential, index: int, in_channels: int) -> int:
    """Channels of the output of layer `index` of a sequential network (convolutions change them)."""
    ch = in_channels
    for layer in list(net)[: index + 1]:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            ch = layer.out_channels
    return ch


def patch_nce(q: torch.Tensor, k: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE between query and key patches (B, P, C), both L2-normalised: each query's positive is the key at
    its own place, its negatives the other P-1 keys of the same image."""
    b, p, _ = q.shape
    pos = (q * k).sum(-1, keepdim=True)
    neg = (q @ k.transpose(1, 2)).masked_fill(torch.eye(p, dtype=torch.bool, device=q.device), -10.0)
    logits = torch.cat([pos, neg], dim=-1).flatten(0, 1) / tau
    return F.cross_entropy(logits.float(), torch.zeros(b * p, dtype=torch.long, device=q.device))


class CUTGenerator(nn.Module):
    """G_AB and the PatchNCE heads (F) in one module: one forward covers the generator phase (DDP-friendly)."""

    def __init__(self, cfg: CUTConfig):
        super().__init__()
        self.cfg, self.layers = cfg, cfg.layers()
        self.G_AB = ResnetGenerator(cfg.gan_config())
        self.F = nn.ModuleList(
            nn.Sequential(nn.Linear(encoder_channels(self.G_AB.net, i, cfg.image_channels), cfg.mlp_dim),
                          nn.ReLU(), nn.Linear(cfg.mlp_dim, cfg.mlp_dim))
            for i in self.layers)

    def encode(self, x: torch.Tensor, full: bool = False):
        """G's encoder features at `layers` (and, with `full`, G's output)."""
        feats, last = [], max(self.layers)
        for i, layer in enumerate(self.G_AB.net):
            x = layer(x)
            if i in self.layers:
                feats.append(x)
            if i == last and not full:
                break
        return (x, feats) if full else feats

    def project(self, feats: list[torch.Tensor], ids: list[torch.Tensor]) -> list[torch.Tensor]:
        """Sampled places of each layer through its head, L2-normalised: (B, P, mlp_dim) per layer."""
        out = []
        for f, head, idx in zip(feats, self.F, ids):
            patches = f.flatten(2).transpose(1, 2)[:, idx]           # (B, P, C)
            out.append(F.normalize(head(patches), dim=-1))
        return out

    def nce(self, queries: list[torch.Tensor], keys: list[torch.Tensor]) -> torch.Tensor:
        """PatchNCE averaged over layers; the same random places for queries and keys of a layer."""
        ids = [torch.randperm(k.shape[2] * k.shape[3], device=k.device)[: self.cfg.num_patches] for k in keys]
        q, k = self.project(queries, ids), self.project([f.detach() for f in keys], ids)
        return sum(patch_nce(a, b.detach(), self.cfg.nce_temperature) for a, b in zip(q, k)) / len(q)

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor, flip: bool = False):
        """(fake_B, idt_B or None, PatchNCE loss, PatchNCE identity loss or None)."""
        n = real_A.shape[0]
        x = torch.cat([real_A, real_B]) if self.cfg.nce_idt else real_A
        x = x.flip(-1) if flip else x
        out, feats_x = self.encode(x, full=True)
        feats_out = self.encode(out)
        if flip:       # FastCUT: G saw the mirror image; compare its features, mirrored back, with the photo's
            out = out.flip(-1)
            feats_out = [f.flip(-1) for f in feats_out]
            with torch.no_grad():
                feats_x = self.encode(torch.cat([real_A, real_B]) if self.cfg.nce_idt else real_A)
        loss = self.nce([f[:n] for f in feats_out], [f[:n] for f in feats_x])
        idt_loss = self.nce([f[n:] for f in feats_out], [f[n:] for f in feats_x]) if self.cfg.nce_idt else None
        return out[:n], (out[n:] if self.cfg.nce_idt else None), loss, idt_loss


def self_similarity(feats: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (B, P, P) between the features at places `ids` of a (B, C, H, W) map."""
    f = F.normalize(feats.flatten(2)[:, :, ids], dim=1)
    return f.transpose(1, 2) @ f


class CUT(GANModel):
    model_type = "cut"
    task = "translate"
    size_multiple = 4

    def __init__(self, config: CUTConfig):
        super().__init__(config)
        self.G = CUTGenerator(config)
        self.D = PatchDiscriminator(config.gan_config())
        init_dcgan_weights(self.G.G_AB)
        init_dcgan_weights(self.D)
        self.augment = Augment(config.augment)
        self._structure = None           # the frozen Lite0, built on first use (never saved or trained)

    def networks(self):
        return {"G_AB": self.G.G_AB, "F": self.G.F, "D_B": self.D}

    def groups(self):
        return {"G": self.G, "D": self.D}

    def generator_networks(self):
        return ["G_AB", "F"]

    def directions(self):
        return {"AB": "G_AB"}

    def direction_labels(self):
        return {"AB": "{} → {}".format(self.config.domain_a or "A", self.config.domain_b or "B")}

    def domains(self, direction=None) -> tuple[str, str]:
        self.direction(direction)
        return self.config.domain_a or "A", self.config.domain_b or "B"

    def discriminator(self, direction=None, side="output"):
        return self.D

    def structure_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Self-similarity of frozen Lite0 features (two scales): translation keeps the photo's layout."""
        if self._structure is None:
            from gancore.analysis.features import Lite0Taps
            self._structure = Lite0Taps(taps=(1, 2)).to(real.device)
        with torch.no_grad():
            f_real = self._structure(real)
        f_fake = self._structure(fake)
        loss = 0.0
        for a, b in zip(f_real, f_fake):
            ids = torch.randperm(a.shape[2] * a.shape[3], device=a.device)[:256]
            loss = loss + F.l1_loss(self_similarity(b, ids), self_similarity(a, ids))
        return loss / len(f_real)

    def train_step(self, batch, ctx: StepContext):
        real_A, real_B = batch
        cfg = self.config
        G, D = ctx.wrapped["G"], ctx.wrapped["D"]
        flip = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)    # the global RNG: exact resume

        set_requires_grad(self.D, False)
        with ctx.autocast():
            fake_B, idt_B, nce, nce_idt = G(real_A, real_B, flip=flip)
            pred_fake = self.D(self.augment(fake_B))
        losses = {"G/adv": lsgan(pred_fake, True) * cfg.lambda_gan,
                  "G/nce": nce * cfg.lambda_nce}
        if nce_idt is not None:
            losses["G/nce_idt"] = nce_idt * cfg.lambda_nce
        if cfg.lambda_structure > 0:
            losses["G/structure"] = self.structure_loss(real_A, fake_B) * cfg.lambda_structure
        ctx.step("G", sum(losses.values()))
        set_requires_grad(self.D, True)

        n = real_B.shape[0]
        with ctx.autocast():
            pred = D(self.augment(torch.cat([real_B, fake_B.detach()])))
        losses["D/real"] = lsgan(pred[:n], True) * 0.5
        losses["D/fake"] = lsgan(pred[n:], False) * 0.5
        ctx.step("D", losses["D/real"] + losses["D/fake"])
        with torch.no_grad():     # collapse made visible: how far G moves its input, how sure D is
            losses["G/identity_distance"] = (fake_B.detach().float() - real_A.float()).abs().mean() / 2
            losses["D/acc_real"] = (pred[:n].detach().float() > 0.5).float().mean()
            losses["D/acc_fake"] = (pred[n:].detach().float() < 0.5).float().mean()
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def preview(self, n, gen_group, batch=None):
        """Rows: A photos and their translations."""
        real_A = batch[0][:n]
        return torch.cat([real_A, gen_group.G_AB(real_A)]), real_A.shape[0]

    def export_spec(self, direction=None):
        return CycleGAN.export_spec(self, direction)

    def example_inputs(self, spec, calibration_images=None, held_out_images=None, seed=0):
        return CycleGAN.example_inputs(self, spec, calibration_images, held_out_images, seed)
