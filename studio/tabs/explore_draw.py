"""Explore tab, "Draw into the model": a sketch or picture -> the latent code that reproduces it
(`gancore.analysis.projection`), shown beside the drawing, then edited by the tab's direction sliders.

The found code downloads as a .npy file and loads back here, so it can be kept and reused like a seed.
"""
from __future__ import annotations

import uuid

import gradio as gr
import numpy as np

from studio.ui import INFERENCE_CONCURRENCY, SCRATCH, enlarge, friendly, png_file, tile


def _composite(value):
    """An ImageEditor value (dict with background, layers, composite) -> the picture as shown, or None."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("composite") if value.get("composite") is not None else value.get("background")
    return value


def build(services, ckpt, sliders):
    """An accordion under the explore view; `ckpt` is the tab's generator, `sliders` its direction sliders."""

    # ---- plain functions -------------------------------------------------------------------------
    def edited(path, z, alphas):
        import torch

        from gancore.analysis.latent import edit
        from gancore.inference import sample
        z = torch.tensor(np.asarray(z, dtype=np.float32)).reshape(1, -1)
        alphas = [float(a) for a in alphas]
        if any(alphas):
            z = edit(z, services.directions(path, len(alphas)), alphas)
        return sample(services.load(path), z=z)[0]

    @friendly
    def find(path, drawing, picture, *alphas):
        from gancore.analysis import projection  # torch: imported when a person first draws
        model = services.load(path)
        p = projection.project(model, picture if picture is not None else _composite(drawing))
        pair = enlarge(tile(np.stack([p.target, p.image]), cols=2, pad=4), 256)
        folder = SCRATCH / uuid.uuid4().hex
        folder.mkdir(parents=True)
        npy = projection.save_latent(folder / "latent.npy", p.z)
        z = p.z.reshape(-1).tolist()
        note = (f"**{p.psnr_db:.1f} dB** (pixel MSE {p.mse:.4f}; the best of {p.candidates} random samples: "
                f"{p.best_random_mse:.4f}) · found in {p.elapsed_s:.1f} s, {p.steps} steps. "
                "Left: your drawing as the model sees it; right: what it draws from the code found. "
                "The direction sliders above now also edit it (below).")
        return (png_file(pair, "drawing-vs-model"), note, str(npy), z,
                png_file(enlarge(edited(path, z, alphas)), "drawing-edited"))

    @friendly
    def load(path, file, *alphas):
        if not file:
            return gr.skip(), gr.skip(), gr.skip()
        from gancore.analysis import projection
        model = services.load(path)
        z = projection.load_latent(file, int(model.noise(1).shape[1])).reshape(-1).tolist()
        return z, png_file(enlarge(edited(path, z, alphas)), "latent-edited"), "Latent loaded: the sliders edit it."

    @friendly
    def slide(path, z, *alphas):
        if not z or not path:
            return gr.skip()
        return png_file(enlarge(edited(path, z, alphas)), "drawing-edited")

    # ---- layout ------------------------------------------------------------------------------------
    with gr.Accordion("Draw into the model: find the code for your own picture", open=False,
                      elem_id="explore-draw"):
        gr.Markdown("Draw a digit (or upload a picture for a colour model) and press *Find it*: the studio "
                    "searches the generator's random codes for the one that redraws it, then the direction "
                    "sliders above edit it. Download the code to keep it; load it back later.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                pad = gr.Sketchpad(label="Your drawing", type="numpy", canvas_size=(280, 280), height=340,
                                   brush=gr.Brush(default_size=22, colors=["#000000"], color_mode="fixed"),
                                   layers=False, transforms=(),
                                   placeholder="Pick the brush (left), then draw a digit",
                                   elem_id="draw-pad")
                picture = gr.Image(label="…or a picture (used instead of the drawing while it is here)",
                                   type="numpy", sources=["upload", "clipboard"], height=120,
                                   elem_id="draw-picture")
                find_btn = gr.Button("Find it in the model", variant="primary", elem_id="draw-go")
            with gr.Column(scale=1, min_width=280):
                pair = gr.Image(label="Your drawing · the model's version", interactive=False, format="png",
                                height=200, elem_id="draw-pair")
                note = gr.Markdown(elem_id="draw-note")
                edit_view = gr.Image(label="Edited with the direction sliders", interactive=False, format="png",
                                     height=200, elem_id="draw-edited")
        with gr.Row():
            npy_out = gr.File(label="Download the code (.npy)", interactive=False, elem_id="draw-latent")
            npy_in = gr.File(label="Load a code (.npy or .json)", file_types=[".npy", ".json"],
                             elem_id="draw-load")
        latent = gr.State(None)

    # ---- wiring ------------------------------------------------------------------------------------
    find_btn.click(find, [ckpt, pad, picture, *sliders], [pair, note, npy_out, latent, edit_view], api_name="explore_project",
                   concurrency_id="inference", concurrency_limit=INFERENCE_CONCURRENCY)
    npy_in.upload(load, [ckpt, npy_in, *sliders], [latent, edit_view, note], api_name="explore_load_latent")
    gr.on([s.input for s in sliders], slide, [ckpt, latent, *sliders], edit_view, api_name="explore_edit_latent",
          trigger_mode="always_last", show_progress="hidden")
