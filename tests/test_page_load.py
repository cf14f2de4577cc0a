"""A page load stays quick as runs pile up: with 500 runs on a shared studio the listings a page load asks for
(every tab's model list, the Models table, the unfinished runs) come from a cache kept while the folders stay
as they are, and a run added, renamed or deleted shows at once.
"""
from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from helpers import tiny_config

RUNS = 500
PAGE_LOAD_S = 0.5


def _tiny_checkpoint(path):
    from gancore import checkpoint as ckpt
    from gancore import registry
    from gancore.config import to_json
    cfg = tiny_config("dcgan")
    model = registry.build("dcgan", cfg)
    tensors = {f"{n}.{k}": v for n, net in model.networks().items() for k, v in net.state_dict().items()}
    state = {"step": 4, "epoch": 0, "batch_in_epoch": 4, "finished": False, "param_groups": {}, "rng": {},
             "train_config": {"model": "dcgan", "data": "mnist"}}
    return ckpt.save(path, tensors, {"model_type": "dcgan", "model_config": to_json(cfg),
                                     "train_state": json.dumps(state)})


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A shared studio's services acting for one visitor who keeps 500 runs (runs/<owner>/<run>/last...)."""
    from conftest import ROOT

    from studio.services import Services
    base = tmp_path_factory.mktemp("crowded")
    weights = base / "weights"
    weights.mkdir()
    shutil.copy(ROOT / "weights" / "mlp_mnist.safetensors", weights)
    services = Services(weights_dir=weights, runs_dir=base / "runs", shared=True)
    services.session = lambda: "one visitor"
    tiny = _tiny_checkpoint(base / "tiny.safetensors")
    hour_ago = time.time() - 3600
    for i in range(RUNS):
        run = services.runs_dir / f"run{i:03d}"
        run.mkdir(parents=True)
        shutil.copy(tiny, run / "last.safetensors")
        for path in (run / "last.safetensors", run):  # runs trained earlier, not a moment ago
            os.utime(path, (hour_ago, hour_ago))
    for path in (services.runs_dir, services.runs_dir.parent, weights, weights / "mlp_mnist.safetensors"):
        os.utime(path, (hour_ago, hour_ago))    # a listing changed within the last second is not kept
    return services


def _page_load(services) -> None:
    """What the page-load events list: each tab's models, the Models table, the runs to resume."""
    for task in ("noise", "translate", "inpaint", None):
        services.list_checkpoints(task)
    services.models_table()
    services.interrupted_runs()


def test_a_page_load_with_500_runs_reads_no_header_twice(crowded, monkeypatch):
    _page_load(crowded)                               # the first listing reads every header once
    assert len(crowded.list_checkpoints("noise")) == RUNS + 1 and len(crowded.interrupted_runs()) == RUNS
    from gancore import checkpoint
    reads = []
    real = checkpoint.read_index
    monkeypatch.setattr(checkpoint, "read_index", lambda path: reads.append(path) or real(path))
    start = time.perf_counter()
    _page_load(crowded)
    took = time.perf_counter() - start
    assert not reads, f"{len(reads)} headers read again"
    assert took < PAGE_LOAD_S, f"a page load took {took:.2f} s with {RUNS} runs"


def test_a_run_added_renamed_or_deleted_shows_at_once(crowded):
    before = {label for label, _ in crowded.list_checkpoints("noise")}
    new = crowded.runs_dir / "new-run" / "last.safetensors"
    new.parent.mkdir()
    shutil.copy(crowded.runs_dir / "run000" / "last.safetensors", new)
    assert {label for label, _ in crowded.list_checkpoints("noise")} - before == {"new-run/last"}
    renamed = crowded.rename(str(new), "kept")
    assert "new-run/kept" in {row["name"] for row in crowded.models_table()}
    assert "new-run/kept" in dict(crowded.list_checkpoints("noise"))
    crowded.delete(renamed)
    assert {label for label, _ in crowded.list_checkpoints("noise")} == before
    assert "new-run (step 4)" not in dict(crowded.interrupted_runs())


def test_a_file_damaged_in_place_is_listed_as_unreadable(crowded):
    path = crowded.runs_dir / "run001" / "last.safetensors"
    crowded.list_checkpoints("noise")
    with open(path, "r+b") as f:                      # the folder's mtime stays; the file's changes
        f.write(b"\0" * 64)
    assert str(path) not in dict(crowded.list_checkpoints("noise")).values()
    [row] = [row for row in crowded.models_table() if row["path"] == str(path)]
    assert row["model"] == "unreadable"
