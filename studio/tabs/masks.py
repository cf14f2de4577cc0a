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


class MaskError(BadInput):
    """An input the tab cannot use; the message is shown to the user as is."""


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


def prepare_image(image, size: int, channels: int):
    """uint8 array / PIL -> (1, C, size, size) in [-1, 1], and a note. Light backgrounds are inverted,
    since MNIST digits are light strokes on black."""
    from gancore.data import to_tensor
    if image is None:
        raise MaskError("Choose an image first: upload one, draw one, or pick an example digit.")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise MaskError("That does not look like an image.")
    pil = Image.fromarray(arr.astype(np.uint8))
    if pil.mode in ("RGBA", "LA"):
        bg = Image.new("RGBA", pil.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(bg, pil.convert("RGBA"))
    pil = pil.convert("L" if channels == 1 else "RGB")
    w, h = pil.size
    side = min(w, h)
    pil = pil.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    note = ""
    if (w, h) != (size, size):
        pil = pil.resize((size, size), Image.BOX if side > size else Image.NEAREST)
        note = f"resized from {w}x{h} to {size}x{size}"
    x = np.asarray(pil)
    if channels == 1 and x.mean() > 127:
        x = 255 - x
        note = (note + "; " if note else "") + "inverted (light background)"
    return to_tensor(x).unsqueeze(0), note


def make_mask(kind: str, ratio: float, patch_size: int, seed: int, size: int, painted=None):
    """(1, 1, size, size) tensor with 1 = hidden."""
    import torch
    from gancore import masking
    if kind == "painted":
        if painted is None or np.asarray(painted).max() == 0:
            raise MaskError("Paint over the part of the image to hide, or choose a random mask.")
        return masking.mask_from_array(painted, size, size, threshold=0.1)
    g = torch.Generator().manual_seed(int(seed))
    mk = "pixel" if kind == "random pixels" else "patch"
    return masking.random_mask(mk, 1, size, size, float(ratio), int(patch_size), generator=g)


def _uint8(x) -> np.ndarray:
    """(1, C, H, W) in [-1, 1] -> uint8 HW (grey) or HWC."""
    img = ((x.detach().float().clamp(-1, 1)[0] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return img[..., 0] if img.shape[-1] == 1 else img


def reconstruct(model, image, kind: str = "random patches", ratio: float = 0.5, patch_size: int = 4,
                seed: int = 0, painted=None, opacity: float = 0.6) -> dict:
    """Mask, masked input, reconstruction, error map (uint8) and PSNR numbers for one image."""
    import torch
    from gancore import masking
    from gancore.explain import overlay

    if getattr(model, "task", "") != "inpaint":
        raise MaskError("This model does not reconstruct masked images; choose a masked-reconstruction model.")
    cfg = model.config
    x, note = prepare_image(image, cfg.image_size, cfg.image_channels)
    mask = make_mask(kind, ratio, patch_size, seed, cfg.image_size, painted)
    device = next(model.parameters()).device
    with torch.no_grad():
        rec = model.inpaint(x.to(device), mask.to(device)).cpu().clamp(-1, 1)
    baseline = masking.diffusion_fill(x, mask)
    err = (rec - x).abs().mean(1)[0].div(2).numpy()                    # (H, W) in [0, 1]
    share = float(mask.mean())
    psnr_hidden = float(masking.psnr(rec, x, mask)[0])
    psnr_whole = float(masking.psnr(rec, x)[0])
    psnr_base = float(masking.psnr(baseline, x, mask)[0])
    masked = masking.mask_image(x, mask, 0.0)                           # hidden pixels mid-grey
    orig = _uint8(x)
    return {
        "mask": enlarge((mask[0, 0].numpy() * 255).astype(np.uint8)),
        "masked": enlarge(_uint8(masked)),
        "reconstruction": enlarge(_uint8(rec)),
        "original": enlarge(orig),
        "error": overlay(orig, err / max(err.max(), 1e-6), opacity=opacity, label="err"),
        "psnr_hidden": psnr_hidden, "psnr_whole": psnr_whole, "psnr_diffusion": psnr_base,
        "hidden_share": share, "note": note,
    }


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
    from gradio.context import Context

    from studio.ui import choices_update, friendly

    def refresh(current=None):
        return choices_update(services.list_checkpoints(task="inpaint"), current)

    @friendly
    def on_run(ckpt, editor, kind, ratio, patch, seed, opacity):
        if not ckpt:
            raise MaskError("Choose a masked-reconstruction model first.")
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
    root = Context.root_block
    if root is not None:   # fill the model list and the first example when the page loads
        root.load(refresh, ckpt, ckpt, api_name="masks_models_on_load", api_visibility="undocumented")
        root.load(on_example, example_index, editor, api_name="masks_example_on_load",
                  api_visibility="undocumented")
    return {"refresh": (refresh, ckpt)}
