"""A user's ready candidates: what the refresher computes offline and the online path reads.

One :class:`Candidates` record per user holds, for each model-backed source (``collaborative``,
``sequential``, ``content``, ``in_network``), the nominated items as catalogue primary keys with
their strengths in [0, 1], and the ranking model's best items with raw scores (the ``primary``
list whose percentiles give each candidate its relevance). One more record, the same for
everybody (:func:`compute_global`, ``user_pk`` 0), holds ``trending`` and serves as the primary
list of users the ranking model cannot personalise for: a user with neither events nor ties
needs no record of their own. Everything in it
depends on the trained models, the user's events and their ties' recent activity; what depends
on the request (filters, followed topics, freshness, exploration) is applied online
(:mod:`agora.feed.online`).

:func:`compute_candidates` is the offline half of the feed: model loading, history, scoring and
the in-network query all happen here, never on the online path. Records are compact (about
12 bytes per item) and travel as bytes (:meth:`Candidates.to_bytes`) through the candidate store
(:mod:`agora.feed.store`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.config import FeedConfig
from agora.db import queries
from agora.db.tables import SocialEdge
from agora.feed import sources
from agora.serving.service import ModelStore, ModelUnavailable, resolve_model

if TYPE_CHECKING:
    from agora.feed.cache import FeedCache, Snapshot

SEQUENTIAL_MODEL = "sasrec"
#: The model-backed sources a record holds, in the order they are stored.
MODEL_SOURCES = ("collaborative", "sequential", "content", "in_network", "trending")
EVERYONE = 0  # the user_pk of the global record
#: How many of the ranking model's best items a record keeps for relevance percentiles.
PRIMARY_DEPTH = 1000


@dataclass
class Prepared:
    """A user's first pages as the refresher ranked them ahead (:func:`agora.feed.online.prepare`),
    with the state they were ranked under, so that a worker serves a first page with neither
    its state queries nor its ranking: it drops what the user touched since and places the
    exploration slots (drawn per page, never stored)."""

    n: int  # the page size they were ranked for
    controls: dict[str, Any]  # the effective controls they were ranked under
    state: dict[str, Any]  # the user's filter state (agora.feed.state.stored_form)
    marks: dict[str, float]  # feedback and edge ids, settings time: the logs read up to there
    touched: np.ndarray  # item pks with an event of the user (the state's)
    pks: np.ndarray  # the ranked items, in page order
    sources: list[str]
    scores: np.ndarray
    ties: np.ndarray  # int16, per item: ties behind an in-network item
    new_creator: np.ndarray  # bool

    def header(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "controls": self.controls,
            "state": self.state,
            "marks": self.marks,
            "sources": self.sources,
            "lengths": {"touched": len(self.touched), "ranked": len(self.pks)},
        }

    def body(self) -> bytes:
        return b"".join(
            np.ascontiguousarray(array, dtype=dtype).tobytes()
            for array, dtype in (
                (self.touched, np.int64),
                (self.pks, np.int64),
                (self.scores, np.float64),
                (self.ties, np.int16),
                (self.new_creator, np.bool_),
            )
        )

    @classmethod
    def read(cls, header: dict[str, Any], take: Any) -> Prepared:
        lengths = header["lengths"]
        ranked = lengths["ranked"]
        return cls(
            n=header["n"],
            controls=header["controls"],
            state=header["state"],
            marks=header["marks"],
            sources=header["sources"],
            touched=take(lengths["touched"], np.int64),
            pks=take(ranked, np.int64),
            scores=take(ranked, np.float64),
            ties=take(ranked, np.int16),
            new_creator=take(ranked, np.bool_),
        )


@dataclass
class Candidates:
    """One user's ready candidates (see the module docstring)."""

    user_pk: int
    stamp: str  # the model versions they were computed with (the store's generation)
    events: int  # the user's event count when computed (a different count: stale)
    computed: float  # epoch seconds
    ranking: str | None  # the ranking model's name (None: no model is trained)
    personal: bool  # the primary list is the ranking model's for this user
    primary: tuple[np.ndarray, np.ndarray]  # item pks (int64), raw scores (float32), best first
    primary_model: str | None  # items this model knows but did not list rank below the list
    sources: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    tie_counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int16))
    # ^ per in_network item: how many of the user's ties engaged with or posted it
    prepared: Prepared | None = None  # the first pages ranked ahead (None: ranked per page)

    def to_bytes(self) -> bytes:
        """A compact binary form: a JSON header line, then the arrays' raw bytes."""
        arrays = [self.primary[0], self.primary[1]]
        lengths = {"primary": len(self.primary[0])}
        for name in MODEL_SOURCES:
            pks, strengths = self.sources.get(name, (np.empty(0, np.int64), np.empty(0)))
            arrays += [pks, strengths]
            lengths[name] = len(pks)
        header = {
            "user_pk": self.user_pk,
            "stamp": self.stamp,
            "events": self.events,
            "computed": self.computed,
            "ranking": self.ranking,
            "personal": self.personal,
            "primary_model": self.primary_model,
            "lengths": lengths,
        }
        if self.prepared is not None:
            header["prepared"] = self.prepared.header()
        body = b"".join(
            np.ascontiguousarray(a, dtype=np.int64 if i % 2 == 0 else np.float32).tobytes()
            for i, a in enumerate(arrays)
        )
        counts = np.ascontiguousarray(self.tie_counts, dtype=np.int16).tobytes()
        tail = self.prepared.body() if self.prepared is not None else b""
        return orjson.dumps(header) + b"\n" + body + counts + tail

    @classmethod
    def from_bytes(cls, raw: bytes) -> Candidates:
        head, _, body = raw.partition(b"\n")
        header = orjson.loads(head)
        lengths = header["lengths"]
        offset = 0

        def take(count: int, dtype: type) -> np.ndarray:
            nonlocal offset
            array = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
            offset += array.nbytes
            return array

        def pair(count: int) -> tuple[np.ndarray, np.ndarray]:
            return take(count, np.int64), take(count, np.float32)

        primary = pair(lengths["primary"])
        found = {name: pair(lengths[name]) for name in MODEL_SOURCES}
        counts = take(lengths["in_network"], np.int16)
        prepared = header.get("prepared")
        return cls(
            user_pk=header["user_pk"],
            stamp=header["stamp"],
            events=header["events"],
            computed=header["computed"],
            ranking=header["ranking"],
            personal=header["personal"],
            primary=primary,
            primary_model=header["primary_model"],
            sources={name: arrays for name, arrays in found.items() if len(arrays[0])},
            tie_counts=counts,
            prepared=Prepared.read(prepared, take) if prepared is not None else None,
        )


def model_stamp(models: ModelStore) -> str:
    """The versions of every served model, as one string: records computed under another
    stamp are from older models (the refresher recomputes them all after ``agora train``)."""
    return ";".join(f"{name}={version}" for name, version in sorted(models.versions().items()))


def user_ties(session: Session, user_pks: list[int]) -> dict[int, dict[int, float]]:
    """Per user: the users they follow, befriended or trust, with summed edge weights."""
    ties: dict[int, dict[int, float]] = {pk: {} for pk in user_pks}
    for source, target, weight in session.execute(
        select(SocialEdge.source_id, SocialEdge.target_id, SocialEdge.weight).where(
            SocialEdge.source_id.in_(user_pks), SocialEdge.type.in_(queries.CHOSEN_TIES)
        )
    ):
        mine = ties[source]
        mine[target] = mine.get(target, 0.0) + float(weight or 1.0)
    return ties


def model_pks(
    models: ModelStore, cache: FeedCache, snapshot: Snapshot, scored: sources.Scored
) -> np.ndarray:
    """Catalogue pk of each item of ``scored``'s model (-1: not in the catalogue), built once
    per model version and catalogue."""

    def build() -> np.ndarray:
        at = np.fromiter(
            (snapshot.index.get(str(i), -1) for i in scored.item_ids),
            np.int64,
            len(scored.item_ids),
        )
        return np.where(at >= 0, snapshot.pks[np.maximum(at, 0)] if len(snapshot.pks) else -1, -1)

    version = f"{models.versions().get(scored.name)}@{snapshot.generation}"
    return cache.per_model(f"{scored.name}:pks", version, build)


def _ranked(to_pk: np.ndarray, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    pks = to_pk[items]
    keep = pks >= 0
    return pks[keep], np.asarray(values, dtype=np.float32)[keep]


def _top(to_pk: np.ndarray, scored: sources.Scored, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` items of a model's list (as pks) with strengths in (0, 1] by rank."""
    items = scored.items[:k]
    return _ranked(to_pk, items, 1.0 - np.arange(len(items)) / max(len(items), 1))


def _as_pks(snapshot: Snapshot, strengths: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """A source's {external id: strength} as (pks, strengths), items not in the catalogue
    dropped, strongest first."""
    pairs = [
        (int(snapshot.pks[pos]), value)
        for item, value in strengths.items()
        if (pos := snapshot.index.get(item)) is not None
    ]
    pairs.sort(key=lambda p: -p[1])
    return (
        np.fromiter((p for p, _ in pairs), np.int64, len(pairs)),
        np.fromiter((v for _, v in pairs), np.float32, len(pairs)),
    )


def _primary(to_pk: np.ndarray, scored: sources.Scored) -> tuple[np.ndarray, np.ndarray]:
    return _ranked(to_pk, scored.items[:PRIMARY_DEPTH], scored.scores[:PRIMARY_DEPTH])


def compute_candidates(
    session: Session,
    models: ModelStore,
    cache: FeedCache,
    user_pk: int,
    user_id: str,
    rows: list,
    defaults: FeedConfig,
    weights: Mapping[str, float],
    now: datetime,
    ties: dict[int, float] | None = None,
) -> Candidates:
    """The user's ready candidates from the served models, their events (``rows``, as
    :func:`agora.serving.service.user_event_rows` reads them) and their ties' activity
    (``ties``: :func:`user_ties` of the user, read here when not given)."""
    stamp = model_stamp(models)  # first: a record computed across a reload says the older
    snapshot = cache.catalogue.get(session, models=stamp)
    k = defaults.candidates_per_source
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ranking_name = None
    with contextlib.suppress(ModelUnavailable):
        ranking_name = resolve_model(models, defaults.ranking_model)
    ranking = None
    if ranking_name is not None:
        ranking = sources.scored_items(models, cache, ranking_name, user_id, rows, weights)
        if ranking is not None:
            arrays["collaborative"] = _top(model_pks(models, cache, snapshot, ranking), ranking, k)
    for source, name in (("sequential", SEQUENTIAL_MODEL), ("content", sources.CONTENT_MODEL)):
        if name != ranking_name and rows:
            scored = sources.scored_items(models, cache, name, user_id, rows, weights)
            if scored is not None:
                arrays[source] = _top(model_pks(models, cache, snapshot, scored), scored, k // 2)
    if ties is None:
        ties = user_ties(session, [user_pk])[user_pk]
    network = sources.in_network(session, cache, ties, weights, now, defaults.in_network_days, k)
    held = snapshot.positions(network.items) >= 0  # items stored since the catalogue was read
    arrays["in_network"] = (network.items[held], network.strengths[held])
    recent = sources.recent_items(snapshot, now.timestamp(), k)
    unseen = sources.new_content(models, cache, snapshot, recent, rows, weights, k // 2)
    if unseen:  # posted after the content model was trained: ahead of its own list
        listed = arrays.get("content", (np.empty(0, np.int64), np.empty(0, np.float32)))
        new_pks, new_strengths = _as_pks(snapshot, unseen)
        older = ~np.isin(listed[0], new_pks)
        arrays["content"] = (
            np.concatenate([new_pks, listed[0][older]]),
            np.concatenate([new_strengths, listed[1][older]]),
        )

    personal = ranking is not None and ranking.personal
    primary = (
        _primary(model_pks(models, cache, snapshot, ranking), ranking)
        if personal
        else (np.empty(0, np.int64), np.empty(0, np.float32))
    )
    return Candidates(
        user_pk=user_pk,
        stamp=stamp,
        events=len(rows),
        computed=now.timestamp(),
        ranking=ranking_name if ranking is not None else None,
        personal=personal,
        primary=primary,
        primary_model=ranking_name if personal else None,
        sources={name: pair for name, pair in arrays.items() if len(pair[0])},
        tie_counts=network.ties[held],
    )


def compute_global(
    session: Session,
    models: ModelStore,
    cache: FeedCache,
    defaults: FeedConfig,
    weights: Mapping[str, float],
    now: datetime,
) -> Candidates:
    """The record everybody shares: ``trending`` (the trending model's list, or the store's
    own popularity of the last 30 days before any training), also the primary list of users
    the ranking model cannot personalise for."""
    stamp = model_stamp(models)
    snapshot = cache.catalogue.get(session, models=stamp)
    k = defaults.candidates_per_source
    trending = sources.scored_items(models, cache, sources.TRENDING_MODEL, "", [], weights)
    if trending is not None:
        to_pk = model_pks(models, cache, snapshot, trending)
        listed = _top(to_pk, trending, k)
        primary, primary_model = _primary(to_pk, trending), sources.TRENDING_MODEL
    else:
        listed = primary = _as_pks(snapshot, sources.popular(session, now, k))
        primary_model = None
    return Candidates(
        user_pk=EVERYONE,
        stamp=stamp,
        events=0,
        computed=now.timestamp(),
        ranking=None,
        personal=False,
        primary=primary,
        primary_model=primary_model,
        sources={"trending": listed},
    )
