"""Which device a run or a model uses: 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'. Never `.cuda()`."""
from __future__ import annotations

import torch

from gancore.errors import BadInput, Unsupported


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' (a GPU when there is one), 'cpu', 'cuda', 'cuda:N', 'mps' -> torch.device, or BadInput /
    Unsupported in one line."""
    name = (name or "auto").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise BadInput(f"unknown device {name!r}; use auto, cpu or cuda (cuda:0, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Unsupported(f"device {name!r}: CUDA was requested but no GPU is available; use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise Unsupported(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise Unsupported(f"device {name!r} is not supported; use auto, cpu or cuda")
    return dev
