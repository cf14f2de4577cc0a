"""Translate files and folders with a CycleGAN checkpoint: one PNG per input, named after it.

Unreadable or hostile files get an error each; the rest go on.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from gancore.data import IMAGE_SUFFIXES, DataError
from gancore.inference import load_model, translate


def _expand(inputs) -> list[Path]:
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(p)
    return files


def translate_paths(checkpoint, inputs, out_dir, direction="AB", cycle=False, scale="model", batch_size=4) -> list[dict]:
    """Returns one record per input: {"input", "output", "reconstruction", "note", "error"}.

    `batch_size` bounds how many decoded images are held at once; photos of different sizes are run one
    by one since each keeps its own size and aspect.
    """
    model = load_model(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    files = _expand(inputs)
    for start in range(0, len(files), max(1, batch_size)):
        for f in files[start:start + batch_size]:
            rec = {"input": str(f), "error": "", "note": ""}
            try:
                if not f.is_file():
                    raise DataError(f"{f}: no such file")
                r = translate(model, f, direction=direction, cycle=cycle, scale=scale)
                dst = out / f"{f.stem}_{direction}.png"
                Image.fromarray(r["output"].squeeze()).save(dst)
                rec["output"], rec["note"] = str(dst), r["note"]
                if cycle:
                    rdst = out / f"{f.stem}_{direction}_cycle.png"
                    Image.fromarray(r["reconstruction"].squeeze()).save(rdst)
                    rec["reconstruction"] = str(rdst)
            except (DataError, ValueError, OSError) as e:
                rec["error"] = str(e)
            results.append(rec)
    return results
