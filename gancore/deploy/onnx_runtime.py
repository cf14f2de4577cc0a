"""A small ONNX Runtime wrapper for files written by `gancore.deploy.export`: the service and the studio use it.

`OnnxGenerator(path).run(x)` runs the generator on float32 NCHW / (N, latent) input and returns float32 in
[-1, 1]; `metadata` holds the model config and the pre/post-processing contract the exporter stored.
CUDA is used when ONNX Runtime has it; on CPU the intra-op threads match the cores this process may use.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from gancore.config import RANGES, ConfigError, check_ranged_values
from gancore.errors import BadCheckpoint, BadInput, OutOfMemory, first_line
from gancore.imaging import seeded_noise


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def providers() -> list[str]:
    import onnxruntime as ort
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime session on the best provider, with `threads` intra-op threads (default: this process's
    cores). Raises BadCheckpoint when the file is not a loadable ONNX model."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or cpu_threads()
    so.log_severity_level = 3
    # ORT's workers spin after each run by default, taking the cores from the PyTorch steps around it (resizing,
    # uint8) and from other requests: measured on a 256-px photo, the whole photo path took twice the graph's time.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), so, providers=providers())
    except Exception as e:  # onnxruntime raises its own exception types
        raise BadCheckpoint(f"{Path(path).name}: not a loadable ONNX model ({e.__class__.__name__})") from None


def runtime_error(name: str, e: Exception) -> Exception:
    """An ONNX Runtime failure as an engine error: out of memory (507) or an input the graph cannot take (400)."""
    text = first_line(e, 200)
    if isinstance(e, MemoryError) or "alloc" in text.lower():
        return OutOfMemory(f"{name}: ONNX Runtime ran out of memory for this request; try fewer images or a "
                           "smaller photo")
    return BadInput(f"{name}: ONNX Runtime cannot run this input ({e.__class__.__name__}: {text})")


def check_metadata(name: str, meta: dict, input_shape: list) -> None:
    """The contract is present, the config's numbers are in range and a noise model's integer `latent_dim`
    is what the graph takes; BadCheckpoint otherwise."""
    if not isinstance(meta.get("contract"), dict) or not isinstance(meta["contract"].get("input"), dict):
        raise BadCheckpoint(f"{name}: its GAN Studio metadata has no input contract")
    config = meta["model_config"]
    try:
        check_ranged_values(name, config)
    except ConfigError as e:
        raise BadCheckpoint(f"{name}: its metadata holds an impossible setting ({e})") from None
    if meta["task"] != "noise":
        return
    dim, (lo, hi) = config.get("latent_dim"), RANGES["latent_dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or not lo <= dim <= hi:
        raise BadCheckpoint(f"{name}: latent_dim {dim!r:.40} in its metadata is not a whole number from {lo} to {hi}")
    if len(input_shape) != 2 or (isinstance(input_shape[1], int) and input_shape[1] != dim):
        raise BadCheckpoint(f"{name}: its metadata says latent_dim {dim}, but the graph takes input of shape "
                            f"{input_shape}")


class OnnxGenerator:
    """One exported generator in an ONNX Runtime session (thread-safe: `run` may be called concurrently)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise BadCheckpoint(f"{self.path}: no such ONNX file")
        if self.path.stat().st_size == 0:
            raise BadCheckpoint(f"{self.path.name}: the file is empty, not an ONNX model")
        self.session = session(self.path, threads)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if meta.get("format") != "gancore-onnx":
            raise BadCheckpoint(f"{self.path.name}: not exported by GAN Studio (no gancore metadata)")
        try:
            for k in ("model_config", "contract", "quantization"):
                if k in meta:
                    meta[k] = json.loads(meta[k])
            for k in ("model_type", "task", "network"):
                if not isinstance(meta.get(k), str):
                    raise ValueError(k)
            if not isinstance(meta.get("model_config"), dict):
                raise ValueError("model_config")
        except ValueError as e:
            raise BadCheckpoint(f"{self.path.name}: its GAN Studio metadata is damaged ({e})") from None
        self.metadata = meta
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape   # symbolic axes as strings
        check_metadata(self.path.name, meta, self.input_shape)

    # Convenience views of the metadata.
    model_type = property(lambda self: self.metadata["model_type"])
    task = property(lambda self: self.metadata["task"])
    network = property(lambda self: self.metadata["network"])
    config = property(lambda self: self.metadata["model_config"])
    contract = property(lambda self: self.metadata["contract"])
    precision = property(lambda self: self.metadata.get("precision", "fp32"))

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Generator output (float32, [-1, 1]) for one batch. ONNX Runtime's failures come back as BadInput (the
        input does not fit the graph) or OutOfMemory, never as its own exception types."""
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        except Exception as e:  # onnxruntime raises Fail, InvalidArgument, RuntimeException, ...
            raise runtime_error(self.path.name, e) from None

    @property
    def direction(self) -> str:
        """The direction this file runs (older files store only the network: G_AB -> AB, G -> G)."""
        return self.metadata.get("direction") or {"G_AB": "AB", "G_BA": "BA"}.get(self.network, self.network)

    def noise(self, n: int, seed: int = 0) -> np.ndarray:
        """The z `gancore.inference.sample(model, n, seed)` would draw, so seeds match the checkpoint's."""
        return seeded_noise(n, self.config["latent_dim"], seed).numpy()

    def __repr__(self):
        return f"OnnxGenerator({self.path.name}, {self.model_type} {self.network} {self.precision}, {self.provider})"
