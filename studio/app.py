"""The studio: one `gr.Blocks` with a tab per task, all calling the engine through `Services`.

Plain functions first, then the layout, then the wiring (the gradio demos' shape). Tabs are registered
explicitly below; each is `studio/tabs/<name>.py` with `build(services)`.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
import threading

import gradio as gr

from studio.services import Services
from studio.tabs import explain, explore, export, masks, models, train, translate
from studio.ui import INFERENCE_CONCURRENCY, LOOKUP, current_session
from studio.visitors import Throttle

log = logging.getLogger("studio")

TITLE = "GAN Studio"
# Where a browser keeps its key on a shared studio. The secret travels to the page with the component anyway (it
# hides nothing); a fixed one lets a restarted studio read the keys browsers already hold.
BROWSER_KEY = "gan-studio-owner"

THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
                       font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"])

CSS = """
.gradio-container { max-width: 1200px !important; margin: auto; }
.gs-progress { margin: 4px 0 8px; }
.gs-bar { height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; }
.gs-fill { height: 100%; background: var(--primary-500); transition: width .4s ease; }
.gs-fill.gs-finished { background: #16a34a; }
.gs-fill.gs-failed, .gs-fill.gs-stopped { background: #d97706; }
.gs-progress-text { margin-top: 6px; font-size: 0.95em; }
/* Vega sizes a chart to its block's height, so the legend and axis titles below it were cut off. */
#train-losses, #train-quality { padding-bottom: 44px !important; }
#train-losses *, #train-quality * { overflow: visible !important; }
.gs-verdict { padding: 8px 12px; border-radius: 8px; font-size: 0.95em; }
.gs-verdict-ok { background: #ecfdf5; color: #065f46; border: 1px solid #a7f3d0; }
.gs-verdict-wait { background: #f1f5f9; color: #334155; border: 1px solid #cbd5e1; }
.gs-verdict-warn { background: #fffbeb; color: #92400e; border: 1px solid #fcd34d; font-weight: 600; }
#gs-header h1 { margin-bottom: 0; }
@media (max-width: 640px) {
  .gradio-container { padding: 6px !important; }
  #gs-header p { font-size: 0.9em; }
}
"""


def build_app(services: Services | None = None) -> gr.Blocks:
    services = services or Services()
    services.session = current_session      # every call acts for the visitor whose request it serves
    # Import the engine (torch) and get the showcase translator ready in the background while the page is
    # built and served, so the first translation does not wait for them.
    services.start_warm_up()

    # ---- layout ------------------------------------------------------------------------------------
    # Generated files (images, GIFs) and uploads older than a day are removed once a day; on a shared studio,
    # every 10 minutes those older than an hour (a started run has unpacked its zip into its own folder).
    cache_expiry = (600, 3600) if services.visitors.shared else (86400, 86400)
    with gr.Blocks(title=TITLE, delete_cache=cache_expiry) as demo:
        gr.Markdown(f"# {TITLE}\nTrain small GANs, explore what they learned, and turn horses into zebras. "
                    "Everything runs on this machine's CPU.", elem_id="gs-header")
        with gr.Tabs():
            with gr.Tab("Train", id="train") as tab_train:
                train_parts = train.build(services)
            with gr.Tab("Explore", id="explore") as tab_explore:
                explore_parts = explore.build(services)
            with gr.Tab("Translate", id="translate") as tab_translate:
                translate_parts = translate.build(services)
            with gr.Tab("Masks", id="masks"):
                masks_parts = masks.build(services)
            with gr.Tab("Explain", id="explain"):
                explain_parts = explain.build(services)
            with gr.Tab("Export", id="export") as tab_export:
                export_parts = export.build(services)
            with gr.Tab("Models", id="models") as tab_models:
                models_parts = models.build(services)
        gr.Markdown("Built on the `gancore` engine and Gradio. Example photos: horse2zebra test set "
                    "(ImageNet, non-commercial research and education; Zhu et al. 2017).", elem_id="gs-footer")

        # ---- wiring --------------------------------------------------------------------------------
        # Other tabs' lists refresh when they are opened, so a model trained a moment ago shows up.
        fn, dd = explore_parts["refresh"]
        tab_explore.select(fn, dd, dd, api_name="explore_models", api_visibility="undocumented")
        fn, dd = export_parts["refresh"]
        tab_export.select(fn, dd, dd, api_name="export_models_on_select", api_visibility="undocumented")
        fn, dd = translate_parts["refresh"]
        tab_translate.select(fn, dd, dd, api_name="translate_models", api_visibility="undocumented")
        fn, dd, outs = models_parts["refresh"]
        tab_models.select(fn, dd, outs, api_name="models_refresh", api_visibility="undocumented")
        # On a shared studio a loading page first says which browser it is (a key kept in its localStorage, made
        # on the first visit), so a reloaded page still owns its runs; what the page lists follows from that.
        on_load = demo.load
        if services.visitors.shared:
            browser_key = gr.BrowserState(None, storage_key=BROWSER_KEY, secret=BROWSER_KEY)
            on_load = demo.load(services.claim_browser, browser_key, browser_key, api_name="claim_browser",
                                api_visibility="undocumented", show_progress="hidden").then
        # A (re)loaded page shows the running job and keeps polling it; Explore shows a first image.
        poll, polled = train_parts["poll"]
        on_load(poll, None, polled, api_name="train_state_on_load", api_visibility="undocumented")
        fn, dd, outs = train_parts["unfinished"]
        on_load(fn, dd, outs, api_name="train_unfinished", api_visibility="undocumented")
        tab_train.select(fn, dd, outs, api_name="train_unfinished_on_select", api_visibility="undocumented")
        image, inputs, out = explore_parts["first_image"]
        fn, dd = explore_parts["refresh"]
        on_load(fn, dd, dd, api_name="explore_models_on_load", api_visibility="undocumented").then(
            _quiet(image), inputs, out, api_name="explore_first_image", api_visibility="undocumented",
            concurrency_id="inference", concurrency_limit=INFERENCE_CONCURRENCY)
        fn, dd = translate_parts["refresh"]
        on_load(fn, dd, dd, api_name="translate_models_on_load", api_visibility="undocumented")
        fn, dd = export_parts["refresh"]
        on_load(fn, dd, dd, api_name="export_models_on_load", api_visibility="undocumented")
        fn, dd, outs = models_parts["refresh"]
        on_load(fn, dd, outs, api_name="models_on_load", api_visibility="undocumented")
        fn, dd = masks_parts["refresh"]
        on_load(fn, dd, dd, api_name="masks_models_on_load", api_visibility="undocumented")
        fn, dd = explain_parts["refresh"]
        on_load(fn, dd, dd, api_name="explain_models_on_load", api_visibility="undocumented")
        fn, index, editor = masks_parts["example"]          # a bundled picture: no need to wait for the browser
        demo.load(fn, index, editor, api_name="masks_example_on_load", api_visibility="undocumented")
    # Training alone (its handler also refuses a second job); inference a few at a time.
    demo.queue(default_concurrency_limit=4, max_size=64)
    quiet_when_idle(demo)
    if services.visitors.shared:
        throttle_visitors(demo, Throttle())
    demo.services = services
    return demo


# Gradio's queue looks for work every 1 ms while idle and for progress every 10 ms: about 13 % of a core for a
# studio nobody uses, taken from the translations and training it serves on a 2-core Space. Every 20 ms and 50
# ms cost under 2 %; a person does not notice 20 ms before a job starts.
IDLE_POLL_S, PROGRESS_POLL_S = 0.02, 0.05


def quiet_when_idle(demo: gr.Blocks) -> None:
    """(No public option: these are attributes of Gradio's queue; a Gradio without them is left as it is.)"""
    queue = getattr(demo, "_queue", None)
    for name, value in (("sleep_when_free", IDLE_POLL_S), ("progress_update_sleep_when_free", PROGRESS_POLL_S)):
        if hasattr(queue, name):
            setattr(queue, name, value)


TOO_MANY = "Too many requests at once from this page; wait a moment, then try again."
NO_SESSION = "This shared studio needs a browser session (an API client's session_hash); reload the page."
# Events that compute (a picture, a translation, a frame, a clip) run in these pools and count as heavy, whatever
# set them off. Page loads, timers, tab openings and changed choices outside them are small listings, polls and
# lookups, held only to the loose limit (a page load sets off a dozen); so are the events chained after one, and
# those in the light pools, whatever set them off.
HEAVY_POOLS = frozenset({"inference", "live", "video"})
LIGHT_POOLS = frozenset({LOOKUP})
LIGHT_TRIGGERS = frozenset({"load", "tick", "select", "change"})
CHAINED = frozenset({"then", "success"})


def throttle_visitors(demo: gr.Blocks, throttle: Throttle) -> None:
    """An event over its visitor's limits is refused at once (HTTP 429; the page shows the message as an error)
    before it takes one of the shared queue's places, so one flooding page or script cannot crowd out the
    other visitors. Gradio has no public hook before an event joins the queue: this wraps its queue's `push`
    (the one door for the page's and the API's events); a Gradio without it is left as it is."""
    queue = getattr(demo, "_queue", None)
    push = getattr(queue, "push", None)
    if push is None or not hasattr(queue, "event_queue_per_concurrency_id"):
        return
    joining: dict[str, list] = {}     # visitor -> functions of events admitted but not yet in the queue

    async def guarded(body, request, username):
        from fastapi import HTTPException
        fn, who = demo.fns.get(body.fn_index), body.session_hash
        if not who:                        # no visitor to count against (and nothing a shared studio serves them)
            raise HTTPException(status_code=400, detail=NO_SESSION)
        busy = _busy(queue, who) + joining.get(who, [])
        heavy = [_is_heavy(f, demo.fns) for f in busy]
        if fn is not None and not throttle.admits(who, _is_heavy(fn, demo.fns), sum(heavy), len(busy)):
            raise HTTPException(status_code=429, detail=TOO_MANY)
        joining.setdefault(who, []).append(fn)
        try:
            return await push(body, request, username)
        finally:
            joining[who].remove(fn)
            if not joining[who]:
                del joining[who]

    queue.push = guarded


def _is_heavy(fn, fns: dict) -> bool:
    if fn is None:
        return False
    if fn.concurrency_id in HEAVY_POOLS:
        return True
    if fn.concurrency_id in LIGHT_POOLS:
        return False
    events = {event for _, event in fn.targets}
    if events <= LIGHT_TRIGGERS:
        return False
    if events <= CHAINED:
        parent = fns.get(fn.trigger_after)
        return parent is None or _is_heavy(parent, fns)
    return True


def _busy(queue, session: str) -> list:
    """The functions of a visitor's events waiting in or run by Gradio's queue."""
    waiting = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
    running = [e for jobs in queue.active_jobs if jobs for e in jobs]
    return [e.fn for e in waiting + running if e.session_hash == session]


def _quiet(fn):
    """First image on page load: no error pop-up when there is simply no generator yet."""
    def wrapper(path, *args):
        if not path:
            return None
        try:
            return fn(path, *args)
        except gr.Error:
            return None
    return wrapper


MAX_UPLOAD = os.environ.get("GANSTUDIO_MAX_UPLOAD", "300mb")   # a zip of training photos; Gradio refuses more
FORM_BYTES = 1024 * 1024           # what a request may carry beside its one largest file
UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def upload_bytes(size: str | int) -> int:
    """"300mb" -> bytes (Gradio's units: powers of 1024)."""
    if isinstance(size, int):
        return size
    text = size.replace(" ", "").lower()
    digits = len(text) - len(text.lstrip("0123456789"))
    if not digits or text[digits:] not in UNITS:
        raise ValueError(f"an upload limit looks like 300mb or 2gb, got {size!r}")
    return int(text[:digits]) * UNITS[text[digits:]]


def request_limit(max_file_size: str | int):
    """Gradio caps each uploaded file; one request may carry many. This caps the request: a body larger than
    one file and its form gets 413 before it is parsed (judged by Content-Length, and by counting when a
    client sends none), so eight 50 MB files in one request cannot pass a 300 MB cap."""
    from starlette.middleware import Middleware

    from gancore.deploy.serve import BodyLimit
    cap = upload_bytes(max_file_size)
    return Middleware(BodyLimit, max_bytes=cap + FORM_BYTES,
                      message=f"an upload may be at most {cap / 2**20:.0f} MB, all its files together")


def save_on_exit(services: Services) -> None:
    """SIGTERM (a container or Space restart) and Ctrl-C stop a running job, which saves its checkpoint, before
    the process exits; a restarted studio lists the run as interrupted and can resume it."""
    def handler(signum, frame):
        log.warning("signal %s: stopping the training job and saving", signum)
        services.shutdown(timeout=30)
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def launch(host: str = "127.0.0.1", port: int = 7860, services: Services | None = None, **kwargs):
    # Each studio process gets its own Gradio cache unless one is set: two studios on one machine must
    # never serve each other's files. Gradio reads the variable when components are built, so set it first.
    if not os.environ.get("GRADIO_TEMP_DIR"):
        cache = tempfile.mkdtemp(prefix="ganstudio-gradio-")
        os.environ["GRADIO_TEMP_DIR"] = cache
        atexit.register(shutil.rmtree, cache, True)
    kwargs.setdefault("max_file_size", os.environ.get("GANSTUDIO_MAX_UPLOAD", MAX_UPLOAD))
    app_kwargs = kwargs.setdefault("app_kwargs", {})
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), request_limit(kwargs["max_file_size"])]
    demo = build_app(services)
    if threading.current_thread() is threading.main_thread():
        save_on_exit(demo.services)
    demo.launch(server_name=host, server_port=port, theme=THEME, css=CSS, **kwargs)
    return demo
