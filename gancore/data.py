"""Datasets: MNIST from its IDX files, image folders or zips, unpaired A/B folders, synthetic images.

Every dataset's `__getitem__` takes `(index, seed)`: the sampler hands each item its own augmentation seed
(derived from the run seed, epoch and position), so a resumed run sees exactly what a straight run sees,
whatever the number of loader workers.
"""
from __future__ import annotations

import functools
import gzip
import logging
import os
import random
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler, Sampler

from gancore import catalog
from gancore.errors import BadInput, DataError, DataTooLarge, TooLarge  # noqa: F401  (DataError re-exported)
from gancore.files import (  # noqa: F401  (callers import them from here)
    IMAGE_SUFFIXES,
    MAX_ZIP_BYTES,
    MAX_ZIP_MEMBER_BYTES,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_RATIO,
    MIN_ZIP_BUDGET,
    list_images,
    safe_extract_zip,
)
from gancore.imaging import MAX_IMAGE_PIXELS, open_image, to_rgb_or_grey, to_tensor, to_uint8  # noqa: F401

log = logging.getLogger("gancore.data")
ASSETS = Path(__file__).parent / "assets"
MNIST_DIR = ASSETS / "mnist"


# ----------------------------------------------------------------------------------------------------
# MNIST

def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path.name}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{path.name}: truncated IDX file")
    return arr.reshape(shape)


def load_mnist(split: str = "train", root: Path = MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and labels (N,)."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(Path(root) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(Path(root) / f"{prefix}-labels-idx1-ubyte.gz")
    return images, labels


class MNISTDataset(Dataset):
    def __init__(self, split="train", image_size=28, channels=1, limit: int | None = None):
        images, labels = load_mnist(split)
        if limit:
            images, labels = images[:limit], labels[:limit]
        x = torch.from_numpy(images.copy()).float().div(127.5).sub(1.0).unsqueeze(1)   # (N, 1, 28, 28)
        if image_size != 28:
            x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear",
                                                align_corners=False, antialias=True)
        if channels == 3:
            x = x.expand(-1, 3, -1, -1)
        self.x = x.contiguous()
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.split = split

    @functools.cached_property
    def held_out(self) -> torch.Tensor:
        """The quality curve's reference: the first 1000 test digits (the training split is never held out)."""
        other = "test" if self.split == "train" else "train"
        return MNISTDataset(other, self.x.shape[-1], self.x.shape[1], limit=1000).x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, item):
        index, _seed = item
        return self.x[index]

    def __getitems__(self, items):
        # Batched fetch (DataLoader calls this when present): one indexing op instead of a Python loop.
        return self.x[torch.tensor([i for i, _ in items])]


# ----------------------------------------------------------------------------------------------------
# Image files

def resize_crop(im: Image.Image, size: int, load_size: int | None = None, rng: random.Random | None = None,
                flip: bool = False) -> Image.Image:
    """Resize the shorter side to `load_size` (default `size`), crop `size` (random if rng), maybe flip."""
    load_size = load_size or size
    w, h = im.size
    scale = load_size / min(w, h)
    nw, nh = max(load_size, round(w * scale)), max(load_size, round(h * scale))
    im = im.resize((nw, nh), Image.BICUBIC)
    if rng is None:
        left, top = (nw - size) // 2, (nh - size) // 2
    else:
        left, top = rng.randint(0, nw - size), rng.randint(0, nh - size)
    im = im.crop((left, top, left + size, top + size))
    if flip and rng is not None and rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    return im


HOLD_OUT_SEED = 20240611
MIN_HOLD_OUT, MAX_HOLD_OUT = 20, 500


def held_out_count(n: int) -> int:
    """Pictures kept out of training to measure quality: a tenth, 20 to 500; none below 100 pictures."""
    return 0 if n < 100 else min(MAX_HOLD_OUT, max(MIN_HOLD_OUT, round(n / 10)))


class ImageFolderDataset(Dataset):
    """Any folder or .zip of images, converted to `channels` and resized/cropped to `image_size`.

    Files are decoded once up front (they are small for GANs of this size); broken files are skipped,
    counted and logged, never a crash. A folder with no usable image is a DataError.
    """

    def __init__(self, root, image_size=64, channels=3, flip=False, max_images: int | None = 20000,
                 hold_out: bool = False):
        files = list_images(root)[:max_images]
        arrays, self.skipped = [], []
        for f in files:
            try:
                im = to_rgb_or_grey(open_image(f), channels)
            except DataError as e:
                self.skipped.append(str(e))
                continue
            arrays.append(np.asarray(resize_crop(im, image_size)))
        if self.skipped:
            log.warning("skipped %d unreadable file(s) in %s, e.g. %s", len(self.skipped), root, self.skipped[0])
        if not arrays:
            raise DataError(f"{Path(root).name}: no usable image found "
                            f"({len(files)} file(s) looked at, {len(self.skipped)} unreadable)")
        x = torch.stack([to_tensor(a) for a in arrays])
        # A held-out slice for the quality curve: the same pictures whatever the run's seed or a resume.
        k = held_out_count(len(x)) if hold_out else 0
        self.held_out = None
        if k:
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(HOLD_OUT_SEED))
            self.held_out, x = x[order[:k]].contiguous(), x[order[k:].sort().values].contiguous()
        self.x = x
        self.flip = flip

    def __len__(self):
        return len(self.x)

    def __getitem__(self, item):
        index, seed = item
        x = self.x[index]
        if self.flip and random.Random(seed).random() < 0.5:
            x = x.flip(-1)
        return x


def _hold_out(files: list[Path], hold_out: bool) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): a tenth kept out for the quality curve, the same on every run."""
    k = held_out_count(len(files)) if hold_out else 0
    if not k:
        return files, []
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(HOLD_OUT_SEED)).tolist()
    return [files[i] for i in sorted(order[k:])], [files[i] for i in sorted(order[:k])]


class UnpairedDataset(Dataset):
    """Two unrelated image sets A and B, loaded lazily with resize -> random crop -> flip.

    An epoch runs over max(len A, len B) items; item i pairs A[i % len A] with a B drawn at random, as the
    paper's code does. Broken files are dropped when the set is listed (checked by a cheap header read).
    """

    def __init__(self, root_A, root_B, image_size=256, load_size=286, channels=3, train=True,
                 hold_out: bool = False):
        self.files_A, self.held_out_A = _hold_out(self._usable(root_A), hold_out)
        self.files_B, self.held_out_B = _hold_out(self._usable(root_B), hold_out)
        self.image_size, self.load_size, self.channels, self.train = image_size, load_size, channels, train

    @staticmethod
    def _usable(root) -> list[Path]:
        files, skipped = [], 0
        for f in list_images(root):
            try:
                with Image.open(f) as im:
                    im.verify()
                files.append(f)
            except Exception:   # any failure to parse the header: skip the file, count it
                skipped += 1
        if skipped:
            log.warning("skipped %d unreadable file(s) in %s", skipped, root)
        if not files:
            raise DataError(f"{Path(root).name}: no usable image found")
        return files

    def __len__(self):
        return max(len(self.files_A), len(self.files_B))

    def held_out_images(self, size: int, limit: int = 100) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The held-out photos of A and B (at most `limit` each), centre squares of `size` px in [-1, 1]."""
        if not (self.held_out_A and self.held_out_B):
            return None

        def load(files):
            return torch.stack([to_tensor(np.asarray(resize_crop(to_rgb_or_grey(open_image(f), self.channels), size)))
                                for f in files[:limit]])
        return load(self.held_out_A), load(self.held_out_B)

    def _load(self, path, rng):
        im = to_rgb_or_grey(open_image(path), self.channels)
        if self.train:
            im = resize_crop(im, self.image_size, self.load_size, rng, flip=True)
        else:
            im = resize_crop(im, self.image_size)
        return to_tensor(np.asarray(im))

    def __getitem__(self, item):
        index, seed = item
        rng = random.Random(seed)
        a = self._load(self.files_A[index % len(self.files_A)], rng)
        b = self._load(self.files_B[rng.randrange(len(self.files_B))], rng)
        return a, b

    # On-device path (TrainConfig.data_on_device): decode and resize every image once, keep them on the
    # accelerator as uint8, crop and flip there. On a GPU this removes the host loader as the bottleneck.
    def to_device(self, device) -> None:

        def load(path):   # square load_size x load_size, as resize_crop does for square photos
            im = to_rgb_or_grey(open_image(path), self.channels)
            w, h = im.size
            side = min(w, h)
            im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
            return np.asarray(im.resize((self.load_size, self.load_size), Image.BICUBIC)).reshape(
                self.load_size, self.load_size, self.channels)

        with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
            self.on_device = [torch.from_numpy(np.stack(list(pool.map(load, files)))).permute(0, 3, 1, 2)
                              .contiguous().to(device) for files in (self.files_A, self.files_B)]

    def device_batch(self, items) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch for `(index, seed)` items from the on-device copy: same draws as `__getitem__`."""
        A, B = self.on_device
        out_a, out_b = [], []
        size, span = self.image_size, self.load_size - self.image_size
        for index, seed in items:
            rng = random.Random(seed)
            for images, i, out in ((A, index % len(A), out_a), (B, None, out_b)):
                i = rng.randrange(len(B)) if i is None else i
                left, top = rng.randint(0, span), rng.randint(0, span)
                x = images[i, :, top:top + size, left:left + size]
                out.append(x.flip(-1) if rng.random() < 0.5 else x)
        return tuple(torch.stack(o).float().div_(127.5).sub_(1.0) for o in (out_a, out_b))


class SyntheticDataset(Dataset):
    """Random smooth blobs, for tests: deterministic per index."""

    def __init__(self, n=64, image_size=16, channels=1, paired_domains=False):
        g = torch.Generator().manual_seed(0)
        low = torch.rand(n * (2 if paired_domains else 1), channels, 4, 4, generator=g) * 2 - 1
        self.x = torch.nn.functional.interpolate(low, size=(image_size, image_size), mode="bilinear")
        self.n, self.paired = n, paired_domains

    def __len__(self):
        return self.n

    def __getitem__(self, item):
        index, _ = item
        if self.paired:
            return self.x[index], -self.x[self.n + index]
        return self.x[index]


# ----------------------------------------------------------------------------------------------------
# Sampling

class SeededSampler(Sampler):
    """`DistributedSampler` order plus a per-item augmentation seed, resumable mid-epoch.

    Yields `(index, seed)`; `skip` drops the first items of the epoch (what a resumed run already saw).
    """

    def __init__(self, dataset, seed: int, rank: int = 0, world_size: int = 1):
        self.inner = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                        seed=seed, drop_last=True)
        self.seed, self.epoch, self.skip = seed, 0, 0

    def set_epoch(self, epoch: int, skip: int = 0):
        self.epoch, self.skip = epoch, skip
        self.inner.set_epoch(epoch)

    def __iter__(self):
        order = list(self.inner)
        base = (self.seed * 1_000_003 + self.epoch) * 10_000_019
        for pos, index in enumerate(order):
            if pos >= self.skip:
                yield index, base + index

    def __len__(self):
        return len(self.inner) - self.skip


def collate(items):
    if isinstance(items, torch.Tensor):    # already a batch (__getitems__)
        return items
    if isinstance(items[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*items))
    return torch.stack(items)


def make_dataset(train_cfg, model_cfg) -> Dataset:
    """The dataset a TrainConfig names, shaped for the model config."""
    size, ch = model_cfg.image_size, model_cfg.image_channels
    limit = train_cfg.data_limit or None
    translate = catalog.task_of(train_cfg.model) == "translate"    # unpaired A/B image sets
    if train_cfg.data == "synthetic":
        return SyntheticDataset(n=limit or 64, image_size=size, channels=ch, paired_domains=translate)
    if translate:
        if not train_cfg.data_b:
            raise DataError("a translation model needs two image sets: data (domain A) and data_b (domain B)")
        crop = getattr(model_cfg, "crop_size", 0) or size     # train on crops, translate at full size
        ds = UnpairedDataset(train_cfg.data, train_cfg.data_b, image_size=crop,
                             load_size=getattr(model_cfg, "load_size", size), channels=ch, hold_out=True)
        if limit:
            ds.files_A, ds.files_B = ds.files_A[:limit], ds.files_B[:limit]
        return ds
    if train_cfg.data == "mnist":
        return MNISTDataset("train", image_size=size, channels=ch, limit=limit)
    return ImageFolderDataset(train_cfg.data, image_size=size, channels=ch, max_images=limit or 20000,
                              hold_out=catalog.task_of(train_cfg.model) == "noise")
