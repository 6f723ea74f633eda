"""What each feed heuristic costs and buys, offline, on real data.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/feed_offline.py [--splits ml1m-general]

For every test user of a split, ALS (shipped defaults, fitted on train) scores all items with
train + valid masked; its top ``--candidates`` plus ``--fresh`` random new-creator items (what
the live feed's ``fresh`` source adds) go through the feed's own re-ranker
(:func:`agora.feed.rerank.rerank`) under several settings, and the first 10 are scored against
test. Per setting: NDCG@10, Recall@10, item coverage, intra-list diversity (mean pairwise
``1 - Jaccard`` of the items' tags), novelty (mean self-information of training popularity)
and the share of slots given to "new creators".

What stands for tags and new creators (these datasets have no authors or post dates):
* ml1m-general: genres are the tags; "new creators" are the films released in 2000, the newest
  year in ML-1M (132 of 3,123 films).
* lastfm-social: the 10 most used tags of each artist are its tags; "new creators" are the
  artists nobody listened to in train (2,273 of 17,632; they appear only in valid or test).
Exploration draws are Beta(1, 1) (no impressions yet), seeded; explorable = the new creators.
Author decay is not exercised (every item is its own creator here).

Prints a table, writes bench/results/feed_offline.json and a PNG of NDCG@10 against
intra-list diversity as the diversity control goes from 0 to 1.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from _record import run_record  # noqa: E402
from quality import BENCHMARKS, RESULTS, lastfm_side, ml1m_movies  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from agora import metrics as M  # noqa: E402
from agora.config import FeedConfig  # noqa: E402
from agora.evaluation.splits import Split, load_split  # noqa: E402
from agora.feed.rerank import rerank  # noqa: E402
from agora.models.registry import create_model  # noqa: E402

K = 10
#: name -> rerank keyword arguments; "defaults" is the live feed's platform default.
FEED = FeedConfig()
SETTINGS: dict[str, dict] = {
    "model only": {},
    f"diversity {FEED.diversity:g}": {"diversity": FEED.diversity},
    f"exploration {FEED.exploration:g}": {"exploration": FEED.exploration},
    f"new creators {FEED.new_creator_share:g}": {"new_creator_share": FEED.new_creator_share},
    "defaults (all three)": {
        "diversity": FEED.diversity,
        "exploration": FEED.exploration,
        "new_creator_share": FEED.new_creator_share,
    },
}
DIVERSITY_CURVE = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]


def side_of(split: Split) -> tuple[list[list[str]], np.ndarray]:
    """(tags per item, new-creator flag per item) as described in the module docstring."""
    if split.name.startswith("ml1m"):
        movies = ml1m_movies(split.item_ids)
        if movies is None:
            raise SystemExit("ML-1M movies.dat not found under ../shared/data")
        return [m[1] for m in movies], np.array([m[2] == 2000 for m in movies])
    side = lastfm_side(split.item_ids)
    if side is None:
        raise SystemExit("LastFM artist data not found under ../shared/data")
    listeners = np.diff(sp.csc_matrix(split.train.matrix).indptr)
    return side.tags, listeners == 0


def tag_matrix(tags: list[list[str]]) -> sp.csr_matrix:
    codes: dict[str, int] = {}
    rows, cols = [], []
    for i, item_tags in enumerate(tags):
        for t in set(item_tags):
            rows.append(i)
            cols.append(codes.setdefault(t, len(codes)))
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(tags), max(len(codes), 1)))


def intra_list_diversity(lists: list[np.ndarray], tags: sp.csr_matrix) -> float:
    """Mean over lists of the mean pairwise ``1 - Jaccard`` of the items' tag sets."""
    values = []
    for items in lists:
        if len(items) < 2:
            continue
        sub = tags[items].toarray()
        inter = sub @ sub.T
        sizes = sub.sum(axis=1)
        union = sizes[:, None] + sizes[None, :] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        upper = np.triu_indices(len(items), k=1)
        values.append(float(np.mean(1.0 - jac[upper])))
    return float(np.mean(values)) if values else 0.0


def candidates(
    split: Split, n: int, new: np.ndarray, fresh: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Test users, and for each its top-``n`` ALS items plus ``fresh`` random new-creator items
    (as the live feed's ``fresh`` source adds), with their ALS scores; train+valid masked."""
    rng = np.random.default_rng(0)
    model = create_model("als").fit(split.train)
    users = split.users_with(split.test)
    seen = sp.csr_matrix(split.train.matrix + split.valid)
    newcomers = np.flatnonzero(new)
    items, scores = [], []
    for start in range(0, len(users), 512):
        batch = users[start : start + 512]
        s = np.asarray(model.score(batch, split.train.matrix[batch]), dtype=np.float64)
        s[seen[batch].nonzero()] = -np.inf
        top = np.argpartition(-s, n - 1, axis=1)[:, :n]
        for row, cand in zip(s, top, strict=True):
            extra = rng.choice(newcomers, size=min(fresh, len(newcomers)), replace=False)
            cand = np.union1d(cand, extra[np.isfinite(row[extra])])
            cand = cand[np.argsort(-row[cand], kind="stable")]
            items.append(cand)
            scores.append(row[cand])
    return users, items, scores


def evaluate_setting(
    split: Split, users, items, scores, tags: sp.csr_matrix, new: np.ndarray, params: dict
) -> dict:
    rng = np.random.default_rng(0)
    pages = []
    for cand, score in zip(items, scores, strict=True):
        draws = np.where(new[cand], rng.random(len(cand)), np.nan)
        placed = rerank(score, tags[cand], K, new_creator=new[cand], explore=draws, **params)
        pages.append(cand[placed.order])
    truth = [split.test.indices[split.test.indptr[u] : split.test.indptr[u + 1]] for u in users]
    hits, n_rel = M.hits_matrix(pages, truth, K)
    counts = np.diff(sp.csc_matrix(split.train.matrix).indptr)
    flat = np.concatenate(pages)
    return {
        f"ndcg@{K}": M.ndcg_at_k(hits, n_rel),
        f"recall@{K}": M.recall_at_k(hits, n_rel),
        "item_coverage": M.item_coverage(pages, split.train.n_items),
        "intra_list_diversity": intra_list_diversity(pages, tags),
        "novelty": M.novelty(pages, counts),
        "new_creator_share": float(new[flat].mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Cost and effect of each feed heuristic offline.")
    ap.add_argument("--splits", default="ml1m-general,lastfm-social")
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--fresh", type=int, default=50, help="random new-creator items added")
    ap.add_argument("--out", default=str(RESULTS / "feed_offline.json"))
    args = ap.parse_args()
    console = Console()
    results: dict[str, dict] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, split_name in zip(axes, args.splits.split(","), strict=False):
        split = load_split(BENCHMARKS / split_name)
        item_tags, new = side_of(split)
        tags = tag_matrix(item_tags)
        t0 = time.perf_counter()
        users, items, scores = candidates(split, args.candidates, new, args.fresh)
        rows = {}
        for name, params in track(SETTINGS.items(), description=f"{split_name} settings"):
            rows[name] = evaluate_setting(split, users, items, scores, tags, new, params)
        curve = {
            d: evaluate_setting(split, users, items, scores, tags, new, {"diversity": d})
            for d in track(DIVERSITY_CURVE, description=f"{split_name} diversity curve")
        }
        results[split_name] = {
            "settings": rows,
            "diversity_curve": {str(d): v for d, v in curve.items()},
            "new_creator_items": int(new.sum()),
            "n_items": int(split.train.n_items),
            "test_users": len(users),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        table = Table(title=f"{split_name}: ALS top-{args.candidates} re-ranked, first {K}")
        cols = [f"ndcg@{K}", f"recall@{K}", "item_coverage", "intra_list_diversity", "novelty",
                "new_creator_share"]  # fmt: skip
        for col in ["setting", *cols]:
            table.add_column(col)
        for name, r in rows.items():
            table.add_row(name, *(f"{r[c]:.4f}" for c in cols))
        console.print(table)
        x = [curve[d]["intra_list_diversity"] for d in DIVERSITY_CURVE]
        y = [curve[d][f"ndcg@{K}"] for d in DIVERSITY_CURVE]
        ax.plot(x, y, marker="o")
        for d, xi, yi in zip(DIVERSITY_CURVE, x, y, strict=True):
            ax.annotate(f"{d:g}", (xi, yi), textcoords="offset points", xytext=(4, 4))
        ax.set(title=f"{split_name}: diversity control", xlabel="intra-list diversity (tags)",
               ylabel=f"NDCG@{K}")  # fmt: skip
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    fig.savefig(png, dpi=120)
    out.write_text(json.dumps({"run": run_record(vars(args)), **results}, indent=1))
    console.print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
