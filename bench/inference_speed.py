"""Inference speed per generator: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8 (static QDQ).

Everything is measured in one process on this machine, so the ratios compare like with like. Also the
service's server time for `/generate` of 16 digits. Prints a Markdown table.

    python bench/inference_speed.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gancore import registry  # noqa: E402
from gancore.deploy.export import export_onnx  # noqa: E402
from gancore.deploy.onnx_runtime import OnnxGenerator, cpu_threads  # noqa: E402

H2Z_TEST = ROOT.parent / "shared" / "datasets" / "horse2zebra" / "testA"


def timeit(fn, x, budget_s: float, min_reps: int = 5, max_reps: int = 200) -> tuple[float, float]:
    """(p50, p95) in ms, after one warm-up call."""
    fn(x)
    times, start = [], time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget_s and len(times) < max_reps):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def model_for(name: str):
    shipped = {"mlp": "mlp_mnist", "dcgan": "dcgan_mnist", "cyclegan": "horse2zebra"}.get(name)
    path = ROOT / "weights" / f"{shipped}.safetensors" if shipped else None
    if path and path.is_file():
        from gancore.inference import load_model
        return load_model(path), path.name
    return registry.build(name).eval(), "untrained, default config"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter timing budget")
    ap.add_argument("--threads", type=int, default=cpu_threads(), help="threads for PyTorch and ONNX Runtime alike")
    args = ap.parse_args(argv)
    budget = 1.0 if args.quick else 3.0
    torch.set_num_threads(args.threads)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    names = [n for n in ("mlp", "dcgan", "cyclegan", "maskrec") if n in registry.list_models()]
    for name in names:
        model, source = model_for(name)
        kwargs = {}
        if name == "cyclegan" and H2Z_TEST.is_dir():
            kwargs["held_out_images"] = sorted(H2Z_TEST.glob("*.jpg"))[-2:]
        reports = {p: export_onnx(model, tmp / f"{name}_{p}.onnx", int8=p == "int8", latency_repeats=0, **kwargs)
                   for p in ("fp32", "int8")}
        fp32 = OnnxGenerator(tmp / f"{name}_fp32.onnx", threads=args.threads)
        int8 = OnnxGenerator(tmp / f"{name}_int8.onnx", threads=args.threads)
        net = model.generator()
        cfg = model.config
        if name in ("mlp", "dcgan"):
            shapes = [(b, cfg.latent_dim) for b in (1, 16)]
        elif name == "cyclegan":
            shapes = [(b, 3, 256, 256) for b in (1, 4)]
        else:
            shapes = [(b, cfg.image_channels + 1, cfg.image_size, cfg.image_size) for b in (1, 16)]
        for shape in shapes:
            x = np.random.default_rng(0).standard_normal(shape).clip(-1, 1).astype(np.float32)
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                pt = timeit(lambda a: net(a), xt, budget)
            f = timeit(fp32.run, x, budget)
            q = timeit(int8.run, x, budget)
            rows.append({"model": name, "source": source, "input": "x".join(map(str, shape)), "pytorch": pt,
                         "fp32": f, "int8": q, "size": (reports["fp32"]["size_bytes"], reports["int8"]["size_bytes"]),
                         "psnr": reports["int8"]["int8_psnr_db"], "parity": reports["fp32"]["parity_max_abs_diff"]})
            print(f"{name} {shape}: pytorch {pt[0]:.2f} ms, fp32 {f[0]:.2f} ms, int8 {q[0]:.2f} ms", file=sys.stderr)

    print(f"\nInference speed, {args.threads} thread(s) each for PyTorch and ONNX Runtime "
          f"({cpu_threads()} cores visible, load average {os.getloadavg()[0]:.1f}), p50 / p95 in ms (ratios: PyTorch p50 / ONNX p50)\n")
    print("| model | weights | input | PyTorch eager | ORT fp32 | ORT int8 | fp32 vs PyTorch | int8 vs PyTorch "
          "| int8 vs fp32 | size fp32 → int8 | int8 PSNR | fp32 parity |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pt, f, q = r["pytorch"], r["fp32"], r["int8"]
        print(f"| {r['model']} | {r['source']} | {r['input']} | {pt[0]:.2f} / {pt[1]:.2f} | {f[0]:.2f} / {f[1]:.2f} "
              f"| {q[0]:.2f} / {q[1]:.2f} | {pt[0] / f[0]:.2f}x | {pt[0] / q[0]:.2f}x | {f[0] / q[0]:.2f}x "
              f"| {r['size'][0] / 1e6:.2f} → {r['size'][1] / 1e6:.2f} MB | {r['psnr']:.1f} dB | {r['parity']:.1e} |")

    # The service: /generate of 16 digits, server time (X-Process-Time-Ms), after warm-up.
    from fastapi.testclient import TestClient

    from gancore.deploy import serve
    if "dcgan" in names:
        print("\n| /generate n=16 (DCGAN) | server p50 ms | server p95 ms |\n|---|---|---|")
        for label, path in (("ONNX fp32", tmp / "dcgan_fp32.onnx"), ("ONNX int8", tmp / "dcgan_int8.onnx")):
            client = TestClient(serve.create_app(path))
            for i in range(5):
                client.post("/generate", json={"n": 16, "seed": i})
            ms = [float(client.post("/generate", json={"n": 16, "seed": i}).headers["X-Process-Time-Ms"])
                  for i in range(50)]
            print(f"| {label} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 95):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
