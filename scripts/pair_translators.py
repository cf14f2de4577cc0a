"""Join two one-way CUT translators (A -> B and B -> A) into one two-way file the Translate tab serves.

    python scripts/pair_translators.py runs/h2z/best.safetensors runs/z2h/best.safetensors \
        --out weights/horse2zebra.safetensors [--metrics metrics.json] [--default]

The generators' EMA weights and the discriminators are stored in fp16; the PatchNCE heads stay with the
runs. `--default` asks the studio to open the Translate tab on this file. What each run trained is kept in
the header, without the paths of the machine it ran on.
"""
from __future__ import annotations

import argparse
import json

import torch

from gancore import checkpoint as ckpt
from gancore import registry
from gancore.config import to_json
from gancore.models.cut import two_way_from


def load(path: str):
    tensors, meta = ckpt.load(path)
    if meta.get("model_type") != "cut":
        raise SystemExit(f"{path}: not a CUT model ({meta.get('model_type')})")
    return tensors, meta, registry.config_from_json("cut", meta["model_config"])


def recipe(state: dict) -> dict:
    """A run's training settings without the paths of the machine it ran on."""
    return {k: v for k, v in (state.get("train_config") or {}).items()
            if k not in ("data", "data_b", "out_dir", "init_from")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ab", help="the A -> B run's checkpoint")
    ap.add_argument("ba", help="the B -> A run's checkpoint (trained with the folders swapped)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", help="a JSON file of figures to keep in the header")
    ap.add_argument("--default", action="store_true", help="the Translate tab opens on this file")
    args = ap.parse_args()
    t_ab, m_ab, c_ab = load(args.ab)
    t_ba, m_ba, c_ba = load(args.ba)
    tensors, cfg = two_way_from((t_ab, c_ab), (t_ba, c_ba))
    trained = {d: json.loads(m.get("train_state") or m.get("trained") or "{}") for d, m in (("AB", m_ab), ("BA", m_ba))}
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
