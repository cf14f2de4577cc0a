"""Video and drawing endpoints through gradio_client, against the studio launched on 127.0.0.1.

The webcam endpoint (/translate_live) is a stream event: gradio_client 2.7 cannot read its messages
(KeyError 'process_streaming' in Status.msg_to_status), so it is driven from headless Chromium with a
fake camera instead (tests/test_live_browser.py); the engine side is in tests/test_video.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from clips import pan_frames, write_clip  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from helpers import app_error  # noqa: E402

from gancore import video  # noqa: E402
from gancore.data import load_mnist  # noqa: E402

ENDPOINTS = {"/translate_video", "/translate_live", "/explore_project", "/explore_load_latent",
             "/explore_edit_latent"}


@pytest.fixture(scope="module")
def client(studio):
    return Client(studio.url, verbose=False)


@pytest.fixture(scope="module")
def h2z_model(studio):
    return str(studio.weights / "horse2zebra.safetensors")


@pytest.fixture(scope="module")
def dcgan(studio):
    return str(studio.weights / "dcgan_mnist.safetensors")


@pytest.fixture(scope="module")
def photo(h2z):
    return sorted((h2z / "testA").glob("*.jpg"))[1]




def _path(result) -> str:
    return result["video"] if isinstance(result, dict) else result


def test_the_new_endpoints_have_stable_names(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_a_clip_with_sound_and_a_silent_one(client, h2z_model, photo, tmp_path):
    clip = write_clip(tmp_path / "horse.mp4", pan_frames(photo, 0.5, fps=10), fps=10, audio_s=0.5)
    out, note = client.predict(h2z_model, handle_file(str(clip)), "AB", 0.7, api_name="/translate_video")
    info = video.probe(_path(out))
    assert (info.width, info.height) == (256, 256) and info.has_audio
    assert "5 frames" in note and "sound kept" in note
    silent = write_clip(tmp_path / "silent.mp4", pan_frames(photo, 0.3, fps=10, size=128), fps=10)
    out, note = client.predict(h2z_model, handle_file(str(silent)), "BA", 0.0, api_name="/translate_video")
    assert not video.probe(_path(out)).has_audio and "no sound" in note


def test_bad_clips_get_one_line_messages(client, h2z_model, photo, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 64)
    msg = app_error(lambda: client.predict(h2z_model, handle_file(str(junk)), "AB", 0.7,
                                           api_name="/translate_video"))
    assert "not a readable video" in msg
    long = write_clip(tmp_path / "long.mp4", pan_frames(photo, 31, fps=2, size=32), fps=2)
    msg = app_error(lambda: client.predict(h2z_model, handle_file(str(long)), "AB", 0.7,
                                           api_name="/translate_video"))
    assert "the limit is 30 s" in msg
    assert "add a clip first" in app_error(lambda: client.predict(h2z_model, None, "AB", 0.7,
                                                                  api_name="/translate_video"))


def _drawing(tmp_path, image: np.ndarray) -> dict:
    p = tmp_path / "drawing.png"
    Image.fromarray(image).save(p)
    return {"background": None, "layers": [], "composite": handle_file(str(p))}


def test_draw_find_edit_download_and_load_back(client, dcgan, tmp_path):
    digit = 255 - load_mnist("test")[0][1]                        # a 2, as dark ink on white paper
    digit = np.asarray(Image.fromarray(digit).resize((280, 280), Image.BICUBIC))
    pair, note, npy, edited = client.predict(dcgan, _drawing(tmp_path, digit), None, 0, 0, 0, 0, 0, 0,
                                             api_name="/explore_project")
    assert "dB" in note and "random samples" in note
    side = np.asarray(Image.open(pair))
    assert side.shape[1] > side.shape[0]                           # drawing and reproduction side by side
    z = np.load(npy)
    assert z.shape == (100,) and np.isfinite(z).all()
    # The found code loads back and the sliders edit it.
    loaded, msg = client.predict(dcgan, handle_file(npy), 0, 0, 0, 0, 0, 0, api_name="/explore_load_latent")
    assert "loaded" in msg
    assert np.array_equal(np.asarray(Image.open(loaded)), np.asarray(Image.open(edited)))
    moved, msg = client.predict(dcgan, handle_file(npy), 4.0, 0, 0, 0, 0, 0, api_name="/explore_load_latent")
    assert not np.array_equal(np.asarray(Image.open(moved)), np.asarray(Image.open(loaded)))


def test_an_empty_drawing_and_a_wrong_model_get_one_line_messages(client, dcgan, h2z_model, tmp_path):
    blank = np.full((280, 280, 3), 255, np.uint8)
    msg = app_error(lambda: client.predict(dcgan, _drawing(tmp_path, blank), None, 0, 0, 0, 0, 0, 0,
                                           api_name="/explore_project"))
    assert "the drawing is empty" in msg
    digit = 255 - np.asarray(Image.fromarray(load_mnist("test")[0][0]).resize((280, 280)))
    msg = app_error(lambda: client.predict(h2z_model, _drawing(tmp_path, digit), None, 0, 0, 0, 0, 0, 0,
                                           api_name="/explore_project"))
    assert "choose a generator" in msg
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(3, np.float32))
    msg = app_error(lambda: client.predict(dcgan, handle_file(str(bad)), 0, 0, 0, 0, 0, 0,
                                           api_name="/explore_load_latent"))
    assert "needs 100 numbers" in msg
