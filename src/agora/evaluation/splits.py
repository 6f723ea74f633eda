"""Read a benchmark split folder (train.tsv, valid.tsv, test.tsv, optional social.tsv).

All three files share one index: every user and item that appears in any of them, in order of
first appearance (train, then valid, then test), so ranking is over the full catalogue,
including items only seen in valid/test (cold items). Ids stay strings exactly as written.
Each row is one positive interaction (weight 1 by default, or the rating column).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions

HEADER = ["user_id", "item_id", "rating", "timestamp"]


@dataclass
class Rows:
    """Parallel columns of one split file."""

    users: list[str]
    items: list[str]
    ratings: np.ndarray
    timestamps: np.ndarray


@dataclass
class Split:
    """A split over one user/item index; ``valid``/``test`` are csr aligned with ``train``."""

    name: str
    path: Path
    train: Interactions
    valid: sp.csr_matrix
    test: sp.csr_matrix
    social: np.ndarray | None = None  # (n, 2) str pairs (user_id, friend_id), or None
    valid_times: sp.csr_matrix | None = None  # epoch seconds aligned with valid, if known
    test_times: sp.csr_matrix | None = None

    @property
    def user_ids(self) -> np.ndarray:
        return self.train.user_ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.train.item_ids

    def users_with(self, matrix: sp.csr_matrix) -> np.ndarray:
        """Row indices of users that have at least one entry in ``matrix``."""
        return np.flatnonzero(np.diff(matrix.indptr) > 0)

    def is_chronological(self) -> bool:
        """True when every user's valid events come no earlier than their train events (a
        leave-last-out split by time, where order is what there is to learn); False for random
        splits and when timestamps are unknown."""
        times, valid = self.train.last_seen, self.valid_times
        if times is None or valid is None or valid.nnz == 0:
            return False
        users = self.users_with(valid)
        latest_train = times.max(axis=1).toarray().ravel()[users]
        valid = sp.csr_matrix(valid)
        earliest_valid = np.minimum.reduceat(valid.data, valid.indptr[users])
        return bool(np.all(earliest_valid >= latest_train))


class SplitFormatError(ValueError):
    """A malformed row or header in a split file (message names file and line)."""


def read_rows(path: str | Path) -> Rows:
    """Parse ``user_id<TAB>item_id<TAB>rating<TAB>timestamp`` with its header line."""
    path = Path(path)
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    stamps: list[float] = []
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        if header != HEADER:
            raise SplitFormatError(f"{path}:1: expected header {'<TAB>'.join(HEADER)}")
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 4 or not parts[0] or not parts[1]:
                raise SplitFormatError(
                    f"{path}:{lineno}: expected 4 tab-separated fields "
                    f"(user_id, item_id, rating, timestamp), got {line!r}"
                )
            try:
                r = float(parts[2]) if parts[2] else 1.0
                t = float(parts[3]) if parts[3] else 0.0
            except ValueError:
                raise SplitFormatError(
                    f"{path}:{lineno}: rating and timestamp must be numbers, got {line!r}"
                ) from None
            users.append(parts[0])
            items.append(parts[1])
            ratings.append(r)
            stamps.append(t)
    return Rows(users, items, np.asarray(ratings), np.asarray(stamps, dtype=np.float64))


def _read_social(path: Path) -> np.ndarray:
    pairs = []
    with path.open(encoding="utf-8") as fh:
        fh.readline()
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise SplitFormatError(f"{path}:{lineno}: expected user_id<TAB>friend_id")
            pairs.append(parts)
    return np.asarray(pairs, dtype=str).reshape(-1, 2)


def _index(*columns: list[str]) -> np.ndarray:
    seen: dict[str, None] = {}
    for col in columns:
        seen.update(dict.fromkeys(col))
    return np.asarray(list(seen), dtype=object)


def load_split(split_dir: str | Path, weights: str = "binary") -> Split:
    """Load a split folder; ``weights`` is ``"binary"`` (every row counts 1) or ``"rating"``.

    Timestamps are kept (``train.last_seen``, ``valid_times``, ``test_times``) only when some
    are non-zero (0 = unknown).
    """
    split_dir = Path(split_dir)
    if weights not in ("binary", "rating"):
        raise ValueError(f"weights must be 'binary' or 'rating', got {weights!r}")
    files = {}
    for part in ("train", "valid", "test"):
        f = split_dir / f"{part}.tsv"
        if not f.is_file():
            raise FileNotFoundError(f"missing split file {f}")
        files[part] = read_rows(f)
    user_ids = _index(*(files[p].users for p in ("train", "valid", "test")))
    item_ids = _index(*(files[p].items for p in ("train", "valid", "test")))
    built = {}
    for part, rows in files.items():
        w = None if weights == "binary" else rows.ratings
        ts = rows.timestamps if np.any(rows.timestamps > 0) else None
        built[part] = Interactions.from_triples(
            rows.users, rows.items, w, ts, user_ids=user_ids, item_ids=item_ids
        )
    social_file = split_dir / "social.tsv"
    social = _read_social(social_file) if social_file.is_file() else None
    return Split(
        name=split_dir.name,
        path=split_dir,
        train=built["train"],
        valid=built["valid"].matrix,
        test=built["test"].matrix,
        social=social,
        valid_times=built["valid"].last_seen,
        test_times=built["test"].last_seen,
    )
