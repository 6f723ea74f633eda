"""``agora train --engine spark`` as a real process (its own JVM) on PostgreSQL, read over JDBC
in id ranges; its errors. (SQLite's JDBC reads: tests/db/spark/test_spark_store.py and
tests/models/test_spark_training.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from spark_jvm import SPARK_TEST_JVM
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import Settings, get_settings
from agora.db.engine import make_engine, session_factory
from agora.db.spark.eventlog import event_log_files, summarise_event_log
from agora.features.store import load_training_data
from agora.models.artifacts import list_artifacts, load_artifact


def agora(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agora.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=600,
    )


def test_train_on_spark_end_to_end(
    postgres_url: str,
    community_store: Callable[[str], str],
    tmp_path: Path,
    spark,  # noqa: ANN001
) -> None:
    # ``spark``: this process's session is up already, so skipped (or failed under CI=true)
    # without Java like every Spark test
    database_url = community_store(postgres_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        settings = Settings()
        expected, _, _ = load_training_data(session, settings.event_weights)
    engine.dispose()
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_DATABASE_URL": database_url,
        "AGORA_MODEL_PARAMS": json.dumps({"als": {"factors": 4, "iterations": 2}}),
        "JAVA_TOOL_OPTIONS": SPARK_TEST_JVM,  # the command's own JVM, flagged as the run's is
    }
    log = tmp_path / "spark-events"
    done = agora(
        # itemknn on Spark is compared with the single-machine one in tests/models (in process)
        "train", "--engine", "spark", "--models", "trending,als", "--event-log", str(log),
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"training on {expected.n_users:,} users x {expected.n_items:,} items" in done.stdout
    for step in ("data: read and weigh events", "als: holdout fit", "trending: fit", "als: save"):
        assert step in done.stdout, done.stdout
    for name in ("trending", "als"):
        (path,) = list_artifacts(tmp_path / "data" / "models", name)
        loaded = load_artifact(path)
        assert list(loaded.user_ids) == list(expected.user_ids)
        assert loaded.meta["metrics"]["holdout_users"] > 100
        items, _ = loaded.model.recommend(0, expected.matrix[0], n=3)
        assert len(items) == 3
    # ALS by default minimises implicit's objective on Spark (not MLlib's ALS-WR)
    (als,) = list_artifacts(tmp_path / "data" / "models", "als")
    assert load_artifact(als).meta["metrics"]["spark_als_solver"] == "cg"
    stages = summarise_event_log(event_log_files(log)[-1])
    assert len(stages) > 10 and all(s.tasks >= 1 and s.seconds >= 0 for s in stages)
    assert sum(s.shuffle_write_bytes for s in stages) > 0
    assert 0 < sum(s.task_seconds for s in stages) < np.inf


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_a_model_spark_does_not_train_is_one_line_and_exit_2(data_dir: Path) -> None:
    done = CliRunner().invoke(cli, ["train", "--engine", "spark", "--models", "als,ease"])
    assert done.exit_code == 2
    assert done.output.strip() == (
        "error: model 'ease' does not train on Spark; --engine spark trains als, itemknn, trending"
    )
    other = CliRunner().invoke(cli, ["train", "--engine", "flink"])
    assert other.exit_code == 2 and "unknown engine 'flink'" in other.output


def test_without_java_the_message_says_what_to_install(tmp_path: Path) -> None:
    env = {"AGORA_DATA_DIR": str(tmp_path / "data"), "PATH": "", "JAVA_HOME": ""}
    done = agora("train", "--engine", "spark", "--models", "itemknn", env=env)
    assert done.returncode == 2, done.stderr
    assert "Spark needs a Java 17 runtime: apt-get install openjdk-17-jre-headless" in done.stderr
    assert "Traceback" not in done.stderr
    evaluated = agora(
        "eval", "--split", str(tmp_path), "--model", "als", "--out", str(tmp_path / "out"),
        "--engine", "spark", env=env,
    )  # fmt: skip
    assert evaluated.returncode == 2
    assert "Spark needs a Java 17 runtime" in evaluated.stderr


def test_an_unknown_spark_als_solver_is_one_line_and_exit_2(data_dir: Path) -> None:
    done = CliRunner().invoke(cli, ["train", "--engine", "spark", "--spark-als", "sgd"])
    assert done.exit_code == 2
    assert done.output.strip() == "error: unknown --spark-als 'sgd' (known: cg, cholesky, mllib)"
