"""The text inside an image, read by PP-OCRv4 (Chinese and English in one model) through
``rapidocr-onnxruntime``, whose detection, direction and recognition models ship in its wheel."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Boxes read with less confidence are dropped (the recogniser's own score, 0-1).
MIN_CONFIDENCE = 0.5

_engine: Any = None
_lock = threading.Lock()


@dataclass(frozen=True)
class ReadText:
    """The text read, line by line (top to bottom, left to right), and the mean confidence of
    its boxes (None when nothing was read)."""

    text: str
    confidence: float | None
    boxes: int


def _ocr() -> Any:
    global _engine
    if _engine is None:
        from rapidocr_onnxruntime import RapidOCR

        _engine = RapidOCR()
    return _engine


def _join(left: tuple[float, float, str], right: tuple[float, float, str]) -> str:
    """Two boxes of one line as text. The detector sometimes splits a line into boxes that
    overlap, both reading the characters in the overlap ("staking pool r" + "rewards"): the
    longest end of the left text that starts the right one, no longer than the overlap's
    share of the left box, is read once."""
    (l_start, l_end, l_text), (r_start, _, r_text) = left, right
    overlap = l_end - r_start
    if overlap <= 0 or l_end <= l_start:
        return f"{l_text} {r_text}"
    most = math.ceil(len(l_text) * overlap / (l_end - l_start)) + 1
    for k in range(min(most, len(l_text), len(r_text)), 0, -1):
        if l_text.endswith(r_text[:k]):
            return l_text[:-k].rstrip() + " " + r_text
    return f"{l_text} {r_text}"


def _lines(found: list[tuple[list[list[float]], str, float]]) -> list[str]:
    """Boxes joined into lines: a box whose vertical centre lies within half the height of the
    line's first box joins that line; lines are read left to right."""
    boxes = []
    for corners, text, _ in found:
        ys, xs = [p[1] for p in corners], [p[0] for p in corners]
        boxes.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), max(xs), text))
    boxes.sort()
    lines: list[list[tuple[float, float, str]]] = []
    anchors: list[tuple[float, float]] = []
    for centre, height, start, end, text in boxes:
        if anchors and abs(centre - anchors[-1][0]) <= anchors[-1][1] / 2:
            lines[-1].append((start, end, text))
        else:
            lines.append([(start, end, text)])
            anchors.append((centre, height))
    out = []
    for line in lines:
        line.sort()
        text, reach = line[0][2], line[0]
        for box in line[1:]:
            text = _join((reach[0], reach[1], text), box)
            reach = (reach[0], max(reach[1], box[1]), text)
        out.append(" ".join(text.split()))
    return out


def read_text(image: np.ndarray) -> ReadText:
    """OCR of a BGR image. Thread-safe: calls take turns on one engine (each already uses
    every core)."""
    with _lock:
        found, _ = _ocr()(image)
    kept = [f for f in found or [] if float(f[2]) >= MIN_CONFIDENCE]
    if not kept:
        return ReadText("", None, 0)
    confidence = float(np.mean([float(f[2]) for f in kept]))
    return ReadText("\n".join(_lines(kept)), confidence, len(kept))
