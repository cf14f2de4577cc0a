"""Models tab: every checkpoint in weights/ and the runs folder, its header, rename and delete.

Only files inside the runs folder can be renamed or deleted; shipped weights stay as they are, and a
name with a path in it is refused (`Services.rename` / `Services.delete` check both).
"""
from __future__ import annotations

import gradio as gr

from studio.ui import choices_update, friendly

COLUMNS = ["name", "folder", "model", "task", "created", "size_mb", "steps", "metrics"]
HEADERS = ["Name", "Folder", "Model", "Task", "Created", "Size (MB)", "Steps", "Metrics"]


def build(services):
    # ---- plain functions -------------------------------------------------------------------------
    def table():
        import pandas as pd
        rows = services.models_table()
        return pd.DataFrame([[r[c] for c in COLUMNS] for r in rows], columns=HEADERS)

    def listing(current=None):
        pairs = services.list_checkpoints()
        return table(), choices_update(pairs, current)

    @friendly
    def header(path):
        if not path:
            return {}
        return dict(services.header(services.resolve(path)))

    @friendly
    def rename(path, new_name):
        new = services.rename(path, new_name)
        t, dd = listing(new)
        return t, dd, f"Renamed to **{services.label(new)}**."

    @friendly
    def delete(path, sure):
        if not sure:
            raise gr.Error("Tick “Yes, delete it” first.", title="Not deleted")
        label = services.label(services.resolve(path))
        services.delete(path)
        t, dd = listing()
        return t, dd, f"Deleted **{label}**.", False

    # ---- layout ------------------------------------------------------------------------------------
    gr.Markdown(f"Shipped models live in `{services.weights_dir.name}/`; your runs in {services.runs_label()}. "
                "Only your own runs can be renamed or deleted.")
    grid = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, elem_id="models-table", label="Checkpoints",
                        show_search="search")
    refresh_btn = gr.Button("Refresh list", size="sm")
    pairs = []   # filled on page load, so starting the app does not wait for torch
    with gr.Row(equal_height=False):
        with gr.Column(min_width=280):
            choice = gr.Dropdown(pairs, value=None, allow_custom_value=True, label="Checkpoint",
                                 info="Pick one to see its details, rename or delete it.", elem_id="models-choice")
            new_name = gr.Textbox(label="New name", placeholder="my-digits",
                                  info="Letters, digits, spaces, - _ and . ; stays in the same folder.")
            rename_btn = gr.Button("Rename")
            sure = gr.Checkbox(label="Yes, delete it", info="Deleting cannot be undone.")
            delete_btn = gr.Button("Delete", variant="stop")
            status = gr.Markdown()
        with gr.Column(scale=2, min_width=280):
            details = gr.JSON(label="Header (what the file says about itself)")

    # ---- wiring ------------------------------------------------------------------------------------
    refresh_btn.click(listing, choice, [grid, choice], api_name="models_list")
    choice.change(header, choice, details, api_name="models_header")
    rename_btn.click(rename, [choice, new_name], [grid, choice, status], api_name="models_rename")
    delete_btn.click(delete, [choice, sure], [grid, choice, status, sure], api_name="models_delete")
    return {"refresh": (listing, choice, [grid, choice])}
