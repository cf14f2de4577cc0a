"""Training memory: flat after warm-up for every registered model, defaults that fit the machine, and a ceiling
that stops a run with a saved checkpoint instead of the kernel killing it."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from gancore import catalog, registry
from gancore import checkpoint as ckpt
from gancore.memory import MemoryCeiling, MemoryGuard, rss_bytes
from gancore.recipes import recommended, recommended_model_config
from gancore.training import TrainConfig, Trainer
from tests.helpers import emoji_pictures, tiny_config

MB = 2**20


def _growth(samples: list[int]) -> float:
    """Bytes the resident memory grows per 150 steps over the second half of a run: the median of the slopes
    between every two of its steps (Theil-Sen) x 150. A leak moves every slope; the allocator taking a new
    2 MB chunk now and then moves a minority of them, which the median ignores. The bound below, 16 MB, is
    0.1 MB a step however long the run."""
    half = np.asarray(samples[len(samples) // 2:], dtype=float)
    i, j = np.triu_indices(len(half), k=1)
    return float(np.median((half[j] - half[i]) / (j - i))) * 150


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc), so that what a run keeps has to take new pages:
    late in the suite the process holds a large, fragmented heap whose free pages would hide a leak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_per_step(run) -> list[int]:
    """Resident memory after each step of a Trainer's or a Distiller's run."""
    _trim_heap()
    return [rss_bytes() for ev in run.run() if ev.kind == "step"]


def _data(name, tmp_path, h2z) -> dict:
    if catalog.task_of(name) == "translate":
        return {"data": str(h2z / "testA"), "data_b": str(h2z / "testB")}
    if name == "maskrec":
        return {"data": "mnist"}
    return {"data": str(emoji_pictures(tmp_path / "pictures", 120))}


@pytest.mark.parametrize("name", registry.list_models())
def test_memory_is_flat_after_warm_up(name, tmp_path, h2z):
    """160 small steps with samples and checkpoints: what a step keeps (an autograd graph, a loss tensor, a
    cache keyed by step) would show as growth over the second half."""
    cfg = TrainConfig(model=name, steps=160, batch_size=2, out_dir=str(tmp_path / "run"), log_every_steps=1,
                      sample_every_steps=50, checkpoint_every_steps=50, quality=False,
                      **_data(name, tmp_path, h2z))
    samples = _rss_per_step(Trainer(cfg, tiny_config(name)))
    assert len(samples) == 160
    assert _growth(samples) < 16 * MB, f"{name}: +{_growth(samples) / MB:.1f} MB per 150 steps"


def test_the_measure_sees_a_step_that_keeps_a_fifth_of_a_megabyte(tmp_path, monkeypatch):
    """The bound above is not too loose to catch a small leak: an MLP GAN whose steps each keep 0.2 MB."""
    kept = []
    entry = registry.get("mlp")
    step = entry.model_cls.train_step

    def leaky(self, batch, ctx):
        kept.append(torch.ones(52_429))           # 0.2 MB, written so its pages are resident
        return step(self, batch, ctx)

    monkeypatch.setattr(entry.model_cls, "train_step", leaky)
    cfg = TrainConfig(model="mlp", steps=160, batch_size=2, out_dir=str(tmp_path / "run"), log_every_steps=1,
                      sample_every_steps=0, quality=False, data=str(emoji_pictures(tmp_path / "pictures", 40)))
    assert _growth(_rss_per_step(Trainer(cfg, tiny_config("mlp")))) > 16 * MB


@pytest.mark.parametrize("name", registry.list_models())
def test_the_defaults_fit_in_memory(name, tmp_path, h2z):
    """What `gancore train --model NAME --data <photos>` picks (its recipe and model settings) trains two steps
    under 6 GB. Before one photo a step was CycleGAN's recipe, its first step wanted more than 24 GB."""
    data = _data(name, tmp_path, h2z)
    cfg = recommended(name, steps=2, out_dir=str(tmp_path / "run"), sample_every_steps=0, quality=False,
                      memory_limit_gb=6, **data)
    events = list(Trainer(cfg, recommended_model_config(name, cfg.data)).run())
    assert [e.kind for e in events if e.kind in ("end", "error")] == ["end"], events[-1].message


def test_the_studio_translation_preset_and_distillation_stay_flat(tmp_path, h2z):
    """The Train tab's CycleGAN on two picture sets: its image pools (50 fakes a direction) are full by
    step 50, so the second half of 100 steps is flat; and a distillation run."""
    model_cfg = recommended_model_config("cyclegan", str(h2z / "testA"),
                                         **catalog.studio_settings("cyclegan", mnist=False))
    cfg = recommended("cyclegan", data=str(h2z / "testA"), data_b=str(h2z / "testB"), steps=100,
                      batch_size=catalog.batch_size("cyclegan", "upload"), out_dir=str(tmp_path / "studio"),
                      log_every_steps=1, sample_every_steps=50, quality=False)
    samples = _rss_per_step(Trainer(cfg, model_cfg))
    assert _growth(samples) < 16 * MB, f"studio preset: +{_growth(samples) / MB:.1f} MB"

    from pathlib import Path

    from gancore.distill import DistillConfig, Distiller
    teacher = Path(__file__).resolve().parents[1] / "weights" / "horse2zebra.safetensors"
    dcfg = DistillConfig(teacher=str(teacher), data_a=str(h2z / "testA"), data_b=str(h2z / "testB"),
                         out_dir=str(tmp_path / "student"), steps=80, crop_size=32, batch_size=1,
                         base_channels=4, res_blocks=1, log_every_steps=1)
    samples = _rss_per_step(Distiller(dcfg))
    assert len(samples) == 80
    assert _growth(samples) < 16 * MB, f"distillation: +{_growth(samples) / MB:.1f} MB"


def test_a_run_past_its_memory_ceiling_saves_and_says_why(tmp_path, h2z):
    """A step that would not fit stops between layers: the run keeps a resumable file and one clear line."""
    limit = (rss_bytes() + 200 * MB) / 2**30
    cfg = TrainConfig(model="cyclegan", data=str(h2z / "testA"), data_b=str(h2z / "testB"), steps=5,
                      batch_size=16, out_dir=str(tmp_path / "big"), memory_limit_gb=limit, sample_every_steps=0)
    events = list(Trainer(cfg, registry.get("cyclegan").config_cls(image_size=128, load_size=128)).run())
    last = events[-1]
    assert last.kind == "error" and "memory" in last.message and "batch size" in last.message
    assert "Traceback" not in last.message and "\n" not in last.message
    assert ckpt.read_header(last.path)["model_type"] == "cyclegan"
    assert torch.tensor(0).sum() == 0     # the process is still healthy


def test_the_guard_stops_only_its_own_thread():
    import threading
    seen = []
    with MemoryGuard(limit=1) as guard:            # every check is over a 1-byte ceiling
        with pytest.raises(MemoryCeiling):
            torch.nn.Linear(2, 2)(torch.zeros(1, 2))
        worker = threading.Thread(target=lambda: seen.append(torch.nn.Linear(2, 2)(torch.zeros(1, 2)).shape))
        worker.start()
        worker.join()
        assert guard.peak > 0
    assert seen == [torch.Size([1, 2])]
    torch.nn.Linear(2, 2)(torch.zeros(1, 2))       # the hook is gone after the block
