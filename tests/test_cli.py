"""The CLI end to end on real MNIST for a few steps: train, inspect, sample, resume, bad input."""
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from gancore.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def test_train_inspect_sample_resume(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli(["train", "--model", "dcgan", "--data", "mnist", "--steps", "6", "--batch-size", "16",
              "--out-dir", str(out), "--sample-every-steps", "3", "--save-samples", "--set", "base_channels=8",
              "--set", "d_base_channels=8", "--data-limit", "512", "--quiet"])
    assert rc == 0
    ckpt = out / "last.safetensors"
    assert ckpt.is_file() and (out / "sample_0000003.png").is_file()
    capsys.readouterr()
    assert cli(["inspect", str(ckpt)]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["model_type"] == "dcgan" and header["train"]["step"] == 6
    assert header["model_config"]["base_channels"] == 8
    assert cli(["sample", str(ckpt), "--n", "5", "--seed", "2", "--out", str(tmp_path / "s"),
                "--grid", str(tmp_path / "grid.png")]) == 0
    files = sorted((tmp_path / "s").iterdir())
    assert len(files) == 5 and Image.open(files[0]).size == (28, 28)
    assert Image.open(tmp_path / "grid.png").size[0] > 28
    assert cli(["train", "--resume", str(ckpt), "--steps", "8", "--out-dir", str(out), "--quiet"]) == 0
    capsys.readouterr()
    cli(["inspect", str(ckpt)])
    assert json.loads(capsys.readouterr().out)["train"]["step"] == 8


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"hello")
    assert cli(["inspect", str(bad)]) == 2
    assert "x.safetensors" in capsys.readouterr().err
    assert cli(["train", "--model", "nope", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "dcgan" in err                   # one line naming the known models
    assert cli(["train", "--model", "dcgan", "--steps", "1", "--set", "colour=blue"]) == 2
    assert "unknown model setting" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli(["train", "--model", "dcgan", "--data", str(tmp_path / "empty"), "--steps", "1",
                "--out-dir", str(tmp_path / "r")]) == 2
    assert "no usable image" in capsys.readouterr().err


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "gancore", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "translate" in r.stdout


def test_every_flag_explains_itself(capsys):
    from gancore import registry
    from gancore.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"gancore {name} {'/'.join(action.option_strings) or action.dest} has no help"
    model_flag = next(a for a in commands["train"]._actions if a.dest == "model")
    assert sorted(model_flag.choices) == registry.list_models()
    assert cli(["train", "--model", "cyclegan", "--list-settings"]) == 0
    listed = capsys.readouterr().out
    for field in ("lambda_cycle", "res_blocks", "load_size"):
        line = next(line for line in listed.splitlines() if line.split()[:1] == [field])
        assert len(line.split()) > 4, line          # name, type, default and a meaning
