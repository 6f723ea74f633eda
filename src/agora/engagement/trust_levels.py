"""Trust levels: the metrics each level requires (read events, likes, visits, upheld flags
over a window), what a store without some events counts instead, each user's level now and
what they still need, and the stored levels the ledger keeps up to date."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, true
from sqlalchemy.orm import Session

from agora.db.engine import insert_for
from agora.db.tables import Event, Item, User
from agora.engagement.config import EngagementConfig, TrustRequirements
from agora.engagement.models import (
    ActiveDay,
    PointsTotal,
    TrustState,
)
from agora.engagement.service import chunks, more_of
from agora.ingest.service import known_user_pk


@dataclass
class EarlyCounts:
    """Trust counts read from the events alone before the state row is locked (the slow part
    of a catch-up: on SQLite, the lock is the database's write lock, which event writes wait
    for), the pending events they saw, and the last of them: the catch-up applies up to it."""

    events: set[int] = field(default_factory=set)
    counts: dict[int, dict[str, int | None]] = field(default_factory=dict)
    upto: int | None = None
    stand_ins: Substitutions | None = None


# -- trust levels -------------------------------------------------------------------------------
METRICS = tuple(TrustRequirements.model_fields)
#: The metrics read from the events table alone (the others from the derived tables).
EVENT_METRICS = tuple(m for m in METRICS if m not in ("days_visited", "points"))


#: Events that stand in for likes in a store without any like event (a Stack Exchange dump
#: has no voter ids, but favourites and accepted answers): approval given and received.
LIKE_SUBSTITUTES = ("bookmark", "accept", "share")


@dataclass
class Substitutions:
    """Requirements the store's data cannot support, each with what is counted instead."""

    read_events: tuple[str, ...] | None = None  # None: read events as configured
    like_events: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)  # metric -> what is counted instead


def _any_stored(session: Session, types: Iterable[str]) -> bool:
    """Whether any event of these types is stored (one query that stops at the first)."""
    stmt = select(Event.id).where(Event.type.in_(tuple(types))).limit(1)
    return session.scalar(stmt) is not None


def _stored_types(session: Session, types: Iterable[str]) -> set[str]:
    found = set()
    for kind in types:
        if session.scalar(select(Event.id).where(Event.type == kind).limit(1)) is not None:
            found.add(kind)
    return found


def substitutions(session: Session, config: EngagementConfig) -> Substitutions:
    """What trust counts instead of requirements the store has no data for: with no read event
    at all (an imported dump has no views), ``posts_read`` counts the posts the user engaged
    with by any event; with no like event at all, the like counts use bookmarks, accepted
    answers and shares (the approvals a dump does record)."""
    out = Substitutions(like_events=tuple(config.like_events))
    if not _any_stored(session, config.read_events):
        out.read_events = ()
        out.reasons["posts_read"] = (
            "posts engaged with (any event), because the store has no read events "
            f"({', '.join(config.read_events)})"
        )
    if not _any_stored(session, config.like_events):
        stand_ins = tuple(sorted(_stored_types(session, LIKE_SUBSTITUTES)))
        if stand_ins:
            out.like_events = stand_ins
            why = (
                f"{' / '.join(stand_ins)} events, because the store has no like events "
                f"({', '.join(config.like_events)})"
            )
            out.reasons["likes_given"] = f"{why}: given"
            out.reasons["likes_received"] = f"{why}: received on the user's posts"
    return out


def trust_metrics(
    session: Session,
    config: EngagementConfig,
    users: Sequence[int],
    now: datetime,
    stand_ins: Substitutions | None = None,
    which: Iterable[str] = METRICS,
) -> dict[int, dict[str, int]]:
    """Per user: the counts trust levels ask for (see :class:`TrustRequirements`; ``which``
    of them), with the requirements the store has no data for counted as
    :func:`substitutions` says. The counts over the user's own events come from one query."""
    which = set(which)
    out = {u: dict.fromkeys(which, 0) for u in users}
    if not out:
        return out
    stand_ins = stand_ins or substitutions(session, config)
    liked = Event.type.in_(stand_ins.like_events)
    others = Event.user_id != func.coalesce(Item.author_id, -1)
    own = _own_event_counts(config, stand_ins, liked, now, which)
    for part in chunks(list(users)):
        queries: list[tuple[list[str], Any]] = []
        if "days_visited" in which:
            queries.append(
                (
                    ["days_visited"],
                    select(ActiveDay.user_id, func.count())
                    .where(ActiveDay.user_id.in_(part))
                    .group_by(ActiveDay.user_id),
                )
            )
        if own:
            queries.append(
                (
                    list(own),
                    select(Event.user_id, *own.values())
                    .where(Event.user_id.in_(part))
                    .group_by(Event.user_id),
                )
            )
        if "likes_received" in which:
            queries.append(
                (
                    ["likes_received"],
                    select(Item.author_id, func.count())
                    .select_from(Event)
                    .join(Item, Item.id == Event.item_id)
                    .where(Item.author_id.in_(part), liked, others)
                    .group_by(Item.author_id),
                )
            )
        if "points" in which:
            queries.append(
                (
                    ["points"],
                    select(PointsTotal.user_id, PointsTotal.points).where(
                        PointsTotal.user_id.in_(part)
                    ),
                )
            )
        for metrics, stmt in queries:
            for user, *counts in session.execute(stmt):
                out[user].update(zip(metrics, map(int, counts), strict=True))
    return out


def _own_event_counts(
    config: EngagementConfig, stand_ins: Substitutions, liked: Any, now: datetime,
    which: set[str],
) -> dict[str, Any]:  # fmt: skip
    """The aggregates over a user's own events for the metrics in ``which``."""
    read = Event.type.in_(config.read_events) if stand_ins.read_events is None else true()
    flagged = (Event.type == config.flag_event) & (
        Event.timestamp >= now - timedelta(days=config.flag_window_days)
    )
    aggregates = {
        "posts_read": func.count(func.distinct(case((read, Event.item_id)))),
        "topics_entered": func.count(func.distinct(Event.item_id)),
        "likes_given": func.count(case((liked, 1))),
        "replies": func.count(case((Event.type.in_(config.reply_events), 1))),
        "max_upheld_flags": func.count(case((flagged, 1))),
    }
    return {m: aggregate for m, aggregate in aggregates.items() if m in which}


@dataclass
class Requirement:
    metric: str
    need: int
    have: int
    met: bool
    missing: str | None  # a sentence when not met


@dataclass
class LevelCheck:
    level: int
    name: str
    met: bool
    requirements: list[Requirement]


LABELS = {
    "days_visited": "days visited",
    "posts_read": "posts read",
    "topics_entered": "topics entered",
    "likes_given": "likes given",
    "likes_received": "likes received",
    "replies": "replies",
    "points": "points",
}


SUBSTITUTE_LABELS = {
    "posts_read": "posts engaged with",
    "likes_given": "approvals given",
    "likes_received": "approvals received",
}


def _met(metric: str, have: float | None, need: int) -> bool:
    """Whether ``have`` meets the requirement; None: not counted, as it cannot change the
    level (see :func:`decides`)."""
    if have is None:
        return True
    return have <= need if metric == "max_upheld_flags" else have >= need


def level_requirements(config: EngagementConfig) -> list[tuple[int, str, dict[str, int]]]:
    """(level, name, {metric: need}) of each trust level, the unset requirements left out."""
    return [
        (tl.level, tl.name, {m: n for m, n in tl.requires.model_dump().items() if n is not None})
        for tl in config.trust_levels
    ]


def _check_levels(
    config: EngagementConfig, metrics: dict[str, int], substituted: Iterable[str] = ()
) -> list[LevelCheck]:
    labels = {**LABELS, **{m: SUBSTITUTE_LABELS[m] for m in substituted}}
    checks = []
    for level, name, requires in level_requirements(config):
        reqs = []
        for metric, need in requires.items():
            have = metrics[metric]
            met = _met(metric, have, need)
            if met:
                missing = None
            elif metric == "max_upheld_flags":
                missing = (
                    f"{have} upheld flag{'s' * (have != 1)} in the last "
                    f"{config.flag_window_days:g} days (at most {need} allowed)"
                )
            else:
                missing = f"{more_of(need - have, labels[metric])} ({have}/{need})"
            reqs.append(Requirement(metric, need, have, met, missing))
        checks.append(LevelCheck(level, name, all(r.met for r in reqs), reqs))
    return checks


def _level(
    requirements: list[tuple[int, str, dict[str, int]]], metrics: Mapping[str, float | None]
) -> int:
    """The highest level whose requirements, and every lower level's, are met (a metric not
    in ``metrics`` counts as met)."""
    reached = 0
    for level, _, requires in requirements:
        if not all(_met(m, metrics.get(m), need) for m, need in requires.items()):
            break
        reached = level
    return reached


def decides(
    requirements: list[tuple[int, str, dict[str, int]]],
    metrics: Mapping[str, float | None],
    metric: str,
) -> bool:
    """Whether ``metric`` can change the level of a user with ``metrics`` (those not counted
    yet taken as met): the level with none of it and with any amount of it differ."""
    return _level(requirements, {**metrics, metric: 0}) != _level(
        requirements, {**metrics, metric: math.inf}
    )


def store_trust(
    session: Session, config: EngagementConfig, users: list[int], now: datetime,
    early: EarlyCounts | None = None, unseen: set[int] | None = None,
) -> None:  # fmt: skip
    """The trust level of each of ``users`` at ``now``: one upsert for all of them. The early
    event counts are used for the users no unseen event touched (the derived-table counts
    are read now)."""
    ready = early.counts if early else {}
    known = [u for u in users if u in ready and u not in (unseen or ())]
    stand_ins = early.stand_ins if early and early.stand_ins else substitutions(session, config)
    derived = [m for m in METRICS if m not in EVENT_METRICS]
    metrics = trust_metrics(session, config, known, now, stand_ins, which=derived)
    for user in known:
        metrics[user].update(ready[user])
    rest = [u for u in users if u not in metrics]
    metrics.update(trust_metrics(session, config, rest, now, stand_ins))
    requirements = level_requirements(config)
    table = TrustState.__table__
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={"level": stmt.excluded.level, "updated": stmt.excluded.updated},
    )
    rows = [
        {"user_id": user, "level": _level(requirements, metrics[user]), "updated": now}
        for user in users
    ]
    for part in chunks(rows):
        session.execute(stmt, part)


@dataclass
class TrustReport:
    user_id: str
    level: int
    name: str
    metrics: dict[str, int]
    levels: list[LevelCheck]
    next_level: str | None  # what the next level still needs, in one sentence
    substituted: dict[str, str] = field(default_factory=dict)  # metric -> counted instead


def trust(session: Session, config: EngagementConfig, user_id: str, now: datetime) -> TrustReport:
    """The user's trust level at ``now``, every level's requirements, and what is missing."""
    pk = known_user_pk(session, user_id)
    stand_ins = substitutions(session, config)
    metrics = trust_metrics(session, config, [pk], now, stand_ins)[pk]
    checks = _check_levels(config, metrics, stand_ins.reasons)
    level = _level(level_requirements(config), metrics)
    names = {c.level: c.name for c in checks}
    upcoming = next((c for c in checks if c.level > level), None)
    sentence = None
    if upcoming is not None:
        missing = [r.missing for r in upcoming.requirements if r.missing]
        sentence = f"to reach level {upcoming.level} ({upcoming.name}): " + "; ".join(missing)
    return TrustReport(
        user_id, level, names.get(level, "new"), metrics, checks, sentence, stand_ins.reasons
    )


def trust_distribution(
    session: Session, config: EngagementConfig, now: datetime
) -> dict[int, int]:  # fmt: skip
    """Users per trust level (0 to the highest configured) as stored at their latest event;
    users who never had one are at level 0."""
    top = max((t.level for t in config.trust_levels), default=0)
    counts = dict.fromkeys(range(top + 1), 0)
    rows = session.execute(
        select(TrustState.level, func.count())
        .where(TrustState.level > 0)
        .group_by(TrustState.level)
    )
    counts.update({int(level): int(n) for level, n in rows})
    counts[0] = (session.scalar(select(func.count()).select_from(User)) or 0) - sum(counts.values())
    return counts
