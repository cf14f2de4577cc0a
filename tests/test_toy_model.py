"""A model added without touching any other file: the contract is all the engine, service and studio need.

Two toy models are defined and registered here: a translation model with two directions (a 3x3 conv each
way) and a noise model (a linear layer to 8x8 pictures). Each trains through the Trainer, then goes through
sample/translate, ONNX export with parity, the HTTP service and the studio's services.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gancore import catalog, registry
from gancore.models.base import ExportSpec, GANModel, image_io, synthetic_photo
from gancore.models.noise_gan import NoiseGAN

# ---- the toy translation model ---------------------------------------------------------------------

@dataclass(frozen=True)
class ToyPaintConfig:
    image_channels: int = 3
    image_size: int = 16


class ToyPaint(GANModel):
    model_type = "toy_paint"
    task = "translate"
    size_multiple = 1

    def __init__(self, config):
        super().__init__(config)
        c = config.image_channels
        self.G = nn.ModuleDict({"G_AB": nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.Tanh()),
                                "G_BA": nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.Tanh())})
        self.D = nn.Conv2d(c, 1, 3, padding=1)

    def networks(self):
        return {"G_AB": self.G["G_AB"], "G_BA": self.G["G_BA"], "D": self.D}

    def groups(self):
        return {"G": self.G, "D": self.D}

    def directions(self):
        return {"AB": "G_AB", "BA": "G_BA"}

    def inverse(self, direction=None):
        return {"AB": "BA", "BA": "AB"}[self.direction(direction)]

    def train_step(self, batch, ctx):
        a, b = batch
        # Update G: reach the other domain's mean colour (a toy objective), and come back.
        loss_g = (self.G["G_AB"](a).mean() - b.mean()).abs() + (self.G["G_BA"](self.G["G_AB"](a)) - a).abs().mean()
        ctx.step("G", loss_g)
        # Update D.
        loss_d = (self.D(b) - 1).pow(2).mean() + self.D(self.G["G_AB"](a).detach()).pow(2).mean()
        ctx.step("D", loss_d)
        return {"G/total": loss_g.detach(), "D/total": loss_d.detach()}

    def preview(self, n, gen_group, batch=None):
        a = batch[0][:n]
        return torch.cat([a, gen_group["G_AB"](a)]), a.shape[0]

    def export_spec(self, direction=None):
        d = self.direction(direction)
        axes = {0: "batch", 2: "height", 3: "width"}
        c = self.config.image_channels
        return ExportSpec(module=self.generator(d), network=self.directions()[d], direction=d, input_name="image",
                          output_name="out", dynamic_axes={"image": axes, "out": axes}, size_multiple=1,
                          contract={"input": image_io(c, ["height", "width"]), "output": image_io(c, ["height", "width"])})

    def example_inputs(self, spec, calibration_images=None, held_out_images=None, seed=0):
        photos = [synthetic_photo(self.config.image_size, self.config.image_channels, seed + i)[None] for i in range(4)]
        return {"parity": photos[0], "calibration": photos[1:], "held_out": photos[:1], "source": "synthetic"}


# ---- the toy noise model ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ToyNoiseConfig:
    latent_dim: int = 4
    image_channels: int = 1
    image_size: int = 8
    loss: str = "hinge"


class ToyNoise(NoiseGAN):
    model_type = "toy_noise"

    def __init__(self, config):
        super().__init__(config)
        n = config.image_channels * config.image_size ** 2
        shape = (config.image_channels, config.image_size, config.image_size)
        self.G = nn.Sequential(nn.Linear(config.latent_dim, n), nn.Tanh(), nn.Unflatten(1, shape))
        self.D = nn.Sequential(nn.Flatten(), nn.Linear(n, 1))


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    """Both toys registered, trained for a few steps by the Trainer, saved in a studio-like layout."""
    from gancore.training import TrainConfig, train
    registry.register("toy_paint", ToyPaintConfig, ToyPaint, title="Toy painter")
    registry.register("toy_noise", ToyNoiseConfig, ToyNoise, title="Toy noise")
    runs = tmp_path_factory.mktemp("toys") / "runs"
    paths = {}
    for name in ("toy_paint", "toy_noise"):
        cfg = TrainConfig(model=name, data="synthetic", steps=3, batch_size=4, data_limit=8, out_dir=str(runs / name),
                          sample_every_steps=3, log_every_steps=1)
        model_cfg = ToyPaintConfig() if name == "toy_paint" else ToyNoiseConfig()
        paths[name] = train(cfg, model_cfg)
    yield paths
    for name in ("toy_paint", "toy_noise"):
        registry.unregister(name)
        catalog.remove(name)


def _odd_photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((37, 53, 3)) * 255).astype(np.uint8)


def test_toy_translation_everywhere(toys, tmp_path):
    from fastapi.testclient import TestClient

    from gancore.deploy import serve
    from gancore.deploy.export import export_onnx
    from gancore.inference import load_model, translate
    from studio.services import Services

    path = toys["toy_paint"]
    model = load_model(path)
    out = translate(model, _odd_photo(), "BA", cycle=True)
    assert out["output"].shape == (37, 53, 3) and out["reconstruction"].shape == (37, 53, 3)

    report = export_onnx(path, tmp_path / "ba.onnx", network="BA", latency_repeats=0)
    assert report["network"] == "G_BA" and report["parity_max_abs_diff"] <= 1e-4
    with pytest.raises(ValueError, match="no direction"):
        export_onnx(path, tmp_path / "x.onnx", network="XY", latency_repeats=0)

    buf = io.BytesIO()
    Image.fromarray(_odd_photo()).save(buf, format="PNG")
    for served in (path, tmp_path / "ba.onnx"):
        r = TestClient(serve.create_app(served)).post("/translate", files={"image": ("odd.png", buf.getvalue())},
                                                    data={"direction": "BA"})
        assert r.status_code == 200, r.text
        if served == path:     # the PyTorch service takes the studio's path: the same pixels
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), out["output"])

    services = Services(weights_dir=tmp_path / "none", runs_dir=toys["toy_paint"].rsplit("/", 2)[0])
    listed = [p for _, p in services.list_checkpoints("translate")]
    assert path in listed and toys["toy_noise"] not in listed
    assert [n for _, n in services.direction_choices(path)] == ["G_AB", "G_BA"]
    assert np.array_equal(services.translate(path, _odd_photo(), "BA", cycle=False)["output"], out["output"])


def test_toy_noise_everywhere(toys, tmp_path):
    from fastapi.testclient import TestClient

    from gancore.deploy import serve
    from gancore.deploy.export import export_onnx
    from gancore.inference import load_model, sample
    from studio.services import Services

    path = toys["toy_noise"]
    images = sample(load_model(path), n=5, seed=3)
    assert images.shape == (5, 8, 8, 1) and images.std() > 0
    report = export_onnx(path, tmp_path / "g.onnx", latency_repeats=0)
    assert report["network"] == "G" and report["parity_max_abs_diff"] <= 1e-4
    for served in (path, tmp_path / "g.onnx"):
        r = TestClient(serve.create_app(served)).post("/generate", json={"n": 5, "seed": 3})
        assert r.status_code == 200, r.text
        assert len(r.json()["images"]) == 5
    services = Services(weights_dir=tmp_path / "none", runs_dir=path.rsplit("/", 2)[0])
    assert np.array_equal(services.samples(path, n=5, seed=3), images)
