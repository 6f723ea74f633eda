"""Gorse's data and recommendations on Agora's store and models.

Mapping (docs/gorse.md):

* a Gorse **user** is an Agora user; ``Labels``, ``Subscribe`` and ``Comment`` live in the
  user's ``attributes["gorse"]`` (the platform's other attributes are kept);
* a Gorse **item** is an Agora item: ``Comment`` is its title, ``Timestamp`` its created time,
  ``Labels`` (a list of strings) its tags, so the content models and topic mutes read them;
  ``IsHidden``, ``Categories`` and ``Labels`` as sent live in ``attributes["gorse"]``;
* a Gorse **feedback** is an Agora event whose type :class:`~agora.gorse.config.GorseConfig`
  maps, with a deterministic ``event_id`` per (type, user, item), so inserting it twice stores
  it once, as in Gorse; the Gorse type and comment are kept in the event's ``context``.

Recommendations are Agora's: a user's list is what ``GET /users/{id}/recommendations`` answers
(the feed's ready list, else the model scores the user now), item neighbours are the item-to-
item model's, popular items the trending model's; hidden items and items outside the asked
categories are taken out of every list. Errors a Gorse server answers in plain text are raised
as :class:`GorseError` with Gorse's status and text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from agora.config import Settings
from agora.db import queries
from agora.db.tables import Event, Item, User, event_key_table
from agora.gorse import schemas
from agora.gorse.config import gorse_config
from agora.ingest import service as ingest
from agora.ingest.schemas import MAX_TAGS, EventIn, as_utc, time_problem
from agora.ingest.schemas import ItemIn as AgoraItemIn
from agora.ingest.schemas import UserIn as AgoraUserIn
from agora.serving import service as serving

#: The key of ``attributes`` that holds what Gorse sends and Agora has no column for.
GORSE = "gorse"
#: Most rows or items one request may ask for (``n``).
MAX_N = 10_000
#: Most items ranked to fill one answer after hidden and off-category items are taken out.
MAX_RANKED = 50_000
#: Rows looked up per statement (SQLite's bound-parameter limit).
CHUNK = 900

Ranked = list[tuple[str, float]]


@dataclass(frozen=True)
class Window:
    """The part of a list a request asks for: items ``offset .. offset + n`` of those in every
    one of ``categories`` (none: every item)."""

    offset: int
    n: int
    categories: tuple[str, ...] = ()


class GorseError(Exception):
    """An answer a Gorse server gives as plain text: its status code and its text."""

    def __init__(self, status: int, text: str):
        self.status = status
        self.text = text
        super().__init__(text)


def not_found(kind: str, external_id: str) -> GorseError:
    """Gorse's 404 for a missing user or item: ``"<id>: user not found"``."""
    return GorseError(404, f"{external_id}: {kind} not found")


# -- query values, as Gorse parses them ------------------------------------------------------
def parse_int(text: str | None, fallback: int, name: str) -> int:
    """An integer query value (Go's strconv.Atoi and its error text); ``fallback`` when absent,
    refused below 0 or, for ``n``, above :data:`MAX_N`."""
    if text is None or text == "":
        return fallback
    if not re.fullmatch(r"[+-]?\d+", text):
        raise GorseError(400, f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise GorseError(400, f'strconv.Atoi: parsing "{text}": value out of range')
    if value < 0:
        raise GorseError(400, f"{name} must not be negative (got {value})")
    if name == "n" and value > MAX_N:
        raise GorseError(400, f"n must be at most {MAX_N} (got {value})")
    return value


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip


def parse_duration(text: str | None) -> timedelta:
    """A Go duration (``10m``, ``1h30m``, ``0h0m0s``) as Gorse's ``write-back-delay`` takes it;
    zero when absent; Go's error text otherwise."""
    if not text:
        return timedelta(0)
    body = text[1:] if text[0] in "+-" else text
    parts = _DURATION_PART.findall(body)
    if body != "0" and (not parts or "".join(a + b for a, b in parts) != body):
        raise GorseError(400, f'time: invalid duration "{text}"')
    seconds = sum(float(amount) * _DURATION_UNITS[unit] for amount, unit in parts)
    return timedelta(seconds=-seconds if text[0] == "-" else seconds)


#: How Go prints a ``time.Time`` (``2022-08-07 00:26:46.5 +0000 UTC``): Gorse's CSV files.
_GO_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(\.\d+)? ([+-]\d{2})(\d{2})(?: [A-Z]+)?"
)


def parse_time(text: str, settings: Settings, extra_future: float = 0.0) -> datetime | None:
    """A time a Gorse client sent (RFC 3339, a date, ``YYYY-MM-DD hh:mm:ss``, unix seconds,
    Go's ``2022-08-07 00:26:46 +0000 UTC``),
    in UTC; None when empty (Agora then uses the time of the write). Times Agora does not
    store (before ``earliest_timestamp``, past ``max_future_seconds``) are a 400."""
    text = text.strip()
    if not text:
        return None
    if written_by_go := _GO_TIME.fullmatch(text):  # Gorse's CSV files: time.Time's %v
        when, fraction, hours, minutes = written_by_go.groups()
        text = f"{when}{(fraction or '')[:7]}{hours}:{minutes}"
    try:
        if re.fullmatch(r"\d{1,11}(\.\d+)?", text):
            value = datetime.fromtimestamp(float(text), UTC)
        else:
            value = as_utc(datetime.fromisoformat(text))  # type: ignore[assignment]
    except (ValueError, OverflowError):
        raise GorseError(400, f'Could not find format for "{text}"') from None
    fault = time_problem(
        value, settings.earliest_timestamp, settings.max_future_seconds + extra_future
    )
    if fault:
        raise GorseError(400, fault)
    return value


def format_time(value: datetime | None) -> str:
    """A time as Go writes ``time.Time`` in JSON (RFC 3339, UTC ``Z``, no trailing zeros)."""
    if value is None:
        return "0001-01-01T00:00:00Z"
    value = as_utc(value)  # type: ignore[assignment]
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def go_time(value: datetime) -> str:
    """A time as Go prints a UTC ``time.Time`` (Gorse's CSV files): ``2022-08-07 00:26:46 +0000
    UTC``, the fraction without trailing zeros."""
    value = as_utc(value)  # type: ignore[assignment]
    fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
    return f"{value:%Y-%m-%d %H:%M:%S}{fraction} +0000 UTC"


def encode_cursor(pk: int) -> str:
    """The cursor of the page after row ``pk`` (opaque to clients, as Gorse's are)."""
    return base64.urlsafe_b64encode(str(pk).encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The row a cursor points after (0: the first page); 400 for a cursor Agora did not give."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise GorseError(400, f"illegal cursor {cursor!r}") from None
    if not text.isdigit() or len(text) > 19:
        raise GorseError(400, f"illegal cursor {cursor!r}")
    return int(text)


def _page_cursor(pks: Sequence[int], n: int) -> str:
    """Gorse's cursor after a page: empty when the page was not full (the last one)."""
    return encode_cursor(pks[-1]) if n and len(pks) == n else ""


def _kept(attributes: Any) -> dict[str, Any]:
    """The Gorse part of a stored ``attributes`` (empty for rows written another way)."""
    kept = attributes.get(GORSE) if isinstance(attributes, dict) else None
    return kept if isinstance(kept, dict) else {}


def _strings(value: Any) -> list[str] | None:
    """``value`` if it is a list of strings, else None (a stored row never breaks a read)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _updated(attributes: Any, **changes: Any) -> dict[str, Any]:
    """``attributes`` (the platform's kept) with the Gorse fields given replaced; a field
    given as None stays as it was (Gorse's patch)."""
    base = attributes if isinstance(attributes, dict) else {}
    given = {name: value for name, value in changes.items() if value is not None}
    return {**base, GORSE: {**_kept(base), **given}}


def _by_external(
    session: Session, query: Select[Any], column: Any, ids: Iterable[str]
) -> list[Any]:
    """The rows of ``query`` whose ``column`` is one of ``ids`` (in chunks)."""
    wanted = list(dict.fromkeys(ids))
    rows: list[Any] = []
    for start in range(0, len(wanted), CHUNK):
        rows += session.execute(query.where(column.in_(wanted[start : start + CHUNK]))).all()
    return rows


# -- users -----------------------------------------------------------------------------------
def _user_out(external_id: str, attributes: Any) -> schemas.UserOut:
    kept = _kept(attributes)
    comment = kept.get("comment")
    return schemas.UserOut(
        UserId=external_id,
        Labels=kept.get("labels"),
        Subscribe=_strings(kept.get("subscribe")),
        Comment=comment if isinstance(comment, str) else "",
    )


def insert_users(session: Session, users: Sequence[schemas.UserIn]) -> int:
    """Create or overwrite users (Gorse's insert); the platform's other attributes and the
    user's created time stay. Answers how many users were sent, as Gorse does."""
    latest = {u.UserId: u for u in users}  # a user sent twice: the last one wins
    query = select(User.external_id, User.created, User.attributes)
    stored = {ext: (created, attrs) for ext, created, attrs in
              _by_external(session, query, User.external_id, latest)}  # fmt: skip
    rows = []
    for user_id, user in latest.items():
        created, attributes = stored.get(user_id, (None, {}))
        gorse = {"labels": user.Labels, "subscribe": user.Subscribe, "comment": user.Comment}
        attributes = {**(attributes if isinstance(attributes, dict) else {}), GORSE: gorse}
        rows.append(AgoraUserIn(user_id=user_id, created=created, attributes=attributes))
    ingest.upsert_users(session, rows)
    return len(users)


def get_user(session: Session, user_id: str) -> schemas.UserOut:
    row = session.execute(
        select(User.external_id, User.attributes).where(User.external_id == user_id)
    ).first()
    if row is None:
        raise not_found("user", user_id)
    return _user_out(*row)


def modify_user(session: Session, user_id: str, patch: schemas.UserPatch) -> int:
    """Change the given fields of a user: 1, or 0 when there is no such user."""
    user = session.scalar(select(User).where(User.external_id == user_id))
    if user is None:
        return 0
    user.attributes = _updated(
        user.attributes, labels=patch.Labels, subscribe=patch.Subscribe, comment=patch.Comment
    )
    return 1


def get_users(session: Session, cursor: str, n: int) -> schemas.Users:
    """A page of users in the order they were stored."""
    after = decode_cursor(cursor)
    rows = session.execute(
        select(User.id, User.external_id, User.attributes)
        .where(User.id > after)
        .order_by(User.id)
        .limit(n)
    ).all()
    return schemas.Users(
        Cursor=_page_cursor([pk for pk, _, _ in rows], n),
        Users=[_user_out(ext, attrs) for _, ext, attrs in rows],
    )


# -- items -----------------------------------------------------------------------------------
_ITEM_COLUMNS = (Item.external_id, Item.title, Item.tags, Item.created, Item.attributes)


def _item_out(
    external_id: str, title: str, tags: Any, created: datetime, attributes: Any
) -> schemas.ItemOut:
    kept = _kept(attributes)
    labels = kept["labels"] if "labels" in kept else (_strings(tags) or None)
    return schemas.ItemOut(
        ItemId=external_id,
        IsHidden=kept.get("hidden") is True,
        Categories=_strings(kept.get("categories")),
        Timestamp=format_time(created),
        Labels=labels,
        Comment=title or "",
    )


def _tags(labels: Any) -> list[str]:
    """The Agora tags Gorse labels give: a list of strings is the item's tags."""
    tags = _strings(labels) or []
    if len(tags) > MAX_TAGS:
        raise GorseError(400, f"an item has at most {MAX_TAGS} labels (got {len(tags)})")
    return tags


def insert_items(session: Session, items: Sequence[schemas.ItemIn], settings: Settings) -> int:
    """Create or overwrite items (Gorse's insert). An item sent without a ``Timestamp`` keeps
    its stored created time (a new one gets the write's); its author, body, language, media and
    other attributes stay. Answers how many items were sent, as Gorse does."""
    latest = {i.ItemId: i for i in items}
    query = select(
        Item.external_id, User.external_id, Item.body, Item.language, Item.created, Item.media,
        Item.attributes,
    ).outerjoin(User, Item.author_id == User.id)  # fmt: skip
    stored = {row[0]: row[1:] for row in _by_external(session, query, Item.external_id, latest)}
    rows = []
    for item_id, item in latest.items():
        author, body, language, created, media, attributes = stored.get(
            item_id, (None, "", None, None, {}, {})
        )
        gorse = {"labels": item.Labels, "categories": item.Categories, "hidden": item.IsHidden}
        try:
            rows.append(
                AgoraItemIn(
                    item_id=item_id,
                    author_id=author,
                    title=item.Comment,
                    body=body or "",
                    tags=_tags(item.Labels),
                    language=language,
                    created=parse_time(item.Timestamp, settings) or created,
                    media=media if isinstance(media, dict) else {},
                    attributes={**(attributes if isinstance(attributes, dict) else {}),
                                GORSE: gorse},
                )
            )  # fmt: skip
        except ValidationError as exc:
            raise GorseError(400, f"item {item_id}: {exc.errors()[0]['msg']}") from None
    ingest.upsert_items(session, rows)
    return len(items)


def get_item(session: Session, item_id: str) -> schemas.ItemOut:
    row = session.execute(select(*_ITEM_COLUMNS).where(Item.external_id == item_id)).first()
    if row is None:
        raise not_found("item", item_id)
    return _item_out(*row)


def modify_item(
    session: Session, item_id: str, patch: schemas.ItemPatch, settings: Settings
) -> int:
    """Change the given fields of an item: 1, or 0 when there is no such item. Hiding it takes
    it out of every Gorse list at once."""
    item = session.scalar(select(Item).where(Item.external_id == item_id))
    if item is None:
        return 0
    item.attributes = _updated(
        item.attributes, hidden=patch.IsHidden, categories=patch.Categories, labels=patch.Labels
    )
    if patch.Labels is not None:
        item.tags = _tags(patch.Labels)
    if patch.Comment is not None:
        item.title = patch.Comment
    if patch.Timestamp is not None:
        item.created = parse_time(patch.Timestamp, settings) or item.created
    return 1


def change_category(session: Session, item_id: str, category: str, present: bool) -> int:
    """Add (``present``) or remove one category of an item: 1 (also when nothing changed)."""
    item = session.scalar(select(Item).where(Item.external_id == item_id))
    if item is None:
        raise not_found("item", item_id)
    others = [c for c in _strings(_kept(item.attributes).get("categories")) or [] if c != category]
    item.attributes = _updated(
        item.attributes, categories=[*others, category] if present else others
    )
    return 1


def get_items(session: Session, cursor: str, n: int) -> schemas.Items:
    """A page of items in the order they were stored."""
    after = decode_cursor(cursor)
    rows = session.execute(
        select(Item.id, *_ITEM_COLUMNS).where(Item.id > after).order_by(Item.id).limit(n)
    ).all()
    return schemas.Items(
        Cursor=_page_cursor([row[0] for row in rows], n),
        Items=[_item_out(*row[1:]) for row in rows],
    )


# -- feedback --------------------------------------------------------------------------------
def feedback_event_id(feedback_type: str, user_id: str, item_id: str) -> str:
    """The event id of a Gorse feedback: one per (type, user, item), as Gorse keys feedback."""
    key = "\x00".join((feedback_type, user_id, item_id)).encode()
    return "gorse:" + hashlib.sha256(key).hexdigest()[:40]


def event_type(feedback_type: str, settings: Settings) -> str:
    """The Agora event type a Gorse feedback type is stored as (see GorseConfig)."""
    allowed = settings.event_types
    mapped = gorse_config(settings).feedback_types.get(feedback_type)
    if mapped is None and feedback_type in allowed:
        return feedback_type
    if mapped is None or mapped not in allowed:
        known = sorted({*gorse_config(settings).feedback_types, *allowed})
        raise GorseError(
            400,
            f"unknown feedback type {feedback_type!r}: map it to an Agora event type in "
            f"AGORA_GORSE's feedback_types (types taken now: {', '.join(known)})",
        )
    return mapped


#: What a write-back keeps of the recommendation it records: the item's score, so that until
#: the write-back is due the item keeps its place in the user's list (Gorse's
#: ``write-back-delay``; see :func:`not_yet_due`).
SHOWN_SCORE = "gorse_score"


@dataclass
class FeedbackWritten:
    """What a feedback write did: Gorse's count (the feedback sent) and Agora's new events."""

    row_affected: int
    stored: int


def insert_feedback(
    session: Session,
    feedback: Sequence[schemas.FeedbackIn],
    settings: Settings,
    overwrite: bool,
    extra_future: float = 0.0,
    scores: Mapping[str, float] | None = None,
) -> FeedbackWritten:
    """Store feedback as events; users and items not seen before are created (Gorse's
    ``auto_insert_user``/``item``). POST keeps a feedback already stored (``overwrite``
    False), PUT overwrites its time, value and comment. Feedback without a time is dated now.
    ``scores``: the score each item was recommended with (a write-back keeps it)."""
    now = datetime.now(UTC)
    events = []
    for f in feedback:
        context: dict[str, Any] = {"gorse_type": f.FeedbackType}
        if f.Comment:
            context["gorse_comment"] = f.Comment
        if scores is not None and f.ItemId in scores:
            context[SHOWN_SCORE] = scores[f.ItemId]
        events.append(
            EventIn(
                event_id=feedback_event_id(f.FeedbackType, f.UserId, f.ItemId),
                user_id=f.UserId,
                item_id=f.ItemId,
                type=event_type(f.FeedbackType, settings),
                value=f.Value,
                timestamp=parse_time(f.Timestamp, settings, extra_future) or now,
                context=context,
            )
        )
    try:
        summary = ingest.add_events(
            session,
            events,
            settings.event_types,
            settings.max_future_seconds + extra_future,
            settings.earliest_timestamp,
        )
    except ingest.Rejected as exc:
        raise GorseError(400, str(exc)) from None
    if overwrite:
        keys = event_key_table(session.get_bind().dialect.name)
        for ev in events:  # in order: a feedback sent twice ends as the last one
            stored = select(keys.c.id).where(keys.c.event_id == ev.event_id).scalar_subquery()
            session.execute(
                update(Event)
                .where(Event.id == stored)
                .values(type=ev.type, value=ev.value, timestamp=ev.timestamp, context=ev.context)
            )
    return FeedbackWritten(len(feedback), summary.written.get("events", 0))


def write_back(
    session: Session,
    settings: Settings,
    user_id: str,
    ranked: Ranked,
    feedback_type: str,
    delay: timedelta,
) -> FeedbackWritten:
    """Record each recommended item as ``feedback_type`` of ``user_id`` dated ``delay`` from
    now, with the score it was recommended with (Gorse's ``write-back-type`` and
    ``write-back-delay``: a delay up to it is taken past ``max_future_seconds``)."""
    when = format_time(datetime.now(UTC) + delay)
    back = [
        schemas.FeedbackIn(FeedbackType=feedback_type, UserId=user_id, ItemId=item, Timestamp=when)
        for item, _ in ranked
    ]
    ahead = max(delay.total_seconds(), 0.0)
    return insert_feedback(session, back, settings, False, ahead, scores=dict(ranked))


def not_yet_due(session: Session, user_id: str) -> Ranked:
    """The items written back to ``user_id`` with a delay not over yet, and nothing else of
    theirs due, with the score they were recommended with: Gorse keeps recommending them until
    then, where Agora's ranking leaves out every item that has an event."""
    now = datetime.now(UTC)
    user = queries.user_pk(session, user_id)
    if user is None:
        return []
    ahead = session.execute(
        select(Item.external_id, Event.context)
        .join(Event, Event.item_id == Item.id)
        .where(Event.user_id == user, Event.timestamp > now)
    ).all()
    scored = {
        item: float(context[SHOWN_SCORE])
        for item, context in ahead
        if isinstance(context, dict) and isinstance(context.get(SHOWN_SCORE), int | float)
    }
    if not scored:
        return []
    due = select(Item.external_id).join(Event, Event.item_id == Item.id)
    due = due.where(Event.user_id == user, Event.timestamp <= now)
    seen = {row[0] for row in _by_external(session, due, Item.external_id, scored)}
    return [(item, score) for item, score in scored.items() if item not in seen]


_FEEDBACK = (
    select(Event.id, Event.type, Event.value, Event.timestamp, Event.context,
           User.external_id, Item.external_id)
    .join(User, Event.user_id == User.id)
    .join(Item, Event.item_id == Item.id)
)  # fmt: skip


def _feedback_out(row: Any) -> schemas.FeedbackOut:
    _, etype, value, timestamp, context, user_id, item_id = row
    context = context if isinstance(context, dict) else {}
    gorse_type, comment = context.get("gorse_type"), context.get("gorse_comment")
    return schemas.FeedbackOut(
        FeedbackType=gorse_type if isinstance(gorse_type, str) else etype,
        UserId=user_id,
        ItemId=item_id,
        Value=float(value) if value is not None else 0.0,
        Timestamp=format_time(timestamp),
        Comment=comment if isinstance(comment, str) else "",
    )


def _of_type(feedback_type: str) -> Any:
    """Events written as this Gorse type, or of this Agora type when written another way."""
    written_as = Event.context["gorse_type"].as_string()
    return or_(written_as == feedback_type, and_(written_as.is_(None), Event.type == feedback_type))


def _due() -> Any:
    """Gorse reads feedback up to now: a delayed write-back shows when its time comes."""
    return Event.timestamp <= datetime.now(UTC)


def get_feedback(
    session: Session, cursor: str, n: int, feedback_type: str | None = None
) -> schemas.Feedbacks:
    """A page of feedback in the order it was stored (of one type, when given)."""
    query = _FEEDBACK.where(Event.id > decode_cursor(cursor), _due())
    if feedback_type is not None:
        query = query.where(_of_type(feedback_type))
    rows = session.execute(query.order_by(Event.id).limit(n)).all()
    return schemas.Feedbacks(
        Cursor=_page_cursor([row[0] for row in rows], n),
        Feedback=[_feedback_out(row) for row in rows],
    )


def feedback_of(
    session: Session,
    user_id: str | None = None,
    item_id: str | None = None,
    feedback_type: str | None = None,
) -> list[schemas.FeedbackOut]:
    """Every feedback of a user, of an item, or between them (of one type, when given)."""
    query = _FEEDBACK.where(_due())
    if user_id is not None:
        query = query.where(User.external_id == user_id)
    if item_id is not None:
        query = query.where(Item.external_id == item_id)
    if feedback_type is not None:
        query = query.where(_of_type(feedback_type))
    return [_feedback_out(row) for row in session.execute(query.order_by(Event.id))]


def delete_feedback(
    session: Session, user_id: str, item_id: str, feedback_type: str | None = None
) -> int:
    """Delete the feedback between a user and an item (of one type, when given): how many."""
    query = (
        select(Event.id)
        .join(User, Event.user_id == User.id)
        .join(Item, Event.item_id == Item.id)
        .where(User.external_id == user_id, Item.external_id == item_id)
    )
    if feedback_type is not None:
        query = query.where(_of_type(feedback_type))
    pks = list(session.scalars(query))
    if not pks:
        return 0
    return session.execute(delete(Event).where(Event.id.in_(pks))).rowcount


# -- recommendations -------------------------------------------------------------------------
def visible(session: Session, item_ids: Iterable[str], categories: Sequence[str]) -> set[str]:
    """Which of ``item_ids`` a Gorse list may show: stored, not hidden, and in every one of
    ``categories``."""
    query = select(Item.external_id, Item.attributes)
    out = set()
    for item_id, attributes in _by_external(session, query, Item.external_id, item_ids):
        kept = _kept(attributes)
        if kept.get("hidden") is True:
            continue
        if categories and not set(categories) <= set(_strings(kept.get("categories")) or []):
            continue
        out.add(item_id)
    return out


def fill(
    session: Session,
    ranked: Callable[[int], Ranked],
    window: Window,
    seen: Collection[str] = frozenset(),
) -> Ranked:
    """The ``window`` of a ranking once hidden items, items outside its categories and
    ``seen`` ones are taken out: the ranking is asked for more (four times as many each turn)
    until enough are left or it has no more."""
    if window.n == 0:
        return []
    want = window.offset + window.n
    k = want + 20
    while True:
        got = ranked(k)
        shown = visible(session, [i for i, _ in got if i not in seen], window.categories)
        kept = [(item, score) for item, score in got if item in shown]
        if len(kept) >= want or len(got) < k or k >= MAX_RANKED:
            return kept[window.offset : want]
        k = min(k * 4, MAX_RANKED)


def touched_items(session: Session, user_id: str | None) -> set[str]:
    """The items a user has feedback on up to now (Gorse leaves them out of their lists)."""
    if not user_id:
        return set()
    query = (
        select(Item.external_id)
        .join(Event, Event.item_id == Item.id)
        .join(User, Event.user_id == User.id)
        .where(User.external_id == user_id, _due())
    )
    return set(session.scalars(query))


def latest_list(session: Session, user_id: str | None, window: Window) -> Ranked:
    """The newest items scored by their unix time (Gorse's latest list), without the items
    ``user_id`` (when given) has feedback on."""

    def ranked(k: int) -> Ranked:
        rows = queries.latest_items(session, k)
        return [(row["item_id"], row["created"].timestamp()) for row in rows]

    return fill(session, ranked, window, touched_items(session, user_id))


def popular_list(
    session: Session,
    models: serving.ModelStore,
    settings: Settings,
    user_id: str | None,
    window: Window,
) -> Ranked:
    """The trending model's list, without the items ``user_id`` (when given) has feedback
    on; empty before the model is trained (as a new Gorse's is)."""

    def ranked(k: int) -> Ranked:
        recs = serving.global_list(session, models, gorse_config(settings).popular_model, k)
        return [(r.item_id, r.score) for r in recs]

    try:
        return fill(session, ranked, window, touched_items(session, user_id))
    except serving.ModelUnavailable:
        return []


def recommend(
    session: Session,
    models: serving.ModelStore,
    ready: serving.ReadyAnswers,
    settings: Settings,
    user_id: str,
    window: Window,
) -> Ranked:
    """A user's recommendations as ``GET /users/{id}/recommendations`` ranks them (the feed's
    ready list when current, else the model scores the user now), with the items whose
    write-back is not due yet back in their place. Before any model is trained: the latest
    items they have no feedback on (Gorse's default fallback)."""
    waiting = not_yet_due(session, user_id)
    try:
        name = serving.resolve_model(models, settings.default_model)

        def ranked(k: int) -> Ranked:
            listed = ready.items(user_id, name, k)
            if listed is None:
                listed = serving.recommend(
                    session,
                    models,
                    user_id,
                    k,
                    name,
                    settings.event_weights,
                    max_per_thread=settings.feed.max_per_thread,
                )
            merged = [(r.item_id, r.score) for r in listed] + waiting
            return sorted(merged, key=lambda pair: -pair[1])  # stable: Agora's order on ties

        return fill(session, ranked, window)
    except serving.ModelUnavailable:
        return latest_list(session, user_id, window)


def item_neighbors(
    session: Session,
    models: serving.ModelStore,
    settings: Settings,
    item_id: str,
    window: Window,
) -> Ranked:
    """The item-to-item model's neighbours of an item (content neighbours for an item newer
    than the model); empty for an unknown item or before training, as Gorse's are."""

    def ranked(k: int) -> Ranked:
        found = serving.similar_items(
            session, models, item_id, k, gorse_config(settings).neighbors_model
        )
        return [(r.item_id, r.score) for r in found.items]

    try:
        return fill(session, ranked, window)
    except (serving.UnknownItem, serving.ModelUnavailable):
        return []


def session_recommend(
    session: Session,
    models: serving.ModelStore,
    settings: Settings,
    feedback: Sequence[schemas.FeedbackIn],
    window: Window,
) -> Ranked:
    """Items for an anonymous session's feedback (nothing is stored): the item-to-item model
    scores the session's feedback as a user's history. Types that are not Agora event types
    count as seen, not as interest; items of the session are never returned."""
    rows: list[serving.EventRow] = []
    now = datetime.now(UTC)
    for f in feedback:
        mapped = gorse_config(settings).feedback_types.get(f.FeedbackType, f.FeedbackType)
        if mapped in settings.event_types:
            rows.append((f.ItemId, mapped, f.Value, parse_time(f.Timestamp, settings) or now))
    try:
        loaded = models.get(gorse_config(settings).neighbors_model)
    except serving.ModelUnavailable:
        return []
    history = serving.user_history(loaded, rows, settings.event_weights)
    if history.strength.nnz == 0:
        return []

    def ranked(k: int) -> Ranked:
        items, scores = loaded.model.recommend(
            -1, history.strength, k, exclude=history.touched, times=history.times
        )
        return [(loaded.item_ids[i], float(s)) for i, s in zip(items, scores, strict=True)]

    return fill(session, ranked, window, {f.ItemId for f in feedback})


def user_neighbors(session: Session, settings: Settings, user_id: str, window: Window) -> Ranked:
    """Users who engaged with the most of the same items as ``user_id`` (Gorse's "related"
    neighbours), scored by how many; events of types weighted 0 (dislike) do not count."""
    pk = queries.user_pk(session, user_id)
    if pk is None or window.n == 0:
        return []
    unweighted = [t for t, w in settings.event_weights.items() if w <= 0]
    positive = Event.type.notin_(unweighted)
    mine = select(Event.item_id).where(Event.user_id == pk, positive)
    common = func.count(func.distinct(Event.item_id))
    rows = session.execute(
        select(User.external_id, common)
        .join(User, Event.user_id == User.id)
        .where(Event.item_id.in_(mine), Event.user_id != pk, positive)
        .group_by(User.external_id)
        .order_by(common.desc(), User.external_id)
        .offset(window.offset)
        .limit(window.n)
    ).all()
    return [(other, float(count)) for other, count in rows]


def scores(ranked: Ranked) -> list[schemas.Score]:
    return [schemas.Score(Id=item, Score=score) for item, score in ranked]
