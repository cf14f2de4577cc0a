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
from gancore.imaging import overlay, seeded, small_square, to_tensor

# What people see -> what the engine computes (`gancore.analysis.explain`).
DISCRIMINATOR_METHODS = {"Saliency": "saliency", "Integrated Gradients": "integrated_gradients",
                         "Occlusion": "occlusion", "Learned mask": "learned_mask"}
CYCLEGAN_METHODS = {"PatchGAN real/fake map": "realness", "Change |output - input|": "change",
                    "Cycle error": "cycle_error"}
LATENT_METHOD = "Latent directions (SeFa)"
ALL_METHODS = list(DISCRIMINATOR_METHODS) + list(CYCLEGAN_METHODS) + [LATENT_METHOD]
EXPLAIN_MAX_SIDE = 128      # photos are explained at this longer side: gradient methods stay near 1 s on CPU


def _engine():
    """The explainers (torch, captum), imported on first use so that building the app does not wait for them."""
    from gancore.analysis import explain
    return explain


# ----------------------------------------------------------------------------------------------------
# One picture, one method (uint8 overlays, captions, figures)

def methods_for(model) -> list[str]:
    task = getattr(model, "task", "")
    methods = list(DISCRIMINATOR_METHODS)
    if task == "translate":
        methods = list(CYCLEGAN_METHODS) + methods
    if task == "noise":
        methods = methods + [LATENT_METHOD]
    return methods


def prepare(model, image):
    """User image -> (1, C, H, W) tensor in the model's format, and the uint8 image it shows."""
    if image is None:
        raise BadInput("Choose an image first: upload one, pick an example, or generate one.")
    cfg = model.config
    if model.task != "translate":
        shown, _ = small_square(image, cfg.image_size, cfg.image_channels)
        return to_tensor(shown).unsqueeze(0), shown
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise BadInput("That does not look like an image.")
    pil = Image.fromarray(arr.astype(np.uint8)).convert("L" if cfg.image_channels == 1 else "RGB")
    s = min(1.0, EXPLAIN_MAX_SIDE / max(pil.size))
    m = max(1, model.size_multiple)
    w, h = max(8, round(pil.width * s)) // m * m, max(8, round(pil.height * s)) // m * m
    shown = np.asarray(pil.resize((w, h), Image.BICUBIC))
    return to_tensor(shown).unsqueeze(0), shown


def generate(model, seed: int = 0) -> np.ndarray:
    """A fresh sample from a noise model (uint8)."""
    from gancore.inference import sample
    if getattr(model, "task", "") != "noise":
        raise BadInput("Only noise models generate images; upload an image instead.")
    return sample(model, n=1, seed=int(seed))[0].squeeze()


def explain_one(model, image, method: str, opacity: float = 0.5, direction: str = "AB", epochs: int = 50,
                lr: float = 0.01, seed: int = 0, has_discriminator: bool = True) -> dict:
    """One method on one image: {"overlay": uint8, "heatmap": float (H, W), "caption": str, "info": dict}."""
    if method == LATENT_METHOD:
        return latent_directions(model, seed, opacity)[0]
    x, shown = prepare(model, image)
    if method in CYCLEGAN_METHODS:
        return _cyclegan_map(model, x, shown, method, opacity, direction, has_discriminator)
    if method not in DISCRIMINATOR_METHODS:
        raise BadInput(f"Unknown method {method!r}.")
    if not has_discriminator:
        raise BadInput("This checkpoint holds no discriminator, so there is no decision to explain.")
    key = DISCRIMINATOR_METHODS[method]
    kwargs = {"epochs": int(epochs), "lr": float(lr)} if key == "learned_mask" else {}
    # The discriminator that judges the explained image (CycleGAN: the one of the input's domain).
    judge = model.discriminator(direction if model.directions().get(direction) else None, "input")
    e = _engine().explain(judge, x, key, **kwargs)
    info = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.info.items()}
    caption = f"{method}: D score {e.info['score']:+.2f} ({'real' if e.info['score'] >= 0 else 'fake'})"
    if "delta" in e.info:
        caption += f", completeness delta {e.info['delta']:.3g}"
    if "kept_share" in e.info:
        caption += f", keeps {e.info['kept_share'] * 100:.0f} % of the image, decision kept: {e.info['decision_kept']}"
    return {"overlay": overlay(shown, e.heatmap, opacity), "heatmap": e.heatmap, "caption": caption, "info": info}


def _cyclegan_map(model, x, shown, method: str, opacity: float, direction: str, has_discriminator: bool) -> dict:
    if getattr(model, "task", "") != "translate":
        raise BadInput(f"{method} needs a CycleGAN model.")
    key = CYCLEGAN_METHODS[method]
    if key == "realness" and not has_discriminator:
        raise BadInput("This checkpoint holds no discriminators, so it has no real/fake map.")
    maps = _engine().cyclegan_maps(model, x, direction, realness=key == "realness")
    heat = maps[key]
    if key == "realness":
        info = {"realness_mean": round(maps["realness_mean"], 3)}
        caption = f"{method} (mean {maps['realness_mean']:.2f}; 1 = looks real)"
        shown = ((maps["output"][0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    else:
        # Absolute units (share of the value range) in the caption; the display is scaled to its maximum.
        info = {"mean": round(float(heat.mean()), 4), "max": round(float(heat.max()), 4)}
        caption = f"{method}: mean {heat.mean() * 100:.1f} %, max {heat.max() * 100:.0f} % of the value range"
        heat = heat / max(float(heat.max()), 1e-6)
    return {"overlay": overlay(shown, heat, opacity), "heatmap": heat, "caption": caption, "info": info}


def latent_directions(model, seed: int = 0, opacity: float = 0.5, k: int = 4) -> list[dict]:
    """Which pixels each of the top-k SeFa directions moves, for the sample drawn with `seed`."""
    from gancore.analysis.latent import sefa_directions
    if getattr(model, "task", "") != "noise":
        raise BadInput("Latent directions need a noise model (MLP GAN or DCGAN).")
    z = model.noise(1, generator=seeded(seed))
    dirs, _ = sefa_directions(model.generator(), k)
    maps = _engine().direction_maps(model.generator(), z, dirs, step=2.0)
    shown = generate(model, seed)
    return [{"overlay": overlay(shown, m, opacity), "heatmap": m, "caption": f"SeFa direction {i}", "info": {}}
            for i, m in enumerate(maps)]


def compare(model, image, methods: list[str], opacity: float = 0.5, direction: str = "AB",
            has_discriminator: bool = True) -> list[dict]:
    """Several methods side by side (same image, same opacity)."""
    if not methods:
        raise BadInput("Pick at least one method to compare.")
    out = []
    for m in methods:
        if m == LATENT_METHOD:
            continue
        out.append(explain_one(model, image, m, opacity, direction, has_discriminator=has_discriminator))
    return out


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

    from studio.ui import choices_update, friendly

    def refresh(current=None):
        return choices_update(services.list_checkpoints(), current)

    def load(ckpt):
        if not ckpt:
            raise BadInput("Choose a model first.")
        model = services.load(ckpt)
        return model, _engine().has_discriminators(model, ckpt)

    @friendly
    def on_model(ckpt):
        if not ckpt:
            return gr.skip(), gr.skip()
        model, _ = load(ckpt)
        ms = methods_for(model)
        return (gr.Dropdown(choices=ms, value=ms[0]),
                gr.CheckboxGroup(choices=[m for m in ms if m != LATENT_METHOD]))

    @friendly
    def on_generate(ckpt, seed):
        model, _ = load(ckpt)
        return generate(model, seed)

    @friendly
    def on_explain(ckpt, image, method, opacity, direction, epochs, lr, seed):
        model, has_d = load(ckpt)
        if method == LATENT_METHOD:
            results = latent_directions(model, seed, opacity)
            r = results[0]
            return r["overlay"], r["caption"], save_download(r), [(q["overlay"], q["caption"]) for q in results]
        r = explain_one(model, image, method, opacity, direction, epochs, lr, seed, has_discriminator=has_d)
        return r["overlay"], r["caption"], save_download(r), []

    @friendly
    def on_compare(ckpt, image, methods, opacity, direction):
        model, has_d = load(ckpt)
        return [(r["overlay"], r["caption"]) for r in compare(model, image, methods, opacity, direction, has_d)]

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
    return {"refresh": (refresh, ckpt)}          # the app fills the model list when the page loads
