"""The shipped translator's model-card pictures, from the two long runs and the shipped file.

    python scripts/translator_card.py [H2Z_RUN Z2H_RUN]   # needs ../shared; the runs' checkpoints or the
                                                         # run_state.json of a finished run (default
                                                         # experiments/{h2z,z2h}/last.safetensors)

weights/horse2zebra.png        8 test horses over their zebras, then 8 test zebras over their horses (256 px
                               test photos, never trained on, never used to pick the checkpoint)
weights/horse2zebra_curve.png  each run's held-out curve: Lite1 KID x100 of its translations of the held-out
                               tenth of its training photos against the other domain's held-out tenth, and
                               what the unchanged photos score, over the run's CPU-hours on one thread
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gancore import checkpoint as ckpt
from gancore.imaging import tile
from gancore.inference import load_model, translate

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "datasets" / "horse2zebra"
SHIPPED = ROOT / "weights" / "horse2zebra.safetensors"
PANEL = 8


def panel() -> None:
    model = load_model(SHIPPED)
    rows = []
    for folder, direction in (("testA", "AB"), ("testB", "BA")):
        photos = [np.asarray(Image.open(p).convert("RGB").resize((256, 256)))
                  for p in sorted((TEST / folder).glob("*.jpg"))[:PANEL]]
        rows += photos + [translate(model, im, direction)["output"] for im in photos]
    out = Image.fromarray(tile(np.stack(rows), cols=PANEL))
    out.resize((out.width // 2, out.height // 2), Image.LANCZOS).save(ROOT / "weights" / "horse2zebra.png")


def train_state(run: Path) -> dict:
    """A run's training state: from its resumable file's header, or from the `run_state.json` a finished run
    leaves instead of its file."""
    if run.suffix == ".json":
        return json.loads(run.read_text())
    return json.loads(ckpt.read_header(run)["train_state"])


def curve(runs: dict[str, Path]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for way, label, colour in (("h2z", "horse → zebra", "tab:blue"), ("z2h", "zebra → horse", "tab:orange")):
        state = train_state(runs[way])
        history = state.get("quality") or []
        hours_per_step = (state.get("cpu_s") or 0) / 3600 / max(state["step"], 1)
        x = [p["step"] * hours_per_step for p in history]
        ax.plot(x, [p["kid"] for p in history], color=colour, label=f"{label}: translations")
        ax.axhline(history[0]["photo_kid"], color=colour, linestyle=":", label=f"{label}: photos unchanged")
    ax.set_xlabel("CPU-hours, one thread (steps × the run's mean CPU time per step)")
    ax.set_ylabel("held-out KID ×100 (Lite1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "weights" / "horse2zebra_curve.png")


if __name__ == "__main__":
    paths = sys.argv[1:] or [ROOT / "experiments" / way / "last.safetensors" for way in ("h2z", "z2h")]
    panel()
    curve(dict(zip(("h2z", "z2h"), map(Path, paths))))
