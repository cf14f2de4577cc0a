"""Small pieces every tab uses: turning engine errors into short messages, and images for display."""
from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np

from gancore.errors import describe, first_line
from studio.services import tile  # noqa: F401  (numpy only; tabs import it from here)

log = logging.getLogger("studio")

# Heavy inference events (translation, grids, GIFs) share one pool of this many queue slots.
INFERENCE_CONCURRENCY = 4
# Events that only look something up (a model's own words for its directions) run in this pool, without a
# limit, and count as light whatever set them off.
LOOKUP = "lookup"

def current_session() -> str | None:
    """The session id of the request this thread is serving, None outside a request.

    Gradio sets it for every event before the handler runs (the same value a handler's `gr.Request` holds), so
    `Services` checks ownership in one place and no handler can forget to pass it on; a browser tab and an API
    client each have their own. On a shared studio a page's session then acts as its browser
    (`studio.visitors.Browsers`), so a reloaded page keeps its runs.
    """
    from gradio.context import LocalContext
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) if request is not None else None


def short(e: BaseException, limit: int = 300) -> str:
    return first_line(e, limit)


def friendly(fn):
    """Handler wrapper: engine errors (gancore.errors) become a short gr.Error written for people; anything
    else is our bug and reads as an internal error with a reference to the server log, never a traceback.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            d = describe(e, where=fn.__name__)
            raise gr.Error(for_page(d.message), title=d.title) from None
    return wrapper


def for_page(message: str) -> str:
    """A message as the page shows it: on a shared studio no server path, only ones relative to the visitor's
    own folder (`Services.shown` of the app serving this request)."""
    from gradio.context import LocalContext
    services = getattr(LocalContext.blocks.get(None), "services", None)
    return services.shown(message) if services is not None else message


def photo_input(**kwargs) -> gr.Image:
    """An image input whose upload reaches the handler as a file path, as uploaded.

    gr.Image opens every upload with PIL before the handler runs, so a truncated, empty, text or bomb file
    failed inside Gradio with its generic "upstream app raised an exception". Here such a file is handed on
    as its path, and the engine's `open_image` says in one line what is wrong with it. `image_mode=None` keeps
    16-bit and CMYK files as they are (Gradio's RGB conversion clips 16-bit pictures to white). (A wrapped
    method, not a subclass: Gradio writes a .pyi stub beside any module that subclasses a component.)
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    gradio_preprocess = image.preprocess

    def preprocess(payload):
        try:
            return gradio_preprocess(payload)
        except Exception:
            path = getattr(payload, "path", None)
            if path:
                return path
            raise
    image.preprocess = preprocess
    return image


def enlarge(image: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor so small GAN images stay crisp on screen."""
    h, w = image.shape[:2]
    f = max(1, -(-min_side // max(1, min(h, w))))       # ceil division
    if f == 1:
        return image
    return image.repeat(f, axis=0).repeat(f, axis=1)


def rgb(image: np.ndarray) -> np.ndarray:
    """HWC with 1 channel -> HW (Gradio shows it grey); 3 channels unchanged."""
    return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image


def choices_update(pairs: list[tuple[str, str]], current: str | None = None):
    """A Dropdown update that keeps the current choice when it still exists, else takes the first."""
    values = [v for _, v in pairs]
    value = current if current in values else (values[0] if values else None)
    return gr.Dropdown(choices=pairs, value=value)


SCRATCH = Path(tempfile.gettempdir()) / "ganstudio-out"


def png_file(image: np.ndarray, name: str) -> str:
    """Write an output image as `<name>.png` in a fresh folder and return its path.

    Gradio then copies the file into its cache atomically. Returning the array instead makes Gradio
    rewrite the cached file in place, and identical outputs for concurrent requests (eight visitors
    clicking the same example, every page polling the same sample grid) could be served half written.
    """
    from PIL import Image
    _prune(SCRATCH, 3600)
    folder = SCRATCH / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = folder / f"{name}.png"
    Image.fromarray(rgb(image)).save(path, compress_level=1)     # 2-3 ms sooner than the default, as small
    return str(path)


def _prune(root: Path, max_age_s: float, _last={}) -> None:
    """Remove scratch folders older than max_age_s (Gradio serves its own copies), at most once a minute."""
    now = time.time()
    if now - _last.get(str(root), 0.0) < 60 or not root.is_dir():
        return
    _last[str(root)] = now
    for d in root.iterdir():
        try:
            if now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass
