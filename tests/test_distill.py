"""The mobile student and its distillation from the shipped two-way translator, on real horse2zebra photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancore import checkpoint as ckpt
from gancore.distill import DistillConfig, Distiller, PerceptualLoss
from gancore.models.cyclegan import CycleGANConfig, ResnetGenerator, SeparableResidualBlock

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "weights" / "horse2zebra.safetensors"


def test_student_generator_is_small_and_keeps_sizes():
    teacher = ResnetGenerator(CycleGANConfig())
    student = ResnetGenerator(CycleGANConfig(base_channels=16, block="depthwise"))
    count = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    assert any(isinstance(m, SeparableResidualBlock) for m in student.modules())
    assert count(student) * 15 < count(teacher)                # 0.14 M against 2.85 M parameters
    x = torch.rand(1, 3, 36, 52) * 2 - 1
    with torch.no_grad():
        assert student(x).shape == x.shape
    with pytest.raises(ValueError, match="block"):
        CycleGANConfig(block="mobile")


def _run(tmp_path, h2z, steps, sub="run", resume=None):
    cfg = DistillConfig(teacher=str(TEACHER), data_a=str(h2z / "trainA"), data_b=str(h2z / "trainB"),
                        out_dir=str(tmp_path / sub), steps=steps, crop_size=32, batch_size=2, data_limit=6,
                        log_every_steps=1, seed=5)
    events = list(Distiller(cfg, resume=resume).run())
    return events, events[-1].path


def test_distillation_learns_resumes_exactly_and_makes_a_normal_checkpoint(tmp_path, h2z):
    events, straight = _run(tmp_path, h2z, 4, "straight")
    losses = [sum(e.losses.values()) for e in events if e.kind == "step"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    _, half = _run(tmp_path, h2z, 2, "half")
    _, resumed = _run(tmp_path, h2z, 4, "half", resume=half)
    a, b = ckpt.load(straight)[0], ckpt.load(resumed)[0]
    for k in (k for k in a if k.startswith(("G_AB.", "G_BA."))):
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    # The student file is a cyclegan checkpoint like any other: translate, export with int8.
    from gancore.deploy.export import export_onnx
    from gancore.inference import load_model, translate
    student = load_model(straight)
    assert student.config.block == "depthwise" and student.config.domain_a == "horse"
    photo = np.asarray(Image.open(ROOT / "gancore" / "assets" / "examples" / "horse_1.jpg"))
    assert translate(student, photo, "AB")["output"].shape == photo.shape
    report = export_onnx(straight, tmp_path / "student.onnx", int8=True, latency_repeats=0, psnr_min_db=0)
    assert report["parity_max_abs_diff"] <= 1e-4 and report["int8_psnr_db"] > 20

    # Shipped as the Translate tab's default: a compact fp16 file that asks to come first in its task's list.
    import shutil

    from gancore.inference import export_weights, header_summary
    from studio.services import Services
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(straight, weights / "another.safetensors")
    export_weights(straight, weights / "student.safetensors", header={"studio_default": "translate"})
    assert header_summary(weights / "student.safetensors")["distilled"]["step"] == 4
    listed = Services(weights_dir=weights, runs_dir=tmp_path / "runs").list_checkpoints("translate")
    assert [Path(p).name for _, p in listed] == ["student.safetensors", "another.safetensors"]


def test_perceptual_features_come_from_the_pretrained_network():
    loss = PerceptualLoss()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert float(loss(x, x)) == 0.0 and float(loss(x, x.flip(-1))) > 0
    assert not any(p.requires_grad for p in loss.parameters())
    # Trained weights, not an initialisation: the stem's batch-norm statistics are not the defaults.
    bn = loss.features.stem[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


def test_bad_distillation_requests_say_what_is_wrong(tmp_path):
    from gancore.errors import BadInput
    with pytest.raises(BadInput, match="bound"):
        Distiller(DistillConfig(teacher=str(TEACHER), data_a="a", data_b="b"))
    with pytest.raises(Exception, match="two-way translation"):
        Distiller(DistillConfig(teacher=str(ROOT / "weights" / "dcgan_mnist.safetensors"), data_a="a", data_b="b",
                                steps=1))


def test_gpu_teacher_script_dry_run_on_the_cpu(tmp_path, h2z):
    """scripts/gpu_cyclegan.sh runs end to end on the CPU (3 steps, a few photos), so it cannot rot between GPU
    windows: 128-px crops of 286-px loads, the data held as tensors, fp16 weights and the log under $OUT."""
    import os
    import shutil
    import subprocess
    import sys
    for split in ("trainA", "trainB"):
        (tmp_path / split).mkdir()
        for f in sorted((h2z / split).iterdir())[:4]:
            shutil.copy(f, tmp_path / split)
    out = tmp_path / "out"
    env = {**os.environ, "DRY_RUN": "1", "OUT": str(out), "DATA_A": str(tmp_path / "trainA"),
           "DATA_B": str(tmp_path / "trainB"), "RUN": str(tmp_path / "run"), "PY": sys.executable,
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_cyclegan.sh")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "trained 3 steps" in r.stdout
    g = ckpt.load(out / "h2z_G.safetensors")
    assert g[0]["G_AB.net.1.weight"].dtype == torch.float16 and "crop_size" in g[1]["model_config"]
    assert (out / "h2z_D.safetensors").is_file() and "img/s" in (out / "train_log.txt").read_text()
