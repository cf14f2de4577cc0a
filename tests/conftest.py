"""Shared test setup: paths to the development data, RNG isolation, the gpu marker."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
H2Z = SHARED / "horse2zebra"

torch.set_num_threads(min(2, os.cpu_count() or 1))
# Exported ONNX graphs (gancore.deploy.fast) go to a folder of this run, not the user's cache.
os.environ.setdefault("GANCORE_CACHE", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"gancore-tests-{os.getpid()}"))


@pytest.fixture(autouse=True)
def _isolate_rng():
    """Each test starts from the same RNG state and leaves none behind (torchvision's conftest)."""
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(states[0])
    random.setstate(states[1])
    np.random.set_state(states[2])


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def h2z():
    if not H2Z.is_dir():
        pytest.skip("../shared/datasets/horse2zebra is not here")
    return H2Z


# ----------------------------------------------------------------------------------------------------
# The studio, launched once per session on 127.0.0.1 (API and browser tests share it)

def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_idle(services, timeout: float = 300) -> None:
    """Until no run trains, so that a test does not take an earlier test's run for its own (the Start button
    is off while one runs). A run still going after `timeout` seconds fails here, by its name."""
    services.wait(timeout)
    assert not services.is_training(), f"a run is still going after {timeout:.0f}s: {services.job.run_dir()}"


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    """The Gradio app in this process: its own weights and runs folders and a tiny DCGAN to explore."""
    import shutil
    from types import SimpleNamespace

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gancore.training import TrainConfig, train
    from studio.app import CSS, THEME, build_app
    from studio.services import Services

    base = tmp_path_factory.mktemp("studio")
    weights, runs = base / "weights", base / "runs"
    weights.mkdir()
    for shipped in (ROOT / "weights").glob("*.safetensors"):     # a copy: tests never touch the real folder
        if not shipped.name.endswith(".directions.safetensors"):
            shutil.copy(shipped, weights)
    tiny = train(TrainConfig(model="dcgan", data="mnist", steps=4, batch_size=8, data_limit=64, ema_decay=0,
                             out_dir=str(runs / "tiny-dcgan"), sample_every_steps=0, checkpoint_every_steps=0))
    services = Services(weights_dir=weights, runs_dir=runs)
    demo = build_app(services)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                theme=THEME, css=CSS)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", services=services, weights=weights, runs=runs,
                          tiny=tiny, demo=demo, idle=lambda timeout=300: _wait_idle(services, timeout))
    services.stop_training()
    services.wait(60)
    demo.close()
