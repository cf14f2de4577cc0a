"""A memory ceiling a training run enforces on itself.

A step whose activations do not fit (CycleGAN at batch 64 and 256 px wants more than 24 GB) grows the
process layer by layer until the kernel kills it, and the user sees only "Killed". `MemoryGuard` watches
the process's resident memory between module calls of the guarded thread and raises `MemoryCeiling`
before the kernel acts, so the trainer can drop the half-built step, save and say why in one line.

    with MemoryGuard(limit_bytes) as guard:
        ...                       # forward passes in this thread raise MemoryCeiling past the limit
        guard.check()             # and so does an explicit check between steps
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import torch

from gancore.errors import TooLarge

DEFAULT_SHARE = 0.8              # of the machine's (or the container's) memory, when no ceiling is given
CHECK_INTERVAL_S = 0.02          # at most this often per thread, during forward passes


class MemoryCeiling(TooLarge):
    title = "Out of memory"


def rss_bytes() -> int:
    """Resident memory of this process now."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine_bytes() -> int:
    """Memory this process may use: the smaller of physical memory and a cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def ceiling_bytes(limit_gb: float) -> int:
    """`limit_gb` in bytes; 0 means the default share of the machine."""
    return int(limit_gb * 2**30) if limit_gb > 0 else int(DEFAULT_SHARE * machine_bytes())


class MemoryGuard:
    """Raises MemoryCeiling in the guarded thread when the process's resident memory passes `limit`."""

    def __init__(self, limit: int):
        self.limit = limit
        self.peak = 0
        self._thread = threading.get_ident()
        self._last = 0.0
        self._handle = None

    def __enter__(self) -> "MemoryGuard":
        self._thread = threading.get_ident()
        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module, args) -> None:
        if threading.get_ident() != self._thread:      # other threads (the studio's pages) are not ours to stop
            return
        now = time.monotonic()
        if now - self._last >= CHECK_INTERVAL_S:
            self._last = now
            self.check()

    def check(self) -> None:
        used = rss_bytes()
        self.peak = max(self.peak, used)
        if used > self.limit:
            raise MemoryCeiling(
                f"the run needs more memory than its ceiling of {self.limit / 2**30:.1f} GB "
                f"({used / 2**30:.1f} GB in use); lower the batch size or the image size, "
                "or raise memory_limit_gb")
