"""Images drawn for the vision tests: known text in the fonts Debian ships (make test
installs them), so what OCR should read is exact."""

from __future__ import annotations

import io
from pathlib import Path

FONTS = Path("/usr/share/fonts/truetype")
LATIN = FONTS / "dejavu" / "DejaVuSans.ttf"
CHINESE = FONTS / "wqy" / "wqy-microhei.ttc"
#: A public-domain photograph (US Navy) that matplotlib ships as sample data.
PORTRAIT = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"


def text_image(lines: list[tuple[str, Path]], size: int = 32, fmt: str = "PNG") -> bytes:
    """A white image with each (text, font) on its own line, in black."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = [ImageFont.truetype(str(font), size) for _, font in lines]
    width = 60 + max(int(f.getlength(text)) for (text, _), f in zip(lines, fonts, strict=True))
    image = Image.new("RGB", (width, 40 + len(lines) * (size + 30)), "white")
    draw = ImageDraw.Draw(image)
    for n, ((text, _), font) in enumerate(zip(lines, fonts, strict=True)):
        draw.text((30, 20 + n * (size + 30)), text, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()
