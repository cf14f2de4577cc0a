"""How long a person waits after starting the studio: `python app.py` to the first page, then the first
translation of a bundled example photo with the Translate tab's default model, then the next ones.

    python bench/cold_start.py [--repeats 3] [--translations 20]

Each start is a fresh process on a free port with an empty ONNX cache (as on a new machine or a restarted
Space). "first page": the process start to the first HTTP 200 of `/`; "first translation": the studio's
`/translate` through gradio_client, from the page being up; "round trip (median)": the next translations,
5 s later (a person looking at the first result; the warm-up finishes meanwhile), client side, beside the
engine's own time (the figure the Translate tab shows), and the same translation through Gradio's HTTP API as
the page's own client makes it (upload the photo, POST /call/translate, read the event stream, fetch the
picture); then, in this process, Gradio's floor: the same gradio_client call to an app that returns the photo
unchanged. gradio_client looks for the server's answer every 50 ms (time.sleep(0.05) in its event-stream
reader), so its figures come in steps of 50 ms. The load average is printed: run it on an otherwise idle
machine.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "gancore" / "assets" / "examples" / "horse_1.jpg"


SETTLE_S = 5      # after the first translation: the warm-up loads the Explore tab's model meanwhile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, proc, limit_s: float = 120) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if proc.poll() is not None:
            raise SystemExit(f"the studio exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter()
        except OSError:
            time.sleep(0.02)
    raise SystemExit("no page after 120 s")


def one_start(translations: int, default: str) -> dict:
    """`default`: the Translate tab's default model, found before the clock starts (finding it imports the
    engine in this process, which is not the studio's time)."""
    from gradio_client import Client, handle_file
    port = free_port()
    env = {**os.environ, "GANCORE_CACHE": tempfile.mkdtemp(prefix="cold-start-")}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/", proc) - t0
        t1 = time.perf_counter()
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        args = dict(image=handle_file(str(EXAMPLE)), direction="AB", cycle=False, strength=100, api_name="/translate")
        out = client.predict(path=default, **args)
        first = time.perf_counter() - t1
        time.sleep(SETTLE_S)                         # a person looks at the first result before the next photo
        trips, engine = [], []
        for _ in range(translations):
            t = time.perf_counter()
            out = client.predict(path=default, **args)
            trips.append((time.perf_counter() - t) * 1000)
            engine.append(float(out[2].split("**")[1].split(" ms")[0]))
        http_trips = http_round_trips(f"http://127.0.0.1:{port}", default, translations)
        return {"page_s": page, "first_s": first, "trip_ms": float(np.median(trips)),
                "http_ms": float(np.median(http_trips)), "engine_ms": float(np.median(engine)), "note": out[2]}
    finally:
        proc.terminate()
        proc.wait(30)


def http_round_trips(url: str, model: str, n: int) -> list[float]:
    """The Translate tab's call as the page makes it, timed from the upload to the translated picture."""
    import json

    import httpx
    trips = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(n):
            t = time.perf_counter()
            with open(EXAMPLE, "rb") as f:
                uploaded = http.post("/gradio_api/upload", files={"files": (EXAMPLE.name, f, "image/jpeg")}).json()[0]
            photo = {"path": uploaded, "meta": {"_type": "gradio.FileData"}}
            data = [model, photo, "AB", False, 100]
            event = http.post("/gradio_api/call/translate", json={"data": data}).json()["event_id"]
            with http.stream("GET", f"/gradio_api/call/translate/{event}") as stream:
                lines = list(stream.iter_lines())
            assert "event: complete" in lines, lines
            result = json.loads(lines[lines.index("event: complete") + 1].removeprefix("data: "))
            assert http.get(result[0]["url"]).status_code == 200
            trips.append((time.perf_counter() - t) * 1000)
    return trips


def gradio_floor(translations: int) -> float:
    """Median round trip of the same call to an app that returns the photo unchanged: what Gradio and its
    client cost on this machine (upload, queue, two output pictures, the note) before any translation."""
    import gradio as gr
    from gradio_client import Client, handle_file

    def echo(path, image, direction, cycle, strength):
        return image, image, "unchanged"

    port = free_port()
    with gr.Blocks() as demo:
        ins = [gr.Textbox(), gr.Image(type="numpy"), gr.Textbox(), gr.Checkbox(), gr.Number()]
        outs = [gr.Image(), gr.Image(), gr.Markdown()]
        gr.Button().click(echo, ins, outs, api_name="translate")
    demo.queue().launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        args = dict(image=handle_file(str(EXAMPLE)), direction="AB", cycle=False, strength=100, api_name="/translate")
        client.predict(path="", **args)
        trips = []
        for _ in range(translations):
            t = time.perf_counter()
            client.predict(path="", **args)
            trips.append((time.perf_counter() - t) * 1000)
        return float(np.median(trips))
    finally:
        demo.close()


def default_model() -> str:
    """The Translate tab's default model: the first of its list, as the page shows it."""
    from studio.services import Services
    listed = Services(weights_dir=ROOT / "weights", runs_dir=tempfile.mkdtemp()).list_checkpoints("translate")
    return listed[0][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--translations", type=int, default=20)
    a = ap.parse_args()
    default = default_model()
    rows = [one_start(a.translations, default) for _ in range(a.repeats)]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; {a.repeats} starts")
    print("| start | first page s | first translation s | round trip ms, gradio_client | round trip ms, HTTP API "
          "| engine ms |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['page_s']:.2f} | {r['first_s']:.2f} | {r['trip_ms']:.0f} | {r['http_ms']:.0f} "
              f"| {r['engine_ms']:.0f} |")
    print(f"last note: {rows[-1]['note']}")
    print(f"Gradio's floor: {gradio_floor(a.translations):.0f} ms median round trip for the same call to an app that "
          "returns the photo unchanged")


if __name__ == "__main__":
    main()
