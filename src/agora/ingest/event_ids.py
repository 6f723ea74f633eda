"""The event ids a file used so far, and the line each was first used on: a file that uses an
``event_id`` twice is refused, the problem naming that line (``duplicate event_id 'e7': first
used on line 3``).

:class:`EventIds` keeps them in a dict: about 150 bytes an id (the text, the line number and
the dict's entry), 3.3 GB of a 20M-event import's 3.5. :class:`CompactEventIds`, for JSON Lines
files (the bulk import's), keeps only the latest :data:`RECENT_IDS` ids as text; older ones are
kept as a 64-bit hash and a line number in sorted numpy arrays, 12 bytes an id. A hash found
again is never taken for a duplicate as such: the id of the line it came from is read again
from the file (the byte offset of every :data:`OFFSET_EVERY`-th line is kept) and compared, so
a hash collision of two ids costs one read and changes nothing.

A line's id is checked against the recent ids as the line is read, against the hashed ids
once the recent ones are settled (:meth:`CompactEventIds.settle`: every :data:`RECENT_IDS` ids,
at the end of the file, and before the bulk import hands a batch of events over to be
written), all of them at once. A duplicate found then is recorded with
:meth:`ProblemCollector.add_earlier <agora.ingest.errors.ProblemCollector.add_earlier>` where
it would have been recorded as its line was read (after the problems found on that line before
its id's check): the problems are the same, in the same order, as with the dict. Only, the
line's record may have been handed on before (the file is refused all the same).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from agora.ingest.errors import ProblemCollector

#: Ids kept as text (the latest ones) before they are hashed into the sorted arrays.
RECENT_IDS = 1 << 17
#: The byte offset of every this many lines is kept, to read a line again (8 bytes each).
OFFSET_EVERY = 64
#: Rows of a sorted array moved at once when two are merged (the merge's extra memory).
_MERGE_CHUNK = 1 << 16
#: A line number stored in 4 bytes (a file of more lines stores 8).
_LINE_MAX_U32 = 2**32 - 1

#: The hash of an id (tests put a weak one in to make collisions).
id_hash: Callable[[str], int] = hash


def duplicate_message(event_id: str, first: int) -> str:
    """The problem of a line that uses ``event_id`` again."""
    return f"duplicate event_id {event_id!r}: first used on line {first}"


class EventIds:
    """The event ids used so far and the line each was first used on, in a dict."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def check(self, event_id: str, line: int, after: int = 0) -> int | None:
        """The line ``event_id`` was first used on if it is known to have been used before
        (the caller reports the duplicate), else None, ``event_id`` recorded as used first on
        ``line``. ``after``: how many problems of ``line`` were recorded before this check
        (where a duplicate :meth:`settle` finds goes among them)."""
        first = self._first.get(event_id)
        if first is None:
            self._first[event_id] = line
        return first

    def add_new(self, event_id: str, line: int) -> bool:
        """Record ``event_id`` as used first on ``line`` (a line with no other problem) and
        answer True, or answer False (nothing recorded) if it is known to have been used
        before: the caller then checks the line the long way, :meth:`check` among it."""
        if event_id in self._first:
            return False
        self._first[event_id] = line
        return True

    def settle(self) -> None:
        """Report every duplicate among the ids recorded so far (nothing to do here)."""

    def note_offset(self, offset: int) -> None:
        """The byte offset where the next :data:`OFFSET_EVERY` lines begin (unused here)."""

    @property
    def wants_offsets(self) -> bool:
        return False


class CompactEventIds(EventIds):
    """:class:`EventIds` for a JSON Lines file in about 12 bytes an id (see the module's text).

    ``id_of`` reads the id a line's JSON object was recorded under (None for none); line
    numbers count from 1, as ``path``'s lines are counted, a UTF-8 byte-order mark at its start
    left out. Duplicates found by :meth:`settle` go to ``problems``.
    """

    def __init__(
        self,
        path: str | Path,
        problems: ProblemCollector,
        id_of: Callable[[dict[str, Any]], str | None],
        recent: int | None = None,
    ) -> None:
        super().__init__()
        self._path = Path(path)
        self._problems = problems
        self._id_of = id_of
        self._recent_max = RECENT_IDS if recent is None else recent
        #: lines of the recent ids that had problems before their id's check: how many
        self._after: dict[int, int] = {}
        #: recent ids used again: their first line among the hashed ids (0: none)
        self._hashed_first: dict[str, int] = {}
        #: sorted runs: hashes (int64, ascending) and the line of each (uint32 or int64)
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._offsets = array("q", [0])  # where lines 1, 1 + OFFSET_EVERY, ... begin

    @property
    def wants_offsets(self) -> bool:
        return True

    def note_offset(self, offset: int) -> None:
        self._offsets.append(offset)

    def check(self, event_id: str, line: int, after: int = 0) -> int | None:
        recent = self._first
        first = recent.get(event_id)
        if first is not None:  # a duplicate: of a hashed id's line, if any (they are older)
            hashed = self._hashed_first.get(event_id)
            if hashed is None:
                hashed = self._hashed_first[event_id] = self._first_hashed(event_id) or 0
            return hashed or first
        recent[event_id] = line  # checked against the hashed ids by settle()
        if after:
            self._after[line] = after
        if len(recent) >= self._recent_max:
            self.settle()
        return None

    def _first_hashed(self, event_id: str) -> int | None:
        """The first line of ``event_id`` among the hashed ids, or None."""
        if not self._runs:
            return None
        h = id_hash(event_id)
        lines = [line for run in self._runs for line in _lines_of(run, h)]
        if not lines:
            return None
        texts = self._ids_on_lines(lines)
        return min((line for line in lines if texts.get(line) == event_id), default=None)

    def add_new(self, event_id: str, line: int) -> bool:
        recent = self._first
        if event_id in recent:
            return False
        recent[event_id] = line
        if len(recent) >= self._recent_max:
            self.settle()
        return True

    def settle(self) -> None:
        """Hash the recent ids into a sorted run; each one the older runs hold already (read
        again from its line to be sure) is reported as a duplicate and left out."""
        if not self._first:
            return
        recent, self._first = self._first, {}
        after, self._after = self._after, {}
        self._hashed_first = {}
        ids = list(recent)
        count = len(ids)
        hashes = np.fromiter(map(id_hash, ids), np.int64, count)
        lines = np.fromiter(recent.values(), np.int64, count)
        del recent
        order = np.argsort(hashes)  # ids of the same hash: in any order
        hashes, lines = hashes[order], lines[order]
        if self._runs:
            repeated = self._repeated(ids, order, hashes, lines, after)
            if repeated is not None:
                hashes, lines = hashes[~repeated], lines[~repeated]
        if not len(lines):
            return
        if lines.max() <= _LINE_MAX_U32:
            lines = lines.astype(np.uint32)
        self._runs.append((hashes, lines))
        # merged while the run before is no longer: runs of sizes that about halve (a binary
        # counter), so each id is moved about log2(ids / RECENT_IDS) times in all
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= len(self._runs[-1][0]):
            newer = self._runs.pop()
            self._runs.append(_merged(self._runs.pop(), newer))

    def _repeated(
        self,
        ids: list[str],
        order: np.ndarray,
        hashes: np.ndarray,
        lines: np.ndarray,
        after: dict[int, int],
    ) -> np.ndarray | None:
        """Which of the sorted ``hashes`` (of ``ids[order]``, first used on ``lines``, after
        ``after[line]`` problems of theirs) the runs held before: True where the id is truly a
        duplicate, its problem recorded (None: none is)."""
        earlier: dict[int, list[int]] = {}  # position in hashes -> lines of the same hash
        for run in self._runs:
            run_hashes = run[0]
            at = run_hashes.searchsorted(hashes)
            found = np.flatnonzero(run_hashes[np.minimum(at, len(run_hashes) - 1)] == hashes)
            for position in found.tolist():
                earlier.setdefault(position, []).extend(_lines_of(run, int(hashes[position])))
        if not earlier:
            return None
        texts = self._ids_on_lines(line for found in earlier.values() for line in found)
        repeated = np.zeros(len(hashes), bool)
        for position in sorted(earlier, key=lambda p: int(lines[p])):
            event_id = ids[order[position]]
            same = [line for line in earlier[position] if texts.get(line) == event_id]
            if same:
                repeated[position] = True
                line = int(lines[position])
                message = duplicate_message(event_id, min(same))
                self._problems.add_earlier(line, message, "event_id", after=after.get(line, 0))
        return repeated if repeated.any() else None

    def _ids_on_lines(self, wanted: Iterable[int]) -> dict[int, str | None]:
        """The id each of the ``wanted`` lines was recorded under, read again from the file."""
        texts: dict[int, str | None] = {}
        at = None  # the number of the line fh reads next
        with self._path.open("rb") as fh:
            for line in sorted(set(wanted)):
                block = (line - 1) // OFFSET_EVERY
                start = block * OFFSET_EVERY + 1
                if at is None or not start <= at <= line:
                    fh.seek(self._offsets[block])
                    at = start
                while at < line:
                    fh.readline()
                    at += 1
                raw = fh.readline()
                at += 1
                if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    obj = json.loads(raw.rstrip(b"\r\n").decode("utf-8"))
                except ValueError:  # not the line it was (the file changed): no duplicate
                    obj = None
                texts[line] = self._id_of(obj) if isinstance(obj, dict) else None
        return texts


def _lines_of(run: tuple[np.ndarray, np.ndarray], h: int) -> list[int]:
    """The lines of the ids of hash ``h`` in a sorted run."""
    hashes, lines = run
    start = int(hashes.searchsorted(h))
    stop = int(hashes.searchsorted(h, side="right"))
    return [int(line) for line in lines[start:stop]]


def _merged(
    older: tuple[np.ndarray, np.ndarray], newer: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs as one, made in the older's arrays, grown in place: besides them, the
    merge takes memory for :data:`_MERGE_CHUNK` rows at a time, never a copy of a run. Rows of
    one hash may come in any order."""
    hashes, lines = older
    new_hashes, new_lines = newer
    n, m = len(hashes), len(new_hashes)
    if lines.dtype != new_lines.dtype:
        lines = lines.astype(np.int64)
        new_lines = new_lines.astype(np.int64)
    hashes.resize(n + m, refcheck=False)
    lines.resize(n + m, refcheck=False)
    # a newer row j goes to into[j] + j, into[j] being the number of older rows of lower
    # hashes; the older row i moves right by the number of newer rows with into[j] <= i.
    # Done chunk by chunk of older rows from the end: no row is overwritten before it moved
    placed = int(new_hashes.searchsorted(hashes[n - 1], side="right")) if n else 0
    to = np.arange(placed, m) + n  # after every older row
    hashes[to], lines[to] = new_hashes[placed:], new_lines[placed:]
    for stop in range(n, 0, -_MERGE_CHUNK):
        if not placed:
            break  # every newer row is in place: the older rows left stay where they are
        start = max(0, stop - _MERGE_CHUNK)
        first = int(new_hashes.searchsorted(hashes[start - 1], side="right")) if start else 0
        into = hashes[start:stop].searchsorted(new_hashes[first:placed])  # + start
        shift = np.cumsum(np.bincount(into, minlength=stop - start)) + first
        to = np.arange(start, stop) + shift
        hashes[to], lines[to] = hashes[start:stop], lines[start:stop]
        to = into + np.arange(start + first, start + placed)
        hashes[to], lines[to] = new_hashes[first:placed], new_lines[first:placed]
        placed = first
    return hashes, lines
