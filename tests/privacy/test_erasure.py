"""Export and erasure: everything about a member comes out, and after erasure nothing about
them is left in any table, any model version on disk (older ones included) or any answer."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from privacy_support import ADMIN, ZED, make_client, seed, train
from sqlalchemy import func, select

from agora.db.migrations.domains import METADATA
from agora.db.tables import User
from agora.feed.candidates import Candidates
from agora.feed.store import CandidateStore, RedisCandidates, TableCandidates
from agora.models.artifacts import list_artifacts, load_artifact, load_latest
from agora.privacy import service


def _rows_about(client: TestClient, pk: int) -> dict[str, int]:
    """Rows per table whose foreign keys to users name ``pk``, read from the database."""
    found: dict[str, int] = {}
    with client.app.state.sessions() as session:
        for column in service.user_columns():
            n = session.scalar(select(func.count()).select_from(column.table).where(column == pk))
            if n:
                found[column.table.name] = found.get(column.table.name, 0) + n
    return found


def _tables_mentioning(client: TestClient, text: str) -> list[str]:
    """Tables with a row whose values, written out, contain ``text`` anywhere."""
    hits = []
    with client.app.state.sessions() as session:
        for table in METADATA.sorted_tables:
            for row in session.execute(select(table)):
                if any(text in repr(v) for v in row):
                    hits.append(table.name)
                    break
    return hits


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in needles)
    )


def _id_bytes(user_id: str) -> list[bytes]:
    """How an id can sit in a file: UTF-8 (JSON) and UTF-32 (numpy's unicode arrays)."""
    return [user_id.encode(), user_id.encode("utf-32-le")]


def _audited_until(client: TestClient, action: tuple[str, str]) -> list[dict]:
    """The audit log's entries once it holds ``(method, route)`` (written after the answer)."""
    deadline = time.monotonic() + 10
    while True:
        entries = client.get("/admin/audit", headers=ADMIN).json()["entries"]
        if action in {(e["method"], e["route"]) for e in entries}:
            return entries
        assert time.monotonic() < deadline, f"{action} was not audited"
        time.sleep(0.05)


def test_export_holds_every_row_that_refers_to_the_user(community: TestClient) -> None:
    with community.app.state.sessions() as session:
        pk = session.scalar(select(User.id).where(User.external_id == ZED))
    # engagement counts their events behind the requests: compare with a store that held
    # still while the export was read
    for _ in range(100):
        in_store = _rows_about(community, pk)
        answer = community.get(f"/users/{ZED}/export", headers=ADMIN)
        if _rows_about(community, pk) == in_store:
            break
        time.sleep(0.1)
    assert answer.status_code == 200
    document = answer.json()
    assert document["user_id"] == ZED
    exported = {table: len(rows) for table, rows in document["tables"].items()}
    assert exported == {k: v for k, v in in_store.items() if k != "items"}
    for table in ("events", "social_edges", "memberships", "feed_settings", "feed_feedback"):
        assert table in exported, table
    assert any(t.startswith("moderation_") for t in exported)
    # both directions of the follow edge, named by external ids, and the comment's text
    edges = {(e["source_id"], e["target_id"]) for e in document["tables"]["social_edges"]}
    assert {(ZED, "u1"), ("u2", ZED)} <= edges
    assert any(e.get("context", {}).get("text") for e in document["tables"]["events"])
    assert [i["external_id"] for i in document["items"]] == ["pz"]
    assert community.get("/users/nobody/export", headers=ADMIN).status_code == 404
    assert (
        community.get(f"/users/{ZED}/export", headers={"Authorization": "Bearer w"}).status_code
        == 403
    )


def test_erasure_leaves_no_trace_in_tables_models_or_answers(community: TestClient) -> None:
    settings = community.app.state.settings
    root = settings.model_dir
    with community.app.state.sessions() as session:
        pk = session.scalar(select(User.id).where(User.external_id == ZED))
    als_versions = list_artifacts(root, "als")
    assert len(als_versions) == 2
    factor_rows = []
    for path in als_versions:
        loaded = load_artifact(path)
        factor_rows.append(loaded.model.user_factors_[loaded.user_index[ZED]].tobytes())
    assert community.app.state.models.get("als").user_index.get(ZED) is not None
    assert _files_holding(root, _id_bytes(ZED))  # the check finds it while it is there
    # an operator exported their data first: the audit log names them (written after the answer)
    assert community.get(f"/users/{ZED}/export", headers=ADMIN).status_code == 200
    _audited_until(community, ("GET", "/users/{user_id}/export"))

    answer = community.delete(f"/users/{ZED}", headers=ADMIN)
    assert answer.status_code == 204
    location = answer.headers["location"]

    # no table holds a row about them, nor their id anywhere
    assert _rows_about(community, pk) == {}
    assert _tables_mentioning(community, ZED) == []
    # their post stays without author; u4's mute of them is gone
    item = community.get("/items/pz", headers=ADMIN).json()
    assert item.get("author_id") is None
    muted = community.get("/users/u4/feed/settings", headers=ADMIN).json()["muted_authors"]
    assert muted == []
    # every model version on disk, the older one included: no id, no factor row
    assert _files_holding(root, _id_bytes(ZED)) == []
    assert _files_holding(root, factor_rows) == []
    # the serving process dropped what it held at once
    assert community.app.state.models.get("als").user_index.get(ZED) is None
    # answers
    assert community.get(f"/users/{ZED}", headers=ADMIN).status_code == 404
    assert community.get(f"/users/{ZED}/export", headers=ADMIN).status_code == 404
    assert community.delete(f"/users/{ZED}", headers=ADMIN).status_code == 404
    for path in ("/leaderboards", "/items/p3", "/users/u2/edges", "/analytics/influence"):
        assert ZED not in community.get(path, headers=ADMIN).text, path
    # the audit trail says who, when and what, never the id
    record = community.get(location, headers=ADMIN).json()
    assert record["requested_by"] != "cli" and len(record["requested_by"]) == 8
    assert record["removed"]["events"] == 8
    assert record["removed"]["social_edges"] == 2
    assert record["removed"]["feed_settings.muted_authors"] == 1
    # every artefact lists the users it was fitted on: each version of each model is rewritten
    assert {m: len(v) for m, v in record["artifacts"].items()} == {
        "als": 2,
        "itemknn": 2,
        "sasrec": 2,
        "trending": 2,
    }
    assert record["retrain"] == "off"  # erasure_retrain_seconds=0 in these tests
    assert record["removed"]["admin_audit.path_params"] == 1
    audited = _audited_until(community, ("DELETE", "/users/{user_id}"))
    assert ("GET", "/users/{user_id}/export") in {(e["method"], e["route"]) for e in audited}
    assert ZED not in str(audited)
    listed = community.get("/admin/erasures", headers=ADMIN).json()
    assert [e["erasure_id"] for e in listed["erasures"]] == [record["erasure_id"]]
    assert ZED not in str(listed)


def _record(user_pk: int) -> Candidates:
    none = (np.empty(0, np.int64), np.empty(0, np.float32))
    return Candidates(user_pk, "als=1", 3, time.time(), "als", True, none, "als")


@pytest.mark.parametrize("kept_in", ["table", "redis"])
def test_a_record_computed_before_the_erasure_is_not_stored_after_it(
    community: TestClient, kept_in: str, request: pytest.FixtureRequest
) -> None:
    """A feed refresher that read the user just before the erasure stores their candidates
    just after it: the store refuses them (the table: the user is gone; Redis: they were
    dropped lately), and keeps everybody else's."""
    sessions = community.app.state.sessions
    if kept_in == "table":
        store: CandidateStore = TableCandidates(sessions)
    else:
        store = RedisCandidates(request.getfixturevalue("redis_url"), namespace="erasure-race")
    with sessions() as session:
        pks = dict(session.execute(select(User.external_id, User.id)).all())
    read_before = [_record(pks[ZED]), _record(pks["u1"])]
    answer = community.delete(f"/users/{ZED}", headers=ADMIN)
    assert answer.status_code == 204
    if kept_in == "redis":  # the API drops from the store it serves with; this one is ours
        store.drop([pks[ZED]])
    store.put(read_before)
    assert store.get(pks[ZED]) is None
    assert store.get(pks["u1"]) is not None
    assert _tables_mentioning(community, ZED) == []


def test_models_fitted_after_erasure_equal_a_store_that_never_had_them(
    community: TestClient, database_url: str, tmp_path: Path, postgres_schemas
) -> None:
    settings = community.app.state.settings
    with community.app.state.sessions() as session, session.begin():
        record = service.erase_user(session, ZED, "test", content="delete")
    assert record is not None and record.retrain == "wanted"
    versions = service.retrain_after_erasures(community.app.state.sessions, settings)
    assert set(versions) == {"trending", "itemknn", "als", "sasrec"}
    with community.app.state.sessions() as session:
        done = service.erasure(session, record.id)
    assert done is not None and done.retrain == "done" and done.retrained_versions == versions
    assert service.retrain_after_erasures(community.app.state.sessions, settings) == {}

    with contextlib.ExitStack() as stack:
        if database_url.startswith("sqlite"):
            never_url = f"sqlite:///{tmp_path / 'never.db'}"
        else:
            never_url = stack.enter_context(postgres_schemas())
        never = stack.enter_context(make_client(tmp_path / "never", never_url))
        seed(never, with_zed=False)
        train(never)
        never_root = never.app.state.settings.model_dir
    for name in ("itemknn", "trending"):
        after = load_latest(settings.model_dir, name)
        clean = load_latest(never_root, name)
        assert after.item_ids.tolist() == clean.item_ids.tolist()
        assert after.user_ids.tolist() == clean.user_ids.tolist()
        for item in range(len(after.item_ids)):
            got, want = after.model.similar_items(item, 5), clean.model.similar_items(item, 5)
            assert got[0].tolist() == want[0].tolist(), (name, item)
            np.testing.assert_allclose(got[1], want[1])


def test_erasure_from_the_cli_is_recorded_as_the_cli(
    community: TestClient, monkeypatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from agora.cli.main import app

    settings = community.app.state.settings
    monkeypatch.setenv("AGORA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("AGORA_DATABASE_URL", settings.resolved_database_url)
    from agora.config import get_settings

    get_settings.cache_clear()
    try:
        out = tmp_path / "zed.json"
        runner = CliRunner()
        exported = runner.invoke(app, ["users", "export", ZED, "--out", str(out)])
        assert exported.exit_code == 0, exported.output
        assert '"user_id": "zed-7f3a"' in out.read_text()
        erased = runner.invoke(app, ["users", "erase", ZED])
        assert erased.exit_code == 0, erased.output
        assert "model versions rewritten without them: 8" in erased.output
        again = runner.invoke(app, ["users", "erase", ZED])
        assert again.exit_code == 1
        listed = runner.invoke(app, ["users", "erasures"])
        assert "cli" in listed.output and ZED not in listed.output
    finally:
        get_settings.cache_clear()
    assert _files_holding(settings.model_dir, _id_bytes(ZED)) == []
