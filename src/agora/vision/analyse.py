"""One image's bytes in, everything Agora reads from it out."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from agora.vision.explicit import ExplicitScore, explicit_score
from agora.vision.ocr import ReadText, read_text
from agora.vision.probe import ImageInfo, open_image


@dataclass(frozen=True)
class ImageAnalysis:
    """An image's facts, its text and its explicit score; ``sha256`` names the bytes (they are
    not kept)."""

    sha256: str
    info: ImageInfo
    text: ReadText
    explicit: ExplicitScore
    seconds: float


def analyse_image(data: bytes) -> ImageAnalysis:
    """Probe, OCR and explicit score of one image (``UnreadableImage`` when it is none)."""
    started = time.perf_counter()
    info, pixels = open_image(data)
    return ImageAnalysis(
        hashlib.sha256(data).hexdigest(),
        info,
        read_text(pixels),
        explicit_score(pixels),
        time.perf_counter() - started,
    )
