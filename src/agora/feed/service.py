"""The feed's service: pages, controls, interests, feedback, cursors and impressions.

A page is ranked by :func:`agora.feed.online.serve` (ready candidates -> filters -> re-rank ->
page -> impressions); the candidates come from the refresher (:mod:`agora.feed.refresher`,
:mod:`agora.feed.candidates`), the filters from the user's in-memory state
(:mod:`agora.feed.state`). docs/feed-serving.md describes the split.

* **Sources**: ``collaborative`` (the ranking model), ``sequential`` (sasrec), ``in_network``
  (what people the user follows, befriended or trusts posted or engaged with), ``content``
  (with items posted after the content model), ``trending``; online, ``topics`` (recent items
  on followed tags) and ``fresh`` (Thompson sampling on new items' exposure).
* **Ranking**: the ranking model's score as a percentile among the candidates (trending's for
  users it cannot personalise) + ``social_weight`` x in-network strength + ``freshness`` x
  ``exp(-age / 48 h)`` + followed-topic overlap - suppression by recent "not interested"
  feedback; then at most ``max_per_thread`` items of one thread and the re-ranker
  (:mod:`agora.feed.rerank`).
* **Filters**: touched, hidden, authored, shown earlier in the browsing session, taken down,
  blocked or muted authors, muted topics (:func:`exclusions`, which the ads obey too), creatives
  of running campaigns.
* **Pages**: the first page opens a browsing session; ``next_cursor`` names it and the next
  page number. Impressions (session, position, source) keep a session's pages free of repeats
  and feed the exploration bandit.
* **Mutes** live in the user's settings only: mute and unmute feedback change them there.
* **New users**: a feed asked for a user the store does not know creates them (sign-up) and
  serves a cold-start page.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from agora.api.errors import Invalid, NotFound
from agora.config import FeedConfig
from agora.db import queries
from agora.db.tables import FeedImpression, Item, SocialEdge, User
from agora.feed import online, sources
from agora.feed.cache import FeedCache, uncached
from agora.feed.models import MUTE_KINDS, FeedFeedback, FeedSettings
from agora.feed.online import Controls
from agora.feed.state import user_pk_or_new
from agora.ingest.service import known_user_pk
from agora.market.service import Viewer, recent_tags
from agora.serving.service import (
    ModelStore,
    past_items_behind,
    user_event_rows,
)


class UnknownTarget(NotFound):
    """Feedback names an item or author that is not in the store."""


class BadCursor(Invalid):
    """A cursor that this server did not issue."""

    where = ("query", "cursor")


@dataclass
class FeedItem:
    item_id: str
    score: float
    source: str
    reason: str
    title: str | None = None
    author_id: str | None = None
    tags: list[str] = field(default_factory=list)
    created: datetime | None = None
    new_creator: bool = False
    because: list[dict[str, Any]] | None = None


@dataclass
class FeedPage:
    user_id: str
    session: str
    page: int
    items: list[FeedItem]
    next_cursor: str
    sources: dict[str, int]
    model: str | None
    candidates: str = "built"  # ready, stale or built (agora.feed.ready.Ready.get)
    ranking: str = "now"  # prepared, ahead or now (agora.feed.online.Served)


# -- controls, interests and feedback --------------------------------------------------------
def controls(session: Session, user_id: str, defaults: FeedConfig) -> Controls:
    """The controls in force for ``user_id`` (defaults where the user set nothing)."""
    row = session.get(FeedSettings, known_user_pk(session, user_id))
    return _controls(session, row, defaults)


def _controls(session: Session, row: FeedSettings | None, defaults: FeedConfig) -> Controls:
    def pick(name: str) -> float:
        own = getattr(row, name) if row is not None else None
        return float(getattr(defaults, name) if own is None else own)

    return Controls(
        diversity=pick("diversity"),
        social_weight=pick("social_weight"),
        freshness=pick("freshness"),
        exploration=pick("exploration"),
        followed_tags=list(row.followed_tags) if row is not None else [],
        muted_tags=list(row.muted_tags) if row is not None else [],
        muted_authors=_external_ids(session, row.muted_authors if row is not None else []),
    )


def _external_ids(session: Session, user_pks: list[int]) -> list[str]:
    """The external ids of users given by primary key, in order (users erased since: left out)."""
    if not user_pks:
        return []
    found = dict(
        session.execute(select(User.id, User.external_id).where(User.id.in_(user_pks))).all()
    )
    return [found[pk] for pk in user_pks if pk in found]


def _author_pks(session: Session, authors: list[str]) -> list[int]:
    """Primary keys of users given by external id, in order; UnknownTarget names a missing one."""
    found = dict(
        session.execute(
            select(User.external_id, User.id).where(User.external_id.in_(authors))
        ).all()
    ) if authors else {}  # fmt: skip
    missing = [a for a in authors if a not in found]
    if missing:
        raise UnknownTarget(f"author {missing[0]!r} not found")
    return [found[a] for a in authors]


def _settings_row(session: Session, user_pk: int, now: datetime) -> FeedSettings:
    row = session.get(FeedSettings, user_pk)
    if row is None:
        row = FeedSettings(
            user_id=user_pk, followed_tags=[], muted_tags=[], muted_authors=[], updated=now
        )
        session.add(row)
    return row


def update_controls(
    session: Session, user_id: str, changes: Mapping[str, Any], defaults: FeedConfig, now: datetime
) -> Controls:
    """Store the given controls (None resets one to the platform default); others unchanged.
    ``muted_authors`` are external user ids (UnknownTarget names one not in the store)."""
    row = _settings_row(session, known_user_pk(session, user_id), now)
    for name, value in changes.items():
        if name in ("followed_tags", "muted_tags", "muted_authors"):
            value = list(dict.fromkeys(value or []))
        if name == "muted_authors":
            value = _author_pks(session, value)
        setattr(row, name, value)
    row.updated = now
    session.flush()
    return _controls(session, row, defaults)


def add_interests(
    session: Session, user_id: str, tags: list[str], defaults: FeedConfig, now: datetime
) -> Controls:
    """Onboarding: follow ``tags``. A user not in the store yet is created (sign-up)."""
    user_pk_or_new(session, user_id)
    current = controls(session, user_id, defaults)
    followed = [*current.followed_tags, *tags]
    muted = [t for t in current.muted_tags if t not in tags]
    return update_controls(
        session, user_id, {"followed_tags": followed, "muted_tags": muted}, defaults, now
    )


def add_feedback(
    session: Session,
    user_id: str,
    kind: str,
    now: datetime,
    item_id: str | None = None,
    author_id: str | None = None,
    tag: str | None = None,
) -> None:
    """Record one piece of negative feedback (or an unmute); the next feed applies it. Mutes
    and unmutes change the user's settings (the one place mutes live)."""
    pk = known_user_pk(session, user_id)
    if kind in MUTE_KINDS:
        _change_mute(session, pk, kind, author_id, tag, now)
        return
    row = FeedFeedback(user_id=pk, kind=kind, tag=tag, created=now)
    if item_id is not None:
        row.item_id = session.scalar(select(Item.id).where(Item.external_id == item_id))
        if row.item_id is None:
            raise UnknownTarget(f"item {item_id!r} not found")
    if author_id is not None:
        row.author_id = queries.user_pk(session, author_id)
        if row.author_id is None:
            raise UnknownTarget(f"author {author_id!r} not found")
    session.add(row)
    session.flush()


def _change_mute(
    session: Session, user_pk: int, kind: str, author_id: str | None, tag: str | None,
    now: datetime,
) -> None:  # fmt: skip
    """Add to or remove from the settings' muted authors or tags."""
    row = _settings_row(session, user_pk, now)
    if kind.endswith("_author"):
        name, value = "muted_authors", _author_pks(session, [author_id or ""])[0]
    else:
        name, value = "muted_tags", tag
    current = list(getattr(row, name) or [])
    if kind.startswith("mute_") and value not in current:
        current.append(value)
    elif kind.startswith("unmute_") and value in current:
        current.remove(value)
    setattr(row, name, current)  # a new list: the JSON column sees the change
    row.updated = now
    session.flush()


# -- cursors ---------------------------------------------------------------------------------
#: A cursor: ``<browsing session>.<page>``. Every string of this shape is served (a session the
#: server no longer holds is ranked afresh from that page on), so the pattern is the whole rule.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{8,64}\.[1-9][0-9]{0,8}$"
_CURSOR = re.compile(CURSOR_PATTERN, re.ASCII)


def encode_cursor(session_id: str, page: int) -> str:
    return f"{session_id}.{page}"


def decode_cursor(cursor: str) -> tuple[str, int]:
    """(session, page) of a cursor from :func:`encode_cursor`; BadCursor otherwise."""
    if not _CURSOR.match(cursor):
        raise BadCursor("cursor is not one this server issued; omit it for the first page")
    session_id, page = cursor.rsplit(".", 1)
    return session_id, int(page)


# -- what the request needs from the store ---------------------------------------------------
@dataclass(frozen=True)
class Exclusions:
    """What a user is never shown, organic or paid: authors they blocked or muted, topics they
    muted, items they hid (items moderation took down are checked against the catalogue)."""

    authors: frozenset[str]
    tags: frozenset[str]
    items: frozenset[str]

    def allows(self, item_id: str, author_id: str | None, tags: Iterable[str]) -> bool:
        """Whether an item with this author and tags may be shown to the user."""
        return (
            item_id not in self.items
            and author_id not in self.authors
            and self.tags.isdisjoint(tags or ())
        )


def exclusions(session: Session, user_pk: int) -> Exclusions:
    """The user's blocks (social edges), hidden items (feedback) and the authors and topics muted
    in their settings (the one place mutes live): the one filter the feed and its ads apply."""
    blocked = set(
        session.scalars(
            select(User.external_id)
            .join(SocialEdge, SocialEdge.target_id == User.id)
            .where(SocialEdge.source_id == user_pk, SocialEdge.type == "block")
        )
    )
    hidden = set(
        session.scalars(
            select(Item.external_id)
            .join(FeedFeedback, FeedFeedback.item_id == Item.id)
            .where(FeedFeedback.user_id == user_pk, FeedFeedback.kind == "hide")
        )
    )
    settings_row = session.get(FeedSettings, user_pk)
    muted_tags: set[str] = set()
    if settings_row is not None:
        muted_tags = set(settings_row.muted_tags or [])
        blocked.update(_external_ids(session, list(settings_row.muted_authors or [])))
    return Exclusions(frozenset(blocked), frozenset(muted_tags), frozenset(hidden))


def ad_viewer(session: Session, user_id: str) -> Viewer | None:
    """The user as the ads see them, read from the store (None when unknown): the feed's
    :func:`exclusions`, and the tags of their latest events as interests. A served page builds
    its viewer from the in-memory state instead (:mod:`agora.feed.views`)."""
    user_pk = queries.user_pk(session, user_id)
    if user_pk is None:
        return None
    excluded = exclusions(session, user_pk)
    return Viewer(
        pk=user_pk,
        user_id=user_id,
        allows=lambda c: excluded.allows(c.item_id, c.author_id, c.tags),
        interests=lambda: recent_tags(session, user_pk),
    )


def build_feed(
    session: Session,
    models: ModelStore,
    user_id: str,
    n: int,
    cursor: str | None,
    defaults: FeedConfig,
    weights: Mapping[str, float],
    now: datetime,
    rng: np.random.Generator | None = None,
    explain: bool = False,
    cache: FeedCache | None = None,
    promoted: Collection[str] = frozenset(),
) -> FeedPage:
    """One page of ``user_id``'s feed (:func:`agora.feed.online.serve`); stores its
    impressions (the caller commits).

    ``cache`` (one per serving process) holds the catalogue, users' states and ready
    candidates; without it everything is read and computed for this page. ``promoted`` items
    (the creatives of running ad campaigns) are never organic: they reach users as ads."""
    rng = rng or np.random.default_rng()
    cache = cache or uncached()
    browsing, page = decode_cursor(cursor) if cursor else (secrets.token_urlsafe(12), 1)
    served = online.serve(
        session, models, cache, user_id, n, browsing, page, defaults, weights, now, rng, promoted
    )
    items = [FeedItem(**item) for item in served.items]
    if explain and served.personal and served.model is not None:
        rows = user_event_rows(session, user_id)
        view = sources.model_view(models, served.model, user_id, rows, weights)
        if view is not None:
            _explain(session, view, items)
    return FeedPage(
        user_id=user_id,
        session=browsing,
        page=page,
        items=items,
        next_cursor=encode_cursor(browsing, page + 1),
        sources=dict(Counter(i.source for i in items)),
        model=served.model,
        candidates=served.candidates,
        ranking=served.ranking,
    )


def _explain(session: Session, view: sources.ModelView, items: list[FeedItem]) -> None:
    """Name the past items behind the model's score of each item it knows."""
    known = [it for it in items if it.item_id in view.index]
    if not known or view.history is None or view.history.strength.nnz == 0:
        return
    because = past_items_behind(session, view.loaded, view.history, [it.item_id for it in known])
    for it, past in zip(known, because, strict=True):
        it.because = past
        if past and it.source in ("collaborative", "sequential", "content"):
            it.reason = f"because you engaged with {past[0]['title'] or past[0]['item_id']!r}"


def prune_impressions(session: Session, before: datetime) -> int:
    """Delete impressions served before ``before`` (they only matter while a browsing session
    and a new item's exploration last); returns how many were deleted."""
    result = session.execute(delete(FeedImpression).where(FeedImpression.served < before))
    return int(result.rowcount or 0)


def source_shares(session: Session, since: datetime) -> dict[str, int]:
    """Impressions per candidate source since ``since`` (what the feed has been made of)."""
    rows = session.execute(
        select(FeedImpression.source, func.count())
        .where(FeedImpression.served >= since)
        .group_by(FeedImpression.source)
    )
    return dict(rows.all())
