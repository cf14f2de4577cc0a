"""The shipped weights load, carry model cards, and the digit models meet the class-coverage rule."""
import json
from pathlib import Path

import pytest

from gancore.analysis.evaluation import classifier_accuracy, digit_metrics, generate_images
from gancore.checkpoint import read_header
from gancore.features import CLASSIFIER_PATH, load_classifier
from gancore.inference import load_model

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
SHIPPED = sorted(WEIGHTS.glob("*.safetensors"))
# Measured on the shipped translator (weights/horse2zebra.md): KID x100 of its pictures over the photos' own.
MAX_KID_SHARE = {"AB": 0.5, "BA": 0.45}   # measured 0.45 and 0.31 (weights/horse2zebra.md)


def test_every_shipped_file_loads_and_has_a_model_card():
    names = {p.name for p in SHIPPED if not p.name.endswith(".directions.safetensors")}
    assert {"dcgan_mnist.safetensors", "mlp_mnist.safetensors", "horse2zebra.safetensors"} <= names
    for name in names:
        path = WEIGHTS / name
        meta = read_header(path)
        assert meta["format"] == "gancore"
        assert (WEIGHTS / name.replace(".safetensors", ".md")).is_file(), f"{name} has no model card"
        load_model(path)


def test_classifier_is_accurate():
    meta = read_header(CLASSIFIER_PATH)
    assert json.loads(meta["metrics"])["test_accuracy"] >= 0.99
    assert classifier_accuracy(load_classifier()) >= 0.99


# Regression floors at the shipped models' measured quality (weights/*.md; 2000 samples here, so FID reads
# a little higher than the cards' 10 000-sample figures).
@pytest.mark.parametrize("name,classes,min_share,max_fid", [("dcgan_mnist", 10, 0.05, 40.0),
                                                           ("mlp_mnist", 5, 0.0, 700.0)])
def test_digit_models_quality_floor(name, classes, min_share, max_fid):
    model = load_model(WEIGHTS / f"{name}.safetensors")
    m = digit_metrics(generate_images(model, 2000, seed=1))
    assert m["classes_present"] >= classes, m
    assert m["min_class_share"] >= min_share, m
    assert m["classifier_fid"] <= max_fid, m


def test_dcgan_meets_the_issue_coverage_rule():
    """The engine issue's rule for the shipped DCGAN: all ten digits, none under 5 %."""
    m = digit_metrics(generate_images(load_model(WEIGHTS / "dcgan_mnist.safetensors"), 10000, seed=2))
    assert m["classes_present"] == 10 and m["min_class_share"] >= 0.05, m


def _photos(folder: Path, n: int):
    import numpy as np
    import torch
    from PIL import Image
    files = sorted(folder.glob("*.jpg"))[:n]
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((256, 256))) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_the_shipped_translator_is_the_translate_default_and_translates_both_ways(tmp_path, h2z):
    """weights/horse2zebra.safetensors comes first in the Translate tab, and on test photos (never trained on,
    never used to pick the checkpoint) each way's pictures are far nearer the other domain than the photos are:
    Lite1 KID x100 against the other domain's test photos, as the training curve measures it."""
    from gancore.analysis.quality import PictureFeatures, TranslationMeter, copying
    from studio.services import Services
    listed = Services(weights_dir=WEIGHTS, runs_dir=tmp_path / "runs").list_checkpoints("translate")
    assert Path(listed[0][1]).name == "horse2zebra.safetensors"
    assert not (WEIGHTS / "horse2zebra_student.safetensors").exists()
    model = load_model(WEIGHTS / "horse2zebra.safetensors")
    features = PictureFeatures(size=128)
    horses, zebras = _photos(h2z / "testA", 48), _photos(h2z / "testB", 48)
    for direction, src, dst in (("AB", horses, zebras), ("BA", zebras, horses)):
        point = TranslationMeter(features, src, dst).measure(model, model.G, direction)
        assert point["kid"] < MAX_KID_SHARE[direction] * point["photo_kid"], (direction, point)
        assert not copying(point), (direction, point)
