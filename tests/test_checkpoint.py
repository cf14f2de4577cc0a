import json
import pickle

import pytest
import torch
from helpers import tiny_config

from gancore import checkpoint as ckpt
from gancore import registry
from gancore.inference import export_weights, load_model
from gancore.training import TrainConfig, train


def _train(tmp_path, name, steps, resume=None, sub="run", **kw):
    data = "synthetic"
    cfg = TrainConfig(model=name, data=data, steps=steps, batch_size=4, out_dir=str(tmp_path / sub), seed=3,
                      deterministic=True, sample_every_steps=0, checkpoint_every_steps=0, log_every_steps=1,
                      data_limit=16, **kw)
    return train(cfg, tiny_config(name), resume=resume)


def _weights(path):
    tensors, _ = ckpt.load(path)
    return {k: v for k, v in tensors.items() if not k.startswith(("rng.", "optim."))}


@pytest.mark.parametrize("name", registry.list_models())
def test_exact_resume(tmp_path, name):
    straight = _train(tmp_path, name, 6, sub="straight")
    half = _train(tmp_path, name, 3, sub="half")
    resumed = _train(tmp_path, name, 6, resume=half, sub="half")
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_round_trip_and_header(tmp_path):
    path = _train(tmp_path, "dcgan", 2)
    meta = ckpt.read_header(path)
    assert meta["format"] == "gancore" and meta["model_type"] == "dcgan"
    state = json.loads(meta["train_state"])
    assert state["step"] == 2 and state["train_config"]["model"] == "dcgan"
    small = export_weights(path, tmp_path / "small.safetensors")
    assert (tmp_path / "small.safetensors").stat().st_size < (tmp_path / "run" / "last.safetensors").stat().st_size
    m = load_model(small)
    z = m.noise(2)
    full = load_model(path)
    torch.testing.assert_close(m.generate(z), full.generate(z), atol=2e-2, rtol=0)


def _ckpt_file(tmp_path):
    return _train(tmp_path, "mlp", 1)


def test_truncated_file_is_refused(tmp_path):
    path = _ckpt_file(tmp_path)
    data = open(path, "rb").read()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="truncated.safetensors.*(truncated|damaged)"):
        load_model(bad)


def test_tampered_file_is_refused(tmp_path):
    path = _ckpt_file(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[20:30] = b"##########"       # inside the JSON header
    bad = tmp_path / "tampered.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="tampered.safetensors"):
        load_model(bad)


def test_pickle_is_never_loaded(tmp_path):
    bad = tmp_path / "model.safetensors"
    torch.save({"G": torch.zeros(3)}, bad)
    with pytest.raises(ckpt.CheckpointError, match="pickle"):
        load_model(bad)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ckpt.CheckpointError, match="pickle"):
        ckpt.read_header(evil)


def test_foreign_safetensors_and_wrong_model(tmp_path):
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    with pytest.raises(ckpt.CheckpointError, match="not a GAN Studio checkpoint"):
        load_model(foreign)
    path = _ckpt_file(tmp_path)       # an MLP GAN
    dc = registry.build("dcgan", tiny_config("dcgan"))
    from gancore.inference import load_weights_into
    with pytest.raises(ckpt.CheckpointError, match="'mlp' model, not 'dcgan'"):
        load_weights_into(dc, path)
    # Same type, other shape: the error names the network and the problem.
    tensors, meta = ckpt.load(path)
    meta["model_config"] = json.dumps({**json.loads(meta["model_config"]), "latent_dim": 9})
    other = tmp_path / "other.safetensors"
    ckpt.save(other, tensors, {k: v for k, v in meta.items() if k in ("model_type", "model_config")})
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        load_model(other)


def test_nan_weights_are_refused(tmp_path):
    path = _ckpt_file(tmp_path)
    tensors, meta = ckpt.load(path)
    key = next(k for k in tensors if k.startswith("G."))
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    bad = tmp_path / "nan.safetensors"
    ckpt.save(bad, tensors, {k: v for k, v in meta.items() if k in ("model_type", "model_config")})
    with pytest.raises(ckpt.CheckpointError, match="NaN"):
        ckpt.load(bad)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "a.safetensors"
    ckpt.save(path, {"x": torch.zeros(2)}, {"model_type": "t"})
    before = path.read_bytes()
    import gancore.checkpoint as mod

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(mod, "save_file", boom)
    with pytest.raises(ckpt.CheckpointWriteError, match="disk full"):
        ckpt.save(path, {"x": torch.ones(2)}, {"model_type": "t"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]   # no temp file left behind
