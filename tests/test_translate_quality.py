"""A translator's quality curve on photos held out of its training folders, and copying said in words."""
from __future__ import annotations

import torch
from torch import nn

from gancore.analysis.quality import TranslationMeter, copying, translation_verdict, verdict_kind
from gancore.cli import format_event
from gancore.data import UnpairedDataset
from gancore.features import PictureFeatures
from gancore.training import TrainConfig, Trainer
from tests.helpers import tiny_config


class _Group(nn.Module):
    """A generator group whose horse -> zebra network is `net`."""

    def __init__(self, net):
        super().__init__()
        self.G_AB = net
        self.anchor = nn.Linear(1, 1)        # a parameter, so the meter finds the device


def _model():
    from gancore import registry
    return registry.build("cut", tiny_config("cut"))


def _meter(h2z):
    ds = UnpairedDataset(h2z / "testA", h2z / "testB", image_size=64, load_size=64, hold_out=True)
    held_a, held_b = ds.held_out_images(64)
    assert len(held_a) == 20 and len(held_b) == 20           # a tenth, at least 20, of each folder
    assert not set(ds.held_out_A) & set(ds.files_A)          # never trained on
    return TranslationMeter(PictureFeatures(size=64), held_a, held_b)


class _Shift(nn.Module):
    def forward(self, x):
        return (x * 0.3 + torch.linspace(-0.6, 0.6, x.shape[-1])).clamp(-1, 1)


def test_a_generator_that_returns_its_input_is_reported_as_copying(h2z):
    meter = _meter(h2z)
    copy = {"step": 1000, **meter.measure(_model(), _Group(nn.Identity()))}
    assert copy["identity"] == 0 and copy["kid"] == copy["photo_kid"]
    assert copying(copy)
    assert "Copying its input" in translation_verdict([copy]) and verdict_kind([copy]) == "warn"
    early = {**copy, "step": 10}
    assert "Warming up" in translation_verdict([early]) and verdict_kind([early]) == "wait"

    changed = {"step": 1000, **meter.measure(_model(), _Group(_Shift()))}
    assert changed["identity"] > 0.1 and not copying(changed)
    assert "Copying" not in translation_verdict([copy, changed])
    nowhere = {**changed, "kid": changed["photo_kid"]}           # changed, but no nearer the zebras
    assert "Not translating yet" in translation_verdict([nowhere]) and verdict_kind([nowhere]) == "wait"
    nearer = {**changed, "kid": 0.5 * changed["photo_kid"]}
    assert "Translating" in translation_verdict([nearer]) and verdict_kind([nearer]) == "ok"


def test_a_translation_run_shows_its_curve_and_keeps_the_best(tmp_path, h2z):
    cfg = TrainConfig(model="cut", data=str(h2z / "testA"), data_b=str(h2z / "testB"), steps=20, batch_size=1,
                      out_dir=str(tmp_path / "run"), quality_every_steps=10, sample_every_steps=0)
    events = list(Trainer(cfg, tiny_config("cut")).run())
    quality = [e for e in events if e.kind == "quality"]
    assert [e.step for e in quality] == [10, 20]
    for e in quality:
        assert {"kid", "photo_kid", "identity", "diversity"} <= set(e.metrics)
        assert "identity distance" in format_event(e) and e.message
    steps = [e for e in events if e.kind == "step"]
    assert {"G/identity_distance", "D/acc_real", "D/acc_fake"} <= set(steps[-1].losses)
    assert (tmp_path / "run" / "best.safetensors").exists()


def test_a_fresh_translators_noise_is_never_the_checkpoint_kept():
    """Measured on the zebra -> horse run: its untrained generator (step 10) scored KID 126.6 against 151.6 for
    the unchanged photos, below every trained check for thousands of steps; keeping it would ship noise."""
    from gancore.analysis.quality import best_of, is_best
    point = {"photo_kid": 151.6, "identity": 0.12, "diversity": 0.85}
    history = [{**point, "step": 10, "kid": 126.6, "identity": 0.198, "diversity": 0.61},
               {**point, "step": 1305, "kid": 140.4}, {**point, "step": 5710, "kid": 137.4}]
    assert best_of(history)["step"] == 5710 and is_best(history)
    assert best_of(history[:1])["step"] == 10          # with nothing else, the only check is the best there is
