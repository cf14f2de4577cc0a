"""The Export tab's plain handlers and its wiring (no browser)."""
from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")

from test_export import save_tiny  # noqa: E402

from gancore.deploy.export import export_name, read_metadata  # noqa: E402
from studio.tabs import export as export_tab  # noqa: E402


class FakeServices:
    def __init__(self, runs_dir, checkpoints):
        self.runs_dir = runs_dir
        self._checkpoints = checkpoints

    def list_checkpoints(self, task=None):
        return [(p.split("/")[-1], p) for p in self._checkpoints]

    def load(self, path):
        from gancore.inference import load_model
        return load_model(path)

    def shown(self, text):
        return text


def test_run_export_writes_under_runs_exports(tmp_path):
    ckpt = save_tiny("cyclegan", tmp_path / "tiny_cyc.safetensors")
    services = FakeServices(tmp_path / "runs", [ckpt])
    text, path, command = export_tab.run_export(services, ckpt, "G_BA", "fp32")
    assert path.startswith(str(tmp_path / "runs" / "exports")) and path.endswith("tiny_cyc_G_BA_fp32.onnx")
    assert read_metadata(path)["network"] == "G_BA"
    assert "Same results as PyTorch" in text and "largest difference" in text
    assert command.startswith("gancore serve ") and path in command


def test_two_runs_export_to_files_named_after_their_runs(tmp_path):
    """Every run saves last.safetensors: the export takes the run folder's name, so one run never overwrites
    another's file."""
    paths = []
    for run in ("dcgan-a", "dcgan-b"):
        (tmp_path / run).mkdir()
        ckpt = save_tiny("dcgan", tmp_path / run / "last.safetensors")
        paths.append(export_tab.run_export(FakeServices(tmp_path / "runs", [ckpt]), ckpt, "G_AB", "fp32")[1])
    assert [p.split("/")[-1] for p in paths] == ["dcgan-a_G_fp32.onnx", "dcgan-b_G_fp32.onnx"]
    assert export_name(tmp_path / "dcgan-a" / "best.safetensors", "G", "int8") == "dcgan-a_best_G_int8.onnx"
    assert export_name("weights/horse2zebra.safetensors", "G_AB") == "horse2zebra_G_AB_fp32.onnx"


def test_run_export_int8_report_and_errors(tmp_path):
    ckpt = save_tiny("dcgan", tmp_path / "tiny_dcgan.safetensors")
    services = FakeServices(tmp_path / "runs", [ckpt])
    text, path, _ = export_tab.run_export(services, ckpt, "G_AB", "int8")
    assert "int8 quality" in text and "dB PSNR" in text and read_metadata(path)["precision"] == "int8"
    with pytest.raises(ValueError, match="Choose a model"):
        export_tab.run_export(services, "", "G_AB", "fp32")
    with pytest.raises(ValueError, match="fp32 or int8"):
        export_tab.run_export(services, ckpt, "G_AB", "fp16")


def test_build_wires_named_events(tmp_path):
    ckpt = save_tiny("dcgan", tmp_path / "d.safetensors")
    services = FakeServices(tmp_path / "runs", [ckpt])
    with gr.Blocks() as demo:
        export_tab.build(services)
    names = {d.get("api_name") for d in demo.config["dependencies"]}
    assert {"export_model", "export_models"} <= names
    fn = next(f for f in demo.fns.values() if f.api_name == "export_model").fn
    with pytest.raises(gr.Error):
        fn(str(tmp_path / "missing.safetensors"), "G_AB", "fp32")      # engine error -> short gr.Error
    report, path, command = fn(ckpt, "G_AB", "fp32")
    assert path.endswith(".onnx") and "gancore serve" in command


def test_export_through_the_studio_api(studio):
    """The running studio: the Export tab's named endpoint exports, and an engine error is a short message."""
    gradio_client = pytest.importorskip("gradio_client")
    from gradio_client.exceptions import AppError
    client = gradio_client.Client(studio.url, verbose=False)
    report, file, command = client.predict(studio.tiny, "G_AB", "fp32", api_name="/export_model")
    assert "Same results as PyTorch" in report and str(file).endswith(".onnx")
    assert command.startswith("gancore serve ") and str(studio.runs / "exports") in command
    with pytest.raises(AppError) as e:
        client.predict(str(studio.runs / "no-such-model.safetensors"), "G_AB", "fp32", api_name="/export_model")
    msg = str(e.value)
    assert "no-such-model" in msg and "Traceback" not in msg and 'File "' not in msg
