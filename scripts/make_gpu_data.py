"""Prepare `.gpu_data/trainA|trainB` for `scripts/gpu_cyclegan.sh`: the horse2zebra train split re-encoded
as JPEG quality 82 (about 50 MB instead of 110), small enough to carry to the device machine (64 MiB limit).

    python scripts/make_gpu_data.py [--src ../shared/datasets/horse2zebra] [--quality 82]

Only trainA and trainB are copied; the test split never leaves the development machine.
"""
import argparse
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(ROOT.parent / "shared" / "datasets" / "horse2zebra"))
    ap.add_argument("--quality", type=int, default=82)
    a = ap.parse_args()
    for split in ("trainA", "trainB"):
        out = ROOT / ".gpu_data" / split
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted((Path(a.src) / split).iterdir()):
            with Image.open(f) as im:
                im.convert("RGB").save(out / f"{f.stem}.jpg", quality=a.quality)
        print(f"{split}: {len(list(out.iterdir()))} files")
    total = sum(f.stat().st_size for f in (ROOT / ".gpu_data").rglob("*") if f.is_file())
    print(f"{total / 2**20:.1f} MiB in .gpu_data")


if __name__ == "__main__":
    main()
