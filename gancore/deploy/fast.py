"""The fastest faithful way to run a checkpoint's generator on this machine: ONNX Runtime or PyTorch eager.

    run = generator_runner("weights/horse2zebra.safetensors", "AB")     # cached per (file, way, threads)
    y = run(x)                  # (N, C, H, W) float tensor in [-1, 1] -> the same, like the PyTorch generator
    run.backend, run.ms         # "onnxruntime" or "pytorch", and both timings on a 256-px input

The first call for a file starts, in the background, the export of that way's generator to ONNX (once per
file content: cached under `cache_dir()` by the checkpoint's hash, unless the graph ships beside the checkpoint
in `onnx/`, as the bundled translator's do: `scripts/ship_onnx.py`; export proves parity against PyTorch on
the model's own example photos), checks the graph against PyTorch again on a small input, then times
both on one 256-px input and keeps the faster; PyTorch serves meanwhile, so the first photo never waits for
the export. PyTorch serves whenever ONNX Runtime is missing, the export fails, the outputs differ, or
`GANCORE_RUNTIME=pytorch`; `GANCORE_RUNTIME=onnxruntime` builds at once and skips the timing.
The studio, the service and the webcam use this; `bench/translate_speed.py` prints the same figures.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from gancore.imaging import MAX_SIDE
from gancore.inference import load_model, translate_with, translation_ways

log = logging.getLogger(__name__)
CHECK_TOL = 1e-3            # max abs difference on [-1, 1] outputs when a cached graph is reused
TIMING_SIZE = 256
EXPORT_LIMIT_S = 300
_build_lock = threading.RLock()
_pending: list = []                              # builds waiting for the builder thread
_builder: threading.Thread | None = None


def cache_dir() -> Path:
    """Where exported graphs are kept: $GANCORE_CACHE, else ~/.cache/gancore."""
    root = os.environ.get("GANCORE_CACHE") or Path.home() / ".cache" / "gancore"
    return Path(root) / "onnx"


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


def translate_fast(path: str | os.PathLike, image, direction: str = "AB", cycle: bool = False, scale: str = "model",
                   strength: float = 1.0, max_side: int = MAX_SIDE, threads: int | None = None) -> dict:
    """`gancore.inference.translate` on the fastest backend: the same pixels within CHECK_TOL, plus "backend"."""
    model = load_model(path)
    way, back = translation_ways(model, direction, cycle)
    run = generator_runner(path, way, threads)
    result = translate_with(run, image, model.config.image_channels, model.config.image_size, model.size_multiple,
                            generator_runner(path, back, threads) if back else None, scale, max_side, strength)
    return {**result, "backend": run.backend}


class Runner:
    """A generator behind one call: tensor in, tensor out, on the backend chosen for this machine. It serves
    with PyTorch until `settle` has built, checked and timed the ONNX graph (`ready` is set then)."""

    def __init__(self, net: torch.nn.Module):
        self.net, self.onnx, self.backend, self.ms, self.why = net, None, "pytorch", {}, "building the ONNX graph"
        self.ready = threading.Event()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        onnx = self.onnx if self.backend == "onnxruntime" else None
        if onnx is not None:
            return torch.from_numpy(onnx.run(x.detach().float().cpu().numpy()))
        with torch.no_grad():      # not inference_mode: callers may change the result in place (clamp_)
            return self.net(x)

    def settle(self, path: Path, model, direction: str | None, threads: int, timed: bool) -> None:
        """Build the way's graph, check it against PyTorch and (when `timed`) keep the faster backend."""
        try:
            onnx = _onnx_generator(path, model, direction, threads)
            _check(self.net, onnx)
            self.ms = _timings(self.net, onnx, model.config.image_channels) if timed else {}
            self.onnx = onnx
            faster = not timed or self.ms["onnxruntime"] < self.ms["pytorch"]
            self.backend = "onnxruntime" if faster else "pytorch"
            self.why = "faster on this machine" if timed else "ONNX Runtime asked for"
        except Exception as e:   # ONNX Runtime missing, an export it cannot take, or a graph that disagrees
            log.warning("%s: serving with PyTorch (%s: %s)", path.name, e.__class__.__name__, e)
            self.why = f"ONNX Runtime unavailable: {e.__class__.__name__}"
        finally:
            self.ready.set()

    def __repr__(self):
        return f"Runner({self.backend}, {self.ms}, {self.why!r})"


def generator_runner(path: str | os.PathLike, direction: str | None = None, threads: int | None = None) -> Runner:
    """The runner for one way of a checkpoint (cached by path, file time, way and thread count)."""
    p = Path(path).resolve()
    threads = threads or torch.get_num_threads()
    with _build_lock:              # two first requests start one build, not two
        return _runner(str(p), p.stat().st_mtime_ns, direction, threads)


@functools.lru_cache(maxsize=16)
def _runner(path: str, _mtime: int, direction: str | None, threads: int) -> Runner:
    model = load_model(path)
    run = Runner(model.generator(direction))
    mode = os.environ.get("GANCORE_RUNTIME", "auto")
    if mode == "pytorch" or not model.size_multiple:
        run.why = "PyTorch asked for" if mode == "pytorch" else "not a photo-to-photo generator"
        run.ready.set()
    elif mode == "onnxruntime":
        run.settle(Path(path), model, direction, threads, timed=False)
    else:                          # the first photos are served by PyTorch while the graph is built
        _queue_build(lambda: run.settle(Path(path), model, direction, threads, True))
    return run


def _queue_build(build) -> None:
    """Builds run one at a time on one background thread: each export is a child process on one core, so
    the photos served meanwhile keep the other cores."""
    global _builder
    with _build_lock:
        _pending.append(build)
        if _builder is None or not _builder.is_alive():
            _builder = threading.Thread(target=_build_all, daemon=True, name="onnx-builds")
            _builder.start()


def _build_all() -> None:
    while True:
        with _build_lock:
            if not _pending:
                return
            build = _pending.pop(0)
        build()


@atexit.register
def _finish_builds(limit_s: float = 60) -> None:
    """A build still in ONNX Runtime's native code when the interpreter exits would abort the process."""
    with _build_lock:
        _pending.clear()
    if _builder is not None:
        _builder.join(limit_s)


def _onnx_generator(path: Path, model, direction: str | None, threads: int):
    """The way's graph: shipped beside the checkpoint (`onnx/`), else from the cache, exported first when it
    is in neither. Both are keyed by the checkpoint's hash, so a graph of an older file is never used."""
    from gancore.deploy.onnx_runtime import OnnxGenerator
    network = model.directions()[model.direction(direction)]
    graph = graph_path(path, network, path.parent / "onnx")
    if not graph.is_file():
        graph = cache_dir() / graph.name
        if not graph.is_file():
            export_graph(path, network, graph)
    return OnnxGenerator(graph, threads=threads)


def graph_path(path: Path, network: str, folder: Path) -> Path:
    return folder / f"{path.stem}-{file_hash(path)}-{network}.onnx"


def export_graph(path: Path, network: str, out: Path) -> None:
    """Export one network of a checkpoint to `out` (written whole or not at all).

    The export runs in a child process: exporting sets process-wide tracing state in PyTorch, and the
    translations this process serves meanwhile must not see it. One thread, so they keep the other cores.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.{threading.get_ident()}.onnx")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "gancore", "export", str(path), "--out", str(tmp),
                           "--network", network], capture_output=True, text=True, env=env, timeout=EXPORT_LIMIT_S)
    if done.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"export failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    os.replace(tmp, out)


def _check(net: torch.nn.Module, onnx) -> None:
    x = torch.rand(1, onnx_channels(onnx), 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        diff = float(np.abs(onnx.run(x.numpy()) - net(x).numpy()).max())
    if not diff <= CHECK_TOL:
        raise ValueError(f"the ONNX graph differs from PyTorch by {diff:.3g}")


def onnx_channels(onnx) -> int:
    return int(onnx.config.get("image_channels", 3))


def _timings(net: torch.nn.Module, onnx, channels: int, repeats: int = 3) -> dict:
    """Median ms of each backend on one 256-px input (PyTorch with the threads it has now)."""
    x = torch.rand(1, channels, TIMING_SIZE, TIMING_SIZE) * 2 - 1
    with torch.inference_mode():
        eager = _median_ms(lambda: net(x), repeats)
    ort = _median_ms(lambda: onnx.run(x.numpy()), repeats)
    return {"pytorch": round(eager, 1), "onnxruntime": round(ort, 1)}


def _median_ms(fn, repeats: int) -> float:
    fn()                      # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))
