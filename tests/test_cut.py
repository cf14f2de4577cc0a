"""CUT / FastCUT on real horse2zebra photos: the PatchNCE loss, one-way and two-way models, pairing two runs."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gancore.inference import load_model, translate
from gancore.models.cut import CUTConfig, patch_nce
from gancore.training import TrainConfig, train
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_patch_nce_rewards_matching_places():
    g = torch.Generator().manual_seed(0)
    k = F.normalize(torch.randn(2, 64, 16, generator=g), dim=-1)
    same = patch_nce(k, k, 0.07)
    other = patch_nce(F.normalize(torch.randn(2, 64, 16, generator=g), dim=-1), k, 0.07)
    assert same < 0.5 < np.log(64) - 1 < other            # chance level is log(64) = 4.2


def test_config_refuses_layers_outside_the_encoder():
    with pytest.raises(ValueError, match="nce_layers"):
        CUTConfig(res_blocks=2, nce_layers="0,4,40")
    with pytest.raises(ValueError, match="block"):
        CUTConfig(block="mobile")


def _run(tmp_path, h2z, name, a="testA", b="testB", **changes):
    cfg = TrainConfig(model="cut", data=str(h2z / a), data_b=str(h2z / b), steps=3, batch_size=1,
                      out_dir=str(tmp_path / name), sample_every_steps=0, quality=False)
    domains = ("horse", "zebra") if a == "testA" else ("zebra", "horse")
    model_cfg = dataclasses.replace(tiny_config("cut"), domain_a=domains[0], domain_b=domains[1], **changes)
    return train(cfg, model_cfg)


def test_one_way_fastcut_translates_any_size_without_a_round_trip(tmp_path, h2z):
    path = _run(tmp_path, h2z, "fast", nce_idt=False, flip_equivariance=True)
    model = load_model(path)
    assert list(model.directions()) == ["AB"] and model.inverse("AB") is None
    photo = np.asarray(Image.open(h2z / "testA" / sorted(p.name for p in (h2z / "testA").iterdir())[0]))[:70, :50]
    out = translate(model, photo, "AB", cycle=True)
    assert out["output"].shape == photo.shape and out["reconstruction"] is None
    from gancore.deploy.export import export_onnx
    report = export_onnx(path, tmp_path / "fast.onnx", int8=True, latency_repeats=0, psnr_min_db=0)
    assert report["parity_max_abs_diff"] <= 1e-4 and report["int8_psnr_db"] > 10
    from gancore.errors import Unsupported
    with pytest.raises(Unsupported, match="translates horse → zebra only"):
        translate(model, photo, "BA")


def test_two_one_way_runs_pair_into_a_two_way_model(tmp_path, h2z):
    ab = _run(tmp_path, h2z, "ab")
    ba = _run(tmp_path, h2z, "ba", a="testB", b="testA")
    out = tmp_path / "pair.safetensors"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "pair_translators.py"), ab, ba, "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True)
    model = load_model(out)
    assert model.config.two_way and model.direction_labels() == {"AB": "horse → zebra", "BA": "zebra → horse"}
    photo = np.asarray(Image.open(ROOT / "gancore" / "assets" / "examples" / "zebra_1.jpg"))
    result = translate(model, photo, "BA", cycle=True)
    assert result["output"].shape == photo.shape and result["reconstruction"].shape == photo.shape
    # The zebra -> horse generator is the second run's, unchanged but for fp16 storage.
    from gancore import checkpoint as ckpt
    src = ckpt.load(ba)[0]
    for k, v in model.generator("BA").state_dict().items():
        torch.testing.assert_close(v.float(), src[f"ema.G_AB.{k}"].half().float())
    # Each run's discriminator judges the domain it translated into: the second run's now judges horses.
    for k, v in model.discriminator("AB", side="input").state_dict().items():
        torch.testing.assert_close(v.float(), src[f"D_B.{k}"].half().float())
    from gancore.deploy.export import export_onnx
    report = export_onnx(str(out), tmp_path / "z2h.onnx", network="G_BA", latency_repeats=0, psnr_min_db=0)
    assert report["parity_max_abs_diff"] <= 1e-4

    # A new run of one direction replaces that direction of a paired file; the other stays as it was.
    again = tmp_path / "again.safetensors"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "pair_translators.py"), ab, str(out), "--out", str(again)],
                   check=True, cwd=ROOT, capture_output=True)
    kept = load_model(again)
    assert kept.direction_labels() == model.direction_labels()
    for k, v in kept.generator("BA").state_dict().items():
        torch.testing.assert_close(v, model.generator("BA").state_dict()[k])

    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "pair_translators.py"), ab, ab, "--out",
                          str(tmp_path / "no.safetensors")], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "zebra -> horse" in bad.stderr


def test_two_way_training_trains_both_directions(tmp_path, h2z):
    model = load_model(_run(tmp_path, h2z, "both", two_way=True))
    assert set(model.directions()) == {"AB", "BA"} and model.discriminator("BA") is not model.discriminator("AB")


@pytest.mark.parametrize("load", [36, 24])
def test_a_last_phase_trains_on_whole_photos(tmp_path, h2z, load):
    """`full_size_from`: from that share of the run on, crops are the size of the photos translated (loads
    smaller than that, 24 for 32-px photos, grow to it); a resumed run may drop (or move) the phase."""
    from gancore.data import UnpairedDataset
    from gancore.training import Trainer
    seen = []

    class Recording(UnpairedDataset):
        def __getitem__(self, item):
            a, b = super().__getitem__(item)
            seen.append((a.shape[-1], b.shape[-1]))
            return a, b

    def photos():            # two photos each way: an epoch is two steps
        ds = Recording(h2z / "testA", h2z / "testB", image_size=16, load_size=load, hold_out=True)
        ds.files_A, ds.files_B = ds.files_A[:2], ds.files_B[:2]
        return ds

    model_cfg = dataclasses.replace(tiny_config("cut"), crop_size=16, image_size=32, load_size=load,
                                    nce_idt=False, flip_equivariance=True)
    cfg = TrainConfig(model="cut", data=str(h2z / "testA"), data_b=str(h2z / "testB"), steps=8, batch_size=1,
                      out_dir=str(tmp_path / "run"), sample_every_steps=4, quality=False, full_size_from=0.5)
    events = list(Trainer(cfg, model_cfg, dataset=photos()).run())
    assert seen == [(16, 16)] * 4 + [(32, 32)] * 4          # epochs start at steps 0, 2, 4 (half the run), 6
    grids = [e.grid for e in events if e.kind == "sample"]
    assert grids[-1].shape[0] > grids[0].shape[0]          # the preview shows the whole photos once they come

    seen.clear()
    resumed = TrainConfig(model="cut", data=cfg.data, data_b=cfg.data_b, steps=12, batch_size=1)
    list(Trainer(resumed, resume=str(tmp_path / "run" / "last.safetensors"), dataset=photos(),
                 resume_changes={"full_size_from": 1.0}).run())
    assert seen == [(16, 16)] * 4


def test_the_lite0_encoder_starts_from_imagenet_trains_and_exports(tmp_path, h2z):
    """A new generator's encoder is EfficientNet-Lite0's (batch norms folded): its blocks give Lite0's own
    features on a real photo; it trains, translates any size and exports to ONNX with parity."""
    from gancore.features import Lite0Taps
    from gancore.models.cut import CUT
    photo = np.array(Image.open(ROOT / "gancore" / "assets" / "examples" / "horse_1.jpg").convert("RGB"))
    x = torch.from_numpy(photo[:96, :128]).permute(2, 0, 1)[None].float() / 127.5 - 1
    cfg = dataclasses.replace(tiny_config("cut"), encoder="lite0", nce_layers="0,2,4,8")
    net = CUT(cfg).G.G_AB.net.eval()
    ours, h = [], x
    with torch.no_grad():
        for layer in net[:5]:            # the photo, the stem, blocks 0-2
            h = layer(h)
            ours.append(h)
        theirs = Lite0Taps(taps=(0, 1, 2))(x)
    for a, b in zip(ours[2:], theirs):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)

    path = _run(tmp_path, h2z, "lite", encoder="lite0", nce_layers="0,2,4,8", nce_idt=False,
                flip_equivariance=True)
    model = load_model(path)
    out = translate(model, photo[:70, :50], "AB")
    assert out["output"].shape == (70, 50, 3)
    from gancore.deploy.export import export_onnx
    report = export_onnx(path, tmp_path / "lite.onnx", latency_repeats=0, psnr_min_db=0)
    assert report["parity_max_abs_diff"] <= 1e-4
    with pytest.raises(ValueError, match="encoder"):
        CUTConfig(encoder="vgg")
