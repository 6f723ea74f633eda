"""The refresher's records as the online path reads them (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from feed_support import ITEMS, make_client, seed, train

from agora.config import FeedConfig
from agora.feed.candidates import EVERYONE
from agora.feed.refresher import Refresher
from agora.feed.store import TableCandidates


def test_a_full_refresh_right_after_training_holds_every_item(
    database_url: str, tmp_path: Path
) -> None:
    """The refresher's catalogue was read before the items were stored and would be kept for
    an hour: a full refresh after training still reads it afresh, and the item map it built on
    the stale catalogue is not reused (the catalogue grows in place)."""
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
        refresher.refresh_global()  # a round on the stale catalogue: nothing of the items
        assert not len(store.get(EVERYONE).sources.get("trending", ((),))[0])

        refresher.refresh_all()

        trending = store.get(EVERYONE).sources["trending"][0]
        assert len(trending) == len(ITEMS)  # the trending model ranks every item
