"""ONNX export of every generator, proven against PyTorch in ONNX Runtime, with optional static int8.

`export_onnx(checkpoint, out)` writes one self-contained `.onnx` file (opset 17, dynamic batch axis; dynamic
height and width for fully convolutional generators) whose `metadata_props` carry the model config and the
pre/post-processing contract, then runs the file in ONNX Runtime on real inputs and fails loudly when its
output differs from PyTorch's by more than `PARITY_TOL`.

int8 is static QDQ quantisation (ONNX Runtime `quantize_static`, per-channel int8 weights, uint8
activations calibrated on real inputs of the model's own data). For the instance-normalised CycleGAN
generator only convolution *inputs* are quantised: a per-tensor int8 step on a convolution's output is
blown up by the following InstanceNorm for channels of small variance. Measured on the shipped horse2zebra
generator, held-out test photos, PSNR against fp32: every op quantised 20 dB; Conv in+out 20-23 dB (MinMax)
or 22-24 dB (Percentile); Conv in+out after rescaling each conv's output channels to equal range (exact for
a following InstanceNorm up to its eps) 24-29 dB, with no single layer to blame; Conv inputs only 31-35 dB.
Only the last passes the 30 dB bar, and ONNX Runtime cannot fuse a convolution without a quantised output
into QLinearConv, so for CycleGAN int8 buys a 3.8x smaller file, not speed (on this AVX2 CPU without VNNI
even fully fused int8 was only 1.3x faster than fp32 ONNX). Dynamic int8 and fp16 are not offered: on CPU
they make these conv nets slower, not faster.

The exporter is the TorchScript-based one (`dynamo=False`): on the horse2zebra generator it matches the
dynamo exporter's parity (1.3e-5) and takes 3 s instead of 19 s; the dynamo exporter is the fallback.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from gancore import __version__
from gancore.config import to_json
from gancore.data import load_mnist
from gancore.deploy.onnx_runtime import session
from gancore.errors import BadInput
from gancore.inference import load_model

OPSET = 17
PARITY_TOL = 1e-4                  # max abs difference on [-1, 1] outputs, fp32
INT8_PSNR_MIN_DB = 30.0            # int8 against fp32 output, held-out inputs
FORMAT = "gancore-onnx"
FORMAT_VERSION = "1"


class ExportError(BadInput):
    """An export that failed or does not compute what the PyTorch model computes."""


# ----------------------------------------------------------------------------------------------------
# ONNX Runtime helpers (what to export and its example inputs come from the model: `export_spec`,
# `example_inputs`)

def _run(sess, x: np.ndarray) -> np.ndarray:
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def psnr(reference: np.ndarray, test: np.ndarray, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2, the same as 255 on uint8)."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak_to_peak ** 2 / mse)


def _latency_ms(fn, x, repeats: int) -> float:
    fn(x)   # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1000)
    return round(float(np.median(times)), 2)


# ----------------------------------------------------------------------------------------------------
# Export

def _torch_export(module, example: torch.Tensor, path: str, spec) -> str:
    """Write the graph; returns which exporter produced it."""
    names = dict(input_names=[spec.input_name], output_names=[spec.output_name])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), path, opset_version=OPSET, dynamo=False,
                              dynamic_axes=spec.dynamic_axes, do_constant_folding=True, **names)
        return "torchscript"
    except Exception as first:  # the legacy exporter may be gone in a later torch: use dynamo
        from torch.export import Dim
        shapes = {0: Dim("batch", min=1, max=4096)}
        if spec.size_multiple:
            m = spec.size_multiple
            shapes.update({2: m * Dim("height_div", min=2, max=4096), 3: m * Dim("width_div", min=2, max=4096)})
        try:
            prog = torch.onnx.export(module, (example,), dynamo=True, opset_version=max(OPSET, 18),
                                     dynamic_shapes=({k: v for k, v in shapes.items()},), **names)
            prog.save(path, external_data=False)
        except Exception as e:
            raise ExportError(f"ONNX export failed: {e.__class__.__name__}: {e} "
                              f"(TorchScript exporter: {first.__class__.__name__}: {first})") from e
        return "dynamo"


def _write_metadata(path: str, props: dict[str, str]) -> None:
    import onnx
    m = onnx.load(path)
    del m.metadata_props[:]
    for k, v in props.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    m.producer_name, m.producer_version = "gancore", __version__
    m.doc_string = f"GAN Studio {props['model_type']} generator {props['network']} ({props['precision']})"
    onnx.checker.check_model(m)
    onnx.save(m, path)   # one file: these models are far below protobuf's 2 GB limit


def _quantize(fp32_path: str, out_path: str, spec, calibration: list[np.ndarray]) -> dict:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{spec.input_name: np.ascontiguousarray(x, dtype=np.float32)} for x in calibration])

        def get_next(self):
            return next(self._it, None)

    ops, extra = list(spec.quantize_ops), dict(spec.quantize_options)
    logging.disable(logging.WARNING)   # the quantiser logs advice on the root logger
    try:
        quantize_static(fp32_path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=ops,
                        extra_options={"ActivationSymmetric": False, **extra})
    finally:
        logging.disable(logging.NOTSET)
    return {"format": "QDQ", "weights": "int8 per-channel", "activations": "uint8 per-tensor, MinMax calibration",
            "quantized_ops": ops, **({"note": "convolution outputs stay float (InstanceNorm follows)"} if extra else {})}


def _example_inputs(model, spec, calibration_images, held_out_images, seed: int) -> dict:
    """The model's own example inputs; a grey masked-reconstruction model is checked on MNIST test digits."""
    if calibration_images is None and model.task == "inpaint" and model.config.image_channels == 1:
        data = model.example_inputs(spec, list(load_mnist("test")[0][:96]), held_out_images, seed)
        return {**data, "source": "MNIST test digits with random masks"}
    return model.example_inputs(spec, calibration_images, held_out_images, seed)


def export_name(checkpoint: str | os.PathLike, network: str, precision: str = "fp32") -> str:
    """`<name>_<network>_<precision>.onnx` for a checkpoint file. Every run saves `last.safetensors` (and
    `best.safetensors`), so those are named after their run's folder: two runs never export to one file."""
    p = Path(checkpoint)
    stem = p.stem
    if stem in ("last", "best") and p.parent.name:
        stem = p.parent.name if stem == "last" else f"{p.parent.name}_best"
    return f"{stem}_{network}_{precision}.onnx"


def export_onnx(checkpoint, out: str | os.PathLike, int8: bool = False, network: str | None = None,
                calibration_images=None, held_out_images=None, parity_tol: float = PARITY_TOL,
                psnr_min_db: float = INT8_PSNR_MIN_DB, seed: int = 0, latency_repeats: int = 3) -> dict:
    """Export a generator to `out` and prove it. `checkpoint`: a .safetensors path or a loaded model.

    network: which direction, by its name or its network's ("AB" or "G_AB" (default), "BA" or "G_BA" for
    CycleGAN; models with one generator have one). calibration_images / held_out_images: photos (paths,
    PIL images or uint8 arrays) for CycleGAN's parity, calibration and PSNR; by default the studio's
    bundled examples. Returns a report dict; raises ExportError when parity or the int8 PSNR misses.
    """
    model = checkpoint if isinstance(checkpoint, torch.nn.Module) else load_model(checkpoint)
    source_name = "" if isinstance(checkpoint, torch.nn.Module) else Path(checkpoint).name
    model = model.float().cpu().eval()
    try:
        spec = model.export_spec(network)
    except BadInput as e:
        raise ExportError(str(e)) from None
    module = spec.module
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"output file must end in .onnx, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = _example_inputs(model, spec, calibration_images, held_out_images, seed)
    x = torch.from_numpy(np.ascontiguousarray(data["parity"], dtype=np.float32))

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        fp32_path = os.path.join(tmp, "fp32.onnx")
        with torch.no_grad():
            exporter = _torch_export(module, x[:1], fp32_path, spec)
            reference = module(x).numpy()
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "gancore_version": __version__,
            "model_type": model.model_type, "task": model.task, "network": spec.network, "direction": spec.direction,
            "model_config": to_json(model.config), "source_checkpoint": source_name,
            "input_name": spec.input_name, "output_name": spec.output_name,
            "contract": json.dumps(spec.contract, sort_keys=True), "opset": str(OPSET), "exporter": exporter,
        }
        _write_metadata(fp32_path, {**meta, "precision": "fp32"})

        # Parity: the file against PyTorch on the same real input.
        fp32 = session(fp32_path)
        got = _run(fp32, x.numpy())
        diff = float(np.abs(got - reference).max())
        report = {"path": str(out), "model_type": model.model_type, "network": spec.network,
                  "precision": "int8" if int8 else "fp32", "opset": OPSET, "exporter": exporter,
                  "inputs": data["source"], "parity_input_shape": list(x.shape),
                  "parity_max_abs_diff": diff, "parity_tol": parity_tol,
                  "fp32_size_bytes": os.path.getsize(fp32_path)}
        if not np.isfinite(diff) or diff > parity_tol:
            raise ExportError(f"parity check failed: ONNX Runtime output differs from PyTorch by {diff:.3g} "
                              f"(tolerance {parity_tol:g}) on {data['source']}")
        if spec.size_multiple and x.shape[-1] >= 16:
            # A second size proves the dynamic height/width axes.
            x2 = x[:1, :, : x.shape[2] // 2 - (x.shape[2] // 2) % spec.size_multiple]
            with torch.no_grad():
                d2 = float(np.abs(_run(fp32, x2.numpy()) - module(x2).numpy()).max())
            report["parity_max_abs_diff_other_size"] = d2
            if d2 > parity_tol:
                raise ExportError(f"parity check failed at size {tuple(x2.shape[2:])}: difference {d2:.3g}")

        one = x[:1]
        timed = latency_repeats > 0   # 0: skip the timing (tests); bench/inference_speed.py measures properly
        if timed:
            with torch.no_grad():
                report["latency_ms"] = {"batch": 1, "input_shape": list(one.shape),
                                        "pytorch": _latency_ms(lambda a: module(a), one, latency_repeats),
                                        "onnx_fp32": _latency_ms(lambda a: _run(fp32, a), one.numpy(), latency_repeats)}
        final = fp32_path
        if int8:
            q_path = os.path.join(tmp, "int8.onnx")
            report["quantization"] = _quantize(fp32_path, q_path, spec, data["calibration"])
            report["quantization"]["calibration_batches"] = len(data["calibration"])
            _write_metadata(q_path, {**meta, "precision": "int8",
                                     "quantization": json.dumps(report["quantization"], sort_keys=True)})
            q = session(q_path)
            scores = [psnr(_run(fp32, h), _run(q, h)) for h in data["held_out"]]
            report["int8_psnr_db"] = round(float(np.mean(scores)), 2)
            report["int8_psnr_db_min"] = round(float(np.min(scores)), 2)
            report["int8_psnr_images"] = int(sum(len(h) for h in data["held_out"]))
            report["int8_size_bytes"] = os.path.getsize(q_path)
            if timed:
                report["latency_ms"]["onnx_int8"] = _latency_ms(lambda a: _run(q, a), one.numpy(), latency_repeats)
            if report["int8_psnr_db_min"] < psnr_min_db:
                raise ExportError(f"int8 quantisation loses too much: {report['int8_psnr_db_min']:.1f} dB PSNR "
                                  f"against fp32 (needs {psnr_min_db:g} dB); export fp32 instead")
            final = q_path
        if timed:
            lat = report["latency_ms"]
            lat["speedup_vs_pytorch"] = round(lat["pytorch"] / lat["onnx_int8" if int8 else "onnx_fp32"], 2)
        os.replace(final, out)
    report["size_bytes"] = os.path.getsize(out)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def read_metadata(path: str | os.PathLike) -> dict:
    """metadata_props of an exported file, with the JSON fields parsed."""
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    for k in ("model_config", "contract", "quantization"):
        if k in meta:
            meta[k] = json.loads(meta[k])
    return meta
