"""Refreshers that split the users by user pk (``refresher_shards``, ``agora worker --shard``):
each keeps its own users, marks and wanted users, and together they keep everybody."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from feed_support import ADMIN, make_client, seed, train
from sqlalchemy import select

from agora.config import FeedConfig
from agora.db.tables import User
from agora.feed.candidates import EVERYONE
from agora.feed.refresher import EVENTS_MARK, FULL_MARK, Refresher, active_users
from agora.feed.store import RedisCandidates, Shard, TableCandidates

SHARDED = FeedConfig(refresh_in_serve=False, refresher_shards=2)


def _stored(store: TableCandidates, pks: list[int]) -> set[int]:
    return set(store.get_many(pks))


def test_two_shards_keep_their_own_users_marks_and_wanted_users(
    seeded: Callable[[], str], tmp_path: Path
) -> None:
    with make_client(tmp_path, seeded(), feed=SHARDED) as client:
        state = client.app.state
        train(client)
        store = TableCandidates(state.sessions)
        even, odd = (
            Refresher(
                state.sessions, state.models, store, SHARDED, state.settings.event_weights,
                shard=Shard(i, 2),
            )
            for i in (0, 1)
        )  # fmt: skip
        with state.sessions() as session:
            users = active_users(session)
            pk_of = dict(session.execute(select(User.external_id, User.id)).all())
        evens = {pk for pk in users if pk % 2 == 0}
        assert evens and evens != set(users)

        assert even.refresh_all() == len(evens)
        assert _stored(store, users) == evens  # the other half is not this shard's
        assert store.get(EVERYONE) is not None  # each shard stores the shared record
        assert store.mark(f"{FULL_MARK}@0/2") is not None
        assert store.mark(f"{FULL_MARK}@1/2") is None and store.mark(FULL_MARK) is None

        shared_at = dict(store.stored_since(0.0))[EVERYONE]
        odd.refresh_all()
        assert _stored(store, users) == set(users)  # together: everybody
        assert dict(store.stored_since(0.0))[EVERYONE] == shared_at  # shard 0's, not redone

        # an event dirties its user in that user's shard only
        me = pk_of["me"]
        mine, other = (odd, even) if me % 2 else (even, odd)
        before = store.get(me).events
        event = {"event_id": "me-b1", "user_id": "me", "item_id": "b1", "type": "like"}
        assert client.post("/events", json=event, headers=ADMIN).status_code == 201
        assert other.refresh_dirty() == 0
        assert store.get(me).events == before
        assert mine.refresh_dirty() == 1
        assert store.get(me).events == before + 1
        assert store.mark(mine.shard.mark(EVENTS_MARK)) == store.mark(other.shard.mark(EVENTS_MARK))

        # a wanted user waits for their own shard
        store.want(me)
        assert store.take_wanted(10, other.shard) == []
        assert store.take_wanted(10, mine.shard) == [me]
        assert store.take_wanted(10, mine.shard) == []


def test_redis_keeps_wanted_users_apart_per_shard(redis_url: str) -> None:
    store = RedisCandidates(redis_url, namespace=f"shards-{os.getpid()}", shards=3)
    for pk in (3, 4, 5, 7):
        store.want(pk)
    assert sorted(store.take_wanted(10, Shard(1, 3))) == [4, 7]
    assert store.take_wanted(10, Shard(0, 3)) == [3]
    assert store.take_wanted(10, Shard(2, 3)) == [5]
    assert store.take_wanted(10, Shard(1, 3)) == []


def test_a_shard_outside_the_configured_count_is_refused() -> None:
    with pytest.raises(ValueError, match="shards are 0 to 1"):
        Shard(2, 2)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agora.cli.main", *args],
        env={k: v for k, v in os.environ.items() if not k.startswith("AGORA_")} | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_agora_worker_once_refreshes_every_shard_in_a_process_of_its_own(
    tmp_path: Path,
) -> None:
    """The command a platform runs after training: one process per shard, everybody ready."""
    sqlite = f"sqlite:///{tmp_path / 'data' / 'agora.db'}"
    with make_client(tmp_path, sqlite, feed=SHARDED) as client:
        seed(client)
        train(client)
        with client.app.state.sessions() as session:
            users = active_users(session)
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_DATABASE_URL": sqlite,
        "AGORA_FEED": '{"refresher_shards": 2}',
    }

    done = _cli(["worker", "--once"], env, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "feed refresher: 2 shards, one process each" in done.stdout
    refreshed = re.findall(
        r"([\d,]+) users' candidates refreshed in [\d.]+ s \(shard (\d)/2\)", done.stdout
    )
    assert sorted(shard for _, shard in refreshed) == ["0", "1"]
    assert sum(int(count.replace(",", "")) for count, _ in refreshed) == len(users)
    assert "every shard refreshed in" in done.stdout
    with make_client(tmp_path, sqlite, feed=SHARDED) as client:
        store = TableCandidates(client.app.state.sessions)
        assert _stored(store, users) == set(users)

    refused = _cli(["worker", "--once", "--shard", "2"], env, tmp_path)
    assert refused.returncode == 2
    assert "--shard 2: shard 2 of 2: shards are 0 to 1" in refused.stderr
