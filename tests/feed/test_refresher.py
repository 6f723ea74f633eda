"""The refresher's records as the online path reads them (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from feed_support import (
    ADMIN,
    ITEMS,
    PREPARED_FEED,
    first_page,
    make_client,
    refresh,
    seed,
    train,
    user_pk,
)
from sqlalchemy import func, select

from agora.config import FeedConfig
from agora.db.tables import Event, User
from agora.feed import refresher as refresher_module
from agora.feed.candidates import EVERYONE, Candidates
from agora.feed.refresher import Refresher, active_users
from agora.feed.store import TableCandidates


def test_a_full_refresh_right_after_training_holds_every_item(
    database_url: str, tmp_path: Path
) -> None:
    """The refresher's catalogue was read before the items were stored and would be kept for
    an hour: any round under the new models reads it afresh (the shared record included), and
    so does a full refresh; the item map is not reused (the catalogue grows in place)."""
    feed = FeedConfig(refresh_in_serve=False)
    with make_client(tmp_path, database_url, feed=feed) as client:
        state = client.app.state
        store = TableCandidates(state.sessions)
        settings = state.settings
        refresher = Refresher(state.sessions, state.models, store, feed, settings.event_weights)
        refresher.cache.catalogue.refresh_seconds = 3600.0
        with state.sessions() as session:
            assert not len(refresher.cache.catalogue.get(session).pks)  # read before the items
        seed(client)
        train(client)
        refresher.refresh_global()  # the models changed since the catalogue was read
        assert len(store.get(EVERYONE).sources["trending"][0]) == len(ITEMS)

        refresher.refresh_all()

        trending = store.get(EVERYONE).sources["trending"][0]
        assert len(trending) == len(ITEMS)  # the trending model ranks every item


def test_a_user_with_a_new_event_is_refreshed_during_a_full_refresh(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full refresh of a large community takes a while: a user who acts meanwhile gets a
    fresh record between its chunks, long before the pass reaches them."""
    monkeypatch.setattr(refresher_module, "CHUNK", 1)
    feed = FeedConfig(refresh_in_serve=False)
    with make_client(tmp_path, database_url, feed=feed) as client:
        state = client.app.state
        seed(client)
        train(client)
        store = TableCandidates(state.sessions)
        refresher = Refresher(
            state.sessions, state.models, store, feed, state.settings.event_weights
        )
        with state.sessions() as session:
            last = active_users(session)[-1]  # the pass's last user
            last_id = session.get(User, last).external_id
        seen: list[tuple[Candidates | None, int]] = []

        def progress(done: int, total: int) -> None:
            if done == 1:
                event = {"event_id": "late", "user_id": last_id, "item_id": "c0", "type": "like"}
                assert client.post("/events", json=event, headers=ADMIN).status_code == 201
            elif done == 2:
                with state.sessions() as session:
                    events = session.scalar(select(func.count()).where(Event.user_id == last))
                seen.append((store.get(last), events))

        refresher.refresh_all(progress)

        (record, events), *_ = seen
        assert record is not None and record.events == events


@pytest.mark.parametrize("days", [0, 10])
def test_full_passes_rank_ahead_only_for_users_active_within_active_user_days(
    database_url: str, tmp_path: Path, days: int
) -> None:
    """As Gorse's ``active_user_ttl``: with ``active_user_days`` a full pass ranks pages ahead
    only for users with an event or a new chosen tie in that many days (``me`` follows u6 now,
    u6 liked b5 two days ago; u0 last liked 26 days ago); 0 keeps every user with any. A user
    left out is still served, ranked as they ask."""
    feed = PREPARED_FEED.model_copy(update={"active_user_days": days})
    with make_client(tmp_path, database_url, feed=feed) as client:
        seed(client)
        train(client)
        store = refresh(client, feed)
        kept = {user for user in ("me", "u6", "u0") if store.get(user_pk(client, user))}
        assert kept == ({"me", "u6"} if days else {"me", "u6", "u0"})
        with client.app.state.sessions() as session:
            assert len(active_users(session)) == 16  # u0-u14 and me: every one with any
        items, ranking = first_page(client, "u0")
        assert items and ranking == ("now" if days else "prepared")
