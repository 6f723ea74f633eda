"""Recommendations answered from the ready records (``GET /users/{id}/recommendations``).

The refresher keeps each user's record (:mod:`agora.feed.candidates`), whose ``primary`` list
is the ranking model's best ``PRIMARY_DEPTH`` items for them, scored with all their events.
When a request asks for that model (or the default, when it names the same one) and the
record is current (computed with the served model versions and the user's event count as
:class:`~agora.feed.state.UserStates` holds it), the answer is that list: catalogue positions
to external ids, minus the items the user touched, their own posts and what moderation took
down, at most ``max_per_thread`` items of one thread. That is what
:func:`agora.serving.service.recommend` computes, without scoring. Everything else (another
model, a user the store does not know or without a current personal record, a list the
filters leave shorter than ``n``) is left to the route's computed path; a user whose record is
behind their events is queued for the refresher meanwhile. Titles, tags and authors come from
the catalogue, so an item deleted or edited since its last full reload (``reload_seconds``)
is answered as it was until then; scores are the record's (float32).

Answers are kept serialized per process, keyed by the user, the model, ``n``, the served model
versions, the user's event count and the catalogue snapshot (a current record is a function of
the versions and the events): a repeated request is one lookup in memory, without the record,
and a new event (this process's write routes tail it at once, the others within
``tail_seconds``), a new model or a catalogue change makes a new key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from agora.feed.bounded import Bounded
from agora.feed.cache import FeedCache, Snapshot
from agora.feed.candidates import PRIMARY_DEPTH, model_stamp
from agora.feed.ready import Held
from agora.feed.state import UserState
from agora.serving.service import ModelStore, Recommendation


def first_per_group(groups: np.ndarray, limit: int) -> np.ndarray:
    """Which entries are among the first ``limit`` of their group, in the given order."""
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    rank = np.empty(len(groups), np.int64)
    rank[order] = np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    return rank < limit


def ready_list(
    snapshot: Snapshot, held: Held, user: UserState, model: str, n: int, max_per_thread: int
) -> list[Recommendation] | None:
    """The user's top ``n`` from their record's primary list (see the module docstring); None
    when the filters leave fewer than ``n`` of a list the record cut at ``PRIMARY_DEPTH``."""
    positions, scores = held.placed(snapshot).primary
    keep = ~np.isin(positions, snapshot.positions(user.touched_array()))
    keep &= snapshot.author_pks[positions] != user.pk
    keep &= ~snapshot.removed_mask(positions)
    positions, scores = positions[keep], scores[keep]
    if max_per_thread > 0:
        one = first_per_group(snapshot.thread_codes[positions], max_per_thread)
        positions, scores = positions[one], scores[one]
    if len(positions) < n and len(held.record.primary[0]) >= PRIMARY_DEPTH:
        return None
    return [
        Recommendation(
            item_id=snapshot.ids[p],
            score=score,
            model=model,
            title=snapshot.titles[p],
            author_id=snapshot.authors[p],
            tags=snapshot.tags[p],
            created=snapshot.created_at[p],
        )
        for p, score in zip(positions[:n].tolist(), scores[:n].tolist(), strict=True)
    ]


class ReadyRecommendations:
    """Answers from the ready records (:class:`agora.serving.service.ReadyAnswers`, which the
    app hands to the route); ``max_answers`` serialized answers are kept ``ttl_seconds``."""

    def __init__(
        self,
        cache: FeedCache,
        models: ModelStore,
        sessions: sessionmaker[Session],
        max_per_thread: int,
        max_answers: int = 20_000,
        ttl_seconds: float = 600.0,
    ):
        self.cache = cache
        self.models = models
        self.sessions = sessions
        self.max_per_thread = max_per_thread
        self._answers = Bounded(ttl_seconds, max_answers)
        self._lock = threading.Lock()

    def items(self, user_id: str, model: str, n: int) -> list[Recommendation] | None:
        """The user's top ``n`` from their ready list (None: the route computes them)."""
        with self.sessions() as session:  # connects only to read what memory lacks
            found = self._find(session, user_id, model)
        return ready_list(*found, model, n, self.max_per_thread) if found is not None else None

    def kept(self, user_id: str, model: str, n: int) -> bytes | None:
        """The answer :meth:`answer` gave last, if it still holds, from memory alone (None:
        ask :meth:`answer`): the route calls it on its event loop."""
        snapshot = self.cache.catalogue.held()
        user = self.cache.states.held(user_id)
        if snapshot is None or user is None:
            return None
        with self._lock:
            return self._answers.get(_key(user_id, model, n, self.models, snapshot, user))

    def answer(
        self, user_id: str, model: str, n: int, render: Callable[[list[Recommendation]], bytes]
    ) -> bytes | None:
        """``render`` of :meth:`items`, kept (see the module docstring)."""
        with self.sessions() as session:
            found = self._find(session, user_id, model)
        if found is None:
            return None
        snapshot, _, user = found
        key = _key(user_id, model, n, self.models, snapshot, user)
        with self._lock:
            body = self._answers.get(key)
        if body is None:
            recs = ready_list(*found, model, n, self.max_per_thread)
            if recs is None:
                return None
            body = render(recs)
            with self._lock:
                self._answers.put(key, body)
        return body

    def _find(
        self, session: Session, user_id: str, model: str
    ) -> tuple[Snapshot, Held, UserState] | None:
        """The catalogue, the user's current personal record from ``model`` and their state."""
        stamp = model_stamp(self.models)
        snapshot = self.cache.catalogue.get(session, models=stamp)
        user = self.cache.states.known(session, user_id)
        if user is None:
            return None
        held, status = self.cache.ready.find(user.pk, user.events, stamp, snapshot)
        if held is None or status != "ready" or not held.record.personal:
            return None
        if held.record.primary_model != model:
            return None
        return snapshot, held, user


def _key(
    user_id: str, model: str, n: int, models: ModelStore, snapshot: Snapshot, user: UserState
) -> tuple:
    """What a kept answer depends on: the request, the served model versions, the user's
    events (a current record is a function of these two) and the catalogue."""
    return (user_id, model, n, model_stamp(models), user.events, snapshot.generation,
            snapshot.removed)  # fmt: skip
