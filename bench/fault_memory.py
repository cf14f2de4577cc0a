"""Peak memory of the biggest hostile uploads and requests, each in a fresh process (target: <= 2 GB above idle).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/fault_memory.py [--bomb-mb 1536]

Each case runs in its own Python process: imports and setup first (the model loaded, the test client made),
then "idle" is the resident memory at that point and the peak counter (VmHWM) is reset; the case runs and
its peak above idle is reported with the outcome (the one-line refusal, or "ok"). Linux only (/proc).
The corpus comes from tests/hostile.py.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASE = r'''
import json, sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
import numpy as np
from gancore.errors import describe
d = Path({root!r})
kind = {kind!r}

def setup():
    global run
    import torch, gancore.data, gancore.inference, gancore.training, gancore.cli   # the engine is part of idle
    if kind in ("zip_bomb_studio", "zip_liar_studio", "zip_many_big", "zip_stream_big"):
        from studio.services import Services
        s = Services(weights_dir=d / "none", runs_dir=d / ("runs-" + kind))
        name = {{"zip_bomb_studio": "zip_bomb.zip", "zip_liar_studio": "zip_member_liar.zip",
                 "zip_many_big": "many_big.zip", "zip_stream_big": "stream_big.zip"}}[kind]
        run = lambda: s.start_training(model="dcgan", data="upload", upload=str(d / "zips" / name), steps=1, batch_size=2)
    elif kind in ("png_bomb_service", "png_bomb_mid_service", "photo_16mp_service"):
        from fastapi.testclient import TestClient
        from gancore.deploy import serve
        c = TestClient(serve.create_app({shipped!r}))
        name = {{"png_bomb_service": "images/bomb.png", "png_bomb_mid_service": "images/bomb_mid.png",
                 "photo_16mp_service": "photo16mp.jpg"}}[kind]
        data = (d / name).read_bytes()
        def run():
            r = c.post("/translate", files={{"image": (Path(name).name, data)}})
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {{r.status_code}}: {{r.json()['detail']}}")
    elif kind in ("png_bomb_studio", "png_bomb_mid_studio"):
        from studio.services import Services
        s = Services(weights_dir=Path({shipped!r}).parent, runs_dir=d / "runs-x")
        name = "images/bomb.png" if kind == "png_bomb_studio" else "images/bomb_mid.png"
        s.load({shipped!r})                      # a studio with the model loaded is idle
        run = lambda: s.translate({shipped!r}, str(d / name), "AB", True)
    elif kind == "lying_header_load":
        from gancore.inference import load_model
        run = lambda: load_model(d / "ckpt" / "huge_channels.safetensors")
    elif kind == "sample_20k_cli":
        from gancore.cli import main
        from gancore.inference import load_model
        load_model({dcgan!r})
        def run():
            rc = main(["sample", {dcgan!r}, "--n", "20000", "--out", str(d / "samples")])
            if rc:
                raise RuntimeError(f"exit {{rc}}")

def status(key):
    # /proc/self/status in MB. (ru_maxrss would carry the parent's peak across fork and exec.)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

setup()
idle = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:    # reset the peak (VmHWM) to the present RSS
    f.write("5")
t = time.perf_counter()
try:
    run()
    outcome = "ok"
except Exception as e:
    outcome = describe(e).message if not isinstance(e, RuntimeError) else str(e)
peak = status("VmHWM")
print(json.dumps({{"case": kind, "idle_mb": round(idle), "peak_mb": round(peak), "above_idle_mb": round(peak - idle),
                  "seconds": round(time.perf_counter() - t, 2), "outcome": outcome[:160]}}))
'''

CASES = ["zip_stream_big", "zip_bomb_studio", "zip_liar_studio", "zip_many_big", "png_bomb_service", "png_bomb_mid_service",
         "photo_16mp_service", "png_bomb_studio", "png_bomb_mid_studio", "lying_header_load", "sample_20k_cli"]


def build(root: Path, bomb_mb: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    import zipfile

    import numpy as np
    from hostile import build_corpus
    from PIL import Image
    from test_export import save_tiny
    dcgan = Path(save_tiny("dcgan", root / "tiny_dcgan.safetensors"))
    cyc = Path(save_tiny("cyclegan", root / "tiny_cyclegan.safetensors"))
    build_corpus(root, dcgan, cyc, bomb_mb=bomb_mb)
    # 30 members of 95 MB zeros each (under the per-member cap), 2.8 GB in all: the total budget must stop it.
    with zipfile.ZipFile(root / "zips" / "many_big.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        block = b"\x00" * (95 * 1024 * 1024)
        for i in range(30):
            zf.writestr(f"{i}.png", block)
    # One 95 MB member that does not compress (under every cap): unpacked in 1 MB chunks, then refused as
    # not an image. Reading it whole, as before, costs its size twice over.
    with zipfile.ZipFile(root / "zips" / "stream_big.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("noise.png", np.random.default_rng(1).bytes(95 * 1024 * 1024))
    # The largest photo the service takes: 4000 x 4000 (16 megapixels), noisy so it does not compress.
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (4000, 4000, 3), dtype=np.uint8)).save(root / "photo16mp.jpg", quality=70)
    return {"dcgan": str(dcgan), "cyclegan": str(cyc)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bomb-mb", type=int, default=1536)
    ap.add_argument("--cases", nargs="*", default=CASES)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = build(root, args.bomb_mb)
        shipped = str(ROOT / "weights" / "horse2zebra.safetensors")
        for kind in args.cases:
            code = CASE.format(tests=str(ROOT / "tests"), root=str(root), kind=kind, shipped=shipped, dcgan=files["dcgan"])
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
            line = next((ln for ln in r.stdout.splitlines() if ln.startswith("{")), None)
            print(line or json.dumps({"case": kind, "error": r.stderr.strip().splitlines()[-1:]}), flush=True)


if __name__ == "__main__":
    main()
