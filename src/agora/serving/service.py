"""Serving recommendations: the newest trained models, applied to the store's current state.

A user's history (with event times) is read from the store at request time, so events that
arrived after training are excluded from the answer and history-aware models use them. Users the
model cannot personalise for get the trending list; items it has not seen get their content
neighbours. Explanations are computed on request only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.api.errors import NotFound, Unavailable
from agora.db import queries
from agora.db.pseudonyms import IdSealer
from agora.db.tables import Event, Item, User
from agora.features.store import event_weight, item_text
from agora.ingest.schemas import as_utc
from agora.models.artifacts import LoadedModel, list_artifacts, load_artifact, read_meta
from agora.models.content import ContentModel, nearest
from agora.models.explain import top_reasons
from agora.models.retrieval import ItemIndex, is_factor_model

log = logging.getLogger(__name__)

FALLBACK_MODEL = "trending"
#: The model that finds similar items for items other models have not seen (by their text).
CONTENT_MODEL = ContentModel.name
#: Model name that means "the trained personal model with the best holdout NDCG@10".
AUTO_MODEL = "auto"
NON_PERSONAL = ("trending", "latest")


class ModelUnavailable(Unavailable):
    """The requested model has no trained artefact."""


class UnknownItem(NotFound):
    """The item is not in the store or not known to the model."""


@dataclass
class Recommendation:
    item_id: str
    score: float
    model: str
    title: str | None = None
    author_id: str | None = None
    tags: list[str] | None = None
    created: datetime | None = None
    because: list[dict[str, Any]] | None = None  # past items that carried the score
    ties_engaged: list[str] | None = None  # people the user follows/trusts who engaged
    reason: str | None = None


class ReadyAnswers(Protocol):
    """Recommendations computed ahead of the request, which the app hands to the route (the
    feed's ready records: :mod:`agora.feed.recommendations`). Both methods answer None where
    the route must compute the user's top ``n`` from ``model`` itself."""

    def items(self, user_id: str, model: str, n: int) -> list[Recommendation] | None:
        """The user's top ``n``."""
        ...

    def answer(
        self, user_id: str, model: str, n: int, render: Callable[[list[Recommendation]], bytes]
    ) -> bytes | None:
        """``render`` of the user's top ``n``, kept while they do not change."""
        ...

    def kept(self, user_id: str, model: str, n: int) -> bytes | None:
        """The kept :meth:`answer`, from memory alone (None: ask :meth:`answer`); it never
        blocks, so an event loop may call it."""
        ...


class ModelStore:
    """The newest artefact of each trained model: found on ``reload`` (reading only its
    ``meta.json``), its arrays loaded on first use or by ``warm``, swapped on the next
    ``reload``. Startup stays fast and models nobody asks for cost no memory.

    Factor models also get an :class:`~agora.models.retrieval.ItemIndex` per loaded version
    (:meth:`item_index`), which finds a user's best items without scoring every item."""

    def __init__(self, model_dir: Path, ids: IdSealer | None = None):
        self.model_dir = Path(model_dir)
        self.ids = ids  # the store's sealer, when its user ids are pseudonymous
        self._paths: dict[str, Path] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._loaded: dict[Path, LoadedModel] = {}
        self._indexes: dict[Path, ItemIndex] = {}
        self._lock = threading.Lock()  # guards the four maps
        self._load_lock = threading.Lock()  # one artefact read at a time
        self._index_lock = threading.Lock()  # one index built at a time

    def reload(self) -> dict[str, str]:
        """Point every model at its newest version on disk; returns name -> version.

        Reads each newest ``meta.json`` (an unreadable one raises and keeps the previous
        state); arrays already loaded for a version that is still the newest are kept, unless
        its ``meta.json`` changed (an erasure rewrote the version: see
        :func:`agora.models.artifacts.forget_user`)."""
        newest = {path.parent.name: path for path in list_artifacts(self.model_dir)}
        metas = {name: read_meta(path) for name, path in newest.items()}
        with self._lock:
            kept = {path for name, path in newest.items() if self._meta.get(name) == metas[name]}
            self._paths, self._meta = newest, metas
            self._loaded = {p: m for p, m in self._loaded.items() if p in kept}
            self._indexes = {p: i for p, i in self._indexes.items() if p in kept}
        return self.versions()

    def versions(self) -> dict[str, str]:
        with self._lock:
            return {name: path.name for name, path in self._paths.items()}

    def meta(self, name: str) -> dict[str, Any]:
        """The ``meta.json`` of the served version of ``name`` (nothing is loaded)."""
        with self._lock:
            meta = self._meta.get(name)
        if meta is None:
            raise self._unavailable(name)
        return meta

    def best(self, metric: str = "holdout_ndcg@10") -> str:
        """The personal model whose artefact reports the highest ``metric``."""
        with self._lock:
            scored = [
                (meta.get("metrics", {}).get(metric, float("-inf")), name)
                for name, meta in self._meta.items()
                if name not in NON_PERSONAL
            ]
        if not scored:
            raise ModelUnavailable(
                "no personal model is trained; run `agora train` (its default models include "
                "personal ones) or `agora train --models itemknn`"
            )
        return max(scored)[1]

    def get(self, name: str) -> LoadedModel:
        """The served version of ``name``, read from disk on first use."""
        with self._lock:
            path = self._paths.get(name)
            loaded = self._loaded.get(path) if path is not None else None
        if path is None:
            raise self._unavailable(name)
        if loaded is not None:
            return loaded
        with self._load_lock:
            with self._lock:
                loaded = self._loaded.get(path)
            if loaded is None:
                loaded = load_artifact(path, self.ids)
                with self._lock:
                    if self._paths.get(name) == path:  # not swapped by a reload meanwhile
                        self._loaded[path] = loaded
        return loaded

    def item_index(self, loaded: LoadedModel) -> ItemIndex | None:
        """The item index of a factor model's loaded version (None for other models), built
        on first use (0.1 s at 200k items) and dropped with the version on ``reload``."""
        if not is_factor_model(loaded.model):
            return None
        with self._lock:
            index = self._indexes.get(loaded.path)
        if index is not None:
            return index
        with self._index_lock:
            with self._lock:
                index = self._indexes.get(loaded.path)
            if index is None:
                index = ItemIndex(loaded.model.item_factors_)
                with self._lock:
                    if self._loaded.get(loaded.path) is loaded:  # still the served version
                        self._indexes[loaded.path] = index
        return index

    def warm(self) -> dict[str, float]:
        """Load every served model now; returns name -> seconds it took. A model that fails
        to load is logged and left out (a request for it gets the error)."""
        seconds = {}
        for name in self.versions():
            t0 = time.perf_counter()
            try:
                self.get(name)
            except ModelUnavailable:  # swapped out by a concurrent reload
                continue
            except Exception:
                log.exception("could not load model %r", name)
                continue
            seconds[name] = round(time.perf_counter() - t0, 3)
        return seconds

    def _unavailable(self, name: str) -> ModelUnavailable:
        """The error for an untrained model, naming the command that trains it (plain `agora
        train` fits only ``settings.models``, which need not include ``name``)."""
        known = ", ".join(sorted(self.versions())) or "none"
        return ModelUnavailable(
            f"model {name!r} is not trained (trained: {known}); "
            f"run `agora train --models {name}` (a running server loads it on POST /admin/reload)"
        )


def resolve_model(models: ModelStore, name: str) -> str:
    """The concrete model a request means: ``auto`` becomes the best trained personal model."""
    return models.best() if name == AUTO_MODEL else name


EventRow = tuple[str, str, float | None, datetime]


def user_event_rows(session: Session, user_id: str) -> list[EventRow]:
    """Every event of a user as (item id, type, value, timestamp), read at request time."""
    return [
        (item, etype, value, as_utc(ts))
        for item, etype, value, ts in session.execute(
            select(Item.external_id, Event.type, Event.value, Event.timestamp)
            .join(Event, Event.item_id == Item.id)
            .join(User, Event.user_id == User.id)
            .where(User.external_id == user_id)
        )
    ]


@dataclass
class History:
    """One user's history in a model's item space."""

    strength: sp.csr_matrix  # 1 x n_items, summed positive event weights
    times: sp.csr_matrix  # 1 x n_items, epoch second of the latest positive event
    touched: np.ndarray  # every item index with any event (never recommended)


def user_history(
    loaded: LoadedModel, rows: list[EventRow], weights: Mapping[str, float]
) -> History:
    """A user's events as one row in ``loaded``'s item space (items it does not know dropped)."""
    n_items = len(loaded.item_ids)
    strength: dict[int, float] = {}
    latest: dict[int, float] = {}
    touched: set[int] = set()
    for item_id, etype, value, ts in rows:
        index = loaded.item_index.get(item_id)
        if index is None:
            continue
        touched.add(index)
        w = event_weight(etype, value, weights)
        if w > 0:
            strength[index] = strength.get(index, 0.0) + w
            latest[index] = max(latest.get(index, 0.0), ts.timestamp())
    cols = np.fromiter(strength, dtype=np.int64, count=len(strength))
    zeros = np.zeros(len(cols), np.int64)

    def row(values: dict[int, float], dtype: type) -> sp.csr_matrix:
        data = np.fromiter((values[c] for c in cols), dtype=dtype, count=len(cols))
        return sp.csr_matrix((data, (zeros, cols)), shape=(1, n_items))

    return History(
        row(strength, np.float32),
        row(latest, np.float64),
        np.fromiter(touched, dtype=np.int64, count=len(touched)),
    )


def _decorate(
    session: Session,
    pairs: list[tuple[str, float]],
    model: str,
    n: int,
    for_user: str | None = None,
    max_per_thread: int = 0,
) -> list[Recommendation]:
    """Attach titles and authors; items deleted since training are dropped here, and so are
    ``for_user``'s own posts and items past ``max_per_thread`` of one thread (0: no limit)."""
    info = queries.item_summaries(session, [item for item, _ in pairs])
    out = []
    per_thread: Counter[str] = Counter()
    for item, score in pairs:
        if item not in info:
            continue
        meta = info[item]
        if for_user is not None and meta["author_id"] == for_user:
            continue
        if max_per_thread > 0:
            if per_thread[meta["thread"]] >= max_per_thread:
                continue
            per_thread[meta["thread"]] += 1
        out.append(
            Recommendation(
                item_id=item,
                score=float(score),
                model=model,
                title=meta["title"],
                author_id=meta["author_id"],
                tags=meta["tags"],
                created=meta["created"],
            )
        )
        if len(out) == n:
            break
    return out


def recommend(
    session: Session,
    models: ModelStore,
    user_id: str,
    n: int,
    model_name: str,
    weights: Mapping[str, float],
    explain: bool = False,
    max_per_thread: int = 1,
) -> list[Recommendation]:
    """Top ``n`` items for a user from ``model_name``, never an item they already touched nor
    one they posted, and at most ``max_per_thread`` items of one thread (the best first; 0: no
    limit). With ``explain``, each item says which past items and which of the user's ties led
    to it.

    Users the model cannot personalise for (no stored event, or only events on items newer
    than the model) get the trending list, labelled with model ``trending``.
    Model ``auto`` is the trained personal model with the best holdout NDCG@10.
    """
    model_name = resolve_model(models, model_name)
    rows = user_event_rows(session, user_id)
    loaded = models.get(model_name)
    history = user_history(loaded, rows, weights)
    user_index = loaded.user_index.get(user_id, -1)
    if history.strength.nnz == 0 and user_index < 0 and model_name != FALLBACK_MODEL:
        model_name = FALLBACK_MODEL
        loaded = models.get(model_name)
        history = user_history(loaded, rows, weights)
        user_index = loaded.user_index.get(user_id, -1)
    index = models.item_index(loaded)
    slack = n + 20  # room for items deleted since training, own posts and thread duplicates
    while True:
        items, scores = top_items(loaded, index, user_index, history, slack)
        pairs = [(loaded.item_ids[i], s) for i, s in zip(items, scores, strict=True)]
        recs = _decorate(session, pairs, model_name, n, user_id, max_per_thread)
        if len(recs) == n or len(pairs) < slack:  # enough, or the model has no more
            break
        slack *= 4
    if explain and recs:
        _explain(session, loaded, user_id, history, recs)
    return recs


def top_items(
    loaded: LoadedModel, index: ItemIndex | None, user_index: int, history: History, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The user's ``k`` best items the history has not touched (indices, scores), best first:
    from a factor model's item ``index``, else from the model scoring every item."""
    if index is None:
        return loaded.model.recommend(
            user_index, history.strength, k, exclude=history.touched, times=history.times
        )
    vector = loaded.model.user_vectors(np.array([user_index]), history.strength)
    items, scores = index.search(vector, k + len(history.touched))
    fresh = ~np.isin(items, history.touched)
    return items[fresh][:k], scores[fresh][:k]


def explain(
    session: Session,
    models: ModelStore,
    user_id: str,
    recs: list[Recommendation],
    weights: Mapping[str, float],
) -> None:
    """Fill in ``because``, ``ties_engaged`` and ``reason`` of a user's ``recs`` (as
    :func:`recommend` with ``explain`` does), which their ``model`` ranked ahead of time."""
    if not recs:
        return
    loaded = models.get(recs[0].model)
    history = user_history(loaded, user_event_rows(session, user_id), weights)
    _explain(session, loaded, user_id, history, recs)


def _explain(
    session: Session, loaded: LoadedModel, user_id: str, history: History, recs: list
) -> None:
    """Fill in ``because`` (past items that carried each score), ``ties_engaged`` and ``reason``."""
    because = past_items_behind(session, loaded, history, [r.item_id for r in recs])
    ties = queries.ties_who_engaged(session, user_id, [r.item_id for r in recs])
    for rec, past in zip(recs, because, strict=True):
        rec.because = past
        rec.ties_engaged = ties.get(rec.item_id, [])
        rec.reason = _sentence(rec)


def past_items_behind(
    session: Session, loaded: LoadedModel, history: History, item_ids: list[str]
) -> list[list[dict[str, Any]]]:
    """Per item (known to ``loaded``), the user's past items that carried most of its score:
    ``item_id``, ``title`` and ``share`` (leave-one-out contributions from the model)."""
    indices = np.array([loaded.item_index[i] for i in item_ids], dtype=np.int64)
    reasons = top_reasons(loaded.model, history.strength, indices, times=history.times)
    past_ids = {loaded.item_ids[j] for per_item in reasons for j, _ in per_item}
    titles = queries.item_summaries(session, past_ids)
    return [
        [
            {
                "item_id": loaded.item_ids[j],
                "title": titles.get(loaded.item_ids[j], {}).get("title"),
                "share": round(share, 4),
            }
            for j, share in per_item
        ]
        for per_item in reasons
    ]


def _sentence(rec: Recommendation) -> str:
    parts = []
    if rec.because:
        first = rec.because[0]
        parts.append(f"because you engaged with {first['title'] or first['item_id']!r}")
    if rec.ties_engaged:
        count = len(rec.ties_engaged)
        parts.append(f"{count} {'person' if count == 1 else 'people'} you follow or trust engaged")
    if not parts:
        return "popular in the community" if rec.model == FALLBACK_MODEL else "recommended for you"
    return "; ".join(parts)


class Similar(NamedTuple):
    """Items similar to an item, and the model that found them."""

    model: str
    items: list[Recommendation]


def similar_items(
    session: Session, models: ModelStore, item_id: str, n: int, model_name: str
) -> Similar:
    """Items most similar to ``item_id`` according to ``model_name``.

    An item that arrived after ``model_name`` was trained gets its content neighbours instead
    (model ``content``): the items whose text and tags are closest to its own (cosine of
    TF-IDF vectors). Without a trained content model that is :class:`UnknownItem`."""
    if queries.item_summaries(session, [item_id]) == {}:
        raise UnknownItem(f"item {item_id!r} not found")
    loaded = models.get(model_name)
    index = loaded.item_index.get(item_id)
    if index is None:
        return Similar(CONTENT_MODEL, _content_neighbours(session, models, item_id, n, model_name))
    items, scores = loaded.model.similar_items(index, n + 20)
    pairs = [(loaded.item_ids[i], s) for i, s in zip(items, scores, strict=True)]
    return Similar(model_name, _decorate(session, pairs, model_name, n))


def _content_neighbours(
    session: Session, models: ModelStore, item_id: str, n: int, unaware: str
) -> list[Recommendation]:
    """The items closest in content to ``item_id``, which model ``unaware`` has not seen: the
    content model's own neighbours if it has seen the item, else those of the item's title,
    body and tags vectorised as at training."""
    try:
        content = models.get(CONTENT_MODEL)
    except ModelUnavailable:
        raise UnknownItem(
            f"item {item_id!r} arrived after model {unaware!r} was trained, and no content "
            "model is trained to find its neighbours by text; retrain to include it "
            f"(`agora train`), or train one: `agora train --models {CONTENT_MODEL}`"
        ) from None
    index = content.item_index.get(item_id)
    if index is not None:
        items, scores = content.model.similar_items(index, n + 20)
    else:
        title, body, tags = session.execute(
            select(Item.title, Item.body, Item.tags).where(Item.external_id == item_id)
        ).one()
        row = content.model.transform([item_text(title, body)], [list(tags or [])])
        items, scores = nearest(content.model, row, n + 20)
    pairs = [(content.item_ids[i], s) for i, s in zip(items, scores, strict=True)]
    return _decorate(session, pairs, CONTENT_MODEL, n)


def global_list(
    session: Session, models: ModelStore, model_name: str, n: int
) -> list[Recommendation]:
    """A non-personal list (trending, latest): the model's ranking for a user with no history."""
    loaded = models.get(model_name)
    empty = sp.csr_matrix((1, len(loaded.item_ids)), dtype=np.float32)
    items, scores = loaded.model.recommend(-1, empty, n + 20)
    pairs = [(loaded.item_ids[i], s) for i, s in zip(items, scores, strict=True)]
    return _decorate(session, pairs, model_name, n)
