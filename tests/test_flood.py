"""One client cannot crowd the others out of a shared studio (a public Space, `SPACE_ID` set): a script flooding
an inference endpoint is refused past its own few places in the queue, and another visitor keeps being served.
Locally (no `SPACE_ID`) nothing is limited. Raw HTTP, as the page and scripts speak to Gradio's queue.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

httpx = pytest.importorskip("httpx")

FLOOD_S, FLOOD_THREADS = 20, 4


def _studio(base, shared: bool):
    from conftest import ROOT, _free_port

    from studio.app import build_app
    from studio.services import Services

    weights = base / "weights"
    weights.mkdir(parents=True)
    shutil.copy(ROOT / "weights" / "mlp_mnist.safetensors", weights)
    if shared:
        os.environ["SPACE_ID"] = "someone/gan-studio"
    try:
        demo = build_app(Services(weights_dir=weights, runs_dir=base / "runs"))
    finally:
        os.environ.pop("SPACE_ID", None)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    [fn] = [f for f in demo.fns.values() if f.api_name == "explore_image"]
    args = [str(weights / "mlp_mnist.safetensors"), 3, 1.0] + [0.0] * 6
    return demo, SimpleNamespace(url=f"http://127.0.0.1:{port}/gradio_api/", fn_index=fn._id, args=args)


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    demo, studio = _studio(tmp_path_factory.mktemp("flood"), shared=True)
    studio.fns, studio.delete_cache = demo.fns, demo.delete_cache
    yield studio
    demo.close()


def _join(http, studio, session: str) -> httpx.Response:
    return http.post(studio.url + "queue/join", json={"data": studio.args, "fn_index": studio.fn_index,
                                                      "session_hash": session, "event_data": None})


def _served(http, studio, session: str) -> tuple[int, bool]:
    """(the join's HTTP status, whether the image came back) for one request, as a page makes it."""
    joined = _join(http, studio, session)
    if joined.status_code != 200:
        return joined.status_code, False
    event_id = joined.json()["event_id"]
    with http.stream("GET", studio.url + "queue/data", params={"session_hash": session}, timeout=60) as stream:
        for line in stream.iter_lines():
            msg = json.loads(line[5:]) if line.startswith("data:") else {}
            if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                return 200, bool(msg.get("success"))
    return 200, False


def _flood(studio, until: float, statuses: list) -> None:
    """A script sending as fast as it can from one page (one session), never waiting for answers."""
    session = uuid.uuid4().hex
    with httpx.Client(timeout=30) as http:
        while time.monotonic() < until:
            statuses.append(_join(http, studio, session).status_code)


def test_a_flooding_client_leaves_room_for_the_others(space):
    check_flood(space, FLOOD_S)


@pytest.mark.slow
def test_a_minute_of_flooding_leaves_room_for_the_others(space):
    check_flood(space, 60)


def check_flood(space, seconds: float) -> None:
    """FLOOD_THREADS threads of one session send as fast as they can for `seconds` (hundreds of requests a
    minute) while another visitor asks every 0.5 s and waits for each answer."""
    until = time.monotonic() + seconds
    flood: list[int] = []
    threads = [threading.Thread(target=_flood, args=(space, until, flood)) for _ in range(FLOOD_THREADS)]
    for t in threads:
        t.start()
    time.sleep(2)                                   # the flood is on before the other visitor comes
    visitor, results = uuid.uuid4().hex, []
    with httpx.Client(timeout=60) as http:
        while time.monotonic() < until:
            results.append(_served(http, space, visitor))
            time.sleep(0.5)
    for t in threads:
        t.join()
    served = sum(ok for _, ok in results)
    assert len(results) >= 10 and served >= 0.95 * len(results), (served, results)
    print(f"{seconds:g} s: the flood sent {len(flood)} requests ({flood.count(429)} refused with 429); the other "
          f"visitor was served {served} of {len(results)}")
    assert len(flood) >= 20 * seconds and flood.count(429) > flood.count(200), (len(flood), set(flood))
    assert set(flood) <= {200, 429}, "no server errors, no 'queue is full'"


def test_a_refused_request_says_why(space):
    session = uuid.uuid4().hex
    with httpx.Client(timeout=30) as http:
        refused = [r for r in (_join(http, space, session) for _ in range(40)) if r.status_code != 200]
    assert refused and refused[0].status_code == 429
    assert "too many requests at once" in refused[0].json()["detail"].lower()


def test_a_request_without_a_session_is_refused(space):
    """The plain HTTP API (`/call/<name>`) may leave the session out: it could not be counted, so it is refused."""
    with httpx.Client(timeout=30) as http:
        called = http.post(space.url + "call/explore_image", json={"data": space.args})
    assert called.status_code == 400 and "browser session" in called.json()["detail"]


def test_a_page_load_is_held_to_the_loose_limit_and_its_first_image_is_not(space):
    """A page's listings wait for it to say which browser it is (chained after that load event) and stay light,
    as do the lookups its filled-in choices set off; Explore's first image, chained after its listing, and a
    translation set off by a new photo or a newly chosen model are inference."""
    from studio.app import _is_heavy
    fns = {f.api_name: f for f in space.fns.values()}
    for name in ("claim_browser", "train_state_on_load", "train_unfinished", "explore_models_on_load", "models_on_load",
                 "translate_directions", "translate_example_directions", "models_header", "explain_methods",
                 "train_model_changed"):
        assert not _is_heavy(fns[name], space.fns), name
    assert fns["train_unfinished"].trigger_after == fns["claim_browser"]._id
    for name in ("explore_first_image", "explore_image", "train_start", "translate_on_change", "translate_on_model",
                 "translate_live"):
        assert _is_heavy(fns[name], space.fns), name


def test_uploads_and_generated_files_expire_within_an_hour_on_a_shared_studio_only(space, tmp_path):
    assert space.delete_cache == (600, 3600)       # every 10 minutes, what is older than an hour
    demo, _ = _studio(tmp_path, shared=False)
    demo.close()
    assert demo.delete_cache == (86400, 86400)


def test_a_local_studio_limits_nobody(tmp_path):
    demo, studio = _studio(tmp_path, shared=False)
    try:
        session = uuid.uuid4().hex
        with httpx.Client(timeout=30) as http:
            assert {_join(http, studio, session).status_code for _ in range(30)} == {200}
    finally:
        demo.close()


def test_the_bucket_refills_at_its_rate():
    from studio.visitors import Throttle
    t = Throttle(heavy_at_once=100, at_once=100, per_s=10, burst=20)
    assert all(t.admits("a", True, 0, 0, now=0.0) for _ in range(20))
    assert not t.admits("a", True, 0, 0, now=0.0)
    assert t.admits("b", True, 0, 0, now=0.0), "another visitor has their own bucket"
    assert t.admits("a", True, 0, 0, now=0.11) and not t.admits("a", True, 0, 0, now=0.11)
    assert all(t.admits("a", False, 0, 0, now=0.11) for _ in range(50)), "page loads and polls are not counted"
    fresh = Throttle()
    assert not fresh.admits("c", True, busy_heavy=4, busy=4), "four inference events wait or run already"
    assert fresh.admits("c", False, busy_heavy=4, busy=4) and not fresh.admits("c", False, busy_heavy=0, busy=16)
