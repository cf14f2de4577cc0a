"""Reading the user's files safely: image files by suffix, and zips unpacked with caps on members, sizes and
ratio, so a zip bomb or a member that points outside its folder is refused before it fills the disk.

Torch-free, so the studio can unpack an upload before the engine is imported.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from gancore.errors import DataError, DataTooLarge

log = logging.getLogger("gancore.files")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_ZIP_BYTES = 2_000_000_000      # unpacked, all members together
MAX_ZIP_MEMBER_BYTES = 100 * 1024 * 1024   # one image file; a 40-megapixel PNG is about 120 MB at most
MAX_ZIP_MEMBERS = 25_000           # entries of any kind (an upload is decoded up to 20000 images)
MAX_ZIP_RATIO = 100                # unpacked bytes per zip byte (photos hardly compress; bombs do by 1000x)
MIN_ZIP_BUDGET = 200 * 1024 * 1024 # a small zip may still unpack to this much
_DAMAGED = (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error)


def safe_extract_zip(zip_path: Path, target: Path, max_bytes: int = MAX_ZIP_BYTES,
                     max_member_bytes: int = MAX_ZIP_MEMBER_BYTES, max_members: int = MAX_ZIP_MEMBERS) -> Path:
    """Extract image members only, streamed in 1 MB chunks (never a whole member in memory).

    A member cannot write outside `target`; symlink members are skipped; the number of members, each member's
    size and the total are capped, counting the bytes actually unpacked (a zip's own size fields may lie).
    On any refusal what was unpacked is removed.
    """
    name = Path(zip_path).name
    target = Path(target).resolve()
    created = not target.exists()
    zf, infos, max_bytes = _open_zip(zip_path, max_bytes)
    try:
        with zf:
            if len(infos) > max_members:
                raise DataTooLarge(f"{name}: holds {len(infos)} entries; at most {max_members}")
            declared = sum(i.file_size for i in infos)
            if declared > max_bytes:
                raise DataTooLarge(f"{name}: unpacks to {declared / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB "
                                   "this zip may unpack to")
            target.mkdir(parents=True, exist_ok=True)
            total = 0
            for info, dest in _image_members(infos, target):
                if info.file_size > max_member_bytes:
                    raise DataTooLarge(f"{name}: member {_short(info.filename)} unpacks to "
                                       f"{info.file_size / 1e6:.0f} MB; at most {max_member_bytes / 1e6:.0f} MB per file")
                try:
                    total = _unpack_member(zf, info, dest, name, max_member_bytes, total, max_bytes)
                except _DAMAGED as e:
                    raise DataError(f"{name}: member {_short(info.filename)} is damaged or encrypted "
                                    f"({e.__class__.__name__})") from None
                except OSError as e:       # a name too long for the disk, a full disk: no server path shown
                    raise DataError(f"{name}: member {_short(info.filename)} cannot be unpacked here "
                                    f"({e.strerror or e.__class__.__name__})") from None
    except BaseException as e:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(e, DataError):
            raise
        if isinstance(e, _DAMAGED):
            raise DataError(f"{name}: a member is damaged or encrypted ({e.__class__.__name__})") from None
        raise
    return target


def _short(member: str, limit: int = 80) -> str:
    """A member's name for a message: its end is what tells members apart."""
    return member if len(member) <= limit else "..." + member[-(limit - 3):]


def _open_zip(zip_path: Path, max_bytes: int) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo], int]:
    """The open zip, its entries, and what it may unpack to: the cap, or less for a small zip (a 1.5 MB zip is
    not 1.5 GB of photos)."""
    try:
        zf = zipfile.ZipFile(zip_path)
        infos = zf.infolist()
        max_bytes = min(max_bytes, max(MIN_ZIP_BUDGET, MAX_ZIP_RATIO * Path(zip_path).stat().st_size))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{Path(zip_path).name}: not a readable zip file ({e.__class__.__name__})") from None
    return zf, infos, max_bytes


def _image_members(infos: list[zipfile.ZipInfo], target: Path):
    """(member, where it unpacks) for each image file; symlinks and paths outside `target` are skipped."""
    for info in infos:
        if info.is_dir() or Path(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            log.warning("skipped symlink zip member: %s", info.filename)
            continue
        dest = (target / info.filename).resolve()
        if target not in dest.parents:
            log.warning("skipped zip member outside the target folder: %s", info.filename)
            continue
        yield info, dest


def _unpack_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, name: str, max_member_bytes: int,
                   total: int, max_bytes: int) -> int:
    """Stream one member to `dest`, counting the bytes really unpacked; returns the zip's running total."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            total += len(chunk)
            if written > max_member_bytes:
                raise DataTooLarge(f"{name}: member {_short(info.filename)} unpacks to more than "
                                   f"{max_member_bytes / 1e6:.0f} MB per file")
            if total > max_bytes:
                raise DataTooLarge(f"{name}: unpacks to more than the {max_bytes / 1e6:.0f} MB "
                                   "this zip may unpack to")
            out.write(chunk)
    return total


def list_images(root: str | os.PathLike) -> list[Path]:
    """The image files under a folder (sorted), inside a zip (unpacked beside it), or the one file given."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such folder or zip file")
    if root.is_file() and root.suffix.lower() == ".zip":
        root = safe_extract_zip(root, root.with_suffix(""))
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
