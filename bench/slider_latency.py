"""Latent-slider latency: the engine call behind one slider move, and the round trip through the API.

Targets: <= 50 ms server time and <= 100 ms round trip for a DCGAN sample on 2 CPU cores;
and <= 150 ms round trip while the studio trains a model (`--during-training`: the same round trip
again with a studio training job running, which keeps to its own thread budget).
Baseline in the same process: a plain `sample()` of one image with no direction edit.

    python bench/slider_latency.py [--checkpoint weights/dcgan_mnist.safetensors] [--repeats 40] [--threads 1]
    python bench/slider_latency.py --during-training

On a machine whose cores are busy with other work, torch's 2 intra-op threads wait on each other; a
one-image 28 px sample is faster on 1 thread (try --threads 1).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> list[float]:
    fn()                                              # warm-up: model load, directions, caches
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(name: str, ms: list[float], baseline: float | None = None, target: float | None = None) -> None:
    med, p90 = statistics.median(ms), sorted(ms)[int(0.9 * (len(ms) - 1))]
    extra = f"  x{med / baseline:.2f} of baseline" if baseline else ""
    verdict = "" if target is None else ("  OK" if med <= target else f"  OVER target {target:.0f} ms")
    print(f"{name:<42} median {med:7.1f} ms   p90 {p90:7.1f} ms{extra}{verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "weights" / "dcgan_mnist.safetensors"))
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--during-training", action="store_true",
                    help="also time the HTTP round trip while a studio training job (DCGAN on MNIST) runs")
    args = ap.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from gancore.inference import sample
    from studio.app import build_app
    from studio.services import Services
    from studio.ui import enlarge, png_file

    tmp = Path(tempfile.mkdtemp(prefix="slider-bench-"))
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():                            # no shipped DCGAN yet: an untrained one costs the same
        from gancore.training import TrainConfig, train
        ckpt = Path(train(TrainConfig(model="dcgan", data="synthetic", steps=1, batch_size=8,
                                      out_dir=str(tmp / "runs" / "bench"), sample_every_steps=0,
                                      checkpoint_every_steps=0)))
        print(f"(no {args.checkpoint}; using an untrained DCGAN of the default size)")
    services = Services(weights_dir=ckpt.parent if ckpt.parent.name == "weights" else tmp / "weights",
                        runs_dir=ckpt.parent.parent if ckpt.parent.name != "weights" else tmp / "runs")
    print(f"torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, checkpoint {ckpt.name}")
    model = services.load(ckpt)
    alphas = [1.5, -0.5, 0.0, 2.0, 0.0, 0.0]
    seed = iter(range(10**9))

    base = timed(lambda: sample(model, n=1, seed=next(seed)), args.repeats)
    report("baseline: sample(n=1)", base)
    b = statistics.median(base)
    report("server: edited_sample (engine)", timed(lambda: services.edited_sample(str(ckpt), next(seed), 1.0, alphas),
                                                   args.repeats), b, 50)
    report("server: handler (engine + enlarge + PNG)",
           timed(lambda: png_file(enlarge(services.edited_sample(str(ckpt), next(seed), 1.0, alphas)), "bench"),
                 args.repeats), b, 50)

    from gradio_client import Client
    demo = build_app(services)
    import socket
    with socket.socket() as sock:                     # a free port: never collide with a running studio
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        floor = timed(lambda: client.predict(api_name="/explore_reset"), args.repeats)
        report("round trip floor: /explore_reset (no model)", floor)
        rt = timed(lambda: client.predict(str(ckpt), next(seed), 1.0, *alphas, api_name="/explore_image"),
                   args.repeats)
        report("round trip: gradio_client /explore_image", rt, b)
        # gradio_client checks for the server's answer every 50 ms (time.sleep(0.05) in its SSE reader), so
        # its figure is quantised to 50 ms steps. The browser's client is pushed the answer instead; this is
        # the same HTTP API called that way: POST /call/<api>, read the event stream, fetch the PNG.
        import httpx
        with httpx.Client(base_url=demo.local_url.rstrip("/"), timeout=30) as http:
            def via_http():
                data = [str(ckpt), next(seed), 1.0, *alphas]
                event = http.post("/gradio_api/call/explore_image", json={"data": data}).json()["event_id"]
                with http.stream("GET", f"/gradio_api/call/explore_image/{event}") as stream:
                    lines = list(stream.iter_lines())
                assert "event: complete" in lines, lines
                result = json.loads(lines[lines.index("event: complete") + 1].removeprefix("data: "))
                assert http.get(result[0]["url"]).content[:4] == b"\x89PNG"
            rt_http = timed(via_http, args.repeats)
            report("round trip: HTTP API /explore_image + PNG", rt_http, b, 100)
            if args.during_training:
                services.start_training(model="dcgan", data="mnist", steps=10**6, run_name="slider-bench")
                while services.training_state()["step"] < 20:      # MNIST decoded, steps under way
                    time.sleep(0.2)
                busy = timed(via_http, args.repeats)
                st = services.training_state()
                report(f"... during training ({st['images_per_s']:.0f} img/s)", busy, b, 150)
                print(f"training ran at {st['images_per_s']:.0f} img/s on its thread budget while timed")
    finally:
        services.shutdown(timeout=60)
        demo.close()


if __name__ == "__main__":
    main()
