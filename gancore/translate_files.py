"""Translate files and folders with a translator (CUT or CycleGAN): one PNG per input, named after it, on the
fastest backend for this machine (gancore.deploy.fast).

Unreadable or hostile files get an error each; the rest go on. A folder's sub-folders are kept in the output
(`a/x.jpg` -> `a/x_AB.png`), and names that would still collide (`x.jpg` and `x.png`, or two `x.jpg` given
from different folders) get the suffix or a counter, so every input has its own output.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from PIL import Image

from gancore.deploy.fast import translate_fast
from gancore.errors import BadInput, DataError
from gancore.files import IMAGE_SUFFIXES
from gancore.inference import load_model


def _expand(inputs) -> list[tuple[Path, Path]]:
    """(input file, output name without direction and suffix, relative to the output folder)."""
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += [(f, f.relative_to(p).parent / f.stem)
                      for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        else:
            files.append((p, Path(p.stem)))
    used: set[str] = set()
    out = []
    for f, name in files:
        candidates = [name, name.with_name(f"{name.name}_{f.suffix.lstrip('.').lower()}")]
        candidates += [name.with_name(f"{name.name}_{i}") for i in range(2, len(files) + 2)]
        name = next(c for c in candidates if c.as_posix().lower() not in used)
        used.add(name.as_posix().lower())
        out.append((f, name))
    return out


def _save(image, dst: Path) -> None:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.squeeze()).save(dst)
    except OSError as e:
        with contextlib.suppress(OSError):    # no half-written picture left behind
            dst.unlink(missing_ok=True)
        raise DataError(f"{dst}: cannot write there ({e.strerror or e.__class__.__name__})") from None


def translate_paths(checkpoint, inputs, out_dir, direction="AB", cycle=False, scale="model", batch_size=4) -> list[dict]:
    """Returns one record per input: {"input", "output", "reconstruction", "note", "error"}.

    `batch_size` bounds how many decoded images are held at once; photos of different sizes are run one
    by one since each keeps its own size and aspect.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BadInput(f"batch size must be a whole number of at least 1, got {batch_size!r}")
    load_model(checkpoint)            # a damaged or hostile file is refused before anything is written
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"{out}: cannot write there ({e.strerror or e.__class__.__name__})") from None
    results = []
    files = _expand(inputs)
    for start in range(0, len(files), batch_size):
        for f, name in files[start:start + batch_size]:
            rec = {"input": str(f), "error": "", "note": ""}
            try:
                if not f.is_file():
                    raise DataError(f"{f}: no such file")
                r = translate_fast(checkpoint, f, direction=direction, cycle=cycle, scale=scale)
                dst = out / f"{name}_{direction}.png"
                _save(r["output"], dst)
                rec["output"], rec["note"] = str(dst), r["note"]
                if cycle:
                    rdst = out / f"{name}_{direction}_cycle.png"
                    _save(r["reconstruction"], rdst)
                    rec["reconstruction"] = str(rdst)
            except (DataError, ValueError, OSError) as e:
                msg = str(e).splitlines()[0] if str(e).strip() else e.__class__.__name__
                rec["error"] = msg if f.name in msg else f"{f.name}: {msg}"
            results.append(rec)
    return results
