"""Who owns what when strangers share one studio (a public Hugging Face Space, where `SPACE_ID` is set).

Each visitor's runs, samples and exports live in a folder of their own, `runs/<owner>/`, named after who they
are: a browser's key (`Browsers`: an unguessable key kept in the browser's localStorage, so a reloaded page is
the same visitor), or for an API client its session (a random id it holds). The folder name is a hash of it, so
a folder name seen in a message gives no access. Every path a visitor names is resolved and must lie in that
folder (or in the shipped weights, which all may read). Quotas bound what one visitor keeps, and old runs
expire.

The webcam's live slot is held on a short lease (`Lease`): one visitor's frames at a time, the others told the
camera is in use.

Locally (no `SPACE_ID`) there is one user, who owns the whole runs folder, as before. No gradio here: the
app tells `Visitors` the session of the request being served (`studio.ui.current_session`).
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path

from gancore.errors import BadInput

EXPORTS = "exports"


class QuotaError(BadInput):
    """A visitor's runs would take more than their share of the shared studio."""


class NoVisitor(BadInput):
    """A request on a shared studio that carries no Gradio session to own anything."""


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


KEY = re.compile(r"[A-Za-z0-9_-]{32}")         # what new_key() makes: 24 random bytes, URL-safe base64


def new_key() -> str:
    return secrets.token_urlsafe(24)


def valid_key(value) -> bool:
    return isinstance(value, str) and KEY.fullmatch(value) is not None


class Browsers:
    """Which browser each open page belongs to, so a reloaded page (a new Gradio session) stays the same visitor.

    A browser keeps a key of its own in localStorage and presents it when a page loads (`claim`); from then on
    that page's session acts as the key. The key is the credential: whoever holds it owns the browser's runs, so
    anything that is not a key as `new_key` makes them is replaced by a new one. The `most` page sessions used
    last are remembered; an older page acts as a new visitor until it is reloaded.
    """

    def __init__(self, most: int = 10_000):
        self.most = most
        self._keys: OrderedDict[str, str] = OrderedDict()      # session -> browser key, least recently used first
        self._lock = threading.Lock()

    def claim(self, session: str | None, key) -> str:
        """The key the page's browser keeps from now on (`key` when valid, else a new one), which `session` acts
        as. A page's session keeps the key it claimed first: it never changes browser, so a second claim for it
        comes from someone else and is not granted."""
        key = key if valid_key(key) else new_key()
        if session:
            with self._lock:
                self._keys.setdefault(session, key)
                self._keys.move_to_end(session)
                while len(self._keys) > self.most:
                    self._keys.popitem(last=False)
        return key

    def identity(self, session: str | None) -> str | None:
        """Who a Gradio session acts as: its browser's key once claimed, else itself (an API client)."""
        if not session:
            return session
        with self._lock:
            key = self._keys.get(session)
            if key is not None:
                self._keys.move_to_end(session)
        return key or session


class Visitors:
    def __init__(self, runs_dir: Path, shared: bool | None = None):
        self.runs_dir = Path(runs_dir)
        self.shared = bool(os.environ.get("SPACE_ID")) if shared is None else shared
        self.browsers = Browsers()
        self.max_runs = int(_env_number("GANSTUDIO_MAX_RUNS", 3))
        self.max_bytes = int(_env_number("GANSTUDIO_MAX_MB", 200) * 1e6)
        self.keep_s = _env_number("GANSTUDIO_KEEP_HOURS", 24) * 3600

    def owner(self, session: str | None) -> str:
        """"" for the single local user; on a shared studio the folder name of this Gradio session's owner (its
        browser's, once the page has said which it is)."""
        if not self.shared:
            return ""
        if not session:
            raise NoVisitor("this shared studio needs a browser session; reload the page")
        return hashlib.sha256(self.browsers.identity(session).encode()).hexdigest()[:20]

    def home(self, owner: str) -> Path:
        """The folder a visitor's runs and exports go to (the whole runs folder for the local user)."""
        return self.runs_dir / owner if owner else self.runs_dir

    def display(self) -> str:
        """How a visitor's folder is named on the page: never the server's path on a shared studio."""
        return "your own runs folder (only this browser can see it)" if self.shared else f"`{self.runs_dir}`"

    # ---- quotas and expiry (shared studios only) ----------------------------------------------------------
    def check_quota(self, owner: str) -> None:
        """QuotaError when a visitor already keeps as many runs or bytes as a shared studio allows."""
        if not self.shared:
            return
        home = self.home(owner)
        runs = _runs(home)
        if len(runs) >= self.max_runs:
            raise QuotaError(f"you keep {len(runs)} runs, the most this shared studio allows; delete one in the "
                             "Models tab, then start again")
        used = folder_bytes(home)
        if used >= self.max_bytes:
            raise QuotaError(f"your runs take {used / 1e6:.0f} MB of the {self.max_bytes / 1e6:.0f} MB this shared "
                             "studio allows each visitor; delete one in the Models tab, then start again")

    def room(self, owner: str) -> int | None:
        """Bytes a visitor may still add (what a new run's unpacked pictures may take); None locally."""
        return max(0, self.max_bytes - folder_bytes(self.home(owner))) if self.shared else None

    def expire(self, keep: Path | None = None, now: float | None = None) -> list[Path]:
        """Remove runs nobody touched for `keep_s` (all visitors'); `keep` (the running run) stays. Returns them."""
        if not self.shared or not self.runs_dir.is_dir():
            return []
        now, gone = now or time.time(), []
        for home in (p for p in self.runs_dir.iterdir() if p.is_dir()):
            for run in _runs(home) + [home / EXPORTS]:
                if run.is_dir() and run != keep and now - _last_touched(run) > self.keep_s:
                    shutil.rmtree(run, ignore_errors=True)
                    gone.append(run)
            if not any(home.iterdir()):
                home.rmdir()
        return gone


def _runs(home: Path) -> list[Path]:
    return [p for p in home.iterdir() if p.is_dir() and p.name != EXPORTS] if home.is_dir() else []


def _files(folder: Path):
    return (p for p in folder.rglob("*") if p.is_file())


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (0 for a folder that is not there)."""
    return sum(p.stat().st_size for p in _files(folder))


def _last_touched(folder: Path) -> float:
    return max((p.stat().st_mtime for p in _files(folder)), default=folder.stat().st_mtime)


class Lease:
    """One holder at a time (the webcam's live slot), kept while they renew it at least every `seconds`. When
    another visitor has asked, the holder's turn ends `turn_s` after it began and the asker gets the slot."""

    def __init__(self, seconds: float = 2.0, turn_s: float = 60.0):
        self.seconds, self.turn_s = seconds, turn_s
        self.holder: str | None = None
        self.since = self.until = 0.0
        self.asked_by: str | None = None
        self._lock = threading.Lock()

    def claim(self, who: str, now: float | None = None) -> bool:
        """True when `who` holds the slot now (renewed); False while someone else does."""
        now = time.monotonic() if now is None else now
        with self._lock:
            mine = who == self.holder
            expired = self.holder is None or now >= self.until
            turn_over = self.asked_by not in (None, self.holder) and now - self.since >= self.turn_s
            if expired or (turn_over and who == self.asked_by):
                self.holder, self.since, self.asked_by = who, now, None
            elif not mine or turn_over:
                self.asked_by = self.asked_by or who
                return False
            self.until = now + self.seconds
            return True


class Throttle:
    """Per-visitor limits that keep one page (or script) from filling the queue strangers share: at most
    `heavy_at_once` inference events and `at_once` events of any kind waiting or running at a time, and a token
    bucket of `per_s` inference requests a second (bursts of `burst`). A page load's dozen small listings fit."""

    def __init__(self, heavy_at_once: int = 4, at_once: int = 16, per_s: float = 10.0, burst: float = 20.0):
        self.heavy_at_once, self.at_once, self.per_s, self.burst = heavy_at_once, at_once, per_s, burst
        self._buckets: dict[str, tuple[float, float]] = {}      # visitor -> (tokens, when counted)
        self._lock = threading.Lock()

    def admits(self, who: str, heavy: bool, busy_heavy: int, busy: int, now: float | None = None) -> bool:
        """Whether one more event from `who` may join, given how many of theirs wait or run already."""
        if busy >= self.at_once or (heavy and busy_heavy >= self.heavy_at_once):
            return False
        return not heavy or self._take(who, time.monotonic() if now is None else now)

    def _take(self, who: str, now: float) -> bool:
        with self._lock:
            tokens, then = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.per_s)
            if len(self._buckets) > 10_000:          # forget visitors whose buckets have filled up again
                full_s = self.burst / self.per_s
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_s}
            self._buckets[who] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
            return tokens >= 1
