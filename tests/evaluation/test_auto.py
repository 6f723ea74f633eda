"""`--model auto`: candidates and their blends scored on valid, only the best one on test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from agora.cli.main import app as cli
from agora.evaluation.auto import (
    DEFAULT_CANDIDATES,
    MIN_EPOCHS,
    default_candidates,
    epoch_shares,
    select_model,
)
from agora.evaluation.protocol import evaluate, split_side
from agora.evaluation.splits import load_split
from agora.models.base import EpochCost, Recommender
from agora.models.ease import EASEModel
from agora.models.registry import MODELS
from agora.models.social import LightGCNModel

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


def write_rows(root: Path, parts: dict[str, list[tuple[int, int, int]]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        lines = "".join(f"u{u}\ti{i}\t1\t{t}\n" for u, i, t in rows)
        (root / f"{name}.tsv").write_text(HEADER + lines)
    return root


def test_chronological_split_adds_the_sequential_candidate(tmp_path: Path) -> None:
    by_time = write_rows(
        tmp_path / "seq",
        {
            "train": [(0, 1, 10), (0, 2, 20), (1, 2, 15), (1, 3, 30)],
            "valid": [(0, 3, 20), (1, 1, 31)],  # ties with the last train event count as later
            "test": [(0, 4, 40), (1, 4, 41)],
        },
    )
    split = load_split(by_time)
    assert split.is_chronological()
    assert default_candidates(split, None) == [*DEFAULT_CANDIDATES, "sasrec"]

    shuffled = write_rows(
        tmp_path / "random",
        {
            "train": [(0, 1, 10), (0, 2, 50), (1, 2, 15)],
            "valid": [(0, 3, 20), (1, 1, 31)],  # user 0's valid event is older than a train one
            "test": [(0, 4, 40)],
        },
    )
    split = load_split(shuffled)
    assert not split.is_chronological()
    assert default_candidates(split, None) == list(DEFAULT_CANDIDATES)

    untimed = load_split(clustered_split(tmp_path / "untimed"))  # timestamps all 0 = unknown
    assert not untimed.is_chronological()


def test_split_with_friendships_adds_the_social_candidate(tmp_path: Path) -> None:
    root = clustered_split(tmp_path / "s")
    (root / "social.tsv").write_text("user_id\tfriend_id\n0\t6\n6\t0\n")
    split = load_split(root)
    assert default_candidates(split, split_side(split, None)) == [*DEFAULT_CANDIDATES, "social"]
    assert "social" not in default_candidates(split, None)


def test_a_candidate_that_refuses_the_catalogue_is_listed_as_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class SmallEASE(EASEModel):
        name: ClassVar[str] = "small_ease"

        def __init__(self) -> None:
            super().__init__(max_items=5)

    monkeypatch.setitem(MODELS, "small_ease", SmallEASE)
    split = load_split(clustered_split(tmp_path / "s"))
    model, _, sel = select_model(split, ["small_ease", "itemknn"])
    rows = {r["name"]: r for r in sel["candidates"]}
    assert "60 items need" in rows["small_ease"]["skipped"]
    assert sel["chosen"] == "itemknn" and model.name == "itemknn"


def test_a_budget_brings_in_the_graph_model_and_holds_its_time(tmp_path: Path) -> None:
    """With a budget every family is tried, the graph model included (there is no social
    graph here); the epoch-trained ones share what the others leave, and the stages are told
    as they start."""
    split = load_split(clustered_split(tmp_path / "s"))
    stages: list[tuple[str, str, float]] = []
    budget = 40.0
    model, _, sel = select_model(
        split, budget_seconds=budget, on_stage=lambda *s: stages.append(s), blend_sizes=(2,)
    )
    rows = {r["name"]: r for r in sel["candidates"]}
    assert {*DEFAULT_CANDIDATES, "lightgcn"} <= set(rows)
    assert [name for what, name, _ in stages if what == "fitting"][-1] == "lightgcn"
    graph = rows["lightgcn"]
    assert "skipped" not in graph and 1.0 <= graph["params"]["max_seconds"] <= budget
    assert graph["fit_seconds"] <= graph["params"]["max_seconds"] + 10  # one epoch over at most
    assert sel["budget_seconds"] == budget and sel["spent_seconds"] <= budget + 15
    assert all(left <= budget for _, _, left in stages)


def test_a_spent_budget_skips_the_rest_and_says_so(tmp_path: Path) -> None:
    split = load_split(clustered_split(tmp_path / "s"))
    _, _, sel = select_model(split, ["itemknn", "lightgcn"], budget_seconds=5.0, blend_sizes=())
    rows = {r["name"]: r for r in sel["candidates"]}
    assert rows["itemknn"]["valid_ndcg"] > 0  # the first always runs: auto gives a model
    assert rows["lightgcn"]["skipped"].startswith("over budget")


def test_the_graph_model_stops_at_its_time_limit(tmp_path: Path) -> None:
    from agora.models.social import LightGCNModel

    split = load_split(clustered_split(tmp_path / "s"))
    model = LightGCNModel(epochs=100_000, max_seconds=1.0, progress=False)
    model.fit(split.train)
    assert 1 <= model.describe()["epochs_run"] < 100_000
    assert model.fit_seconds_ < 1.0 + 2.0  # the epoch under way when time ran out finishes


def test_a_blend_that_would_overrun_the_budget_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from agora.models.hybrid import HybridModel

    fit_weights = HybridModel.fit_weights

    def slow(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        time.sleep(5.0)  # a blend of 2 takes 5 s: one of 3 would take 7.5 s
        return fit_weights(self, *args, **kwargs)

    monkeypatch.setattr(HybridModel, "fit_weights", slow)
    split = load_split(clustered_split(tmp_path / "s"))
    _, _, sel = select_model(
        split, ["itemknn", "ease", "noise"], budget_seconds=11.5, blend_sizes=(2, 3)
    )
    rows = {r["name"]: r for r in sel["candidates"]}
    blends = [r for name, r in rows.items() if name.startswith("hybrid(")]
    assert len(blends) == 2 and "skipped" not in blends[0]
    assert blends[1]["skipped"].startswith("over budget")
    assert sel["spent_seconds"] <= 11.5 + 1


def test_with_social_a_candidate_lightgcn_is_not_trained_twice(tmp_path: Path) -> None:
    """social tries friends weight 0 first, which is lightgcn: lightgcn's row says so, and
    social's trials list weight 0 beside the others."""
    from agora.evaluation.auto import SAME_AS_SOCIAL

    root = clustered_split(tmp_path / "s")
    (root / "social.tsv").write_text(
        "user_id\tfriend_id\n" + "".join(f"{u}\t{u + 6}\n{u + 6}\t{u}\n" for u in range(0, 60))
    )
    split = load_split(root)
    fitted: dict[str, Recommender] = {}
    _, _, sel = select_model(
        split, ["lightgcn", "social"], side=split_side(split, None), blend_sizes=(),
        budget_seconds=30.0, fitted_out=fitted,
    )  # fmt: skip
    rows = {r["name"]: r for r in sel["candidates"]}
    assert rows["lightgcn"] == {"name": "lightgcn", "skipped": SAME_AS_SOCIAL}
    assert sel["chosen"] == "social" and "lightgcn" not in fitted
    tried = fitted["social"].describe()["social_weights_tried"]
    assert [t["weight"] for t in tried] == [0.0, 0.1, 0.3]
    assert rows["social"]["valid_ndcg"] == pytest.approx(
        max(t["valid_ndcg@10"] for t in tried), abs=1e-3
    )


def test_epoch_shares_follow_the_measured_costs() -> None:
    """Each family gets MIN_EPOCHS epochs' worth, the cheaper one its target epochs first,
    the rest in proportion to the targets' cost; the dearer one is left out, with its probe's
    figures, when the MIN_EPOCHS epochs of both do not fit."""
    cheap = EpochCost(setup_seconds=0.0, epoch_seconds=1.0, valid_seconds=0.0)
    dear = EpochCost(setup_seconds=0.0, epoch_seconds=9.0, valid_seconds=3.0, eval_every=3)
    costs = {"cheap": (cheap, 20), "dear": (dear, 20)}  # dear: 10 s an epoch with its scores
    shares, skipped = epoch_shares(costs, 300.0)
    assert not skipped and sum(shares.values()) == pytest.approx(300.0)
    assert shares["cheap"] == pytest.approx(20 + 80 * 20 / 220)  # its target, then in proportion
    assert shares["dear"] == pytest.approx(200 + 80 * 200 / 220)
    shares, skipped = epoch_shares(costs, 40.0)  # 3 + 30 s for MIN_EPOCHS, 7 s more: the cheap one
    assert shares == pytest.approx({"cheap": 10.0, "dear": 30.0})
    assert dear.epochs(shares["dear"]) == pytest.approx(MIN_EPOCHS)
    shares, skipped = epoch_shares(costs, 20.0)
    assert shares == pytest.approx({"cheap": 20.0}) and list(skipped) == ["dear"]
    assert skipped["dear"].startswith(f"by its probe {MIN_EPOCHS} epochs take 30 s")
    social = EpochCost(setup_seconds=1.0, epoch_seconds=1.0, valid_seconds=0.0, trainings=3)
    assert social.seconds(MIN_EPOCHS) == 12.0  # every friends weight trains
    assert epoch_shares({"social": (social, 80)}, 11.0)[0] == {}


class SlowLightGCN(LightGCNModel):
    """LightGCN with mini-batches of ``batch_size`` 8 (180 steps an epoch on the clustered
    split against 1): the same model, really slower per epoch."""

    name: ClassVar[str] = "slow_lightgcn"

    def __init__(self, batch_size: int = 8, **params: Any) -> None:
        super().__init__(batch_size=batch_size, **params)


class SlowerLightGCN(LightGCNModel):
    """One positive pair a mini-batch (1,440 steps an epoch) and 1,024 factors."""

    name: ClassVar[str] = "slower_lightgcn"

    def __init__(self, batch_size: int = 1, factors: int = 1024, **params: Any) -> None:
        super().__init__(batch_size=batch_size, factors=factors, **params)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread, as the benchmarks run it (two threads on a busy 2-core machine
    make an epoch's time swing tenfold)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_a_family_slower_per_epoch_gets_a_bigger_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both graph families are probed; the slow one's probe says an epoch costs many times
    more, so it gets the larger time limit; each stops within its share and the selection
    within its budget."""
    monkeypatch.setitem(MODELS, SlowLightGCN.name, SlowLightGCN)
    split = load_split(clustered_split(tmp_path / "s"))
    stages: list[tuple[str, str, float]] = []
    budget = 20.0
    _, _, sel = select_model(
        split, ["itemknn", "slow_lightgcn", "lightgcn"], budget_seconds=budget,
        on_stage=lambda *s: stages.append(s), blend_sizes=(),
    )  # fmt: skip
    rows = {r["name"]: r for r in sel["candidates"]}
    fast, slow = rows["lightgcn"], rows["slow_lightgcn"]
    assert slow["probe"]["epoch_seconds"] > 5 * fast["probe"]["epoch_seconds"]
    assert slow["share_seconds"] > 2 * fast["share_seconds"]
    for row in (fast, slow):
        assert row["fit_seconds"] <= row["share_seconds"] + 1.0
    fitting = [name for what, name, _ in stages if what == "fitting"]
    assert fitting == ["itemknn", "lightgcn", "slow_lightgcn"]  # the cheaper target first
    assert any(what.startswith("probed: ") for what, name, _ in stages if name == "lightgcn")
    epochs = [what for what, name, _ in stages if name == "slow_lightgcn" and "epoch" in what]
    assert epochs and epochs[-1].startswith("valid ndcg@10 ")  # each validated epoch is told
    assert sel["spent_seconds"] <= budget + 1.0


@pytest.mark.usefixtures("one_thread")
def test_a_family_that_cannot_train_a_few_epochs_is_skipped_with_its_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, SlowerLightGCN.name, SlowerLightGCN)
    split = load_split(clustered_split(tmp_path / "s"))
    stages: list[tuple[str, str, float]] = []
    budget = 20.0
    _, _, sel = select_model(
        split, ["itemknn", "slower_lightgcn", "lightgcn"], budget_seconds=budget,
        on_stage=lambda *s: stages.append(s), blend_sizes=(2,),
    )  # fmt: skip
    rows = {r["name"]: r for r in sel["candidates"]}
    slower = rows["slower_lightgcn"]
    assert slower["skipped"].startswith(f"by its probe {MIN_EPOCHS} epochs take")
    assert slower["probe"]["epoch_seconds"] * MIN_EPOCHS > budget
    assert "skipped" not in rows["lightgcn"] and "skipped" not in rows["itemknn"]
    assert rows["lightgcn"]["share_seconds"] > 5.0  # it has the time slower left
    told = [what for what, name, _ in stages if name == "slower_lightgcn"]
    assert any(what.startswith("skipped (by its probe") for what in told)
    assert sel["spent_seconds"] <= budget + 1.0
