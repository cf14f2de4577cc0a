"""Join two one-way CUT translators (A -> B and B -> A) into one two-way file the Translate tab serves.

    python scripts/pair_translators.py runs/h2z/best.safetensors runs/z2h/best.safetensors \
        --out weights/horse2zebra.safetensors [--metrics metrics.json] [--default]

Either file may be a two-way file already (e.g. the shipped pair): its direction that the pair needs is
taken, so a new run of one direction replaces that direction only. The generators' EMA weights and the
discriminators are stored in fp16; the PatchNCE heads stay with the runs. `--default` asks the studio to open
the Translate tab on this file. What each run trained is kept in the header, without the paths of the
machine it ran on.
"""
from __future__ import annotations

import argparse
import json

import torch

from gancore import checkpoint as ckpt
from gancore import registry
from gancore.config import to_json
from gancore.models.cut import one_way_from, two_way_from


def load(path: str, direction: str):
    """(tensors, what it trained, config) of a one-way run, or of one direction of a two-way file."""
    tensors, meta = ckpt.load(path)
    if meta.get("model_type") != "cut":
        raise SystemExit(f"{path}: not a CUT model ({meta.get('model_type')})")
    cfg = registry.config_from_json("cut", meta["model_config"])
    if cfg.two_way:                     # e.g. a shipped pair whose other direction a new run replaces
        tensors, cfg = one_way_from(tensors, cfg, direction)
        return tensors, json.loads(meta.get("trained_each_way") or "{}").get(direction, {}), cfg
    return tensors, json.loads(meta.get("train_state") or meta.get("trained") or "{}"), cfg


def recipe(state: dict) -> dict:
    """A run's training settings without the paths of the machine it ran on."""
    return {k: v for k, v in (state.get("train_config") or {}).items()
            if k not in ("data", "data_b", "out_dir", "init_from")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ab", help="the A -> B run's checkpoint (or a two-way file: its A -> B)")
    ap.add_argument("ba", help="the B -> A run's checkpoint, trained with the folders swapped (or a two-way file: "
                               "its B -> A)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", help="a JSON file of figures to keep in the header")
    ap.add_argument("--default", action="store_true", help="the Translate tab opens on this file")
    args = ap.parse_args()
    t_ab, trained_ab, c_ab = load(args.ab, "AB")
    t_ba, trained_ba, c_ba = load(args.ba, "BA")
    tensors, cfg = two_way_from((t_ab, c_ab), (t_ba, c_ba))
    trained = {"AB": trained_ab, "BA": trained_ba}
    meta = {"model_type": "cut", "model_config": to_json(cfg),
            "trained_each_way": json.dumps({d: {"step": t.get("step"), "elapsed_s": t.get("elapsed_s"),
                                                "cpu_s": t.get("cpu_s"), "train_config": recipe(t)}
                                            for d, t in trained.items()})}
    if args.metrics:
        meta["metrics"] = json.dumps(json.load(open(args.metrics)))
    if args.default:
        meta["studio_default"] = "translate"
    ckpt.save(args.out, {k: v.to(torch.float16) for k, v in tensors.items()}, meta)
    print(f"wrote {args.out}: {sum(v.numel() for v in tensors.values())} parameters, two ways")


if __name__ == "__main__":
    main()
