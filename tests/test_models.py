"""One contract test over every registered model, with tiny configs (diffusers' model tests)."""
import pytest
import torch
from helpers import tiny_config

from gancore import registry
from gancore.models.base import StepContext


def _batch(model, n=4):
    cfg = model.config
    x = torch.rand(n, cfg.image_channels, cfg.image_size, cfg.image_size) * 2 - 1
    return (x, torch.rand_like(x) * 2 - 1) if model.task == "translate" else x


def _ctx(model):
    g = model.groups()
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in g.items()}
    return StepContext(optimizers=opts, wrapped=dict(g))


@pytest.mark.parametrize("name", registry.list_models())
def test_step_is_finite_and_changes_parameters(name):
    torch.manual_seed(0)
    model = registry.build(name, tiny_config(name))
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    losses = model.train_step(_batch(model), _ctx(model))
    assert losses and all(torch.isfinite(v).all() for v in losses.values())
    changed = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {"G", "D"} <= changed, f"both groups must learn, changed: {changed}"


@pytest.mark.parametrize("name", registry.list_models())
def test_every_direction_maps_its_example_inputs_to_images(name):
    """Through the model contract: each direction's generator takes its example input to images in [-1, 1]
    of the configured channels; fully convolutional generators also take other, non-square sizes."""
    model = registry.build(name, tiny_config(name)).eval()
    cfg = model.config
    assert model.directions() and set(model.directions().values()) <= set(model.networks())
    for direction in model.directions():
        spec = model.export_spec(direction)
        assert spec.module is model.generator(direction) and spec.direction == direction
        x = torch.from_numpy(model.example_inputs(spec)["parity"][:3])
        with torch.no_grad():
            out = spec.module(x)
        assert out.shape[:2] == (x.shape[0], cfg.image_channels) and out.shape[-1] == cfg.image_size
        assert out.min() >= -1 and out.max() <= 1 and out.std() > 0
        if spec.size_multiple:
            m = spec.size_multiple
            y = torch.rand(2, cfg.image_channels, 5 * m, 6 * m) * 2 - 1
            with torch.no_grad():
                assert spec.module(y).shape == y.shape
        inverse = model.inverse(direction)
        assert inverse is None or model.inverse(inverse) == direction


@pytest.mark.parametrize("name", registry.list_models())
def test_seed_determinism(name):
    def run():
        torch.manual_seed(123)
        model = registry.build(name, tiny_config(name))
        torch.manual_seed(7)
        batch = _batch(model)
        losses = model.train_step(batch, _ctx(model))
        return {k: float(v) for k, v in losses.items()}, [p.detach().clone() for p in model.parameters()]
    l1, p1 = run()
    l2, p2 = run()
    assert l1 == l2
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))


def test_mlp_default_is_the_seed_architecture():
    from gancore.models.mlp import MLPGAN, MLPGANConfig
    m = MLPGAN(MLPGANConfig())
    g = [layer for layer in m.G.net if isinstance(layer, torch.nn.Linear)]
    d = [layer for layer in m.D.net if isinstance(layer, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in g] == [(100, 256), (256, 512), (512, 784)]
    assert [(layer.in_features, layer.out_features) for layer in d] == [(784, 512), (512, 256), (256, 1)]
    assert any(isinstance(layer, torch.nn.Dropout) and layer.p == 0.3 for layer in m.D.net)
    assert isinstance(m.G.net[-1], torch.nn.Tanh)


def test_dcgan_seed_rgb_config_and_sizes():
    from gancore.models.dcgan import DCGAN, DCGANConfig
    m = DCGAN(DCGANConfig(image_size=32, image_channels=3, base_channels=128, g_extra_convs=0))
    widths = [layer.out_channels for layer in m.G.net if isinstance(layer, torch.nn.ConvTranspose2d)]
    assert widths == [512, 256, 128, 3]
    assert not any(type(layer) is torch.nn.Conv2d for layer in m.G.net)     # exactly the seed's layers
    for size in (28, 32, 64):
        for ch in (1, 3):
            mm = DCGAN(DCGANConfig(image_size=size, image_channels=ch, base_channels=4, d_base_channels=4))
            assert mm.generate(mm.noise(2)).shape == (2, ch, size, size)
            assert mm.D(mm.generate(mm.noise(2))).shape == (2, 1)
    with pytest.raises(ValueError):
        DCGANConfig(image_size=48)
    conv = next(layer for layer in m.G.net if isinstance(layer, torch.nn.ConvTranspose2d))
    assert abs(conv.weight.std().item() - 0.02) < 0.005   # DCGAN init N(0, 0.02)


def test_dcgan_minibatch_std_and_spectral_norm():
    from gancore.models.dcgan import DCGAN, DCGANConfig, MinibatchStd
    torch.manual_seed(0)
    m = DCGAN(DCGANConfig(base_channels=4, d_base_channels=4, d_minibatch_std=True, d_spectral_norm=True,
                          loss="hinge"))
    assert not any(isinstance(layer, torch.nn.BatchNorm2d) for layer in m.D.net)   # spectral norm replaces BN in D
    same = torch.zeros(4, 3, 2, 2)
    spread = torch.arange(48.0).view(4, 3, 2, 2)
    assert MinibatchStd()(same)[:, -1].max() < 1e-3 and MinibatchStd()(spread)[:, -1].min() > 1
    losses = m.train_step(_batch(m), _ctx(m))
    assert all(torch.isfinite(v).all() for v in losses.values())
    for size in (28, 32, 64):       # one extra 3x3 conv per resolution keeps every output size
        deeper = DCGAN(DCGANConfig(base_channels=4, d_base_channels=4, image_size=size, g_extra_convs=1))
        assert deeper.generate(deeper.noise(2)).shape == (2, 1, size, size)
        assert sum(isinstance(layer, torch.nn.Conv2d) for layer in deeper.G.net) == {28: 2, 32: 3, 64: 4}[size]


def test_cyclegan_pool_and_transposed_variant():
    from gancore.models.cyclegan import CycleGANConfig, ImagePool, ResnetGenerator
    pool = ImagePool(2)
    a = torch.ones(3, 1, 2, 2)
    out = pool.query(a)
    assert out.shape == a.shape and len(pool.images) == 2
    g = ResnetGenerator(CycleGANConfig(base_channels=4, res_blocks=1, upsample="transposed"))
    assert g(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_cyclegan_augments_what_its_discriminators_see_and_logs_collapse_signals():
    """`augment` puts DiffAugment on both discriminators' inputs; every step reports how far each generator moves
    its input and how often each D is right, and a generator that copies its input reads 0."""
    import contextlib

    from gancore.models.cyclegan import CycleGAN, CycleGANConfig, collapse_signals
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(base_channels=4, res_blocks=1, d_base_channels=4, d_layers=2, image_size=16,
                                    load_size=20, augment="color,translation,cutout"))
    seen = []
    model.D.D_B.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    groups = model.groups()
    opts = {k: torch.optim.Adam(m.parameters(), 1e-3) for k, m in groups.items()}
    ctx = StepContext(optimizers=opts, wrapped=groups, autocast=contextlib.nullcontext, scaler=None)
    real_A, real_B = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    losses = model.train_step((real_A, real_B), ctx)
    for key in ("G/identity_distance_AB", "G/identity_distance_BA", "D_A/acc_real", "D_A/acc_fake",
                "D_B/acc_real", "D_B/acc_fake"):
        assert torch.isfinite(losses[key]) and 0 <= float(losses[key]) <= 1
    assert float(losses["G/identity_distance_AB"]) > 0.01
    assert not torch.allclose(seen[-1][:1], real_B)          # D_B judged an augmented zebra, not the photo
    copying = collapse_signals(torch.zeros(2, 1, 4, 4), 1, real_A, real_A.clone(), "D_B", "_AB")
    assert float(copying["G/identity_distance_AB"]) == 0.0
    assert CycleGAN(CycleGANConfig(image_size=16, load_size=20)).augment(real_B) is real_B   # off by default
