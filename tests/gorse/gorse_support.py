"""What the Gorse tests share: the keys, the seeded community and the server's handle.

The seeded community has two clusters: users u0-u2 star items i0-i5 (category ``a``), users
u3-u5 star i6-i11 (category ``b``); i5, starred by everybody in its cluster, is hidden, and
``bob`` starred i0 and i1. Keys: ``ADMIN`` (every scope), ``WRITER`` (write), ``READER``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

AGORA = [sys.executable, "-m", "agora.cli.main"]
ADMIN, WRITER, READER = "gorse-admin-key", "gorse-writer-key", "gorse-reader-key"
CLUSTER_A = [f"i{k}" for k in range(6)]
CLUSTER_B = [f"i{k}" for k in range(6, 12)]
HIDDEN = "i5"


@dataclass
class GorseServer:
    """The server's address, the folder it runs in and the database behind it."""

    url: str
    folder: Path
    database: str
    log: Callable[[], str]


def seed(url: str) -> None:
    key = {"X-API-Key": ADMIN}
    items = [
        {
            "ItemId": item,
            "IsHidden": item == HIDDEN,
            "Categories": ["a"] if item in CLUSTER_A else ["b"],
            "Timestamp": f"2024-01-01T{k:02d}:00:00Z",
            "Labels": ["cluster-a" if item in CLUSTER_A else "cluster-b"],
            "Comment": f"item {k}",
        }
        for k, item in enumerate(CLUSTER_A + CLUSTER_B)
    ]
    assert httpx.post(f"{url}/api/items", json=items, headers=key).json() == {"RowAffected": 12}
    feedback = [
        {"FeedbackType": "star", "UserId": user, "ItemId": item, "Timestamp": "2024-02-01"}
        for users, cluster in ((("u0", "u1", "u2"), CLUSTER_A), (("u3", "u4", "u5"), CLUSTER_B))
        for user in users
        for item in cluster
    ]
    feedback += [
        {"FeedbackType": "star", "UserId": "bob", "ItemId": item, "Timestamp": "2024-02-02"}
        for item in ("i0", "i1")
    ]
    answer = httpx.post(f"{url}/api/feedback", json=feedback, headers=key)
    assert answer.json() == {"RowAffected": len(feedback)}, answer.text
