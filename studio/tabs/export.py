"""Export tab: save a generator as one ONNX file (fp32 or int8), proven against PyTorch, ready to serve.

Plain functions first (a test calls them without a browser), then the layout, then the wiring.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

import gradio as gr

from studio.ui import friendly

PRECISIONS = [("fp32: exact (parity with PyTorch)", "fp32"),
              ("int8: about 4x smaller file, quantised (checked at >= 30 dB PSNR)", "int8")]


# ---- plain functions -----------------------------------------------------------------------------

def exports_dir(services) -> Path:
    runs = getattr(services, "runs_dir", None) or os.environ.get("GANSTUDIO_RUNS", "runs")
    return Path(runs) / "exports"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def describe(report: dict) -> str:
    """The export report in plain words (Markdown)."""
    lines = [f"**Exported** the {report['model_type']} generator `{report['network']}` as "
             f"{report['precision']} ONNX (opset {report['opset']}), {_mb(report['size_bytes'])}.",
             f"- **Same results as PyTorch:** the largest difference on {report['inputs']} is "
             f"{report['parity_max_abs_diff']:.1e} on a -1..1 scale (allowed: {report['parity_tol']:g})."]
    if "int8_psnr_db" in report:
        lines.append(f"- **int8 quality:** {report['int8_psnr_db']:.1f} dB PSNR against the fp32 file on "
                     f"{report['int8_psnr_images']} held-out input(s) (30 dB and up looks the same to the eye); "
                     f"{_mb(report['fp32_size_bytes'])} → {_mb(report['int8_size_bytes'])}.")
    lat = report.get("latency_ms")
    if lat:
        parts = [f"PyTorch {lat['pytorch']:.1f} ms", f"ONNX fp32 {lat['onnx_fp32']:.1f} ms"]
        if "onnx_int8" in lat:
            parts.append(f"ONNX int8 {lat['onnx_int8']:.1f} ms")
        lines.append(f"- **Speed** (one input of shape {tuple(lat['input_shape'])}, this machine): "
                     + ", ".join(parts) + f" — {lat['speedup_vs_pytorch']:.1f}x PyTorch.")
        if lat.get("onnx_int8", 0) > lat["onnx_fp32"]:
            lines.append("- int8 makes this file smaller, not faster, on this machine: choose fp32 for speed.")
    return "\n".join(lines)


def serve_command(path: str | os.PathLike) -> str:
    return f"gancore serve {shlex.quote(str(path))} --host 127.0.0.1 --port 8000"


def run_export(services, checkpoint: str, direction: str = "", precision: str = "fp32") -> tuple[str, str, str]:
    """Export `checkpoint` -> (report in Markdown, path of the .onnx file, serve command). Engine errors pass."""
    from gancore.deploy.export import export_name, export_onnx
    if not checkpoint:
        raise ValueError("Choose a model to export first.")
    if precision not in ("fp32", "int8"):
        raise ValueError("Precision must be fp32 or int8.")
    model = services.load(checkpoint)
    spec_direction = model.direction(direction) if len(model.directions()) > 1 else None
    network = model.directions()[model.direction(spec_direction)]
    out = exports_dir(services) / export_name(checkpoint, network, precision)
    report = export_onnx(model, out, int8=precision == "int8", network=spec_direction)
    return describe(report), str(out), serve_command(out)


# ---- layout and wiring ----------------------------------------------------------------------------

def build(services):
    @friendly
    def export_handler(checkpoint, direction, precision):
        report, path, command = run_export(services, checkpoint, direction, precision)
        return report, path, services.shown(command)

    def refresh(current):
        pairs = services.list_checkpoints()
        values = [v for _, v in pairs]
        return gr.Dropdown(choices=pairs, value=current if current in values else (values[0] if values else None))

    def show_direction(checkpoint):
        try:
            pairs = services.direction_choices(checkpoint) if checkpoint else []
        except Exception:   # an unreadable file: the export itself reports why
            pairs = []
        return gr.Radio(choices=pairs or [("", "")], value=pairs[0][1] if pairs else "", visible=len(pairs) > 1)

    pairs = []   # filled on page load, so starting the app does not wait for torch
    gr.Markdown("Save a generator as one ONNX file that runs anywhere ONNX Runtime does. Every export is "
                "checked against the PyTorch model before you get it.")
    with gr.Row():
        ckpt = gr.Dropdown(pairs, value=pairs[0][1] if pairs else None, label="Model", elem_id="export-model",
                           allow_custom_value=True, scale=3)
        refresh_btn = gr.Button("↻ Refresh list", elem_id="export-refresh", scale=0)
    direction = gr.Radio([("A → B (G_AB)", "G_AB"), ("B → A (G_BA)", "G_BA"), ("", "")], value="",
                         label="Direction", visible=False, elem_id="export-direction")
    precision = gr.Radio(PRECISIONS, value="fp32", label="Precision", elem_id="export-precision")
    go = gr.Button("Export", variant="primary", elem_id="export-go")
    report = gr.Markdown(elem_id="export-report")
    file = gr.File(label="ONNX file", interactive=False, elem_id="export-file")
    command = gr.Textbox(label="Serve it over HTTP", interactive=False, buttons=["copy"], elem_id="export-command")

    go.click(export_handler, [ckpt, direction, precision], [report, file, command], api_name="export_model")
    refresh_btn.click(refresh, ckpt, ckpt, api_name="export_models")
    ckpt.change(show_direction, ckpt, direction, api_name="export_direction_visible", api_visibility="undocumented")
    return {"refresh": (refresh, ckpt)}
