"""Export and erasure of one person's data: every stored row about them, and what the trained
models learned from them.

Which rows are about a user is read from the tables themselves: every column with a foreign
key to ``users.id`` (:func:`user_columns`), so a table a domain adds later is exported and
erased without a change here. Three kinds of reference have no foreign key and are listed in
:data:`UNKEYED`: the feed's ready candidates and its refresh queue (keyed by the user's row
number), other users' muted authors (a JSON list of row numbers) and the stored heavy analytics
results (JSON naming users by external id), which are dropped and recomputed.

Erasure (:func:`erase`) rewrites every version of every model on disk that knew the user
(their id and their per-user rows are removed at once, :mod:`agora.models.artifacts`), removes
those rows in one transaction (:func:`erase_user`) and records it in ``user_erasures`` (who
asked, when, what was removed: counts, never the data). Later,
:func:`retrain_after_erasures` fits the models again without their events, for what item-side
state (item factors, item-item similarities, sequences' statistics) learned from them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Column, String, Table, and_, cast, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from agora.analytics.models import ComputedResult
from agora.api.dp_models import DPRelease
from agora.audit.models import AdminAudit
from agora.config import Settings
from agora.db import queries
from agora.db.engine import transaction
from agora.db.migrations.domains import METADATA
from agora.db.pseudonyms import sealed_text, sealer_for_session
from agora.db.tables import Item, SocialEdge, User, UserErasure
from agora.evaluation.training import train_from_store
from agora.feed.models import FeedCandidates, FeedRefreshWanted, FeedSettings
from agora.feed.store import CandidateStore
from agora.models.artifacts import forget_user_everywhere, list_artifacts

log = logging.getLogger(__name__)

EXPORT_FORMAT = "agora-user-export/1"
#: References to a user without a foreign key (see the module docstring).
UNKEYED = {
    "feed_candidates": "the feed's ready candidates (by row number; Redis too when set)",
    "feed_refresh_wanted": "the feed refresher's queue (by row number)",
    "feed_settings.muted_authors": "other users' mutes of them (row numbers in a JSON list)",
    "analytics_results": "stored heavy analytics naming them (dropped, recomputed later)",
    "admin_audit.path_params": "admin actions on their paths (the id left out, the rest kept)",
    "privacy_dp_releases": "released private figures naming them (their entries left out)",
}
Content = Literal["keep", "delete"]
#: How long a claimed retrain may run before another process may claim it again.
RETRAIN_CLAIM_SECONDS = 3 * 3600


def user_columns() -> list[Column[Any]]:
    """Every column with a foreign key to ``users.id``, in table dependency order."""
    return [
        column
        for table in METADATA.sorted_tables
        for column in table.columns
        if any(fk.column.table.name == "users" for fk in column.foreign_keys)
    ]


# -- export ------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None  # no exported table holds bytes; say nothing rather than dump them
    return value


def _external_ids(session: Session, table: Table, pks: set[int]) -> dict[int, str]:
    if not pks:
        return {}
    rows = session.execute(
        select(table.c.id, table.c.external_id).where(table.c.id.in_(sorted(pks)))
    )
    return {int(pk): external for pk, external in rows}


def _readable(session: Session, table: Table, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows as dicts, each foreign key to a table with external ids (users, items, groups,
    experiments...) given as that external id, the internal row numbers left out."""
    translate: dict[str, dict[int, str]] = {}
    for column in table.columns:
        targets = [fk.column.table for fk in column.foreign_keys]
        if targets and "external_id" in targets[0].c:
            pks = {int(r._mapping[column.name]) for r in rows if r._mapping[column.name]}
            translate[column.name] = _external_ids(session, targets[0], pks)
    out = []
    for row in rows:
        values = dict(row._mapping)
        if "id" in values and table.c.id.primary_key and "external_id" not in values:
            values.pop("id")
        for name, ids in translate.items():
            if values[name] is not None:
                values[name] = ids.get(int(values[name]))
        out.append({k: _plain(v) for k, v in values.items()})
    return out


def export_user(session: Session, user_id: str) -> dict[str, Any] | None:
    """Everything stored about ``user_id`` as one JSON-ready document, or None for an unknown
    user: the profile, then per table every row that refers to them (events, edges both ways,
    memberships with their segment groups, feed settings, feedback and impressions, points,
    badges, trust, tasks, flags, experiment exposures, ad impressions, clicks and conversions...)
    and the items they wrote."""
    pk = queries.user_pk(session, user_id)
    if pk is None:
        return None
    profile = session.get(User, pk)
    assert profile is not None
    tables: dict[str, list[dict[str, Any]]] = {}
    for column in user_columns():
        table = column.table
        if table.name == "items":
            continue  # their posts: below, as "items"
        rows = session.execute(select(table).where(column == pk)).all()
        if rows:
            tables.setdefault(table.name, []).extend(_readable(session, table, rows))
    items = session.execute(select(Item.__table__).where(Item.author_id == pk)).all()
    return {
        "format": EXPORT_FORMAT,
        "exported": datetime.now(UTC).isoformat(),
        "user_id": profile.external_id,
        "profile": {"created": _plain(profile.created), "attributes": profile.attributes},
        "items": _readable(session, Item.__table__, items),
        "tables": tables,
    }


# -- erasure -----------------------------------------------------------------------------------
@dataclass
class ErasureRecord:
    """What an erasure removed (counts per table and reference), as the audit trail keeps it."""

    id: int
    user_pk: int
    requested_by: str
    requested: datetime
    content: str
    removed: dict[str, int]
    artifacts: dict[str, list[str]]
    retrain: str
    retrained: datetime | None
    retrained_versions: dict[str, str]
    #: users with a social edge to or from the erased user (not kept): their feed records
    #: counted the erased user's activity, so the refresher redoes them
    ties: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, row: UserErasure) -> ErasureRecord:
        return cls(
            row.id,
            row.user_pk,
            row.requested_by,
            row.requested,
            row.content,
            dict(row.removed or {}),
            dict(row.artifacts or {}),
            row.retrain,
            row.retrained if row.retrain == "done" else None,
            dict(row.retrained_versions or {}),
        )


def _mentions(value: Any, user_id: str) -> bool:
    """Whether a JSON value holds ``user_id`` as a string anywhere (a key or a value)."""
    if isinstance(value, str):
        return value == user_id
    if isinstance(value, dict):
        return any(k == user_id or _mentions(v, user_id) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions(v, user_id) for v in value)
    return False


def _without(value: Any, user_id: str) -> Any:
    """A JSON value with ``user_id`` left out: as a value it becomes null, as a key its entry
    goes."""
    if isinstance(value, str):
        return None if value == user_id else value
    if isinstance(value, dict):
        return {k: _without(v, user_id) for k, v in value.items() if k != user_id}
    if isinstance(value, list):
        return [_without(v, user_id) for v in value]
    return value


def _rows_without(value: Any, user_id: str) -> Any:
    """A JSON value whose lists lose the entries that name ``user_id`` (a ranked list keeps
    the others, each still valid)."""
    if isinstance(value, dict):
        return {k: _rows_without(v, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_rows_without(v, user_id) for v in value if not _mentions(v, user_id)]
    return value


def _erase_unkeyed(session: Session, pk: int, user_id: str) -> dict[str, int]:
    removed = {
        "feed_candidates": session.execute(
            delete(FeedCandidates).where(FeedCandidates.user_id == pk)
        ).rowcount,
        "feed_refresh_wanted": session.execute(
            delete(FeedRefreshWanted).where(FeedRefreshWanted.user_id == pk)
        ).rowcount,
    }
    muting = 0
    for settings in session.scalars(select(FeedSettings).where(FeedSettings.user_id != pk)):
        authors = settings.muted_authors if isinstance(settings.muted_authors, list) else []
        if pk in authors:
            settings.muted_authors = [a for a in authors if a != pk]
            muting += 1
    removed["feed_settings.muted_authors"] = muting
    results = 0
    for result in session.scalars(select(ComputedResult)):
        if _mentions(result.payload, user_id):
            result.payload, result.computed_at = None, None
            result.requested = datetime.now(UTC)
            results += 1
    removed["analytics_results"] = results
    audited = 0
    mentioning = cast(AdminAudit.path_params, String).contains(
        json.dumps(sealed_text(session, user_id))
    )
    for action in session.scalars(select(AdminAudit).where(mentioning)):
        action.path_params = _without(action.path_params, user_id)
        audited += 1
    removed["admin_audit.path_params"] = audited
    released = 0
    releases = select(DPRelease)  # sealed payloads (pseudonymous ids) are searched here
    if sealer_for_session(session) is None:
        plain = json.dumps(user_id)
        releases = releases.where(
            or_(
                cast(DPRelease.payload, String).contains(plain),
                cast(DPRelease.params, String).contains(plain),
            )
        )
    for release in session.scalars(releases):
        if not (_mentions(release.payload, user_id) or _mentions(release.params, user_id)):
            continue
        payload = _rows_without(release.payload, user_id)
        if _mentions(payload, user_id) or _mentions(release.params, user_id):
            session.delete(release)  # named elsewhere than in a row: released afresh when asked
        else:
            release.payload = payload
        released += 1
    removed["privacy_dp_releases"] = released
    return removed


def erase_user(
    session: Session,
    user_id: str,
    requested_by: str,
    content: Content = "keep",
    retrain: bool = True,
    now: datetime | None = None,
) -> ErasureRecord | None:
    """Remove every row about ``user_id`` (None for an unknown user) in the caller's
    transaction and record the erasure. ``content="delete"`` removes the items they wrote (with
    every event on them); ``"keep"`` leaves them on the platform without an author. The models
    are not touched here (:func:`erase` does both).

    The user's row is locked first: a feed refresher storing their ready candidates meanwhile
    holds it shared (:meth:`agora.feed.store.TableCandidates.put`), so its record is either
    stored before and removed here, or finds the user gone."""
    pk = session.scalar(select(User.id).where(User.external_id == user_id).with_for_update(of=User))
    if pk is None:
        return None
    now = now or datetime.now(UTC)
    edges = SocialEdge.__table__.c
    ties = {
        int(other)
        for source, target in session.execute(
            select(edges.source_id, edges.target_id).where(
                or_(edges.source_id == pk, edges.target_id == pk)
            )
        )
        for other in (source, target)
        if other != pk
    }
    removed: dict[str, int] = {}
    if content == "delete":
        removed["items"] = session.execute(delete(Item).where(Item.author_id == pk)).rowcount
    else:
        removed["items (author cleared)"] = session.execute(
            update(Item).where(Item.author_id == pk).values(author_id=None)
        ).rowcount
    removed.update(_erase_unkeyed(session, pk, user_id))
    for column in reversed(user_columns()):  # the tables that refer to others' rows first
        if column.table.name == "items":
            continue
        count = session.execute(delete(column.table).where(column == pk)).rowcount
        if count:
            key = column.table.name
            removed[key] = removed.get(key, 0) + count
    session.execute(delete(User).where(User.id == pk))
    removed["users"] = 1
    row = UserErasure(
        user_pk=pk,
        requested_by=requested_by,
        requested=now,
        content=content,
        removed={k: v for k, v in removed.items() if v},
        artifacts={},
        retrain="wanted" if retrain else "off",
        retrained=None,
        retrained_versions={},
    )
    session.add(row)
    session.flush()
    record = ErasureRecord.of(row)
    record.ties = ties
    return record


def erase(
    sessions: sessionmaker[Session],
    model_dir: Path,
    candidates: CandidateStore,
    user_id: str,
    requested_by: str,
    content: Content = "keep",
    retrain: bool = True,
) -> ErasureRecord | None:
    """The whole erasure of ``user_id`` (None for an unknown user; an artefact that still
    lists them loses them all the same).

    Every model version on disk forgets them first, so that when the other serving processes
    learn of the erasure from the store they reload versions already rewritten. Then the rows
    go (:func:`erase_user`, one transaction), with the feed's ready candidates wherever they are
    kept (Redis included), and versions saved meanwhile (a training run) are rewritten too.
    A fit without them follows later when ``retrain`` (:func:`retrain_after_erasures`)."""
    with sessions() as session:
        ids = sealer_for_session(session)
    artifacts = forget_user_everywhere(model_dir, user_id, ids)
    with transaction(sessions, writes=True) as session:
        record = erase_user(session, user_id, requested_by, content, retrain)
    if record is None:
        return None
    candidates.drop([record.user_pk])
    for tie in sorted(record.ties):
        candidates.want(tie)
    for name, versions in forget_user_everywhere(model_dir, user_id, ids).items():
        artifacts.setdefault(name, []).extend(versions)
    with transaction(sessions) as session:
        session.execute(
            update(UserErasure).where(UserErasure.id == record.id).values(artifacts=artifacts)
        )
    record.artifacts = artifacts
    log.info(
        "erasure %d: %d rows removed, %d model versions rewritten",
        record.id,
        sum(record.removed.values()),
        sum(len(v) for v in record.artifacts.values()),
    )
    return record


def erasures(session: Session, before: int | None = None, limit: int = 100) -> list[ErasureRecord]:
    """The audit trail, newest first (``before``: only erasures older than that id)."""
    query = select(UserErasure).order_by(UserErasure.id.desc()).limit(limit)
    if before is not None:
        query = query.where(UserErasure.id < before)
    return [ErasureRecord.of(row) for row in session.scalars(query)]


def erasure(session: Session, erasure_id: int) -> ErasureRecord | None:
    row = session.get(UserErasure, erasure_id)
    return None if row is None else ErasureRecord.of(row)


def erased_since(session: Session, after: int) -> list[tuple[int, int]]:
    """(erasure id, user row number) of the erasures after ``after``, oldest first: what the
    serving processes drop from memory."""
    rows = session.execute(
        select(UserErasure.id, UserErasure.user_pk)
        .where(UserErasure.id > after)
        .order_by(UserErasure.id)
    )
    return [(int(i), int(pk)) for i, pk in rows]


# -- fitting the models again without them ----------------------------------------------------
def claim_retrain(session: Session, delay_seconds: float, now: datetime) -> list[int]:
    """Claim the erasures waiting for a retrain whose newest is at least ``delay_seconds`` old
    (erasures close together share one fit), and stale claims of a process that died; returns
    their ids (empty: nothing to do, or another process claimed them)."""
    waiting = or_(
        UserErasure.retrain == "wanted",
        and_(
            UserErasure.retrain == "running",
            UserErasure.retrained < now - timedelta(seconds=RETRAIN_CLAIM_SECONDS),
        ),
    )
    newest = session.scalar(
        select(UserErasure.requested).where(waiting).order_by(UserErasure.id.desc()).limit(1)
    )
    if newest is None:
        return []
    newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
    if (now - newest).total_seconds() < delay_seconds:
        return []
    ids = list(session.scalars(select(UserErasure.id).where(waiting)))
    claimed = session.execute(
        update(UserErasure)
        .where(UserErasure.id.in_(ids), waiting)
        .values(retrain="running", retrained=now)
    ).rowcount
    return ids if claimed == len(ids) else []


def retrain_after_erasures(
    sessions: sessionmaker[Session], settings: Settings, delay_seconds: float = 0.0
) -> dict[str, str]:
    """Fit every model on disk again on the store as it is now (as ``agora train`` would, with
    the configured parameters), once for all the erasures waiting (see :func:`claim_retrain`),
    and mark them done with the new versions; returns model -> new version."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        ids = claim_retrain(session, delay_seconds, now)
    if not ids:
        return {}
    names = sorted({path.parent.name for path in list_artifacts(settings.model_dir)})
    try:
        with sessions() as session:
            trained = (
                train_from_store(
                    session,
                    names,
                    settings.model_dir,
                    settings.event_weights,
                    params=settings.model_params,
                    keep_versions=settings.keep_versions,
                )
                if names
                else []
            )
    except Exception:
        with transaction(sessions) as session:
            session.execute(
                update(UserErasure).where(UserErasure.id.in_(ids)).values(retrain="wanted")
            )
        raise
    versions = {t.name: t.path.name for t in trained}
    with transaction(sessions) as session:
        session.execute(
            update(UserErasure)
            .where(UserErasure.id.in_(ids))
            .values(retrain="done", retrained=datetime.now(UTC), retrained_versions=versions)
        )
    log.info("models fitted again after %d erasure(s): %s", len(ids), sorted(versions))
    return versions
