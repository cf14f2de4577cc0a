"""Translate tab: a translator (CUT, Park et al. 2020, or CycleGAN, Zhu et al. 2017) turns a photo from one
domain into the other.

Input, output and the cycle reconstruction (output translated back) side by side.
"""
from __future__ import annotations

import gradio as gr

from studio.services import EXAMPLES_DIR
from studio.ui import INFERENCE_CONCURRENCY, LOOKUP, choices_update, friendly, photo_input, png_file

DIRECTIONS = [("Horse → zebra (A → B)", "AB"), ("Zebra → horse (B → A)", "BA")]


def build(services):
    # ---- plain functions -------------------------------------------------------------------------
    @friendly
    def run(path, image, direction, cycle, strength=100):
        out = services.translate(path, image, direction, cycle, float(strength) / 100)
        engine = {"onnxruntime": "ONNX Runtime", "pytorch": "PyTorch"}.get(out.get("backend"), "PyTorch")
        note = f"**{out['ms']:.0f} ms** on this machine ({engine}; {services.label(path)})."
        if out.get("round_trip_ms"):
            note += f" Translating it back took {out['round_trip_ms']:.0f} ms more."
        if out["note"]:
            note += f" {out['note']}."
        if cycle:
            note += (" The right image is the output translated back: the closer it is to your photo, the more "
                     "the model kept of it.")
        rec = out["reconstruction"]
        return (png_file(out["output"], "translated"), png_file(rec, "translated-back") if rec is not None else None,
                note)

    def auto(path, image, direction, cycle, strength=100):
        if image is None or not path:
            return gr.skip(), gr.skip(), gr.skip()
        return run(path, image, direction, cycle, strength)

    def refresh(current):
        return choices_update(services.list_checkpoints("translate"), current)

    @friendly
    def directions_of(path, current):
        """The chosen model's own words for its directions (a one-way model says which way it does not go)."""
        if not path:
            return gr.skip()
        return gr.update(choices=services.translation_directions(path), value=current or "AB")

    # ---- layout ------------------------------------------------------------------------------------
    pairs = []   # filled on page load, so starting the app does not wait for torch
    with gr.Row():
        ckpt = gr.Dropdown(pairs, value=None, allow_custom_value=True, label="Translation model",
                           info="A CUT or CycleGAN translator; the shipped one turns horses into zebras and back.",
                           elem_id="translate-model", scale=2)
        direction = gr.Radio(DIRECTIONS, value="AB", label="Direction",
                             info="Which way to translate.", elem_id="translate-direction", scale=2)
        cycle = gr.Checkbox(value=True, label="Show the round trip",
                            info="Also translate the result back, to see what the model kept.", scale=1)
    strength = gr.Slider(0, 100, value=100, step=5, label="Strength (%)", elem_id="translate-strength",
                         info="0 %: your photo as it is; 100 %: the full translation; in between, a blend of the two.")
    with gr.Row(equal_height=True):
        image = photo_input(label="Your photo", sources=["upload", "clipboard", "webcam"],
                         height=300, elem_id="translate-input")
        output = gr.Image(label="Translated", interactive=False, format="png", height=300,
                          elem_id="translate-output")
        recon = gr.Image(label="Translated back", interactive=False, format="png", height=300,
                         elem_id="translate-recon")
    go = gr.Button("Translate", variant="primary", elem_id="translate-go")
    note = gr.Markdown()
    photos = sorted(EXAMPLES_DIR.glob("*.jpg"))
    examples = gr.Examples([[str(p), "AB" if p.name.startswith("horse") else "BA"] for p in photos],
                           inputs=[image, direction],
                           label="Examples: horse2zebra test photos (ImageNet; Zhu et al. 2017). Click one to "
                                 "translate it.",
                           api_name="translate_load_example", elem_id="translate-examples", examples_per_page=5)
    from studio.tabs import translate_live
    translate_live.build(services, ckpt, direction)          # webcam and video clips

    # ---- wiring ------------------------------------------------------------------------------------
    # A photo given before the page has filled the model list (or any photo, when the model changes) is
    # translated as soon as there is a model.
    ckpt.change(directions_of, [ckpt, direction], [direction], api_name="translate_directions",
                api_visibility="undocumented").then(
        auto, [ckpt, image, direction, cycle, strength], [output, recon, note], api_name="translate_on_model",
        api_visibility="undocumented", concurrency_id="inference", concurrency_limit=INFERENCE_CONCURRENCY)
    # An example sets the direction with the choices the page was built with: the model's own words again.
    examples.load_input_event.then(directions_of, [ckpt, direction], [direction], api_name="translate_example_directions",
                                   api_visibility="undocumented", concurrency_id=LOOKUP, concurrency_limit=None)
    go.click(run, [ckpt, image, direction, cycle, strength], [output, recon, note], api_name="translate",
             concurrency_id="inference", concurrency_limit=INFERENCE_CONCURRENCY)
    strength.release(auto, [ckpt, image, direction, cycle, strength], [output, recon, note],
                     api_name="translate_strength", api_visibility="undocumented", trigger_mode="always_last",
                     concurrency_id="inference", concurrency_limit=INFERENCE_CONCURRENCY)
    # A new photo (upload, paste, webcam or example click) translates at once; clearing it does nothing.
    image.change(auto, [ckpt, image, direction, cycle, strength], [output, recon, note], api_name="translate_on_change",
                 api_visibility="undocumented", trigger_mode="always_last",
                 concurrency_id="inference", concurrency_limit=INFERENCE_CONCURRENCY)
    return {"refresh": (refresh, ckpt)}
