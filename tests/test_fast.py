"""The fast path (gancore.deploy.fast): ONNX Runtime where it is faster, PyTorch otherwise, same pixels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancore.deploy import fast
from gancore.inference import load_model, translate

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights" / "horse2zebra.safetensors"


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """Runners built anew, with graphs cached in this test's folder (earlier tests' background builds done)."""
    if fast._builder is not None:
        fast._builder.join(300)
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    fast._runner.cache_clear()
    yield tmp_path / "cache" / "onnx"
    fast._runner.cache_clear()


@pytest.fixture
def unshipped(tmp_path):
    """The shipped translator without the graphs that ship beside it: the fast path must export them."""
    copy = tmp_path / "h2z.safetensors"
    copy.write_bytes(SHIPPED.read_bytes())
    return copy


def _photo(h2z, name="testA", size=(203, 141)):
    path = sorted((h2z / name).glob("*.jpg"))[-1]             # a test photo, not a bundled example
    return np.asarray(Image.open(path).convert("RGB").resize(size))


def test_onnx_runtime_translates_like_pytorch_and_keeps_its_graph(fresh, unshipped, h2z, monkeypatch):
    monkeypatch.setenv("GANCORE_RUNTIME", "onnxruntime")
    for direction, photo in (("AB", _photo(h2z)), ("BA", _photo(h2z, "testB", (96, 160)))):
        got = fast.translate_fast(unshipped, photo, direction, cycle=True)
        want = translate(load_model(SHIPPED), photo, direction, cycle=True)
        assert got["backend"] == "onnxruntime"
        for key in ("output", "reconstruction"):
            assert np.abs(got[key].astype(int) - want[key].astype(int)).max() <= 1, (direction, key)
    assert sorted(p.name.split("-")[-1] for p in fresh.glob("h2z-*.onnx")) == ["G_AB.onnx", "G_BA.onnx"]
    fast._runner.cache_clear()                  # a restart finds the graphs and checks them again
    assert fast.generator_runner(unshipped, "AB").backend == "onnxruntime"


def test_forcing_pytorch_and_the_automatic_choice(fresh, h2z, monkeypatch):
    photo = _photo(h2z)
    monkeypatch.setenv("GANCORE_RUNTIME", "pytorch")
    forced = fast.translate_fast(SHIPPED, photo, "AB")
    assert forced["backend"] == "pytorch" and not list(fresh.glob("horse2zebra-*.onnx"))
    assert np.array_equal(forced["output"], translate(load_model(SHIPPED), photo, "AB")["output"])
    monkeypatch.delenv("GANCORE_RUNTIME")
    fast._runner.cache_clear()
    run = fast.generator_runner(SHIPPED, "AB")
    assert run.backend == "pytorch" and run(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)   # serves at once
    assert run.ready.wait(120)
    faster = min(run.ms, key=run.ms.get)
    assert run.backend == faster and run.why == "faster on this machine", run


def test_a_damaged_cached_graph_falls_back_to_pytorch(fresh, unshipped, monkeypatch):
    monkeypatch.setenv("GANCORE_RUNTIME", "onnxruntime")
    fast.generator_runner(unshipped, "AB")
    graph = next(fresh.glob("h2z-*G_AB.onnx"))
    graph.write_bytes(graph.read_bytes()[:1000])
    fast._runner.cache_clear()
    run = fast.generator_runner(unshipped, "AB")
    assert run.backend == "pytorch" and "unavailable" in run.why
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(run(x), load_model(SHIPPED).generator("AB")(x))


@pytest.mark.parametrize("runtime", ["onnxruntime", "pytorch"])
def test_the_webcam_runs_on_the_fast_path_with_the_same_frames(fresh, h2z, monkeypatch, runtime):
    from gancore.video import LiveTranslator
    monkeypatch.setenv("GANCORE_RUNTIME", runtime)
    model, frame = load_model(SHIPPED), _photo(h2z, size=(320, 240))
    run = fast.generator_runner(SHIPPED, "AB")
    assert run.backend == runtime
    quick = LiveTranslator(model, "AB", run=run)
    plain = LiveTranslator(model, "AB")
    for _ in range(2):                       # the second frame is smoothed against the first
        assert np.abs(quick(frame).astype(int) - plain(frame).astype(int)).max() <= 1


def test_the_shipped_translators_graphs_ship_beside_it_and_are_used_as_they_are(fresh, h2z):
    """A new machine's first photos run on ONNX Runtime without an export: the graphs in weights/onnx/ are
    named for the checkpoint's current content (scripts/ship_onnx.py), are checked, and nothing is cached."""
    model = load_model(SHIPPED)
    for direction, network in model.directions().items():
        assert fast.graph_path(SHIPPED, network, SHIPPED.parent / "onnx").is_file(), network
        run = fast.generator_runner(SHIPPED, direction)
        assert run.ready.wait(60) and run.onnx is not None, run
    assert not fresh.exists() or not list(fresh.glob("horse2zebra-*.onnx"))
    stale = [p.name for p in (SHIPPED.parent / "onnx").glob("*.onnx")
             if p not in {fast.graph_path(SHIPPED, n, SHIPPED.parent / "onnx") for n in model.directions().values()}]
    assert not stale, f"graphs of another version of the weights: {stale} (python scripts/ship_onnx.py)"
