"""The zebra photos of horse2zebra's trainB at 64x64 (a small photo set for the colour-recipe bench).

    python scripts/make_zebra64.py [--src ../shared/datasets/horse2zebra/trainB] [--out data/zebra64]

Development data (ImageNet photos: non-commercial research and education; Zhu et al. 2017): the product never
reads it at run time and it is not committed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/horse2zebra/trainB"))
    ap.add_argument("--out", default="data/zebra64")
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(args.src).glob("*.jpg"))
    for f in files:
        Image.open(f).convert("RGB").resize((args.size, args.size), Image.LANCZOS).save(out / f"{f.stem}.png")
    print(f"{len(files)} pictures in {out}")


if __name__ == "__main__":
    main()
