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
  of a session free of repeats and feeds the exploration bandit. Each ranking places
  ``PREFETCH_PAGES`` pages; the next ones are served from the cache while the user's events,
  feedback and controls are unchanged (:mod:`agora.feed.cache`).
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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from agora.config import FeedConfig
from agora.db import queries
from agora.db.tables import Event, Item, SocialEdge, User
from agora.features.store import event_weight
from agora.feed.cache import FeedCache, Snapshot, uncached
from agora.feed.models import FeedFeedback, FeedImpression, FeedSettings
from agora.feed.rerank import rerank
from agora.feed.retrieval import ItemIndex
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
RANK_DEPTH = 1000  # how many of a model's best items are kept per user
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
            tuple(row)
            for row in session.execute(
                select(User.id, User.external_id).where(User.id.in_(author_pks))
            )
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


@dataclass
class _Scored:
    """What the feed keeps of a model view: its best items (raw scores, best first)."""

    name: str
    top: dict[str, float]
    index: dict[str, int]  # every item the model knows
    personal: bool


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
    if not personal and loaded.model.name != TRENDING_MODEL:
        return None
    scores = np.asarray(
        loaded.model.score(np.array([user_index]), history.strength, history.times),
        dtype=np.float64,
    ).ravel()
    scores[history.touched] = -np.inf
    scores[~np.isfinite(scores)] = -np.inf
    return _ModelView(name, loaded.item_ids, loaded.item_index, scores, personal, loaded, history)


def _scored(
    models: ModelStore,
    cache: FeedCache,
    name: str,
    user_id: str,
    rows: list,
    weights: Mapping[str, float],
) -> _Scored | None:
    """A model's ``RANK_DEPTH`` best items for the user, from the cache while neither the
    model version nor the user's events changed (trending: one list for everybody)."""
    version = models.versions().get(name)
    if version is None:
        return None
    if name == TRENDING_MODEL:
        key: tuple = (name, version)
        user_id, rows = "", []
    else:
        latest = max((r[3] for r in rows), default=None)
        key = (name, version, user_id, len(rows), latest)

    def compute() -> _Scored | None:
        factor = _factor_candidates(models, cache, name, version, user_id, rows, weights)
        if factor is not None:
            return factor
        view = _model_view(models, name, user_id, rows, weights)
        if view is None:
            return None
        finite = np.flatnonzero(np.isfinite(view.scores))
        depth = min(RANK_DEPTH, len(finite))
        top = finite[np.argpartition(-view.scores[finite], depth - 1)[:depth]] if depth else finite
        top = top[np.argsort(-view.scores[top], kind="stable")]
        best = {str(view.item_ids[i]): float(view.scores[i]) for i in top}
        return _Scored(name, best, view.index, view.personal)

    return cache.candidates(key, compute)


def _factor_candidates(
    models: ModelStore, cache: FeedCache, name: str, version: str, user_id: str, rows: list,
    weights: Mapping[str, float],
) -> _Scored | None:  # fmt: skip
    """For factor models (ALS, BPR): the user's vector against the model version's item index
    (exact below ``ANN_MIN_ITEMS`` items, faiss IVF above); None for other models."""
    try:
        loaded = models.get(name)
    except ModelUnavailable:
        return None
    model = loaded.model
    if not (hasattr(model, "user_vectors") and hasattr(model, "item_factors_")):
        return None
    history = user_history(loaded, rows, weights)
    user_index = loaded.user_index.get(user_id, -1)
    if history.strength.nnz == 0 and user_index < 0:
        return None
    index = cache.per_model(name, version, lambda: ItemIndex(model.item_factors_))
    vector = model.user_vectors(np.array([user_index]), history.strength)[0]
    items, scores = index.search(vector, RANK_DEPTH + len(history.touched))
    touched = set(history.touched.tolist())
    best = {
        str(loaded.item_ids[i]): float(s)
        for i, s in zip(items, scores, strict=True)
        if int(i) not in touched
    }
    return _Scored(name, dict(list(best.items())[:RANK_DEPTH]), loaded.item_index, True)


def _top(scored: _Scored, k: int) -> dict[str, float]:
    """The first ``k`` items of a model's list with strengths in (0, 1] by rank."""
    first = list(scored.top)[:k]
    return {item: 1.0 - r / len(first) for r, item in enumerate(first)}


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


def _topics(
    snapshot: Snapshot, recent: np.ndarray, followed: list[str], k: int
) -> dict[str, float]:
    """Recent items on followed topics, by the share of followed topics they carry."""
    if not followed:
        return {}
    wanted = set(followed)
    raw = {}
    for pos in recent:
        hit = wanted.intersection(snapshot.tags[pos])
        if hit:
            raw[snapshot.ids[pos]] = len(hit) / len(wanted)
    return _scaled(raw, k)


def _exposure(session: Session, pks: list[int], weights: Mapping[str, float]) -> dict:
    """Per new item (pk): how often feeds showed it and how often it was engaged with."""
    shown = dict(
        tuple(row)
        for row in session.execute(
            select(FeedImpression.item_id, func.count())
            .where(FeedImpression.item_id.in_(pks))
            .group_by(FeedImpression.item_id)
        )
    )
    engaged: Counter[int] = Counter()
    for item, etype, value in session.execute(
        select(Event.item_id, Event.type, Event.value).where(Event.item_id.in_(pks))
    ):
        if event_weight(etype, value, weights) > 0 and etype not in ("view", "click"):
            engaged[item] += 1
    return {"shown": shown, "engaged": engaged}


def _fresh(
    session: Session, cache: FeedCache, snapshot: Snapshot, recent: np.ndarray, since: float,
    budget: int, weights: Mapping[str, float], rng: np.random.Generator, k: int,
) -> dict[str, float]:  # fmt: skip
    """Thompson draws ``Beta(1 + engaged, 1 + shown - engaged)`` for new items under budget."""
    fresh = recent[snapshot.created[recent] >= since]
    if not len(fresh):
        return {}
    pks = snapshot.pks[fresh]
    stats = cache.exposure(
        (len(snapshot.pks), int(pks.min()), int(pks.max())),
        lambda: _exposure(session, pks.tolist(), weights),
    )
    shown = np.array([stats["shown"].get(int(pk), 0) for pk in pks], dtype=np.float64)
    engaged = np.array([stats["engaged"].get(int(pk), 0) for pk in pks], dtype=np.float64)
    open_ = shown < budget
    hits = np.where(shown > 0, np.minimum(engaged, shown), engaged)[open_]
    draws = rng.beta(1.0 + hits, 1.0 + np.maximum(shown[open_] - hits, 0.0))
    positions = fresh[open_]
    best = np.argsort(-draws, kind="stable")[:k]
    return {snapshot.ids[positions[b]]: float(draws[b]) for b in best}


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
        served = _serve_prefetched(session, cache, user_id, browsing, page, n, now)
        if served is not None:
            return served
    ctx = _context(session, user_id, browsing, defaults)
    ctl = ctx.controls
    k = defaults.candidates_per_source
    snapshot = cache.catalogue.get(session)
    stamp = now.timestamp()

    sources: dict[str, dict[str, float]] = {}
    ranking_name = None
    with contextlib.suppress(ModelUnavailable):
        ranking_name = resolve_model(models, defaults.ranking_model)
    ranking = None
    if ranking_name is not None:
        ranking = _scored(models, cache, ranking_name, user_id, ctx.rows, weights)
        if ranking is not None:
            sources["collaborative"] = _top(ranking, k)
    for source, name in (("sequential", SEQUENTIAL_MODEL), ("content", CONTENT_MODEL)):
        if name != ranking_name and ctx.rows:
            scored = _scored(models, cache, name, user_id, ctx.rows, weights)
            if scored is not None:
                sources[source] = _top(scored, k // 2)
    trending = _scored(models, cache, TRENDING_MODEL, user_id, ctx.rows, weights)
    if trending is not None:
        sources["trending"] = _top(trending, k)
    else:
        minute = int(stamp // 60)
        sources["trending"] = cache.candidates(
            ("popular", minute), lambda: _popular(session, now, k)
        )
    sources["in_network"], tie_who = _in_network(
        session, ctx.ties, weights, now, defaults.in_network_days, k
    )
    recent = snapshot.created_since(stamp - TOPIC_WINDOW_DAYS * 86400.0, 20 * k)
    sources["topics"] = _topics(snapshot, recent, ctl.followed_tags, k)
    sources["fresh"] = _fresh(
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
        for item, strength in sources.get(source, {}).items():
            if strength > strongest.get(item, -1.0):
                nominated[item], strongest[item] = source, strength
    info = {item: meta for item in nominated if (meta := snapshot.summary(item)) is not None}
    blocked = ctx.blocked_authors | ctx.muted_authors
    keep = [
        item
        for item in nominated
        if item in info
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

    pct = _percentiles(_primary_scores(ranking, trending, sources["trending"], keep))
    not_interested = [(snapshot.summary(item), when) for item, when in ctx.not_interested]
    followed = set(ctl.followed_tags)
    relevance: dict[str, float] = {}
    for item in keep:
        meta = info[item]
        tags = set(meta["tags"])
        age_h = max((now - meta["created"]).total_seconds() / 3600.0, 0.0)
        score = pct.get(item, UNKNOWN_RELEVANCE)
        score += ctl.social_weight * sources["in_network"].get(item, 0.0)
        score += ctl.freshness * math.exp(-age_h / FRESHNESS_HOURS)
        score += TOPIC_BOOST * (len(tags & followed) / len(followed) if followed else 0.0)
        score -= _suppression(item, meta, tags, not_interested, now, defaults)
        relevance[item] = score

    ahead = n * PREFETCH_PAGES
    chosen = _place(keep, relevance, info, sources["fresh"], new_creators, ctl, defaults, ahead, n)
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
        state = _signature(session, ctx.user_pk)
        cache.keep_pages(browsing, _pack(user_id, state, later, model))
    items = _record_impressions(session, ctx.user_pk, browsing, page, items, now)
    if explain and ranking is not None and ranking.personal:
        view = _model_view(models, ranking.name, user_id, ctx.rows, weights)
        if view is not None:
            _explain(session, view, items)
    return FeedPage(
        user_id=user_id,
        session=browsing,
        page=page,
        items=items,
        next_cursor=encode_cursor(browsing, page + 1),
        sources=dict(Counter(i.source for i in items)),
        model=model,
    )


def _pack(user_id: str, signature: str, items: list[FeedItem], model: str | None) -> dict:
    """Unserved ranked items of a session as JSON-able data (for a shared cache)."""
    return {
        "user_id": user_id,
        "signature": signature,
        "model": model,
        "items": [
            {**asdict(i), "created": i.created.isoformat() if i.created else None} for i in items
        ],
    }


def _unpack(items: list[dict]) -> list[FeedItem]:
    return [
        FeedItem(**{**i, "created": datetime.fromisoformat(i["created"]) if i["created"] else None})
        for i in items
    ]


def _signature(session: Session, user_pk: int) -> str:
    """What a prefetched page depends on: the user's events, feedback and controls."""
    events = session.execute(
        select(func.count(), func.max(Event.timestamp)).where(Event.user_id == user_pk)
    ).one()
    feedback = session.scalar(
        select(func.max(FeedFeedback.id)).where(FeedFeedback.user_id == user_pk)
    )
    updated = session.scalar(select(FeedSettings.updated).where(FeedSettings.user_id == user_pk))
    return json.dumps([str(v) for v in (*events, feedback, updated)])


def _serve_prefetched(
    session: Session, cache: FeedCache, user_id: str, browsing: str, page: int, n: int,
    now: datetime,
) -> FeedPage | None:  # fmt: skip
    """The next page from the session's prefetched ranking, if the user's state is unchanged
    since it was ranked (a new event, feedback or control change ranks afresh)."""
    held = cache.take_pages(browsing)
    if held is None or held["user_id"] != user_id:
        return None
    user_pk = _user_pk(session, user_id)
    if _signature(session, user_pk) != held["signature"]:
        return None
    items, later = held["items"][:n], held["items"][n:]
    if later:
        cache.keep_pages(browsing, {**held, "items": later})
    items = _record_impressions(session, user_pk, browsing, page, _unpack(items), now)
    if not items:
        return None
    return FeedPage(
        user_id=user_id,
        session=browsing,
        page=page,
        items=items,
        next_cursor=encode_cursor(browsing, page + 1),
        sources=dict(Counter(i.source for i in items)),
        model=held["model"],
    )


def _primary_scores(
    ranking: _Scored | None, trending: _Scored | None, popular: dict[str, float], keep: list
) -> dict[str, float]:
    """The score each candidate is ranked by before boosts: the personal model's (items it
    knows but did not list rank below its list), else trending's, else store popularity.
    Items the model has never seen (posted after training) are left out."""
    primary = ranking if ranking is not None and ranking.personal else trending
    if primary is None:
        return {i: popular[i] for i in keep if i in popular}
    floor = min(primary.top.values(), default=0.0) - 1.0
    return {i: primary.top.get(i, floor) for i in keep if i in primary.top or i in primary.index}


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
) -> list[FeedItem]:  # fmt: skip
    """Store the page's impressions; returns the items still in the store (a catalogue
    snapshot may hold items deleted since)."""
    if not items:
        return items
    pks = dict(
        tuple(row)
        for row in session.execute(
            select(Item.external_id, Item.id).where(
                Item.external_id.in_([i.item_id for i in items])
            )
        )
    )
    items = [it for it in items if it.item_id in pks]
    offset = (page - 1) * MAX_PAGE
    if items:
        session.execute(
            insert(FeedImpression),
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


def source_shares(session: Session, since: datetime) -> dict[str, int]:
    """Impressions per candidate source since ``since`` (what the feed has been made of)."""
    rows = session.execute(
        select(FeedImpression.source, func.count())
        .where(FeedImpression.served >= since)
        .group_by(FeedImpression.source)
    )
    return dict(rows.all())
