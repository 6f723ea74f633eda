"""Agora from Python, in-process: the recommendations, similar items, feeds and event intake the
API serves, on the same store and trained models, without a server.

    from agora.client import Agora

    with Agora(data_dir="agora-data") as agora:   # after `agora import` and `agora train`
        agora.ingest([{"event_id": "e-1", "user_id": "28", "item_id": "735", "type": "like"}])
        for rec in agora.recommend("28", n=5):
            print(rec.item_id, rec.score, rec.title)

Settings are :class:`agora.config.Settings` (``AGORA_*`` variables, overridden by keyword
arguments). Everything is wired by :func:`agora.wiring.wire`, as the API is; the newest trained
models are found on opening and on :meth:`Agora.reload` (after a new ``agora train``). Untrained
models raise :class:`agora.serving.service.ModelUnavailable` naming the command that trains them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic import TypeAdapter

from agora.config import Settings
from agora.db.engine import transaction
from agora.feed import service as feed_service
from agora.ingest import service as ingest_service
from agora.ingest.schemas import EventIn
from agora.serving import service as serving
from agora.wiring import Wiring, wire

_EVENTS = TypeAdapter(list[EventIn])


class Agora:
    """One Agora store and its trained models, used in-process (close it, or use ``with``)."""

    def __init__(self, settings: Settings | None = None, **overrides: Any):
        """``settings`` as given, or read from the environment with ``overrides`` applied
        (e.g. ``data_dir="agora-data"``, ``database_url="postgresql+psycopg://..."``)."""
        self.settings = settings or Settings(**overrides)
        self._wiring: Wiring = wire(self.settings)
        self.reload()

    def reload(self) -> dict[str, str]:
        """Serve the newest trained version of every model; returns name -> version."""
        return self._wiring.models.reload()

    def recommend(
        self, user_id: str, n: int = 10, model: str | None = None, explain: bool = False
    ) -> list[serving.Recommendation]:
        """Top ``n`` items for a user, as ``GET /users/{id}/recommendations`` answers them."""
        with self._wiring.sessions() as session:
            return serving.recommend(
                session,
                self._wiring.models,
                user_id,
                n,
                model or self.settings.default_model,
                self.settings.event_weights,
                explain=explain,
                max_per_thread=self.settings.feed.max_per_thread,
            )

    def similar(
        self, item_id: str, n: int = 10, model: str = "itemknn"
    ) -> list[serving.Recommendation]:
        """Items similar to ``item_id``, as ``GET /items/{id}/similar`` answers them."""
        with self._wiring.sessions() as session:
            return serving.similar_items(session, self._wiring.models, item_id, n, model).items

    def feed(self, user_id: str, n: int = 20, cursor: str | None = None) -> feed_service.FeedPage:
        """A page of the user's organic feed (pass ``page.next_cursor`` for the next one); its
        impressions are stored, as the API's are. Ads are placed by the API only."""
        now = datetime.now(UTC)
        with transaction(self._wiring.sessions) as session:
            page = feed_service.build_feed(
                session,
                self._wiring.models,
                user_id,
                n,
                cursor,
                self.settings.feed,
                self.settings.event_weights,
                now,
                cache=self._wiring.feed_cache,
            )
        self._wiring.impressions.flush()  # no flusher thread runs in-process: write them now
        return page

    def ingest(self, events: Iterable[Mapping[str, Any] | EventIn]) -> ingest_service.WriteSummary:
        """Store behaviour events as ``POST /events`` does: all of them or, when one is invalid,
        none (``pydantic.ValidationError`` or ``agora.ingest.service.Rejected`` naming it)."""
        rows = [e.model_dump() if isinstance(e, EventIn) else dict(e) for e in events]
        valid = _EVENTS.validate_python(rows)
        with transaction(self._wiring.sessions) as session:
            return ingest_service.add_events(
                session, valid, self.settings.event_types, self.settings.max_future_seconds
            )

    def close(self) -> None:
        """Release the database connections."""
        self._wiring.engine.dispose()

    def __enter__(self) -> Agora:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
