"""Reading from the store: records by external id, counts, histories."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session, aliased

from agora.db.tables import (
    Event,
    Group,
    Item,
    ItemMedia,
    Membership,
    SocialEdge,
    User,
    as_utc,
)


def image_texts(
    session: Session, item_ids: Sequence[int] | None = None, where: Sequence[Any] = ()
) -> dict[int, str]:
    """The text read in each item's images (``agora.media``), one image per line; of the items
    ``item_ids``, or of every item matching the ``where`` conditions on ``Item`` (all items
    when neither is given)."""
    out: dict[int, list[str]] = defaultdict(list)
    parts = (
        [None]
        if item_ids is None
        else [item_ids[i : i + 900] for i in range(0, len(item_ids), 900)]
    )
    for part in parts:
        query = select(ItemMedia.item_id, ItemMedia.text).where(ItemMedia.text != "")
        if where:
            query = query.join(Item, Item.id == ItemMedia.item_id).where(*where)
        if part is not None:
            query = query.where(ItemMedia.item_id.in_(part))
        for item_id, text in session.execute(query.order_by(ItemMedia.item_id, ItemMedia.id)):
            out[item_id].append(text)
    return {item_id: "\n".join(texts) for item_id, texts in out.items()}


def user_pk(session: Session, external_id: str) -> int | None:
    """The row number of the user with this platform id (None: not stored)."""
    return session.scalar(select(User.id).where(User.external_id == external_id))


def user_record(session: Session, external_id: str) -> dict[str, Any] | None:
    """A user as the API shows it, or None."""
    user = session.scalar(select(User).where(User.external_id == external_id))
    if user is None:
        return None
    n_events = session.scalar(select(func.count()).where(Event.user_id == user.id))
    return {
        "user_id": user.external_id,
        "created": as_utc(user.created),
        "attributes": user.attributes,
        "n_events": n_events,
    }


def item_record(session: Session, external_id: str) -> dict[str, Any] | None:
    """An item as the API shows it, or None."""
    row = session.execute(
        select(Item, User.external_id)
        .outerjoin(User, Item.author_id == User.id)
        .where(Item.external_id == external_id)
    ).first()
    if row is None:
        return None
    item, author = row
    return _item_dict(item, author)


def _item_dict(item: Item, author: str | None) -> dict[str, Any]:
    return {
        "item_id": item.external_id,
        "author_id": author,
        "title": item.title,
        "body": item.body,
        "tags": item.tags,
        "language": item.language,
        "created": as_utc(item.created),
        "media": item.media,
        "attributes": item.attributes,
    }


#: The item attributes that say which thread (conversation) an item belongs to, read in SQL:
#: an explicit ``thread_id``, else ``parent_id`` (a Stack Exchange answer's question), and
#: ``post_type`` (an item with a kind but no parent starts its own thread).
THREAD_COLUMNS = (
    Item.attributes["thread_id"].as_string(),
    Item.attributes["parent_id"].as_string(),
    Item.attributes["post_type"].as_string(),
)


def thread_key(item_id: str, title: str | None, thread: Any, parent: Any, kind: Any) -> str:
    """The thread an item belongs to (from :data:`THREAD_COLUMNS`): the thread or parent it
    names, itself when it has a kind but no parent (a question), else its title (items of
    stores without a thread relation group by title), else itself."""
    if thread not in (None, ""):
        return f"id:{thread}"
    if parent not in (None, ""):
        return f"id:{parent}"
    if kind in (None, "") and title and title.strip():
        return "title:" + " ".join(title.casefold().split())
    return f"id:{item_id}"


def item_summaries(session: Session, external_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Title, author, tags, created time and thread (:func:`thread_key`) of several items, for
    decorating recommendations."""
    wanted = list(dict.fromkeys(external_ids))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 900):
        part = wanted[start : start + 900]
        rows = session.execute(
            select(
                Item.external_id, Item.title, Item.tags, Item.created, User.external_id,
                *THREAD_COLUMNS,
            )
            .outerjoin(User, Item.author_id == User.id)
            .where(Item.external_id.in_(part))
        )  # fmt: skip
        for ext, title, tags, created, author, *thread in rows:
            out[ext] = {
                "title": title,
                "tags": tags,
                "created": as_utc(created),
                "author_id": author,
                "thread": thread_key(ext, title, *thread),
            }
    return out


def latest_items(session: Session, n: int) -> list[dict[str, Any]]:
    """The ``n`` newest items, newest first (by created time, then insertion order), with the
    same fields as :func:`item_summaries` plus ``item_id``; a new post shows up at once."""
    rows = session.execute(
        select(Item.external_id, Item.title, Item.tags, Item.created, User.external_id)
        .outerjoin(User, Item.author_id == User.id)
        .order_by(Item.created.desc(), Item.id.desc())
        .limit(n)
    )
    return [
        {
            "item_id": ext,
            "title": title,
            "tags": tags,
            "created": as_utc(created),
            "author_id": author,
        }
        for ext, title, tags, created, author in rows
    ]


def user_edges(session: Session, external_id: str) -> list[dict[str, Any]]:
    """Outgoing social edges of a user."""
    source, target = aliased(User), aliased(User)
    rows = session.execute(
        select(target.external_id, SocialEdge.type, SocialEdge.weight, SocialEdge.created)
        .join(source, SocialEdge.source_id == source.id)
        .join(target, SocialEdge.target_id == target.id)
        .where(source.external_id == external_id)
        .order_by(SocialEdge.type, target.external_id)
    )
    return [
        {
            "source_id": external_id,
            "target_id": t,
            "type": ty,
            "weight": w,
            "created": as_utc(c),
        }
        for t, ty, w, c in rows
    ]


def user_item_ids(session: Session, external_id: str, since: datetime | None = None) -> list[str]:
    """External ids of the items a user has any event on (optionally only since a time)."""
    stmt = (
        select(Item.external_id)
        .join(Event, Event.item_id == Item.id)
        .join(User, Event.user_id == User.id)
        .where(User.external_id == external_id)
        .distinct()
    )
    if since is not None:
        stmt = stmt.where(Event.timestamp >= since)
    return list(session.scalars(stmt))


def user_events(
    session: Session, external_id: str, limit: int = 100
) -> list[tuple[str, str, float | None, datetime]]:
    """A user's latest events, newest first: (item id, type, value, timestamp)."""
    rows = session.execute(
        select(Item.external_id, Event.type, Event.value, Event.timestamp)
        .join(Event, Event.item_id == Item.id)
        .join(User, Event.user_id == User.id)
        .where(User.external_id == external_id)
        .order_by(Event.timestamp.desc(), Event.id.desc())
        .limit(limit)
    )
    return [(i, t, v, as_utc(ts)) for i, t, v, ts in rows]


def counts(session: Session) -> dict[str, int]:
    """Number of rows per entity, for the home page and health checks."""
    tables = {
        "users": User,
        "items": Item,
        "events": Event,
        "edges": SocialEdge,
        "groups": Group,
        "memberships": Membership,
    }
    return {
        name: session.scalar(select(func.count()).select_from(table))
        for name, table in tables.items()
    }


#: Edge types through which a user chose whose activity matters to them.
CHOSEN_TIES = ("follow", "friend", "trust")


def ties_who_engaged(
    session: Session, user_id: str, item_ids: Iterable[str]
) -> dict[str, list[str]]:
    """Per item, the people ``user_id`` follows, befriended or trusts who have an event on it."""
    wanted = list(dict.fromkeys(item_ids))
    source, friend = aliased(User), aliased(User)
    ties = (
        select(SocialEdge.target_id)
        .join(source, SocialEdge.source_id == source.id)
        .where(source.external_id == user_id, SocialEdge.type.in_(CHOSEN_TIES))
    )
    rows = session.execute(
        select(Item.external_id, friend.external_id)
        .join(Event, Event.item_id == Item.id)
        .join(friend, Event.user_id == friend.id)
        .where(Item.external_id.in_(wanted), Event.user_id.in_(ties))
        .distinct()
        .order_by(Item.external_id, friend.external_id)
    )
    out: dict[str, list[str]] = {}
    for item, who in rows:
        out.setdefault(item, []).append(who)
    return out


#: The newest events :func:`events_per_minute` reads at most (by primary key, so its cost is
#: bounded on a store of any size; on PostgreSQL the timestamp index and the monthly partitions
#: narrow it further).
RATE_SCAN = 200_000


def events_per_minute(
    session: Session, until: datetime, minutes: int, scan: int = RATE_SCAN
) -> list[int]:
    """Events stamped in each of the ``minutes`` spans of 60 seconds before ``until`` (oldest
    first; the last is the minute just gone): the console's live rate. Only the ``scan``
    newest stored events are read, so past ``scan`` events in the window the earliest minutes
    are undercounted."""
    start = until - timedelta(minutes=minutes)
    newest = session.scalar(select(func.max(Event.id)))
    counts = [0] * minutes
    if newest is None:
        return counts
    stamps = session.scalars(
        select(Event.timestamp).where(
            Event.id > newest - scan, Event.timestamp >= start, Event.timestamp < until
        )
    )
    for stamp in stamps:
        slot = int((as_utc(stamp) - start).total_seconds() // 60)
        if 0 <= slot < minutes:
            counts[slot] += 1
    return counts


def _like_escaped(text: str) -> str:
    """``text`` matched literally by LIKE (with ``escape="\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_users(session: Session, text: str, n: int) -> list[str]:
    """External ids of users whose id starts with ``text`` (the exact id first)."""
    pattern = _like_escaped(text) + "%"
    rows = session.scalars(
        select(User.external_id)
        .where(User.external_id.like(pattern, escape="\\"))
        .order_by(func.length(User.external_id), User.external_id)
        .limit(n)
    )
    return list(rows)


def find_items(session: Session, text: str, n: int) -> list[dict[str, Any]]:
    """Items whose id is ``text``, whose title contains it (any case) or that carry it as a
    tag, newest first, as :func:`item_summaries` shapes them."""
    escaped = _like_escaped(text)
    tag = _like_escaped(json.dumps(text)[1:-1])  # as the JSON column spells it
    rows = session.scalars(
        select(Item.external_id)
        .where(
            (Item.external_id == text)
            | Item.title.ilike(f"%{escaped}%", escape="\\")
            | cast(Item.tags, String).like(f'%"{tag}"%', escape="\\")
        )
        .order_by(Item.created.desc(), Item.id.desc())
        .limit(n)
    )
    ids = list(rows)
    found = item_summaries(session, ids)
    return [{"item_id": i, **found[i]} for i in ids if i in found]


def item_event_counts(session: Session, external_id: str) -> dict[str, int]:
    """Events on one item per event type."""
    rows = session.execute(
        select(Event.type, func.count())
        .join(Item, Item.id == Event.item_id)
        .where(Item.external_id == external_id)
        .group_by(Event.type)
        .order_by(func.count().desc())
    )
    return {kind: int(count) for kind, count in rows}
