"""Did the pretext task teach anything? Masked-reconstruction quality and a linear probe, on MNIST test.

    .venv/bin/python bench/maskrec_quality.py [checkpoint] [--n 2000] [--json out.json]

1. PSNR (dB, images in [-1, 1]) of the model's composite against mean fill, blur fill (normalised
   convolution) and diffusion (harmonic) inpainting at 25, 50 and 75 % masking, for patch masks (4 px,
   the training kind) and single-pixel masks. "hidden" = over the hidden pixels only; "whole" = over the
   whole image (visible pixels are exact for every method, so it only rescales the same error).
2. Linear probe: multinomial logistic regression (torch, Adam, 300 full-batch steps, standardised features)
   trained on 100 or 1000 MNIST training labels, accuracy on the test images; features from the pretext
   encoder, from raw pixels, and from the same encoder randomly initialised. Mean +- std over 3 label draws.
All baselines run in this process on the same images and masks.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from gancore import registry
from gancore.analysis import masking
from gancore.data import load_mnist
from gancore.inference import load_model
from gancore.masks import mask_image, patch_mask, random_mask

RATIOS = (0.25, 0.5, 0.75)


def images_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).float().div(127.5).sub(1).unsqueeze(1)      # (N, 28, 28) -> (N, 1, 28, 28)


@torch.no_grad()
def reconstruction_table(model, x: torch.Tensor, patch_size: int = 4, batch: int = 500) -> list[dict]:
    rows = []
    for kind in ("patch", "pixel"):
        for r in RATIOS:
            g = torch.Generator().manual_seed(int(r * 100) + (0 if kind == "patch" else 1000))
            mask = random_mask(kind, len(x), 28, 28, r, patch_size, generator=g)
            preds = {"mean fill": masking.mean_fill(x, mask), "blur fill": masking.blur_fill(x, mask),
                     "diffusion": masking.diffusion_fill(x, mask),
                     "maskrec": torch.cat([model.inpaint(x[i:i + batch], mask[i:i + batch])
                                           for i in range(0, len(x), batch)]).clamp(-1, 1)}
            for name, p in preds.items():
                rows.append({"mask": kind, "ratio": r, "method": name,
                             "psnr_hidden": float(masking.psnr(p, x, mask).mean()),
                             "psnr_whole": float(masking.psnr(p, x).mean())})
    return rows


def probe_accuracy(train_f, train_y, test_f, test_y, steps: int = 300, lr: float = 0.01, wd: float = 1e-3, seed: int = 0) -> float:
    mu, sd = train_f.mean(0), train_f.std(0).clamp_min(1e-3)
    a, b = (train_f - mu) / sd, (test_f - mu) / sd
    torch.manual_seed(seed)
    lin = torch.nn.Linear(a.shape[1], 10)
    opt = torch.optim.Adam(lin.parameters(), lr=lr, weight_decay=wd)
    for _ in range(steps):
        loss = F.cross_entropy(lin(a), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((lin(b).argmax(1) == test_y).float().mean())


@torch.no_grad()
def features(model, x, batch=500):
    model.eval()
    return torch.cat([model.encode(x[i:i + batch]) for i in range(0, len(x), batch)])


def probe_table(model, random_model, train_x, train_y, test_x, test_y, draws: int = 3) -> list[dict]:
    feats = {"pretext encoder": (features(model, train_x), features(model, test_x)),
             "random encoder": (features(random_model, train_x), features(random_model, test_x)),
             "raw pixels": (train_x.flatten(1), test_x.flatten(1))}
    rows = []
    for n_labels in (100, 1000):
        for name, (ftr, fte) in feats.items():
            accs = []
            for d in range(draws):
                idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(d))[:n_labels]
                accs.append(probe_accuracy(ftr[idx], train_y[idx], fte, test_y, seed=d))
            rows.append({"labels": n_labels, "features": name, "dims": ftr.shape[1],
                         "accuracy": float(np.mean(accs)), "std": float(np.std(accs))})
    return rows


@torch.no_grad()
def sample_grid(model, x: torch.Tensor, path: str, n: int = 10) -> None:
    from PIL import Image

    from gancore.training import make_grid
    x = x[:n]
    rows = [x]
    for r in RATIOS:
        mask = patch_mask(n, 28, 28, r, model.config.patch_size, generator=torch.Generator().manual_seed(7))
        rows += [mask_image(x, mask, 0.0), model.inpaint(x, mask).clamp(-1, 1)]
    grid = make_grid(torch.cat(rows), nrow=n)
    Image.fromarray(grid.squeeze()).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint", nargs="?", default="weights/maskrec_mnist.safetensors")
    p.add_argument("--n", type=int, default=1000, help="MNIST test images")
    p.add_argument("--json")
    p.add_argument("--sample", help="also save a sample grid here (rows: input, then masked / filled at 25, 50, 75 %%)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = load_model(args.checkpoint)
    test_images, test_labels = load_mnist("test")
    train_images, train_labels = load_mnist("train")
    x = images_tensor(test_images[:args.n])
    y = torch.from_numpy(test_labels[:args.n].astype(np.int64))
    # The probe's labelled pool: the first 5000 training images (draws pick 100 or 1000 of them).
    tx = images_tensor(train_images[:5000])
    ty = torch.from_numpy(train_labels[:5000].astype(np.int64))

    if args.sample:
        sample_grid(model, x, args.sample)
    rec = reconstruction_table(model, x, patch_size=model.config.patch_size)
    print(f"\nReconstruction PSNR on {args.n} MNIST test images (dB; images in [-1, 1]; higher is better)")
    print(f"{'mask':6} {'ratio':>5}  {'method':10} {'hidden px':>9} {'whole img':>9}")
    for r in rec:
        print(f"{r['mask']:6} {r['ratio']:5.2f}  {r['method']:10} {r['psnr_hidden']:9.2f} {r['psnr_whole']:9.2f}")
    print("\nmaskrec minus the best simple fill (hidden pixels):")
    for kind in ("patch", "pixel"):
        for ratio in RATIOS:
            sel = [r for r in rec if r["mask"] == kind and r["ratio"] == ratio]
            best = max((r for r in sel if r["method"] != "maskrec"), key=lambda r: r["psnr_hidden"])
            ours = next(r for r in sel if r["method"] == "maskrec")
            print(f"  {kind:6} {ratio:.2f}: {ours['psnr_hidden'] - best['psnr_hidden']:+.2f} dB vs {best['method']}")

    torch.manual_seed(0)
    random_model = registry.build("maskrec", model.config).eval()
    probe = probe_table(model, random_model, tx, ty, x, y)
    print(f"\nLinear probe accuracy on {args.n} MNIST test images (mean +- std over 3 label draws)")
    print(f"{'labels':>6}  {'features':16} {'dims':>5} {'accuracy':>9}")
    for r in probe:
        print(f"{r['labels']:6d}  {r['features']:16} {r['dims']:5d} {r['accuracy'] * 100:8.1f}% +- {r['std'] * 100:.1f}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"reconstruction": rec, "probe": probe}, f, indent=2)


if __name__ == "__main__":
    main()
