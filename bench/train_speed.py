"""Images/s of gancore's DCGAN trainer against a plain textbook PyTorch loop, same model, same batch,
same process; fp32 and bf16 autocast.

    python bench/train_speed.py [--steps 60] [--batch-size 64]
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from gancore.data import MNISTDataset
from gancore.models.dcgan import DCGAN, DCGANConfig
from gancore.training import TrainConfig, Trainer


def plain_loop(steps: int, batch: int, bf16: bool) -> float:
    """The textbook loop (PyTorch DCGAN tutorial): in-memory data, BCE, Adam(2e-4, 0.5)."""
    torch.manual_seed(0)
    model = DCGAN(DCGANConfig())
    G, D = model.G, model.D
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    x = MNISTDataset("train").x
    ac = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    warm, t0 = 5, None
    for i in range(steps + warm):
        if i == warm:
            t0 = time.perf_counter()
        real = x[torch.randint(0, len(x), (batch,))]
        z = torch.randn(batch, 100)
        with ac():
            fake = G(z)
            lr, lf = D(real).float(), D(fake.detach()).float()
        loss_d = F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + \
            F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        with ac():
            lg = D(fake).float()
        loss_g = F.binary_cross_entropy_with_logits(lg, torch.ones_like(lg))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return steps * batch / (time.perf_counter() - t0)


def gancore_loop(steps: int, batch: int, bf16: bool, out: str) -> float:
    cfg = TrainConfig(model="dcgan", data="mnist", steps=steps + 5, batch_size=batch, amp="bf16" if bf16 else "off",
                      log_every_steps=1, sample_every_steps=0, checkpoint_every_steps=0, out_dir=out, ema_decay=0.999)
    t0 = None
    for ev in Trainer(cfg).run():
        if ev.kind == "step" and ev.step == 5:
            t0 = time.perf_counter()
        if ev.kind == "step" and ev.step == steps + 5:
            return steps * batch / (time.perf_counter() - t0)
    raise RuntimeError("run ended early")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(2)
    import tempfile
    rows = []
    for bf16 in [p == "bf16" for p in a.precisions]:
        plain, ours = [], []
        for _ in range(a.repeats):   # interleaved, best of N: robust to a busy neighbour
            plain.append(plain_loop(a.steps, a.batch_size, bf16))
            with tempfile.TemporaryDirectory() as d:
                ours.append(gancore_loop(a.steps, a.batch_size, bf16, d))
        rows.append(("bf16" if bf16 else "fp32", max(plain), max(ours)))
    fp32_ours = rows[0][2]
    print(f"DCGAN 28px base 32, batch {a.batch_size}, {a.steps} steps, {torch.get_num_threads()} threads")
    print("| precision | plain loop img/s | gancore img/s | gancore / plain | vs gancore fp32 |")
    print("|---|---|---|---|---|")
    for name, p, o in rows:
        print(f"| {name} | {p:.0f} | {o:.0f} | {o / p:.2f}x | {o / fp32_ours:.2f}x |")


if __name__ == "__main__":
    main()
