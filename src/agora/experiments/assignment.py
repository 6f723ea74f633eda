"""Deterministic arm assignment: ``hash(salt, user) -> arm`` by the arms' weights.

The SHA-256 of ``salt \\x1f user_id`` read as a 64-bit fraction in [0, 1) is a uniform draw
that depends on nothing else, so a user keeps their arm across requests, workers and restarts;
a different experiment salt gives an independent draw (experiments do not share their splits).
The draw falls in the arm whose cumulative weight share covers it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def unit_draw(salt: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, user)."""
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(salt: str, user_id: str, arms: Sequence[tuple[str, float]]) -> str:
    """The arm (name) of ``user_id`` among ``arms`` given as (name, weight > 0) in a fixed order."""
    if not arms:
        raise ValueError("an experiment needs at least one arm")
    total = sum(weight for _, weight in arms)
    if total <= 0 or any(weight <= 0 for _, weight in arms):
        raise ValueError("arm weights must be positive")
    point = unit_draw(salt, user_id) * total
    cumulative = 0.0
    for name, weight in arms:
        cumulative += weight
        if point < cumulative:
            return name
    return arms[-1][0]  # rounding at the very top of the range
