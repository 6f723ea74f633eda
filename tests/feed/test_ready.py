"""Ready records as a worker holds them: catalogue positions that stay right (SQLite and
PostgreSQL)."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora.db.tables import User
from agora.feed.cache import Snapshot
from agora.feed.candidates import Candidates
from agora.feed.ready import Ready
from agora.feed.store import TableCandidates


def catalogue(pks: list[int]) -> Snapshot:
    """A catalogue snapshot of these item pks, as one full read makes it."""
    ids = [f"i{pk}" for pk in pks]
    nothing = np.empty(0, np.int64)
    return Snapshot(
        np.array(pks, np.int64), ids, ids, [[] for _ in pks], [None] * len(pks),
        np.zeros(len(pks)), {item: at for at, item in enumerate(ids)}, {}, nothing, [], [],
    )  # fmt: skip


def test_held_positions_follow_a_full_reload_that_moved_items(community: TestClient) -> None:
    """A full catalogue reload (every few minutes) drops deleted items and adds new ones: the
    same number of items, at other positions. A held record must point at its own items in
    the new catalogue, not at whatever now sits where they were."""
    sessions = community.app.state.sessions
    with sessions() as session:
        me = session.scalar(select(User.id).where(User.external_id == "me"))
    store = TableCandidates(sessions)
    listed = np.array([30, 50], np.int64)
    store.put(
        [
            Candidates(
                user_pk=me, stamp="", events=0, computed=0.0, ranking=None, personal=True,
                primary=(listed, np.array([2.0, 1.0], np.float32)), primary_model=None,
                sources={"collaborative": (listed, np.array([1.0, 0.5]))},
            )
        ]
    )  # fmt: skip
    ready = Ready(store)
    before = catalogue([10, 20, 30, 40, 50])
    after = catalogue([10, 30, 40, 50, 60])  # item 20 deleted, item 60 posted

    def held_pks(snapshot: Snapshot) -> tuple[list[int], list[int]]:
        held, status = ready.get(me, 0, "", snapshot, compute=lambda: None)
        assert status == "ready"
        return (
            snapshot.pks[held.placed(snapshot).primary[0]].tolist(),
            snapshot.pks[held.placed(snapshot).sources["collaborative"][0]].tolist(),
        )

    assert held_pks(before) == ([30, 50], [30, 50])
    assert held_pks(after) == ([30, 50], [30, 50])


def test_positions_by_table_and_by_binary_search_agree() -> None:
    """Dense pks are looked up in a table, sparse ones by binary search: the same answers,
    -1 for pks the catalogue does not hold (gaps, beyond either end, negative)."""
    rng = np.random.default_rng(3)
    dense = catalogue(sorted(rng.choice(np.arange(1, 5000), 3000, replace=False).tolist()))
    sparse = catalogue([*dense.pks.tolist(), 10**12])  # too far apart for a table
    asked = np.concatenate([rng.integers(-5, 5200, 4000), [0, 10**12, 10**13]])
    assert dense._position_of is not None and sparse._position_of is None
    by_table, by_search = dense.positions(asked), sparse.positions(asked)
    assert by_table.dtype == np.int64
    held = np.isin(asked, dense.pks)
    assert (by_table[held] == by_search[held]).all() and (by_table[~held] == -1).all()
    assert (dense.pks[by_table[held]] == asked[held]).all()
    assert (by_search[~held & (asked != 10**12)] == -1).all()
