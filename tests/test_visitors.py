"""Strangers sharing one studio (a public Space, `SPACE_ID` set): each visitor sees and touches only their own
runs; locally the single user owns everything. Two gradio_client clients are two visitors (no shared cookies);
a browser is one visitor across reloads (its key in localStorage), another browser another one.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from helpers import app_error, emoji_zip  # noqa: E402

LONG_RUN = ("mlp", "mnist", None, None, "minutes", 10, 16, 2e-4, 0)      # the Train form, up to the run name


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """A second studio in this process, built as on a Space (SPACE_ID set), with a shipped generator."""
    import shutil
    from types import SimpleNamespace

    from conftest import ROOT, _free_port

    from studio.app import CSS, THEME, build_app
    from studio.services import Services

    base = tmp_path_factory.mktemp("space")
    weights, runs = base / "weights", base / "runs"
    weights.mkdir()
    shutil.copy(ROOT / "weights" / "mlp_mnist.safetensors", weights)
    os.environ["SPACE_ID"] = "someone/gan-studio"
    try:
        services = Services(weights_dir=weights, runs_dir=runs)
        demo = build_app(services)
    finally:
        del os.environ["SPACE_ID"]
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, theme=THEME, css=CSS)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", services=services, weights=weights, runs=runs, demo=demo)
    services.shutdown(60)
    demo.close()


def _step(client) -> int:
    bar = client.predict(api_name="/train_poll")[0]
    found = re.search(r"step (\d+)", bar)
    return int(found.group(1)) if found else 0


def _wait_for_steps(client, timeout=90):
    deadline = time.time() + timeout
    while _step(client) == 0 and time.time() < deadline:
        time.sleep(0.3)
    assert _step(client) > 0, "the run did not start"


def _served_all(demo, timeout=60) -> None:
    """Until nothing waits in or runs through the queue: the events a page load sets off are over. (A click while
    they run may find this page's 4 places for heavy events taken by the model lists' change events.)"""
    queue, deadline = demo._queue, time.time() + timeout
    while time.time() < deadline and (any(q.queue for q in queue.event_queue_per_concurrency_id.values())
                                      or any(queue.active_jobs)):
        time.sleep(0.1)


def _choices(dropdown) -> list[str]:
    return [c[1] for c in dropdown["choices"]]


def test_a_visitor_sees_and_changes_only_their_own_runs(space):
    a, b = Client(space.url, verbose=False), Client(space.url, verbose=False)
    a.predict(*LONG_RUN, "a-run", api_name="/train_start")
    _wait_for_steps(a)
    # B sees an idle trainer that is busy for someone else: no progress, no samples, no names or paths.
    bar, _, grid, note, *_ = b.predict(api_name="/train_poll")
    assert 'data-status="idle"' in bar and grid is None
    assert "busy" in note and "a-run" not in note and str(space.runs) not in note
    busy = app_error(lambda: b.predict(*LONG_RUN, "b-run", api_name="/train_start"))
    assert "busy" in busy and "number 1 in line" in busy
    assert "Nothing" in b.predict(api_name="/train_stop")
    assert _step(a) > 0 and space.services.is_training()
    assert "Stopping" in a.predict(api_name="/train_stop")
    space.services.wait(60)

    [path] = [str(p) for p in space.runs.glob("*/a-run/last.safetensors")]   # runs/<owner>/a-run/
    mine = "a-run/last.safetensors"                    # how A's page names it: relative to A's own runs folder
    assert mine in _choices(a.predict(None, api_name="/train_unfinished"))
    assert mine not in _choices(b.predict(None, api_name="/train_unfinished"))
    for theirs in (path, mine):                        # the server's path, or A's name for it in B's folder
        assert "not in your runs" in app_error(lambda: b.predict(theirs, api_name="/train_resume"))
    assert not space.services.is_training()

    table, dropdown = a.predict(None, api_name="/models_list")
    assert ("a-run/last", mine) in [tuple(c) for c in dropdown["choices"]]
    assert ("mlp_mnist (shipped)", "@shipped/mlp_mnist.safetensors") in [tuple(c) for c in dropdown["choices"]]
    assert str(space.runs) not in json.dumps(dropdown) and str(space.weights) not in json.dumps(dropdown)
    table, dropdown = b.predict(None, api_name="/models_list")
    assert mine not in _choices(dropdown) and not any("a-run" in row[0] for row in table["data"])
    assert any(row[0] == "mlp_mnist (shipped)" for row in table["data"])        # shipped weights are for all

    for theirs in (path, mine, "../" + Path(path).parent.parent.name + "/" + mine):
        refused = [lambda: b.predict(theirs, api_name="/models_header"),
                   lambda: b.predict(theirs, 0, 4, 1.0, api_name="/explore_grid"),
                   lambda: b.predict(theirs, 0, 1.0, 0, 0, 0, 0, 0, 0, api_name="/explore_image"),
                   lambda: b.predict(theirs, "", "fp32", api_name="/export_model"),
                   lambda: b.predict(theirs, "mine now", api_name="/models_rename"),
                   lambda: b.predict(theirs, True, api_name="/models_delete")]
        for call in refused:
            said = app_error(call)
            assert "not in the studio" in said or "no such checkpoint" in said, said
    assert Path(path).is_file() and not list(space.runs.rglob("mine now*"))

    # A may do all of it, by the page's names or the full path; B may read the shipped weights but not change them.
    assert a.predict(mine, api_name="/models_header")["model_type"] == "mlp"
    assert a.predict(path, api_name="/models_header")["model_type"] == "mlp"
    _, onnx, command = a.predict(mine, "", "fp32", api_name="/export_model")
    assert Path(onnx).suffix == ".onnx" and str(space.runs) not in command and "exports/" in command
    assert Path(a.predict(mine, 0, 4, 1.0, api_name="/explore_grid")).is_file()
    shipped = "@shipped/mlp_mnist.safetensors"
    assert Path(b.predict(shipped, 0, 4, 1.0, api_name="/explore_grid")).is_file()
    assert "shipped" in app_error(lambda: b.predict(shipped, True, api_name="/models_delete"))
    _, renamed, note = a.predict(mine, "mine", api_name="/models_rename")
    assert "a-run/mine" in note and renamed["value"] == "a-run/mine.safetensors"
    assert Path(path).with_name("mine.safetensors").is_file()
    for own in Path(path).parent.glob("*.safetensors"):       # mine, and best if the run kept one
        a.predict(str(own), True, api_name="/models_delete")
    assert not Path(path).parent.exists()                     # the run's folder goes with its last model


def test_a_visitor_over_quota_is_told_what_to_do(space):
    a = Client(space.url, verbose=False)
    space.services.visitors.max_runs = 0
    try:
        msg = app_error(lambda: a.predict(*LONG_RUN, "one-too-many", api_name="/train_start"))
    finally:
        space.services.visitors.max_runs = 3
    assert "most this shared studio allows" in msg and not space.services.is_training()


@pytest.mark.browser
def test_a_reloaded_page_keeps_its_run_and_another_browser_does_not_see_it(space):
    """A's page starts a run, reloads and still sees and stops it, and after another reload can resume it; B (a
    second browser) and an API client see an idle trainer and none of A's runs. No server path on A's page."""
    import browser  # skips this test without Chromium or Playwright
    space.services.wait(60)
    with browser.sync_api.sync_playwright() as p:
        chromium = browser.launch(p)
        a, b = (chromium.new_context(viewport={"width": 1280, "height": 900}).new_page() for _ in range(2))
        for page in (a, b):
            page.set_default_timeout(60_000)
        a.goto(space.url)
        _served_all(space.demo)
        a.locator("#train-budget input").fill("100000")
        a.get_by_text("More settings").click()
        a.get_by_label("Run name").fill("page-run")
        a.locator("#train-start").click()
        a.locator('#train-progress [data-status="running"]').wait_for()
        assert a.evaluate("localStorage.getItem('gan-studio-owner')"), "the browser keeps its key (encrypted)"
        a.reload()
        a.locator('#train-progress [data-status="running"]').wait_for()
        assert a.locator("#train-start").is_disabled() and a.locator("#train-stop").is_enabled()

        b.goto(space.url)
        b.locator("#train-note").get_by_text("busy with another visitor's run").wait_for()
        assert b.locator('#train-progress [data-status="idle"]').count() == 1 and b.locator("#train-stop").is_disabled()
        client = Client(space.url, verbose=False)
        assert 'data-status="idle"' in client.predict(api_name="/train_poll")[0]

        a.locator("#train-stop").click()
        a.locator("#train-note").get_by_text("Stopping").wait_for()
        space.services.wait(60)
        [run] = space.runs.glob("*/page-run")                  # one folder: the reload did not make a new owner
        a.reload()
        a.locator("#train-unfinished input").wait_for()
        assert a.locator("#train-unfinished input").input_value().startswith("page-run (step ")
        assert str(space.runs) not in a.locator("body").inner_text()
        b.reload()
        b.locator('button[role=tab][data-tab-id="models"]').click()
        browser.sync_api.expect(b.locator("#models-table")).to_contain_text("mlp_mnist (shipped)")
        assert "page-run" not in b.locator("#models-table").text_content() and not b.locator("#train-unfinished").is_visible()
        chromium.close()
    path = str(run / "last.safetensors")
    assert path not in _choices(client.predict(None, api_name="/train_unfinished"))
    assert "not in the studio" in app_error(lambda: client.predict(path, api_name="/models_header"))


def test_old_runs_expire_on_a_shared_studio_only(tmp_path):
    from studio.visitors import Visitors
    old, new = tmp_path / "owner1" / "old-run", tmp_path / "owner2" / "new-run"
    for run in (old, new):
        run.mkdir(parents=True)
        (run / "last.safetensors").write_bytes(b"x")
    day_ago = time.time() - 25 * 3600
    os.utime(old / "last.safetensors", (day_ago, day_ago))
    assert Visitors(tmp_path, shared=False).expire() == [] and old.is_dir()
    assert Visitors(tmp_path, shared=True).expire() == [old]
    assert not old.parent.exists() and new.is_dir()


def test_locally_one_user_owns_everything(studio):
    """No SPACE_ID: two clients are the same person, as before (the whole runs folder is theirs)."""
    a, b = Client(studio.url, verbose=False), Client(studio.url, verbose=False)
    studio.idle()
    assert studio.tiny in _choices(b.predict(None, api_name="/models_list")[1])
    assert Path(b.predict(studio.tiny, 0, 4, 1.0, api_name="/explore_grid")).is_file()
    a.predict(*LONG_RUN, "local-run", api_name="/train_start")
    _wait_for_steps(b)                                           # B sees A's progress
    assert "Stopping" in b.predict(api_name="/train_stop")       # and may stop it
    studio.idle(60)
    path = str(studio.runs / "local-run" / "last.safetensors")
    assert path in _choices(b.predict(None, api_name="/train_unfinished"))
    assert b.predict(path, api_name="/models_header")["model_type"] == "mlp"
    b.predict(path, True, api_name="/models_delete")
    assert not Path(path).exists()


def test_stopping_a_run_removes_its_unpacked_pictures(studio, tmp_path):
    client = Client(studio.url, verbose=False)
    studio.idle()
    icons = emoji_zip(tmp_path / "icons.zip", n=64)
    client.predict("dcgan", "upload", handle_file(str(icons)), None, "minutes", 10, 16, 2e-4, 0, "pictures-run",
                   api_name="/train_start")
    unpacked = studio.runs / "pictures-run" / ".data"
    assert unpacked.is_dir()
    _wait_for_steps(client)
    client.predict(api_name="/train_stop")
    studio.idle(60)
    assert not unpacked.exists() and (studio.runs / "pictures-run" / "last.safetensors").is_file()
    path = str(studio.runs / "pictures-run" / "last.safetensors")
    assert path not in _choices(client.predict(None, api_name="/train_unfinished"))    # not resumable
    assert "removed when it stopped" in app_error(lambda: client.predict(path, api_name="/train_resume"))


def test_the_webcam_is_one_visitors_at_a_time_on_a_short_lease():
    from studio.visitors import Lease
    cam = Lease(seconds=2, turn_s=60)
    assert all(cam.claim("a", now=t) for t in range(0, 30))         # a streams a frame every second
    assert not cam.claim("b", now=29.5)                             # camera in use; b is next in line
    assert all(cam.claim("a", now=t) for t in range(30, 60))
    assert not cam.claim("a", now=60) and cam.claim("b", now=60.5)  # a's turn is over: b's frames go
    assert not cam.claim("a", now=61)
    assert cam.claim("a", now=70)                                   # b stopped sending: the lease ran out


def test_the_services_hand_the_camera_to_one_session_only_when_shared(tmp_path):
    from studio.services import Services
    for shared, b_gets_it in ((True, False), (False, True)):
        services = Services(weights_dir=tmp_path, runs_dir=tmp_path / "runs", shared=shared)
        services.session = lambda: "session-a"
        assert services.claim_camera()
        services.session = lambda: "session-b"
        assert services.claim_camera() is b_gets_it


def test_a_browser_key_must_look_like_one_and_the_pages_remembered_are_bounded(tmp_path):
    from studio.visitors import Browsers, Visitors, new_key, valid_key
    key = new_key()
    assert valid_key(key) and len(key) == 32
    for bad in (None, "", "short", key + "x", key[:-1] + "/", "../" * 10 + "ab", key[:-1] + " ", 42, [key], {"k": key}):
        assert not valid_key(bad), bad
    pages = Browsers(most=3)
    assert pages.claim("page-1", key) == key and pages.identity("page-1") == key
    made = pages.claim("page-2", "../" * 10 + "ab")             # not a key: this browser gets a new one
    assert valid_key(made) and made != key and pages.identity("page-2") == made
    assert pages.claim("page-1", made) == made and pages.identity("page-1") == key, "a page keeps its browser"
    assert pages.identity("api-client") == "api-client" and pages.identity(None) is None
    for page in ("page-3", "page-4"):
        pages.claim(page, new_key())
    assert pages.identity("page-2") == "page-2", "the page used longest ago is forgotten"
    assert pages.identity("page-1") == key

    visitors = Visitors(tmp_path, shared=True)
    for page in ("first page", "reloaded page"):
        visitors.browsers.claim(page, key)
    assert visitors.owner("first page") == visitors.owner("reloaded page") != visitors.owner("another browser's page")
    assert Visitors(tmp_path, shared=False).owner("reloaded page") == ""


def test_messages_on_a_shared_studio_show_no_server_path(tmp_path):
    from studio.services import Services
    text = ("{home}/a-run/last.safetensors: cannot write; {base}/weights/mlp_mnist.safetensors and "
            "'/tmp/gradio/0a1b/photo.jpg' (KID 29.7/4.05, https://example.org/x/y)")
    for shared in (True, False):
        services = Services(weights_dir=tmp_path / "weights", runs_dir=tmp_path / "runs", shared=shared)
        services.session = lambda: "a page"
        mine = text.format(home=services.runs_dir, base=tmp_path)
        expected = ("a-run/last.safetensors: cannot write; mlp_mnist.safetensors and 'photo.jpg' "
                    "(KID 29.7/4.05, https://example.org/x/y)") if shared else mine
        assert services.shown(mine) == expected
