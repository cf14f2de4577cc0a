"""`gancore serve` under a crowd: 200 clients for 60 s, some sending 5 MB bodies, while one more client asks
`/healthz` every 0.1 s from a process of its own (so the crowd's client loop never delays the probe). Prints
/healthz p50/p99, the answers by status (503 with Retry-After is the service saying it is full; a 500 is a
bug), and the server's resident memory before, at the end and 10 s after.

    python bench/serve_load.py [--clients 200] [--seconds 60] [--model weights/horse2zebra.safetensors]

Targets: /healthz p99 <= 200 ms, no 500, memory back within 100 MB of its start. Run it on an otherwise idle
machine (the load average is printed).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_translate import ROOT, photo_bytes, start_service  # noqa: E402

BIG = os.urandom(5 * 1024 * 1024)


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def crowd_member(http, i: int, until: float, photo: bytes, statuses: collections.Counter) -> None:
    while time.perf_counter() < until:
        body = BIG if i % 10 == 0 else photo          # one client in ten sends 5 MB that is not a picture
        try:
            r = await http.post("/translate", files={"image": ("p.jpg", body, "image/jpeg")}, data={"direction": "AB"})
            statuses[r.status_code] += 1
            if r.status_code == 503:
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
        except Exception as e:                          # a dropped connection counts as a failure too
            statuses[type(e).__name__] += 1


def probe(url: str, seconds: float) -> None:
    """The /healthz prober (its own process): one request every 0.1 s; prints the times in ms as JSON."""
    import httpx
    times, until = [], time.perf_counter() + seconds
    with httpx.Client(base_url=url, timeout=120) as http:
        while time.perf_counter() < until:
            t = time.perf_counter()
            r = http.get("/healthz")
            times.append((time.perf_counter() - t) * 1000 if r.status_code == 200 else float("inf"))
            time.sleep(0.1)
    print(json.dumps(times))


async def crowd(url: str, clients: int, seconds: float) -> collections.Counter:
    import httpx
    limits = httpx.Limits(max_connections=clients + 10)
    statuses, photo = collections.Counter(), photo_bytes()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        until = time.perf_counter() + seconds
        await asyncio.gather(*[crowd_member(http, i, until, photo, statuses) for i in range(clients)])
    return statuses


def run(url: str, clients: int, seconds: float) -> tuple[list, collections.Counter]:
    prober = subprocess.Popen([sys.executable, __file__, "--probe", url, "--seconds", str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    statuses = asyncio.run(crowd(url, clients, seconds))
    return json.loads(prober.communicate()[0]), statuses


def main() -> None:
    import httpx
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--model", default=str(ROOT / "weights" / "horse2zebra.safetensors"))
    ap.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.probe:
        return probe(a.probe, a.seconds)
    proc, url = start_service(a.model)
    try:
        httpx.post(f"{url}/translate", files={"image": ("p.jpg", photo_bytes(), "image/jpeg")},
                   timeout=60)
        time.sleep(3)
        start = rss_mb(proc.pid)
        times, statuses = run(url, a.clients, a.seconds)
        end = rss_mb(proc.pid)
        time.sleep(10)
        after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    t = np.array(times)
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; {a.clients} clients for {a.seconds:.0f} s")
    print(f"/healthz: {len(t)} probes, p50 {np.median(t):.1f} ms, p99 {np.percentile(t, 99):.1f} ms")
    print("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
    print(f"server memory: {start:.0f} MB before, {end:.0f} MB at the end, {after:.0f} MB 10 s later")


if __name__ == "__main__":
    main()
