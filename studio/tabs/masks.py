"""Masks tab: hide part of an image and watch a masked-reconstruction model fill it in.

Plain handler functions first (tests call them directly), then `build(services)`.
`services.list_checkpoints(task)` gives (label, path) pairs, `services.load(path)` the loaded model.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from gancore.errors import BadInput

# The engine (torch) is imported inside the handlers, so building the app does not wait for it.

RATIO_CHOICES = (0.25, 0.5, 0.75)
MASK_KINDS = ("random patches", "random pixels", "painted")
DISPLAY_SIDE = 196          # 28 px digits are shown 7x larger, pixels kept sharp


_EXAMPLES: np.ndarray | None = None


def example_digit(index: int = 0) -> np.ndarray:
    """An MNIST test digit (uint8, 28x28) from the copy bundled with gancore."""
    global _EXAMPLES
    if _EXAMPLES is None:
        from gancore.data import load_mnist
        _EXAMPLES = load_mnist("test")[0]
    return _EXAMPLES[int(index) % len(_EXAMPLES)].copy()


def enlarge(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    img = Image.fromarray(np.asarray(image).squeeze().astype(np.uint8))
    s = max(1, side // max(img.size))
    return np.asarray(img.resize((img.width * s, img.height * s), Image.NEAREST))


def editor_parts(value) -> tuple[np.ndarray | None, np.ndarray | None]:
    """gr.ImageEditor value (dict with background / layers / composite) or a plain array ->
    (image, painted alpha or None)."""
    if value is None:
        return None, None
    if isinstance(value, dict):
        image = value.get("background")
        if image is None or (isinstance(image, np.ndarray) and image.size and image.max() == 0
                             and value.get("composite") is not None):
            image = value.get("composite")
        alpha = None
        for layer in value.get("layers") or []:
            if layer is None:
                continue
            layer = np.asarray(layer)
            a = layer[..., 3] if layer.ndim == 3 and layer.shape[-1] == 4 else (layer.max(-1) if layer.ndim == 3 else layer)
            alpha = a if alpha is None else np.maximum(alpha, a)
        return (None if image is None else np.asarray(image)), alpha
    return np.asarray(value), None


def reconstruct(model, image, kind: str = "random patches", ratio: float = 0.5, patch_size: int = 4,
                seed: int = 0, painted=None, opacity: float = 0.6) -> dict:
    """The engine's reconstruction (gancore.analysis.masking.reconstruct_picture), enlarged for display."""
    from gancore.analysis.masking import reconstruct_picture
    r = reconstruct_picture(model, image, kind, ratio, patch_size, seed, painted, opacity)
    return {**r, **{k: enlarge(r[k]) for k in ("mask", "masked", "reconstruction", "original")}}


def summary(result: dict) -> str:
    s = (f"**PSNR on the hidden pixels: {result['psnr_hidden']:.2f} dB** "
         f"(diffusion inpainting: {result['psnr_diffusion']:.2f} dB) · whole image: {result['psnr_whole']:.2f} dB · "
         f"{result['hidden_share'] * 100:.0f} % hidden")
    return s + (f"  \n_{result['note']}_" if result["note"] else "")


# ----------------------------------------------------------------------------------------------------
# UI

def build(services):
    """The tab's content; the app wraps it in its own gr.Tab."""
    import gradio as gr

    from studio.ui import choices_update, friendly

    def refresh(current=None):
        return choices_update(services.list_checkpoints(task="inpaint"), current)

    @friendly
    def on_run(ckpt, editor, kind, ratio, patch, seed, opacity):
        if not ckpt:
            raise BadInput("Choose a masked-reconstruction model first.")
        model = services.load(ckpt)
        image, painted = editor_parts(editor)
        r = reconstruct(model, image, kind, ratio, patch, seed, painted, opacity)
        return r["mask"], r["masked"], r["reconstruction"], r["error"], summary(r)

    @friendly
    def on_example(index):
        return {"background": enlarge(example_digit(int(index or 0))), "layers": [], "composite": None}

    gr.Markdown("Hide part of an image and see what a masked-reconstruction model puts back. "
                "Paint over the image to hide your own region (mask: **painted**).")
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                ckpt = gr.Dropdown([], value=None, allow_custom_value=True, label="Masked-reconstruction model",
                                   elem_id="masks-model", scale=3)
                refresh_btn = gr.Button("Refresh", size="sm", scale=1)
            editor = gr.ImageEditor(type="numpy", label="Image (upload, draw, or load an example; paint to mask)",
                                    image_mode="RGBA", elem_id="masks-editor",
                                    brush=gr.Brush(colors=["#ff0000"], color_mode="fixed", default_size=14))
            with gr.Row():
                example_index = gr.Number(value=0, precision=0, minimum=0, label="MNIST test example #")
                example_btn = gr.Button("Load example", size="sm")
            kind = gr.Radio(list(MASK_KINDS), value="random patches", label="Mask")
            ratio = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Mask ratio (share hidden)")
            patch = gr.Slider(1, 14, value=4, step=1, label="Patch size (pixels)")
            seed = gr.Number(value=0, precision=0, label="Mask seed")
            opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Error map opacity")
            run = gr.Button("Reconstruct", variant="primary", elem_id="masks-run")
        with gr.Column(scale=2):
            with gr.Row():
                out_mask = gr.Image(label="Mask (white = hidden)", type="numpy")
                out_masked = gr.Image(label="Masked input", type="numpy")
            with gr.Row():
                out_rec = gr.Image(label="Reconstruction", type="numpy")
                out_err = gr.Image(label="Error map |reconstruction - input|", type="numpy")
            out_text = gr.Markdown(elem_id="masks-psnr")

    refresh_btn.click(refresh, ckpt, ckpt, api_name="masks_refresh")
    example_btn.click(on_example, example_index, editor, api_name="masks_example")
    run.click(on_run, [ckpt, editor, kind, ratio, patch, seed, opacity],
              [out_mask, out_masked, out_rec, out_err, out_text], api_name="masks_reconstruct")
    # The app fills the model list and the first example when the page loads.
    return {"refresh": (refresh, ckpt), "example": (on_example, example_index, editor)}
