"""Drawing into a model (gancore.analysis.projection): real MNIST test digits and a drawn sketch, against the nearest
of 1000 random samples from the same generator."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image, ImageDraw

from gancore.analysis.projection import ProjectionError, load_latent, prepare_drawing, project, save_latent
from gancore.data import load_mnist
from gancore.errors import BadInput, Unsupported
from gancore.inference import load_model, sample

DCGAN = ROOT / "weights" / "dcgan_mnist.safetensors"


@pytest.fixture(scope="module")
def model():
    return load_model(DCGAN)


@pytest.fixture(scope="module")
def random_samples(model):
    """1000 samples from seeds the projection never uses, in [-1, 1]."""
    return sample(model, n=1000, seed=12345).astype(np.float32) / 127.5 - 1


def nearest_mse(samples: np.ndarray, target: np.ndarray) -> float:
    t = target.astype(np.float32) / 127.5 - 1
    return float(((samples - t) ** 2).reshape(len(samples), -1).mean(1).min())


def sketch(kind: str) -> np.ndarray:
    """What the studio's sketchpad sends: RGBA, black strokes on a transparent 280 px canvas."""
    im = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if kind == "zero":
        d.ellipse((80, 40, 200, 240), outline=(0, 0, 0, 255), width=22)
    else:   # a seven
        d.line((70, 50, 210, 50), fill=(0, 0, 0, 255), width=22)
        d.line((210, 50, 120, 240), fill=(0, 0, 0, 255), width=22)
    return np.asarray(im)


def test_real_digits_are_reproduced_closer_than_any_of_1000_random_samples(model, random_samples):
    images, labels = load_mnist("test")
    for i in range(3):                                   # a 7, a 2 and a 1
        p = project(model, images[i])
        near = nearest_mse(random_samples, p.target)
        assert p.mse < near, (labels[i], p.mse, near)
        assert p.image.shape == (28, 28, 1) and p.z.shape == (1, 100)
        assert p.elapsed_s < 4.0                          # a 1.6 s budget plus the candidates, on a busy machine


def test_a_drawn_sketch_is_prepared_like_mnist_and_reproduced(model, random_samples):
    for kind in ("zero", "seven"):
        target = prepare_drawing(sketch(kind), 28, 1)
        assert target.shape == (28, 28, 1)
        assert target[0, :, 0].max() == 0 and target[:, 0, 0].max() == 0     # white on black, with a margin
        assert target.max() > 200
        p = project(model, sketch(kind))
        assert np.array_equal(p.target, target)
        assert p.mse < nearest_mse(random_samples, target), kind


def test_the_found_code_reproduces_when_loaded_back(model, tmp_path):
    p = project(model, load_mnist("test")[0][0], time_budget_s=0.5)
    path = save_latent(tmp_path / "z.npy", p.z)
    z = load_latent(path, 100)
    assert torch.equal(z, p.z)
    assert np.array_equal(sample(model, z=z)[0], p.image)
    (tmp_path / "z.json").write_text('{"z": %s}' % p.z.reshape(-1).tolist())
    assert torch.allclose(load_latent(tmp_path / "z.json", 100), p.z)


def test_empty_and_unusable_inputs_get_a_clear_message(model, tmp_path):
    with pytest.raises(ProjectionError, match="the drawing is empty"):
        project(model, np.zeros((280, 280, 4), np.uint8))          # an untouched transparent canvas
    with pytest.raises(ProjectionError, match="the drawing is empty"):
        project(model, np.full((280, 280, 3), 255, np.uint8))      # white paper
    with pytest.raises(ProjectionError, match="empty"):
        project(model, None)
    with pytest.raises(BadInput):
        project(model, np.zeros((2, 2, 2)))
    np.save(tmp_path / "short.npy", np.zeros(7, np.float32))
    with pytest.raises(ProjectionError, match="needs 100 numbers"):
        load_latent(tmp_path / "short.npy", 100)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ProjectionError, match="not a latent file"):
        load_latent(tmp_path / "junk.npy", 100)
    with pytest.raises(Unsupported):
        project(load_model(ROOT / "weights" / "horse2zebra.safetensors"), sketch("zero"))


def test_every_unusable_latent_file_is_named_and_explained(tmp_path):
    """Text and record dtypes, a header that claims 10^12 numbers, pickles, short bodies: one line each,
    "not a latent file: <name>: <why>", and nothing is allocated from a lying header."""
    import pickle
    np.save(tmp_path / "text.npy", np.array(["1"] * 100))                        # <U1
    np.save(tmp_path / "void.npy", np.zeros(100, dtype="V4"))
    np.save(tmp_path / "objects.npy", np.array([None] * 100, dtype=object), allow_pickle=True)
    (tmp_path / "pickle.npy").write_bytes(pickle.dumps(np.zeros(100, np.float32)))
    (tmp_path / "huge.npy").write_bytes(_npy_header((10**12,)) + b"\x00" * 64)       # claims 4 TB
    (tmp_path / "short.npy").write_bytes(_npy_header((100,)) + b"\x00" * 40)
    (tmp_path / "words.json").write_text('{"z": ["a", "b"]}')
    cases = {"text.npy": "<U1", "void.npy": "|V4", "objects.npy": "|O", "pickle.npy": "not a .npy array",
             "huge.npy": "holds 1000000000000 numbers", "short.npy": "shorter than its header",
             "words.json": "expected JSON", "missing.npy": "no such file"}
    for name, why in cases.items():
        with pytest.raises(ProjectionError) as e:
            load_latent(tmp_path / name, 100)
        msg = str(e.value)
        assert msg.startswith(f"not a latent file: {name}: ") and why in msg and "\n" not in msg, msg
    np.save(tmp_path / "ints.npy", np.arange(100, dtype=np.int16))               # whole numbers are numbers
    assert load_latent(tmp_path / "ints.npy", 100)[0, 5] == 5


def _npy_header(shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_a_colour_picture_is_centre_cropped(h2z):
    photo = np.asarray(Image.open(sorted((h2z / "testA").glob("*.jpg"))[0]).convert("RGB").resize((300, 200)))
    out = prepare_drawing(photo, 32, 3)
    assert out.shape == (32, 32, 3)
    with pytest.raises(ProjectionError, match="flat colour"):
        prepare_drawing(np.full((50, 50, 3), 90, np.uint8), 32, 3)
