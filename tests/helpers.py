"""Tiny configs (16 px, few channels) so the contract tests run in seconds."""
from pathlib import Path

from gancore.models.cut import CUTConfig
from gancore.models.cyclegan import CycleGANConfig
from gancore.models.dcgan import DCGANConfig
from gancore.models.mlp import MLPGANConfig

TINY = {
    "mlp": MLPGANConfig(latent_dim=8, g_hidden=(16, 32), d_hidden=(32, 16), image_size=16),
    "dcgan": DCGANConfig(latent_dim=8, base_channels=4, d_base_channels=4, image_size=28),
    "cyclegan": CycleGANConfig(base_channels=4, res_blocks=1, d_base_channels=4, d_layers=2, image_size=32, load_size=36,
                               pool_size=4),
    "cut": CUTConfig(base_channels=4, res_blocks=2, d_base_channels=4, d_layers=2, image_size=32, crop_size=32,
                     load_size=36, nce_layers="0,4,7,10", num_patches=16, mlp_dim=8),
}


def tiny_config(name):
    if name in TINY:
        return TINY[name]
    from gancore import registry
    entry = registry.get(name)
    cfg = entry.config_cls()
    # Models added later: shrink what they let us shrink.
    small = {k: v for k, v in {"base_channels": 4, "d_base_channels": 4}.items() if hasattr(cfg, k)}
    import dataclasses
    return dataclasses.replace(cfg, **small)


def app_error(fn) -> str:
    """The message of the AppError a studio API call raises; it must never carry a traceback."""
    import pytest
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as e:
        fn()
    msg = str(e.value)
    assert "Traceback" not in msg and 'File "' not in msg
    return msg


EMOJI_SHEET = Path(__file__).parent / "data" / "emoji32_sheet.png"


def emoji_pictures(folder, n: int = 320, size: int = 32) -> Path:
    """Real colour pictures for tests: `n` 32-px emoji cut from tests/data/emoji32_sheet.png into `folder`."""
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sheet = Image.open(EMOJI_SHEET).convert("RGB")
    cols = sheet.width // 32
    for i in range(min(n, cols * (sheet.height // 32))):
        x, y = (i % cols) * 32, (i // cols) * 32
        tile = sheet.crop((x, y, x + 32, y + 32))
        (tile if size == 32 else tile.resize((size, size), Image.BICUBIC)).save(folder / f"emoji_{i:03d}.png")
    return folder


def emoji_zip(path, n: int = 320) -> Path:
    """The test emoji as a .zip, as a designer would upload them."""
    import tempfile
    import zipfile
    path = Path(path)
    with tempfile.TemporaryDirectory() as d:
        folder = emoji_pictures(d, n)
        with zipfile.ZipFile(path, "w") as zf:
            for f in sorted(folder.iterdir()):
                zf.write(f, f"icons/{f.name}")
    return path


def photo_zip(path, h2z: Path, split: str, size: int = 64) -> Path:
    """horse2zebra photos of one test folder (testA horses, testB zebras; `h2z` is the dataset's folder) at
    `size` px, zipped as a designer would upload them."""
    import io
    import zipfile

    from PIL import Image
    src = h2z / split
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(src.glob("*.jpg")):
            buf = io.BytesIO()
            Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC).save(buf, "JPEG", quality=90)
            zf.writestr(f"{split}/{f.name}", buf.getvalue())
    return Path(path)
