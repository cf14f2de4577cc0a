"""Explore tab: sliders over a generator's SeFa latent directions, seed interpolation GIFs, sample grids.

Directions come from `gancore.analysis.latent` (closed-form SeFa, Shen & Zhou 2021), computed once per checkpoint.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr

from studio.ui import INFERENCE_CONCURRENCY, choices_update, enlarge, friendly, png_file, rgb, tile

N_DIRECTIONS = 6
GIF_DIR = Path(tempfile.gettempdir()) / "ganstudio-gifs"


def build(services):
    # ---- plain functions -------------------------------------------------------------------------
    @friendly
    def image(path, seed, truncation, *alphas):
        return png_file(enlarge(services.edited_sample(path, int(seed or 0), float(truncation), alphas)),
                        f"seed{int(seed or 0)}")

    @friendly
    def gif(path, seed_a, seed_b, frames, truncation):
        from PIL import Image
        imgs = services.interpolation(path, int(seed_a or 0), int(seed_b or 0), int(frames), float(truncation))
        pil = [Image.fromarray(rgb(enlarge(im, 192))) for im in imgs]
        pil += pil[-2:0:-1]                      # there and back, so the loop has no jump
        GIF_DIR.mkdir(parents=True, exist_ok=True)
        for old in GIF_DIR.glob("*.gif"):        # Gradio serves its own copy; ours can go after an hour
            if time.time() - old.stat().st_mtime > 3600:
                old.unlink(missing_ok=True)
        out = Path(tempfile.mkstemp(suffix=".gif", prefix=f"interp-{seed_a}-{seed_b}-", dir=GIF_DIR)[1])
        pil[0].save(out, save_all=True, append_images=pil[1:], duration=80, loop=0)
        return str(out), str(out)

    @friendly
    def grid(path, seed, count, truncation):
        return png_file(enlarge(tile(services.samples(path, int(count), int(seed or 0), float(truncation)), rgb=True), 512),
                        f"samples-seed{int(seed or 0)}")

    def refresh(current):
        return choices_update(services.list_checkpoints("noise"), current)

    def reset():
        return [0.0] * N_DIRECTIONS + [1.0]

    # ---- layout ------------------------------------------------------------------------------------
    pairs = []   # filled on page load, so starting the app does not wait for torch
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280):
            ckpt = gr.Dropdown(pairs, value=None, allow_custom_value=True, label="Generator",
                               info="A model that draws images from random numbers. Train one in the Train tab.",
                               elem_id="explore-model")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed",
                             info="Each seed is a different random starting point.")
            truncation = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="Truncation",
                                   info="Below 1: more typical, less varied images. Above 1: more unusual.")
            with gr.Group():
                sliders = [gr.Slider(-5, 5, value=0, step=0.1, label=f"Direction {i + 1}",
                                     info=f"Found automatically (SeFa); rank {i + 1} of {N_DIRECTIONS} by "
                                          "how much it changes the image.",
                                     elem_id=f"explore-dir-{i + 1}")
                           for i in range(N_DIRECTIONS)]
            reset_btn = gr.Button("Reset sliders", size="sm")
        with gr.Column(scale=3, min_width=280):
            out = gr.Image(label="Image (updates while you drag)", interactive=False, height=360,
                           format="png", elem_id="explore-image")
    with gr.Accordion("Interpolate between two seeds (animated GIF)", open=False):
        with gr.Row():
            seed_a = gr.Number(value=0, precision=0, minimum=0, label="From seed", info="Start of the animation.")
            seed_b = gr.Number(value=1, precision=0, minimum=0, label="To seed", info="End of the animation.")
            frames = gr.Slider(2, 48, value=16, step=1, label="Frames", info="More frames: smoother, bigger file.")
        gif_btn = gr.Button("Make GIF")
        with gr.Row():
            gif_view = gr.Image(label="Interpolation", type="filepath", interactive=False, height=240)
            gif_file = gr.File(label="Download GIF", interactive=False)
    with gr.Accordion("Sample grid", open=False):
        with gr.Row():
            count = gr.Slider(4, 64, value=16, step=4, label="Images", info="How many samples to draw.")
        grid_btn = gr.Button("Draw samples")
        grid_out = gr.Image(label="Samples", interactive=False, format="png", height=420)
    from studio.tabs import explore_draw
    explore_draw.build(services, ckpt, sliders)          # a drawing -> its latent code, edited by the sliders

    # ---- wiring ------------------------------------------------------------------------------------
    inputs = [ckpt, seed, truncation, *sliders]
    # Dragging fires many events; "always_last" drops stale ones so the image follows the finger.
    gr.on([s.input for s in sliders] + [truncation.input, seed.change, ckpt.change], image, inputs, out,
          api_name="explore_image", trigger_mode="always_last", show_progress="hidden")
    reset_btn.click(reset, None, [*sliders, truncation], api_name="explore_reset").then(
        image, inputs, out, api_name="explore_image_after_reset", api_visibility="undocumented",
        show_progress="hidden")
    gif_btn.click(gif, [ckpt, seed_a, seed_b, frames, truncation], [gif_view, gif_file],
                  api_name="explore_interpolate", concurrency_id="inference",
                  concurrency_limit=INFERENCE_CONCURRENCY)
    grid_btn.click(grid, [ckpt, seed, count, truncation], grid_out, api_name="explore_grid",
                   concurrency_id="inference", concurrency_limit=INFERENCE_CONCURRENCY)
    return {"refresh": (refresh, ckpt), "first_image": (image, inputs, out)}
