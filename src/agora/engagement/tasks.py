"""Tasks and contests: definitions (idempotent by id), a user's progress on the active ones,
and a task's leaderboard."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from agora.api.errors import Conflict, NotFound
from agora.db.tables import Event, Item
from agora.engagement.models import (
    Task,
)
from agora.engagement.service import external_users, more_of
from agora.ingest.schemas import as_utc
from agora.ingest.service import known_user_pk


class UnknownTask(NotFound):
    """No task has this id."""


class TaskConflict(Conflict):
    """A task with this id exists with another definition."""


# -- tasks and contests -------------------------------------------------------------------------
@dataclass
class TaskSpec:
    task_id: str
    title: str
    event_type: str
    target: int
    starts: datetime
    ends: datetime
    tag: str | None = None
    first_on_item: bool = False


def _spec(task: Task) -> TaskSpec:
    return TaskSpec(
        task.task_id,
        task.title,
        task.event_type,
        task.target,
        as_utc(task.starts),  # type: ignore[arg-type]
        as_utc(task.ends),  # type: ignore[arg-type]
        task.tag,
        task.first_on_item,
    )


def create_task(session: Session, spec: TaskSpec, now: datetime) -> tuple[TaskSpec, bool]:
    """Store a task; sending the same definition again changes nothing (returns created=False),
    another definition under the same id is a :class:`TaskConflict`."""
    found = session.scalar(select(Task).where(Task.task_id == spec.task_id))
    if found is not None:
        if _spec(found) != spec:
            raise TaskConflict(f"task {spec.task_id!r} exists with another definition")
        return spec, False
    session.add(Task(**spec.__dict__, created=now))
    session.flush()
    return spec, True


def list_tasks(session: Session, now: datetime, active: bool = False) -> list[TaskSpec]:
    """Every task (or only those running at ``now``), newest start first."""
    stmt = select(Task).order_by(Task.starts.desc(), Task.task_id)
    if active:
        stmt = stmt.where(Task.starts <= now, Task.ends > now)
    return [_spec(t) for t in session.scalars(stmt)]


def _task(session: Session, task_id: str) -> TaskSpec:
    found = session.scalar(select(Task).where(Task.task_id == task_id))
    if found is None:
        raise UnknownTask(f"task {task_id!r} not found")
    return _spec(found)


def _task_counts(session: Session, spec: TaskSpec, users: list[int] | None) -> Counter[int]:
    """Matching events per user inside the task's window (on its tag; the first on their item)."""
    stmt = select(Event.user_id).where(
        Event.type == spec.event_type, Event.timestamp >= spec.starts, Event.timestamp < spec.ends
    )
    if spec.first_on_item:
        earlier = aliased(Event)
        stmt = stmt.where(
            ~exists().where(
                earlier.item_id == Event.item_id,
                earlier.type == Event.type,
                (earlier.timestamp < Event.timestamp)
                | ((earlier.timestamp == Event.timestamp) & (earlier.id < Event.id)),
            )
        )
    if users is not None:
        stmt = stmt.where(Event.user_id.in_(users))
    if spec.tag is not None:
        stmt = stmt.add_columns(Item.tags).join(Item, Item.id == Event.item_id)
    counts: Counter[int] = Counter()
    for row in session.execute(stmt):
        if spec.tag is None or spec.tag in (row[1] or ()):
            counts[row[0]] += 1
    return counts


def _task_status(spec: TaskSpec, have: int, now: datetime) -> dict[str, Any]:
    done = have >= spec.target
    if done:
        message = f"done: {have}/{spec.target}"
    elif now >= spec.ends:
        message = f"ended with {have}/{spec.target}"
    elif now < spec.starts:
        message = f"starts {spec.starts:%Y-%m-%d %H:%M} UTC"
    else:
        more = more_of(spec.target - have, f"{spec.event_type} events")
        message = f"{more} by {spec.ends:%Y-%m-%d %H:%M} UTC"
    return {**spec.__dict__, "progress": min(have, spec.target), "count": have, "done": done,
            "message": message}  # fmt: skip


def user_tasks(
    session: Session, user_id: str, now: datetime, active: bool = True
) -> list[dict[str, Any]]:
    """The user's progress on every running task (every task with ``active=False``)."""
    pk = known_user_pk(session, user_id)
    out = []
    for spec in list_tasks(session, now, active=active):
        have = _task_counts(session, spec, [pk]).get(pk, 0)
        out.append(_task_status(spec, have, now))
    return out


def task_leaderboard(session: Session, task_id: str, now: datetime, n: int = 20) -> dict[str, Any]:
    """A task (contest) with its users ranked by matching events in its window."""
    spec = _task(session, task_id)
    counts = _task_counts(session, spec, None)
    ranked = sorted(counts.items(), key=lambda uc: (-uc[1], uc[0]))[:n]
    names = external_users(session, [u for u, _ in ranked])
    rows = [
        {"rank": rank, "user_id": names[u], "count": c, "done": c >= spec.target}
        for rank, (u, c) in enumerate(ranked, 1)
    ]
    return {**_task_status(spec, 0, now), "leaders": rows, "completed": sum(
        1 for c in counts.values() if c >= spec.target)}  # fmt: skip
