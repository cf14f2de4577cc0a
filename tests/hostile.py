"""A corpus of hostile files, generated (never committed): what a careless or hostile user hands GAN Studio.

`build_corpus(root)` writes every case under `root` and returns `Case`s. Each case says what kind of input it
is (`image`, `checkpoint`, `zip`, `onnx`) and whether the product should use it (`ok=True`: a CMYK JPEG, a
16-bit PNG, an animated GIF) or refuse it in one line that names the file (`ok=False`). `test_faults.py`
runs the corpus through every entry point: the CLI, the HTTP service and the studio's services.

Everything is small on disk (the bombs are a few hundred kB) and the whole corpus is written in about a
second, so the sweep can run in every suite.
"""
from __future__ import annotations

import io
import json
import pickle
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str            # short id, also the test id
    kind: str            # "image", "checkpoint", "zip", "onnx"
    path: Path
    ok: bool = False     # True: the product should accept it (and do the right thing)
    why: str = ""        # what makes it hostile


# ----------------------------------------------------------------------------------------------------
# Images

def _rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit-deep grey PNG of width x height zeros: tiny on disk, width*height pixels decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)   # bit depth 1, greyscale
    row = b"\x00" * (1 + (width + 7) // 8)                            # filter byte + packed zeros
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sixteen_bit_png() -> bytes:
    """A 16-bit grey gradient (mode I;16): an 8-bit reading of it must not come out almost white."""
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (48, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    return buf.getvalue()


def image_cases(root: Path) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    good = _png_bytes(_rgb(64, 48))
    jpg = io.BytesIO()
    _rgb(64, 48).save(jpg, "JPEG")
    jpg = jpg.getvalue()
    cmyk = io.BytesIO()
    _rgb(64, 48).convert("CMYK").save(cmyk, "JPEG")
    gif = io.BytesIO()
    frames = [_rgb(40, 40, s).convert("P") for s in range(3)]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    cases = {
        # name: (file name, bytes, ok, why)
        "good_png": ("good.png", good, True, "a plain RGB PNG"),
        "truncated_png": ("truncated.png", good[: len(good) // 2], False, "PNG cut in half"),
        "truncated_jpg": ("truncated.jpg", jpg[: len(jpg) // 3], False, "JPEG cut short"),
        "zero_byte": ("empty.png", b"", False, "zero bytes"),
        "text_as_png": ("notes.png", b"this is not an image\n" * 20, False, "a text file named .png"),
        "html_as_jpg": ("page.jpg", b"<html><body>hello</body></html>", False, "HTML named .jpg"),
        "png_named_jpg": ("really_png.jpg", good, True, "a PNG with a .jpg name (content decides)"),
        "cmyk_jpg": ("cmyk.jpg", cmyk.getvalue(), True, "CMYK JPEG"),
        "png16": ("gradient16.png", sixteen_bit_png(), True, "16-bit grey PNG"),
        "animated_gif": ("animated.gif", gif.getvalue(), True, "animated GIF (first frame is used)"),
        "one_pixel": ("pixel.png", _png_bytes(_rgb(1, 1)), False, "1x1 pixel"),
        "extreme_aspect": ("strip.png", _png_bytes(_rgb(2000, 10)), False, "2000x10 strip"),
        # Over PIL's hard limit (2 x MAX_IMAGE_PIXELS): refused when the header is read.
        "bomb_png": ("bomb.png", png_bomb(12_000, 12_000), False, "decompression bomb, 144 megapixels"),
        # Under PIL's hard limit but over ours: our own check must refuse it before decoding.
        "bomb_png_mid": ("bomb_mid.png", png_bomb(7_000, 7_000), False, "decompression bomb, 49 megapixels"),
    }
    out = []
    for name, (fname, data, ok, why) in cases.items():
        p = root / fname
        p.write_bytes(data)
        out.append(Case(name, "image", p, ok, why))
    return out


# ----------------------------------------------------------------------------------------------------
# Checkpoints: a real tiny file, then headers that lie in every way we know

def read_raw(path: Path) -> tuple[dict, bytes]:
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def write_raw(path: Path, header, body: bytes) -> Path:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + body)
    return Path(path)


def _with_config(src: Path, dst: Path, **changes) -> Path:
    header, body = read_raw(src)
    cfg = json.loads(header["__metadata__"]["model_config"])
    cfg.update(changes)
    header["__metadata__"]["model_config"] = json.dumps(cfg)
    return write_raw(dst, header, body)


def _with_meta(src: Path, dst: Path, **changes) -> Path:
    header, body = read_raw(src)
    header["__metadata__"].update(changes)
    return write_raw(dst, header, body)


def checkpoint_cases(root: Path, tiny_dcgan: Path, tiny_cyclegan: Path, resumable: Path | None = None) -> list[Case]:
    """Hostile checkpoints derived from real tiny ones (`tiny_dcgan`, `tiny_cyclegan`, and a resumable run)."""
    root.mkdir(parents=True, exist_ok=True)
    d = tiny_dcgan
    out = [Case("ckpt_good_dcgan", "checkpoint", d, True, "a real tiny DCGAN"),
           Case("ckpt_good_cyclegan", "checkpoint", tiny_cyclegan, True, "a real tiny CycleGAN")]

    def add(name, path, why):
        out.append(Case(name, "checkpoint", path, False, why))

    # Model config values that lie.
    add("cfg_huge_channels", _with_config(d, root / "huge_channels.safetensors", base_channels=20000),
        "base_channels 20000 (124 GB if built)")
    add("cfg_big_channels", _with_config(d, root / "big_channels.safetensors", base_channels=6000),
        "base_channels 6000 (11 GB if built)")
    add("cfg_negative", _with_config(d, root / "negative.safetensors", base_channels=-5), "base_channels -5")
    add("cfg_string", _with_config(d, root / "string.safetensors", base_channels="x"), "base_channels 'x'")
    add("cfg_float_for_int", _with_config(d, root / "float_int.safetensors", base_channels=3.5), "base_channels 3.5")
    add("cfg_bool_for_int", _with_config(d, root / "bool_int.safetensors", latent_dim=True), "latent_dim true")
    add("cfg_huge_latent", _with_config(d, root / "huge_latent.safetensors", latent_dim=10**9), "latent_dim 1e9")
    add("cfg_bad_size", _with_config(d, root / "bad_size.safetensors", image_size=31), "image_size 31")
    add("cfg_loss_number", _with_config(d, root / "loss_number.safetensors", loss=3), "loss 3 (a number)")
    add("cfg_unknown_key", _with_config(d, root / "unknown_key.safetensors", colour="blue"), "unknown setting")
    add("cfg_shape_lie", _with_config(d, root / "shape_lie.safetensors", base_channels=8),
        "config says base_channels 8, tensors were saved with 4")
    add("cfg_not_json", _with_meta(d, root / "cfg_not_json.safetensors", model_config="{not json"),
        "model_config is not JSON")
    add("cfg_list", _with_meta(d, root / "cfg_list.safetensors", model_config="[1, 2]"), "model_config is a list")
    cfg_text = read_raw(d)[0]["__metadata__"]["model_config"]
    add("cfg_nan", _with_meta(d, root / "cfg_nan.safetensors",
                              model_config=re.sub(r'"latent_dim": \d+', '"latent_dim": NaN', cfg_text)), "latent_dim NaN")
    add("meta_unknown_model", _with_meta(d, root / "unknown_model.safetensors", model_type="stylegan9"),
        "model_type stylegan9")
    add("meta_no_format", _with_meta(d, root / "no_format.safetensors", format="other"), "not a gancore file")
    add("meta_future_version", _with_meta(d, root / "future.safetensors", format_version="99"),
        "format_version 99")
    add("meta_missing_config", _strip_meta(d, root / "missing_config.safetensors", "model_config"),
        "no model_config")

    # Header structure that lies.
    header, body = read_raw(d)
    first = next(k for k in header if k != "__metadata__")
    h = dict(header)
    h["__metadata__"] = [["format", "gancore"]]
    add("hdr_list_metadata", write_raw(root / "list_metadata.safetensors", h, body), "__metadata__ is a list")
    h = dict(header)
    h["__metadata__"] = {**header["__metadata__"], "format_version": 1}
    add("hdr_nonstring_meta", write_raw(root / "nonstring_meta.safetensors", h, body), "a metadata value is a number")
    h = json.loads(json.dumps(header))
    del h[first]["data_offsets"]
    add("hdr_no_offsets", write_raw(root / "no_offsets.safetensors", h, body), "a tensor without data_offsets")
    h = json.loads(json.dumps(header))
    h[first]["data_offsets"] = [10, 2]
    add("hdr_bad_offsets", write_raw(root / "bad_offsets.safetensors", h, body), "data_offsets reversed")
    h = json.loads(json.dumps(header))
    h[first]["data_offsets"] = "0-8"
    add("hdr_offsets_string", write_raw(root / "offsets_string.safetensors", h, body), "data_offsets a string")
    h = json.loads(json.dumps(header))
    h[first]["shape"] = [-1]
    add("hdr_negative_shape", write_raw(root / "negative_shape.safetensors", h, body), "a negative tensor shape")
    h = json.loads(json.dumps(header))
    h[first] = "not a tensor"
    add("hdr_entry_string", write_raw(root / "entry_string.safetensors", h, body), "a tensor entry that is a string")
    add("hdr_is_list", write_raw(root / "header_list.safetensors", [1, 2, 3], body), "the whole header is a list")
    add("hdr_huge_length", root / "huge_length.safetensors", "header length 2^60")
    (root / "huge_length.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")

    # Training state that lies.
    for name, value in [("ts_not_json", "{oops"), ("ts_list", "[1, 2]"), ("ts_no_step", json.dumps({"epoch": 0})),
                        ("ts_step_string", json.dumps({"step": "x", "epoch": 0, "train_config": {}})),
                        ("ts_config_list", json.dumps({"step": 1, "epoch": 0, "train_config": [1]}))]:
        add(name, _with_meta(d, root / f"{name}.safetensors", train_state=value), f"train_state {value[:20]!r}")
    add("trained_bad", _with_meta(d, root / "trained_bad.safetensors", trained="[]"), "trained is a list")
    add("metrics_bad", _with_meta(d, root / "metrics_bad.safetensors", metrics="{nope"), "metrics is not JSON")
    if resumable is not None:
        header, body = read_raw(resumable)
        st = json.loads(header["__metadata__"]["train_state"])
        st["train_config"]["lr_g"] = float("nan")
        header["__metadata__"]["train_state"] = json.dumps(st)
        add("ts_lr_nan", write_raw(root / "ts_lr_nan.safetensors", header, body), "resumable run with lr_g NaN")

    # Tensors that lie.
    import torch
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(d))
    meta = read_raw(d)[0]["__metadata__"]
    poisoned = {k: (v.clone().fill_(float("nan")) if v.is_floating_point() and k.startswith("G.") else v)
                for k, v in tensors.items()}
    save_file(poisoned, str(root / "nan_weights.safetensors"), metadata=meta)
    add("nan_weights", root / "nan_weights.safetensors", "generator weights are NaN")
    cyc_meta = read_raw(tiny_cyclegan)[0]["__metadata__"]
    save_file(load_file(str(tiny_cyclegan)), str(root / "other_model.safetensors"),
              metadata={**cyc_meta, "model_type": "dcgan", "model_config": meta["model_config"]})
    add("other_model", root / "other_model.safetensors", "CycleGAN tensors under a DCGAN header")
    save_file({k: v for k, v in tensors.items() if not k.startswith("G.")}, str(root / "no_generator.safetensors"),
              metadata=meta)
    add("no_generator", root / "no_generator.safetensors", "discriminator only")

    # Files that are not checkpoints at all.
    raw = Path(d).read_bytes()
    (root / "truncated.safetensors").write_bytes(raw[: len(raw) // 2])
    add("truncated", root / "truncated.safetensors", "checkpoint cut in half")
    (root / "zero.safetensors").write_bytes(b"")
    add("zero_byte", root / "zero.safetensors", "zero bytes")
    (root / "pickle.safetensors").write_bytes(pickle.dumps({"G": [1, 2, 3]}, protocol=4))
    add("pickle", root / "pickle.safetensors", "a pickle under a .safetensors name")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    (root / "torch_pt.safetensors").write_bytes(buf.getvalue())
    add("torch_pt", root / "torch_pt.safetensors", "a torch.save zip under a .safetensors name")
    (root / "noise.safetensors").write_bytes(np.random.default_rng(1).bytes(4096))
    add("random_bytes", root / "noise.safetensors", "random bytes")
    save_file({"w": torch.zeros(3)}, str(root / "foreign.safetensors"), metadata={"hello": "world"})
    add("foreign", root / "foreign.safetensors", "a safetensors file from another program")
    return out


def _strip_meta(src: Path, dst: Path, key: str) -> Path:
    header, body = read_raw(src)
    header["__metadata__"].pop(key, None)
    return write_raw(dst, header, body)


# ----------------------------------------------------------------------------------------------------
# Zips and ONNX files

ZIP_MEMBER_CAP = 100 * 1024 * 1024     # what gancore.files allows per member (checked by the tests)


def zip_cases(root: Path, bomb_mb: int = 256) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    good = _png_bytes(_rgb(40, 40))
    out = []

    def make(name, why, members, ok=False):
        p = root / f"{name}.zip"
        with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
            for m in members:
                m(zf)
        out.append(Case(name, "zip", p, ok, why))

    imgs = [lambda zf, i=i: zf.writestr(f"img/{i}.png", good) for i in range(8)]
    make("zip_good", "eight good images", imgs, ok=True)
    make("zip_slip", "members named ../../evil.png and /abs.png (good images are kept, escapes skipped)",
         imgs + [lambda zf: zf.writestr("../../evil.png", good), lambda zf: zf.writestr("/abs/evil.png", good)],
         ok=True)

    def symlink(zf):
        info = zipfile.ZipInfo("link.png")
        info.external_attr = (0o120777 << 16)        # a symlink member pointing at /etc/passwd
        zf.writestr(info, "/etc/passwd")
    make("zip_symlink", "a symlink member (skipped; good images kept)", imgs + [symlink], ok=True)

    def bomb(zf):
        # One member of bomb_mb MB zeros (1.5 GB in the memory drill), 1/1000 of that compressed.
        info = zipfile.ZipInfo("bomb.png")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            block = b"\x00" * (16 * 1024 * 1024)
            for _ in range(bomb_mb // 16):
                f.write(block)
    make("zip_bomb", f"one member of {bomb_mb} MB zeros", [bomb])

    def lying(zf):
        zf.writestr("liar.png", b"\x00" * (ZIP_MEMBER_CAP + 4096))
    make("zip_member_liar", "a member that unpacks past the per-member cap", [lying])
    p = root / "zip_member_liar.zip"
    _shrink_declared_size(p, "liar.png", 1024)      # its headers now claim 1 kB

    make("zip_many", "25001 members", [lambda zf: [zf.writestr(f"e/{i}.txt", b"") for i in range(25_001)]])
    make("zip_no_images", "only text files", [lambda zf: zf.writestr("readme.txt", b"hello")])
    make("zip_bad_images", "only broken images", [lambda zf: zf.writestr("a.png", b"not a png"),
                                                  lambda zf: zf.writestr("b.jpg", good[:50])])
    (root / "not_a_zip.zip").write_bytes(b"PK\x03\x04 but then nothing useful" * 10)
    out.append(Case("zip_garbage", "zip", root / "not_a_zip.zip", False, "not a zip"))
    (root / "empty.zip").write_bytes(b"")
    out.append(Case("zip_empty_file", "zip", root / "empty.zip", False, "zero bytes"))
    return out


def _shrink_declared_size(path: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size a member's local and central headers declare (a lying zip)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    name = member.encode()
    # Local header: signature, then uncompressed size at offset 22.
    lh = info.header_offset
    struct.pack_into("<I", data, lh + 22, size)
    # Central directory entry: find by signature + name; uncompressed size at offset 24.
    i = data.find(b"PK\x01\x02")
    while i != -1:
        n = struct.unpack_from("<H", data, i + 28)[0]
        if data[i + 46:i + 46 + n] == name:
            struct.pack_into("<I", data, i + 24, size)
        i = data.find(b"PK\x01\x02", i + 4)
    path.write_bytes(bytes(data))


def onnx_cases(root: Path) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    out = []
    (root / "garbage.onnx").write_bytes(np.random.default_rng(2).bytes(2048))
    out.append(Case("onnx_garbage", "onnx", root / "garbage.onnx", False, "random bytes"))
    (root / "empty.onnx").write_bytes(b"")
    out.append(Case("onnx_empty", "onnx", root / "empty.onnx", False, "zero bytes"))
    (root / "text.onnx").write_bytes(b"hello, I am not a model\n")
    out.append(Case("onnx_text", "onnx", root / "text.onnx", False, "a text file"))
    try:
        import onnx
        from onnx import TensorProto, helper
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(root / "foreign.onnx"))
        out.append(Case("onnx_foreign", "onnx", root / "foreign.onnx", False, "a valid ONNX model not from GAN Studio"))
    except ImportError:
        pass
    return out


def build_corpus(root: Path, tiny_dcgan: Path, tiny_cyclegan: Path, resumable: Path | None = None,
                 bomb_mb: int = 256) -> list[Case]:
    root = Path(root)
    return (image_cases(root / "images") + checkpoint_cases(root / "ckpt", tiny_dcgan, tiny_cyclegan, resumable)
            + zip_cases(root / "zips", bomb_mb) + onnx_cases(root / "onnx"))


def lying_onnx_cases(root: Path, exported_noise_onnx: Path) -> list[Case]:
    """A real exported noise-model file whose GAN Studio metadata lies: no contract, a latent_dim that is text,
    a fraction, absurd, or not what the graph takes."""
    import onnx
    root.mkdir(parents=True, exist_ok=True)
    out = []

    def make(name, why, edit):
        m = onnx.load(str(exported_noise_onnx))
        meta = {p.key: p.value for p in m.metadata_props}
        edit(meta)
        del m.metadata_props[:]
        for k, v in meta.items():
            entry = m.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(m, str(root / f"{name}.onnx"))
        out.append(Case(name, "onnx", root / f"{name}.onnx", False, why))

    def latent(value):
        def edit(meta):
            cfg = json.loads(meta["model_config"])
            cfg["latent_dim"] = value
            meta["model_config"] = json.dumps(cfg)
        return edit
    make("onnx_no_contract", "the contract key is missing", lambda meta: meta.pop("contract"))
    make("onnx_contract_list", "the contract is a list", lambda meta: meta.update(contract="[1, 2]"))
    make("onnx_latent_text", "latent_dim is text", latent("8"))
    make("onnx_latent_fraction", "latent_dim 8.5", latent(8.5))
    make("onnx_latent_huge", "latent_dim 10^9", latent(10**9))
    make("onnx_latent_mismatch", "latent_dim 16 where the graph takes 8", latent(16))
    return out
