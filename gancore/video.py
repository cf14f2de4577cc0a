"""Clips and webcam frames through a CycleGAN (Zhu et al. 2017), one frame at a time, with less flicker.

Decoding and encoding use PyAV (`av`), whose wheel carries the FFmpeg libraries, so nothing outside the
venv is needed. A clip comes back as H.264 MP4 at the clip's frame rate (at most `MAX_FPS`: a faster clip
is resampled to it); its audio track, if it has one, is re-encoded to AAC beside it. Frames meet the same
size rules as photos (`gancore.imaging.check_picture_size`). A clip longer than `MAX_SECONDS`, or one that
would decode more than `MAX_DECODE_FPS` frames a second or `MAX_DECODED_PIXELS` pixels, is refused, from its
header before any work is done and again while decoding, since headers may lie.

Per-frame translation flickers: the generator answers small input changes (sensor noise, compression,
a slow pan) with larger output changes (CycleGAN repo issue #127). `Deflicker` blends each output with the
previous one, per pixel, where the *input* barely changed, and takes the new output where it did, so
static areas settle and moving ones follow (the idea of blind temporal-consistency methods, Bonneel et al.
2015 / Lai et al. 2018, without their optical-flow warping, which would cost more than the generator
here). `flicker()` is the measure: mean absolute difference between consecutive frames.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from gancore.errors import BadInput, TooLarge, Unsupported
from gancore.imaging import check_picture_size, run_padded

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv"}
MAX_SECONDS = 30.0        # a clip may be at most this long (the studio's and the CLI's default)
MAX_SIDE = 1024           # the output's longer side; frames over 4x this on their longer side are refused
WORK_SIZE = 256           # frames are translated with their shorter side at this many pixels
MAX_FPS = 60              # frames translated per second of clip; a faster clip is resampled to this rate
MAX_DECODE_FPS = 240      # frames decoded per second of clip, at most (a 1000-fps clip is refused)
MAX_DECODED_PIXELS = 4_000_000_000   # all decoded frames together: 30 s of 1080p at 60 fps


class VideoError(BadInput):
    """A clip that cannot be read or used."""


def is_video(path) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


# ----------------------------------------------------------------------------------------------------
# Reading a clip

@dataclass(frozen=True)
class ClipInfo:
    duration_s: float | None     # None when the container does not say
    fps: float
    width: int
    height: int
    frames: int | None           # an estimate from duration x fps when the stream does not count them
    has_audio: bool
    video_codec: str


def _open(path):
    import av
    p = Path(str(path))
    if not p.is_file():
        raise VideoError(f"{p.name}: no such file")
    try:
        return av.open(str(p))
    except av.error.FFmpegError as e:
        raise VideoError(f"{p.name}: not a readable video ({e.__class__.__name__}: {getattr(e, 'strerror', '') or e})"
                         ) from None


def probe(path) -> ClipInfo:
    """What a clip holds, without decoding it. VideoError for anything that is not a readable video."""
    name = Path(str(path)).name
    with _open(path) as c:
        if not c.streams.video:
            raise VideoError(f"{name}: holds no video stream")
        v = c.streams.video[0]
        fps = float(v.average_rate or v.guessed_rate or 0) or 25.0
        if v.duration is not None and v.time_base is not None:
            duration = float(v.duration * v.time_base)
        elif c.duration is not None:
            duration = c.duration / 1_000_000          # av.time_base is microseconds
        else:
            duration = None
        frames = v.frames or (round(duration * fps) if duration else None)
        w, h = v.codec_context.width, v.codec_context.height
        if not w or not h:
            raise VideoError(f"{name}: the video stream has no frame size; the file may be damaged")
        return ClipInfo(duration, fps, w, h, frames, bool(c.streams.audio), v.codec_context.name)


def out_fps(fps: float) -> float:
    """The frame rate a clip is translated at: its own, at most MAX_FPS."""
    return min(float(fps), float(MAX_FPS))


def max_decoded_frames(max_seconds: float) -> int:
    return int(math.ceil((max_seconds + 0.05) * MAX_DECODE_FPS))


def check_clip(info: ClipInfo, name: str, max_seconds: float = MAX_SECONDS) -> None:
    """Refuse, from the header alone, a clip too long, too fast or too large to decode."""
    if info.duration_s is not None and info.duration_s > max_seconds + 0.05:
        raise TooLarge(f"{name}: the clip is {info.duration_s:.1f} s long; the limit is {max_seconds:g} s, "
                       "trim it first")
    check_picture_size(info.width, info.height, name, "a frame")
    if max(info.width, info.height) > MAX_SIDE * 4:
        raise TooLarge(f"{name}: frames of {info.width}x{info.height} are too large (at most "
                       f"{MAX_SIDE * 4} pixels per side)")
    frames = info.frames or 0
    if frames > max_decoded_frames(max_seconds):
        raise TooLarge(f"{name}: the clip holds {frames} frames; at most {max_decoded_frames(max_seconds)} "
                       f"({MAX_DECODE_FPS} a second)")
    if frames * info.width * info.height > MAX_DECODED_PIXELS:
        raise TooLarge(f"{name}: the clip decodes to {frames * info.width * info.height / 1e9:.1f} gigapixels; "
                       f"at most {MAX_DECODED_PIXELS / 1e9:g} (shorten it or lower its resolution)")


def _rgb(frame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


class _DecodeBudget:
    """Counts decoded frames and pixels against the caps; a header may lie about both."""

    def __init__(self, name: str, max_seconds: float):
        self.name, self.max_frames = name, max_decoded_frames(max_seconds)
        self.frames = self.pixels = 0
        self.shape: tuple[int, int] | None = None

    def add(self, frame) -> None:
        self.frames += 1
        self.pixels += frame.width * frame.height
        if (frame.width, frame.height) != self.shape:        # a stream may change size midway
            check_picture_size(frame.width, frame.height, self.name, "a frame")
            self.shape = (frame.width, frame.height)
        if self.frames > self.max_frames:
            raise TooLarge(f"{self.name}: the clip holds more than {self.max_frames} frames "
                           f"({MAX_DECODE_FPS} a second at most)")
        if self.pixels > MAX_DECODED_PIXELS:
            raise TooLarge(f"{self.name}: the clip decodes to more than {MAX_DECODED_PIXELS / 1e9:g} gigapixels")


def read_frames(path, max_seconds: float = MAX_SECONDS) -> Iterator[np.ndarray]:
    """uint8 RGB frames (H, W, 3) in display order, at most `out_fps` a second (faster clips are resampled by
    dropping frames); TooLarge past max_seconds or the decoding caps even if the header lied, and when memory
    runs out while decoding."""
    import av
    name = Path(str(path)).name
    with _open(path) as c:
        if not c.streams.video:
            raise VideoError(f"{name}: holds no video stream")
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        fps = float(v.average_rate or v.guessed_rate or 0) or 25.0
        rate = out_fps(fps)
        limit = int(math.ceil((max_seconds + 0.05) * rate))
        budget, n = _DecodeBudget(name, max_seconds), 0
        try:
            for i, frame in enumerate(c.decode(v)):
                budget.add(frame)
                if i and math.floor(i * rate / fps) == math.floor((i - 1) * rate / fps):
                    continue                                  # over the frame-rate ceiling: dropped
                n += 1
                if n > limit:
                    raise TooLarge(f"{name}: the clip runs past {max_seconds:g} s, the limit; trim it first")
                yield _rgb(frame)
        except MemoryError:                                   # av.error.MemoryError (ENOMEM) too
            raise TooLarge(f"{name}: the clip is too large to decode in this machine's memory") from None
        except av.error.FFmpegError as e:
            if n == 0:
                raise VideoError(f"{name}: no frame could be decoded ({e.__class__.__name__}); "
                                 "the file may be damaged") from None
            # A damaged tail: keep what decoded (players do the same).
        if n == 0:
            raise VideoError(f"{name}: no frame could be decoded; the file may be damaged")


# ----------------------------------------------------------------------------------------------------
# Translating frames

def _even(n: int) -> int:
    return max(2, n - n % 2)


class FrameTranslator:
    """One direction of a CycleGAN, applied to uint8 RGB frames at `work_size` (shorter side)."""

    def __init__(self, model, direction: str = "AB", work_size: int = WORK_SIZE, run=None, what: str = "a frame"):
        """`run`: the direction's generator on another backend (gancore.deploy.fast), tensor -> tensor.
        `what` names the frames in messages ("a camera frame")."""
        if model.task != "translate":
            raise Unsupported(f"{model.model_type} is not a translation model; choose a CycleGAN")
        if model.config.image_channels != 3:
            raise Unsupported("video translation needs a colour (3-channel) model")
        self.net = model.generator(direction)          # BadInput names the directions the model has
        self.net = run or self.net
        self.multiple = model.size_multiple
        self.work_size = int(work_size)
        self.what = what
        self.device = next(model.parameters()).device

    def work_shape(self, h: int, w: int) -> tuple[int, int]:
        check_picture_size(w, h, what=self.what)          # never scale a 4096x8 strip to 256x131072
        s = self.work_size / min(h, w)
        return max(8, round(h * s)), max(8, round(w * s))

    def to_input(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, h, w) float in [-1, 1] at the working size."""
        frames = np.ascontiguousarray(frames)
        if not frames.flags.writeable:                # Gradio hands over read-only camera frames
            frames = frames.copy()
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float()
        x = x.div_(127.5).sub_(1.0)
        hw = self.work_shape(*x.shape[-2:])
        if tuple(x.shape[-2:]) != hw:
            x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
        return x

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return run_padded(self.net, x, self.multiple).clamp_(-1, 1)


class Deflicker:
    """Recursive blending of outputs, weighted per pixel by how little the input changed.

        change = mean over channels of |x_t - x_{t-1}|, both averaged over 4x4 blocks (noise cancels,
                 motion stays; and it costs a sixteenth of full resolution)
        keep   = strength * exp(-change / tolerance), upsampled to the output's size
        out_t  = (1 - keep) * y_t + keep * out_{t-1}

    strength 0 is plain per-frame translation. Inputs and outputs are (N, C, H, W) in [-1, 1].
    """

    block = 4

    def __init__(self, strength: float = 0.7, tolerance: float = 0.03):
        if not 0.0 <= strength < 1.0:
            raise BadInput("flicker reduction must be between 0 and 0.99")
        self.strength, self.tolerance = float(strength), float(tolerance)
        self.prev_in: torch.Tensor | None = None       # the last input, block-averaged
        self.prev_out: torch.Tensor | None = None

    def reset(self) -> None:
        self.prev_in = self.prev_out = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.strength == 0:
            return y
        small = F.avg_pool2d(x, self.block) if min(x.shape[-2:]) >= 8 * self.block else x
        out = []
        for si, yi in zip(small.split(1), y.split(1)):
            if self.prev_in is None or self.prev_in.shape != si.shape or self.prev_out.shape != yi.shape:
                blended = yi
            else:
                change = (si - self.prev_in).abs().mean(1, keepdim=True)              # (1, 1, h/4, w/4)
                keep = (change / -self.tolerance).exp_().mul_(self.strength)
                keep = F.interpolate(keep, size=yi.shape[-2:], mode="bilinear", align_corners=False)
                blended = torch.lerp(yi, self.prev_out, keep)
            self.prev_in, self.prev_out = si, blended
            out.append(blended)
        return torch.cat(out)


def flicker(frames: Iterable[np.ndarray]) -> float:
    """Mean absolute difference between consecutive frames, in 0..255 grey levels."""
    prev, total, n = None, 0.0, 0
    for f in frames:
        f = np.asarray(f, dtype=np.float32)
        if prev is not None:
            total += float(np.abs(f - prev).mean())
            n += 1
        prev = f
    return total / max(1, n)


def _to_frames(y: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(N, 3, h, w) in [-1, 1] -> (N, H, W, 3) uint8 at `size` = (H, W)."""
    if tuple(y.shape[-2:]) != size:
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False).clamp_(-1, 1)
    return ((y + 1) * 127.5).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def translate_frames(translator: FrameTranslator, frames: Iterable[np.ndarray], deflicker: float = 0.7,
                     batch_size: int = 4, out_size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Translated uint8 frames, in order. Frames of one clip share a size; they run `batch_size` at a time."""
    smooth = Deflicker(deflicker)
    batch: list[np.ndarray] = []

    def flush():
        x = translator.to_input(np.stack(batch))
        y = smooth(x, translator(x))
        size = out_size or batch[0].shape[:2]
        batch.clear()
        return _to_frames(y, size)

    for f in frames:
        if batch and f.shape != batch[0].shape:
            yield from flush()
        batch.append(f)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


# ----------------------------------------------------------------------------------------------------
# A clip in, a clip out

def _out_size(info: ClipInfo, max_side: int) -> tuple[int, int]:
    """(H, W) of the output: the clip's size capped at max_side on the longer side, even for yuv420p."""
    w, h = info.width, info.height
    f = min(1.0, max_side / max(w, h))
    return _even(round(h * f)), _even(round(w * f))


def _add_audio_stream(src, out_container):
    """An AAC stream in out_container for src's first audio stream (None when src has none).

    Every stream must exist before the first packet is written, so this comes before the video pass.
    """
    with _open(src) as c:
        if not c.streams.audio:
            return None
        a = c.streams.audio[0].codec_context
        out = out_container.add_stream("aac", rate=a.sample_rate or 44100)
        out.layout = "stereo" if (a.channels or 2) >= 2 else "mono"
        return out


def _copy_audio(src, out_container, out) -> None:
    """Re-encode src's first audio stream into `out` (an AAC stream of out_container)."""
    import av
    with _open(src) as c:
        try:
            for frame in c.decode(c.streams.audio[0]):
                frame.pts = None                       # the encoder numbers its own packets
                for packet in out.encode(frame):
                    out_container.mux(packet)
        except av.error.FFmpegError:
            pass                                       # a damaged audio tail: keep what decoded
    for packet in out.encode(None):
        out_container.mux(packet)


def translate_clip(model, src, dst, direction: str = "AB", deflicker: float = 0.7,
                   max_seconds: float = MAX_SECONDS, max_side: int = MAX_SIDE, work_size: int = WORK_SIZE,
                   keep_audio: bool = True, batch_size: int = 4,
                   progress: Callable[[int, int | None], None] | None = None) -> dict:
    """Translate a clip frame by frame into an H.264 MP4 at `dst`, audio kept. Returns a report dict.

    progress(done_frames, total_frames_or_None) is called after each batch.
    """
    import av
    name = Path(str(src)).name
    info = probe(src)
    check_clip(info, name, max_seconds)
    translator = FrameTranslator(model, direction, work_size)
    size = _out_size(info, max_side)
    dst = Path(str(dst))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.part{dst.suffix or '.mp4'}")
    rate = Fraction(out_fps(info.fps)).limit_denominator(1001)
    total = round(info.frames * float(rate) / info.fps) if info.frames else None   # after resampling
    t0 = time.perf_counter()
    n = 0
    try:
        with av.open(str(tmp), "w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=rate)
            vs.height, vs.width = size
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": "20", "preset": "veryfast"}
            audio = _add_audio_stream(src, out) if keep_audio and info.has_audio else None
            for frame in translate_frames(translator, read_frames(src, max_seconds), deflicker, batch_size, size):
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts = n
                vf.time_base = 1 / rate
                for packet in vs.encode(vf):
                    out.mux(packet)
                n += 1
                if progress is not None and n % batch_size == 0:
                    progress(n, total)
            for packet in vs.encode(None):
                out.mux(packet)
            if audio is not None:
                _copy_audio(src, out, audio)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    elapsed = time.perf_counter() - t0
    if progress is not None:
        progress(n, n)
    seconds = n / float(rate)
    return {"output": str(dst), "frames": n, "fps": float(rate), "seconds": round(seconds, 3),
            "width": size[1], "height": size[0], "audio": audio is not None, "elapsed_s": round(elapsed, 2),
            "time_ratio": round(elapsed / seconds, 2) if seconds else None,
            "deflicker": deflicker, "direction": direction}


# ----------------------------------------------------------------------------------------------------
# Live frames (webcam)

class LiveTranslator:
    """A webcam stream: each call translates the newest frame; the caller drops frames that came meanwhile.

    Keeps the deflicker state between frames and the times of the last frames, so `fps` is the rate the
    stream really reaches (frames done per second over the last few seconds).
    """

    def __init__(self, model, direction: str = "AB", work_size: int = WORK_SIZE, deflicker: float = 0.5,
                 key=None, run=None):
        self.translator = FrameTranslator(model, direction, work_size, run, what="a camera frame")
        self.smooth = Deflicker(deflicker)
        self.key = key
        self.times: deque[float] = deque(maxlen=30)
        self.last_ms = 0.0
        self.count = 0                    # frames translated so far

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise BadInput(f"expected an RGB camera frame, got shape {frame.shape}")
        check_picture_size(frame.shape[1], frame.shape[0], what="a camera frame")
        if max(frame.shape[:2]) > MAX_SIDE * 4:
            raise TooLarge(f"camera frames of {frame.shape[1]}x{frame.shape[0]} are too large")
        t = time.perf_counter()
        x = self.translator.to_input(frame[None, ..., :3])
        y = self.smooth(x, self.translator(x))
        out = _to_frames(y, tuple(y.shape[-2:]))[0]       # at the working size: the screen scales it
        now = time.perf_counter()
        self.last_ms = (now - t) * 1000
        self.times.append(now)
        self.count += 1
        return out

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0
