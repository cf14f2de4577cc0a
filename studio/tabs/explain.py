"""Explain tab: heatmaps of why a discriminator decides what it decides, what a CycleGAN changes, and which
pixels a latent direction moves.

Plain handler functions first (tests call them directly), then `build(services)`.
`services.list_checkpoints(task)` gives (label, path) pairs, `services.load(path)` the loaded model.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from gancore.errors import BadInput

# The engine (torch) is imported inside the handlers, so building the app does not wait for it; the
# method names are plain data the engine also uses.
DISCRIMINATOR_METHODS = ("Saliency", "Integrated Gradients", "Occlusion", "Learned mask")
CYCLEGAN_METHODS = ("PatchGAN real/fake map", "Change |output - input|", "Cycle error")
LATENT_METHOD = "Latent directions (SeFa)"
ALL_METHODS = list(DISCRIMINATOR_METHODS) + list(CYCLEGAN_METHODS) + [LATENT_METHOD]


def _engine():
    from gancore.analysis import explain
    return explain


def save_download(result: dict, folder: str | None = None) -> str:
    """The overlay as PNG and the raw heatmap as .npy beside it; returns the PNG path."""
    if folder is None:       # one scratch folder per download, removed after an hour (Gradio keeps its copy)
        from studio.ui import SCRATCH, _prune
        SCRATCH.mkdir(parents=True, exist_ok=True)
        _prune(SCRATCH, 3600)
        folder = tempfile.mkdtemp(prefix="explain_", dir=SCRATCH)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / "explanation.png"
    Image.fromarray(result["overlay"]).save(png)
    np.save(folder / "heatmap.npy", result["heatmap"])
    return str(png)


# ----------------------------------------------------------------------------------------------------
# UI

def build(services):
    """The tab's content; the app wraps it in its own gr.Tab."""
    import gradio as gr
    from gradio.context import Context

    from studio.ui import choices_update, friendly

    def refresh(current=None):
        return choices_update(services.list_checkpoints(), current)

    def load(ckpt):
        from gancore.analysis.explain import has_discriminators
        if not ckpt:
            raise BadInput("Choose a model first.")
        model = services.load(ckpt)
        return model, has_discriminators(model, ckpt)

    @friendly
    def on_model(ckpt):
        if not ckpt:
            return gr.skip(), gr.skip()
        model, _ = load(ckpt)
        ms = _engine().methods_for(model)
        return (gr.Dropdown(choices=ms, value=ms[0]),
                gr.CheckboxGroup(choices=[m for m in ms if m != LATENT_METHOD]))

    @friendly
    def on_generate(ckpt, seed):
        model, _ = load(ckpt)
        return _engine().generate(model, seed)

    @friendly
    def on_explain(ckpt, image, method, opacity, direction, epochs, lr, seed):
        model, has_d = load(ckpt)
        if method == LATENT_METHOD:
            results = _engine().latent_directions(model, seed, opacity)
            r = results[0]
            return r["overlay"], r["caption"], save_download(r), [(q["overlay"], q["caption"]) for q in results]
        r = _engine().explain_one(model, image, method, opacity, direction, epochs, lr, seed, has_discriminator=has_d)
        return r["overlay"], r["caption"], save_download(r), []

    @friendly
    def on_compare(ckpt, image, methods, opacity, direction):
        model, has_d = load(ckpt)
        return [(r["overlay"], r["caption"]) for r in _engine().compare(model, image, methods, opacity, direction, has_d)]

    @friendly
    def on_example(index):
        from studio.tabs.masks import enlarge, example_digit
        return enlarge(example_digit(int(index or 0)))

    gr.Markdown("Why does a discriminator call an image real or fake? Bright = matters most. For CycleGAN: what "
                "the generator changes and where the cycle fails; for noise models: which pixels a latent "
                "direction moves.")
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                ckpt = gr.Dropdown([], value=None, allow_custom_value=True, label="Model", elem_id="explain-model",
                                   scale=3)
                refresh_btn = gr.Button("Refresh", size="sm", scale=1)
            image = gr.Image(type="numpy", label="Image (upload, example digit, or generate)", elem_id="explain-image")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed / example #")
                gen_btn = gr.Button("Generate", size="sm")
                example_btn = gr.Button("Example digit", size="sm")
            # Every method is a valid choice at build time (the API may pick any); choosing a model narrows the list.
            method = gr.Dropdown(ALL_METHODS, value="Saliency", label="Method", elem_id="explain-method")
            direction = gr.Radio(["AB", "BA"], value="AB", label="CycleGAN direction (AB: the image is domain A)")
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heatmap opacity")
            with gr.Accordion("Learned mask settings", open=False):
                epochs = gr.Slider(5, 200, value=50, step=5, label="Epochs")
                lr = gr.Number(value=0.01, label="Learning rate")
            run = gr.Button("Explain", variant="primary", elem_id="explain-run")
        with gr.Column(scale=2):
            out = gr.Image(label="Heatmap overlay", type="numpy", elem_id="explain-overlay")
            caption = gr.Markdown(elem_id="explain-caption")
            download = gr.DownloadButton("Download PNG")
            gallery = gr.Gallery(label="Latent directions", columns=4, height="auto")
            compare_methods = gr.CheckboxGroup(ALL_METHODS[:-1], value=["Saliency", "Integrated Gradients"],
                                               label="Compare methods")
            compare_btn = gr.Button("Compare side by side")
            compare_gallery = gr.Gallery(label="Side by side", columns=4, height="auto")

    refresh_btn.click(refresh, ckpt, ckpt, api_name="explain_refresh")
    ckpt.change(on_model, ckpt, [method, compare_methods], api_name="explain_methods")
    gen_btn.click(on_generate, [ckpt, seed], image, api_name="explain_generate")
    example_btn.click(on_example, seed, image, api_name="explain_example")
    run.click(on_explain, [ckpt, image, method, opacity, direction, epochs, lr, seed],
              [out, caption, download, gallery], api_name="explain")
    compare_btn.click(on_compare, [ckpt, image, compare_methods, opacity, direction], compare_gallery,
                      api_name="explain_compare")
    root = Context.root_block
    if root is not None:
        root.load(refresh, ckpt, ckpt, api_name="explain_models_on_load", api_visibility="undocumented")
    return {"refresh": (refresh, ckpt)}
