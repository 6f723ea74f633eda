"""`--model auto`: candidates and their blends scored on valid, only the best one on test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.evaluation.auto import select_model
from agora.evaluation.protocol import evaluate
from agora.evaluation.splits import load_split
from agora.models.base import Recommender
from agora.models.registry import MODELS

HEADER = "user_id\titem_id\trating\ttimestamp\n"


class NoiseModel(Recommender):
    name: ClassVar[str] = "noise"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, interactions, side=None, valid=None):  # noqa: ANN001, ANN201
        self.n_items_ = int(interactions.n_items)
        return self

    def score(self, users, history, times=None):  # noqa: ANN001, ANN201
        rng = np.random.default_rng(self.seed + int(np.sum(np.asarray(users))))
        return rng.random((history.shape[0], self.n_items_)).astype(np.float32)

    def similar_items(self, item, n=10):  # noqa: ANN001, ANN201
        raise NotImplementedError


@pytest.fixture(autouse=True)
def noise_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "noise", NoiseModel)


def clustered_split(root: Path, n_users: int = 240, n_items: int = 60, clusters: int = 6) -> Path:
    """Users like the items of their own cluster; train/valid/test all drawn from it."""
    rng = np.random.default_rng(0)
    size = n_items // clusters
    parts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        c = u % clusters
        items = rng.permutation(np.arange(c * size, (c + 1) * size))
        for name, chosen in (("train", items[:6]), ("valid", items[6:8]), ("test", items[8:])):
            parts[name] += [f"{u}\ti{i}\t1\t0\n" for i in chosen]
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        (root / f"{name}.tsv").write_text(HEADER + "".join(rows))
    return root


def test_select_model_picks_the_better_candidate(tmp_path: Path) -> None:
    split = load_split(clustered_split(tmp_path / "s"))
    model, seconds, sel = select_model(split, ["noise", "itemknn"], blend_sizes=(2,))
    rows = {r["name"]: r for r in sel["candidates"]}
    assert set(rows) == {"noise", "itemknn", "hybrid(itemknn+noise)"}
    assert rows["itemknn"]["valid_ndcg"] > 2 * rows["noise"]["valid_ndcg"]
    assert sel["chosen"] != "noise"
    assert rows[sel["chosen"]]["valid_ndcg"] == max(r["valid_ndcg"] for r in rows.values())
    assert seconds >= 0 and model.name in ("itemknn", "hybrid")


def test_evaluate_auto_records_the_selection(tmp_path: Path) -> None:
    root = clustered_split(tmp_path / "s")
    out = tmp_path / "out"
    res = evaluate(root, "auto", out_dir=out, progress=False, candidates=["noise", "itemknn"])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["selection"]["chosen"] == res["selection"]["chosen"] != "noise"
    assert [r["name"] for r in saved["selection"]["candidates"]][:2] == ["noise", "itemknn"]
    assert saved["ndcg@10"] > 0.5  # cluster items are found on test too
    report = (out / "report.md").read_text()
    assert "Model selection on valid" in report and "(chosen)" in report


def test_cli_eval_auto_with_candidates(tmp_path: Path) -> None:
    root = clustered_split(tmp_path / "s")
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        cli,
        ["eval", "--split", str(root), "--model", "auto", "--out", str(out),
         "--candidates", "noise,itemknn"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "selection on valid" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "auto" and metrics["selection"]["chosen"] != "noise"
