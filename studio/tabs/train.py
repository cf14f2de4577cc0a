"""Train tab: pick a model and data, give a time budget, watch progress, losses and samples.

The run lives in `Services` (a background thread), so reloading the page shows it where it is; a
`gr.Timer` polls its state once a second while it runs.
"""
from __future__ import annotations

import html

import gradio as gr

from gancore.catalog import batch_size as recipe_batch_size
from gancore.catalog import learning_rate, studio_models, task_of
from studio.ui import friendly, png_file

DATA = [("MNIST handwritten digits (bundled)", "mnist"), ("My images (upload a .zip)", "upload")]
ACTIVE = ("running", "stopping")


def _fmt_time(s) -> str:
    if s is None:
        return "estimating…"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress_html(st: dict) -> str:
    """A progress bar with step, percent, ETA and speed, as plain HTML (no JavaScript)."""
    pct = round(100 * st["progress"])
    status = st["status"]
    if status == "idle":
        detail = "No run yet. Choose a model and data, then press Start."
    else:
        parts = [f"step {st['step']}", f"{pct}%"]
        if status in ACTIVE:
            parts.append(f"ETA {_fmt_time(st['eta_s'])}")
        else:
            parts.append(f"took {_fmt_time(st['elapsed_s'])}")
        if st["images_per_s"]:
            parts.append(f"{st['images_per_s']:.0f} images/s")
        detail = " · ".join(parts)
    return (f'<div class="gs-progress" data-status="{status}">'
            f'<div class="gs-bar"><div class="gs-fill gs-{status}" style="width:{pct}%"></div></div>'
            f'<div class="gs-progress-text"><b>{html.escape(status.capitalize())}</b> · {html.escape(detail)}</div>'
            f'</div>')


PALETTE = ["#4f46e5", "#ea580c", "#16a34a", "#db2777", "#0891b2", "#ca8a04", "#7c3aed", "#64748b"]


def losses_frame(st: dict):
    """Long-format losses for gr.LinePlot, or None before the first logged step."""
    if not st["losses"]:
        return None
    import pandas as pd
    return pd.DataFrame(st["losses"], columns=["step", "loss", "value"])


def losses_plot(st: dict):
    # An explicit colour map per update: the plot otherwise keeps the colour domain of its first data
    # and draws nothing for loss names it has not seen (a new model has other losses).
    df = losses_frame(st)
    names = [] if df is None else list(dict.fromkeys(df["loss"]))
    return gr.LinePlot(value=df, color_map={n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)} or None)


def quality_plot(st: dict):
    """KID x100 against the held-out pictures per check (lower is better), or None before the first."""
    if not st["quality"]:
        return gr.LinePlot(value=None)
    import pandas as pd
    rows = []
    for p in st["quality"]:
        rows.append({"step": p["step"], "value": p["kid"], "series": "KID ×100"})
        if "identity" in p:          # a translator: what copying would score, and how much it changes
            rows.append({"step": p["step"], "value": p["photo_kid"], "series": "KID ×100 of the photos unchanged"})
            rows.append({"step": p["step"], "value": 100 * p["identity"], "series": "change, % of the pixel range"})
    return gr.LinePlot(value=pd.DataFrame(rows))


def verdict_html(st: dict) -> str:
    """The quality history in words: a collapse as a warning, "no result yet" neutrally, progress in green."""
    text = st.get("verdict") or ""
    if not text:
        return ""
    kind = st.get("verdict_kind", "ok")
    return f'<div class="gs-verdict gs-verdict-{kind}" data-kind="{kind}">{html.escape(text)}</div>'


def build(services):
    # ---- plain functions -------------------------------------------------------------------------
    last = {}   # the latest sample grid's file, written once and then served to every polling page

    def grid_file(grid):
        if grid is None:
            return None
        if last.get("grid") is not grid:
            last.update(grid=grid, path=png_file(grid, "samples"))
        return last["path"]

    def poll():
        st = services.training_state()
        message = services.shown(st["message"] or "")
        if st["status"] == "finished":
            message = f"**Done.** {message}"
        elif st["status"] == "failed":
            message = f"**Stopped with a problem.** {message}"
        running = st["status"] in ACTIVE
        return (progress_html(st), losses_plot(st), grid_file(st["grid"]),
                message, gr.Timer(active=running), quality_plot(st), verdict_html(st),
                gr.Button(interactive=not running), gr.Button(interactive=running))

    @friendly
    def start(model, data, upload, upload_b, unit, budget, batch_size, lr, image_size, run_name):
        budget = float(budget or 0)
        steps, minutes = (int(budget), 0) if unit == "steps" else (0, budget)
        name = services.start_training(model=model, data=data, upload=_path(upload), upload_b=_path(upload_b),
                                       steps=steps, minutes=minutes, batch_size=int(batch_size), lr=float(lr),
                                       image_size=int(image_size or 0), run_name=run_name or "")
        return (f"Started **{name}**. You can leave this page; the run keeps going.", gr.Timer(active=True),
                gr.Button(interactive=False), gr.Button(interactive=True))

    @friendly
    def resume(path):
        if not path:
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip())
        name = services.resume_training(path)
        return (f"Resuming **{name}** from its last checkpoint.", gr.Timer(active=True),
                gr.Button(interactive=False), gr.Button(interactive=True))

    def interrupted(current=None):
        pairs = services.interrupted_runs()
        values = [v for _, v in pairs]
        return gr.Dropdown(choices=pairs, value=current if current in values else (values[0] if values else None),
                           visible=bool(pairs)), gr.Button(visible=bool(pairs))

    def stop():
        if services.stop_training():
            return "Stopping after the current step; the model so far is saved."
        return "Nothing is running."

    def on_model(model):
        # A translator learns from two picture sets; the digit set makes no sense for it, a second upload does.
        two = task_of(model) == "translate"
        return (gr.Radio(value="upload" if two else "mnist", interactive=not two),
                gr.File(visible=True) if two else gr.File(),
                gr.File(visible=two),
                gr.Slider(value=recipe_batch_size(model, "upload" if two else "mnist")),
                gr.Number(value=learning_rate(model)))

    def on_data(data, model):
        # Digits and the user's own pictures have their own measured learning rate and batch size.
        if task_of(model) == "translate":
            return gr.File(visible=True), gr.skip(), gr.skip()
        return (gr.File(visible=data == "upload"), gr.Slider(value=recipe_batch_size(model, data)),
                gr.Number(value=learning_rate(model, data)))

    # ---- layout ------------------------------------------------------------------------------------
    gr.Markdown("Train a small GAN on this computer. Start with the defaults: a DCGAN on digits shows "
                "recognisable samples after a minute.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            model = gr.Radio(studio_models(), value="dcgan", label="Model",
                             info="What kind of GAN to train. DCGAN is the best first choice.")
            data = gr.Radio(DATA, value="mnist", label="Training images",
                            info="Bundled digits work right away; a zip of your own images (jpg/png) also works.")
            upload = gr.File(label="Images (.zip)", file_types=[".zip"], visible=False, type="filepath",
                             elem_id="train-upload")
            upload_b = gr.File(label="Second image set: what the first should become (.zip)", file_types=[".zip"],
                               visible=False, type="filepath", elem_id="train-upload-b")
            with gr.Row():
                unit = gr.Radio(["minutes", "steps"], value="steps", label="Budget in",
                                info="Stop after a time or after a number of training steps.")
                budget = gr.Number(value=300, minimum=1, label="Budget", elem_id="train-budget",
                                   info="300 steps take about a minute on digits, 2–3 minutes on your own "
                                        "pictures (laptop CPU).")
            with gr.Accordion("More settings", open=False):
                batch_size = gr.Slider(1, 256, value=64, step=1, label="Batch size",
                                       info="Images per step; larger is smoother but slower per step.")
                lr = gr.Number(value=learning_rate("dcgan"), label="Learning rate", minimum=1e-6, maximum=1e-2,
                               info="How big each update is; each model starts at the value measured best for it.")
                image_size = gr.Dropdown([("automatic", 0), ("28 px", 28), ("32 px", 32), ("64 px", 64)],
                                         value=0, label="Image size",
                                         info="Automatic: 28 px for digits, 32 px for your images (64 for CycleGAN).")
                run_name = gr.Textbox(label="Run name", placeholder="automatic (model and time)",
                                      info="Folder name for this run; letters, digits, - and _.")
            with gr.Row():
                start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop_btn = gr.Button("Stop", variant="stop", interactive=False, elem_id="train-stop")
            note = gr.Markdown(elem_id="train-note")
            with gr.Row():
                # Runs that were stopped, killed or cut short by a restart: pick one to continue it.
                unfinished = gr.Dropdown([], value=None, label="Unfinished runs", visible=False, scale=3,
                                         elem_id="train-unfinished", allow_custom_value=True)
                resume_btn = gr.Button("Resume", visible=False, scale=1, elem_id="train-resume")
        with gr.Column(scale=3, min_width=300):
            # Idle until the page loads and asks for its visitor's run.
            bar = gr.HTML(progress_html({"status": "idle", "progress": 0.0}), elem_id="train-progress")
            grid = gr.Image(label="Samples (refresh while training)", interactive=False, height=320,
                            elem_id="train-grid", format="png")
            verdict = gr.HTML("", elem_id="train-verdict")
            with gr.Row(equal_height=True):
                plot = gr.LinePlot(None, x="step", y="value", color="loss", label="Losses", show_label=True,
                                   height=300, y_title="loss", x_title="training step", elem_id="train-losses")
                qplot = gr.LinePlot(None, x="step", y="value", color="series", show_label=True, height=300,
                                    x_title="training step",
                                    y_title="KID ×100 (lower is better)", elem_id="train-quality",
                                    label="Quality: KID ×100 vs held-out")
    timer = gr.Timer(1.0, active=False)

    # ---- wiring ------------------------------------------------------------------------------------
    polled = [bar, plot, grid, note, timer, qplot, verdict, start_btn, stop_btn]
    model.change(on_model, model, [data, upload, upload_b, batch_size, lr], api_name="train_model_changed",
                 api_visibility="undocumented")
    data.change(on_data, [data, model], [upload, batch_size, lr], api_name="train_data_changed",
                api_visibility="undocumented")
    start_btn.click(start, [model, data, upload, upload_b, unit, budget, batch_size, lr, image_size, run_name],
                    [note, timer, start_btn, stop_btn], api_name="train_start", concurrency_limit=1)
    stop_btn.click(stop, None, note, api_name="train_stop", concurrency_limit=None)
    resume_btn.click(resume, unfinished, [note, timer, start_btn, stop_btn], api_name="train_resume",
                     concurrency_limit=1)
    timer.tick(poll, None, polled, api_name="train_poll", concurrency_limit=None, show_progress="hidden")
    return {"poll": (poll, polled), "unfinished": (interrupted, unfinished, [unfinished, resume_btn])}


def _path(f) -> str:
    if not f:
        return ""
    return f if isinstance(f, str) else getattr(f, "name", "") or ""
