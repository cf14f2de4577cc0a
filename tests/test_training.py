import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from gancore import checkpoint as ckpt
from gancore.training import TrainConfig, Trainer, TrainingError, train

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, **kw):
    base = dict(model="dcgan", data="synthetic", batch_size=4, out_dir=str(tmp_path / "run"), data_limit=16,
                sample_every_steps=2, checkpoint_every_steps=2, log_every_steps=1)
    base.update(kw)
    return TrainConfig(**base)


def test_events_and_preview_grid(tmp_path):
    events = list(Trainer(_cfg(tmp_path, steps=4), tiny_config("dcgan")).run())
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3, 4] and steps[-1].progress == 1.0
    assert set(steps[0].losses) == {"D/real", "D/fake", "G/adv"}
    grid = next(e.grid for e in events if e.kind == "sample")
    assert grid.dtype.name == "uint8" and grid.ndim == 3


def test_closing_the_generator_saves(tmp_path):
    run = Trainer(_cfg(tmp_path, steps=100, checkpoint_every_steps=0), tiny_config("dcgan")).run()
    for ev in run:
        if ev.kind == "step" and ev.step == 3:
            break
    run.close()   # what the studio's Stop button and Ctrl-C do
    meta = ckpt.read_header(tmp_path / "run" / "last.safetensors")
    import json
    assert json.loads(meta["train_state"])["step"] == 3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from gancore.models.dcgan import DCGAN
    real_step = DCGAN.train_step
    calls = {"n": 0}

    def poisoned(self, batch, ctx):
        calls["n"] += 1
        losses = real_step(self, batch, ctx)
        if calls["n"] >= 4:   # the 4th step goes NaN
            losses["G/adv"] = torch.tensor(float("nan"))
        return losses
    monkeypatch.setattr(DCGAN, "train_step", poisoned)
    cfg = _cfg(tmp_path, steps=50, checkpoint_every_steps=2, sample_every_steps=0)
    events = list(Trainer(cfg, tiny_config("dcgan")).run())
    err = [e for e in events if e.kind == "error"]
    assert err and events[-1].kind == "error"
    assert "step 4" in err[0].message and "G/adv" in err[0].message and "last good checkpoint" in err[0].message
    import json
    tensors, meta = ckpt.load(tmp_path / "run" / "last.safetensors")
    assert json.loads(meta["train_state"])["step"] == 2        # the good one, not overwritten
    calls["n"] = 0
    with pytest.raises(TrainingError, match="NaN"):
        train(_cfg(tmp_path, steps=50, out_dir=str(tmp_path / "b")), tiny_config("dcgan"))


def test_exploding_weights_are_never_saved(tmp_path, monkeypatch):
    from gancore import config
    for key in ("lr_g", "lr_d"):           # past the settings' bound on purpose: weights that blow up
        monkeypatch.setitem(config.RANGES, key, (0, 1e31))
    cfg = _cfg(tmp_path, steps=30, lr_g=1e30, lr_d=1e30, checkpoint_every_steps=1, sample_every_steps=0)
    events = list(Trainer(cfg, tiny_config("dcgan")).run())
    assert events[-1].kind == "error"
    path = tmp_path / "run" / "last.safetensors"
    if path.exists():
        tensors, _ = ckpt.load(path)    # refuses NaN/inf weights, so loading proves they are finite
        assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


def test_minutes_bound_and_missing_bound(tmp_path):
    with pytest.raises(TrainingError, match="bound"):
        list(Trainer(_cfg(tmp_path), tiny_config("dcgan")).run())
    events = list(Trainer(_cfg(tmp_path, minutes=0.02), tiny_config("dcgan")).run())
    assert events[-1].kind == "end" and events[-1].elapsed_s < 30


def test_resume_refuses_weights_only_file(tmp_path):
    from gancore.inference import export_weights
    path = train(_cfg(tmp_path, steps=2), tiny_config("dcgan"))
    small = export_weights(path, tmp_path / "w.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="weights only"):
        Trainer(_cfg(tmp_path, steps=4), resume=small)
    # ...but a new run can start from it.
    cfg = _cfg(tmp_path, steps=1, init_from=str(small), out_dir=str(tmp_path / "warm"))
    assert train(cfg, tiny_config("dcgan"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("model", ["dcgan", "cyclegan"])
def test_two_process_ddp_ends_with_identical_weights(tmp_path, model):
    """torchrun --nproc_per_node=2 on CPU (gloo): both ranks hold the same weights at the end."""
    script = tmp_path / "ddp_check.py"
    script.write_text(f"""
import sys, torch, torch.distributed as dist
sys.path.insert(0, {str(ROOT / 'tests')!r})
from helpers import tiny_config
from gancore.training import TrainConfig, Trainer
from gancore import registry
cfg = TrainConfig(model={model!r}, data="synthetic", steps=3, batch_size=2, data_limit=16,
                  out_dir={str(tmp_path / 'ddp')!r}, sample_every_steps=0, checkpoint_every_steps=0)
trainer = Trainer(cfg, tiny_config({model!r}))
for ev in trainer.run():
    pass
rank = dist.get_rank()
from safetensors.torch import save_file
vec = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
save_file({{"w": vec}}, {str(tmp_path)!r} + f"/rank{{rank}}.safetensors")
dist.destroy_process_group()
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(script)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    from safetensors.torch import load_file
    v0 = load_file(tmp_path / "rank0.safetensors")["w"]
    v1 = load_file(tmp_path / "rank1.safetensors")["w"]
    assert v0.numel() > 100
    torch.testing.assert_close(v0, v1, rtol=0, atol=0)
    assert (tmp_path / "ddp" / "last.safetensors").is_file()


def test_data_on_device_trains_like_the_loader(tmp_path, h2z):
    """`data_on_device` (the GPU path) feeds the same crops as the file loader: same weights after 3 steps."""
    weights = []
    for on_device in (False, True):
        cfg = _cfg(tmp_path / str(on_device), model="cyclegan", data=str(h2z / "testA"), data_b=str(h2z / "testB"),
                   batch_size=2, steps=3, data_limit=6, data_on_device=on_device, deterministic=True,
                   sample_every_steps=0, checkpoint_every_steps=0, ema_decay=0)
        path = train(cfg, model_config=tiny_config("cyclegan"))
        weights.append(ckpt.load(path)[0])
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert torch.allclose(weights[0][k].float(), weights[1][k].float(), atol=1e-6), k


def test_recommended_settings_sit_under_the_users():
    from gancore.catalog import learning_rate
    from gancore.recipes import recommended
    assert recommended("dcgan").lr_g == learning_rate("dcgan") != TrainConfig().lr_g   # the measured recipe
    assert recommended("dcgan", lr_g=1e-4, steps=None).lr_g == 1e-4                   # the user's value wins
    assert recommended("mlp") == TrainConfig(model="mlp")                              # no recipe: plain defaults
    assert recommended("cyclegan").batch_size == 1                                     # a photo a step, as measured
    assert learning_rate("cyclegan") == TrainConfig().lr_g                             # the studio shows the same


def test_the_recipe_is_picked_by_data():
    from gancore import catalog
    from gancore.recipes import recommended, recommended_model_config
    digits, pictures = recommended("dcgan", data="mnist"), recommended("dcgan", data="my/icons.zip")
    assert digits.lr_g == catalog.get("dcgan").recipe["lr_g"]
    assert pictures.lr_g == catalog.get("dcgan").picture_recipe["lr_g"] != digits.lr_g
    assert recommended("dcgan", data="my/icons", lr_g=1e-4).lr_g == 1e-4          # the user's value wins
    assert recommended_model_config("dcgan", "mnist").augment == ""                # digits: as measured
    assert recommended_model_config("dcgan", "my/icons").augment == "color,translation,cutout"
    assert recommended_model_config("dcgan", "my/icons", augment="").augment == ""
    assert recommended_model_config("dcgan", "my/icons", image_size=None).image_size == 64      # unset: the recipe's
    assert recommended_model_config("mlp", "my/icons") == recommended_model_config("mlp", "mnist")   # no recipe


def test_the_training_module_still_offers_what_callers_import_from_it():
    """Recipes and the error moved to their own modules; `from gancore.training import ...` keeps working."""
    from gancore import errors, recipes, training
    assert training.recommended is recipes.recommended
    assert training.recommended_model_config is recipes.recommended_model_config
    assert training.TrainingError is errors.TrainingError
    assert all(callable(getattr(training, n)) for n in ("TrainConfig", "Trainer", "Event", "train"))
