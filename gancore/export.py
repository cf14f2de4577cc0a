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
from gancore.errors import BadInput

OPSET = 17
PARITY_TOL = 1e-4                  # max abs difference on [-1, 1] outputs, fp32
INT8_PSNR_MIN_DB = 30.0            # int8 against fp32 output, held-out inputs
FORMAT = "gancore-onnx"
FORMAT_VERSION = "1"
EXAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "examples"   # photos the product ships


class ExportError(BadInput):
    """An export that failed or does not compute what the PyTorch model computes."""


# ----------------------------------------------------------------------------------------------------
# What each model type exports

def _spec(model, network: str | None) -> dict:
    """The network to export, its input, dynamic axes and the processing contract for the metadata."""
    cfg = model.config
    kind = model.model_type
    if model.task == "noise":
        if network not in (None, "G"):
            raise ExportError(f"{kind} has one generator, 'G'; got network={network!r}")
        c, s = cfg.image_channels, cfg.image_size
        return {
            "module": model.G, "network": "G", "input_name": "z", "output_name": "image",
            "input_shape": [cfg.latent_dim], "dynamic_axes": {"z": {0: "batch"}, "image": {0: "batch"}},
            "contract": {
                "input": {"name": "z", "shape": ["batch", cfg.latent_dim], "dtype": "float32",
                          "distribution": "standard normal N(0, 1); scale by a truncation factor <= 1 for safer samples"},
                "output": _image_out(c, [s, s]),
            }}
    if kind == "cyclegan":
        network = network or "G_AB"
        if network not in ("G_AB", "G_BA"):
            raise ExportError(f"cyclegan exports 'G_AB' (A to B) or 'G_BA' (B to A); got network={network!r}")
        mult = getattr(model.G.G_AB, "size_multiple", 4)
        c = cfg.image_channels
        return {
            "module": getattr(model.G, network), "network": network, "input_name": "image", "output_name": "image_out",
            "dynamic_axes": {"image": {0: "batch", 2: "height", 3: "width"},
                             "image_out": {0: "batch", 2: "height", 3: "width"}},
            "size_multiple": mult,
            "contract": {
                "input": {**_image_in(c, ["height", "width"]), "size_multiple": mult,
                          "domain": "A" if network == "G_AB" else "B",
                          "preprocess": f"resize so the shorter side is about {cfg.image_size} px (the training "
                                        f"size), reflect-pad height and width to multiples of {mult}, "
                                        "scale pixels with x / 127.5 - 1"},
                "output": {**_image_out(c, ["height", "width"]),
                           "postprocess": "crop the padding away, (y + 1) * 127.5 rounded and clipped to 0..255, "
                                          "resize back to the photo's size"},
            }}
    if kind == "maskrec":
        if network not in (None, "G"):
            raise ExportError(f"maskrec has one generator, 'G'; got network={network!r}")
        c, s = cfg.image_channels, cfg.image_size
        inp = _image_in(c + 1, [s, s])
        inp["channels"] = ("grey" if c == 1 else "RGB") + " image with hidden pixels set to 0, then the mask (1 = hidden)"
        return {
            "module": model.G, "network": "G", "input_name": "masked_image", "output_name": "fill",
            "dynamic_axes": {"masked_image": {0: "batch"}, "fill": {0: "batch"}},   # fixed size: a dense layer inside
            "contract": {
                "input": inp,
                "output": {**_image_out(c, [s, s]),
                           "postprocess": "composite: image * (1 - mask) + fill * mask, then to uint8"},
            }}
    raise ExportError(f"no ONNX export for model type {kind!r}")


def _image_in(channels: int, hw: list) -> dict:
    return {"shape": ["batch", channels, *hw], "dtype": "float32", "layout": "NCHW",
            "channels": "grey" if channels == 1 else "RGB", "range": [-1.0, 1.0], "scale": "x / 127.5 - 1"}


def _image_out(channels: int, hw: list) -> dict:
    return {"shape": ["batch", channels, *hw], "dtype": "float32", "layout": "NCHW",
            "channels": "grey" if channels == 1 else "RGB", "range": [-1.0, 1.0],
            "to_uint8": "round((y + 1) * 127.5), clipped to 0..255"}


# ----------------------------------------------------------------------------------------------------
# Real inputs for parity, calibration and PSNR

def _load_photo(path_or_array, size: int, channels: int) -> np.ndarray:
    """Photo -> (C, size, size) float32 in [-1, 1]: shorter side to `size`, centre crop."""
    from PIL import Image
    from gancore.data import open_image, to_rgb_or_grey
    im = path_or_array if isinstance(path_or_array, Image.Image) else (
        Image.fromarray(np.asarray(path_or_array, dtype=np.uint8)) if isinstance(path_or_array, np.ndarray)
        else open_image(path_or_array))
    im = to_rgb_or_grey(im, channels)
    s = size / min(im.size)
    im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.BICUBIC)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    a = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) / 127.5 - 1
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)   # HWC -> CHW


def _synthetic_photo(size: int, channels: int, seed: int) -> np.ndarray:
    """Smooth random image, only when no real photo is available (the report says so)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, channels, 6, 6, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(-1, 1)[0].numpy()


def _bundled_examples(domain: str) -> tuple[list[Path], list[Path]]:
    """(photos of the input domain, photos of the other domain) the product ships."""
    if not EXAMPLES_DIR.is_dir():
        return [], []
    horses, zebras = sorted(EXAMPLES_DIR.glob("horse_*.jpg")), sorted(EXAMPLES_DIR.glob("zebra_*.jpg"))
    return (horses, zebras) if domain == "A" else (zebras, horses)


def _inputs(model, spec: dict, calibration_images, held_out_images, seed: int) -> dict:
    """{"parity": array, "calibration": [arrays (1, ...)], "held_out": [arrays], "source": words}."""
    cfg = model.config
    if model.task == "noise":
        z = lambda n, s: model.noise(n, generator=torch.Generator().manual_seed(s)).numpy()   # noqa: E731
        # Calibrate on the generator's own input distribution; hold out other seeds.
        return {"parity": z(16, seed), "calibration": [z(16, seed + 1 + i) for i in range(8)],
                "held_out": [z(16, seed + 100 + i) for i in range(4)], "source": "random z ~ N(0, 1)"}

    if model.model_type == "maskrec":
        c, s = cfg.image_channels, cfg.image_size
        if calibration_images is None and c == 1:
            from gancore.data import load_mnist
            digits = load_mnist("test")[0]   # the model's own data (shipped MNIST), test split
            imgs = [_load_photo(d, s, 1) for d in digits[:96]]
            source = "MNIST test digits with random masks"
        else:
            paths = list(calibration_images or []) + list(held_out_images or [])
            if not paths:
                paths = sum(_bundled_examples("A"), [])
            imgs = [_load_photo(p, s, c) for p in paths] or [_synthetic_photo(s, c, seed + i) for i in range(8)]
            source = "given photos with random masks" if calibration_images else "bundled photos with random masks"
        from gancore.models.maskrec import generator_input
        x = torch.from_numpy(np.stack(imgs))
        masks = model.sample_masks(len(x), generator=torch.Generator().manual_seed(seed))
        gin = generator_input(x, masks.to(x.dtype)).numpy()
        k = max(1, len(gin) // 4)
        held, cal = gin[:k], gin[k:] if len(gin) > k else gin
        return {"parity": held[:16], "calibration": [cal[i:i + 16] for i in range(0, len(cal), 16)],
                "held_out": [held[i:i + 16] for i in range(0, len(held), 16)], "source": source}

    # CycleGAN: real photos of the input domain (given, or the ones the studio ships).
    c, s = cfg.image_channels, cfg.image_size
    domain = spec["contract"]["input"]["domain"]
    own, other = _bundled_examples(domain)
    held_paths, cal_paths = own[:1], own[1:] + other
    source = f"the bundled example photos ({', '.join(p.name for p in own + other)})"
    if held_out_images is not None:
        held_paths, source = list(held_out_images), "given held-out photos, calibrated on " + (
            "given photos" if calibration_images is not None else source)
        cal_paths = own + other
    if calibration_images is not None:
        cal_paths = list(calibration_images)
        if held_out_images is None:
            source = "given calibration photos, held-out: " + source
    held = [_load_photo(p, s, c)[None] for p in held_paths]
    cal = [_load_photo(p, s, c)[None] for p in cal_paths]
    if not held:
        held = [_synthetic_photo(s, c, seed)[None]]
        cal = cal or [_synthetic_photo(s, c, seed + 1 + i)[None] for i in range(4)]
        source = "synthetic smooth images (no photos given and no bundled examples found)"
    return {"parity": held[0], "calibration": cal, "held_out": held, "source": source}


# ----------------------------------------------------------------------------------------------------
# ONNX Runtime helpers

def _session(path: str | os.PathLike):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


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

def _torch_export(module, example: torch.Tensor, path: str, spec: dict) -> str:
    """Write the graph; returns which exporter produced it."""
    names = dict(input_names=[spec["input_name"]], output_names=[spec["output_name"]])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), path, opset_version=OPSET, dynamo=False,
                              dynamic_axes=spec["dynamic_axes"], do_constant_folding=True, **names)
        return "torchscript"
    except Exception as first:  # the legacy exporter may be gone in a later torch: use dynamo
        from torch.export import Dim
        shapes = {0: Dim("batch", min=1, max=4096)}
        if "size_multiple" in spec:
            m = spec["size_multiple"]
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


def _quantize(fp32_path: str, out_path: str, model, calibration: list[np.ndarray], input_name: str) -> dict:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{input_name: np.ascontiguousarray(x, dtype=np.float32)} for x in calibration])

        def get_next(self):
            return next(self._it, None)

    if model.model_type == "cyclegan":
        ops, extra = ["Conv"], {"OpTypesToExcludeOutputQuantization": ["Conv"]}   # see the module docstring
    elif model.model_type == "mlp":
        ops, extra = ["Gemm", "MatMul"], {}
    else:
        ops, extra = ["Conv", "ConvTranspose", "Gemm", "MatMul"], {}
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


def export_onnx(checkpoint, out: str | os.PathLike, int8: bool = False, network: str | None = None,
                calibration_images=None, held_out_images=None, parity_tol: float = PARITY_TOL,
                psnr_min_db: float = INT8_PSNR_MIN_DB, seed: int = 0, latency_repeats: int = 3) -> dict:
    """Export a generator to `out` and prove it. `checkpoint`: a .safetensors path or a loaded model.

    network: "G_AB" (default) or "G_BA" for CycleGAN. calibration_images / held_out_images: photos (paths,
    PIL images or uint8 arrays) for CycleGAN's parity, calibration and PSNR; by default the studio's
    bundled examples. Returns a report dict; raises ExportError when parity or the int8 PSNR misses.
    """
    from gancore.inference import load_model
    model = checkpoint if isinstance(checkpoint, torch.nn.Module) else load_model(checkpoint)
    source_name = "" if isinstance(checkpoint, torch.nn.Module) else Path(checkpoint).name
    model = model.float().cpu().eval()
    spec = _spec(model, network)
    module = spec["module"]
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"output file must end in .onnx, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = _inputs(model, spec, calibration_images, held_out_images, seed)
    x = torch.from_numpy(np.ascontiguousarray(data["parity"], dtype=np.float32))

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        fp32_path = os.path.join(tmp, "fp32.onnx")
        with torch.no_grad():
            exporter = _torch_export(module, x[:1], fp32_path, spec)
            reference = module(x).numpy()
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "gancore_version": __version__,
            "model_type": model.model_type, "task": model.task, "network": spec["network"],
            "model_config": to_json(model.config), "source_checkpoint": source_name,
            "input_name": spec["input_name"], "output_name": spec["output_name"],
            "contract": json.dumps(spec["contract"], sort_keys=True), "opset": str(OPSET), "exporter": exporter,
        }
        _write_metadata(fp32_path, {**meta, "precision": "fp32"})

        # Parity: the file against PyTorch on the same real input.
        fp32 = _session(fp32_path)
        got = _run(fp32, x.numpy())
        diff = float(np.abs(got - reference).max())
        report = {"path": str(out), "model_type": model.model_type, "network": spec["network"],
                  "precision": "int8" if int8 else "fp32", "opset": OPSET, "exporter": exporter,
                  "inputs": data["source"], "parity_input_shape": list(x.shape),
                  "parity_max_abs_diff": diff, "parity_tol": parity_tol,
                  "fp32_size_bytes": os.path.getsize(fp32_path)}
        if not np.isfinite(diff) or diff > parity_tol:
            raise ExportError(f"parity check failed: ONNX Runtime output differs from PyTorch by {diff:.3g} "
                              f"(tolerance {parity_tol:g}) on {data['source']}")
        if "size_multiple" in spec and x.shape[-1] >= 16:
            # A second size proves the dynamic height/width axes.
            x2 = x[:1, :, : x.shape[2] // 2 - (x.shape[2] // 2) % spec["size_multiple"]]
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
            report["quantization"] = _quantize(fp32_path, q_path, model, data["calibration"], spec["input_name"])
            report["quantization"]["calibration_batches"] = len(data["calibration"])
            _write_metadata(q_path, {**meta, "precision": "int8",
                                     "quantization": json.dumps(report["quantization"], sort_keys=True)})
            q = _session(q_path)
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
