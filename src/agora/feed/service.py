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
  same browsing session; authors they muted or blocked; muted topics.
* **Re-ranking** (:mod:`agora.feed.rerank`): greedy MMR on tags with ``diversity``, same-author
  decay, every ``1 / exploration``-th slot to the best Thompson draw among fresh items, and at
  least ``new_creator_share`` of the page to new creators when there are candidates from them.
* **Pages**: the first page opens a browsing session; ``next_cursor`` names it and the next page
  number. Served items are stored as impressions (session, position, source), which keeps pages
  of a session free of repeats and feeds the exploration bandit. Each ranking places
  ``PREFETCH_PAGES`` pages; the next ones are served from the cache while the user's events,
  feedback and controls are unchanged (:mod:`agora.feed.cache`).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from agora.config import FeedConfig
from agora.db import queries
from agora.db.tables import Event, Item, SocialEdge, User
from agora.experiments.service import arm_overrides
from agora.feed import sources
from agora.feed.cache import FeedCache, uncached
from agora.feed.models import FeedFeedback, FeedImpression, FeedSettings
from agora.feed.rerank import rerank
from agora.ingest.schemas import as_utc
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


def controls(session: Session, user_id: str, defaults: FeedConfig) -> Controls:
    """The controls in force for ``user_id`` (defaults where the user set nothing)."""
    row = session.get(FeedSettings, _user_pk(session, user_id))
    return _controls(row, defaults)


def _controls(row: FeedSettings | None, defaults: FeedConfig) -> Controls:
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
    )


def update_controls(
    session: Session, user_id: str, changes: Mapping[str, Any], defaults: FeedConfig, now: datetime
) -> Controls:
    """Store the given controls (None resets one to the platform default); others unchanged."""
    pk = _user_pk(session, user_id)
    row = session.get(FeedSettings, pk)
    if row is None:
        row = FeedSettings(user_id=pk, followed_tags=[], muted_tags=[], updated=now)
        session.add(row)
    for name, value in changes.items():
        if name in ("followed_tags", "muted_tags"):
            value = list(dict.fromkeys(value or []))
        setattr(row, name, value)
    row.updated = now
    session.flush()
    return _controls(row, defaults)


def add_interests(
    session: Session, user_id: str, tags: list[str], defaults: FeedConfig, now: datetime
) -> Controls:
    """Onboarding: follow ``tags``. A user not in the store yet is created (sign-up)."""
    if session.scalar(select(User.id).where(User.external_id == user_id)) is None:
        session.add(User(external_id=user_id, created=now, attributes={}))
        session.flush()
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
    """Record one piece of negative feedback (or an unmute); the next feed applies it."""
    row = FeedFeedback(user_id=_user_pk(session, user_id), kind=kind, tag=tag, created=now)
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
@dataclass
class _Context:
    user_pk: int
    rows: list  # the user's events (item, type, value, time)
    touched: set[str]
    ties: dict[int, float]  # followed/befriended/trusted user pk -> summed edge weight
    blocked_authors: set[str]
    hidden: set[str]
    muted_authors: set[str]
    muted_tags: set[str]
    not_interested: list[tuple[str, datetime]]
    shown_in_session: set[str]
    controls: Controls


def _context(
    session: Session, user_id: str, browsing: str, defaults: FeedConfig, now: datetime
) -> _Context:
    pk = _user_pk(session, user_id)
    rows = user_event_rows(session, user_id)
    ties: dict[int, float] = defaultdict(float)
    blocked_pks = set()
    for target, etype, weight in session.execute(
        select(SocialEdge.target_id, SocialEdge.type, SocialEdge.weight).where(
            SocialEdge.source_id == pk
        )
    ):
        if etype == "block":
            blocked_pks.add(target)
        elif etype in queries.CHOSEN_TIES:
            ties[target] += float(weight or 1.0)
    user_ext = {}
    author_pks = set(blocked_pks)
    feedback = session.execute(
        select(FeedFeedback.kind, Item.external_id, FeedFeedback.author_id, FeedFeedback.tag)
        .add_columns(FeedFeedback.created)
        .outerjoin(Item, FeedFeedback.item_id == Item.id)
        .where(FeedFeedback.user_id == pk)
        .order_by(FeedFeedback.created, FeedFeedback.id)
    ).all()
    author_pks |= {a for _, _, a, _, _ in feedback if a is not None}
    if author_pks:
        user_ext = dict(
            tuple(row)
            for row in session.execute(
                select(User.id, User.external_id).where(User.id.in_(author_pks))
            )
        )
    settings_row = session.get(FeedSettings, pk)
    # a running A/B test's arm replaces platform defaults; the user's own settings still win
    variant = arm_overrides(session, user_id, now)
    ctl = _controls(settings_row, defaults.model_copy(update=variant) if variant else defaults)
    hidden: set[str] = set()
    muted_authors: set[str] = set()
    muted_tags: set[str] = set(ctl.muted_tags)
    not_interested: list[tuple[str, datetime]] = []
    for kind, item, author, tag, created in feedback:
        if kind == "hide" and item:
            hidden.add(item)
        elif kind == "not_interested" and item:
            not_interested.append((item, as_utc(created)))
        elif kind == "mute_author" and author is not None:
            muted_authors.add(user_ext[author])
        elif kind == "unmute_author" and author is not None:
            muted_authors.discard(user_ext[author])
        elif kind == "mute_tag" and tag:
            muted_tags.add(tag)
        elif kind == "unmute_tag" and tag:
            muted_tags.discard(tag)
    shown = _shown_in_session(session, pk, browsing)
    return _Context(
        user_pk=pk,
        rows=rows,
        touched={item for item, *_ in rows},
        ties=dict(ties),
        blocked_authors={user_ext[a] for a in blocked_pks},
        hidden=hidden,
        muted_authors=muted_authors,
        muted_tags=muted_tags,
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
) -> FeedPage:
    """One page of ``user_id``'s feed; stores its impressions (the caller commits).

    ``cache`` (one per serving process) keeps the catalogue, per-user model candidates and
    new-item exposure between requests; without it nothing is kept."""
    rng = rng or np.random.default_rng()
    cache = cache or uncached()
    browsing, page = decode_cursor(cursor) if cursor else (secrets.token_urlsafe(12), 1)
    if cursor and not explain:
        served = cached_page(session, cache, user_id, n, cursor, now)
        if served is not None:
            return served
    ctx = _context(session, user_id, browsing, defaults, now)
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
    recent = snapshot.created_since(stamp - sources.TOPIC_WINDOW_DAYS * 86400.0, 20 * k)
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
    blocked = ctx.blocked_authors | ctx.muted_authors
    keep = [
        item
        for item in nominated
        if item in info
        and snapshot.pks[snapshot.index[item]] not in snapshot.removed
        and item not in ctx.touched
        and item not in ctx.hidden
        and item not in ctx.shown_in_session
        and info[item]["author_id"] != user_id
        and info[item]["author_id"] not in blocked
        and not ctx.muted_tags.intersection(info[item]["tags"])
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
    items, later = items[:n], items[n:]
    if later:
        _, state = _signature(session, user_id)
        cache.keep_pages(browsing, _pack(user_id, page + 1, state, later, model))
    items = _record_impressions(session, ctx.user_pk, browsing, page, items, now)
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
        "items": [
            {**vars(i), "created": i.created.isoformat() if i.created else None} for i in items
        ],
    }


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


def _shown_in_session(session: Session, user_pk: int, browsing: str) -> set[str]:
    return set(
        session.scalars(
            select(Item.external_id)
            .join(FeedImpression, FeedImpression.item_id == Item.id)
            .where(FeedImpression.user_id == user_pk, FeedImpression.session == browsing)
        )
    )


def cached_page(
    session: Session, cache: FeedCache, user_id: str, n: int, cursor: str, now: datetime
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
    items, later = held["items"][:n], held["items"][n:]
    if later:
        cache.keep_pages(browsing, {**held, "page": page + 1, "items": later})
    items = _record_impressions(session, user_pk, browsing, page, _unpack(items), now)
    if not items:
        return None
    return _page(user_id, browsing, page, items, held["model"])


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
    now: datetime,
) -> list[FeedItem]:  # fmt: skip
    """Store the page's impressions; returns the items still in the store (a catalogue
    snapshot may hold items deleted since)."""
    if not items:
        return items
    pks = dict(session.execute(_ITEM_PKS, {"ids": [i.item_id for i in items]}).all())
    items = [it for it in items if it.item_id in pks]
    offset = (page - 1) * MAX_PAGE
    if items:
        session.execute(
            _INSERT_IMPRESSIONS,
            [
                {
                    "user_id": user_pk,
                    "item_id": pks[it.item_id],
                    "session": browsing,
                    "position": offset + pos,
                    "source": it.source,
                    "served": now,
                }
                for pos, it in enumerate(items)
            ],
        )
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
