"""Candidate sources of the feed: each nominates items for one user with a strength in [0, 1].

``collaborative``, ``sequential`` and ``content`` come from trained models (their best
``RANK_DEPTH`` items per user, cached per model version and user state; factor models through an
item index), ``trending`` from the trending model (or the store's own popularity before any
training), ``in_network`` from the user's ties, ``topics`` from followed tags and ``fresh`` from
new items by Thompson sampling on engagement per impression. Items posted after the content
model was trained join ``content`` through their title and tags (:func:`new_content`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.db.tables import Event, FeedImpression, Item, epoch_seconds
from agora.features.store import event_weight
from agora.serving.service import ModelStore, ModelUnavailable, top_items, user_history

if TYPE_CHECKING:
    from agora.feed.cache import FeedCache, Snapshot

TRENDING_MODEL = "trending"
CONTENT_MODEL = "content"
TOPIC_WINDOW_DAYS = 30.0
RANK_DEPTH = 1000  # how many of a model's best items are kept per user


@dataclass
class ModelView:
    """One model's scores over its items for this user (history items at -inf)."""

    name: str
    item_ids: np.ndarray
    index: dict[str, int]
    scores: np.ndarray
    personal: bool
    loaded: Any = None
    history: Any = None


@dataclass
class Scored:
    """What the feed keeps of a model view: its best items, best first, as compact arrays (a
    cache holds one per user and model), with the model's own id arrays by reference."""

    name: str
    items: np.ndarray  # int32 positions in the model's item space
    scores: np.ndarray  # float32 raw scores
    item_ids: np.ndarray  # the model's item ids (shared, not copied)
    index: dict[str, int]  # every item the model knows (shared)
    personal: bool


def _scored(
    name: str, items: np.ndarray, scores: np.ndarray, loaded: Any, personal: bool
) -> Scored:
    return Scored(
        name,
        np.asarray(items[:RANK_DEPTH], dtype=np.int32),
        np.asarray(scores[:RANK_DEPTH], dtype=np.float32),
        loaded.item_ids,
        loaded.item_index,
        personal,
    )


def model_view(
    models: ModelStore, name: str, user_id: str, rows: list, weights: Mapping[str, float]
) -> ModelView | None:
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
    return ModelView(name, loaded.item_ids, loaded.item_index, scores, personal, loaded, history)


def scored_items(
    models: ModelStore,
    cache: FeedCache,
    name: str,
    user_id: str,
    rows: list,
    weights: Mapping[str, float],
) -> Scored | None:
    """A model's ``RANK_DEPTH`` best items for the user, from the cache while neither the
    model version nor the user's events changed (trending: one list for everybody)."""
    version = models.versions().get(name)
    if version is None:
        return None
    if name == TRENDING_MODEL:
        key: tuple = (name, version)
        user_id, rows = "", []
    else:
        key = candidates_key(name, version, user_id, rows)

    def compute() -> Scored | None:
        factor = factor_candidates(models, cache, name, version, user_id, rows, weights)
        if factor is not None:
            return factor
        view = model_view(models, name, user_id, rows, weights)
        if view is None:
            return None
        finite = np.flatnonzero(np.isfinite(view.scores))
        depth = min(RANK_DEPTH, len(finite))
        top = finite[np.argpartition(-view.scores[finite], depth - 1)[:depth]] if depth else finite
        top = top[np.lexsort((top, -view.scores[top]))]  # equal scores by index, as top_n
        return _scored(name, top, view.scores[top], view.loaded, view.personal)

    return cache.candidates(key, compute)


def candidates_key(name: str, version: str, user_id: str, rows: list) -> tuple:
    """What a user's model candidates depend on: the model version and the user's events."""
    return (name, version, user_id, len(rows), max((r[3] for r in rows), default=None))


def factor_candidates_many(
    models: ModelStore, cache: FeedCache, name: str, users: list[tuple[str, list]],
    weights: Mapping[str, float],
) -> None:  # fmt: skip
    """:func:`factor_candidates` of many users at once (one history matrix, one fold-in and one
    index search for all), into the cache where :func:`scored_items` finds them; nothing for
    other models."""
    version = models.versions().get(name)
    try:
        loaded = models.get(name)
    except ModelUnavailable:
        return
    model = loaded.model
    index = models.item_index(loaded)
    if version is None or index is None:  # not a factor model
        return
    strength, touched = histories(loaded, [rows for _, rows in users], weights)
    indices = np.array([loaded.user_index.get(user, -1) for user, _ in users], dtype=np.int64)
    chosen = np.flatnonzero((np.diff(strength.indptr) > 0) | (indices >= 0))
    if not len(chosen):
        return
    vectors = model.user_vectors(indices[chosen], strength[chosen])
    depth = RANK_DEPTH + max(len(touched[c]) for c in chosen)
    for c, (items, scores) in zip(chosen, index.search_many(vectors, depth), strict=True):
        fresh = ~np.isin(items, touched[c])
        user, rows = users[c]
        cache.candidates(
            candidates_key(name, version, user, rows),
            lambda items=items[fresh], scores=scores[fresh]: _scored(
                name, items, scores, loaded, True
            ),
        )


def histories(
    loaded: Any, users: list[list], weights: Mapping[str, float]
) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """Many users' events in ``loaded``'s item space: their summed positive event weights, one
    row each (the ``strength`` of :func:`~agora.serving.service.user_history`, built as one
    matrix), and each one's touched items (any event)."""
    owners: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    touched: list[np.ndarray] = []
    index = loaded.item_index
    for row, rows in enumerate(users):
        seen: set[int] = set()
        for item_id, etype, value, _ in rows:
            at = index.get(item_id)
            if at is None:
                continue
            seen.add(at)
            if (w := event_weight(etype, value, weights)) > 0:
                owners.append(row)
                cols.append(at)
                values.append(w)
        touched.append(np.fromiter(seen, np.int64, len(seen)))
    strength = sp.coo_matrix(
        (np.array(values, np.float64), (np.array(owners, np.int64), np.array(cols, np.int64))),
        shape=(len(users), len(loaded.item_ids)),
    ).tocsr()  # duplicates summed
    return strength.astype(np.float32), touched


def factor_candidates(
    models: ModelStore, cache: FeedCache, name: str, version: str, user_id: str, rows: list,
    weights: Mapping[str, float],
) -> Scored | None:  # fmt: skip
    """For factor models (ALS, BPR): the user's vector against the model version's item index;
    None for other models."""
    try:
        loaded = models.get(name)
    except ModelUnavailable:
        return None
    index = models.item_index(loaded)
    if index is None:  # not a factor model
        return None
    history = user_history(loaded, rows, weights)
    user_index = loaded.user_index.get(user_id, -1)
    if history.strength.nnz == 0 and user_index < 0:
        return None
    items, scores = top_items(loaded, index, user_index, history, RANK_DEPTH)
    return _scored(name, items, scores, loaded, True)


TIE_EVENTS = 50  # latest events per tie that count for in-network
TIE_POSTS = 20  # latest posts per tie that count
POST_WEIGHT = 2.0  # a tie's post counts twice a like


@dataclass(frozen=True)
class TieActivity:
    """One tie's latest events and posts: item pks, each row's weight (its event's weight, or
    ``POST_WEIGHT`` for a post) and epoch seconds; rows of no weight left out."""

    items: np.ndarray  # int64 item pks
    weights: np.ndarray  # float64
    stamps: np.ndarray  # float64 epoch seconds


def tie_activity(
    session: Session, ties: list[int], since: datetime, weights: Mapping[str, float]
) -> dict[int, TieActivity]:
    """Per tie (user pk): their latest events and posts since ``since`` (see
    :class:`TieActivity`), in two queries for any number of ties."""
    rows: dict[int, list[tuple[int, float, float]]] = {tie: [] for tie in ties}
    latest = (
        select(
            Event.user_id,
            Event.item_id,
            Event.type,
            Event.value,
            Event.timestamp,
            func.row_number()
            .over(partition_by=Event.user_id, order_by=Event.timestamp.desc())
            .label("nth"),
        )
        .where(Event.user_id.in_(ties), Event.timestamp >= since)
        .subquery()
    )
    for user, item, etype, value, stamp in session.execute(
        select(
            latest.c.user_id,
            latest.c.item_id,
            latest.c.type,
            latest.c.value,
            epoch_seconds(latest.c.timestamp),
        ).where(latest.c.nth <= TIE_EVENTS)
    ):
        if (w := event_weight(etype, value, weights)) > 0:
            rows[user].append((item, w, stamp))
    posts = (
        select(
            Item.author_id,
            Item.id,
            Item.created,
            func.row_number()
            .over(partition_by=Item.author_id, order_by=Item.created.desc())
            .label("nth"),
        )
        .where(Item.author_id.in_(ties), Item.created >= since)
        .subquery()
    )
    for author, item, stamp in session.execute(
        select(posts.c.author_id, posts.c.id, epoch_seconds(posts.c.created)).where(
            posts.c.nth <= TIE_POSTS
        )
    ):
        rows[author].append((item, POST_WEIGHT, stamp))
    return {
        tie: TieActivity(
            np.fromiter((r[0] for r in mine), np.int64, len(mine)),
            np.fromiter((r[1] for r in mine), np.float64, len(mine)),
            np.fromiter((r[2] for r in mine), np.float64, len(mine)),
        )
        for tie, mine in rows.items()
    }


def recent_tie_activity(
    session: Session, cache: FeedCache, ties: list[int], now: datetime, days: float,
    weights: Mapping[str, float],
) -> dict[int, TieActivity]:  # fmt: skip
    """:func:`tie_activity` of ``ties`` over the last ``days``, through the cache (the
    refresher reads a whole chunk's ties with one call, then each user's from memory)."""
    since = now - timedelta(days=days)
    return cache.tie_activity(ties, lambda missing: tie_activity(session, missing, since, weights))


@dataclass(frozen=True)
class InNetwork:
    """The in-network source of one user: item pks, strongest first, their strengths in
    (0, 1] and how many of the user's ties engaged with or posted each."""

    items: np.ndarray  # int64 item pks
    strengths: np.ndarray  # float32
    ties: np.ndarray  # int16


def in_network(
    session: Session, cache: FeedCache, ties: dict[int, float], weights: Mapping[str, float],
    now: datetime, days: float, k: int,
) -> InNetwork:  # fmt: skip
    """The ``k`` items the user's ties engaged with or posted lately, by the ties' summed
    weights (a post counts twice a like) halving every ``days / 4``, divided by the strongest.
    Each tie's activity is shared by everyone who follows them (cached briefly: see
    :meth:`FeedCache.tie_activity`); one user's sum is a few array operations."""
    activity = recent_tie_activity(session, cache, list(ties), now, days, weights) if ties else {}
    held = [(tie, activity[tie]) for tie in ties if len(activity[tie].items)]
    if not held:
        return InNetwork(np.empty(0, np.int64), np.empty(0, np.float32), np.empty(0, np.int16))
    items = np.concatenate([a.items for _, a in held])
    half_life = days / 4 * 86400.0
    value = np.concatenate([ties[tie] * a.weights for tie, a in held]) * 0.5 ** (
        np.maximum(now.timestamp() - np.concatenate([a.stamps for _, a in held]), 0.0) / half_life
    )
    who = np.repeat(np.arange(len(held)), [len(a.items) for _, a in held])
    unique, at = np.unique(items, return_inverse=True)
    strength = np.bincount(at, weights=value, minlength=len(unique))
    counts = np.bincount(np.unique(at * len(held) + who) // len(held), minlength=len(unique))
    best = np.argsort(-strength, kind="stable")[:k]
    best = best[strength[best] > 0]
    top = strength[best[0]] if len(best) else 1.0
    return InNetwork(
        unique[best],
        (strength[best] / top).astype(np.float32),
        counts[best].astype(np.int16),
    )


def scaled(raw: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` strongest, divided by the strongest (so 1 is the best of the source)."""
    best = sorted(raw.items(), key=lambda kv: -kv[1])[:k]
    top = best[0][1] if best else 1.0
    return {item: value / top for item, value in best if value > 0}


def popular(session: Session, now: datetime, k: int) -> dict[str, float]:
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
            return scaled(found, k)
    return {}


def recent_items(snapshot: Snapshot, stamp: float, k: int) -> np.ndarray:
    """Catalogue positions of the newest items (at most ``20 k``) within ``TOPIC_WINDOW_DAYS``
    of ``stamp``. "Recent" ends at the newest post when the store is historic (an imported
    dump), so followed topics (onboarding) and new content are not empty there."""
    newest = float(snapshot.created[snapshot.newest_first[0]]) if len(snapshot.ids) else stamp
    end = min(stamp, newest)
    return snapshot.created_since(end - TOPIC_WINDOW_DAYS * 86400.0, 20 * k)


def exposure(session: Session, pks: list[int], weights: Mapping[str, float]) -> dict:
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


def new_content(
    models: ModelStore, cache: FeedCache, snapshot: Snapshot, recent: np.ndarray, rows: list,
    weights: Mapping[str, float], k: int,
) -> dict[str, float]:  # fmt: skip
    """Recent items the content model has not seen (posted after it was trained), by the
    cosine of their title and tags with the user's content profile: new posts reach the people
    whose history matches them before any retraining."""
    version = models.versions().get(CONTENT_MODEL)
    if version is None or not rows:
        return {}
    loaded = models.get(CONTENT_MODEL)
    history = user_history(loaded, rows, weights)
    unseen = [int(p) for p in recent if snapshot.ids[p] not in loaded.item_index]
    if history.strength.nnz == 0 or not unseen:
        return {}
    vectors: dict[str, Any] = cache.per_model("content:new-items", version, dict)
    missing = [p for p in unseen if snapshot.ids[p] not in vectors]
    if missing:
        rows_ = loaded.model.transform(
            [snapshot.titles[p] for p in missing], [snapshot.tags[p] for p in missing]
        )
        for r, p in enumerate(missing):
            vectors[snapshot.ids[p]] = rows_[r]
    profile = loaded.model.profiles(history.strength)
    items = [snapshot.ids[p] for p in unseen]
    matrix = sp.vstack([vectors[i] for i in items])
    cosine = np.asarray((matrix @ profile.T).toarray()).ravel()
    return scaled(dict(zip(items, cosine.tolist(), strict=True)), k)
