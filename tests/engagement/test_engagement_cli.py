"""`agora engagement ...` on the bundled Stack Exchange dump, and the SE badge rules on it."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from agora.cli.main import app as agora
from agora.config import Settings, get_settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.tables import User
from agora.engagement import ledger
from agora.engagement.config import EngagementConfig, stackexchange_badges
from agora.engagement.models import BadgeAward
from agora.experiments.models import Exposure
from agora.experiments.schemas import ArmIn, ExperimentIn
from agora.experiments.service import CACHE_SECONDS, create_experiment
from agora.ingest.schemas import Dataset, EventIn, ItemIn
from agora.ingest.service import add_dataset
from agora.ingest.stackexchange import iter_rows, load_stackexchange, table_path

runner = CliRunner()


@pytest.fixture(scope="module")
def dump_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Cardano dump imported into a SQLite store (once for this module)."""
    dump = Path(__file__).resolve().parents[2] / "data" / "cardano-se"
    data_dir = tmp_path_factory.mktemp("engagement-cli")
    engine = make_engine(f"sqlite:///{data_dir / 'agora.db'}")
    migrate(engine)
    settings = Settings(data_dir=data_dir)
    with transaction(session_factory(engine)) as session:
        add_dataset(session, load_stackexchange(dump).dataset, settings.event_types)
    engine.dispose()
    return data_dir


@pytest.fixture
def settings(dump_store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """`agora` commands on that store (``AGORA_DATA_DIR``)."""
    monkeypatch.setenv("AGORA_DATA_DIR", str(dump_store))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_replay_leaderboard_and_a_users_badges(settings: Settings) -> None:
    replayed = runner.invoke(agora, ["engagement", "replay"])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.startswith("replayed 5,112 events in ")
    board = runner.invoke(agora, ["engagement", "leaderboard", "-n", "3"])
    assert board.exit_code == 0, board.output
    top = next(line for line in board.output.splitlines() if line.strip("│ ").startswith("1 "))
    leader = top.split("│")[2].strip()
    points = runner.invoke(agora, ["engagement", "points", leader])
    assert points.exit_code == 0 and f"{leader}: " in points.output
    assert top.split("│")[3].strip() in points.output  # the same total in both
    badges = runner.invoke(agora, ["engagement", "badges", leader])
    assert badges.exit_code == 0 and "First Answer" in badges.output
    trust = runner.invoke(agora, ["engagement", "trust", leader])
    assert trust.exit_code == 0 and "trust level" in trust.output
    assert runner.invoke(agora, ["engagement", "leaderboard", "--period", "year"]).exit_code == 2
    unknown = runner.invoke(agora, ["engagement", "badges", "nobody"])
    assert unknown.exit_code == 2 and "user 'nobody' not found" in unknown.output


def test_digest_as_text_and_html(settings: Settings) -> None:
    since = "2021-06-01T00:00:00+00:00"
    leader = runner.invoke(agora, ["engagement", "leaderboard", "-n", "1"]).output
    user = next(line for line in leader.splitlines() if line.strip("│ ").startswith("1 "))
    user = user.split("│")[2].strip()
    text = runner.invoke(agora, ["engagement", "digest", user, "--since", since, "--picks", "3"])
    assert text.exit_code == 0, text.output
    assert text.output.startswith("Your digest since 2021-06-01 00:00 UTC")
    assert "Replies to your posts" in text.output and "Picked for you:" in text.output
    html = runner.invoke(
        agora, ["engagement", "digest", user, "--since", since, "--format", "html"]
    )
    assert html.exit_code == 0 and html.output.startswith("<!doctype html>")


def test_digest_with_picks_while_an_experiment_runs(
    tmp_path: Path,
    database_url: str,
    migrated_store: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command's catch-up writes the ledger; the picks' user state logs the user's exposure
    to the running experiment on a session of its own. With the catch-up not committed yet,
    that write waited SQLite's busy timeout (30 s) and the command failed."""
    url = migrated_store(database_url)
    now = datetime.now(UTC)
    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        posts = [ItemIn(item_id=f"p{i}", author_id="writer", title=f"Post {i}",
                        created=now - timedelta(days=2)) for i in range(5)]  # fmt: skip
        likes = [EventIn(event_id=f"l{i}", user_id="reader", item_id=f"p{i}", type="like",
                         timestamp=now - timedelta(days=1)) for i in range(2)]  # fmt: skip
        add_dataset(session, Dataset(items=posts, events=likes), Settings().event_types)
        arms = [ArmIn(name="control"), ArmIn(name="diverse", overrides={"diversity": 0.6})]
        spec = ExperimentIn(experiment_id="diverse", arms=arms, planned_users=100, start=True)
        create_experiment(session, spec, now)
    time.sleep(CACHE_SECONDS)  # a "nothing runs" cached before the start committed is gone
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGORA_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        started = time.monotonic()
        done = runner.invoke(agora, ["engagement", "digest", "reader", "--picks", "3"])
        took = time.monotonic() - started
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert "Picked for you:" in done.output
    assert took < 10.0, f"the digest took {took:.1f} s"  # ~0.3 s idle
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Exposure)) == 1
    engine.dispose()


def test_stack_exchange_badges_match_the_dumps_own(dump_store: Path) -> None:
    """Nice Question and Scholar, recomputed from the imported dump, are exactly SE's."""
    engine = make_engine(f"sqlite:///{dump_store / 'agora.db'}")
    config = EngagementConfig(badges=stackexchange_badges())
    with transaction(session_factory(engine)) as session:
        ledger.catch_up(session, config, datetime.now(UTC))
        ours: dict[str, set[str]] = defaultdict(set)
        rows = session.execute(
            select(BadgeAward.badge, User.external_id).join(User, User.id == BadgeAward.user_id)
        )
        for badge, user in rows:
            ours[badge].add(user)
    engine.dispose()
    theirs: dict[str, set[str]] = defaultdict(set)
    dump = Path(__file__).resolve().parents[2] / "data" / "cardano-se"
    for row in iter_rows(table_path(dump, "Badges")):  # type: ignore[arg-type]
        if row.get("UserId"):
            theirs[row["Name"]].add(row["UserId"])
    assert ours["nice_question"] == theirs["Nice Question"] and len(theirs["Nice Question"]) == 48
    assert ours["popular_question"] == theirs["Popular Question"]
    assert ours["scholar"] <= theirs["Scholar"]
    assert len(ours["scholar"]) >= 0.99 * len(theirs["Scholar"])
