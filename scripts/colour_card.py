"""The shipped colour model's card pictures: 64 samples, and slider strips along its first SeFa directions.

    python scripts/colour_card.py [weights/dcgan_noto_emoji.safetensors]

weights/<stem>.png        64 samples, seed 0 (what `gancore sample CKPT --n 64 --grid` draws)
weights/<stem>_strip.png  one row per latent direction (the Explore tab's first three sliders), the same
                          sample moved from -3 to +3 along it, for two samples
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancore.analysis.latent import edit, load_or_compute_directions
from gancore.imaging import tile, to_uint8
from gancore.inference import load_model

ROOT = Path(__file__).resolve().parents[1]
STEPS = np.linspace(-3, 3, 7)


@torch.no_grad()
def pictures(path: Path) -> None:
    model = load_model(path)
    G = model.generator()
    z = model.noise(64, generator=torch.Generator().manual_seed(0))
    Image.fromarray(tile(to_uint8(G(z)), cols=8)).save(path.with_suffix(".png"))
    directions = load_or_compute_directions(path, G, k=3)
    rows = []
    for seed in (3, 7):
        base = model.noise(1, generator=torch.Generator().manual_seed(seed))
        for d in range(3):
            alphas = np.zeros(3)
            moved = []
            for a in STEPS:
                alphas[d] = a
                moved.append(edit(base, directions, alphas))
            rows.append(to_uint8(G(torch.cat(moved))))
    strip = Image.fromarray(tile(np.concatenate(rows), cols=len(STEPS)))
    strip.resize((strip.width * 2, strip.height * 2), Image.NEAREST).save(path.with_name(path.stem + "_strip.png"))


if __name__ == "__main__":
    pictures(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "weights" / "dcgan_noto_emoji.safetensors")
