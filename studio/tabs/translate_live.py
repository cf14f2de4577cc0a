"""Translate tab, moving pictures: a webcam stream and video clips through the chosen CycleGAN.

Engine: `gancore.video` (PyAV decoding/encoding, per-pixel temporal blending against flicker). The webcam
stream runs one frame at a time (concurrency 1); Gradio keeps only the newest frame that arrived while the
previous one was being translated (`Queue` replaces the event's data), so a slow machine drops frames
instead of falling behind.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import gradio as gr

from gancore.errors import BadInput
from studio.ui import SCRATCH, friendly

LIVE_SIZES = [("256 px (the model's size)", 256), ("192 px (faster)", 192), ("128 px (fastest)", 128)]
VIDEO_MAX_SECONDS = 30.0
# The page sends a camera frame this often; a frame that arrives while the last one is being translated
# replaces the one waiting, so a fast model shows up to 20 frames/s and a slow machine just skips frames.
LIVE_SEND_EVERY_S = 0.05
RATE_EVERY_FRAMES = 10           # the frame rate note is refreshed every this many frames
CAMERA_IN_USE = ("**Camera in use:** another visitor is translating their webcam. Keep this stream on; yours "
                 "starts when they stop (or after their one-minute turn).")


def build(services, ckpt, direction):
    """Two accordions under the photo view; `ckpt` and `direction` are the tab's own model and direction."""
    from gancore import video as engine

    # ---- plain functions -------------------------------------------------------------------------
    @friendly
    def live(frame, path, direction, size, state):
        if frame is None:
            return gr.skip(), gr.skip(), state
        if not services.claim_camera():
            return gr.skip(), CAMERA_IN_USE, state
        key = (path, direction, int(size))
        if state is None or getattr(state, "key", None) != key:
            state = engine.LiveTranslator(services.load(path), direction, work_size=int(size), key=key,
                                          run=services.runner(path, direction))
        out = state(frame)
        if state.count % RATE_EVERY_FRAMES != 1:        # the page re-renders the note: not on every frame
            return out, gr.skip(), state
        fps = f"{state.fps:.1f} frames/s" if state.fps else "starting"
        return out, f"**{fps}** · {state.last_ms:.0f} ms per frame at {int(size)} px", state

    @friendly
    def clip(path, video, direction, deflicker, progress=gr.Progress()):
        if not video:
            raise BadInput("add a clip first: upload an MP4, MOV, MKV or WebM file")
        model = services.load(path)
        folder = SCRATCH / uuid.uuid4().hex
        dst = folder / f"{Path(video).stem}_{direction}.mp4"
        progress(0, desc="Reading the clip")

        def step(done, total):
            progress((done, total) if total else None, desc="Translating frames", unit="frames")

        r = engine.translate_clip(model, video, dst, direction, float(deflicker),
                                  max_seconds=VIDEO_MAX_SECONDS, progress=step)
        note = (f"{r['frames']} frames ({r['seconds']:.1f} s at {r['fps']:.3g} frames/s, {r['width']}x{r['height']}) "
                f"in {r['elapsed_s']:.1f} s ({r['time_ratio']:.1f}x the clip's length); "
                + ("sound kept." if r["audio"] else "the clip has no sound."))
        return r["output"], note

    # ---- layout ------------------------------------------------------------------------------------
    with gr.Accordion("Live: translate your webcam", open=False, elem_id="translate-live"):
        gr.Markdown("Start the camera: each frame is translated as soon as the previous one is done; frames "
                    "that arrive meanwhile are skipped, so the picture stays current on a slow machine.")
        with gr.Row():
            size = gr.Radio(LIVE_SIZES, value=256, label="Working size",
                            info="The shorter side the model sees. Smaller is faster.", elem_id="live-size")
            rate = gr.Markdown("", elem_id="live-rate")
        with gr.Row(equal_height=True):
            cam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", height=300,
                           elem_id="live-input")
            live_out = gr.Image(label="Translated, live", interactive=False, format="jpeg", height=300,
                                elem_id="live-output")
        state = gr.State(None)
    with gr.Accordion("Video: translate a clip", open=False, elem_id="translate-video"):
        gr.Markdown(f"Clips up to {VIDEO_MAX_SECONDS:g} seconds. Frames are translated at 256 px on the shorter "
                    "side and written as MP4 (H.264) at the clip's frame rate; the sound is kept.")
        with gr.Row(equal_height=True):
            vin = gr.Video(label="Your clip", sources=["upload"], format=None, height=300, elem_id="video-input")
            vout = gr.Video(label="Translated clip", interactive=False, format=None, height=300,
                            elem_id="video-output")
        with gr.Row():
            deflicker = gr.Slider(0, 0.9, value=0.7, step=0.05, label="Flicker reduction",
                                  info="0: every frame on its own. Higher: still parts of the picture hold "
                                       "steady (blended with the previous frame), moving parts follow.",
                                  elem_id="video-deflicker")
            vgo = gr.Button("Translate clip", variant="primary", elem_id="video-go")
        vnote = gr.Markdown(elem_id="video-note")

    # ---- wiring ------------------------------------------------------------------------------------
    cam.stream(live, [cam, ckpt, direction, size, state], [live_out, rate, state], api_name="translate_live",
               stream_every=LIVE_SEND_EVERY_S, time_limit=300, concurrency_id="live",
               # Shared: every visitor's stream is answered (one translated, the others told to wait).
               concurrency_limit=8 if services.visitors.shared else 1,
               show_progress="hidden")
    vgo.click(clip, [ckpt, vin, direction, deflicker], [vout, vnote], api_name="translate_video",
              concurrency_limit=1, concurrency_id="video")
