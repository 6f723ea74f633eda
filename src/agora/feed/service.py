"""The feed: candidate sources -> ranking -> filters and re-ranking -> mixing.

The shape of X's open-sourced home timeline, on the store's current state (a new event changes
the next page: everything is read at request time).

* **Sources** nominate items, each with a strength in [0, 1]: ``collaborative`` (the ranking
  model, the learned hybrid when trained), ``sequential`` (sasrec on the latest events),
  ``in_network`` (what people the user follows, befriended or trusts posted or engaged with),
  ``topics`` (new items on followed topics: onboarding interests), ``content`` (the content
  model), ``trending`` and ``fresh`` (new items, explored by Thompson sampling on engagement per
  impression, within an impression budget).
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
  of a session free of repeats and feeds the exploration bandit.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import secrets
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.config import FeedConfig
from agora.db import queries
from agora.db.tables import Event, Item, SocialEdge, User
from agora.features.store import event_weight
from agora.feed.models import FeedFeedback, FeedImpression, FeedSettings
from agora.feed.rerank import rerank
from agora.ingest.schemas import as_utc
from agora.models.explain import top_reasons
from agora.serving.service import (
    ModelStore,
    ModelUnavailable,
    resolve_model,
    user_event_rows,
    user_history,
)

SEQUENTIAL_MODEL = "sasrec"
CONTENT_MODEL = "content"
TRENDING_MODEL = "trending"
TOPIC_WINDOW_DAYS = 30.0
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
def encode_cursor(session_id: str, page: int) -> str:
    raw = json.dumps({"s": session_id, "p": page}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    """(session, page) of a cursor from :func:`encode_cursor`; BadCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        session_id, page = data["s"], data["p"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadCursor(
            "cursor is not one this server issued; omit it for the first page"
        ) from None
    if not isinstance(session_id, str) or not isinstance(page, int) or page < 1:
        raise BadCursor("cursor is not one this server issued; omit it for the first page")
    if not 8 <= len(session_id) <= 64:
        raise BadCursor("cursor is not one this server issued; omit it for the first page")
    return session_id, page


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


def _context(session: Session, user_id: str, browsing: str, defaults: FeedConfig) -> _Context:
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
            session.execute(select(User.id, User.external_id).where(User.id.in_(author_pks)))
            .tuples()
            .all()
        )
    settings_row = session.get(FeedSettings, pk)
    ctl = _controls(settings_row, defaults)
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
    shown = set(
        session.scalars(
            select(Item.external_id)
            .join(FeedImpression, FeedImpression.item_id == Item.id)
            .where(FeedImpression.user_id == pk, FeedImpression.session == browsing)
        )
    )
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


# -- candidate sources -----------------------------------------------------------------------
@dataclass
class _ModelView:
    """One model's scores over its items for this user (history items at -inf)."""

    name: str
    item_ids: np.ndarray
    index: dict[str, int]
    scores: np.ndarray
    personal: bool
    loaded: Any = None
    history: Any = None


def _model_view(
    models: ModelStore, name: str, user_id: str, rows: list, weights: Mapping[str, float]
) -> _ModelView | None:
    """Scores of a trained model for the user; None if untrained or it cannot personalise."""
    try:
        loaded = models.get(name)
    except ModelUnavailable:
        return None
    history = user_history(loaded, rows, weights)
    user_index = loaded.user_index.get(user_id, -1)
    personal = history.strength.nnz > 0 or user_index >= 0
    if not personal and loaded.model.name not in (TRENDING_MODEL,):
        return None
    scores = np.asarray(
        loaded.model.score(np.array([user_index]), history.strength, history.times),
        dtype=np.float64,
    ).ravel()
    scores[history.touched] = -np.inf
    scores[~np.isfinite(scores)] = -np.inf
    return _ModelView(name, loaded.item_ids, loaded.item_index, scores, personal, loaded, history)


def _top(view: _ModelView, k: int) -> dict[str, float]:
    """Top ``k`` items of a model view with strengths in (0, 1] by rank."""
    finite = np.flatnonzero(np.isfinite(view.scores))
    if len(finite) == 0:
        return {}
    k = min(k, len(finite))
    top = finite[np.argpartition(-view.scores[finite], k - 1)[:k]]
    top = top[np.argsort(-view.scores[top], kind="stable")]
    return {str(view.item_ids[i]): 1.0 - r / len(top) for r, i in enumerate(top)}


def _in_network(
    session: Session, ties: dict[int, float], weights: Mapping[str, float], now: datetime,
    days: float, k: int,
) -> tuple[dict[str, float], dict[str, set[int]]]:  # fmt: skip
    """Items the user's ties engaged with or posted lately: strength and who."""
    if not ties:
        return {}, {}
    since = now - timedelta(days=days)
    strength: dict[str, float] = defaultdict(float)
    who: dict[str, set[int]] = defaultdict(set)
    half_life = days / 4 * 86400.0
    for item, etype, value, ts, user in session.execute(
        select(Item.external_id, Event.type, Event.value, Event.timestamp, Event.user_id)
        .join(Item, Event.item_id == Item.id)
        .where(Event.user_id.in_(list(ties)), Event.timestamp >= since)
        .order_by(Event.timestamp.desc())
        .limit(20 * k)
    ):
        age = (now - as_utc(ts)).total_seconds()
        w = event_weight(etype, value, weights)
        if w > 0:
            strength[item] += ties[user] * w * 0.5 ** (max(age, 0.0) / half_life)
            who[item].add(user)
    for item, author, created in session.execute(
        select(Item.external_id, Item.author_id, Item.created)
        .where(Item.author_id.in_(list(ties)), Item.created >= since)
        .order_by(Item.created.desc())
        .limit(5 * k)
    ):
        age = (now - as_utc(created)).total_seconds()
        strength[item] += 2.0 * ties[author] * 0.5 ** (max(age, 0.0) / half_life)
        who[item].add(author)
    return _scaled(strength, k), who


def _scaled(raw: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` strongest, divided by the strongest (so 1 is the best of the source)."""
    best = sorted(raw.items(), key=lambda kv: -kv[1])[:k]
    top = best[0][1] if best else 1.0
    return {item: value / top for item, value in best if value > 0}


def _popular(session: Session, now: datetime, k: int) -> dict[str, float]:
    """Most engaged items of the last 30 days (all time if none): trending before training."""
    for since in (now - timedelta(days=TOPIC_WINDOW_DAYS), None):
        stmt = select(Item.external_id, func.count()).join(Event, Event.item_id == Item.id)
        if since is not None:
            stmt = stmt.where(Event.timestamp >= since)
        rows = session.execute(
            stmt.group_by(Item.external_id).order_by(func.count().desc()).limit(k)
        )
        found = {item: float(count) for item, count in rows}
        if found:
            return _scaled(found, k)
    return {}


def _recent_items(session: Session, since: datetime, limit: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Item.id, Item.external_id, Item.tags, Item.created)
        .where(Item.created >= since)
        .order_by(Item.created.desc(), Item.id.desc())
        .limit(limit)
    )
    return [
        {"pk": pk, "item_id": ext, "tags": tags or [], "created": as_utc(c)}
        for pk, ext, tags, c in rows
    ]  # noqa: E501


def _topics(recent: list[dict[str, Any]], followed: list[str], k: int) -> dict[str, float]:
    if not followed:
        return {}
    wanted = set(followed)
    raw = {
        r["item_id"]: len(wanted & set(r["tags"])) / len(wanted)
        for r in recent
        if wanted & set(r["tags"])
    }
    return _scaled(raw, k)


def _fresh(
    session: Session, recent: list[dict[str, Any]], since: datetime, budget: int,
    weights: Mapping[str, float], rng: np.random.Generator, k: int,
) -> dict[str, float]:  # fmt: skip
    """Thompson draws ``Beta(1 + engaged, 1 + shown - engaged)`` for new items under budget."""
    fresh = [r for r in recent if r["created"] >= since]
    if not fresh:
        return {}
    pks = [r["pk"] for r in fresh]
    shown = dict(
        session.execute(
            select(FeedImpression.item_id, func.count())
            .where(FeedImpression.item_id.in_(pks))
            .group_by(FeedImpression.item_id)
        ).all()
    )
    engaged: Counter[int] = Counter()
    for item, etype, value in session.execute(
        select(Event.item_id, Event.type, Event.value).where(Event.item_id.in_(pks))
    ):
        if event_weight(etype, value, weights) > 0 and etype not in ("view", "click"):
            engaged[item] += 1
    draws = {}
    for r in fresh:
        n_shown = shown.get(r["pk"], 0)
        if n_shown >= budget:
            continue
        hits = min(engaged[r["pk"]], n_shown) if n_shown else engaged[r["pk"]]
        draws[r["item_id"]] = float(rng.beta(1.0 + hits, 1.0 + max(n_shown - hits, 0)))
    return dict(sorted(draws.items(), key=lambda kv: -kv[1])[:k])


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
) -> FeedPage:
    """One page of ``user_id``'s feed; stores its impressions (the caller commits)."""
    rng = rng or np.random.default_rng()
    browsing, page = decode_cursor(cursor) if cursor else (secrets.token_urlsafe(12), 1)
    ctx = _context(session, user_id, browsing, defaults)
    ctl = ctx.controls
    k = defaults.candidates_per_source

    sources: dict[str, dict[str, float]] = {}
    ranking: _ModelView | None = None
    ranking_name = None
    with contextlib.suppress(ModelUnavailable):
        ranking_name = resolve_model(models, defaults.ranking_model)
    if ranking_name is not None:
        ranking = _model_view(models, ranking_name, user_id, ctx.rows, weights)
        if ranking is not None:
            sources["collaborative"] = _top(ranking, k)
    for source, name in (("sequential", SEQUENTIAL_MODEL), ("content", CONTENT_MODEL)):
        if name != ranking_name and ctx.rows:
            view = _model_view(models, name, user_id, ctx.rows, weights)
            if view is not None:
                sources[source] = _top(view, k // 2)
    trending = _model_view(models, TRENDING_MODEL, user_id, ctx.rows, weights)
    sources["trending"] = _top(trending, k) if trending is not None else _popular(session, now, k)
    sources["in_network"], tie_who = _in_network(
        session, ctx.ties, weights, now, defaults.in_network_days, k
    )
    recent = _recent_items(session, now - timedelta(days=TOPIC_WINDOW_DAYS), 20 * k)
    sources["topics"] = _topics(recent, ctl.followed_tags, k)
    sources["fresh"] = _fresh(
        session,
        recent,
        now - timedelta(days=defaults.fresh_days),
        defaults.exploration_budget,
        weights,
        rng,
        k,
    )

    nominated: dict[str, str] = {}  # item -> the source that nominated it most strongly
    strongest: dict[str, float] = {}
    for source in ATTRIBUTION:  # on equal strength the more specific source names the item
        for item, strength in sources.get(source, {}).items():
            if strength > strongest.get(item, -1.0):
                nominated[item], strongest[item] = source, strength
    info = queries.item_summaries(session, nominated)
    blocked = ctx.blocked_authors | ctx.muted_authors
    user_item = {r[0] for r in ctx.rows}
    keep = [
        item
        for item in nominated
        if item in info
        and item not in ctx.touched
        and item not in user_item
        and item not in ctx.hidden
        and item not in ctx.shown_in_session
        and info[item]["author_id"] != user_id
        and info[item]["author_id"] not in blocked
        and not (ctx.muted_tags & set(info[item]["tags"] or []))
    ]
    new_creators = _new_creators(
        session, {info[i]["author_id"] for i in keep}, now, defaults.new_creator_days
    )

    primary = ranking if ranking is not None and ranking.personal else trending
    if primary is not None:
        at = primary.index
        known = {
            i: float(primary.scores[at[i]])
            for i in keep
            if i in at and np.isfinite(primary.scores[at[i]])
        }
    else:  # nothing trained yet: the store's own popularity
        known = {i: sources["trending"][i] for i in keep if i in sources["trending"]}
    pct = _percentiles(known)
    not_interested = [
        (info.get(item) or queries.item_summaries(session, [item]).get(item), when)
        for item, when in ctx.not_interested
    ]
    followed = set(ctl.followed_tags)
    relevance: dict[str, float] = {}
    for item in keep:
        meta = info[item]
        tags = set(meta["tags"] or [])
        age_h = max((now - meta["created"]).total_seconds() / 3600.0, 0.0)
        score = pct.get(item, UNKNOWN_RELEVANCE)
        score += ctl.social_weight * sources["in_network"].get(item, 0.0)
        score += ctl.freshness * math.exp(-age_h / FRESHNESS_HOURS)
        score += TOPIC_BOOST * (len(tags & followed) / len(followed) if followed else 0.0)
        score -= _suppression(item, meta, tags, not_interested, now, defaults)
        relevance[item] = score

    chosen = _place(keep, relevance, info, sources["fresh"], new_creators, ctl, defaults, n)
    chosen = [(item, "exploration" if explored else nominated[item]) for item, explored in chosen]
    items = []
    for item, source in chosen:
        meta = info[item]
        items.append(
            FeedItem(
                item_id=item,
                score=round(relevance[item], 6),
                source=source,
                reason=_reason(source, item, tie_who, meta, followed),
                title=meta["title"],
                author_id=meta["author_id"],
                tags=list(meta["tags"] or []),
                created=meta["created"],
                new_creator=meta["author_id"] in new_creators,
            )
        )
    if explain and ranking is not None and ranking.personal:
        _explain(session, ranking, items)
    _record_impressions(session, ctx.user_pk, browsing, page, items, now)
    return FeedPage(
        user_id=user_id,
        session=browsing,
        page=page,
        items=items,
        next_cursor=encode_cursor(browsing, page + 1),
        sources=dict(Counter(i.source for i in items)),
        model=ranking_name if ranking is not None else None,
    )


def _new_creators(session: Session, authors: set, now: datetime, days: float) -> set[str]:
    """Authors whose first item is younger than ``days``."""
    authors = {a for a in authors if a}
    if not authors:
        return set()
    since = now - timedelta(days=days)
    rows = session.execute(
        select(User.external_id, func.min(Item.created))
        .join(Item, Item.author_id == User.id)
        .where(User.external_id.in_(list(authors)))
        .group_by(User.external_id)
    )
    return {author for author, first in rows if as_utc(first) >= since}


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


def _explain(session: Session, view: _ModelView, items: list[FeedItem]) -> None:
    known = [it for it in items if it.item_id in view.index]
    if not known or view.history is None or view.history.strength.nnz == 0:
        return
    indices = np.array([view.index[it.item_id] for it in known], dtype=np.int64)
    history = sp.csr_matrix(view.history.strength)
    reasons = top_reasons(view.loaded.model, history, indices, times=view.history.times)
    past = {view.item_ids[j] for per_item in reasons for j, _ in per_item}
    titles = queries.item_summaries(session, past)
    for it, per_item in zip(known, reasons, strict=True):
        it.because = [
            {
                "item_id": view.item_ids[j],
                "title": titles.get(view.item_ids[j], {}).get("title"),
                "share": round(share, 4),
            }
            for j, share in per_item
        ]
        if it.because and it.source in ("collaborative", "sequential", "content"):
            first = it.because[0]
            it.reason = f"because you engaged with {first['title'] or first['item_id']!r}"


def _record_impressions(
    session: Session, user_pk: int, browsing: str, page: int, items: list[FeedItem],
    now: datetime,
) -> None:  # fmt: skip
    if not items:
        return
    pks = dict(
        session.execute(
            select(Item.external_id, Item.id).where(
                Item.external_id.in_([i.item_id for i in items])
            )
        ).all()
    )
    offset = (page - 1) * MAX_PAGE
    session.add_all(
        FeedImpression(
            user_id=user_pk,
            item_id=pks[it.item_id],
            session=browsing,
            position=offset + pos,
            source=it.source,
            served=now,
        )
        for pos, it in enumerate(items)
        if it.item_id in pks
    )
    session.flush()


def source_shares(session: Session, since: datetime) -> dict[str, int]:
    """Impressions per candidate source since ``since`` (what the feed has been made of)."""
    rows = session.execute(
        select(FeedImpression.source, func.count())
        .where(FeedImpression.served >= since)
        .group_by(FeedImpression.source)
    )
    return dict(rows.all())
