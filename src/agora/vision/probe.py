"""What an image is (format, size, frames, duration), read with Pillow without trusting the
name or the declared type."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest image decoded: 40 megapixels (a 12-megapixel phone photo is well under); Pillow's
#: own guard warns at 89M and only refuses at twice that.
MAX_PIXELS = 40_000_000

#: MIME type of each format Pillow names.
MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


class UnreadableImage(ValueError):
    """The bytes are not an image this kit reads (or one too large to decode)."""


@dataclass(frozen=True)
class ImageInfo:
    """An image's facts as stored beside its item."""

    mime: str
    width: int
    height: int
    bytes: int
    frames: int
    duration_seconds: float | None  # animations only

    @property
    def kind(self) -> str:
        return "animation" if self.frames > 1 else "image"


def _flatten(image: Image.Image) -> Image.Image:
    """RGB with transparency laid over white, as a page shows it. (Converting straight to
    RGB keeps whatever colour transparent pixels hold, usually black: a transparent icon then
    becomes shapes on black, which NudeNet scored up to 0.76 as exposed buttocks.)"""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def open_image(data: bytes) -> tuple[ImageInfo, np.ndarray]:
    """The image's facts and its first frame as a BGR uint8 array (OpenCV's order, which both
    onnx models read), upright per its EXIF orientation. :class:`UnreadableImage` otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise UnreadableImage(
                    f"the image has {image.width} x {image.height} pixels; at most "
                    f"{MAX_PIXELS:,} are decoded"
                )
            if image.format not in MIME_TYPES:
                raise UnreadableImage(f"{image.format} images are not read (known: "
                                      f"{', '.join(sorted(MIME_TYPES))})")  # fmt: skip
            frames = int(getattr(image, "n_frames", 1))
            duration = None
            if frames > 1:
                total_ms = 0.0
                for index in range(frames):
                    image.seek(index)
                    total_ms += float(image.info.get("duration", 0) or 0)
                image.seek(0)
                duration = total_ms / 1000
            info = ImageInfo(
                MIME_TYPES[image.format], image.width, image.height, len(data), frames, duration
            )
            rgb = _flatten(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            OSError, SyntaxError, EOFError) as exc:  # fmt: skip
        raise UnreadableImage(f"not a readable image: {exc}") from exc
    return info, np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
