import json
import time
from pathlib import Path

import numpy as np
import pytest

from agora.evaluation.protocol import (
    evaluate,
    metrics_from_files,
    read_recommendations,
    tune,
)
from agora.evaluation.splits import SplitFormatError, load_split

BENCH = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks"

HEADER = "user_id\titem_id\trating\ttimestamp\n"


def write_split(root: Path) -> Path:
    """Items i1..i6 with i1/i2 and i3/i4 co-consumed; i6 only in test (cold)."""
    train = [
        ("1", "i1"), ("1", "i2"), ("2", "i1"), ("2", "i2"), ("3", "i3"), ("3", "i4"),
        ("4", "i3"), ("4", "i4"), ("5", "i1"), ("6", "i3"), ("7", "i5"), ("5", "i5"),
    ]  # fmt: skip
    valid = [("5", "i3"), ("6", "i5")]
    test = [("5", "i2"), ("6", "i4"), ("7", "i6")]
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        text = HEADER + "".join(f"{u}\t{i}\t1\t0\n" for u, i in rows)
        (root / f"{name}.tsv").write_text(text)
    return root


def test_load_split_indexes_all_files(tmp_path):
    split = load_split(write_split(tmp_path / "s"))
    assert split.item_ids.tolist() == ["i1", "i2", "i3", "i4", "i5", "i6"]
    assert split.user_ids.tolist() == ["1", "2", "3", "4", "5", "6", "7"]
    assert split.train.matrix.nnz == 12 and split.valid.nnz == 2 and split.test.nnz == 3
    assert split.train.matrix[:, 5].nnz == 0  # cold item kept
    assert split.social is None and split.train.last_seen is None


def test_malformed_rows_name_file_and_line(tmp_path):
    root = write_split(tmp_path / "s")
    (root / "valid.tsv").write_text(HEADER + "5\ti3\t1\t0\n6\ti5\t1\n")
    with pytest.raises(SplitFormatError, match=r"valid\.tsv:3"):
        load_split(root)
    (root / "valid.tsv").write_text(HEADER + "5\ti3\tfive\t0\n")
    with pytest.raises(SplitFormatError, match=r"valid\.tsv:2: rating"):
        load_split(root)
    (root / "valid.tsv").write_text("user\titem\n")
    with pytest.raises(SplitFormatError, match=r"valid\.tsv:1"):
        load_split(root)


def test_evaluate_writes_files_and_scores_from_them(tmp_path):
    root = write_split(tmp_path / "s")
    out = tmp_path / "out"
    result = evaluate(root, "itemknn", {"k": 10, "shrink": 0.0}, k=2, out_dir=out, progress=False)
    lines = (out / "recommendations.tsv").read_text().splitlines()
    assert lines[0] == "user_id\titem_id\trank"
    recs = read_recommendations(out / "recommendations.tsv")
    assert set(recs) == {"5", "6", "7"}  # test users only
    split = load_split(root)
    for user, items in recs.items():
        u = split.train.user_index(user)
        seen = set(split.item_ids[split.train.matrix[u].indices]) | set(
            split.item_ids[split.valid[u].indices]
        )
        assert not seen & set(items) and len(items) <= 2
    # user 5 (train i1, i5; valid i3) -> i2 first (co-consumed with i1): hit at rank 1
    assert recs["5"][0] == "i2"
    # user 6 (train i3, valid i5) -> i4 first: hit; user 7 (train i5) cannot reach cold i6
    assert recs["6"][0] == "i4"
    assert result["hit@2"] == pytest.approx(2 / 3)
    assert result["mrr@2"] == pytest.approx(2 / 3)
    assert result["n_test_users"] == 3
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("recall@2", "ndcg@2", "precision@2", "item_coverage", "novelty", "fit_seconds",
                "eval_seconds", "model", "params", "split"):  # fmt: skip
        assert key in saved
    assert saved["params"]["shrink"] == 0.0
    assert metrics_from_files(out / "recommendations.tsv", root, k=2)["ndcg@2"] == saved["ndcg@2"]
    assert (out / "report.md").read_text().startswith("# Evaluation: itemknn")
    assert (out / "curve.png").stat().st_size > 1000


def test_metrics_come_from_the_written_file(tmp_path):
    root = write_split(tmp_path / "s")
    out = tmp_path / "out"
    evaluate(root, "trending", k=2, out_dir=out, progress=False, report=False)
    # hand-written file: user 5 gets its test item at rank 2, others nothing useful
    (out / "recommendations.tsv").write_text(
        "user_id\titem_id\trank\n5\ti4\t1\n5\ti2\t2\n6\ti1\t1\n"
    )
    m = metrics_from_files(out / "recommendations.tsv", root, k=2)
    # 3 test users: user 5 MRR 1/2, users 6 and 7 zero -> MRR 1/6; NDCG (1/log2 3)/3
    assert m["mrr@2"] == pytest.approx(1 / 6)
    assert m["ndcg@2"] == pytest.approx(1 / np.log2(3) / 3)
    assert m["item_coverage"] == pytest.approx(3 / 6)


def test_tune_picks_best_on_valid(tmp_path):
    root = write_split(tmp_path / "s")
    best, rows = tune(root, "ease", {"reg": [0.1, 1000.0]}, k=2, progress=False)
    assert len(rows) == 2 and best["reg"] in (0.1, 1000.0)
    scores = {r["params"]["reg"]: r["valid"]["ndcg@2"] for r in rows}
    assert scores[best["reg"]] == max(scores.values())
    result = evaluate(
        root, "ease", k=2, out_dir=tmp_path / "o", progress=False, tune_params=True,
        grid={"reg": [0.1, 1000.0]}, report=False,
    )  # fmt: skip
    assert result["params"]["reg"] == best["reg"] and len(result["tuning"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (BENCH / "ml100k-seq").is_dir(), reason="shared benchmarks not present")
def test_real_split_ml100k(tmp_path):
    t0 = time.perf_counter()
    pop = evaluate(BENCH / "ml100k-seq", "trending", k=10, out_dir=tmp_path / "pop", progress=False)
    ease = evaluate(
        BENCH / "ml100k-seq", "ease", {"reg": 200.0}, k=10, out_dir=tmp_path / "e", progress=False
    )
    knn = evaluate(BENCH / "ml100k-seq", "itemknn", k=10, out_dir=tmp_path / "k", progress=False)
    assert ease["n_test_users"] == 939
    assert ease["ndcg@10"] > pop["ndcg@10"] * 0.5 and ease["ndcg@10"] > 0.02
    assert knn["ndcg@10"] > 0.02
    assert time.perf_counter() - t0 < 30
