"""Translators judged by Inception FID / KID on the held-out tenth of the training folders, not the test split:
the judge for choosing between finished runs (which one ships), so that the test photos stay for the figures
reported afterwards.

    python bench/held_out_fid.py CHECKPOINT[:DIRECTION] ... [--data ../shared/datasets/horse2zebra]
        [--spread 40]

Each checkpoint's direction (AB by default; BA of a two-way file with `:BA`) translates the held-out photos of
its source folder (trainA for AB, trainB for BA), the tenth every training run keeps out of its steps
(`gancore.data`, the same files on every run); they are scored against the held-out photos of the other
folder. Inception is the judge no recipe trains against (the training curve's own judge is Lite1).
`--spread N` adds FID's standard deviation over N bootstrap redraws of both sets. `--sizes 256,320` judges
each checkpoint translating at each of those scales (the model's `image_size`; by default its own).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from translate_recipes import DATA, fid_spread  # noqa: E402

from gancore.analysis.evaluation import InceptionFeatures, frechet_distance, kid, read_photos  # noqa: E402
from gancore.data import UnpairedDataset  # noqa: E402
from gancore.inference import load_model, translate  # noqa: E402


def held_out_photos(data: Path) -> dict[str, list[np.ndarray]]:
    """The held-out tenth of trainA and trainB, as the training runs choose it."""
    ds = UnpairedDataset(data / "trainA", data / "trainB", image_size=256, hold_out=True)
    return {"A": read_photos(ds.held_out_A), "B": read_photos(ds.held_out_B)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="PATH or PATH:BA")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--spread", type=int, default=0)
    ap.add_argument("--sizes", default="", help="comma list of translation scales (px); default: the model's own")
    args = ap.parse_args()
    photos, extractor = held_out_photos(Path(args.data)), InceptionFeatures()
    real = {side: extractor(ims) for side, ims in photos.items()}
    unchanged = round(frechet_distance(real["A"], real["B"]), 2)     # the photos themselves, either way
    for spec in args.checkpoints:
        path, _, direction = spec.partition(":")
        direction = direction or "AB"
        src, dst = ("A", "B") if direction == "AB" else ("B", "A")
        model = load_model(path)
        own = model.config              # load_model's models are shared (cached): put the scale back after
        for size in [int(s) for s in args.sizes.split(",") if s] or [own.image_size]:
            model.config = replace(own, image_size=size)
            try:
                fakes = extractor([translate(model, im, direction)["output"] for im in photos[src]])
            finally:
                model.config = own
            row = {"checkpoint": spec, "image_size": size,
                   "photos": f"{len(photos[src])} held-out {src} vs {len(photos[dst])} {dst}",
                   "fid": round(frechet_distance(fakes, real[dst]), 2),
                   "kid_x100": round(100 * kid(fakes, real[dst]), 2), "unchanged_fid": unchanged}
            if args.spread:
                row["fid_sd"] = round(fid_spread(fakes, real[dst], args.spread), 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
