"""`gancore serve` /translate round trip, as a client on the same machine sees it: the shipped translator
serving a 256-px JPEG photo, beside `/healthz` in the same run (what HTTP alone costs here).

    python bench/serve_translate.py [--requests 40] [--model weights/horse2zebra.safetensors]

The service is started as `gancore serve` would be (its own process, the fast path deciding the backend),
first asked once so its graphs are ready, then timed request by request (one client, one at a time).
Run it on an otherwise idle machine: the load average is printed.
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_start import EXAMPLE, ROOT, free_port  # noqa: E402


def start_service(model: str):
    """`gancore serve MODEL` in its own process, once /healthz answers: (process, base URL)."""
    import httpx
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gancore", "serve", model, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, url


def photo_bytes() -> bytes:
    buf = io.BytesIO()
    Image.open(EXAMPLE).convert("RGB").resize((256, 256)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    import httpx
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--model", default=str(ROOT / "weights" / "horse2zebra.safetensors"))
    a = ap.parse_args()
    proc, url = start_service(a.model)
    data = photo_bytes()
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            def translate():
                r = http.post("/translate", files={"image": ("horse.jpg", data, "image/jpeg")}, data={"direction": "AB"})
                assert r.status_code == 200 and r.content[:4] == b"\x89PNG", r.text[:200]

            translate()
            time.sleep(5)                              # the fast path settles (graphs checked and timed)
            trips = timed(translate, a.requests)
            health = timed(lambda: http.get("/healthz"), a.requests)
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; {a.requests} requests each")
    print("| request | p50 ms | p90 ms |")
    print("|---|---|---|")
    for name, t in (("POST /translate, 256-px JPEG in, PNG out", trips), ("GET /healthz (HTTP alone)", health)):
        print(f"| {name} | {np.median(t):.1f} | {np.percentile(t, 90):.1f} |")


if __name__ == "__main__":
    main()
