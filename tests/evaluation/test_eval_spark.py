"""``agora eval --engine spark`` fits with Spark and scores with the same protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from agora.cli.main import app as cli


def write_split(folder: Path) -> None:
    """A small random split: 40 users, 30 items, times spread over 60 days."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    rows = {"train.tsv": [], "valid.tsv": [], "test.tsv": []}
    for u in range(40):
        items = rng.choice(30, size=8, replace=False)
        for n, item in enumerate(items):
            part = "train.tsv" if n < 6 else ("valid.tsv" if n == 6 else "test.tsv")
            stamp = 1_700_000_000 + int(rng.integers(0, 60 * 86_400))
            rows[part].append(f"u{u}\ti{item}\t1\t{stamp}\n")
    for name, lines in rows.items():
        (folder / name).write_text("user_id\titem_id\trating\ttimestamp\n" + "".join(lines))


def agora_eval(split: Path, out: Path, *extra: str) -> dict:
    """``agora eval`` in this process (with ``--engine spark``: on the test run's session)."""
    done = CliRunner().invoke(
        cli,
        ["eval", "--split", str(split), "--model", "trending", "--out", str(out), *extra],
        env={"COLUMNS": "200"},
    )
    assert done.exit_code == 0, done.output[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_spark_fitted_trending_is_scored_the_same(tmp_path: Path, spark) -> None:  # noqa: ANN001
    # ``spark``: the session the Spark fit runs on; skipped (or failed under CI=true) without
    # Java like every Spark test
    split = tmp_path / "split"
    write_split(split)
    local = agora_eval(split, tmp_path / "python")
    on_spark = agora_eval(split, tmp_path / "spark", "--engine", "spark")
    assert on_spark["engine"] == "spark" and local["engine"] == "python"
    assert on_spark["n_test_users"] == local["n_test_users"] == 40
    assert on_spark["ndcg@10"] == local["ndcg@10"]
    recommended = (tmp_path / "spark" / "recommendations.tsv").read_text()
    assert recommended == (tmp_path / "python" / "recommendations.tsv").read_text()
    assert spark.sparkContext._jsc is not None  # the run's session is still up after the job
