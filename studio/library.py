"""The studio's checkpoint library: shipped weights and the user's runs, listed, labelled, loaded, renamed.

One bad file in either folder is listed as bad and skipped by the model lists; everything else keeps working.
No gradio here.
"""
from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import time
from pathlib import Path

from gancore.catalog import TASKS, task_of
from gancore.errors import BadInput

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("studio")


class PathError(BadInput):
    """A file name or path that points outside the studio's folders."""


def is_checkpoint(p: Path) -> bool:
    return p.is_file() and p.suffix == ".safetensors" and not p.name.endswith(".directions.safetensors")


def _log_unexpected(path: Path, e: BaseException) -> None:
    from gancore.errors import GanStudioError
    if not isinstance(e, (GanStudioError, OSError)):
        log.error("cannot read the header of %s", path, exc_info=e)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


SHIPPED = "@shipped"              # how a visitor's page names the weights folder

class CheckpointLibrary:
    def __init__(self, weights_dir: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None):
        self.weights_dir = Path(weights_dir or ROOT / "weights").resolve()
        self.runs_dir = Path(runs_dir or os.environ.get("GANSTUDIO_RUNS", "runs")).resolve()
        self._header_cache: dict[tuple[str, int], dict] = {}
        self._directions: dict[tuple[str, int, int], object] = {}
        self._listings: dict[tuple, tuple[tuple, object]] = {}      # (runs folder, what) -> (stamp, result)
        self.visitor = False             # a visitor's view: paths handed out are theirs, not the server's

    def scoped(self, runs_dir: Path) -> CheckpointLibrary:
        """The same library seen by one visitor of a shared studio: their runs folder only (caches shared), and
        the paths it hands out (`public`) and takes back (`resolve`) relative to it, never the server's layout."""
        view = copy.copy(self)
        view.runs_dir, view.visitor = Path(runs_dir).resolve(), True
        return view

    def public(self, path: str | os.PathLike) -> str:
        """How a checkpoint is named to the page: its full path locally; for a visitor its path in their runs
        folder, or `@shipped/<file>` for a shipped model (a run's name cannot start with "@")."""
        p = Path(path)
        if not self.visitor:
            return str(p)
        if self.weights_dir in p.parents:
            return f"{SHIPPED}/{p.name}"
        try:
            return str(p.relative_to(self.runs_dir))
        except ValueError:
            return p.name

    def absolute(self, path: str | os.PathLike) -> Path:
        """A path as the page names it, made absolute (a visitor's relative form back in their folder)."""
        p = Path(path)
        if self.visitor and not p.is_absolute():
            first, *rest = p.parts or ("",)
            p = self.weights_dir.joinpath(*rest) if first == SHIPPED else self.runs_dir / p
        return p.resolve()

    # ---- listings, kept while the folders stay as they are ----------------------------------------------
    def cached(self, what: tuple, compute):
        """`compute()`'s result, computed again only when a checkpoint or a folder in the weights or runs folder
        changed (added, rewritten, renamed, deleted): a page load with hundreds of runs stats their files instead
        of reading and checking every header."""
        key = (str(self.runs_dir), *what)
        stamp, newest = self._stamp()
        hit = self._listings.get(key)
        if hit is not None and hit[0] == stamp:
            return copy.deepcopy(hit[1])
        result = compute()
        if time.time() - newest > 1.0:         # a folder changed within the clock's tick may change again unseen
            if len(self._listings) > 10_000:   # visitors come and go on a shared studio
                self._listings.clear()
            self._listings[key] = (stamp, copy.deepcopy(result))
        return result

    def _stamp(self) -> tuple[tuple, float]:
        """(mtime of the weights and runs folders, every folder under the runs folder and every checkpoint in
        them (a file copied over another in place changes only its own), the newest mtime in seconds). One stat
        each, no file opened. Dot-folders (a run's unpacked pictures) hold no checkpoints and are not walked."""
        stamps, todo = [], [self.weights_dir, self.runs_dir]
        while todo:
            folder = todo.pop()
            try:
                stamps.append((str(folder), folder.stat().st_mtime_ns, 0))
                with os.scandir(folder) as entries:
                    for e in entries:
                        if e.name.endswith(".safetensors"):
                            st = e.stat()
                            stamps.append((e.path, st.st_mtime_ns, st.st_size))
                        elif e.is_dir() and not e.name.startswith(".") and folder != self.weights_dir:
                            todo.append(Path(e.path))
            except OSError:
                continue
        return tuple(sorted(stamps)), max((ns for _, ns, _ in stamps), default=0) / 1e9

    def roots(self) -> list[Path]:
        return [self.weights_dir, self.runs_dir]

    def _files(self) -> list[Path]:
        files = []
        if self.weights_dir.is_dir():
            files += sorted(p for p in self.weights_dir.glob("*.safetensors") if is_checkpoint(p))
        if self.runs_dir.is_dir():
            runs = [p for p in self.runs_dir.rglob("*.safetensors") if is_checkpoint(p)]
            files += sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)   # newest run first
        return files

    def header(self, path: str | os.PathLike) -> dict:
        """Header summary (cached by path and mtime); raises CheckpointError for a damaged file."""
        from gancore.inference import header_summary
        p = Path(path)
        key = (str(p), p.stat().st_mtime_ns)
        if key not in self._header_cache:
            self._header_cache[key] = header_summary(p)
        return self._header_cache[key]

    def model_type(self, path: Path) -> str:
        """The header's model type, unchecked: enough to leave out another task's files before checking."""
        from gancore.checkpoint import read_header
        checked = self._header_cache.get((str(path), path.stat().st_mtime_ns))
        return str((checked or read_header(path)).get("model_type", ""))

    def label(self, path: Path) -> str:
        path = self.absolute(path)
        if self.weights_dir in path.parents:
            return f"{path.stem} (shipped)"
        try:
            rel = path.relative_to(self.runs_dir)
        except ValueError:
            return path.name
        return str(rel.parent / rel.stem) if rel.parent != Path(".") else rel.stem

    def list_checkpoints(self, task: str | None = None) -> list[tuple[str, str]]:
        """(label, path) for every readable checkpoint, optionally only those of one task."""
        if task is not None and task not in TASKS:
            raise BadInput(f"task must be one of {TASKS}")
        listed = self.cached(("list", task), lambda: self._list_checkpoints(task))
        return [(label, self.public(p)) for label, p in listed]

    def _list_checkpoints(self, task: str | None) -> list[tuple[str, str]]:
        out, first = [], []
        for p in self._files():
            try:
                if task is not None and task_of(self.model_type(p)) != task:
                    continue                   # another task's file is not checked in full for this list
                h = self.header(p)
            except Exception as e:             # a damaged or hostile file is skipped here (the Models tab lists it)
                _log_unexpected(p, e)
                continue
            if task is None or task_of(h.get("model_type", "")) == task:
                # A shipped file can ask to be its task's default (the showcase translator, the colour model).
                (first if task and h.get("studio_default") == task else out).append((self.label(p), str(p)))
        return first + out

    def direction_choices(self, path: str | os.PathLike) -> list[tuple[str, str]]:
        """(label, generator network) for each direction of a checkpoint's model, e.g. ("horse → zebra (G_AB)", "G_AB")."""
        model = self.load(path)
        return [(f"{label} ({model.directions()[d]})", model.directions()[d])
                for d, label in model.direction_labels().items()]

    def translation_directions(self, path: str | os.PathLike) -> list[tuple[str, str]]:
        """(label, direction) for both ways, in the model's own words: [("Horse → zebra", "AB"), ("Zebra → horse",
        "BA")]; a way a one-way model does not go says so."""
        labels = self.load(path).direction_labels()
        ab = labels.get("AB", "A → B")
        ba = labels.get("BA") or " → ".join(reversed(ab.split(" → "))) + " (not in this model)"
        return [(text[:1].upper() + text[1:], d) for d, text in (("AB", ab), ("BA", ba))]

    def load(self, path: str | os.PathLike):
        """The model a checkpoint holds (eval mode, cached by the engine)."""
        from gancore.inference import load_model
        return load_model(self.resolve(path))

    def directions(self, path: str | os.PathLike, k: int):
        """SeFa directions (k, latent_dim) for a noise checkpoint, computed once and cached."""
        from gancore.analysis.latent import load_or_compute_directions
        p = self.resolve(path)
        key = (str(p), p.stat().st_mtime_ns, k)
        if key not in self._directions:
            self._directions[key] = load_or_compute_directions(p, self.load(p).generator(), k)
        return self._directions[key]

    def resolve(self, path: str | os.PathLike) -> Path:
        """An existing checkpoint inside weights/ or the runs folder, or PathError."""
        if not path:
            raise PathError("choose a model first")
        p = self.absolute(path)
        if not any(root in p.parents for root in self.roots()):
            raise PathError("that file is not in the studio's weights or runs folder")
        if not is_checkpoint(p):
            raise PathError(f"{p.name}: no such checkpoint")
        return p

    def models_table(self) -> list[dict]:
        return self.cached(("table",), self._models_table)

    def _models_table(self) -> list[dict]:
        rows = []
        for p in self._files():
            row = {"name": self.label(p), "folder": "shipped" if self.weights_dir in p.parents else "runs",
                   "path": str(p), "size_mb": round(p.stat().st_size / 1e6, 1)}
            try:
                h = self.header(p)
            except Exception as e:             # one bad file is listed as bad; the others keep working
                _log_unexpected(p, e)
                rows.append({**row, "model": "unreadable", "task": "", "created": "", "steps": "",
                             "metrics": str(e)[:80]})
                continue
            trained = h.get("train")
            metrics = h.get("metrics") or {}
            rows.append({**row, "model": h.get("model_type", "?"), "task": task_of(h.get("model_type")) or "?",
                         "created": str(h.get("created", ""))[:16].replace("T", " "),
                         "steps": trained.get("step", "") if trained else "",
                         "metrics": ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())})
        return rows

    def rename(self, path: str, new_name: str) -> str:
        """Rename a checkpoint inside the runs folder (same folder, new file name). Returns the new path."""
        p = self._user_file(path)
        name = (new_name or "").strip()
        if name.endswith(".safetensors"):
            name = name[: -len(".safetensors")]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,80}", name) or ".." in name or name.endswith(".directions"):
            raise PathError("a new name may use letters, digits, spaces, '-', '_' and '.', up to 80 characters")
        dst = p.with_name(name + ".safetensors")
        if dst.exists():
            raise PathError(f"{dst.name} already exists in that folder")
        os.replace(p, dst)
        self._move_directions(p, dst)
        return self.public(dst)

    def delete(self, path: str) -> None:
        """Delete a checkpoint; its run's unpacked pictures go too, and the run's folder once it holds no model."""
        p = self._user_file(path)
        p.unlink()
        self._move_directions(p, None)
        run = p.parent
        if run != self.runs_dir:
            for tag in (".data", ".data_b"):
                shutil.rmtree(run / tag, ignore_errors=True)
            if not any(is_checkpoint(q) for q in run.rglob("*.safetensors")):
                shutil.rmtree(run, ignore_errors=True)

    def _user_file(self, path: str) -> Path:
        """A checkpoint the user may change: only inside the runs folder; shipped weights stay as they are."""
        p = self.resolve(path)
        if self.runs_dir not in p.parents:
            raise PathError("shipped models cannot be renamed or deleted; copy them to your runs folder instead")
        return p

    @staticmethod
    def _move_directions(src: Path, dst: Path | None) -> None:
        from gancore.analysis.latent import directions_path
        cache = directions_path(src)
        if cache.is_file():
            if dst is None:
                cache.unlink()
            else:
                os.replace(cache, directions_path(dst))
