"""One `.safetensors` file per checkpoint; config and training state live in its string header.

Layout of a file:
  tensors   `G.*`, `D.*`, `G_AB.*` ... one namespace per network; `ema.G.*` for the averaged copy;
            `optim.<name>.<param index>.<state key>` for optimizer tensors; `extra.*` for model state
            such as CycleGAN's history pools; `rng.*` for RNG states.
  header    format, format_version, model_type, model_config (JSON), package version, created and,
            for resumable files, train_state (JSON: step, epoch, train config, optimizer param groups).

Nothing is ever unpickled: safetensors stores raw tensors and a JSON header only.
"""
from __future__ import annotations

import glob
import json
import os
import random
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gancore import __version__
from gancore.errors import BadCheckpoint, BadInput

FORMAT = "gancore"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100_000_000


class CheckpointError(BadCheckpoint):
    """A checkpoint that cannot be used; the message names the file and the problem."""


class CheckpointWriteError(BadInput):
    """A checkpoint that cannot be written where it was asked to go (read-only or full disk)."""


def save(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    """Write atomically: a temporary file in the same folder, then `os.replace`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointWriteError(f"{path.parent}: cannot write there ({e.strerror or e})") from None
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "gancore_version": __version__,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta}
    bad = [k for k, v in header.items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"header values must be strings: {bad}")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    clean_orphans(path)
    # The writer's pid is in the name, so a later save can tell a dead writer's leftover from a live one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, (SafetensorError, OSError)):      # a full or read-only disk, said in one line
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).split(": ")[-1]
            raise CheckpointWriteError(f"{path}: cannot write the checkpoint ({reason})") from None
        raise
    return path


def clean_orphans(path: str | os.PathLike, max_age_s: float = 86400) -> list[Path]:
    """Remove `.<name>.<pid>.*.tmp` files beside `path` left by writers that died (kill -9, power loss).

    A file whose writer is still running is left alone; one without a readable pid, or older than a day, goes.
    Listings never show these files (they do not end in .safetensors). Returns what was removed.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        try:
            alive = pid_text.isdigit() and process_alive(int(pid_text))
            if not alive or time.time() - tmp.stat().st_mtime > max_age_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:       # gone already, or not ours to remove
            pass
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this PID exists (this one included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, another user's
        return True
    return True


def _check_not_pickle(path: Path, head: bytes) -> None:
    # Pickle protocol 2+ starts with 0x80; torch's zip format starts with "PK".
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise CheckpointError(f"{path.name}: this is a pickle/PyTorch .pt file; GAN Studio only loads "
                              "safetensors checkpoints and never unpickles files")


DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
# Header strings that hold JSON, and what they must be.
JSON_FIELDS = {"model_config": dict, "train_state": dict, "trained": dict, "metrics": dict}


def read_header(path: str | os.PathLike) -> dict[str, str]:
    """Read the JSON header only (no tensors): fast enough for a library view of many files."""
    return read_index(path)[0]


def read_index(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, dict]]:
    """(metadata, tensor entries) from the header, every field checked; CheckpointError names the problem.

    Nothing a header says is trusted: the metadata must be strings, the JSON fields the right kind of
    object, every tensor entry a dtype, a shape and offsets that tile the data exactly to the file's end.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
        if len(head) < 9:
            _check_not_pickle(path, head)
            raise CheckpointError(f"{path.name}: file is truncated (only {size} bytes)")
        (n,) = struct.unpack("<Q", head[:8])
        if n > MAX_HEADER_BYTES or 8 + n > size or head[8:9] != b"{":
            _check_not_pickle(path, head)
            raise CheckpointError(f"{path.name}: not a safetensors file, or truncated "
                                  f"(header claims {n} bytes, file has {size})")
        f.seek(8)
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError) as e:
            raise CheckpointError(f"{path.name}: header is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{path.name}: header metadata is not a table of strings; the file is damaged "
                              "or was not written by GAN Studio")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: not a GAN Studio checkpoint (format={meta.get('format')!r}); "
                              "it may come from another program")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path.name}: checkpoint format version {meta.get('format_version')!r} "
                              f"is not supported (this version reads {FORMAT_VERSION})")
    for key in ("model_type", "model_config"):
        if not meta.get(key):
            raise CheckpointError(f"{path.name}: header has no {key}")
    for key, kind in JSON_FIELDS.items():
        if key in meta:
            try:
                value = json.loads(meta[key])
            except ValueError:
                raise CheckpointError(f"{path.name}: header field {key} is not valid JSON") from None
            if not isinstance(value, kind):
                raise CheckpointError(f"{path.name}: header field {key} is not a JSON object")
            if key in ("train_state", "trained"):
                _check_train_state(path.name, key, value)
    _check_entries(path.name, header, size - 8 - n)
    return meta, header


def _check_train_state(name: str, key: str, st: dict) -> None:
    def bad(what):
        raise CheckpointError(f"{name}: header field {key} is damaged ({what})")
    for k in ("step", "epoch") + (("batch_in_epoch",) if key == "train_state" else ()):
        if isinstance(st.get(k), bool) or not isinstance(st.get(k), int) or st[k] < 0:
            bad(f"{k} is {st.get(k)!r:.30}")
    if not isinstance(st.get("train_config"), dict):
        bad("train_config is not an object")
    for key in ("elapsed_s", "cpu_s"):
        if not isinstance(st.get(key, 0) or 0, (int, float)):
            bad(f"{key} is not a number")
    if key == "train_state":
        if not isinstance(st.get("param_groups"), dict) or not isinstance(st.get("rng"), dict):
            bad("param_groups or rng missing")


def _check_entries(name: str, entries: dict, data_bytes: int) -> None:
    """Every tensor entry well formed, and the offsets tile the data section exactly."""
    spans = []
    for k, v in entries.items():
        ok = (isinstance(v, dict) and v.get("dtype") in DTYPE_BYTES and isinstance(v.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v["shape"])
              and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2
              and all(isinstance(o, int) and not isinstance(o, bool) for o in v["data_offsets"]))
        if not ok:
            raise CheckpointError(f"{name}: tensor entry {k[:60]!r} is damaged (needs dtype, shape, data_offsets)")
        begin, end = v["data_offsets"]
        numel = 1
        for d in v["shape"]:
            numel *= d
        if not 0 <= begin <= end or end - begin != numel * DTYPE_BYTES[v["dtype"]]:
            raise CheckpointError(f"{name}: tensor {k[:60]!r} has offsets {v['data_offsets']} that do not fit "
                                  f"its shape {v['shape']}")
        spans.append((begin, end))
    # The tensors must end exactly where the file ends, or the file was cut short or padded.
    pos = 0
    for begin, end in sorted(spans):
        if begin != pos:
            raise CheckpointError(f"{name}: tensor data overlaps or has gaps; the file is damaged")
        pos = end
    if pos != data_bytes:
        raise CheckpointError(f"{name}: file is truncated or damaged (the tensors need {pos} bytes of data, "
                              f"the file has {data_bytes})")


def load(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    meta = read_header(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{Path(path).name}: cannot read tensors ({e})") from None
    for k, v in tensors.items():
        if v.is_floating_point() and not k.startswith(("optim.", "rng.")) and not torch.isfinite(v).all():
            raise CheckpointError(f"{Path(path).name}: tensor {k} holds NaN or infinite values")
    return tensors, meta


def subdict(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str, file: str) -> None:
    """`load_state_dict(strict=True)` with an error a person can act on."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}")
        if shape:
            parts.append(f"shape mismatch in {shape[:4]}")
        raise CheckpointError(f"{file}: weights for network {name} do not fit this model: " + "; ".join(parts))
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """Flatten an optimizer state dict into tensors plus JSON-able param groups."""
    sd = opt.state_dict()
    out = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            out[f"optim.{name}.{pid}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    return out, sd["param_groups"]


def restore_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict] = {}
    for k, v in subdict(tensors, f"optim.{name}").items():
        pid, key = k.split(".", 1)
        state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


# ----------------------------------------------------------------------------------------------------
# Training state: everything exact resume needs, in one file

def rng_state() -> tuple[dict[str, torch.Tensor], dict]:

    py = random.getstate()
    np_state = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {"python": [py[0], list(py[1]), py[2]], "numpy_pos": int(np_state[2])}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:

    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    np.random.set_state(("MT19937", tensors["rng.numpy"].numpy().astype(np.uint32), meta["numpy_pos"], 0, 0.0))
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_training_state(path, model, ema_networks: dict, optimizers: dict, scaler, position: dict,
                        train_config: dict, model_config_json: str) -> Path:
    """A resumable checkpoint: weights, EMA copies, optimizer state, model extras (e.g. history pools), RNG
    states, and `position` (step, epoch, batch_in_epoch, elapsed_s, finished) with the train config."""
    tensors = {}
    for name, net in model.networks().items():
        tensors.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
    for name, net in ema_networks.items():
        tensors.update({f"ema.{name}.{k}": v for k, v in net.state_dict().items()})
    groups = {}
    for name, opt in optimizers.items():
        t, g = optimizer_tensors(name, opt)
        tensors.update(t)
        groups[name] = g
    tensors.update(model.extra_tensors())
    rng_t, rng_meta = rng_state()
    tensors.update(rng_t)
    state = {**position, "train_config": train_config, "param_groups": groups, "rng": rng_meta,
             "scaler": scaler.state_dict() if scaler is not None else None}
    return save(path, tensors, {"model_type": model.model_type, "model_config": model_config_json,
                                "train_state": json.dumps(state)})


def restore_training_state(tensors: dict, state: dict, model, ema_networks: dict, optimizers: dict, scaler,
                           device) -> dict:
    """Load what `save_training_state` wrote into live objects; returns the saved position."""
    for name, net in model.networks().items():
        load_state(net, subdict(tensors, name), name, "resume checkpoint")
    if any(k.startswith("ema.") for k in tensors):
        for name, net in ema_networks.items():
            load_state(net, subdict(tensors, f"ema.{name}"), f"ema.{name}", "resume checkpoint")
    for name, opt in optimizers.items():
        restore_optimizer(name, opt, tensors, state["param_groups"][name])
    model.load_extra_tensors({k: v.to(device) for k, v in tensors.items() if k.startswith("extra.")})
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(tensors, state["rng"])
    return {k: state.get(k, 0) for k in ("step", "epoch", "batch_in_epoch", "elapsed_s", "cpu_s")}
