"""Experiments on feed variants: create, start and stop them, assign users and log their first
exposure, measure each arm from the store, and stop an experiment whose guardrail trips.

* **Assignment** is ``hash(salt, user)`` (:mod:`agora.experiments.assignment`): no table is
  read to know a user's arm. A user is *exposed* the first time the feed applies a running
  experiment to them (:func:`arm_overrides`); that row is written once (INSERT .. ON CONFLICT
  DO NOTHING), so concurrent pages cannot log a user twice or in two arms.
* **Metrics** per arm, over exposed users, from their first exposure until the experiment
  stopped (or now): ``ctr`` = feed impressions engaged with (an engaging event on the item
  within ``ctr_window_hours`` of the impression) / impressions; ``engagement_per_user`` =
  engaging events per exposed user; ``retention`` = share of users active (any event) on day
  ``retention_day`` after their first exposure, among users exposed long enough ago. Engaging
  events are every type but the passive ones (view, dwell) and dislike.
* **Guardrails** are checked at ``looks`` planned looks, when the exposed users reach k/looks of
  ``planned_users``, with the O'Brien-Fleming-shaped bound of :mod:`agora.experiments.stats`;
  a tripped look stops the experiment and stores the reason. Looks are taken by
  :func:`take_due_looks`, run by the background job of ``agora serve`` (every
  ``background_seconds``) and by ``agora experiment check``, never inside a feed request: a
  look measures every arm over the store.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from agora.api.errors import Conflict, NotFound
from agora.db.engine import insert_for
from agora.db.tables import Event, FeedImpression, User
from agora.experiments import stats
from agora.experiments.assignment import assign
from agora.experiments.models import Arm, Experiment, Exposure, Look
from agora.experiments.schemas import ExperimentIn
from agora.ingest.schemas import as_utc
from agora.ingest.service import known_user_pk

PASSIVE_TYPES: frozenset[str] = frozenset({"view", "dwell", "dislike"})
CACHE_SECONDS = 1.0
DAY = 86400.0


class UnknownExperiment(NotFound):
    """No experiment with this id."""


class ExperimentConflict(Conflict):
    """The request contradicts what is stored (other settings under the same id, a restart)."""


# ---------------------------------------------------------------- experiments


def _experiment(session: Session, experiment_id: str) -> Experiment:
    row = session.scalar(select(Experiment).where(Experiment.external_id == experiment_id))
    if row is None:
        raise UnknownExperiment(f"experiment {experiment_id!r} not found")
    return row


def arms_of(session: Session, experiment: Experiment) -> list[Arm]:
    """The experiment's arms in their declared order."""
    return list(
        session.scalars(
            select(Arm).where(Arm.experiment_id == experiment.id).order_by(Arm.position)
        )
    )


def _spec_fields(spec: ExperimentIn) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "salt": spec.salt or spec.experiment_id,
        "control": spec.control or spec.arms[0].name,
        "planned_users": spec.planned_users,
        "looks": spec.looks,
        "alpha": spec.alpha,
        "ctr_window_hours": spec.ctr_window_hours,
        "retention_day": spec.retention_day,
        "guardrails": [g.model_dump() for g in spec.guardrails],
    }


def _arm_fields(spec: ExperimentIn) -> list[dict[str, Any]]:
    return [
        {
            "name": a.name,
            "weight": a.weight,
            "overrides": a.overrides.model_dump(exclude_none=True),
        }
        for a in spec.arms
    ]


def create_experiment(
    session: Session, spec: ExperimentIn, now: datetime
) -> tuple[Experiment, bool]:
    """Store a new experiment (a draft, or running when ``spec.start``); re-sending the same
    experiment changes nothing (False), other settings under a stored id raise a conflict."""
    fields = _spec_fields(spec)
    row = session.scalar(select(Experiment).where(Experiment.external_id == spec.experiment_id))
    if row is not None:
        stored = {name: getattr(row, name) for name in fields}
        arms = [
            {"name": a.name, "weight": a.weight, "overrides": dict(a.overrides)}
            for a in arms_of(session, row)
        ]
        if stored != fields or arms != _arm_fields(spec):
            raise ExperimentConflict(
                f"experiment {spec.experiment_id!r} exists with other settings"
            )
        if spec.start and row.status == "draft":
            start_experiment(session, spec.experiment_id, now)
        return row, False
    row = Experiment(
        external_id=spec.experiment_id, status="draft", created=now, updated=now, **fields
    )
    session.add(row)
    session.flush()
    for position, arm in enumerate(_arm_fields(spec)):
        session.add(Arm(experiment_id=row.id, position=position, **arm))
    session.flush()
    if spec.start:
        start_experiment(session, spec.experiment_id, now)
    return row, True


def start_experiment(session: Session, experiment_id: str, now: datetime) -> Experiment:
    """Start a draft (users get its arms from now on); starting a running one changes nothing,
    a stopped one cannot restart (its users and looks belong to the first run)."""
    row = _experiment(session, experiment_id)
    if row.status == "stopped":
        raise ExperimentConflict(f"experiment {experiment_id!r} is stopped; create a new one")
    if row.status == "draft":
        row.status, row.started, row.updated = "running", now, now
        session.flush()
        _forget_running(session)
    return row


def stop_experiment(session: Session, experiment_id: str, now: datetime, reason: str) -> Experiment:
    """Stop an experiment (users get the plain feed again) and keep why; stopping a stopped one
    keeps its first reason."""
    row = _experiment(session, experiment_id)
    if row.status != "stopped":
        row.status, row.stopped, row.stop_reason, row.updated = "stopped", now, reason, now
        session.flush()
        _forget_running(session)
    return row


def list_experiments(session: Session) -> list[Experiment]:
    return list(session.scalars(select(Experiment).order_by(Experiment.created, Experiment.id)))


def get_experiment(session: Session, experiment_id: str) -> Experiment:
    return _experiment(session, experiment_id)


def experiment_out(session: Session, row: Experiment) -> dict[str, Any]:
    """The experiment as the API shows it, with exposed users per arm."""
    exposed = dict(
        session.execute(
            select(Exposure.arm_id, func.count())
            .where(Exposure.experiment_id == row.id)
            .group_by(Exposure.arm_id)
        ).all()
    )
    return {
        "experiment_id": row.external_id,
        **{
            name: getattr(row, name)
            for name in (
                "name",
                "description",
                "status",
                "control",
                "planned_users",
                "looks",
                "alpha",
                "ctr_window_hours",
                "retention_day",
                "guardrails",
                "stop_reason",
            )
        },  # fmt: skip
        "arms": [
            {
                "name": a.name,
                "weight": a.weight,
                "overrides": a.overrides,
                "exposed_users": exposed.get(a.id, 0),
            }
            for a in arms_of(session, row)
        ],
        "started": as_utc(row.started) if row.started else None,
        "stopped": as_utc(row.stopped) if row.stopped else None,
        "created": as_utc(row.created),
    }


# ---------------------------------------------------------------- assignment and exposure


@dataclass(frozen=True)
class _Running:
    pk: int
    external_id: str
    salt: str
    arms: tuple[tuple[str, float], ...]
    arm_pks: dict[str, int]
    overrides: dict[str, dict[str, float]]


_RUNNING: dict[str, tuple[float, list[_Running]]] = {}
#: Bumped by every :func:`_forget_running`: a list read before it is not cached after it.
_FORGOTTEN = [0]


def _forget_running(session: Session) -> None:
    """Drop the cached running experiments now and again once ``session`` commits: another
    thread reading between this flush and that commit sees the old rows, and must not keep
    them for ``CACHE_SECONDS`` (a started experiment's first pages then logged no exposure)."""

    def forget(*_: object) -> None:
        _FORGOTTEN[0] += 1
        _RUNNING.clear()

    forget()
    event.listen(session, "after_commit", forget, once=True)


def _running(session: Session, now: datetime) -> list[_Running]:
    """Running experiments, oldest first, cached per database for ``CACHE_SECONDS``."""
    key = str(session.get_bind().url)
    hit = _RUNNING.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    forgotten = _FORGOTTEN[0]
    rows = session.scalars(
        select(Experiment)
        .where(Experiment.status == "running")
        .order_by(Experiment.started, Experiment.id)
    ).all()
    arms: dict[int, list[Arm]] = defaultdict(list)
    if rows:
        for arm in session.scalars(
            select(Arm).where(Arm.experiment_id.in_([r.id for r in rows])).order_by(Arm.position)
        ):
            arms[arm.experiment_id].append(arm)
    running = [
        _Running(
            r.id,
            r.external_id,
            r.salt,
            tuple((a.name, a.weight) for a in arms[r.id]),
            {a.name: a.id for a in arms[r.id]},
            {a.name: dict(a.overrides) for a in arms[r.id]},
        )
        for r in rows
    ]
    if forgotten == _FORGOTTEN[0]:  # no start or stop since the read began
        _RUNNING[key] = (time.monotonic(), running)
    return running


def arm_overrides(session: Session, user_id: str, now: datetime) -> dict[str, float]:
    """The feed controls that the running experiments set for ``user_id`` (empty when none),
    logging the user's first exposure to each. Where two experiments set the same control,
    the one started first wins. The caller commits the session (the exposure rows)."""
    running = _running(session, now)
    if not running:
        return {}
    user_pk = known_user_pk(session, user_id)
    rows = [
        {
            "experiment_id": exp.pk,
            "arm_id": exp.arm_pks[assign(exp.salt, user_id, exp.arms)],
            "user_id": user_pk,
            "first_exposed": now,
        }
        for exp in running
    ]
    session.execute(
        insert_for(session, Exposure.__table__)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["experiment_id", "user_id"])
    )
    return planned_overrides(session, user_id, now)


def running_experiments(session: Session, now: datetime) -> bool:
    """Whether any experiment runs (cached as :func:`arm_overrides`' list is)."""
    return bool(_running(session, now))


def planned_overrides(session: Session, user_id: str, now: datetime) -> dict[str, float]:
    """What :func:`arm_overrides` returns for ``user_id``, without logging an exposure (the
    feed's refresher ranks pages ahead with it; the page served logs the exposure)."""
    merged: dict[str, float] = {}
    for exp in _running(session, now):
        for name, value in exp.overrides[assign(exp.salt, user_id, exp.arms)].items():
            merged.setdefault(name, value)
    return merged


def assignment(session: Session, experiment_id: str, user_id: str) -> dict[str, Any]:
    """The arm ``user_id`` gets (or got) in the experiment and its overrides; reading it logs
    no exposure. Users not stored yet get their arm too (it depends on the id only)."""
    row = _experiment(session, experiment_id)
    arms = arms_of(session, row)
    name = assign(row.salt, user_id, [(a.name, a.weight) for a in arms])
    first = session.scalar(
        select(Exposure.first_exposed)
        .join(User, User.id == Exposure.user_id)
        .where(Exposure.experiment_id == row.id, User.external_id == user_id)
    )
    return {
        "experiment_id": row.external_id,
        "user_id": user_id,
        "arm": name,
        "overrides": next(a.overrides for a in arms if a.name == name),
        "first_exposed": as_utc(first) if first else None,
    }


# ---------------------------------------------------------------- measurement


@dataclass
class Observations:
    """What an experiment's exposed users did, as arrays (times in epoch seconds): the input of
    every metric, loaded once and cut at any time (:func:`metrics_at`)."""

    arms: list[str]
    control: str
    window: float  # seconds
    retention_day: int
    user_arm: np.ndarray  # per exposed user: index into arms
    first: np.ndarray  # per user: first exposure
    imp_user: np.ndarray  # per impression: user index
    imp_served: np.ndarray
    imp_clicked: np.ndarray  # first engagement on the item at or after served (inf if none)
    eng_user: np.ndarray  # per engaging event: user index
    eng_time: np.ndarray
    retained: np.ndarray  # per user: any event on the retention day
    end: float
    start: float = 0.0
    notes: list[str] = field(default_factory=list)


def _epoch(t: datetime) -> float:
    return as_utc(t).timestamp()


def observations(session: Session, row: Experiment, now: datetime) -> Observations:
    """Load exposures, their feed impressions and their events up to the end (stop or now)."""
    arms = arms_of(session, row)
    end = _epoch(row.stopped) if row.stopped else _epoch(now)
    exposures = session.execute(
        select(Exposure.user_id, Exposure.arm_id, Exposure.first_exposed)
        .where(Exposure.experiment_id == row.id)
        .order_by(Exposure.user_id)
    ).all()
    index = {pk: i for i, (pk, _, _) in enumerate(exposures)}
    arm_index = {a.id: i for i, a in enumerate(arms)}
    first = np.array([_epoch(t) for _, _, t in exposures], dtype=float)
    exposed = (
        select(Exposure.user_id, Exposure.first_exposed)
        .where(Exposure.experiment_id == row.id)
        .subquery()
    )
    impressions = session.execute(
        select(FeedImpression.user_id, FeedImpression.item_id, FeedImpression.served)
        .join(exposed, exposed.c.user_id == FeedImpression.user_id)
        .where(FeedImpression.served >= exposed.c.first_exposed)
    ).all()
    events = session.execute(
        select(Event.user_id, Event.item_id, Event.type, Event.timestamp)
        .join(exposed, exposed.c.user_id == Event.user_id)
        .where(Event.timestamp >= exposed.c.first_exposed)
    ).all()
    engaged: dict[tuple[int, int], list[float]] = defaultdict(list)
    eng_user, eng_time = [], []
    active: dict[int, list[float]] = defaultdict(list)
    for user, item, etype, ts in events:
        t = _epoch(ts)
        if t > end:
            continue
        active[index[user]].append(t)
        if etype not in PASSIVE_TYPES:
            engaged[(user, item)].append(t)
            eng_user.append(index[user])
            eng_time.append(t)
    for times in engaged.values():
        times.sort()
    imp_user, imp_served, imp_clicked = [], [], []
    for user, item, served in impressions:
        s = _epoch(served)
        if s > end:
            continue
        times = engaged.get((user, item), [])
        j = bisect.bisect_left(times, s)
        imp_user.append(index[user])
        imp_served.append(s)
        imp_clicked.append(times[j] if j < len(times) else math.inf)
    lo = first + row.retention_day * DAY
    retained = np.array(
        [any(lo[i] <= t < lo[i] + DAY for t in active.get(i, ())) for i in range(len(first))],
        dtype=bool,
    )
    return Observations(
        arms=[a.name for a in arms],
        control=row.control,
        window=row.ctr_window_hours * 3600.0,
        retention_day=row.retention_day,
        user_arm=np.array([arm_index[a] for _, a, _ in exposures], dtype=int),
        first=first,
        imp_user=np.array(imp_user, dtype=int),
        imp_served=np.array(imp_served, dtype=float),
        imp_clicked=np.array(imp_clicked, dtype=float),
        eng_user=np.array(eng_user, dtype=int),
        eng_time=np.array(eng_time, dtype=float),
        retained=retained,
        end=end,
        start=_epoch(row.started) if row.started else (float(first.min()) if len(first) else end),
    )


@dataclass
class PerUser:
    """Per-user values of each metric at one cut-off time, for the users exposed by then."""

    arm: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    engagements: np.ndarray
    mature: np.ndarray  # retention measurable
    retained: np.ndarray


def per_user(obs: Observations, cutoff: float) -> PerUser:
    """Each metric per exposed user, counting only what happened by ``cutoff``."""
    n = len(obs.first)
    seen = obs.first <= cutoff
    imp = obs.imp_served <= cutoff
    click = imp & (obs.imp_clicked <= np.minimum(obs.imp_served + obs.window, cutoff))
    eng = obs.eng_time <= cutoff
    mature = obs.first + (obs.retention_day + 1) * DAY <= cutoff
    return PerUser(
        arm=obs.user_arm[seen],
        impressions=np.bincount(obs.imp_user[imp], minlength=n)[seen],
        clicks=np.bincount(obs.imp_user[click], minlength=n)[seen],
        engagements=np.bincount(obs.eng_user[eng], minlength=n)[seen],
        mature=mature[seen],
        retained=(obs.retained & mature)[seen],
    )


def arm_summary(obs: Observations, users: PerUser) -> list[dict[str, Any]]:
    """Totals and plain values of each metric per arm."""
    out = []
    for i, name in enumerate(obs.arms):
        mine = users.arm == i
        n, imps, clicks = int(mine.sum()), int(users.impressions[mine].sum()), 0
        clicks = int(users.clicks[mine].sum())
        engagements = int(users.engagements[mine].sum())
        mature, retained = int(users.mature[mine].sum()), int(users.retained[mine].sum())
        out.append(
            {
                "arm": name,
                "users": n,
                "impressions": imps,
                "clicks": clicks,
                "ctr": clicks / imps if imps else None,
                "engagements": engagements,
                "engagement_per_user": engagements / n if n else None,
                "retention_users": mature,
                "retained": retained,
                "retention": retained / mature if mature else None,
            }
        )
    return out


def compare(
    obs: Observations, users: PerUser, arm: str, confidence: float
) -> dict[str, stats.Comparison]:
    """Each metric of ``arm`` against the control at the given cut-off."""
    a = users.arm == obs.arms.index(arm)
    c = users.arm == obs.arms.index(obs.control)
    am, cm = a & users.mature, c & users.mature
    return {
        "ctr": stats.ratio_delta(
            users.clicks[a],
            users.impressions[a],
            users.clicks[c],
            users.impressions[c],
            confidence,
            "ctr",
        ),  # fmt: skip
        "engagement_per_user": stats.welch(
            users.engagements[a], users.engagements[c], confidence, "engagement_per_user"
        ),
        "retention": stats.two_proportions(
            int(users.retained[am].sum()),
            int(am.sum()),
            int(users.retained[cm].sum()),
            int(cm.sum()),
            confidence,
            "retention",
        ),  # fmt: skip
    }


def results(
    session: Session, experiment_id: str, now: datetime, confidence: float = 0.95
) -> dict[str, Any]:
    """Every arm's metrics and each arm against the control, with CIs and p-values."""
    row = _experiment(session, experiment_id)
    obs = observations(session, row, now)
    users = per_user(obs, obs.end)
    looks = session.scalars(
        select(Look).where(Look.experiment_id == row.id).order_by(Look.look)
    ).all()
    return {
        "experiment_id": row.external_id,
        "status": row.status,
        "control": row.control,
        "as_of": datetime.fromtimestamp(obs.end, now.tzinfo),
        "confidence": confidence,
        "arms": arm_summary(obs, users),
        "comparisons": [
            {
                "arm": arm,
                "comparisons": [c.as_dict() for c in compare(obs, users, arm, confidence).values()],
            }
            for arm in obs.arms
            if arm != obs.control
        ],
        "looks": [
            {
                "look": lk.look,
                "users": lk.users,
                "tripped": lk.tripped,
                "tests": lk.tests,
                "taken": as_utc(lk.taken),
            }
            for lk in looks
        ],
        "stop_reason": row.stop_reason,
        "notes": [
            "p-values and intervals are fixed-horizon: read them at the planned sample size "
            f"({row.planned_users} users); guardrails use the sequential bound instead.",
            "each arm is compared with the control on its own (no multiple-comparison "
            "correction across arms and metrics).",
        ],
    }


def timeline(
    session: Session, experiment_id: str, now: datetime, confidence: float = 0.95, points: int = 12
) -> list[dict[str, Any]]:
    """The comparisons at ``points`` evenly spaced cut-offs from the start to the end, for the
    report's plots (cumulative: each point counts everything up to it)."""
    row = _experiment(session, experiment_id)
    obs = observations(session, row, now)
    out = []
    for cutoff in np.linspace(obs.start, obs.end, points + 1)[1:]:
        users = per_user(obs, float(cutoff))
        out.append(
            {
                "at": datetime.fromtimestamp(float(cutoff), now.tzinfo),
                "arms": arm_summary(obs, users),
                "comparisons": {
                    arm: {k: c.as_dict() for k, c in compare(obs, users, arm, confidence).items()}
                    for arm in obs.arms
                    if arm != obs.control
                },
            }
        )
    return out


# ---------------------------------------------------------------- guardrails


def look_due(exposed: int, planned: int, looks: int) -> int:
    """The latest look whose share of the planned users is reached (0 = none yet)."""
    return min(looks, exposed * looks // planned)


def guardrail_tests(
    row: Experiment, obs: Observations, users: PerUser, look: int
) -> list[dict[str, Any]]:
    """Each guardrail of each arm at look ``look``: the harm z-statistic against the bound."""
    bound = stats.obrien_fleming_bounds(row.looks, row.alpha)[look - 1]
    tests = []
    for arm in obs.arms:
        if arm == obs.control:
            continue
        comparisons = compare(obs, users, arm, 0.95)
        for guard in row.guardrails:
            c = comparisons[guard["metric"]]
            z = stats.harm_z(c, guard["max_drop"])
            tests.append(
                {
                    "arm": arm,
                    "metric": guard["metric"],
                    "max_drop": guard["max_drop"],
                    "control_value": c.control_value,
                    "arm_value": c.arm_value,
                    "z": z,
                    "bound": -bound,
                    "tripped": z is not None and z < -bound,
                }
            )
    return tests


def take_due_looks(session: Session, now: datetime) -> list[str]:
    """Take the guardrail look that is due in each running experiment with guardrails (at most
    one per experiment: skipping a look only makes the bound stricter), store it once, and stop
    the experiments whose guardrail tripped. A look where no guardrail metric can be measured
    yet (retention before its day has passed for anyone) waits. Returns the ids of the
    experiments stopped."""
    stopped = []
    rows = session.scalars(select(Experiment).where(Experiment.status == "running")).all()
    for row in rows:
        if not row.guardrails:
            continue
        exposed = session.scalar(
            select(func.count()).select_from(Exposure).where(Exposure.experiment_id == row.id)
        )
        due = look_due(exposed, row.planned_users, row.looks)
        taken = session.scalar(select(func.max(Look.look)).where(Look.experiment_id == row.id))
        if due == 0 or (taken or 0) >= due:
            continue
        obs = observations(session, row, now)
        tests = guardrail_tests(row, obs, per_user(obs, obs.end), due)
        if all(t["z"] is None for t in tests):
            continue  # nothing measurable yet (e.g. retention before day N): look later
        tripped = [t for t in tests if t["tripped"]]
        inserted = session.execute(
            insert_for(session, Look.__table__)
            .values(
                experiment_id=row.id,
                look=due,
                users=len(obs.first),
                tripped=bool(tripped),
                tests=tests,
                taken=now,
            )
            .on_conflict_do_nothing(index_elements=["experiment_id", "look"])
            .returning(Look.id)
        ).scalar()
        if tripped and inserted is not None:  # another worker took this look: it decides
            worst = min(tripped, key=lambda t: t["z"])
            reason = (
                f"guardrail {worst['metric']} tripped at look {due}/{row.looks}: arm "
                f"{worst['arm']!r} {worst['arm_value']:.4g} vs control "
                f"{worst['control_value']:.4g} (allowed drop {worst['max_drop']:.0%}), "
                f"z = {worst['z']:.2f} < {worst['bound']:.2f}"
            )
            session.execute(
                update(Experiment)
                .where(Experiment.id == row.id, Experiment.status == "running")
                .values(status="stopped", stopped=now, stop_reason=reason, updated=now)
            )
            session.expire(row)
            _RUNNING.clear()
            stopped.append(row.external_id)
    return stopped
