"""How likely an image shows explicit nudity, from NudeNet's detector (``320n.onnx``, inside
the ``nudenet`` wheel): the highest confidence among the exposed-body-part classes found."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: NudeNet classes that make an image explicit. Exposed feet, belly, armpits or a male chest
#: and the covered classes do not: a beach photo is not a moderation case.
EXPLICIT_PARTS = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)

_detector: Any = None
_lock = threading.Lock()


@dataclass(frozen=True)
class ExplicitScore:
    """``score``: the highest confidence of an explicit part (0 when none); ``parts``: every
    class found with its best confidence, explicit or not, for the moderator to see."""

    score: float
    parts: dict[str, float] = field(default_factory=dict)


def _nudenet() -> Any:
    global _detector
    if _detector is None:
        from nudenet import NudeDetector

        _detector = NudeDetector()
    return _detector


def explicit_score(image: np.ndarray) -> ExplicitScore:
    """NudeNet on a BGR image; thread-safe (calls take turns on one session)."""
    with _lock:
        found = _nudenet().detect(image)
    parts: dict[str, float] = {}
    for detection in found:
        label, score = str(detection["class"]), round(float(detection["score"]), 4)
        parts[label] = max(parts.get(label, 0.0), score)
    score = max((s for label, s in parts.items() if label in EXPLICIT_PARTS), default=0.0)
    return ExplicitScore(score, dict(sorted(parts.items(), key=lambda p: -p[1])))
