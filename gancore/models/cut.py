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
channels, fast enough to translate a 256-px photo interactively), or with `encoder="lite0"` the same whose
encoder starts from ImageNet-trained EfficientNet-Lite0 blocks (`lite_generator`). It trains on random
`crop_size` crops of `load_size` loads: by default two thirds of the photo's width, at three quarters of the
scale of the `image_size` photos it translates (the papers' 286-px loads match that scale, show each crop less
of the photo, and score worse at equal CPU time: docs/translation.md).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from gancore.augment import Augment, parse_policy
from gancore.features import Lite0Taps
from gancore.models.base import GANModel, StepContext, init_dcgan_weights, set_requires_grad
from gancore.models.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    PatchDiscriminator,
    ResnetGenerator,
    collapse_signals,
    lsgan,
)
from gancore.models.lite_generator import NCE_LAYERS as LITE0_NCE_LAYERS
from gancore.models.lite_generator import LiteEncoderGenerator

# encoder -> (its PatchNCE layers, the index of its first residual block in G's layer list)
ENCODERS = {"plain": ("0,4,7,10,14", 10), "lite0": (LITE0_NCE_LAYERS, 8)}


@dataclass(frozen=True)
class CUTConfig:
    image_channels: int = 3
    base_channels: int = 16          # generator width (ngf)
    res_blocks: int = 9
    block: str = "depthwise"         # "depthwise" (mobile) or "residual" (the paper's ResNet blocks)
    encoder: str = "plain"           # "plain" (7x7 stem, two strided convs) or "lite0" (ImageNet-trained blocks)
    upsample: str = "resize"
    d_base_channels: int = 32        # PatchGAN width (ndf)
    d_layers: int = 3                # 3 -> the 70x70 PatchGAN
    d_spectral_norm: bool = False
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0          # PatchNCE weight; FastCUT's 10 copies its input on small runs
    nce_idt: bool = True             # CUT: PatchNCE on (zebra, G(zebra)) too
    flip_equivariance: bool = False  # FastCUT: mirror the input half the steps
    nce_layers: str = ""             # indices in G's layer list whose outputs are compared; "" = the encoder's
                                     # own: the photo, two encoder scales, the 1st and 5th residual blocks
    num_patches: int = 256
    nce_temperature: float = 0.07
    mlp_dim: int = 256               # the projection head's width
    lambda_structure: float = 0.0    # self-similarity on frozen Lite0 features (F-LSeSim-like); 0 = off
    lambda_projected: float = 0.0    # a second D on frozen Lite0 features (Projected GAN heads); 0 = off
    projected_warmup: int = 500      # steps before the projected D's verdict reaches G
    augment: str = "color,translation,cutout"   # DiffAugment on both of D's inputs ("" = none)
    image_size: int = 256            # translation resizes photos to about this scale
    crop_size: int = 128             # training crops of `load_size` loads (0: image_size)
    load_size: int = 192
    domain_a: str = ""
    domain_b: str = ""
    two_way: bool = False            # also zebra -> horse: a second generator, heads and discriminator

    def __post_init__(self):
        CycleGANConfig(**self._gan_parts())       # the generator's and the discriminator's own checks
        parse_policy(self.augment)
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}")
        if self.encoder == "lite0" and self.image_channels != 3:
            raise ValueError("the lite0 encoder takes colour pictures (image_channels 3)")
        layers, top = self.layers(), ENCODERS[self.encoder][1] + self.res_blocks - 1
        if not layers or len(set(layers)) != len(layers) or min(layers) < 0 or max(layers) > top:
            raise ValueError(f"nce_layers must be distinct indices of G's encoder layers, 0 to {top}")
        if self.num_patches < 2:
            raise ValueError("num_patches must be at least 2")
        if not 0 < self.nce_temperature <= 10:
            raise ValueError("nce_temperature must be in (0, 10]")

    def layers(self) -> tuple[int, ...]:
        try:
            text = self.nce_layers or ENCODERS[self.encoder][0]
            return tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise ValueError("nce_layers is a comma list of layer indices, e.g. '0,4,7,10,14'") from None

    def _gan_parts(self) -> dict:
        keys = ("image_channels", "base_channels", "res_blocks", "block", "upsample", "d_base_channels",
                "d_layers", "d_spectral_norm", "image_size", "crop_size", "load_size", "domain_a", "domain_b")
        return {k: getattr(self, k) for k in keys}

    def gan_config(self) -> CycleGANConfig:
        return CycleGANConfig(**self._gan_parts())

    def generator(self) -> nn.Module:
        gan = self.gan_config()
        return LiteEncoderGenerator(gan) if self.encoder == "lite0" else ResnetGenerator(gan)


def encoder_channels(net: nn.Sequential, index: int, in_channels: int) -> int:
    """Channels of the output of layer `index` of a sequential network (convolutions change them)."""
    ch = in_channels
    for layer in list(net)[: index + 1]:
        for m in layer.modules():          # a block's last convolution sets its output's channels
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                ch = m.out_channels
    return ch


def patch_nce(q: torch.Tensor, k: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE between query and key patches (B, P, C), both L2-normalised: each query's positive is the key at
    its own place, its negatives the other P-1 keys of the same image."""
    b, p, _ = q.shape
    pos = (q * k).sum(-1, keepdim=True)
    neg = (q @ k.transpose(1, 2)).masked_fill(torch.eye(p, dtype=torch.bool, device=q.device), -10.0)
    logits = torch.cat([pos, neg], dim=-1).flatten(0, 1) / tau
    return F.cross_entropy(logits.float(), torch.zeros(b * p, dtype=torch.long, device=q.device))


def heads_for(net: nn.Module, cfg: CUTConfig) -> nn.ModuleList:
    """PatchNCE projection heads (two-layer MLPs), one per compared layer of `net`'s encoder."""
    return nn.ModuleList(
        nn.Sequential(nn.Linear(encoder_channels(net.net, i, cfg.image_channels), cfg.mlp_dim), nn.ReLU(),
                      nn.Linear(cfg.mlp_dim, cfg.mlp_dim))
        for i in cfg.layers())


def encode(net: nn.Module, x: torch.Tensor, layers: tuple[int, ...], full: bool = False):
    """The generator's features at `layers` (and, with `full`, its output)."""
    feats, last = [], max(layers)
    for i, layer in enumerate(net.net):
        x = layer(x)
        if i in layers:
            feats.append(x)
        if i == last and not full:
            break
    return (x, feats) if full else feats


def nce_loss(heads: nn.ModuleList, queries: list, keys: list, cfg: CUTConfig) -> torch.Tensor:
    """PatchNCE averaged over layers; the same random places for the queries and keys of a layer."""
    total = 0.0
    for head, q, k in zip(heads, queries, keys):
        idx = torch.randperm(k.shape[2] * k.shape[3], device=k.device)[: cfg.num_patches]
        pick = lambda f: F.normalize(head(f.flatten(2).transpose(1, 2)[:, idx]), dim=-1)   # noqa: E731
        total = total + patch_nce(pick(q), pick(k.detach()).detach(), cfg.nce_temperature)
    return total / len(heads)


def translate_with_nce(net, heads, src: torch.Tensor, tgt: torch.Tensor, cfg: CUTConfig, flip: bool):
    """One direction's generator phase: (translation, identity output or None, PatchNCE, PatchNCE identity)."""
    n, layers = src.shape[0], cfg.layers()
    x = torch.cat([src, tgt]) if cfg.nce_idt else src
    out, feats_x = encode(net, x.flip(-1) if flip else x, layers, full=True)
    feats_out = encode(net, out, layers)
    if flip:       # FastCUT: G saw the mirror image; compare its features, mirrored back, with the photo's
        out, feats_out = out.flip(-1), [f.flip(-1) for f in feats_out]
        with torch.no_grad():
            feats_x = encode(net, x, layers)
    loss = nce_loss(heads, [f[:n] for f in feats_out], [f[:n] for f in feats_x], cfg)
    if not cfg.nce_idt:
        return out, None, loss, None
    return out[:n], out[n:], loss, nce_loss(heads, [f[n:] for f in feats_out], [f[n:] for f in feats_x], cfg)


class CUTGenerator(nn.Module):
    """G_AB with its PatchNCE heads F (and, two-way, G_BA with F_BA): one forward covers the generator phase
    (DDP-friendly)."""

    def __init__(self, cfg: CUTConfig):
        super().__init__()
        self.cfg = cfg
        self.G_AB = cfg.generator()
        self.F = heads_for(self.G_AB, cfg)
        if cfg.two_way:
            self.G_BA = cfg.generator()
            self.F_BA = heads_for(self.G_BA, cfg)

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor, flip: bool = False) -> dict:
        """Direction -> (translation, identity output or None, PatchNCE loss, PatchNCE identity loss or None)."""
        out = {"AB": translate_with_nce(self.G_AB, self.F, real_A, real_B, self.cfg, flip)}
        if self.cfg.two_way:
            out["BA"] = translate_with_nce(self.G_BA, self.F_BA, real_B, real_A, self.cfg, flip)
        return out


class ProjectedPatchD(nn.Module):
    """A patch discriminator on a frozen ImageNet EfficientNet-Lite0 (Projected GAN, Sauer et al. 2021): at
    1/2, 1/4, 1/8 and 1/16 of the picture a small spectral-norm head turns features into a map of logits.
    ImageNet features already know a zebra's coat, so D learns what the target looks like in few steps. The
    frozen trunk is not a registered submodule: not trained, not saved (it comes from its wheel)."""
    TAPS = (0, 2, 4, 7)
    CHANNELS = (16, 24, 40, 80)

    def __init__(self, width: int = 64):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.heads = nn.ModuleList(
            nn.Sequential(sn(nn.Conv2d(c, width, 1)), nn.LeakyReLU(0.2, True), sn(nn.Conv2d(width, width, 3, 1, 1)),
                          nn.LeakyReLU(0.2, True), sn(nn.Conv2d(width, 1, 1)))
            for c in self.CHANNELS)
        object.__setattr__(self, "trunk", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk is None:
            object.__setattr__(self, "trunk", Lite0Taps(self.TAPS))
        if self.trunk.stem[0].weight.device != x.device:     # not a submodule, so model.to() does not move it
            self.trunk.to(x.device)
        return torch.cat([h(f).flatten(1) for h, f in zip(self.heads, self.trunk(x))], dim=1)


class CUTDiscriminators(nn.Module):
    """D_B judges zebras (what G_AB makes); two-way, D_A judges horses. With `lambda_projected`, P_B (and P_A)
    judge the same pictures through frozen ImageNet features."""

    def __init__(self, cfg: CUTConfig):
        super().__init__()
        self.D_B = PatchDiscriminator(cfg.gan_config())
        if cfg.two_way:
            self.D_A = PatchDiscriminator(cfg.gan_config())
        if cfg.lambda_projected > 0:
            self.P_B = ProjectedPatchD(cfg.d_base_channels * 2)
            if cfg.two_way:
                self.P_A = ProjectedPatchD(cfg.d_base_channels * 2)

    def forward(self, x_B: torch.Tensor, x_A: torch.Tensor | None = None) -> dict:
        """Network name -> logits, for the pictures of each domain given."""
        out = {"D_B": self.D_B(x_B)}
        if hasattr(self, "P_B"):
            out["P_B"] = self.P_B(x_B)
        if x_A is not None:
            out["D_A"] = self.D_A(x_A)
            if hasattr(self, "P_A"):
                out["P_A"] = self.P_A(x_A)
        return out


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
        self.D = CUTDiscriminators(config)
        for net in (self.G.G_AB, getattr(self.G, "G_BA", None), self.D):
            if net is not None:
                init_dcgan_weights(net)
                if isinstance(net, LiteEncoderGenerator):
                    net.load_imagenet_encoder()
        self.augment = Augment(config.augment)
        self._structure = None           # the frozen Lite0, built on first use (never saved or trained)
        self.steps_done = 0              # for the projected D's warm-up; saved with the run

    def networks(self):
        nets = {"G_AB": self.G.G_AB, "F": self.G.F, "D_B": self.D.D_B}
        if self.config.two_way:
            nets.update(G_BA=self.G.G_BA, F_BA=self.G.F_BA, D_A=self.D.D_A)
        nets.update({name: getattr(self.D, name) for name in ("P_B", "P_A") if hasattr(self.D, name)})
        return nets

    def groups(self):
        return {"G": self.G, "D": self.D}

    def generator_networks(self):
        return ["G_AB", "F"] + (["G_BA", "F_BA"] if self.config.two_way else [])

    def directions(self):
        return {"AB": "G_AB", "BA": "G_BA"} if self.config.two_way else {"AB": "G_AB"}

    def inverse(self, direction=None):
        return {"AB": "BA", "BA": "AB"}[self.direction(direction)] if self.config.two_way else None

    def domains(self, direction=None) -> tuple[str, str]:
        a, b = self.config.domain_a or "A", self.config.domain_b or "B"
        return (a, b) if self.direction(direction) == "AB" else (b, a)

    def direction_labels(self):
        return {d: "{} → {}".format(*self.domains(d)) for d in self.directions()}

    def discriminator(self, direction=None, side="output"):
        """D_B judges what G_AB makes; two-way, D_A what G_BA makes (one-way, D_B judges either side)."""
        if not self.config.two_way:
            return self.D.D_B
        return self.D.D_B if (self.direction(direction) == "AB") == (side == "output") else self.D.D_A

    def structure_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Self-similarity of frozen Lite0 features (two scales): translation keeps the photo's layout."""
        if self._structure is None:
            self._structure = Lite0Taps(taps=(1, 2)).to(real.device)
        with torch.no_grad():
            f_real = self._structure(real)
        f_fake = self._structure(fake)
        loss = 0.0
        for a, b in zip(f_real, f_fake):
            ids = torch.randperm(a.shape[2] * a.shape[3], device=a.device)[:256]
            loss = loss + F.l1_loss(self_similarity(b, ids), self_similarity(a, ids))
        return loss / len(f_real)

    JUDGES = {"AB": ("D_B", "P_B"), "BA": ("D_A", "P_A")}     # a direction's output: its pixel and feature Ds

    def _generator_losses(self, out: dict, real: dict) -> dict:
        """Adversarial, PatchNCE (and structure) losses of each direction; one-way names carry no suffix."""
        cfg, losses = self.config, {}
        preds = self.D(self.augment(out["AB"][0]), self.augment(out["BA"][0]) if "BA" in out else None)
        for d, (fake, _, nce, nce_idt) in out.items():
            tag = f"_{d}" if cfg.two_way else ""
            pixel, feature = self.JUDGES[d]
            losses[f"G/adv{tag}"] = lsgan(preds[pixel], True) * cfg.lambda_gan
            if feature in preds and self.steps_done >= cfg.projected_warmup:
                losses[f"G/adv_projected{tag}"] = lsgan(preds[feature], True) * cfg.lambda_projected
            losses[f"G/nce{tag}"] = nce * cfg.lambda_nce
            if nce_idt is not None:
                losses[f"G/nce_idt{tag}"] = nce_idt * cfg.lambda_nce
            if cfg.lambda_structure > 0:
                losses[f"G/structure{tag}"] = self.structure_loss(real[d], fake) * cfg.lambda_structure
        return losses

    def _discriminator_losses(self, preds: dict, n: int, real: dict, fakes: dict) -> dict:
        """LSGAN losses of every discriminator on [real; fake] batches, and how sure each pixel D is."""
        losses, tag = {}, (lambda d: f"_{d}" if self.config.two_way else "")
        for name, pred in preds.items():
            d = "AB" if name.endswith("B") else "BA"
            prefix = ("D" if name.startswith("D") else "P") + tag(d)
            losses[f"{prefix}/real"] = lsgan(pred[:n], True) * 0.5
            losses[f"{prefix}/fake"] = lsgan(pred[n:], False) * 0.5
            if name.startswith("D"):      # collapse made visible: how far G moves its input, how sure D is
                losses.update(collapse_signals(pred, n, real[d], fakes[d], prefix, tag(d)))
        return losses

    def train_step(self, batch, ctx: StepContext):
        real_A, real_B = batch
        cfg = self.config
        G, D = ctx.wrapped["G"], ctx.wrapped["D"]
        flip = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)    # the global RNG: exact resume
        real = {"AB": real_A, "BA": real_B}          # each direction's input

        set_requires_grad(self.D, False)
        with ctx.autocast():
            out = G(real_A, real_B, flip=flip)
            losses = self._generator_losses(out, real)
        ctx.step("G", sum(losses.values()))
        set_requires_grad(self.D, True)

        fakes = {d: o[0].detach() for d, o in out.items()}
        with ctx.autocast():
            preds = D(self.augment(torch.cat([real_B, fakes["AB"]])),
                      self.augment(torch.cat([real_A, fakes["BA"]])) if "BA" in fakes else None)
        d_losses = self._discriminator_losses(preds, real_A.shape[0], real, fakes)
        ctx.step("D", sum(v for k, v in d_losses.items() if k.endswith(("/real", "/fake"))))
        self.steps_done += 1
        return {k: v.detach() for k, v in {**losses, **d_losses}.items()}

    def extra_tensors(self):
        return {"extra.steps_done": torch.tensor([self.steps_done], dtype=torch.int64)}

    def load_extra_tensors(self, tensors):
        t = tensors.get("extra.steps_done")
        self.steps_done = int(t[0]) if t is not None else 0

    @torch.no_grad()
    def preview(self, n, gen_group, batch=None):
        """Rows: A photos and their translations (two-way: then B photos and theirs)."""
        real_A, real_B = batch[0][:n], batch[1][:n]
        rows = [real_A, gen_group.G_AB(real_A)]
        if self.config.two_way:
            rows += [real_B, gen_group.G_BA(real_B)]
        return torch.cat(rows), real_A.shape[0]

    def export_spec(self, direction=None):
        return CycleGAN.export_spec(self, direction)

    def example_inputs(self, spec, calibration_images=None, held_out_images=None, seed=0):
        return CycleGAN.example_inputs(self, spec, calibration_images, held_out_images, seed)


def two_way_from(ab: tuple[dict, CUTConfig], ba: tuple[dict, CUTConfig]) -> tuple[dict, CUTConfig]:
    """One two-way model from two one-way runs: `ab` translates A -> B, `ba` was trained B -> A (its own "A" is
    this model's B). Takes each run's generator (EMA weights where it has them) and its discriminator (so the
    Explain tab can show what each judge looks at); the PatchNCE heads stay behind. Returns (tensors, config)."""
    (t_ab, cfg_ab), (t_ba, cfg_ba) = ab, ba
    same = ("image_channels", "base_channels", "res_blocks", "block", "encoder", "upsample", "image_size")
    if cfg_ab.two_way or cfg_ba.two_way or any(getattr(cfg_ab, k) != getattr(cfg_ba, k) for k in same):
        raise ValueError("pairing takes two one-way CUT models with the same generator architecture")
    if (cfg_ba.domain_a, cfg_ba.domain_b) != (cfg_ab.domain_b, cfg_ab.domain_a):
        raise ValueError(f"the second model must translate {cfg_ab.domain_b or 'B'} -> {cfg_ab.domain_a or 'A'}")

    def generator(tensors: dict, name: str) -> dict:
        ema = {k[len("ema.G_AB."):]: v for k, v in tensors.items() if k.startswith("ema.G_AB.")}
        plain = {k[len("G_AB."):]: v for k, v in tensors.items() if k.startswith("G_AB.")}
        return {f"{name}.{k}": v for k, v in (ema or plain).items()}

    def judge(tensors: dict, name: str) -> dict:
        return {f"{name}.{k[len('D_B.'):]}": v for k, v in tensors.items() if k.startswith("D_B.")}

    tensors = {**generator(t_ab, "G_AB"), **generator(t_ba, "G_BA"), **judge(t_ab, "D_B"), **judge(t_ba, "D_A")}
    return tensors, replace(cfg_ab, two_way=True)


def one_way_from(tensors: dict, cfg: CUTConfig, direction: str) -> tuple[dict, CUTConfig]:
    """One direction of a two-way model as a one-way model of that direction (its generator as `G_AB`, the
    judge of what it makes as `D_B`), so a shipped direction can be paired with a newer run of the other."""
    if not cfg.two_way:
        raise ValueError("a one-way model is already one way")
    g, d = {"AB": ("G_AB", "D_B"), "BA": ("G_BA", "D_A")}[direction]
    renamed = {f"{new}.{k[len(old) + 1:]}": v for old, new in ((g, "G_AB"), (d, "D_B"))
               for k, v in tensors.items() if k.startswith(f"{old}.")}
    a, b = (cfg.domain_a, cfg.domain_b) if direction == "AB" else (cfg.domain_b, cfg.domain_a)
    return renamed, replace(cfg, two_way=False, domain_a=a, domain_b=b)
