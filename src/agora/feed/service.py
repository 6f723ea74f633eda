"""The feed: candidate sources -> ranking -> filters and re-ranking -> mixing.

The shape of X's open-sourced home timeline, on the store's current state (a new event changes
the next page: everything is read at request time).

* **Sources** (:mod:`agora.feed.sources`) nominate items, each with a strength in [0, 1]:
  ``collaborative`` (the ranking model, the learned hybrid when trained), ``sequential`` (sasrec
  on the latest events), ``in_network`` (what people the user follows, befriended or trusts
  posted or engaged with), ``topics`` (new items on followed topics: onboarding interests),
  ``content`` (the content model), ``trending`` and ``fresh`` (new items, explored by Thompson
  sampling on engagement per impression, within an impression budget).
* **Ranking**: ``relevance`` = the ranking model's score as a percentile among the candidates
  (trending's for users it cannot personalise) + ``social_weight`` x in-network strength +
  ``freshness`` x ``exp(-age / 48 h)`` + 1.0 x followed-topic overlap - suppression by recent
  "not interested" feedback (same item 1, same author 0.6, else tag Jaccard, halving every
  ``feedback_half_life_hours``).
* **Filters**: items the user touched (any event), hid, authored, or was shown earlier in the
  same browsing session; items moderation took down; authors they muted or blocked; muted
  topics (:func:`exclusions`, which the ads obey too); creatives of running ad campaigns (they
  are shown as ads only). Every page, ranked afresh or served from a prefetched ranking, passes
  them as the store stands when it is served (:func:`_still_allowed`).
* **Threads**: at most ``max_per_thread`` items of one thread (a question and its answers) in a
  ranking, the thread's best first (:func:`agora.db.queries.thread_key`).
* **Re-ranking** (:mod:`agora.feed.rerank`): greedy MMR on tags with ``diversity``, same-author
  decay, every ``1 / exploration``-th slot to the best Thompson draw among fresh items, and at
  least ``new_creator_share`` of the page to new creators when there are candidates from them.
* **Pages**: the first page opens a browsing session; ``next_cursor`` names it and the next page
  number. Served items are stored as impressions (session, position, source), which keeps pages
  of a session free of repeats and feeds the exploration bandit. Each ranking places
  ``PREFETCH_PAGES`` pages; the next ones are served from the cache while the user's events,
  feedback and controls are unchanged (:mod:`agora.feed.cache`).
* **Mutes** live in the user's settings only: mute and unmute feedback change them there.
* **New users**: a feed asked for a user the store does not know creates them (sign-up) and
  serves a cold-start page.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sqlalchemy import bindparam, delete, func, select, union
from sqlalchemy.orm import Session

from agora.config import FeedConfig
from agora.db import queries
from agora.db.tables import Event, Item, SocialEdge, User
from agora.experiments.service import arm_overrides
from agora.feed import sources
from agora.feed.cache import FeedCache, Snapshot, uncached
from agora.feed.impressions import ImpressionBuffer
from agora.feed.models import MUTE_KINDS, FeedFeedback, FeedImpression, FeedSettings
from agora.feed.rerank import rerank
from agora.ingest.schemas import as_utc
from agora.moderation.models import ModerationDecision
from agora.serving.service import (
    ModelStore,
    ModelUnavailable,
    past_items_behind,
    resolve_model,
    user_event_rows,
)

SEQUENTIAL_MODEL = "sasrec"
FRESHNESS_HOURS = 48.0
TOPIC_BOOST = 1.0
#: Sources from the most to the least specific: names an item nominated as strongly by two.
ATTRIBUTION = (
    "in_network",
    "topics",
    "sequential",
    "collaborative",
    "content",
    "fresh",
    "trending",
)
UNKNOWN_RELEVANCE = 0.3  # items the ranking model has not seen (posted after training)
PREFETCH_PAGES = 3  # pages ranked at once; the next ones are served from memory
MAX_PAGE = 100


class UnknownUser(LookupError):
    """The user is not in the store."""


class UnknownTarget(LookupError):
    """Feedback names an item or author that is not in the store."""


class BadCursor(ValueError):
    """A cursor that this server did not issue."""


@dataclass
class Controls:
    """A user's effective feed controls: their own settings over the platform defaults."""

    diversity: float
    social_weight: float
    freshness: float
    exploration: float
    followed_tags: list[str] = field(default_factory=list)
    muted_tags: list[str] = field(default_factory=list)
    muted_authors: list[str] = field(default_factory=list)


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


# -- controls, interests and feedback --------------------------------------------------------
def _user_pk(session: Session, user_id: str) -> int:
    pk = session.scalar(select(User.id).where(User.external_id == user_id))
    if pk is None:
        raise UnknownUser(f"user {user_id!r} not found")
    return pk


def _user_pk_or_new(session: Session, user_id: str, now: datetime) -> int:
    """The user's primary key; a user the store does not know yet is created (sign-up)."""
    pk = session.scalar(select(User.id).where(User.external_id == user_id))
    if pk is None:
        user = User(external_id=user_id, created=now, attributes={})
        session.add(user)
        session.flush()
        pk = user.id
    return pk


def controls(session: Session, user_id: str, defaults: FeedConfig) -> Controls:
    """The controls in force for ``user_id`` (defaults where the user set nothing)."""
    row = session.get(FeedSettings, _user_pk(session, user_id))
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
    row = _settings_row(session, _user_pk(session, user_id), now)
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
    _user_pk_or_new(session, user_id, now)
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
    pk = _user_pk(session, user_id)
    if kind in MUTE_KINDS:
        _change_mute(session, pk, kind, author_id, tag, now)
        return
    row = FeedFeedback(user_id=pk, kind=kind, tag=tag, created=now)
    if item_id is not None:
        row.item_id = session.scalar(select(Item.id).where(Item.external_id == item_id))
        if row.item_id is None:
            raise UnknownTarget(f"item {item_id!r} not found")
    if author_id is not None:
        row.author_id = session.scalar(select(User.id).where(User.external_id == author_id))
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


@dataclass
class _Context:
    user_pk: int
    rows: list  # the user's events (item, type, value, time)
    touched: set[str]
    ties: dict[int, float]  # followed/befriended/trusted user pk -> summed edge weight
    excluded: Exclusions
    not_interested: list[tuple[str, datetime]]
    shown_in_session: set[str]
    controls: Controls


def _context(
    session: Session, user_id: str, browsing: str, defaults: FeedConfig, now: datetime,
    impressions: ImpressionBuffer | None = None, page: int = 1,
) -> _Context:  # fmt: skip
    pk = _user_pk_or_new(session, user_id, now)
    # before any write of this transaction (an experiment's exposure): it may wait for another
    # worker's impression write, which SQLite's write lock would hold up
    shown = _shown_in_session(session, pk, browsing, page, impressions)
    rows = user_event_rows(session, user_id)
    ties: dict[int, float] = defaultdict(float)
    for target, weight in session.execute(
        select(SocialEdge.target_id, SocialEdge.weight).where(
            SocialEdge.source_id == pk, SocialEdge.type.in_(queries.CHOSEN_TIES)
        )
    ):
        ties[target] += float(weight or 1.0)
    not_interested = [
        (item, as_utc(created))
        for item, created in session.execute(
            select(Item.external_id, FeedFeedback.created)
            .join(Item, FeedFeedback.item_id == Item.id)
            .where(FeedFeedback.user_id == pk, FeedFeedback.kind == "not_interested")
            .order_by(FeedFeedback.created, FeedFeedback.id)
        )
    ]
    settings_row = session.get(FeedSettings, pk)
    # a running A/B test's arm replaces platform defaults; the user's own settings still win
    variant = arm_overrides(session, user_id, now)
    ctl = _controls(
        session, settings_row, defaults.model_copy(update=variant) if variant else defaults
    )
    excluded = exclusions(session, pk)
    return _Context(
        user_pk=pk,
        rows=rows,
        touched={item for item, *_ in rows},
        ties=dict(ties),
        excluded=excluded,
        not_interested=not_interested,
        shown_in_session=shown,
        controls=ctl,
    )


# -- ranking and mixing ----------------------------------------------------------------------
def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _percentiles(values: dict[str, float]) -> dict[str, float]:
    """Each value's rank among them in (0, 1] (ties share their average rank)."""
    if not values:
        return {}
    ranks = rankdata(list(values.values()), method="average") / len(values)
    return dict(zip(values, ranks.tolist(), strict=True))


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
    impressions: ImpressionBuffer | None = None,
) -> FeedPage:
    """One page of ``user_id``'s feed; stores its impressions (the caller commits).

    ``cache`` (one per serving process) keeps the catalogue, per-user model candidates and
    new-item exposure between requests; without it nothing is kept. ``promoted`` items (the
    creatives of running ad campaigns) are never organic: they reach users as ads.
    ``impressions`` (one per serving process) writes the impressions after the commit, in
    batches; without it they are written in the caller's transaction."""
    rng = rng or np.random.default_rng()
    cache = cache or uncached()
    browsing, page = decode_cursor(cursor) if cursor else (secrets.token_urlsafe(12), 1)
    if cursor and not explain:
        served = cached_page(session, cache, user_id, n, cursor, now, promoted, impressions)
        if served is not None:
            return served
    ctx = _context(session, user_id, browsing, defaults, now, impressions, page)
    ctl = ctx.controls
    k = defaults.candidates_per_source
    snapshot = cache.catalogue.get(session)
    stamp = now.timestamp()

    by_source: dict[str, dict[str, float]] = {}
    ranking_name = None
    with contextlib.suppress(ModelUnavailable):
        ranking_name = resolve_model(models, defaults.ranking_model)
    ranking = None
    if ranking_name is not None:
        ranking = sources.scored_items(models, cache, ranking_name, user_id, ctx.rows, weights)
        if ranking is not None:
            by_source["collaborative"] = sources.top_strengths(ranking, k)
    for source, name in (("sequential", SEQUENTIAL_MODEL), ("content", sources.CONTENT_MODEL)):
        if name != ranking_name and ctx.rows:
            scored = sources.scored_items(models, cache, name, user_id, ctx.rows, weights)
            if scored is not None:
                by_source[source] = sources.top_strengths(scored, k // 2)
    trending = sources.scored_items(
        models, cache, sources.TRENDING_MODEL, user_id, ctx.rows, weights
    )
    if trending is not None:
        by_source["trending"] = sources.top_strengths(trending, k)
    else:
        minute = int(stamp // 60)
        by_source["trending"] = cache.candidates(
            ("popular", minute), lambda: sources.popular(session, now, k)
        )
    by_source["in_network"], tie_who = sources.in_network(
        session, cache, ctx.ties, weights, now, defaults.in_network_days, k
    )
    # "recent" ends at the newest post when the store is historic (an imported dump), so
    # followed topics (onboarding) and new content are not empty there
    newest = float(snapshot.created[snapshot.newest_first[0]]) if len(snapshot.ids) else stamp
    recent_end = min(stamp, newest)
    recent = snapshot.created_since(recent_end - sources.TOPIC_WINDOW_DAYS * 86400.0, 20 * k)
    unseen = sources.new_content(models, cache, snapshot, recent, ctx.rows, weights, k // 2)
    by_source["content"] = {**unseen, **by_source.get("content", {})}
    by_source["topics"] = sources.topics(snapshot, recent, ctl.followed_tags, k)
    by_source["fresh"] = sources.fresh(
        session,
        cache,
        snapshot,
        recent,
        stamp - defaults.fresh_days * 86400.0,
        defaults.exploration_budget,
        weights,
        rng,
        k,
    )

    nominated: dict[str, str] = {}  # item -> the source that nominated it most strongly
    strongest: dict[str, float] = {}
    for source in ATTRIBUTION:  # on equal strength the more specific source names the item
        for item, strength in by_source.get(source, {}).items():
            if strength > strongest.get(item, -1.0):
                nominated[item], strongest[item] = source, strength
    info = {item: meta for item in nominated if (meta := snapshot.summary(item)) is not None}
    keep = [
        item
        for item in nominated
        if item in info
        and snapshot.pks[snapshot.index[item]] not in snapshot.removed
        and item not in ctx.touched
        and item not in ctx.shown_in_session
        and item not in promoted
        and info[item]["author_id"] != user_id
        and ctx.excluded.allows(item, info[item]["author_id"], info[item]["tags"])
    ]
    new_since = stamp - defaults.new_creator_days * 86400.0
    new_creators = {
        a
        for a in {info[i]["author_id"] for i in keep}
        if a is not None and snapshot.author_first.get(a, float("-inf")) >= new_since
    }

    pct = _percentiles(_primary_scores(ranking, trending, by_source["trending"], keep))
    not_interested = [(snapshot.summary(item), when) for item, when in ctx.not_interested]
    followed = set(ctl.followed_tags)
    relevance: dict[str, float] = {}
    for item in keep:
        meta = info[item]
        tags = set(meta["tags"])
        age_h = max((now - meta["created"]).total_seconds() / 3600.0, 0.0)
        score = pct.get(item, UNKNOWN_RELEVANCE)
        score += ctl.social_weight * by_source["in_network"].get(item, 0.0)
        score += ctl.freshness * math.exp(-age_h / FRESHNESS_HOURS)
        score += TOPIC_BOOST * (len(tags & followed) / len(followed) if followed else 0.0)
        score -= _suppression(item, meta, tags, not_interested, now, defaults)
        relevance[item] = score
    keep = _best_per_thread(keep, relevance, snapshot, defaults.max_per_thread)

    ahead = n * PREFETCH_PAGES
    chosen = _place(
        keep, relevance, info, by_source["fresh"], new_creators, ctl, defaults, ahead, n
    )
    items = [
        FeedItem(
            item_id=item,
            score=round(relevance[item], 6),
            source=(source := "exploration" if explored else nominated[item]),
            reason=_reason(source, item, tie_who, info[item], followed),
            title=info[item]["title"],
            author_id=info[item]["author_id"],
            tags=list(info[item]["tags"]),
            created=info[item]["created"],
            new_creator=info[item]["author_id"] in new_creators,
        )
        for item, explored in chosen
    ]
    model = ranking_name if ranking is not None else None
    items = _still_allowed(session, ctx.user_pk, user_id, browsing, items, impressions)
    items, later = items[:n], items[n:]
    if later:
        _, state = _signature(session, user_id)
        cache.keep_pages(browsing, _pack(user_id, page + 1, state, later, model))
    items = _record_impressions(session, ctx.user_pk, browsing, page, items, now, impressions)
    if explain and ranking is not None and ranking.personal:
        view = sources.model_view(models, ranking.name, user_id, ctx.rows, weights)
        if view is not None:
            _explain(session, view, items)
    return _page(user_id, browsing, page, items, model)


def _page(
    user_id: str, browsing: str, page: int, items: list[FeedItem], model: str | None
) -> FeedPage:
    return FeedPage(
        user_id=user_id,
        session=browsing,
        page=page,
        items=items,
        next_cursor=encode_cursor(browsing, page + 1),
        sources=dict(Counter(i.source for i in items)),
        model=model,
    )


def _pack(
    user_id: str, page: int, signature: str, items: list[FeedItem], model: str | None
) -> dict:
    """Unserved ranked items of a session, to be served from ``page`` on, as JSON-able data
    (for a shared cache)."""
    return {
        "user_id": user_id,
        "page": page,
        "signature": signature,
        "model": model,
        "items": _pack_items(items),
    }


def _pack_items(items: list[FeedItem]) -> list[dict]:
    return [{**vars(i), "created": i.created.isoformat() if i.created else None} for i in items]


def _unpack(items: list[dict]) -> list[FeedItem]:
    return [
        FeedItem(**{**i, "created": datetime.fromisoformat(i["created"]) if i["created"] else None})
        for i in items
    ]


_MINE = User.id
#: A user's primary key and feed state; built once (per-request statement building is a large
#: share of a cached page's cost).
_USER_STATE = select(
    User.id,
    select(func.count()).where(Event.user_id == _MINE).scalar_subquery(),
    select(func.max(Event.timestamp)).where(Event.user_id == _MINE).scalar_subquery(),
    select(func.max(FeedFeedback.id)).where(FeedFeedback.user_id == _MINE).scalar_subquery(),
    select(FeedSettings.updated).where(FeedSettings.user_id == _MINE).scalar_subquery(),
).where(User.external_id == bindparam("user_id"))


def _signature(session: Session, user_id: str) -> tuple[int, str]:
    """The user's primary key and what a prefetched page depends on (their events, feedback
    and controls), in one query."""
    row = session.execute(_USER_STATE, {"user_id": user_id}).first()
    if row is None:
        raise UnknownUser(f"user {user_id!r} not found")
    return row[0], json.dumps([str(v) for v in row[1:]])


def _shown_in_session(
    session: Session, user_pk: int, browsing: str, page: int,
    impressions: ImpressionBuffer | None,
) -> set[str]:  # fmt: skip
    """Items shown on the earlier pages of the browsing session: stored impressions and, from
    ``impressions``, those this process has not written yet.

    Another worker writes its pages' impressions within its flush period: for page ``page``
    asked sooner, this waits (at most that period and a second) until the previous page's are
    stored, so a session never repeats an item whichever worker served its pages."""
    wait_until = time.monotonic() + (
        impressions.flush_seconds + 1.0 if impressions is not None else 0.0
    )
    while True:
        pending = impressions.pending(user_pk, browsing) if impressions is not None else {}
        stored = session.execute(_SHOWN, {"user_pk": user_pk, "browsing": browsing}).all()
        positions = [position for _, position in stored] + list(pending.values())
        previous = page - 2  # the previous page's positions, divided by MAX_PAGE
        if page == 1 or any(p // MAX_PAGE == previous for p in positions):
            break
        if time.monotonic() >= wait_until:
            break
        time.sleep(0.05)
    shown = {item for item, _ in stored}
    if pending:
        shown |= set(session.scalars(select(Item.external_id).where(Item.id.in_(pending))))
    return shown


_SHOWN = (
    select(Item.external_id, FeedImpression.position)
    .join(FeedImpression, FeedImpression.item_id == Item.id)
    .where(
        FeedImpression.user_id == bindparam("user_pk"),
        FeedImpression.session == bindparam("browsing"),
    )
)


def cached_page(
    session: Session,
    cache: FeedCache,
    user_id: str,
    n: int,
    cursor: str,
    now: datetime,
    promoted: Collection[str] = frozenset(),
    impressions: ImpressionBuffer | None = None,
) -> FeedPage | None:
    """The next page of a browsing session from its prefetched ranking, if the user's state is
    unchanged since it was ranked (a new event, feedback or control change ranks afresh);
    None when there is nothing to serve from the cache. Stores the page's impressions.

    Cheap (one query plus the impressions), so the API answers it without waiting for page
    builds. Taking the held items removes them (atomically, also in Redis), so no other
    request of the session can serve them again; held items meant for another page number
    are stale (another worker without a shared cache served the pages between)."""
    browsing, page = decode_cursor(cursor)
    held = cache.take_pages(browsing)
    if held is None or held["user_id"] != user_id or held["page"] != page:
        return None
    user_pk, state = _signature(session, user_id)
    if state != held["signature"]:
        return None
    items = _still_allowed(session, user_pk, user_id, browsing, _unpack(held["items"]), impressions)
    items, later = items[:n], items[n:]
    if later:
        cache.keep_pages(browsing, {**held, "page": page + 1, "items": _pack_items(later)})
    items = [it for it in items if it.item_id not in promoted]  # a campaign started since
    items = _record_impressions(session, user_pk, browsing, page, items, now, impressions)
    if not items:
        return None
    return _page(user_id, browsing, page, items, held["model"])


#: Which of some items (``ids``) a user may no longer be shown: touched, hidden, shown earlier in
#: the browsing session (stored, or ``pending`` in the impression buffer) or taken down by
#: moderation (built once, like ``_USER_STATE``).
_ITEM_IN = Item.external_id.in_(bindparam("ids", expanding=True))
_EXCLUDED_ITEMS = union(
    select(Item.external_id)
    .join(Event, Event.item_id == Item.id)
    .where(Event.user_id == bindparam("user_pk"), _ITEM_IN),
    select(Item.external_id)
    .join(FeedFeedback, FeedFeedback.item_id == Item.id)
    .where(FeedFeedback.user_id == bindparam("user_pk"), FeedFeedback.kind == "hide", _ITEM_IN),
    select(Item.external_id)
    .join(FeedImpression, FeedImpression.item_id == Item.id)
    .where(
        FeedImpression.user_id == bindparam("user_pk"),
        FeedImpression.session == bindparam("browsing"),
        _ITEM_IN,
    ),
    select(Item.external_id).where(Item.id.in_(bindparam("pending", expanding=True)), _ITEM_IN),
    select(Item.external_id)
    .join(ModerationDecision, ModerationDecision.item_id == Item.id)
    .where(ModerationDecision.outcome == "uphold", _ITEM_IN),
)


def _still_allowed(
    session: Session, user_pk: int, user_id: str, browsing: str, items: list[FeedItem],
    impressions: ImpressionBuffer | None = None,
) -> list[FeedItem]:  # fmt: skip
    """``items`` less those the user's filters exclude as the store stands now: touched, hidden,
    shown earlier in the session, taken down, their own posts, by an author they blocked or
    muted, on a muted topic. Every page passes here, ranked afresh or prefetched (a block or a
    take-down made after the ranking applies to its next pages)."""
    if not items:
        return items
    pending = impressions.pending(user_pk, browsing) if impressions is not None else {}
    gone = set(
        session.scalars(
            _EXCLUDED_ITEMS,
            {
                "ids": [i.item_id for i in items],
                "user_pk": user_pk,
                "browsing": browsing,
                "pending": list(pending),
            },
        )
    )
    rules = exclusions(session, user_pk)
    return [
        i
        for i in items
        if i.item_id not in gone
        and i.author_id != user_id
        and rules.allows(i.item_id, i.author_id, i.tags)
    ]


def _best_per_thread(
    keep: list[str], relevance: dict[str, float], snapshot: Snapshot, limit: int
) -> list[str]:
    """At most ``limit`` items of each thread (0: no limit), each thread's most relevant first."""
    if limit <= 0:
        return keep
    taken: Counter[str] = Counter()
    best = set()
    for item in sorted(keep, key=lambda i: -relevance[i]):
        thread = snapshot.thread(item)
        if taken[thread] < limit:
            taken[thread] += 1
            best.add(item)
    return [item for item in keep if item in best]


def _primary_scores(
    ranking: sources.Scored | None,
    trending: sources.Scored | None,
    popular: dict[str, float],
    keep: list,
) -> dict[str, float]:
    """The score each candidate is ranked by before boosts: the personal model's (items it
    knows but did not list rank below its list), else trending's, else store popularity.
    Items the model has never seen (posted after training) are left out."""
    primary = ranking if ranking is not None and ranking.personal else trending
    if primary is None:
        return {i: popular[i] for i in keep if i in popular}
    listed = primary.scores_of(keep)
    floor = float(primary.scores.min()) - 1.0 if len(primary.scores) else 0.0
    return {i: listed.get(i, floor) for i in keep if i in primary.index}


def _suppression(
    item: str, meta: dict, tags: set[str], not_interested: list, now: datetime, cfg: FeedConfig
) -> float:
    total = 0.0
    for other, when in not_interested:
        if other is None:
            continue
        fade = 0.5 ** ((now - when).total_seconds() / 3600.0 / cfg.feedback_half_life_hours)
        if other["author_id"] and other["author_id"] == meta["author_id"]:
            similarity = 0.6
        else:
            similarity = _jaccard(tags, set(other["tags"] or []))
        total += fade * similarity
    return min(total, 2.0)


def _place(
    keep: list[str],
    relevance: dict[str, float],
    info: dict[str, dict[str, Any]],
    fresh: dict[str, float],
    new_creators: set[str],
    ctl: Controls,
    cfg: FeedConfig,
    n: int,
    page_size: int,
) -> list[tuple[str, bool]]:
    """The page: (item, filled an exploration slot) in order (see :mod:`agora.feed.rerank`)."""
    if not keep:
        return []
    tag_codes: dict[str, int] = {}
    author_codes: dict[str, int] = {}
    rows, cols = [], []
    for r, item in enumerate(keep):
        for tag in set(info[item]["tags"] or []):
            rows.append(r)
            cols.append(tag_codes.setdefault(tag, len(tag_codes)))
    tags = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(keep), max(len(tag_codes), 1))
    )
    authors = np.array(
        [
            author_codes.setdefault(a, len(author_codes)) if a else -1
            for a in (info[i]["author_id"] for i in keep)
        ]
    )
    placement = rerank(
        np.array([relevance[i] for i in keep]),
        tags,
        n,
        diversity=ctl.diversity,
        authors=authors,
        author_decay=cfg.author_decay,
        explore=np.array([fresh.get(i, np.nan) for i in keep]),
        exploration=ctl.exploration,
        new_creator=np.array([info[i]["author_id"] in new_creators for i in keep]),
        new_creator_share=cfg.new_creator_share,
        page_size=page_size,
    )
    return [(keep[r], bool(e)) for r, e in zip(placement.order, placement.explored, strict=True)]


def _reason(source: str, item: str, who: dict, meta: dict, followed: set[str]) -> str:
    if source == "in_network":
        count = len(who.get(item, ()))
        return (
            f"{count} {'person' if count == 1 else 'people'} you follow or trust engaged or posted"  # noqa: E501
        )
    if source == "topics":
        hit = sorted(followed & set(meta["tags"] or []))
        return f"on a topic you follow: {', '.join(hit)}"
    return {
        "collaborative": "picked for you from what you engaged with",
        "sequential": "follows on from what you engaged with recently",
        "content": "similar in content to what you engaged with",
        "trending": "popular in the community now",
        "fresh": "new in the community",
        "exploration": "new post we are giving a first audience",
    }.get(source, "recommended for you")


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


def _record_impressions(
    session: Session, user_pk: int, browsing: str, page: int, items: list[FeedItem],
    now: datetime, impressions: ImpressionBuffer | None = None,
) -> list[FeedItem]:  # fmt: skip
    """Store the page's impressions: through ``impressions`` once the transaction commits, or
    in it when there is no buffer (scripts, tests). Returns the items still in the store (a
    catalogue snapshot may hold items deleted since)."""
    if not items:
        return items
    pks = dict(session.execute(_ITEM_PKS, {"ids": [i.item_id for i in items]}).all())
    items = [it for it in items if it.item_id in pks]
    offset = (page - 1) * MAX_PAGE
    rows = [
        {
            "user_id": user_pk,
            "item_id": pks[it.item_id],
            "session": browsing,
            "position": offset + pos,
            "source": it.source,
            "served": now,
        }
        for pos, it in enumerate(items)
    ]
    if impressions is not None:
        impressions.add_after_commit(session, rows)
    elif rows:
        session.execute(_INSERT_IMPRESSIONS, rows)
    return items


_ITEM_PKS = select(Item.external_id, Item.id).where(
    Item.external_id.in_(bindparam("ids", expanding=True))
)
_INSERT_IMPRESSIONS = FeedImpression.__table__.insert()


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
