"""One error hierarchy for the engine, mapped by `isinstance` in the studio, the CLI and the service.

    GanStudioError            anything the engine raises on purpose; its text is written for people
      BadInput                the user's input cannot be used (a photo, a setting, a request field)
      BadCheckpoint           a model file cannot be used (not ours, damaged, lying header, wrong model)
      Unsupported             a valid request this model or machine cannot do (fp16 on CPU, eval of a maskrec)
      Busy                    try again later (one training job at a time)
        Overloaded            the service holds as many requests as it takes (503, with Retry-After)
      TimedOut                a request that ran past its time limit (504)
      OutOfMemory             the machine has no memory left for this request (507)

Everything else (a bug in this project, a failure inside torch) is an internal error: callers log the
traceback under a short reference and show the reference, never the traceback (`describe`).

The specific errors (`DataError`, `ConfigError`, `CheckpointError`, ...) subclass one of these. `BadInput`
and `BadCheckpoint` are also `ValueError`s so older code that catches `ValueError` keeps working; the
mapping never relies on that.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

log = logging.getLogger("gancore")


class GanStudioError(Exception):
    """Raised on purpose by the engine; the message names the file or field and the problem."""
    title = "Cannot do that"
    http_status = 400


class BadInput(GanStudioError, ValueError):
    title = "Please check the input"
    http_status = 400


class TooLarge(BadInput):
    title = "Too large"
    http_status = 413


class DataError(BadInput):
    """Data that cannot be used, with a message a person can act on."""


class DataTooLarge(DataError, TooLarge):
    """An image or archive over a size cap (HTTP 413)."""


class BadCheckpoint(GanStudioError, ValueError):
    title = "Cannot use this model file"
    http_status = 400


class Unsupported(GanStudioError):
    title = "Not supported"
    http_status = 400


class Busy(GanStudioError):
    title = "Busy"
    http_status = 409


class Overloaded(Busy):
    """Every place in the service's line is taken; `retry_after_s` says when to come back."""
    http_status = 503

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TimedOut(GanStudioError):
    title = "Took too long"
    http_status = 504


class OutOfMemory(GanStudioError):
    title = "Out of memory"
    http_status = 507


class TrainingError(GanStudioError, RuntimeError):
    """A run that cannot start (no bound, a folder another run holds) or stopped on a NaN/inf loss."""


@dataclass(frozen=True)
class Described:
    """What a person sees for an exception: a title, one line of text, and whether it is our bug."""
    title: str
    message: str
    internal: bool
    http_status: int
    reference: str = ""


def first_line(e: BaseException, limit: int = 400) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else e.__class__.__name__)[:limit]


def describe(e: BaseException, where: str = "") -> Described:
    """Map an exception to what a person sees. Internal errors are logged with a reference to quote."""
    if isinstance(e, GanStudioError):
        return Described(e.title, first_line(e), False, e.http_status)
    if isinstance(e, OSError) and (e.errno is not None or e.filename):
        # The machine's side: a missing or unreadable file, a read-only or full disk.
        where_ = f"{e.filename}: " if e.filename else ""
        return Described("File problem", f"{where_}{e.strerror or first_line(e)}", False, 400)
    if isinstance(e, MemoryError):
        return Described("Out of memory", "the machine ran out of memory for this request; "
                         "try a smaller image, batch or model", False, 507)
    ref = uuid.uuid4().hex[:8]
    log.error("internal error [%s]%s", ref, f" in {where}" if where else "", exc_info=e)
    return Described("Internal error", f"an internal error occurred (reference {ref} in the server log: "
                     f"{e.__class__.__name__}); this is a bug in GAN Studio, not your input", True, 500, ref)
