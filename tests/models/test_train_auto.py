"""`agora train --model auto --budget-minutes M` on a real store: the bundled community."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.config import get_settings
from agora.evaluation.auto import select_model
from agora.evaluation.training import affordable, holdout_split, refit_on_all
from agora.features.interactions import Interactions, SideData
from agora.models.hybrid import HybridModel
from agora.models.registry import create_model

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bundled community imported into a SQLite store with the real `agora import`."""
    data = tmp_path_factory.mktemp("auto") / "agora-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGORA_DATA_DIR", str(data))
        patch.delenv("AGORA_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        imported = runner.invoke(cli, ["import", str(REPO / "data" / "cardano-se")])
        assert imported.exit_code == 0, imported.output
        yield data
    get_settings.cache_clear()


@pytest.fixture
def events(store: Path) -> tuple[Interactions, SideData]:
    from agora.config import Settings
    from agora.db.engine import make_engine, session_factory
    from agora.features.store import load_training_data

    settings = Settings(data_dir=store, database_url=None)
    engine = make_engine(settings.resolved_database_url)
    with session_factory(engine)() as session:
        interactions, side, _ = load_training_data(session, settings.event_weights)
    engine.dispose()
    return interactions, side


def test_train_auto_chooses_on_a_holdout_and_saves_within_the_budget(
    store: Path, events: tuple[Interactions, SideData], monkeypatch: pytest.MonkeyPatch
) -> None:
    interactions, _ = events
    monkeypatch.setenv("AGORA_DATA_DIR", str(store))
    get_settings.cache_clear()
    refused = runner.invoke(cli, ["train", "--models", "itemknn", "--budget-minutes", "1"])
    assert refused.exit_code == 2 and "go with --model auto" in refused.output
    budget = 30.0
    started = time.monotonic()
    result = runner.invoke(
        cli,
        ["train", "--model", "auto", "--budget-minutes", str(budget / 60),
         "--candidates", "itemknn,ease,social"],
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert elapsed <= budget + 10, f"took {elapsed:.1f} s of a {budget:.0f} s budget"
    # the stages as they start, with the minutes of the budget left
    assert re.search(
        r"auto \[0\.\d min\]: fitting itemknn, 0\.5 min of the budget left", result.output
    )
    assert "fitting social" in result.output and "fitting on all events" in result.output
    saved = [p for p in (store / "models").glob("*/*") if (p / "meta.json").is_file()]
    assert len(saved) == 1
    meta = json.loads((saved[0] / "meta.json").read_text())
    selection = meta["metrics"]["selection"]
    tried = [row["name"] for row in selection["candidates"]]
    assert tried[:3] == ["itemknn", "ease", "social"]
    assert all(name.startswith("hybrid(") for name in tried[3:])
    chosen = next(r for r in selection["candidates"] if r["name"] == selection["chosen"])
    assert "skipped" not in chosen and meta["name"] == selection["chosen"].split("(")[0]
    assert selection["budget_seconds"] == budget and selection["spent_seconds"] <= budget
    assert meta["metrics"]["holdout_users"] > 100 and "holdout_ndcg@10" in meta["metrics"]
    social = next(r for r in selection["candidates"] if r["name"] == "social")
    assert social["params"]["max_seconds"] <= budget / 2  # the choice had half the budget
    tried = social["learned"]["social_weights_tried"]  # why social has its friends weight
    assert [t["weight"] for t in tried] == [0.0, 0.1, 0.3]
    assert social["learned"]["social_weight"] in (0.0, 0.1, 0.3)
    assert meta["data_fingerprint"] == interactions.fingerprint()  # every event, not the holdout's
    # the version serves like any trained model
    recommended = runner.invoke(cli, ["recommend", "28", "--n", "3", "--model", meta["name"]])
    assert recommended.exit_code == 0, recommended.output
    get_settings.cache_clear()


def test_a_chosen_blend_keeps_its_weights_and_refits_its_members_on_all_events(
    events: tuple[Interactions, SideData],
) -> None:
    interactions, side = events
    split = holdout_split(interactions)
    assert split.train.matrix.nnz + split.valid.nnz == interactions.matrix.nnz
    fitted: dict = {}
    _, _, selection = select_model(
        split, ["itemknn", "ease"], side=side, blend_sizes=(2,), fitted_out=fitted
    )
    label = next(r["name"] for r in selection["candidates"] if r["name"].startswith("hybrid("))
    blend = fitted[label]
    weights = blend.weights_.copy()
    users = np.flatnonzero(np.diff(interactions.matrix.indptr) >= 3)[:50]
    history = interactions.matrix[users]
    before = blend.score(users, history)
    again = refit_on_all(blend, interactions, side)
    assert isinstance(again, HybridModel) and [m.name for m in again.fitted_members] == [
        m.name for m in fitted[label].fitted_members
    ]
    np.testing.assert_array_equal(again.weights_, weights)
    assert not np.allclose(again.score(users, history), before)  # members saw more events


def test_affordable_passes_over_what_would_not_fit_again_in_time() -> None:
    selection = {
        "candidates": [
            {"name": "itemknn", "valid_ndcg": 0.05, "fit_seconds": 2.0},
            {"name": "admmslim", "valid_ndcg": 0.07, "fit_seconds": 60.0},
            {"name": "lightgcn", "valid_ndcg": 0.06, "fit_seconds": 100.0},
            {"name": "hybrid(admmslim+itemknn)", "valid_ndcg": 0.08, "fit_seconds": 63.0},
            {"name": "sasrec", "skipped": "over budget (3 s left)"},
        ],
        "chosen": "hybrid(admmslim+itemknn)",
    }
    fitted = {
        "itemknn": create_model("itemknn"),
        "admmslim": create_model("admmslim"),
        "lightgcn": create_model("lightgcn"),
        "hybrid(admmslim+itemknn)": HybridModel(members={"admmslim": {}, "itemknn": {}}),
    }
    assert affordable(selection, fitted, 100.0) == "hybrid(admmslim+itemknn)"
    # the graph model stops at any time limit: only the one-pass models' seconds count
    assert affordable(selection, fitted, 30.0) == "lightgcn"
    fitted_no_graph = {k: v for k, v in fitted.items() if k != "lightgcn"}
    rows = [r for r in selection["candidates"] if r["name"] != "lightgcn"]
    assert affordable({**selection, "candidates": rows}, fitted_no_graph, 1.0) == "itemknn"
