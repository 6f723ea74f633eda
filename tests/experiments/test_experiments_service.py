"""Experiments in a real store (SQLite and PostgreSQL): lifecycle, assignment and exposure,
metrics per arm from impressions and events, guardrails that stop a harmful arm."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from experiments_support import NOW, USERS, event, experiment, impressions
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from agora.api.app import background_jobs
from agora.config import Settings
from agora.db.engine import downgrade, migrate, transaction
from agora.db.tables import Base
from agora.experiments import service
from agora.experiments.assignment import assign
from agora.experiments.models import Exposure, Look
from agora.experiments.schemas import ExperimentIn
from agora.ingest.service import UnknownUser, add_events

TABLES = {"experiments", "experiment_arms", "experiment_exposures", "experiment_looks"}


def _add_events(session: Session, events: list) -> None:
    add_events(session, events, Settings().event_types, max_future_seconds=1e9)


def test_migration_matches_models_and_downgrades(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if any(t in repr(d) for t in TABLES)]
    assert mine == []
    downgrade(engine, "0006")
    assert not TABLES & set(inspect(engine).get_table_names())
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_lifecycle_assignment_and_idempotent_exposure(sessions: sessionmaker[Session]) -> None:
    spec = ExperimentIn.model_validate(experiment())
    with transaction(sessions) as session:
        _, created = service.create_experiment(session, spec, NOW)
        assert created
        # nothing runs yet: the feed gets no overrides and logs nothing
        assert service.arm_overrides(session, "u1", NOW) == {}
    with transaction(sessions) as session:
        assert service.create_experiment(session, spec, NOW)[1] is False
        other = ExperimentIn.model_validate(experiment(planned_users=500))
        with pytest.raises(service.ExperimentConflict, match="other settings"):
            service.create_experiment(session, other, NOW)
        service.start_experiment(session, "diverse", NOW)
    arms = [("control", 1.0), ("diverse", 1.0)]
    with transaction(sessions) as session:
        seen = {u: service.arm_overrides(session, u, NOW) for u in USERS}
    for user, overrides in seen.items():
        arm = assign("diverse", user, arms)
        assert overrides == ({} if arm == "control" else {"diversity": 0.6, "exploration": 0.2})
    with transaction(sessions) as session:  # a second page logs nothing new
        for user in USERS[:50]:
            service.arm_overrides(session, user, NOW + timedelta(hours=1))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Exposure)) == len(USERS)
        first = service.assignment(session, "diverse", "u7")
        assert first["arm"] == assign("diverse", "u7", arms)
        assert first["first_exposed"] == NOW
        assert service.assignment(session, "diverse", "never-seen")["first_exposed"] is None
        out = service.experiment_out(session, service.get_experiment(session, "diverse"))
        assert sum(a["exposed_users"] for a in out["arms"]) == len(USERS)
        assert out["status"] == "running"
    with transaction(sessions) as session:
        service.stop_experiment(session, "diverse", NOW + timedelta(days=1), "done")
        service.stop_experiment(session, "diverse", NOW + timedelta(days=2), "again")
        assert service.arm_overrides(session, "u1", NOW + timedelta(days=2)) == {}
    with transaction(sessions) as session:
        row = service.get_experiment(session, "diverse")
        assert (row.status, row.stop_reason) == ("stopped", "done")
        with pytest.raises(service.ExperimentConflict, match="stopped"):
            service.start_experiment(session, "diverse", NOW)
        with pytest.raises(UnknownUser):
            service.create_experiment(
                session, ExperimentIn.model_validate(experiment(experiment_id="b", start=True)), NOW
            )
            service.arm_overrides(session, "nobody", NOW)


def test_a_reader_between_the_start_and_its_commit_keeps_no_stale_list(
    sessions: sessionmaker[Session],
) -> None:
    """Another thread asking what runs while a start is flushed but not committed sees the
    old rows; the commit forgets them, so the next page (within the cache's second) gets its
    arm and logs its exposure. The same for a stop."""
    with transaction(sessions) as session:
        service.create_experiment(session, ExperimentIn.model_validate(experiment()), NOW)
    with transaction(sessions) as session:
        service.start_experiment(session, "diverse", NOW)
        with sessions() as other:  # not committed yet: nothing runs
            assert not service.running_experiments(other, NOW)
    with sessions() as other:
        assert service.running_experiments(other, NOW)
    with transaction(sessions) as session:
        service.stop_experiment(session, "diverse", NOW, "done")
        with sessions() as other:
            assert service.running_experiments(other, NOW)
    with sessions() as other:
        assert not service.running_experiments(other, NOW)


def test_metrics_per_arm_from_impressions_and_events(sessions: sessionmaker[Session]) -> None:
    spec = ExperimentIn.model_validate(experiment(start=True, ctr_window_hours=2))
    arms = [("control", 1.0), ("diverse", 1.0)]
    users = USERS[:40]
    with transaction(sessions) as session:
        service.create_experiment(session, spec, NOW)
        for user in users:
            service.arm_overrides(session, user, NOW)
        rows, events = [], []
        for n, user in enumerate(users):
            treated = assign("diverse", user, arms) == "diverse"
            # each user sees i0 and i1 one hour after exposure
            rows += [(user, "i0", NOW + timedelta(hours=1)), (user, "i1", NOW + timedelta(hours=1))]
            # treated users with an even index like i0 within the window; the others 3 hours
            # later (too late to be a click)
            late = 0.5 if treated and n % 2 == 0 else 3
            events.append(event(user, "i0", "like", NOW + timedelta(hours=1 + late)))
            events.append(event(user, "i1", "view", NOW + timedelta(hours=1, minutes=5)))
            if treated:  # and come back on day 1
                events.append(event(user, "i2", "view", NOW + timedelta(days=1, hours=2)))
        events.append(event("u0", "i3", "like", NOW - timedelta(hours=1)))  # before exposure
        impressions(session, rows)
        _add_events(session, events)
    with sessions() as session:
        body = service.results(session, "diverse", NOW + timedelta(days=3))
    per_arm = {a["arm"]: a for a in body["arms"]}
    treated = sum(assign("diverse", u, arms) == "diverse" for u in users)
    clicked = sum(assign("diverse", u, arms) == "diverse" for u in users[::2])
    control = per_arm["control"]
    diverse = per_arm["diverse"]
    assert (diverse["users"], control["users"]) == (treated, len(users) - treated)
    assert diverse["impressions"] == 2 * treated and diverse["clicks"] == clicked
    assert diverse["ctr"] == pytest.approx(clicked / (2 * treated)) and control["ctr"] == 0
    assert diverse["engagement_per_user"] == 1 and control["engagement_per_user"] == 1
    assert diverse["retention"] == 1 and control["retention"] == 0
    assert diverse["retention_users"] == treated
    ctr = next(c for c in body["comparisons"][0]["comparisons"] if c["metric"] == "ctr")
    assert ctr["difference"] == pytest.approx(clicked / (2 * treated))
    assert ctr["low"] > 0 and ctr["p_value"] < 1e-3
    # day 1 is not over for anyone at day 1 + 12 h: retention cannot be measured yet
    with sessions() as session:
        early = service.results(session, "diverse", NOW + timedelta(days=1, hours=12))
    assert all(a["retention"] is None for a in early["arms"])


def test_guardrail_trips_and_stops_a_harmful_arm(sessions: sessionmaker[Session]) -> None:
    spec = ExperimentIn.model_validate(
        experiment(
            start=True,
            planned_users=200,
            looks=2,
            guardrails=[{"metric": "engagement_per_user", "max_drop": 0.1}],
        )
    )
    arms = [("control", 1.0), ("diverse", 1.0)]
    with transaction(sessions) as session:
        service.create_experiment(session, spec, NOW)
        events = []
        for n, user in enumerate(USERS[:99]):  # one short of look 1 (100 users)
            service.arm_overrides(session, user, NOW)
            likes = 1 if assign("diverse", user, arms) == "diverse" else 4
            events += [event(user, f"i{k}", "like", NOW + timedelta(hours=1)) for k in range(likes)]
            events.append(event(user, "i9", "comment", NOW + timedelta(minutes=n)))
        _add_events(session, events)
    with transaction(sessions) as session:
        assert service.take_due_looks(session, NOW + timedelta(hours=2)) == []
        service.arm_overrides(session, USERS[99], NOW + timedelta(hours=2))
    with transaction(sessions) as session:
        assert service.take_due_looks(session, NOW + timedelta(hours=3)) == ["diverse"]
        assert service.take_due_looks(session, NOW + timedelta(hours=3)) == []
    with sessions() as session:
        row = service.get_experiment(session, "diverse")
        assert row.status == "stopped"
        assert row.stop_reason.startswith("guardrail engagement_per_user tripped at look 1/2")
        looks = session.scalars(select(Look)).all()
        assert [(lk.look, lk.users, lk.tripped) for lk in looks] == [(1, 100, True)]
        assert looks[0].tests[0]["z"] < looks[0].tests[0]["bound"]
        assert service.results(session, "diverse", NOW + timedelta(hours=4))["looks"][0]["tripped"]


def test_guardrail_holds_when_the_arm_is_no_worse(sessions: sessionmaker[Session]) -> None:
    spec = ExperimentIn.model_validate(
        experiment(start=True, planned_users=100, looks=1, guardrails=[{"metric": "ctr"}])
    )
    with transaction(sessions) as session:
        service.create_experiment(session, spec, NOW)
        rows, events = [], []
        for n, user in enumerate(USERS[:100]):
            service.arm_overrides(session, user, NOW)
            rows += [(user, "i0", NOW + timedelta(hours=1)), (user, "i1", NOW + timedelta(hours=1))]
            if n % 3 == 0:
                events.append(event(user, "i0", "click", NOW + timedelta(hours=1, minutes=1)))
        impressions(session, rows)
        _add_events(session, events)
    with transaction(sessions) as session:
        assert service.take_due_looks(session, NOW + timedelta(hours=2)) == []
    with sessions() as session:
        assert service.get_experiment(session, "diverse").status == "running"
        look = session.scalars(select(Look)).one()
        assert (look.look, look.tripped) == (1, False)


def test_due_looks_are_taken_by_the_background_job_never_by_a_feed_call(
    sessions: sessionmaker[Session], database_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exposures through arm_overrides reach a look: the feed call does not measure the arms
    (that is heavy work), the served app's background job does, trips the guardrail, and the
    next pages get the plain feed."""
    monkeypatch.setattr(service, "CACHE_SECONDS", 0.0)  # every call re-reads the experiments
    spec = ExperimentIn.model_validate(
        experiment(
            start=True,
            planned_users=60,
            looks=1,
            guardrails=[{"metric": "engagement_per_user"}],
        )
    )
    arms = [("control", 1.0), ("diverse", 1.0)]
    with transaction(sessions) as session:
        service.create_experiment(session, spec, NOW)
        for n, user in enumerate(USERS[:60]):
            at = NOW + timedelta(minutes=n)
            service.arm_overrides(session, user, at)
            if assign("diverse", user, arms) == "control":  # only control users engage
                _add_events(session, [event(user, f"i{k}", "like", at) for k in range(1 + n % 3)])
    harmed = next(u for u in USERS[60:] if assign("diverse", u, arms) == "diverse")
    with transaction(sessions) as session:
        assert service.arm_overrides(session, harmed, NOW + timedelta(hours=2)) != {}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Look)) == 0
        assert service.get_experiment(session, "diverse").status == "running"
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    background_jobs(settings, sessions).jobs["guardrails"].run()
    with transaction(sessions) as session:
        assert service.arm_overrides(session, USERS[61], NOW + timedelta(hours=3)) == {}
    with sessions() as session:
        row = service.get_experiment(session, "diverse")
        assert row.status == "stopped" and "engagement_per_user" in row.stop_reason
        assert session.scalar(select(func.count()).select_from(Exposure)) == 61


def test_a_look_waits_until_its_metric_can_be_measured(sessions: sessionmaker[Session]) -> None:
    spec = ExperimentIn.model_validate(
        experiment(start=True, planned_users=20, looks=1, guardrails=[{"metric": "retention"}])
    )
    with transaction(sessions) as session:
        service.create_experiment(session, spec, NOW)
        for n, user in enumerate(USERS[:20]):
            service.arm_overrides(session, user, NOW)
            if n % 2 == 0:  # half the users come back on day 1
                _add_events(session, [event(user, "i0", "view", NOW + timedelta(days=1, hours=1))])
    with transaction(sessions) as session:  # day 1 is not over: retention is unknown
        assert service.take_due_looks(session, NOW + timedelta(hours=20)) == []
        assert session.scalar(select(func.count()).select_from(Look)) == 0
    with transaction(sessions) as session:
        assert service.take_due_looks(session, NOW + timedelta(days=3)) == []
        look = session.scalars(select(Look)).one()
        assert look.tests[0]["z"] is not None and not look.tripped
