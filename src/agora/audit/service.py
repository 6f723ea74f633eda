"""Writing and reading the audit log of admin actions (plain functions over sessions).

What is kept of a request is :class:`AdminAction`; :func:`kept_path_params` leaves out the ids of
the routes in :data:`ERASURES`: the person erased by ``DELETE /users/{user_id}`` must not stay
findable by their id in the log of that very erasure, so only the parameter's name is kept
(with ``null``), which still says that a user was erased, by which key, when and how it went.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from agora.audit.models import AdminAudit
from agora.db.engine import transaction
from agora.ingest.schemas import as_utc

log = logging.getLogger(__name__)

#: Methods that do not change anything: not audited, but for :data:`AUDITED_READS`.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: (method, route template) of admin reads audited all the same: handing out a person's data.
AUDITED_READS: frozenset[tuple[str, str]] = frozenset({("GET", "/users/{user_id}/export")})
#: (method, route template) of the admin routes that erase a person: their path ids are left out.
ERASURES: frozenset[tuple[str, str]] = frozenset({("DELETE", "/users/{user_id}")})
#: Most entries one page of the log holds.
MAX_PAGE = 500


@dataclass(frozen=True)
class AdminAction:
    """One audited request (see :mod:`agora.audit.models`)."""

    at: datetime
    key_id: str
    method: str
    route: str
    status: int
    request_id: str | None
    path_params: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """A stored :class:`AdminAction` with its id (the cursor of the listing)."""

    id: int
    at: datetime
    key_id: str
    method: str
    route: str
    path_params: dict[str, str | None]
    status: int
    request_id: str | None


def kept_path_params(
    method: str, route: str, params: dict[str, Any], status: int
) -> dict[str, str | None]:
    """The path parameters the log keeps: every one as text, but names only for an erasure, and
    for an audited read that failed (asking for an erased person's export must not bring their
    id back into the store)."""
    if (method, route) in ERASURES or ((method, route) in AUDITED_READS and status >= 400):
        return dict.fromkeys(params)
    return {name: str(value) for name, value in params.items()}


def record(sessions: sessionmaker[Session], action: AdminAction) -> None:
    """Store ``action`` in its own transaction."""
    with transaction(sessions) as session:
        session.add(
            AdminAudit(
                at=action.at,
                key_id=action.key_id,
                method=action.method,
                route=action.route,
                path_params=action.path_params,
                status=action.status,
                request_id=action.request_id,
            )
        )


def prune(session: Session, before: datetime) -> int:
    """Delete the entries older than ``before``; returns how many went."""
    return session.execute(delete(AdminAudit).where(AdminAudit.at < before)).rowcount


def entries(
    session: Session,
    *,
    since: datetime | None = None,
    route: str | None = None,
    key_id: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> tuple[list[Entry], int | None]:
    """Entries newest first (at or after ``since``, of ``route`` and ``key_id`` when given, with
    ids below ``before``), at most ``limit``; and the cursor of the next page (None: no more)."""
    query = select(AdminAudit).order_by(AdminAudit.id.desc()).limit(limit + 1)
    if since is not None:
        query = query.where(AdminAudit.at >= since)
    if route is not None:
        query = query.where(AdminAudit.route == route)
    if key_id is not None:
        query = query.where(AdminAudit.key_id == key_id)
    if before is not None:
        query = query.where(AdminAudit.id < before)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    page = [
        Entry(
            id=row.id,
            at=as_utc(row.at),
            key_id=row.key_id,
            method=row.method,
            route=row.route,
            path_params=dict(row.path_params or {}),
            status=row.status,
            request_id=row.request_id,
        )
        for row in rows[:limit]
    ]
    return page, (page[-1].id if more and page else None)
