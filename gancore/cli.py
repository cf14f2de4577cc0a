"""`gancore` command line: train, distill, sample, inspect, translate, eval, export, serve.

Every flag explains itself (`gancore <command> --help`); a training run's flags and a model's `--set` keys
are the config fields, described by the comments beside them (`gancore train --model dcgan --list-settings`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancore import registry
from gancore.analysis import evaluation
from gancore.config import ConfigError, describe_fields
from gancore.deploy import export, serve
from gancore.distill import DistillConfig, Distiller
from gancore.errors import BadInput, GanStudioError, TooLarge, TrainingError, describe
from gancore.imaging import seeded
from gancore.inference import header_summary, load_model, sample
from gancore.recipes import recommended, recommended_model_config
from gancore.train_config import TrainConfig
from gancore.training import Event, Trainer, make_grid
from gancore.translate_files import translate_paths
from gancore.video import is_video, translate_clip


def _flag_help(meaning: str, default) -> str:
    shown = '""' if default == "" else default
    return f"{meaning} (default: {shown})".replace("%", "%%")


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, skip=(), choices=None) -> None:
    """One flag per config field, its help taken from the field's comment; unset flags stay None."""
    for name, kind, default, meaning in describe_fields(cls):
        if name in skip:
            continue
        flag, help_text = "--" + name.replace("_", "-"), _flag_help(meaning, default)
        if kind == "bool":
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"), default=None,
                                metavar="BOOL", help=help_text)
        else:
            parser.add_argument(flag, type={"int": int, "float": float}.get(kind, str), default=None,
                                choices=(choices or {}).get(name), help=help_text)


def model_settings(model: str) -> str:
    """Each `--set` key of `model`: name, type, default and meaning, one line each."""
    rows = describe_fields(registry.get(model).config_cls)
    width = max(len(name) for name, *_ in rows)
    lines = [f"{model} settings (gancore train --model {model} --set KEY=VALUE):"]
    lines += [f"  {name:<{width}}  {kind:<5}  default {default!r:<12}  {meaning}"
              for name, kind, default, meaning in rows]
    return "\n".join(lines)


def _parse_sets(pairs: list[str], cls) -> dict:
    """`--set base_channels=32` -> typed model-config overrides."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        if k not in fields:
            raise ConfigError(f"unknown model setting {k!r}; known: {sorted(fields)}")
        default = fields[k].default
        try:
            if isinstance(default, bool):
                out[k] = v.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, tuple):
                out[k] = tuple(int(x) for x in v.split(","))
            else:
                out[k] = type(default)(v)
        except ValueError:
            raise ConfigError(f"--set {k}={v}: expected {type(default).__name__} like {default!r}") from None
    return out


MAX_SAMPLES = 100_000          # `sample --out`: one PNG each, drawn SAMPLE_BATCH at a time
MAX_GRID = 1024                # `sample --grid`: one image of at most this many samples
SAMPLE_BATCH = 256


class OutputError(BadInput):
    """An output location that cannot be written (read-only, full, not a folder)."""


def _writing(path, action, partial_file: bool = True):
    """Run `action()`, turning a failed write into one line that names the path (a half-written file goes)."""
    try:
        return action()
    except OSError as e:
        if partial_file and Path(path).is_file():
            with contextlib.suppress(OSError):
                Path(path).unlink()
        raise OutputError(f"{path}: cannot write there ({e.strerror or e.__class__.__name__})") from None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def cmd_train(args) -> int:
    if args.list_settings:
        print(model_settings(args.model or TrainConfig.model))
        return 0
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    # A resume keeps the run's settings; the few it may change are changed only when given on the command line.
    changes = {k: v for k, v in flags.items() if v is not None and k in Trainer.RESUME_CHANGES} if args.resume else {}
    train_cfg = recommended(flags.pop("model") or TrainConfig.model, **flags)   # the model's defaults, then flags
    entry = registry.get(train_cfg.model)
    model_cfg = recommended_model_config(train_cfg.model, train_cfg.data, **_parse_sets(args.set, entry.config_cls))
    trainer = Trainer(train_cfg, model_cfg, resume=args.resume, resume_changes=changes)
    signalled = _stop_on_signals(trainer)
    try:
        from tqdm import tqdm  # optional: a progress bar on a terminal
        bar = tqdm(total=1000, unit="‰", disable=args.quiet or not sys.stderr.isatty())
    except ImportError:  # tqdm is optional at run time
        bar = None
    last = 0
    try:
        for ev in trainer.run():
            if ev.kind == "error":
                print(f"error: {ev.message}", file=sys.stderr)
                return 2
            if ev.kind == "step":
                if bar is not None and not bar.disable:
                    bar.update(int(ev.progress * 1000) - last)
                    last = int(ev.progress * 1000)
                    bar.set_postfix_str(f"step {ev.step} {ev.images_per_s:.0f} img/s")
                elif not args.quiet:
                    print(format_event(ev), flush=True)
            elif ev.kind == "sample" and args.save_samples:
                Image.fromarray(ev.grid.squeeze()).save(Path(trainer.out_dir) / f"sample_{ev.step:07d}.png")
            elif ev.kind == "quality" and not args.quiet:
                print(format_event(ev), flush=True)
            elif ev.kind in ("start", "end", "checkpoint") and not args.quiet:
                print(f"[{ev.kind}] {ev.message or ev.path}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: checkpoint saved", file=sys.stderr)
        return 130
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 128 + signalled[0] if signalled else 0


def _stop_on_signals(trainer) -> list:
    """SIGTERM (a container stop) and Ctrl-C end the run after the current step; it saves and reports as
    usual. A second Ctrl-C aborts at once (the checkpoint of at most a minute ago stays)."""
    got: list = []

    def handler(signum, frame):
        if got and signum == signal.SIGINT:
            raise KeyboardInterrupt
        got.append(signum)
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving...", file=sys.stderr, flush=True)
        trainer.stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return got


def cmd_distill(args) -> int:
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig) if getattr(args, f.name, None) is not None}
    distiller = Distiller(DistillConfig(**{**flags, "teacher": args.teacher or ""}), resume=args.resume)
    signalled = _stop_on_signals(distiller)
    for ev in distiller.run():
        if ev.kind == "step" and not args.quiet:
            losses = " ".join(f"{k}={v:.4f}" for k, v in ev.losses.items())
            print(f"step {ev.step} {ev.images_per_s:.1f} img/s (teacher {ev.teacher_share * 100:.0f} %) "
                  f"{ev.elapsed_s / 60:.1f} min {losses}", flush=True)
        elif ev.kind in ("start", "end", "checkpoint") and not args.quiet:
            print(f"[{ev.kind}] {ev.message or ev.path}", flush=True)
    return 128 + signalled[0] if signalled else 0


def cmd_sample(args) -> int:
    if args.n > MAX_SAMPLES:
        raise TooLarge(f"--n {args.n}: at most {MAX_SAMPLES} samples per command")
    if args.grid and args.n > MAX_GRID:
        raise TooLarge(f"--n {args.n}: a --grid holds at most {MAX_GRID} samples; use --out for more")
    model = load_model(args.checkpoint)
    if model.task != "noise":
        raise BadInput(f"{Path(args.checkpoint).name}: a {model.model_type} model does not draw samples from noise")
    out = Path(args.out) if args.out else None
    if out is not None:
        _writing(out, lambda: out.mkdir(parents=True, exist_ok=True), partial_file=False)
    # Drawn in batches of SAMPLE_BATCH from one seeded stream, written as they come: memory stays bounded.
    # Up to SAMPLE_BATCH images are exactly what sample(n, seed) gives, as in the service and the studio.
    gen = seeded(args.seed)
    grid_parts, written = [], 0
    for start in range(0, args.n, SAMPLE_BATCH):
        z = model.noise(min(SAMPLE_BATCH, args.n - start), generator=gen) * args.truncation
        images = sample(model, z=z)
        if args.grid:
            grid_parts.append(images)
        if out is not None:
            for i, img in enumerate(images, start):
                dst = out / f"sample_{args.seed}_{i:04d}.png"
                _writing(dst, lambda: Image.fromarray(img.squeeze()).save(dst))
                written += 1
    if args.grid:
        images = np.concatenate(grid_parts)
        t = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        grid = make_grid(t, nrow=int(np.ceil(np.sqrt(args.n)))).squeeze()
        _writing(args.grid, lambda: Image.fromarray(grid).save(args.grid, format="PNG"))
        print(f"wrote {args.grid}")
    if out is not None:
        print(f"wrote {written} images to {out}")
    return 0


def cmd_inspect(args) -> int:
    print(json.dumps(header_summary(args.checkpoint), indent=2))
    return 0


def _translate_videos(args, videos) -> list[dict]:
    """Clips go through gancore.video one by one; a bad clip gets its error and the rest go on."""
    model = load_model(args.checkpoint)
    results = []
    for v in videos:
        rec = {"input": str(v), "error": "", "note": ""}
        try:
            dst = Path(args.out) / f"{Path(v).stem}_{args.direction}.mp4"
            r = translate_clip(model, v, dst, args.direction, deflicker=args.deflicker, max_seconds=args.max_seconds)
            rec["output"] = r["output"]
            rec["note"] = (f"{r['frames']} frames, {r['seconds']:.1f} s, translated in {r['elapsed_s']:.1f} s "
                           f"({r['time_ratio']}x its length), " + ("sound kept" if r["audio"] else "no sound"))
        except (GanStudioError, OSError) as e:
            rec["error"] = str(e)
        results.append(rec)
    return results


def cmd_translate(args) -> int:
    videos = [p for p in args.inputs if is_video(p)]
    photos = [p for p in args.inputs if not is_video(p)]
    results = translate_paths(args.checkpoint, photos, args.out, direction=args.direction,
                              cycle=args.cycle, scale=args.scale, batch_size=args.batch_size) if photos else []
    results += _translate_videos(args, videos) if videos else []
    failed = [r for r in results if r["error"]]
    for r in results:
        print(f"{'ERROR ' + r['error'] if r['error'] else 'ok'}: {r['input']} -> {r.get('output', '')}"
              + (f" ({r['note']})" if r.get("note") else ""))
    print(f"{len(results) - len(failed)} translated, {len(failed)} failed")
    return 1 if failed and len(failed) == len(results) else 0


def cmd_eval(args) -> int:
    result = evaluation.evaluate(args.checkpoint, n=args.n, data_a=args.test_a, data_b=args.test_b,
                                 device=args.device)
    for line in result.get("skipped_files", []):
        print(f"skipped: {line}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    if args.json:
        _writing(args.json, lambda: Path(args.json).write_text(json.dumps(result, indent=2)))
    return 0


def cmd_export(args) -> int:
    report = export.export_onnx(args.checkpoint, args.out, int8=args.int8, network=args.network)
    print(json.dumps(report, indent=2))
    return 0


def cmd_serve(args) -> int:
    limits = serve.ServiceLimits(max_body_bytes=int(args.max_body_mb * 2**20), max_concurrent=args.max_concurrent,
                                 max_waiting=args.max_waiting, timeout_s=args.timeout_s)
    serve.main(args.model, host=args.host, port=args.port, limits=limits)
    return 0


def _waiting(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= n <= 10_000:
        raise argparse.ArgumentTypeError(f"must be from 0 to 10000, got {n}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < x < 1e6:
        raise argparse.ArgumentTypeError(f"must be above 0 and below 1000000, got {text}")
    return x


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gancore", description="GAN Studio engine: train, sample, translate, evaluate, export and "
                "serve small GANs. `gancore <command> --help` describes each command's flags.")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")
    _train_parser(sub)
    _distill_parser(sub)
    _sample_parser(sub)
    i = sub.add_parser("inspect", help="print a checkpoint's header without loading tensors")
    i.add_argument("checkpoint", help="a .safetensors checkpoint")
    i.set_defaults(func=cmd_inspect)
    _translate_parser(sub)
    _eval_parser(sub)
    _export_parser(sub)
    v = sub.add_parser("serve", help="serve a model over HTTP (FastAPI; docs at /docs)")
    v.add_argument("model", help="checkpoint (.safetensors) or exported .onnx")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                   "only; 0.0.0.0 for every network)")
    v.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    d = serve.ServiceLimits()
    v.add_argument("--max-body-mb", type=_positive_float, default=d.max_body_bytes / 2**20,
                   help=f"larger request bodies get 413 before they are read (default: {d.max_body_bytes / 2**20:g})")
    v.add_argument("--max-concurrent", type=_positive, default=d.workers(),
                   help=f"requests computed at once (default: {d.workers()}, this machine's cores up to 4)")
    v.add_argument("--max-waiting", type=_waiting, metavar="N", default=d.max_waiting,
                   help=f"requests in line behind them; more get 503 with Retry-After (default: {d.max_waiting})")
    v.add_argument("--timeout-s", type=_positive_float, default=d.timeout_s,
                   help=f"a request not answered in this many seconds gets 504 (default: {d.timeout_s:g})")
    v.set_defaults(func=cmd_serve)
    return p


def _train_parser(sub) -> None:
    models = registry.list_models()
    t = sub.add_parser("train", help="train a model (also under torchrun for DDP)",
                       description="Train a model. Settings not given take the model's measured recipe for "
                       "the data, then the defaults below. Models: " +
                       "; ".join(f"{m}: {registry.get(m).title}" for m in models) + ".")
    _add_dataclass_flags(t, TrainConfig, choices={"model": models})
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a model setting, e.g. base_channels=32 (repeatable); --list-settings shows the keys")
    t.add_argument("--list-settings", action="store_true",
                   help="print the --set keys of --model with their types, defaults and meanings, then exit")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="a resumable checkpoint (last.safetensors) to continue exactly where it stopped")
    t.add_argument("--save-samples", action="store_true", help="also write each preview grid as a PNG into out_dir")
    t.add_argument("--quiet", action="store_true", help="print only errors")
    t.set_defaults(func=cmd_train)


def _distill_parser(sub) -> None:
    d = sub.add_parser("distill", help="distil a CycleGAN teacher into a mobile student (CPU, resumable)")
    d.add_argument("teacher", nargs="?", help="the teacher checkpoint (not needed with --resume)")
    _add_dataclass_flags(d, DistillConfig, skip=("teacher", "out_dir"))
    d.add_argument("--out", dest="out_dir", help="output folder (default: runs/student-<date>-<time>)")
    d.add_argument("--resume", metavar="CHECKPOINT", help="a distillation run's last.safetensors to continue exactly")
    d.add_argument("--quiet", action="store_true", help="print only errors")
    d.set_defaults(func=cmd_distill)


def _sample_parser(sub) -> None:
    s = sub.add_parser("sample", help="draw images from a noise model")
    s.add_argument("checkpoint", help="a noise model's .safetensors checkpoint (mlp, dcgan)")
    s.add_argument("--n", type=_positive, default=16,
                   help=f"how many images (default: 16; at most {MAX_SAMPLES}, {MAX_GRID} in a --grid)")
    s.add_argument("--seed", type=int, default=0, help="which images: the same seed draws the same images (default: 0)")
    s.add_argument("--truncation", type=float, default=1.0,
                   help="scales the noise: below 1 trades variety for typical-looking images (default: 1.0)")
    s.add_argument("--out", help="folder for one PNG per image (sample_<seed>_<index>.png)")
    s.add_argument("--grid", help="one PNG file holding every image in a square grid")
    s.set_defaults(func=cmd_sample)


def _translate_parser(sub) -> None:
    tr = sub.add_parser("translate", help="translate photos and video clips with a CycleGAN or CUT checkpoint")
    tr.add_argument("checkpoint", help="a translation model's .safetensors checkpoint")
    tr.add_argument("inputs", nargs="+", help="images, folders or video clips (.mp4, .mov, .mkv, .webm, ...)")
    tr.add_argument("--direction", choices=["AB", "BA"], default="AB",
                    help="AB maps domain A to B (horse to zebra), BA the reverse (default: AB)")
    tr.add_argument("--out", required=True, help="output folder (created if missing)")
    tr.add_argument("--cycle", action="store_true", help="also write the cycle reconstruction (translated back)")
    tr.add_argument("--scale", choices=["model", "full"], default="model",
                    help="model: the photo's shorter side goes to the training size, then back; full: the photo's "
                    "own size, at most 1024 px (slower, finer) (default: model)")
    tr.add_argument("--batch-size", type=_positive, default=4, help="photos per forward pass (default: 4)")
    tr.add_argument("--max-seconds", type=float, default=30.0, help="video clips: refuse longer ones, seconds (default: 30)")
    tr.add_argument("--deflicker", type=float, default=0.7,
                    help="video clips: 0 translates each frame on its own; up to 0.99 holds still areas "
                    "steadier (default: 0.7)")
    tr.set_defaults(func=cmd_translate)


def _eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="quality metrics: digit FID/IS/coverage, or translation FID/KID")
    e.add_argument("checkpoint", help="a .safetensors checkpoint")
    e.add_argument("--n", type=_positive, default=10000, help="noise models: samples to score (default: 10000)")
    e.add_argument("--test-a", help="translation models: folder of test images of domain A")
    e.add_argument("--test-b", help="translation models: folder of test images of domain B")
    e.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu or cuda (default: auto)")
    e.add_argument("--json", help="also write the result to this file")
    e.set_defaults(func=cmd_eval)


def _export_parser(sub) -> None:
    x = sub.add_parser("export", help="export a generator to ONNX (with a parity check)")
    x.add_argument("checkpoint", help="a .safetensors checkpoint")
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--int8", action="store_true",
                   help="static int8 QDQ quantisation, calibrated on real inputs; refused below the PSNR floor")
    x.add_argument("--network", help="which generator: AB or G_AB (default), BA or G_BA for translation models")
    x.set_defaults(func=cmd_export)


def format_event(ev: Event) -> str:
    """One line of text for a progress event, as the command line prints it."""
    if ev.kind == "quality":
        m = ev.metrics
        moved = f" identity distance {m['identity']:.3f}" if "identity" in m else ""
        return (f"[quality] step {ev.step} KID x100 {m['kid']:.3f}{moved} diversity {m['diversity']:.2f}: "
                f"{ev.message}")
    if ev.kind != "step":
        return f"[{ev.kind}] {ev.message}"
    losses = " ".join(f"{k}={v:.3f}" for k, v in ev.losses.items())
    eta = f" eta {ev.eta_s:.0f}s" if ev.eta_s is not None else ""
    ips = f"{ev.images_per_s:.0f}" if ev.images_per_s >= 10 else f"{ev.images_per_s:.2f}"
    return f"step {ev.step} ep {ev.epoch} {ev.progress * 100:.1f}% {ips} img/s{eta} {losses}"


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:          # --help, or a bad argument already reported in one line
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        d = describe(e, where=f"gancore {args.command}")
        print(f"error: {d.message}", file=sys.stderr)
        return 3 if d.internal else 2


if __name__ == "__main__":
    sys.exit(main())
