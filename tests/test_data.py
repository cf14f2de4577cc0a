import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from gancore.data import DataError, ImageFolderDataset, MNISTDataset, UnpairedDataset, load_mnist
from gancore.files import safe_extract_zip


def test_mnist_from_bundled_idx_files():
    x, y = load_mnist("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    ds = MNISTDataset("train", image_size=32, channels=3, limit=10)
    item = ds[(0, 0)]
    assert item.shape == (3, 32, 32) and -1 <= item.min() and item.max() <= 1


def _write_images(folder, n, size=(40, 30), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new(mode, size, color=i * 20 if mode == "L" else (i * 20, 0, 0)).save(folder / f"img{i}.png")


def test_folder_skips_broken_files_and_converts(tmp_path):
    _write_images(tmp_path / "d", 3)
    Image.new("RGBA", (10, 50), (0, 0, 255, 0)).save(tmp_path / "d" / "alpha.png")
    Image.new("L", (20, 20), 128).save(tmp_path / "d" / "grey.jpg")
    (tmp_path / "d" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "d" / "empty.jpg").write_bytes(b"")
    ds = ImageFolderDataset(tmp_path / "d", image_size=16, channels=3)
    assert len(ds) == 5 and len(ds.skipped) == 2
    assert ds[(0, 0)].shape == (3, 16, 16)
    grey = ImageFolderDataset(tmp_path / "d", image_size=28, channels=1)
    assert grey[(0, 0)].shape == (1, 28, 28)


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no usable image"):
        ImageFolderDataset(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="no usable image"):
        ImageFolderDataset(tmp_path / "bad")


def test_zip_member_cannot_escape(tmp_path):
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(img, "ok/a.png")
        zf.write(img, "../../escaped.png")
        zf.write(img, "/abs/escaped2.png")
    target = tmp_path / "out" / "inner"
    safe_extract_zip(z, target)
    assert (target / "ok" / "a.png").is_file()
    assert not (tmp_path / "escaped.png").exists() and not (tmp_path / "out" / "escaped.png").exists()
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*") if target not in p.parents)
    ds = ImageFolderDataset(z, image_size=8)
    assert len(ds) >= 1


def test_corrupt_zip_is_a_clear_error(tmp_path):
    z = tmp_path / "broken.zip"
    z.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="not a readable zip"):
        ImageFolderDataset(z)


def test_unpacking_a_zip_needs_no_torch():
    """The studio unpacks and checks an upload before the engine (torch) is imported."""
    import subprocess
    import sys
    from pathlib import Path
    code = "import sys, gancore.files; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_unpaired_real_files_grey_converted(h2z):
    ds = UnpairedDataset(h2z / "trainA", h2z / "trainB", image_size=64, load_size=72)
    grey_name = "n02391049_226.jpg"
    assert any(p.name == grey_name for p in ds.files_B)
    ds.files_B = [p for p in ds.files_B if p.name == grey_name]
    a, b = ds[(3, 42)]
    assert a.shape == b.shape == (3, 64, 64)
    a2, b2 = ds[(3, 42)]
    assert torch.equal(a, a2) and torch.equal(b, b2)   # augmentation is a function of the seed


def test_on_device_batches_match_the_loader(h2z):
    """The GPU data path (decode once, crop on the device) draws exactly what the file loader draws."""
    ds = UnpairedDataset(h2z / "testA", h2z / "testB", image_size=64, load_size=72)
    ds.files_A, ds.files_B = ds.files_A[:6], ds.files_B[:5]
    ds.to_device("cpu")
    items = [(0, 1), (4, 12345), (5, 99)]
    a, b = ds.device_batch(items)
    assert a.shape == b.shape == (3, 3, 64, 64)
    for k, item in enumerate(items):
        ra, rb = ds[item]
        assert torch.equal(ra, a[k]) and torch.equal(rb, b[k])
