"""Table definitions: users, items (content), events, feed impressions, social edges, groups and
memberships.

Rows are keyed by an internal integer id; the platform's own ids live in ``external_id`` columns.
Child rows reference their parents with ON DELETE CASCADE, so deleting a user or an item removes
its events and edges in the same transaction (an author's items stay, with the author cleared).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement

from agora.db.pseudonyms import SealedUserId

log = logging.getLogger(__name__)

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: BIGINT on PostgreSQL, INTEGER (the rowid alias, so autoincrement works) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


#: The span of times the engine computes with. Ingestion accepts nothing outside it (see
#: ``agora.ingest.schemas.Timestamp``); a stored time outside it (old data, another writer) is
#: read as the nearest end, so date arithmetic on it (streaks, windows, buckets) cannot overflow.
TIME_FLOOR = datetime(1970, 1, 1, tzinfo=UTC)
TIME_CEILING = datetime(2100, 1, 1, tzinfo=UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A timezone-aware UTC datetime; naive datetimes are taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 lies before year 1 in UTC
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from exc


#: Out-of-range values already logged by this process (bounded: one line per value, not per read).
_LOGGED_ODD_TIMES: set[datetime] = set()


class StoredTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp column whose reads are clamped to [TIME_FLOOR, TIME_CEILING]."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        floor, ceiling = TIME_FLOOR, TIME_CEILING
        if value.tzinfo is None:  # SQLite gives naive UTC values back
            floor, ceiling = floor.replace(tzinfo=None), ceiling.replace(tzinfo=None)
        if floor <= value <= ceiling:
            return value
        clamped = floor if value < floor else ceiling
        if value not in _LOGGED_ODD_TIMES and len(_LOGGED_ODD_TIMES) < 1000:
            _LOGGED_ODD_TIMES.add(value)
            log.warning(
                "a stored time (%s) is out of range; read as %s", value.isoformat(), clamped
            )
        return clamped


class epoch_seconds(FunctionElement[float]):  # noqa: N801 - an SQL function, named as one
    """A timestamp column as epoch seconds (a float), computed by the database and clamped to
    [TIME_FLOOR, TIME_CEILING] as :class:`StoredTime` reads are: bulk reads that only do
    arithmetic on times skip building a datetime per row."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # stored as naive UTC text; julianday gives them to about a millisecond
    column = compiler.process(element.clauses, **kw)
    return (
        f"MIN(MAX((julianday({column}) - 2440587.5) * 86400.0, {TIME_FLOOR.timestamp()}), "
        f"{TIME_CEILING.timestamp()})"
    )


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return (
        f"LEAST(GREATEST(CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION), "
        f"{TIME_FLOOR.timestamp()}), {TIME_CEILING.timestamp()})"
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class StoreMeta(Base):
    """Facts about the store itself: how its user ids are kept (:mod:`agora.db.pseudonyms`)."""

    __tablename__ = "store_meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(SealedUserId(), unique=True)  # db/pseudonyms.py
    created: Mapped[datetime] = mapped_column(StoredTime())
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(default=list)
    language: Mapped[str | None] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(StoredTime(), index=True)
    media: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ItemMedia(Base):
    """One image of an item as Agora read it (``agora.media``): its facts, the text inside it
    and its explicit score; the image itself is not kept. ``source`` is the URL or path the
    item's ``media`` names, or ``upload:<sha256>`` for bytes sent to the API. A source that
    could not be fetched or read keeps a row with ``error`` (so it is not tried every turn)."""

    __tablename__ = "item_media"
    __table_args__ = (UniqueConstraint("item_id", "source", name="uq_item_media_item_source"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(16))
    mime: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    bytes: Mapped[int | None] = mapped_column(Integer)
    frames: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text, default="")
    text_confidence: Mapped[float | None] = mapped_column(Float)
    explicit_score: Mapped[float | None] = mapped_column(Float)
    explicit_parts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    analysed: Mapped[datetime] = mapped_column(StoredTime())
    error: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_time", "user_id", "timestamp"),
        Index("ix_events_item", "item_id"),
        Index("ix_events_timestamp", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(StoredTime())
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)


#: PostgreSQL only (migration 0018, see :mod:`agora.db.partitions`): each stored ``event_id``
#: and its row's id, kept by triggers, as the monthly partitions of ``events`` cannot hold a
#: unique ``event_id`` themselves. Not in the shared metadata: SQLite has no such table.
EVENT_KEYS = Table(
    "event_ids",
    MetaData(),
    Column("event_id", String(255), primary_key=True),
    Column("id", BigInteger, nullable=False),
)


def event_key_table(dialect_name: str) -> Table:
    """The table to find events by ``event_id`` in: the key table on PostgreSQL, ``events``
    itself (unique there) on SQLite. Both have ``event_id`` and ``id`` columns."""
    return EVENT_KEYS if dialect_name == "postgresql" else Event.__table__


class FeedImpression(Base):
    """Every item a feed page showed, with its browsing session, position and candidate source.
    The feed writes them (a session's pages never repeat an item; new items' exposure feeds its
    exploration bandit) and experiments measure their arms on them: like events, a fact that
    several domains read."""

    __tablename__ = "feed_impressions"
    __table_args__ = (
        Index("ix_feed_impressions_user_session", "user_id", "session"),
        Index("ix_feed_impressions_item", "item_id"),
        # the home page and /feed/sources count the impressions of the last hours
        Index("ix_feed_impressions_served", "served"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    session: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    served: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SocialEdge(Base):
    __tablename__ = "social_edges"
    __table_args__ = (
        UniqueConstraint("source_id", "target_id", "type", name="uq_social_edges_pair_type"),
        Index("ix_social_edges_target", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    created: Mapped[datetime] = mapped_column(StoredTime())


class SocialEdgeRemoval(Base):
    """A log of removed social edges (unfollow, unblock): the feed's serving processes tail it
    to drop what they hold of the edge's source, as they tail new edges by id. Rows older than
    a day are pruned when edges are removed."""

    __tablename__ = "social_edge_removals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    removed: Mapped[datetime] = mapped_column(StoredTime())


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(StoredTime())
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("group_id", "user_id", name="uq_memberships_group_user"),
        Index("ix_memberships_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32), default="member")
    created: Mapped[datetime] = mapped_column(StoredTime())


class UserErasure(Base):
    """The audit trail of erasures (``DELETE /users/{id}``, ``agora users erase``): who asked,
    when, and how many rows and model artefacts were removed or scrubbed, never what they held.

    The erased person's external id is not kept (it would be their data); ``user_pk`` is the
    internal row number the store had given them, which no other row refers to any more, so
    serving processes can drop what they hold in memory for that row."""

    __tablename__ = "user_erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_pk: Mapped[int] = mapped_column(BigInteger)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested: Mapped[datetime] = mapped_column(StoredTime())
    content: Mapped[str] = mapped_column(String(16))
    removed: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    retrain: Mapped[str] = mapped_column(String(16))
    retrained: Mapped[datetime | None] = mapped_column(StoredTime())
    retrained_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
