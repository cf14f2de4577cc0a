"""HTTP generation service (FastAPI + uvicorn) for a checkpoint or an exported ONNX file.

`gancore serve MODEL --host 127.0.0.1 --port 8000`. Endpoints: `POST /generate` (noise models),
`POST /translate` (CycleGAN), `GET /healthz`, `GET /model`, OpenAPI docs at `/docs`. The work of a request
runs on a pool of threads (ONNX Runtime sessions and eval-mode PyTorch modules are safe to call from several
threads) under `ServiceLimits`: a body over the size limit gets 413 before it is parsed, a request beyond the
pool and its line gets 503 with Retry-After, one past the time limit 504; `/healthz` is answered on the event
loop, never behind work. Every response carries the server time in `X-Process-Time-Ms`.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from gancore.config import to_json
from gancore.data import DataError, open_image
from gancore.deploy.onnx_runtime import OnnxGenerator, cpu_threads
from gancore.errors import BadCheckpoint, GanStudioError, OutOfMemory, Overloaded, TimedOut, TooLarge, describe
from gancore.imaging import png_bytes, seeded, tile, to_uint8
from gancore.inference import load_model, translate_with

MAX_IMAGES = 256                   # per /generate request
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 16_000_000     # 4000x4000; the decoder never sees more
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024   # a photo and its form, or 256 latents of 512 numbers as JSON


class GenerateRequest(BaseModel):
    n: int = Field(16, ge=1, le=MAX_IMAGES, description="how many images (ignored when `noise` is given)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="seed of the latent noise; same seed, same images")
    noise: list[list[float]] | None = Field(None, description="explicit latent vectors, shape (N, latent_dim)")
    truncation: float = Field(1.0, gt=0, le=2, allow_inf_nan=False,
                              description="scales seeded noise; < 1 gives safer samples")
    format: Literal["json", "grid"] = Field("json", description="json: base64 PNGs; grid: one image/png")


class GenerateResponse(BaseModel):
    images: list[str] = Field(description="base64-encoded PNGs")
    width: int
    height: int
    seed: int | None
    server_ms: float


# ----------------------------------------------------------------------------------------------------
# Backends: one interface over a PyTorch checkpoint and an ONNX file

class _TorchBackend:
    def __init__(self, path: Path):
        self.model, self.path = load_model(path), path
        self.kind = "pytorch"
        self.task, self.model_type = self.model.task, self.model.model_type
        self.config = json.loads(to_json(self.model.config))
        self.size_multiple = self.model.size_multiple
        self.directions = list(self.model.directions()) if self.task == "translate" else []
        self.metadata = {"model_type": self.model_type, "task": self.task, "model_config": self.config,
                         "source": path.name, "runtime": "pytorch", "directions": self.directions}

    def run(self, x, direction: str | None = None):
        """torch or numpy in, the same kind out; photos go to the fastest backend (gancore.deploy.fast)."""
        import torch
        net = self.model.generator(direction)
        if self.task == "translate":
            from gancore.deploy.fast import generator_runner
            net = generator_runner(self.path, direction)
        try:
            with torch.inference_mode():
                if isinstance(x, np.ndarray):
                    return net(torch.from_numpy(x)).numpy()
                return net(x)
        except (MemoryError, torch.OutOfMemoryError):
            raise OutOfMemory(f"{self.path.name}: out of memory for this request; try fewer images or a "
                              "smaller photo") from None

    def noise(self, n: int, seed: int) -> np.ndarray:
        return self.model.noise(n, generator=seeded(seed)).numpy()


class _OnnxBackend:
    def __init__(self, path: Path):
        self.gen = OnnxGenerator(path)
        self.kind = "onnx"
        self.task, self.model_type, self.config = self.gen.task, self.gen.model_type, self.gen.config
        self.size_multiple = int(self.gen.contract["input"].get("size_multiple", 0))
        self.directions = [self.gen.direction] if self.task == "translate" else []
        self.metadata = {**self.gen.metadata, "source": path.name, "runtime": f"onnxruntime ({self.gen.provider})",
                         "directions": self.directions}

    def run(self, x, direction: str | None = None):
        import torch
        if isinstance(x, np.ndarray):
            return self.gen.run(x)
        return torch.from_numpy(self.gen.run(x.numpy()))

    def noise(self, n: int, seed: int) -> np.ndarray:
        return self.gen.noise(n, seed)


def load_backend(model_path: str | os.PathLike):
    p = Path(model_path)
    if not p.is_file():
        raise BadCheckpoint(f"{p}: no such model file")
    return _OnnxBackend(p) if p.suffix == ".onnx" else _TorchBackend(p)


# ----------------------------------------------------------------------------------------------------
# Limits: the body's size, how many requests compute at once, how long one may take

@dataclass(frozen=True)
class ServiceLimits:
    max_body_bytes: int = MAX_BODY_BYTES   # larger bodies get 413 before they are parsed
    max_concurrent: int = 0                # requests computing at once (0 = this process's cores, at most 4)
    max_waiting: int = 16                  # requests queued behind them; more get 503 with Retry-After
    timeout_s: float = 60.0                # a request not answered in this time gets 504
    retry_after_s: int = 2                 # what a 503 tells the client to wait

    def workers(self) -> int:
        return self.max_concurrent or min(4, cpu_threads())


class _Gate:
    """Runs endpoint work on `workers()` threads with at most `max_waiting` more requests in line.

    A request that times out is answered 504 at once, but its slot stays taken until its thread is done
    (a thread cannot be stopped), so the bound on work in progress is real.
    """

    def __init__(self, limits: ServiceLimits):
        self.limits = limits
        self.pool = ThreadPoolExecutor(limits.workers(), thread_name_prefix="gancore-serve")
        self.admitted = 0
        self._lock = threading.Lock()

    def _admit(self) -> bool:
        with self._lock:
            if self.admitted >= self.limits.workers() + self.limits.max_waiting:
                return False
            self.admitted += 1
            return True

    def _release(self, _job) -> None:
        with self._lock:
            self.admitted -= 1

    async def run(self, fn, *args):
        lim = self.limits
        if not self._admit():
            raise Overloaded(f"the service is busy ({self.admitted} requests in progress or waiting); "
                             f"retry in {lim.retry_after_s} s", lim.retry_after_s)
        job = self.pool.submit(fn, *args)
        job.add_done_callback(self._release)          # also when a waiting job is cancelled by the timeout
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job), lim.timeout_s)
        except TimeoutError:
            raise TimedOut(f"the request took longer than {lim.timeout_s:g} s and was abandoned; "
                           "ask for fewer images or send a smaller photo") from None


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` gets 413, judged from Content-Length before anything is read
    and by counting while it streams (a client may send no length, or lie). `message`: what the 413 says."""

    def __init__(self, app, max_bytes: int, message: str | None = None):
        self.app, self.max_bytes = app, max_bytes
        self.message = message or f"the request body is larger than {max_bytes / 2**20:.0f} MB"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await self._refuse(send)
        state = {"received": 0, "over": False, "started": False}

        async def counted():
            message = await receive()
            state["received"] += len(message.get("body", b""))
            if state["received"] > self.max_bytes:
                state["over"] = True
                raise TooLarge("request body over the limit")      # stops the parser; answered below
            return message

        async def guarded(message):
            if state["over"]:
                return                                              # the app's answer to a cut-off body
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._refuse(send)

    async def _refuse(self, send):
        body = json.dumps({"detail": self.message, "title": TooLarge.title}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _ServerTime:
    """ASGI middleware: every response carries the time the app took in `X-Process-Time-Ms` (plain ASGI, so it
    adds no task or copy per request on the event loop that also answers /healthz)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t = time.perf_counter()

        async def timed(message):
            if message["type"] == "http.response.start":
                ms = f"{(time.perf_counter() - t) * 1000:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"x-process-time-ms", ms)]}
            await send(message)

        await self.app(scope, receive, timed)


# ----------------------------------------------------------------------------------------------------
# App

def create_app(model_path: str | os.PathLike, limits: ServiceLimits | None = None):
    """FastAPI app serving one model (.safetensors checkpoint or exported .onnx)."""

    backend = load_backend(model_path)
    limits = limits or ServiceLimits()
    gate = _Gate(limits)
    app = FastAPI(title="GAN Studio service", version="1",
                  description=f"Serves {backend.model_type} from {Path(model_path).name} ({backend.kind}).")
    app.state.backend, app.state.gate = backend, gate

    app.add_middleware(_ServerTime)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)   # outermost: before any parsing
    _error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict:
        # async: answered on the event loop, never behind work in the pool
        return {"status": "ok", "model_type": backend.model_type, "runtime": backend.kind,
                "requests_in_progress": gate.admitted}

    @app.get("/model")
    async def model_info() -> dict:
        return backend.metadata

    @app.post("/generate", response_model=GenerateResponse,
              responses={200: {"content": {"image/png": {}}, "description": "JSON, or a PNG grid with format=grid"},
                         **_LIMIT_RESPONSES})
    async def generate(req: GenerateRequest):
        return await gate.run(_generate, backend, req)

    @app.post("/translate", response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the translated photo"}, **_LIMIT_RESPONSES})
    async def translate(image: UploadFile = File(..., description="a photo (PNG, JPEG, ...)"),
                        direction: Literal["AB", "BA"] = Form("AB", description="AB: domain A to B; BA: the reverse")):
        _check_translate(backend, direction)
        name = Path(image.filename or "upload").name
        data = await image.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"{name}: upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        if not data:
            raise HTTPException(400, f"{name}: the uploaded file is empty")
        return await gate.run(_translate, backend, data, name, direction)

    return app


_LIMIT_RESPONSES = {413: {"description": "the body is over the size limit"},
                    503: {"description": "busy: every place in line is taken; see Retry-After"},
                    504: {"description": "the request ran past the time limit"},
                    507: {"description": "out of memory for this request"}}


def _error_handlers(app) -> None:
    @app.exception_handler(RequestValidationError)
    async def readable_422(request: Request, exc: RequestValidationError):
        # The rejected values go back only when JSON can carry them: NaN, Infinity and 1e309 (which Python's
        # JSON reader accepts) cannot be encoded again, and trying made this handler answer 500.
        errors = [_json_safe_error(e) for e in exc.errors()]
        msg = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}" for e in errors)
        return JSONResponse({"detail": msg, "errors": errors}, status_code=422)

    @app.exception_handler(GanStudioError)
    async def engine_error(request: Request, exc: GanStudioError):
        # Engine errors read as guidance with their own status (400, 413, 503 with Retry-After, 504, 507 ...).
        d = describe(exc)
        retry = getattr(exc, "retry_after_s", None)
        return JSONResponse({"detail": d.message, "title": d.title}, status_code=d.http_status,
                            headers={"Retry-After": str(retry)} if retry else None)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        # The machine's side (OSError) reads as guidance too; anything else is our bug: a reference to the log
        # line, never a traceback.
        d = describe(exc, where=f"{request.method} {request.url.path}")
        return JSONResponse({"detail": d.message, "title": d.title, **({"reference": d.reference} if d.internal else {})},
                            status_code=d.http_status)


def _generate(backend, req: GenerateRequest):
    t = time.perf_counter()
    if backend.task != "noise":
        raise HTTPException(400, f"this {backend.model_type} model does not generate from noise; "
                                 + ("use POST /translate" if backend.task == "translate" else "it reconstructs masked images"))
    latent = int(backend.config["latent_dim"])
    if req.noise is not None:
        z, seed = _explicit_noise(req.noise, latent), None
    else:
        z, seed = backend.noise(req.n, req.seed) * req.truncation, req.seed
    images = to_uint8(backend.run(z.astype(np.float32)))
    if req.format == "grid":
        return Response(png_bytes(tile(images)), media_type="image/png")
    encoded = [base64.b64encode(png_bytes(im)).decode("ascii") for im in images]
    return {"images": encoded, "width": images.shape[2], "height": images.shape[1], "seed": seed,
            "server_ms": round((time.perf_counter() - t) * 1000, 2)}


def _explicit_noise(noise: list[list[float]], latent: int) -> np.ndarray:
    bad = next((i for i, row in enumerate(noise) if len(row) != latent), None)
    if not noise or bad is not None:
        got = f"row {bad} has {len(noise[bad])} values" if bad is not None else "no rows"
        raise HTTPException(422, f"noise must have shape (N, {latent}) with 1 <= N <= {MAX_IMAGES}: {got}")
    if len(noise) > MAX_IMAGES:
        raise HTTPException(422, f"noise has {len(noise)} rows; at most {MAX_IMAGES} per request")
    z = np.asarray(noise, dtype=np.float32)   # (N, latent_dim)
    if not np.isfinite(z).all():
        raise HTTPException(422, "noise holds NaN or infinite values")
    return z


def _check_translate(backend, direction: str) -> None:
    if backend.task != "translate":
        raise HTTPException(400, f"this {backend.model_type} model does not translate images; use POST /generate"
                            if backend.task == "noise" else f"this {backend.model_type} model does not translate images")
    if direction not in backend.directions:
        raise HTTPException(422, f"direction {direction!r} is not available: this file holds "
                                 f"{', '.join(backend.directions)} only")


def _translate(backend, data: bytes, name: str, direction: str) -> Response:
    # The pixel count is checked from the header before decoding: a decompression bomb is a 413.
    photo = open_image(io.BytesIO(data), max_pixels=MAX_UPLOAD_PIXELS, name=name)
    try:
        # The same path as the studio and the CLI (gancore.inference.translate_with): same pixels.
        result = translate_with(lambda t: backend.run(t, direction), photo, int(backend.config["image_channels"]),
                                int(backend.config["image_size"]), backend.size_multiple)
    except DataError as e:
        raise type(e)(f"{name}: {e}") from None
    return Response(png_bytes(result["output"]), media_type="image/png")


def _json_safe_error(e: dict) -> dict:
    """A pydantic error dict that JSON can encode; a non-finite input gets a message that says so."""
    out = {k: v for k, v in e.items() if k in ("type", "loc", "msg")}
    value = e.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        out["msg"] = f"must be a finite number, got {value} (NaN and Infinity are not accepted)"
    else:
        try:
            json.dumps(value, allow_nan=False)
            out["input"] = value
        except (TypeError, ValueError):
            pass
    out["loc"] = [str(p) for p in out.get("loc", [])]
    return out


def main(model: str, host: str = "127.0.0.1", port: int = 8000, limits: ServiceLimits | None = None) -> None:
    import uvicorn
    app = create_app(model, limits)
    print(f"serving {Path(model).name} on http://{host}:{port} (docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=30)
