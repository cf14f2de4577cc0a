"""Test clips made from real photos: a slow pan and zoom over a horse2zebra test photo, with or without a tone.

A camera moving slowly over a still photo is the case where per-frame translation flickers most visibly:
neighbouring frames are nearly the same picture, so any difference between their outputs is flicker.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


def pan_frames(photo, seconds: float = 2.0, fps: int = 25, size: int = 256, noise: float = 2.0, seed: int = 0,
               sweep_s: float = 10.0):
    """uint8 frames (size, size, 3): a window of 70-80% of the photo drifting right and zooming in slowly,
    with a little sensor noise (std `noise` grey levels), as a hand-held phone would film it. The whole
    sweep takes `sweep_s` seconds whatever the clip's length, so short and long clips move equally slowly."""
    im = Image.open(photo).convert("RGB")
    w, h = im.size
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * fps))
    for i in range(n):
        t = min(1.0, i / (sweep_s * fps))
        side = min(w, h) * (0.8 - 0.1 * t)                 # zoom in
        x0 = (w - side) * (0.2 + 0.6 * t)                  # pan left to right
        y0 = (h - side) * 0.5
        frame = im.resize((size, size), Image.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
        a = np.asarray(frame, dtype=np.float32) + rng.normal(0, noise, (size, size, 3))
        yield np.clip(a, 0, 255).astype(np.uint8)


def write_clip(dst, frames, fps: int = 25, audio_s: float | None = None, codec: str = "libx264") -> Path:
    """Frames -> an MP4 (H.264, yuv420p); with audio_s, a 440 Hz AAC tone of that length beside them."""
    import av
    dst = Path(dst)
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(dst), "w", format="mp4") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        a_s = None
        if audio_s:
            a_s = out.add_stream("aac", rate=44100)
            a_s.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if a_s is not None:
            rate, chunk = 44100, 1024
            t = np.arange(int(audio_s * rate)) / rate
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone), chunk):
                part = tone[start:start + chunk][None, :]                   # (channels, samples), planar
                af = av.AudioFrame.from_ndarray(part, format="fltp", layout="mono")
                af.sample_rate = rate
                for p in a_s.encode(af):
                    out.mux(p)
            for p in a_s.encode(None):
                out.mux(p)
    return dst


def pan_clip(photo, dst, seconds: float = 2.0, fps: int = 25, size: int = 256, audio: bool = True) -> Path:
    return write_clip(dst, pan_frames(photo, seconds, fps, size), fps, audio_s=seconds if audio else None)


def write_y4m(dst, frames, fps: int = 25) -> Path:
    """Frames -> a YUV4MPEG2 file (4:2:0), what Chromium's fake camera plays in a loop
    (--use-file-for-fake-video-capture)."""
    dst = Path(dst)
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with open(dst, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for fr in frames:
            y, cb, cr = Image.fromarray(fr).convert("YCbCr").split()
            f.write(b"FRAME\n")
            f.write(np.asarray(y).tobytes())
            for c in (cb, cr):
                f.write(np.asarray(c.resize((w // 2, h // 2), Image.BILINEAR)).tobytes())
    return dst
