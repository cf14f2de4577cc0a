"""A studio run's uploaded zips: unpacked inside the run's folder (images only, no path escapes), decoded at once
so a broken upload is reported before the run starts, and removed when the run finishes. Errors name the
user's file, never the folder it was unpacked to."""
from __future__ import annotations

import shutil
from pathlib import Path

from gancore.config import ConfigError
from gancore.errors import DataError, TooLarge
from gancore.files import MAX_ZIP_BYTES, safe_extract_zip
from studio.visitors import QuotaError, folder_bytes


def unpack(data: str, upload: str, out_dir: Path, tag: str, room: int | None = None) -> str:
    """MNIST, or an uploaded zip unpacked (images only, no path escapes) inside the run's folder. With `room`
    (a visitor's share left on a shared studio) the run's folder may not grow past it."""
    if data == "mnist" and tag == "data":
        return "mnist"
    if not upload:
        raise DataError("upload a .zip file of images first")
    src = Path(upload)
    if not src.is_file():
        raise DataError("the uploaded file is gone; upload it again")
    target = out_dir / f".{tag}"
    target.mkdir(parents=True, exist_ok=True)
    left = None if room is None else max(0, room - folder_bytes(out_dir))
    try:
        safe_extract_zip(src, target, **({} if left is None or left >= MAX_ZIP_BYTES else {"max_bytes": left}))
    except DataError as e:
        shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(e, TooLarge) and left is not None and left < MAX_ZIP_BYTES:
            raise QuotaError(f"{e}; your share of this shared studio has {left / 1e6:.0f} MB left: delete a run "
                             "in the Models tab, or upload fewer pictures") from None
        if isinstance(e, TooLarge):      # say which cap, not just "unreadable"
            raise
        raise DataError(f"{src.name} is not a readable zip file of images") from None
    return str(target)



def decode(cfg, model_cfg, out_dir: Path, upload: str, upload_b: str):
    """The run's dataset, decoded now so a broken zip is reported at once; None for MNIST (always fine, a few
    seconds to unpack: the job prepares it in its thread and keeps it for the next run)."""
    from gancore.data import make_dataset
    if cfg.data == "mnist":
        return None
    try:
        dataset = make_dataset(cfg, model_cfg)
    except DataError as e:           # name the user's file, not the folder it was unpacked to
        shutil.rmtree(out_dir, ignore_errors=True)
        msg = str(e).replace(Path(cfg.data).name, Path(upload).name)
        if cfg.data_b:
            msg = msg.replace(Path(cfg.data_b).name, Path(upload_b).name)
        raise DataError(msg) from None
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if len(dataset) < cfg.batch_size:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise ConfigError(f"the data has {len(dataset)} images, fewer than one batch of {cfg.batch_size}; "
                          "lower the batch size or add images")
    return dataset


def remove_unpacked(run_dir: Path) -> None:
    for tag in (".data", ".data_b"):
        shutil.rmtree(run_dir / tag, ignore_errors=True)
