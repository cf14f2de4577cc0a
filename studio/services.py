"""The studio's state behind one object the tabs share (no gradio here): a thin facade over the checkpoint
library (`studio.library`), the training job (`studio.training_job`) and the engine's inference calls.

Like StyleGAN3's renderer it holds the long-lived things and the UI only asks it questions; tabs convert
widget values to these calls and back (numpy uint8, paths), never touching tensors.

On a studio shared by strangers (`studio.visitors`) every call acts for the visitor whose request is being
served: the library it sees is their folder plus the shipped weights, and the training job answers them
about their own run only. The app tells the services how to find that visitor (`session`).
"""
from __future__ import annotations

import importlib.util
import os
import re
import threading
from pathlib import Path

from gancore.errors import BadInput
from gancore.imaging import tile  # noqa: F401  (numpy only; tabs import it from here)
from studio.library import ROOT, CheckpointLibrary, PathError  # noqa: F401
from studio.training_job import BusyError, TrainingJob  # noqa: F401
from studio.visitors import Lease, NoVisitor, Visitors

# Example photos ship with the engine (export calibrates on them too); found without importing gancore.
EXAMPLES_DIR = Path(importlib.util.find_spec("gancore").origin).parent / "assets" / "examples"
INFERENCE_THREADS_WHILE_TRAINING = 1
# An absolute path in a message (a file, an upload, another folder): group 1 is its file name.
SERVER_PATH = re.compile(r"(?<![\w.~/:-])/(?:[^\s/'\"`:,;()]+/)+([^\s/'\"`:,;()]+)")


class Services:
    def __init__(self, weights_dir: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None,
                 shared: bool | None = None):
        self.library = CheckpointLibrary(weights_dir, runs_dir)
        self.job = TrainingJob(self.library.runs_dir)
        self.visitors = Visitors(self.library.runs_dir, shared)
        self.weights_dir = self.library.weights_dir
        self.camera = Lease()             # the webcam's live slot, on a shared studio
        self.session = lambda: None      # the session id of the request being served (set by the app)
        self.warming: threading.Thread | None = None

    # ---- the visitor being served ----------------------------------------------------------------------
    def owner(self) -> str:
        return self.visitors.owner(self.session())

    @property
    def runs_dir(self) -> Path:
        """The runs folder of the visitor being served (the whole folder for the local user)."""
        return self.visitors.home(self.owner())

    def claim_browser(self, key) -> str:
        """A page tells which browser it belongs to (the key in its localStorage): from now on its session acts
        as that browser, whose runs it sees. Returns the key the browser keeps (a new one for a browser without
        one, or with anything else than a key)."""
        return self.visitors.browsers.claim(self.session(), key)

    def claim_camera(self) -> bool:
        """Whether this visitor's webcam frame may be translated now (always, for the local user)."""
        return not self.visitors.shared or self.camera.claim(self.session() or "")

    def shown(self, text: str) -> str:
        """Text for the page: on a shared studio, paths in the visitor's own folder relative to it and any other
        path of the server's by its file name (a shipped model, an upload), never the server's layout."""
        if not self.visitors.shared:
            return text
        try:
            text = text.replace(str(self.runs_dir) + os.sep, "")
        except NoVisitor:
            pass
        return SERVER_PATH.sub(r"\1", text)

    def runs_label(self) -> str:
        return self.visitors.display()

    def _lib(self) -> CheckpointLibrary:
        owner = self.owner()
        return self.library.scoped(self.visitors.home(owner)) if owner else self.library

    # ---- the checkpoint library ----------------------------------------------------------------------
    def list_checkpoints(self, task: str | None = None) -> list[tuple[str, str]]:
        return self._lib().list_checkpoints(task)

    def header(self, path):
        return self._lib().header(self.resolve(path))

    def label(self, path) -> str:
        return self._lib().label(path)

    def resolve(self, path) -> Path:
        return self._lib().resolve(path)

    def load(self, path):
        _inference_threads(self.job.is_running())
        return self._lib().load(path)

    def directions(self, path, k: int):
        return self._lib().directions(path, k)

    def direction_choices(self, path) -> list[tuple[str, str]]:
        return self._lib().direction_choices(path)

    def translation_directions(self, path) -> list[tuple[str, str]]:
        return self._lib().translation_directions(path)

    def models_table(self) -> list[dict]:
        return self._lib().models_table()

    def rename(self, path: str, new_name: str) -> str:
        return self._lib().rename(path, new_name)

    def delete(self, path: str) -> None:
        p = self.resolve(path)
        if self.job.run_dir() in p.parents:
            raise BadInput("that run is training; stop it before deleting its models")
        self._lib().delete(path)

    # ---- the training job ----------------------------------------------------------------------------
    def training_state(self) -> dict:
        return self.job.state(self.owner())

    def is_training(self) -> bool:
        return self.job.is_running()

    def start_training(self, model: str = "dcgan", **settings) -> str:
        """See `TrainingJob.start` for the settings. On a shared studio old runs expire first, then the
        visitor's quota is checked."""
        owner = self.owner()
        self.visitors.expire(keep=self.job.run_dir())
        self.visitors.check_quota(owner)
        return self.job.start(model, owner=owner, runs_dir=self.visitors.home(owner),
                              room=self.visitors.room(owner), **settings)

    def resume_training(self, path: str) -> str:
        owner = self.owner()
        path = str(self._lib().absolute(path)) if path else path
        return self.job.resume(path, owner=owner, runs_dir=self.visitors.home(owner))

    def interrupted_runs(self) -> list[tuple[str, str]]:
        runs_dir, running, lib = self.runs_dir, str(self.job.run_dir() if self.job.is_running() else ""), self._lib()
        listed = lib.cached(("interrupted", running), lambda: self.job.interrupted_runs(runs_dir))
        return [(label, lib.public(p)) for label, p in listed]

    def stop_training(self) -> bool:
        return self.job.stop(self.owner())

    def wait(self, timeout: float | None = None) -> None:
        """Until the training job and the warm-up are over."""
        self.job.wait(timeout)
        if self.warming is not None:
            self.warming.join(timeout)

    def shutdown(self, timeout: float = 30) -> None:
        self.job.shutdown(timeout)       # the process is ending: whoever owns the run, it is saved

    # ---- inference for the tabs: engine calls only, numpy uint8 out ------------------------------------
    def _noise_model(self, path):
        model = self.load(path)
        if model.task != "noise":
            raise BadInput(f"{Path(path).name} is a {model.model_type} model; choose a generator from noise")
        return model

    def edited_sample(self, path: str, seed: int, truncation: float = 1.0, alphas=()):
        """One image (H, W, C) from seed's latent, scaled by truncation, moved along SeFa directions."""
        from gancore.analysis.latent import edit
        from gancore.imaging import seeded
        from gancore.inference import sample
        model = self._noise_model(path)
        z = model.noise(1, generator=seeded(seed)) * float(truncation)
        alphas = [float(a) for a in alphas]
        if any(alphas):
            z = edit(z, self.directions(path, len(alphas)), alphas)
        return sample(model, z=z)[0]

    def interpolation(self, path: str, seed_a: int, seed_b: int, frames: int = 16, truncation: float = 1.0):
        """(frames, H, W, C) along the slerp path between the two seeds' latents."""
        from gancore.analysis.latent import interpolate
        from gancore.imaging import seeded
        from gancore.inference import sample
        model = self._noise_model(path)
        frames = int(frames)
        if not 2 <= frames <= 64:
            raise BadInput("frames must be between 2 and 64")
        za, zb = (model.noise(1, generator=seeded(s)) for s in (seed_a, seed_b))
        return sample(model, z=interpolate(za, zb, frames) * float(truncation))

    def samples(self, path: str, n: int = 16, seed: int = 0, truncation: float = 1.0):
        from gancore.inference import sample
        n = int(n)
        if not 1 <= n <= 64:
            raise BadInput("the grid holds 1 to 64 images")
        return sample(self._noise_model(path), n=n, seed=int(seed), truncation=float(truncation))

    def translate(self, path: str, image, direction: str = "AB", cycle: bool = True, strength: float = 1.0) -> dict:
        from gancore.deploy.fast import translate_fast
        if image is None:
            raise BadInput("add a photo first: upload, paste, use the webcam or click an example")
        _inference_threads(self.job.is_running())
        return translate_fast(self.resolve(path), image, direction=direction, cycle=bool(cycle),
                              strength=float(strength))


    def start_warm_up(self) -> None:
        self.warming = threading.Thread(target=self.warm_up, daemon=True, name="warm-up")
        self.warming.start()

    def warm_up(self, limit_s: float = 120) -> None:
        """Import the engine, get the Translate tab's default model's fast runners (both ways) ready, then load
        the Explore tab's first model (checking a feature-D model's header imports torch's compiler: 1-2 s)."""
        import logging
        importlib.import_module("gancore.inference")
        try:
            listed = self.library.list_checkpoints("translate")     # no visitor yet: the shipped one
            if listed:
                ways = self.library.load(listed[0][1]).directions()
                for run in [self.runner(listed[0][1], direction) for direction in ways]:
                    run.ready.wait(limit_s)
            listed = self.library.list_checkpoints("noise")
            if listed:
                self.library.load(listed[0][1])
        except Exception as e:    # a broken file is reported when someone chooses it
            logging.getLogger("studio").warning("warm-up: %s", e)

    def runner(self, path: str, direction: str):
        """One way of a translator on the fastest backend for this machine (gancore.deploy.fast)."""
        from gancore.deploy.fast import generator_runner
        _inference_threads(self.job.is_running())
        return generator_runner(self.resolve(path), direction)


def _inference_threads(training: bool) -> None:
    """A thread budget for this request's thread: while a run trains on one core, inference keeps to the other
    (two busy torch pools on two cores run many times slower than one each)."""
    import torch
    want = INFERENCE_THREADS_WHILE_TRAINING if training else max(1, os.cpu_count() or 1)
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)
