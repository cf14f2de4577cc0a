"""Render the Noto Color Emoji font into a folder of 64x64 colour pictures (a public icon set for recipe
searches and the shipped colour model).

    apt-get install fonts-noto-color-emoji      # Debian; the font's images are Apache-2.0, the font OFL-1.1
    python scripts/make_emoji_set.py --out data/emoji64 [--zip data/emoji64.zip]

One picture per single code point in the font (skin-tone and flag sequences are left out), the glyph centred on
white. Development data: the product never reads it at run time.
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"


def code_points(font_path: str) -> list[int]:
    cmap = TTFont(font_path, lazy=True).getBestCmap()
    # Pictographs only: leave out ASCII digits/#/* (keycap bases), regional indicators and modifiers.
    return sorted(cp for cp in cmap if cp > 0x2000 and not 0x1F1E6 <= cp <= 0x1F1FF and not 0x1F3FB <= cp <= 0x1F3FF)


def render(cp: int, font: ImageFont.FreeTypeFont, size: int) -> Image.Image | None:
    canvas = Image.new("RGBA", (160, 160), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((80, 80), chr(cp), font=font, embedded_color=True, anchor="mm")
    box = canvas.getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return square.convert("RGB").resize((size, size), Image.LANCZOS)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/emoji64")
    ap.add_argument("--zip", default="")
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    font = ImageFont.truetype(FONT, 109)          # the font's one bitmap size
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for cp in code_points(FONT):
        im = render(cp, font, args.size)
        if im is None or len(im.resize((8, 8)).getcolors(64) or range(64)) < 3:    # blank or a flat box
            continue
        path = out / f"u{cp:05x}.png"
        im.save(path)
        written.append(path)
    if args.zip:
        with zipfile.ZipFile(args.zip, "w") as zf:
            for p in written:
                zf.write(p, p.name)
    print(f"{len(written)} pictures in {out}" + (f" and {args.zip}" if args.zip else ""))


if __name__ == "__main__":
    main()
