"""CTR model: shapes and ranges, save/load, unknown ids, learning beyond the base rate, and the
public Criteo/Avazu samples read and scored."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from agora.market.ctr import (
    CTRModel,
    ctr_metrics,
    hash_token,
    read_avazu,
    read_criteo,
    synthetic_impressions,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CRITEO = DATA / "criteo-sample" / "criteo_train_first999.txt"
CRITEO_CSV = DATA / "criteo-sample" / "deepctr_criteo_sample.txt"
AVAZU = DATA / "avazu-sample" / "avazu_sample.txt"
FAST = {"epochs": 2, "n_buckets": 2**12, "dim": 8}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return synthetic_impressions(1500, seed=1)[0]


@pytest.mark.parametrize("kind", ["logreg", "fm", "din"])
def test_fit_predict_save_load(kind: str, rows: list[dict], tmp_path: Path) -> None:
    model = CTRModel(kind=kind, **FAST).fit(rows[:1200])
    p = model.predict(rows[1200:])
    assert p.shape == (300,) and p.dtype == np.float64
    assert np.all((p > 0) & (p < 1))
    assert len(model.loss_curve_) == 2
    # labels in the rows do not matter to predict
    unlabelled = [{k: v for k, v in r.items() if k != "clicked"} for r in rows[1200:]]
    assert np.array_equal(model.predict(unlabelled), p)

    model.save(tmp_path / "m")
    loaded = CTRModel.load(tmp_path / "m")
    assert loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.predict(rows[1200:]), p)
    assert sorted(f.name for f in (tmp_path / "m").iterdir()) == [
        "catalogue.json",
        "params.json",
        "weights.npz",
    ]


def test_saving_again_changes_the_folder_mtime(rows: list[dict], tmp_path: Path) -> None:
    """The market service reloads a model when its folder's mtime changes."""
    model = CTRModel(kind="logreg", **FAST).fit(rows[:300])
    model.save(tmp_path / "m")
    first = (tmp_path / "m").stat().st_mtime_ns
    time.sleep(0.01)
    model.save(tmp_path / "m")
    assert (tmp_path / "m").stat().st_mtime_ns > first


def test_unknown_ids_and_missing_fields_score(rows: list[dict]) -> None:
    model = CTRModel(kind="din", **FAST).fit(rows)
    new = [
        {
            "user_id": "never-seen",
            "item_id": "new-item",
            "campaign_id": None,
            "tags": ["brand-new-tag"],
            "position": 99,
            "hour": 3,
            "recent_items": ["unknown-1", rows[0]["item_id"]],
        },
        {
            "user_id": "x",
            "item_id": "y",
            "campaign_id": "z",
            "tags": [],
            "position": 0,
            "hour": 0,
            "recent_items": [],
        },
    ]
    p = model.predict(new)
    assert p.shape == (2,) and np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))
    assert model.predict([]).shape == (0,)


def test_hashing_is_stable_across_processes() -> None:
    """Saved models are read by other processes: a token's bucket may not depend on the run."""
    assert hash_token("item_id", "42", 2**17) == hash_token("item_id", 42, 2**17) == 78802
    assert hash_token("position", 1.0, 2**17) == 35675
    assert hash_token("position", 1, 2**17) == 95207


def test_same_seed_same_model(rows: list[dict]) -> None:
    a = CTRModel(kind="fm", seed=3, **FAST).fit(rows).predict(rows[:50])
    b = CTRModel(kind="fm", seed=3, **FAST).fit(rows).predict(rows[:50])
    assert np.array_equal(a, b)


def test_learns_beyond_the_base_rate() -> None:
    """Items differ in appeal: the model ranks test impressions far better than a constant."""
    data, _ = synthetic_impressions(4000, seed=2, n_items=50, appeal_sd=1.5)
    train, test = data[:3200], data[3200:]
    model = CTRModel(kind="logreg", epochs=3, n_buckets=2**14).fit(train)
    m = ctr_metrics([r["clicked"] for r in test], model.predict(test), model.base_rate_)
    assert m["auc"] > 0.7
    assert m["logloss"] < m["baseline_logloss"]


def test_bad_rows_say_what_and_where(rows: list[dict]) -> None:
    with pytest.raises(ValueError, match="row 1: 'clicked' must be 0 or 1"):
        CTRModel().fit([rows[0], {**rows[1], "clicked": "yes"}])
    with pytest.raises(ValueError, match="row 0: field 'tags'"):
        CTRModel().fit([{**rows[0], "tags": [{"nested": 1}]}])
    with pytest.raises(RuntimeError, match="not fitted"):
        CTRModel().predict(rows[:1])
    with pytest.raises(ValueError, match="kind must be one of"):
        CTRModel(kind="gbdt")


def test_metrics_against_constant_baseline() -> None:
    y = np.array([0, 0, 1, 1])
    m = ctr_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), base_rate=0.5)
    assert m["auc"] == 1.0
    assert m["baseline_logloss"] == pytest.approx(np.log(2))
    assert m["logloss"] < m["baseline_logloss"]


@pytest.mark.skipif(not CRITEO.exists(), reason=f"Criteo sample not found at {CRITEO}")
def test_criteo_sample_reads_and_scores() -> None:
    data = read_criteo(CRITEO, limit=400)
    assert len(data) == 400
    assert set(data[0]) == {"clicked"} | {f"I{i}" for i in range(1, 14)} | {
        f"C{i}" for i in range(1, 27)
    }
    # the well-known first line of train.txt: label 0, I1 = 1, C1 = 68fd1e64, I12 missing
    assert (data[0]["clicked"], data[0]["I1"], data[0]["C1"], data[0]["I12"]) == (
        0,
        "1",
        "68fd1e64",
        None,
    )
    assert data[0]["I5"] == f"b{int(np.log(1382) ** 2)}"
    model = CTRModel(kind="fm", epochs=2, n_buckets=2**14, dim=8).fit(data[:300])
    p = model.predict(data[300:])
    assert p.shape == (100,) and np.all((p > 0) & (p < 1))
    csv_rows = read_criteo(CRITEO_CSV)
    assert len(csv_rows) == 200 and set(csv_rows[0]) == set(data[0])
    assert np.mean([r["clicked"] for r in csv_rows]) == pytest.approx(0.245)


@pytest.mark.skipif(not AVAZU.exists(), reason=f"Avazu sample not found at {AVAZU}")
def test_avazu_sample_reads() -> None:
    data = read_avazu(AVAZU)
    assert len(data) == 100
    assert np.mean([r["clicked"] for r in data]) == pytest.approx(0.20)
    assert {r["hour"] for r in data} == {0} and "id" not in data[0]
    assert data[0]["site_id"] == "1fbe01fe"
