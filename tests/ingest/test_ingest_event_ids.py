"""The event ids of a JSON Lines file kept as hashes (agora.ingest.event_ids.CompactEventIds):
the same duplicates found, reported with the same problems in the same order, as the dict of
the normal path finds, whatever the hash; and a few bytes an id."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from agora.ingest import event_ids
from agora.ingest.agora_format import _make_checker, _scan, event_ids_for, scan_agora
from agora.ingest.errors import ProblemCollector
from agora.ingest.event_ids import CompactEventIds, EventIds

#: Hashes that make ids collide: every id one hash, by length, or Python's own.
HASHES = {"one-hash": lambda _: 7, "by-length": len, "python": hash}


def _problems_of_the_normal_path(path: Path, max_kept: int) -> tuple[list[str], int]:
    """The problems ``load_agora``'s reading of ``path`` records (its dict of ids)."""
    problems = ProblemCollector(path, max_kept=max_kept)
    for _ in _scan(path, _make_checker(problems, None, None, None, None), None, ","):
        pass
    return [str(p) for p in problems.problems], problems.total


def _problems_of_the_compact_ids(
    path: Path, max_kept: int, recent: int, settle_every: int = 0
) -> tuple[list[str], int]:
    """The problems :func:`scan_agora` records with hashed ids (``recent`` kept as text),
    settled every ``settle_every`` records besides (as the bulk reader does per batch)."""
    problems = ProblemCollector(path, max_kept=max_kept)
    ids = event_ids_for(path, problems)
    assert isinstance(ids, CompactEventIds)
    ids._recent_max = recent
    for n, _ in enumerate(scan_agora(path, problems, max_future_seconds=None, ids=ids), 1):
        if settle_every and not n % settle_every:
            ids.settle()
    return [str(p) for p in problems.problems], problems.total


def _event(event_id: str | int, **fields: object) -> str:
    return json.dumps(
        {"event_id": event_id, "user_id": "u", "item_id": "p", "type": "view", **fields}
    )


@pytest.mark.parametrize("weak", HASHES.values(), ids=HASHES.keys())
def test_ids_that_share_a_hash_are_no_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weak
) -> None:
    """A file of distinct ids, all of one hash (or a few), read with 3 recent ids: no problem,
    every line read again to tell the ids apart."""
    monkeypatch.setattr(event_ids, "id_hash", weak)
    path = tmp_path / "distinct.jsonl"
    path.write_text("".join(_event(f"e{n}") + "\n" for n in range(300)))
    assert _problems_of_the_compact_ids(path, 1000, recent=3) == ([], 0)


@pytest.mark.parametrize("weak", HASHES.values(), ids=HASHES.keys())
def test_a_repeated_id_is_found_wherever_its_first_line_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weak
) -> None:
    """Repeats of ids whose first line was hashed long before (past many lines, a byte-order
    mark on line 1, CRLF line ends, integer ids), among ids of the same hash, among other
    problems: the normal path's problems, word for word and in its order."""
    monkeypatch.setattr(event_ids, "id_hash", weak)
    lines = ["\ufeff" + _event("first"), _event(7)]
    lines += [_event(f"e{n}") for n in range(200)]
    lines += [
        _event("first"),  # line 203: first used on line 1
        "not json",
        _event("e5", type="upvote"),  # an unknown type and a repeat, through the schema
        _event("7"),  # the integer id 7's text
        _event("e150"),
        _event("e150"),  # a repeat of a repeat: first used on the first line still
        _event("new"),
        _event(" new"),  # not the same id: the schema strips it, then finds it
    ]
    path = tmp_path / "repeats.jsonl"
    path.write_text("".join(line + ("\r\n" if n % 3 else "\n") for n, line in enumerate(lines)))
    expected = _problems_of_the_normal_path(path, 1000)
    assert expected[1] == 9
    assert "duplicate event_id 'first': first used on line 1" in expected[0][0]
    for recent in (1, 2, 50, 1000):
        assert _problems_of_the_compact_ids(path, 1000, recent) == expected
        assert _problems_of_the_compact_ids(path, 1000, recent, settle_every=7) == expected
    assert _problems_of_the_compact_ids(path, 3, recent=4) == _problems_of_the_normal_path(path, 3)


def test_random_files_give_the_normal_paths_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random files of repeated ids, bad lines and other records, weak hashes, few problems
    kept: the same problems and total as the dict of the normal path."""
    rng = random.Random(5)
    path = tmp_path / "random.jsonl"
    for _ in range(60):
        monkeypatch.setattr(event_ids, "id_hash", rng.choice([len, hash, lambda s: hash(s) % 3]))
        top = rng.randint(1, 150)
        lines = []
        for _ in range(rng.randint(1, 300)):
            draw, event_id = rng.random(), f"e{rng.randint(0, top)}"
            if draw < 0.03:
                lines.append('{"kind": "item", "item_id": "p1"}')
            elif draw < 0.05:
                lines.append("{")
            elif draw < 0.1:
                lines.append(_event(event_id, type="upvote"))
            elif draw < 0.12:
                lines.append(_event(event_id, timestamp=1.5))  # through the schema
            else:
                lines.append(_event(event_id))
        path.write_text("".join(line + "\n" for line in lines))
        kept = rng.choice([1, 5, 1000])
        expected = _problems_of_the_normal_path(path, kept)
        recent = rng.choice([1, 4, 64])
        assert _problems_of_the_compact_ids(path, kept, recent, rng.choice([0, 9])) == expected


def test_merged_runs_stay_sorted_and_keep_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sorted runs merged in place, moved in chunks of a few rows, with many equal hashes."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        monkeypatch.setattr(event_ids, "_MERGE_CHUNK", int(rng.integers(1, 50)))
        older = np.sort(rng.integers(-20, 20, int(rng.integers(0, 300))))
        newer = np.sort(rng.integers(-20, 20, int(rng.integers(1, 300))))
        older_lines = rng.integers(0, 10**6, len(older)).astype(np.uint32)
        newer_lines = rng.integers(0, 10**6, len(newer)).astype(np.int64)  # wider: widened
        hashes, lines = event_ids._merged((older.copy(), older_lines), (newer, newer_lines))
        assert (np.diff(hashes) >= 0).all()
        rows = sorted(zip(hashes.tolist(), lines.tolist(), strict=True))
        expected = zip(
            [*older.tolist(), *newer.tolist()],
            [*older_lines.tolist(), *newer_lines.tolist()],
            strict=True,
        )
        assert rows == sorted(expected)


def test_a_problem_found_late_goes_where_its_line_puts_it(tmp_path: Path) -> None:
    problems = ProblemCollector(tmp_path / "f.jsonl", max_kept=3)
    for line in (2, 5, 9):
        problems.add(line, f"p{line}")
    problems.add(12, "p12")  # counted, not kept
    problems.add_earlier(5, "late5", after=1)
    assert [(p.line, p.message) for p in problems.problems] == [(2, "p2"), (5, "p5"), (5, "late5")]
    problems.add_earlier(10, "late10")  # after the last kept: counted only
    problems.add_earlier(1, "late1")
    assert [p.line for p in problems.problems] == [1, 2, 5]
    assert problems.total == 7
    among = ProblemCollector(tmp_path / "f.jsonl")
    for message in ("a", "b", "c"):
        among.add(4, message)
    among.add(6, "d")
    among.add_earlier(4, "after-one", after=1)  # found after one problem of its line
    among.add_earlier(4, "after-nine", after=9)  # no more than its line's problems
    assert [p.message for p in among.problems] == ["a", "after-one", "b", "c", "after-nine", "d"]


def test_hashed_ids_take_a_few_bytes_each(tmp_path: Path) -> None:
    """What a scan of 20,000 events holds at its end, against the dict of the normal path."""
    path = tmp_path / "many.jsonl"
    path.write_text("".join(_event(f"event-{n:08d}") + "\n" for n in range(20_000)))
    held = {}
    for name, ids in (
        ("dict", EventIds()),
        ("compact", CompactEventIds(path, ProblemCollector(path), lambda o: None, recent=1024)),
    ):
        tracemalloc.start()
        for _ in scan_agora(path, ProblemCollector(path), max_future_seconds=None, ids=ids):
            pass
        held[name] = tracemalloc.get_traced_memory()[0] / 20_000
        tracemalloc.stop()
        del ids
    assert held["compact"] < 20 < 100 < held["dict"], held
