"""The permanent fault suite: the hostile corpus (tests/hostile.py) through every entry point.

Entry points: the CLI (`gancore.cli.main`, stderr captured), the HTTP service (FastAPI's test client and,
for concurrency, a real uvicorn on loopback) and the studio's services (what every Gradio handler calls).
For every case and entry point: no traceback, no HTTP 500, no internal error; a refusal is one line that
names the file and the problem; files the product should use (CMYK, 16-bit, animated) are used.

`FAULT_TABLE=path.json pytest tests/test_faults.py` also writes the per entry point tally.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hostile import Case, build_corpus
from test_export import save_tiny

from gancore.cli import main as cli
from gancore.errors import describe

TALLY: dict = defaultdict(lambda: {"cases": 0, "accepted": 0, "clean_refusals": 0, "tracebacks": 0,
                                   "http_500": 0, "unclear": 0})

# What only reading the tensors can reveal: header-only views (inspect, the Models table) may accept these.
TENSOR_LEVEL = {"nan_weights"}


def _record(entry: str, outcome: str) -> None:
    t = TALLY[entry]
    t["cases"] += 1
    t[outcome] += 1


@pytest.fixture(scope="session", autouse=True)
def _write_table():
    yield
    if os.environ.get("FAULT_TABLE"):
        Path(os.environ["FAULT_TABLE"]).write_text(json.dumps(TALLY, indent=2))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from helpers import tiny_config

    from gancore.training import TrainConfig, Trainer
    d = tmp_path_factory.mktemp("corpus")
    dcgan = Path(save_tiny("dcgan", d / "tiny_dcgan.safetensors"))
    cyc = Path(save_tiny("cyclegan", d / "tiny_cyclegan.safetensors"))
    run = d / "resumable"
    for _ in Trainer(TrainConfig(model="dcgan", data="synthetic", steps=1, batch_size=4, data_limit=8, out_dir=str(run),
                                 sample_every_steps=0, checkpoint_every_steps=0, ema_decay=0),
                     tiny_config("dcgan")).run():
        pass
    cases = build_corpus(d / "hostile", dcgan, cyc, resumable=run / "last.safetensors")
    return {c.name + ":" + c.kind: c for c in cases} | {"_dcgan": dcgan, "_cyclegan": cyc, "_root": d}


def _of(corpus, kind):
    return [c for k, c in corpus.items() if isinstance(c, Case) and c.kind == kind]


def _one_line_naming(msg: str, case: Case) -> bool:
    msg = msg.strip()
    return bool(msg) and "\n" not in msg and case.path.name in msg and "Traceback" not in msg


def _run_cli(capsys, args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _check_cli(entry, capsys, args, case: Case, expect_ok: bool):
    rc, out, err = _run_cli(capsys, args)
    assert "Traceback" not in out + err and "internal error" not in out + err, (case.name, out, err)
    if expect_ok:
        assert rc == 0, (case.name, out, err)
        _record(entry, "accepted")
        return out
    assert rc != 0, (case.name, "accepted a hostile file", out)
    assert _one_line_naming(err.removeprefix("error: "), case), (case.name, err)
    _record(entry, "clean_refusals")
    return err


def _check_exc(entry, fn, case: Case, expect_ok: bool):
    try:
        result = fn()
    except Exception as e:   # the studio's handlers show describe(e); it must be guidance, not a bug report
        d = describe(e)
        if d.internal:
            _record(entry, "tracebacks")
            pytest.fail(f"{case.name}: internal error {e!r}")
        assert not expect_ok, (case.name, d.message)
        assert _one_line_naming(d.message, case), (case.name, d.message)
        _record(entry, "clean_refusals")
        return None
    assert expect_ok, (case.name, "accepted a hostile file")
    _record(entry, "accepted")
    return result


# ----------------------------------------------------------------------------------------------------
# Checkpoints: CLI inspect / sample / translate / export / eval / serve, the service, the studio


def test_checkpoints_cli(corpus, capsys, tmp_path):
    image = next(c for c in _of(corpus, "image") if c.name == "good_png").path
    for c in _of(corpus, "checkpoint"):
        noise = c.ok and "dcgan" in c.name
        _check_cli("cli inspect", capsys, ["inspect", c.path], c, c.ok or c.name in TENSOR_LEVEL)
        if c.ok and not noise:
            continue
        _check_cli("cli sample", capsys, ["sample", c.path, "--n", "2", "--out", tmp_path / "s"], c, c.ok)
        _check_cli("cli translate", capsys, ["translate", c.path, image, "--out", tmp_path / "t"], c, False) \
            if not c.ok else None
        _check_cli("cli export", capsys, ["export", c.path, "--out", tmp_path / "x.onnx"], c, False) \
            if not c.ok else None
        _check_cli("cli eval", capsys, ["eval", c.path, "--n", "8"], c, False) if not c.ok else None
        _check_cli("cli serve", capsys, ["serve", c.path, "--port", "1"], c, False) if not c.ok else None


def test_checkpoints_service(corpus):
    from gancore.deploy import serve
    for c in _of(corpus, "checkpoint"):
        if c.ok:
            continue
        _check_exc("service create_app", lambda: serve.create_app(c.path), c, False)


def test_checkpoints_studio(corpus, tmp_path):
    import shutil

    from studio.services import Services
    runs = tmp_path / "runs"
    for c in _of(corpus, "checkpoint"):
        dst = runs / c.name / c.path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(c.path, dst)
    s = Services(weights_dir=tmp_path / "none", runs_dir=runs)
    listed = {Path(p).parent.name for _, p in s.list_checkpoints()}
    table = {Path(r["path"]).parent.name: r for r in s.models_table()}
    for task in ("noise", "translate", "inpaint"):
        s.list_checkpoints(task)
    for c in _of(corpus, "checkpoint"):
        usable = c.ok or c.name in TENSOR_LEVEL
        assert (c.name in listed) == usable, c.name
        assert (table[c.name]["model"] == "unreadable") == (not usable), (c.name, table[c.name])
        if not usable:
            assert table[c.name]["metrics"], c.name
        _check_exc("studio load", lambda: s.load(runs / c.name / c.path.name), c, c.ok)


# ----------------------------------------------------------------------------------------------------
# Images: CLI translate, the service's /translate, the studio's Translate


def test_images_cli_service_studio(corpus, capsys, tmp_path):
    from fastapi.testclient import TestClient

    from gancore.deploy import serve
    from studio.services import Services
    cyc = corpus["_cyclegan"]
    client = TestClient(serve.create_app(cyc))
    studio = Services(weights_dir=cyc.parent, runs_dir=tmp_path / "runs")
    for c in _of(corpus, "image"):
        rc, out, err = _run_cli(capsys, ["translate", cyc, c.path, "--out", tmp_path / "t"])
        assert "Traceback" not in out + err, (c.name, out, err)
        if c.ok:
            assert rc == 0 and "1 translated" in out, (c.name, out, err)
            _record("cli translate", "accepted")
        else:
            line = next(ln for ln in out.splitlines() if ln.startswith("ERROR"))
            assert rc != 0 and c.path.name in line and "internal" not in line, (c.name, out)
            _record("cli translate", "clean_refusals")

        r = client.post("/translate", files={"image": (c.path.name, c.path.read_bytes(), "application/octet-stream")})
        if r.status_code >= 500:
            _record("service /translate", "http_500")
        assert r.status_code < 500, (c.name, r.status_code, r.text)
        if c.ok:
            assert r.status_code == 200, (c.name, r.text)
            _record("service /translate", "accepted")
        else:
            detail = r.json()["detail"]
            assert r.status_code in (400, 413, 422) and _one_line_naming(detail, c), (c.name, r.status_code, detail)
            if "bomb" in c.name:
                assert r.status_code == 413, (c.name, r.status_code)
            _record("service /translate", "clean_refusals")

        _check_exc("studio translate", lambda: studio.translate(str(cyc), str(c.path), "AB", True), c, c.ok)


def test_sixteen_bit_png_is_not_white(corpus):
    from gancore.data import open_image, to_rgb_or_grey
    c = next(c for c in _of(corpus, "image") if c.name == "png16")
    grey = np.asarray(to_rgb_or_grey(open_image(c.path), 1), dtype=np.float64)
    assert grey[:, 0].mean() < 5 and grey[:, -1].mean() > 250 and 100 < grey.mean() < 155
    rgb = np.asarray(to_rgb_or_grey(open_image(c.path), 3), dtype=np.float64)
    assert 100 < rgb.mean() < 155


# ----------------------------------------------------------------------------------------------------
# Zips: unpacking (the studio's uploads, `--data x.zip`)


def test_zips(corpus, capsys, tmp_path):
    from gancore.files import safe_extract_zip
    from studio.services import Services
    studio = Services(weights_dir=tmp_path / "none", runs_dir=tmp_path / "runs")
    for c in _of(corpus, "zip"):
        target = tmp_path / "x" / c.name
        result = _check_exc("engine safe_extract_zip", lambda: safe_extract_zip(c.path, target), c,
                            c.ok or c.name in ("zip_no_images", "zip_bad_images"))
        if result is not None:
            files = [p for p in Path(result).rglob("*") if p.is_file()]
            assert all(Path(result) in p.resolve().parents for p in files)
            assert not any(p.is_symlink() for p in Path(result).rglob("*"))
            assert not (tmp_path / "evil.png").exists() and not Path("/abs/evil.png").exists()
            assert sum(p.stat().st_size for p in files) < 10_000_000
        if c.ok:
            continue
        _check_exc("studio start_training", lambda: studio.start_training(model="dcgan", data="upload", upload=str(c.path),
                                                                        steps=1, batch_size=2), c, False)
        _check_cli("cli train", capsys, ["train", "--model", "dcgan", "--data", c.path, "--steps", "1",
                                         "--out-dir", tmp_path / "r" / c.name, "--quiet"], c, False)
    left = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()] if (tmp_path / "runs").exists() else []
    assert not left, f"refused uploads left files behind: {left[:3]}"


# ----------------------------------------------------------------------------------------------------
# ONNX files: the service and `gancore serve`


def test_onnx(corpus, capsys):
    from gancore.deploy import serve
    for c in _of(corpus, "onnx"):
        _check_exc("service create_app", lambda: serve.create_app(c.path), c, False)
        _check_cli("cli serve", capsys, ["serve", c.path, "--port", "1"], c, False)


# ----------------------------------------------------------------------------------------------------
# The service's JSON: non-finite numbers, garbage, and 16 at once on a real server

BAD_BODIES = ['{"n": 1, "truncation": NaN}', '{"n": 1, "truncation": Infinity}', '{"n": 1, "truncation": -Infinity}',
              '{"n": 1, "truncation": 1e309}', '{"n": NaN}', '{"n": 1e309}', '{"seed": Infinity}',
              '{"noise": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}', '{"noise": [[1e309, 0, 0, 0, 0, 0, 0, 0]]}',
              '{"n": "lots"}', '{"n": 1', "NaN", "[]", '{"n": 100000}', '{"format": "gif"}']


def test_service_json(corpus):
    from fastapi.testclient import TestClient

    from gancore.deploy import serve
    client = TestClient(serve.create_app(corpus["_dcgan"]))
    for body in BAD_BODIES:
        r = client.post("/generate", content=body, headers={"content-type": "application/json"})
        _record("service /generate JSON", "http_500" if r.status_code >= 500 else "clean_refusals")
        assert r.status_code == 422, (body, r.status_code, r.text)
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail, (body, detail)
        assert "nan" not in body.lower() or "finite" in detail or "JSON" in detail, (body, detail)


def test_service_json_concurrent(corpus):
    """16 concurrent non-finite requests against uvicorn: all 422, no resets."""
    import httpx
    import uvicorn
    from conftest import _free_port

    from gancore.deploy import serve
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(serve.create_app(corpus["_dcgan"]), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)

        def post(i):
            body = BAD_BODIES[i % 9]
            with httpx.Client(timeout=30) as c:
                return c.post(f"http://127.0.0.1:{port}/generate", content=body,
                              headers={"content-type": "application/json"}).status_code
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(post, range(48)))
        assert codes == [422] * 48, codes
    finally:
        server.should_exit = True
        thread.join(10)


# ----------------------------------------------------------------------------------------------------
# One line instead of a traceback: CLI arguments and output locations


def test_cli_arguments_and_outputs(corpus, capsys, tmp_path):
    d, cyc = corpus["_dcgan"], corpus["_cyclegan"]
    image = next(c for c in _of(corpus, "image") if c.name == "good_png").path
    (tmp_path / "file").write_text("x")
    cases = [
        (["sample", d, "--n", "0"], "--n"),
        (["sample", d, "--n", "-3"], "--n"),
        (["sample", d, "--n", "100000000", "--out", tmp_path / "big"], "at most"),
        (["sample", d, "--n", "100000", "--grid", tmp_path / "g.png"], "grid"),
        (["eval", d, "--device", "bogus", "--n", "8"], "bogus"),
        (["eval", d, "--n", "0"], "--n"),
        (["translate", cyc, image, "--out", tmp_path / "t", "--batch-size", "0"], "batch"),
        (["translate", cyc, image, "--out", tmp_path / "t", "--batch-size", "-1"], "batch"),
        (["sample", d, "--grid", "/dev/full"], "/dev/full"),                           # a full disk
        (["sample", d, "--out", tmp_path / "file" / "sub"], "file"),                   # not a folder
        (["sample", d, "--grid", tmp_path / "nowhere" / "g.png"], "nowhere"),
        (["translate", cyc, image, "--out", tmp_path / "file"], "file"),
        (["export", d, "--out", "/dev/full/x.onnx"], "/dev/full"),
        (["eval", d, "--n", "8", "--json", "/dev/full"], "/dev/full"),
    ]
    for args, needle in cases:
        rc, out, err = _run_cli(capsys, args)
        _record("cli arguments/outputs", "clean_refusals" if rc == 2 and "Traceback" not in err else "tracebacks")
        assert rc == 2 and "Traceback" not in out + err, (args, rc, out, err)
        line = err.strip()
        assert "\n" not in line and needle in line and "internal error" not in line, (args, err)


def test_cli_sample_batches(corpus, capsys, tmp_path):
    """Many samples are drawn in batches and written as they come; a small draw is what sample() gives."""
    from PIL import Image

    from gancore.inference import load_model, sample
    d = corpus["_dcgan"]
    rc, out, err = _run_cli(capsys, ["sample", d, "--n", "600", "--seed", "3", "--out", tmp_path / "many"])
    assert rc == 0, err
    assert len(list((tmp_path / "many").glob("*.png"))) == 600
    rc, out, err = _run_cli(capsys, ["sample", d, "--n", "5", "--seed", "3", "--out", tmp_path / "few"])
    same = sample(load_model(d), n=5, seed=3)          # the service and the studio draw these for seed 3
    for i in range(5):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "few" / f"sample_3_{i:04d}.png")), same[i].squeeze())


def test_cli_translate_name_collisions(corpus, capsys, tmp_path):
    from PIL import Image
    cyc = corpus["_cyclegan"]
    good = next(c for c in _of(corpus, "image") if c.name == "good_png").path
    src = tmp_path / "in"
    for sub in ("a", "b"):
        (src / sub).mkdir(parents=True)
        Image.open(good).save(src / sub / "x.jpg")
    Image.open(good).save(src / "a" / "x.png")              # same stem, other suffix, same folder
    rc, out, err = _run_cli(capsys, ["translate", cyc, src, "--out", tmp_path / "out"])
    assert rc == 0 and "3 translated" in out, (out, err)
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert len(written) == 3, written
    # Two files with the same name given directly are both kept too.
    rc, out, err = _run_cli(capsys, ["translate", cyc, src / "a" / "x.jpg", src / "b" / "x.jpg", "--out", tmp_path / "o2"])
    assert rc == 0 and len(list((tmp_path / "o2").rglob("*.png"))) == 2, (out, list((tmp_path / "o2").rglob("*")))


def test_eval_skips_bad_test_images(corpus, monkeypatch, tmp_path):
    from PIL import Image

    from gancore.analysis import evaluation
    cyc = corpus["_cyclegan"]
    good = next(c for c in _of(corpus, "image") if c.name == "good_png").path
    bad = [c.path for c in _of(corpus, "image") if c.name in ("truncated_png", "zero_byte", "text_as_png", "one_pixel")]
    for dom in ("A", "B"):
        (tmp_path / dom).mkdir()
        for i in range(3):
            Image.open(good).save(tmp_path / dom / f"{i}.png")
    for p in bad:
        (tmp_path / "A" / p.name).write_bytes(p.read_bytes())

    class Features:             # the Inception network is not needed to test the bookkeeping
        def __init__(self, device="cpu"):
            pass

        def __call__(self, images):
            return np.random.default_rng(len(images)).standard_normal((len(images), 8))
    monkeypatch.setattr(evaluation, "InceptionFeatures", Features)
    result = evaluation.evaluate(cyc, data_a=tmp_path / "A", data_b=tmp_path / "B", device="cpu")
    assert result["A_to_B"]["n_fake"] == 3
    assert sorted(Path(s.split(":")[0]).name for s in result["skipped_files"]) == sorted(p.name for p in bad)


def test_config_validation():
    from gancore import registry
    from gancore.config import ConfigError
    from gancore.recipes import recommended
    for bad in (dict(lr_g=float("nan")), dict(lr_d=float("inf")), dict(batch_size=0), dict(steps=-1),
                dict(minutes=float("inf")), dict(batch_size="8"), dict(beta1=2.0)):
        with pytest.raises(ConfigError):
            recommended("dcgan", **bad)
    for bad in ('{"base_channels": 20000}', '{"base_channels": -5}', '{"base_channels": "x"}',
                '{"latent_dim": 1e9}', '{"latent_dim": NaN}', '{"image_size": 31}', '{"loss": 3}'):
        with pytest.raises(ConfigError):
            registry.config_from_json("dcgan", bad)
    assert registry.config_from_json("dcgan", '{"base_channels": 8}').base_channels == 8


def test_seeds_and_learning_rates_are_bounded_with_a_clear_message():
    from gancore.analysis.masking import make_mask
    from gancore.config import ConfigError
    from gancore.distill import DistillConfig
    from gancore.errors import BadInput
    from gancore.imaging import seeded
    from gancore.recipes import recommended
    for seed in (-1, 2**63, 2**64, 1.5, "7", True):
        with pytest.raises(BadInput, match="seed must be a whole number from 0 to 2.63-1"):
            seeded(seed)
    with pytest.raises(BadInput, match="seed"):
        make_mask("random patches", 0.5, 4, 2**64, 16)
    assert seeded(2**63 - 1).initial_seed() == 2**63 - 1 and seeded(3.0).initial_seed() == 3
    for bad, field in ((dict(seed=2**63), "seed must be a whole number from 0 to 2.63-1"),
                       (dict(lr_g=3.0), "lr_g must be between 0 and 1"), (dict(lr_d=-1e-4), "lr_d")):
        with pytest.raises(ConfigError, match=field):
            recommended("dcgan", **bad)
    for bad, field in ((dict(lr=5.0), "lr must be between 0 and 1"), (dict(seed=-3), "seed")):
        with pytest.raises(ConfigError, match=f"DistillConfig: {field}"):
            DistillConfig(**bad)


def test_zip_member_errors_name_the_zip_and_the_member_never_a_server_path(tmp_path):
    import zipfile

    from gancore.errors import DataError
    from gancore.files import safe_extract_zip
    from gancore.imaging import png_bytes
    long_name = "x" * 300 + ".png"                         # longer than a file name may be (255 bytes)
    with zipfile.ZipFile(tmp_path / "long.zip", "w") as zf:
        zf.writestr("ok.png", png_bytes(np.zeros((8, 8, 3), np.uint8)))
        zf.writestr(long_name, png_bytes(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(DataError) as e:
        safe_extract_zip(tmp_path / "long.zip", tmp_path / "out")
    msg = describe(e.value).message
    assert msg.startswith("long.zip: member ...xxx") and "xxx.png cannot be unpacked" in msg, msg
    assert str(tmp_path) not in msg and len(msg) < 200 and not (tmp_path / "out").exists()
    with zipfile.ZipFile(tmp_path / "bad.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("photos/a.png", b"\x00" * 5000)
    data = bytearray((tmp_path / "bad.zip").read_bytes())
    data[44:50] = b"\xff" * 6                               # damage the compressed stream
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"^bad\.zip: member photos/a\.png is damaged"):
        safe_extract_zip(tmp_path / "bad.zip", tmp_path / "out2")


def test_orphaned_temporary_checkpoints_are_cleaned(corpus, tmp_path):
    import subprocess
    import sys

    from safetensors.torch import load_file

    from gancore import checkpoint as ckpt
    # A writer that died mid-save leaves `.<name>.<pid>.<random>.tmp`; a dead pid's file is removed on the
    # next save into that folder, a live writer's is left alone.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".last.safetensors.{dead.stdout.strip()}.abc.tmp"
    orphan.write_bytes(b"half a checkpoint")
    alive = tmp_path / f".last.safetensors.{os.getpid()}.def.tmp"
    alive.write_bytes(b"being written")
    ckpt.save(tmp_path / "last.safetensors", load_file(str(corpus["_dcgan"])), {"model_type": "dcgan",
              "model_config": ckpt.read_header(corpus["_dcgan"])["model_config"]})
    assert not orphan.exists() and alive.exists()
    assert not [p for p in tmp_path.glob(".last.safetensors.*.tmp") if p != alive]


# ----------------------------------------------------------------------------------------------------
# The studio over HTTP: Gradio's API with hostile photos and settings, the upload cap, a cache per instance


def test_studio_api_hostile_photos_and_settings(studio, corpus):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    client = Client(studio.url, verbose=False)
    h2z = next(p for _, p in studio.services.list_checkpoints("translate"))
    for c in _of(corpus, "image"):
        try:
            out = client.predict(h2z, handle_file(str(c.path)), "AB", False, api_name="/translate")
        except AppError as e:
            msg = str(e)
            assert not c.ok, (c.name, msg)
            assert "Traceback" not in msg and "internal error" not in msg and c.path.name in msg, (c.name, msg)
            _record("studio API /translate", "clean_refusals")
            continue
        assert c.ok and out[0], c.name
        _record("studio API /translate", "accepted")
    # gradio_client will not send NaN; a hand-written request will (Python's JSON reader takes NaN and Infinity).
    import httpx
    with httpx.Client(base_url=studio.url.rstrip("/"), timeout=60) as http:
        for lr, budget in (("NaN", "5"), ("Infinity", "5"), ("0.0002", "Infinity"), ("1e309", "5")):
            body = f'{{"data": ["dcgan", "mnist", null, null, "minutes", {budget}, 16, {lr}, 0, ""]}}'
            r = http.post("/gradio_api/call/train_start", content=body, headers={"content-type": "application/json"})
            assert r.status_code < 500, (lr, budget, r.status_code, r.text)
            if r.status_code != 200:
                _record("studio API /train_start", "clean_refusals")
                continue
            with http.stream("GET", f"/gradio_api/call/train_start/{r.json()['event_id']}") as stream:
                lines = list(stream.iter_lines())
            text = "\n".join(lines)
            assert "event: error" in lines and "Traceback" not in text and "internal error" not in text, text
            msg = json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))
            # Ours ("lr_g must be a finite number") or Gradio's own Number check ("greater than maximum").
            assert msg.get("error") and "\n" not in msg["error"], msg
            _record("studio API /train_start", "clean_refusals")
    assert not studio.services.is_training()


STUDIO_PROCESS = """
import os, sys, time
from studio.app import launch
from studio.services import Services
demo = launch("127.0.0.1", int(sys.argv[1]), services=Services(weights_dir=sys.argv[2], runs_dir=sys.argv[3]),
              prevent_thread_lock=True, quiet=True)
print("READY", os.environ["GRADIO_TEMP_DIR"], flush=True)
time.sleep(600)
"""


@pytest.mark.slow          # two Gradio start-ups: about 35 s on two busy cores
def test_two_studios_have_their_own_cache_and_an_upload_cap(tmp_path):
    """Two studio processes on one machine: separate Gradio caches (one never serves the other's files), each
    removed when its studio exits; uploads over GANSTUDIO_MAX_UPLOAD are refused with a 413."""
    import subprocess
    import sys

    import httpx
    from conftest import ROOT, _free_port
    env = {**os.environ, "GANSTUDIO_MAX_UPLOAD": "1mb", "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("GRADIO_TEMP_DIR", None)
    ports = [_free_port(), _free_port()]
    procs = [subprocess.Popen([sys.executable, "-c", STUDIO_PROCESS, str(p), str(tmp_path / "w"), str(tmp_path / f"r{p}")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
             for p in ports]
    try:
        caches = []
        for proc in procs:
            line = proc.stdout.readline().split()
            assert line and line[0] == "READY", line
            caches.append(line[1])
        assert caches[0] != caches[1] and all("ganstudio-gradio-" in c for c in caches), caches
        with httpx.Client(timeout=60) as http:
            a, b = (f"http://127.0.0.1:{p}" for p in ports)
            r = http.post(f"{a}/gradio_api/upload", files=[("files", ("big.zip", b"\0" * (2 * 1024 * 1024)))])
            assert r.status_code == 413 and "at most 1 MB" in r.text, (r.status_code, r.text)
            r = http.post(f"{a}/gradio_api/upload", files=[("files", (f"{i}.zip", b"\0" * 800_000)) for i in range(3)])
            assert r.status_code == 413, "the request as a whole is capped, not only each file"
            r = http.post(f"{a}/gradio_api/upload", files=[("files", ("small.png", b"\0" * 1000))])
            assert r.status_code == 200, r.text
            uploaded = r.json()[0]
            assert uploaded.startswith(caches[0]) and http.get(f"{a}/gradio_api/file={uploaded}").status_code == 200
            assert http.get(f"{b}/gradio_api/file={uploaded}").status_code in (403, 404)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert not any(Path(c).exists() for c in caches), "a studio left its Gradio cache behind"
