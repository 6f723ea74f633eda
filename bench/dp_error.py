"""Error of each differentially private figure against epsilon, on the bundled community and
MovieLens-1M.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/dp_error.py [--reps 5]

Each released figure kind is computed exactly and with the kit the routes use
(:mod:`agora.api.dp`: per-person contribution bounds of :data:`agora.api.dp.FIGURES`,
then OpenDP's discrete Laplace, Laplace or noisy top-k), ``--reps`` times per epsilon, on:

1. the bundled **Cardano Stack Exchange** community (``data/cardano-se``, what ``make demo``
   serves: 2,538 posts, 5,112 events, 2021-04..12; people are posters and engagers);
2. **MovieLens-1M** ratings with timestamps (``../shared/data/movielens-1m``, users 1-2999,
   487,650 ratings; genres stand for tags, a rating for an event, (rating - 3) / 2 for a
   sentiment score).

Errors (lower is better), per figure:

* ``active_users``: relative mean absolute error of daily distinct users (sum |noisy - exact| /
  sum exact), GET /analytics/engagement/active;
* ``trending_topics``: relative MAE of posts (ratings) per tag per week, GET /analytics/trending;
* ``trending_items``: 1 - precision@10 of the noisy top-k list against the exact trending list
  (decayed distinct users, half-life 7 days), GET /items/trending;
* ``sentiment``: mean absolute error of the mean score per tag, over tags with 20+ texts,
  GET /analytics/sentiment;
* ``reach``: 1 - precision@20 of items ranked by noisy distinct users, GET /analytics/reach.

Writes ``bench/results/dp_error.json`` and ``bench/results/dp_error.png`` (mean and the
min-max spread over the repetitions).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _record import run_record
from rich.console import Console
from rich.table import Table

from agora.analytics.dp_figures import LABELS, person_ids, trending_arrays
from agora.api import dp

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = [REPO.parent / "shared" / "data", Path("/work/shared/data")]
EPSILONS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
DAY, WEEK = 86_400, 7 * 86_400
console = Console(soft_wrap=True)

FIGURES = ("active_users", "trending_topics", "trending_items", "sentiment", "reach")
METRIC = {
    "active_users": "relative MAE of daily active users",
    "trending_topics": "relative MAE of posts per tag-week",
    "trending_items": "1 - precision@10 of the trending list",
    "sentiment": "MAE of mean sentiment per tag (n >= 20)",
    "reach": "1 - precision@20 of items by distinct users",
}


# ----------------------------------------------------------------------------------- data


def _ids(values: list) -> np.ndarray:
    return dp.dense_ids(values)[0]


def cardano() -> dict[str, np.ndarray]:
    """Arrays of the bundled community: events, posts with tags, scored texts (VADER)."""
    from agora.analytics.sentiment.service import vader_scores
    from agora.ingest.stackexchange import load_stackexchange

    loaded = load_stackexchange(REPO / "data" / "cardano-se")
    ds = loaded.dataset if hasattr(loaded, "dataset") else loaded[0]
    tags_of = {i.item_id: list(i.tags or []) for i in ds.items}
    ev = [e for e in ds.events if e.timestamp is not None]
    posts = [(i.author_id, t, i.created) for i in ds.items if i.created for t in i.tags or []]
    texts = [
        (i.author_id, i.tags or [], f"{i.title or ''}\n{i.body or ''}"[:1000]) for i in ds.items
    ]
    texts += [
        (e.user_id, tags_of.get(e.item_id, []), str((e.context or {}).get("text", "")))
        for e in ev
        if e.type == "comment" and (e.context or {}).get("text")
    ]
    scores = vader_scores([t for _, _, t in texts])
    return _arrays(
        users=[e.user_id for e in ev],
        items=[e.item_id for e in ev],
        seconds=[e.timestamp.timestamp() for e in ev],
        post_people=[p[0] for p in posts],
        post_tags=[p[1] for p in posts],
        post_seconds=[p[2].timestamp() for p in posts],
        text_people=[p for p, _, _ in texts],
        text_tags=[t for _, t, _ in texts],
        text_scores=scores,
    )


def movielens() -> dict[str, np.ndarray] | None:
    """Arrays of MovieLens-1M's timestamped ratings (genres as tags)."""
    from agora.ingest.movielens import load_movielens

    folder = next(
        (d / "movielens-1m" / "ml-1m" for d in SHARED if (d / "movielens-1m").exists()), None
    )
    if folder is None:
        return None
    ds = load_movielens(folder)
    genres = {i.item_id: list(i.tags or []) for i in ds.items}
    ev = [e for e in ds.events if e.timestamp is not None]
    tagged = [
        (e.user_id, g, e.timestamp.timestamp(), e.value) for e in ev for g in genres[e.item_id]
    ]
    return _arrays(
        users=[e.user_id for e in ev],
        items=[e.item_id for e in ev],
        seconds=[e.timestamp.timestamp() for e in ev],
        post_people=[t[0] for t in tagged],
        post_tags=[t[1] for t in tagged],
        post_seconds=[t[2] for t in tagged],
        text_people=[e.user_id for e in ev],
        text_tags=[genres[e.item_id] for e in ev],
        text_scores=np.asarray([(float(e.value or 3.0) - 3.0) / 2.0 for e in ev]),
    )


def _arrays(**raw) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    out["users"] = _ids(raw["users"])
    out["items"] = _ids(raw["items"])
    out["day"] = (np.asarray(raw["seconds"]) // DAY).astype(np.int64)
    out["seconds"] = np.asarray(raw["seconds"], dtype=np.float64)
    out["post_people"] = person_ids(raw["post_people"])
    out["post_tag"] = _ids(raw["post_tags"])
    out["post_week"] = (np.asarray(raw["post_seconds"]) // WEEK).astype(np.int64)
    people, tags, scores = [], [], []
    for person, tag_list, score in zip(
        raw["text_people"], raw["text_tags"], raw["text_scores"], strict=True
    ):
        for tag in dict.fromkeys(tag_list):
            people.append(person)
            tags.append(tag)
            scores.append(float(score))
    out["text_people"] = person_ids(people)
    out["text_tag"] = _ids(tags)
    out["text_score"] = np.asarray(scores)
    return out


# -------------------------------------------------------------------------------- figures


def _rel_mae(noisy: np.ndarray, exact: np.ndarray) -> float:
    return float(np.abs(noisy - exact).sum() / max(exact.sum(), 1))


def _precision(picked: np.ndarray, exact_top: np.ndarray) -> float:
    return len(set(picked.tolist()) & set(exact_top.tolist())) / max(len(exact_top), 1)


def figure_runs(
    d: dict[str, np.ndarray],
) -> dict[str, Callable[[float, np.random.Generator], float]]:
    """For each figure, ``run(epsilon, rng) -> error`` of one release."""
    b = {name: dp.Bounds(s.max_partitions, s.max_per_partition) for name, s in dp.FIGURES.items()}

    day0 = d["day"] - d["day"].min()
    n_days = int(day0.max()) + 1
    pairs = np.unique(np.stack([d["users"], day0], 1), axis=0)
    exact_dau = np.bincount(pairs[:, 1], minlength=n_days)

    def active(eps: float, rng: np.random.Generator) -> float:
        grant = dp.Grant(eps, b["active_users"], rng)
        distinct = grant.histogram(d["users"], day0, n_days, eps / 2, distinct=True)
        return _rel_mae(dp.clamp_counts(distinct), exact_dau)

    week0 = d["post_week"] - d["post_week"].min()
    n_weeks = int(week0.max()) + 1
    n_tags = int(d["post_tag"].max()) + 1
    cells = d["post_tag"] * n_weeks + week0
    exact_cells = np.bincount(cells, minlength=n_tags * n_weeks)

    def topics(eps: float, rng: np.random.Generator) -> float:
        grant = dp.Grant(eps, b["trending_topics"], rng)
        noisy = trending_arrays(d["post_people"], d["post_tag"], week0, n_tags, n_weeks, grant)
        return _rel_mae(noisy.ravel(), exact_cells)

    newest = d["seconds"].max()
    ui = np.unique(np.stack([d["users"], d["items"]], 1), axis=0, return_index=True)[1]
    last = np.zeros(ui.size)
    order = np.lexsort((-d["seconds"], d["items"], d["users"]))  # newest first per pair
    _, first = np.unique(
        np.stack([d["users"][order], d["items"][order]], 1), axis=0, return_index=True
    )
    last = d["seconds"][order][first]
    pair_items = d["items"][order][first]
    n_items = int(d["items"].max()) + 1
    decayed = np.bincount(
        pair_items, weights=0.5 ** ((newest - last) / (7 * DAY)), minlength=n_items
    )
    exact_top10 = np.argsort(-decayed, kind="stable")[:10]

    def trending_items(eps: float, rng: np.random.Generator) -> float:
        picked = dp.noisy_top_k(decayed, 30, 1.0 + 1e-6, eps)[:10]
        return 1.0 - _precision(picked, exact_top10)

    n_groups = int(d["text_tag"].max()) + 1
    exact_n = np.bincount(d["text_tag"], minlength=n_groups)
    exact_mean = np.bincount(
        d["text_tag"], weights=d["text_score"], minlength=n_groups
    ) / np.maximum(exact_n, 1)
    labels = np.where(d["text_score"] > 0.05, 2, np.where(d["text_score"] < -0.05, 0, 1))
    big = exact_n >= 20

    def sentiment(eps: float, rng: np.random.Generator) -> float:
        from agora.analytics.dp_figures import sentiment_arrays

        grant = dp.Grant(eps, b["sentiment"], rng)
        out = sentiment_arrays(
            d["text_people"], d["text_tag"], labels, d["text_score"], n_groups, grant
        )
        return float(np.abs(out["mean"][big] - exact_mean[big]).mean()) if big.any() else 0.0

    reach_exact = np.bincount(
        np.unique(np.stack([d["users"], d["items"]], 1), axis=0)[:, 1], minlength=n_items
    )
    exact_top20 = np.lexsort((np.arange(n_items), -reach_exact))[:20]

    def reach(eps: float, rng: np.random.Generator) -> float:
        grant = dp.Grant(eps, b["reach"], rng)
        noisy = dp.clamp_counts(
            grant.histogram(d["users"], d["items"], n_items, eps / 2, distinct=True)
        )
        top = np.lexsort((np.arange(n_items), -noisy))[:20]
        return 1.0 - _precision(top, exact_top20)

    assert set(LABELS) == {"negative", "neutral", "positive"}
    return {
        "active_users": active,
        "trending_topics": topics,
        "trending_items": trending_items,
        "sentiment": sentiment,
        "reach": reach,
    }


# ----------------------------------------------------------------------------------- plot


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 3, figsize=(13, 7.5), dpi=100)
    axes = grid.ravel()
    axes[-1].axis("off")
    colours = {"cardano": "tab:blue", "ml-1m": "tab:orange"}
    for ax, figure in zip(axes, FIGURES, strict=False):
        for name, data in results.items():
            rows = data["figures"][figure]
            eps = np.asarray([r["epsilon"] for r in rows])
            mean = np.asarray([r["mean"] for r in rows])
            ax.plot(eps, mean, marker="o", ms=3, color=colours.get(name), label=name)
            ax.fill_between(
                eps, [r["min"] for r in rows], [r["max"] for r in rows], color=colours.get(name),
                alpha=0.2, linewidth=0,
            )  # fmt: skip
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("epsilon per release")
        ax.set_title(f"{figure}\n{METRIC[figure]}", fontsize=10)
        ax.set_ylabel("error (lower is better)")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Error of differentially private figures (mean; band: min-max over repetitions)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="Releases per epsilon (default 5).")
    parser.add_argument(
        "--plot-only", action="store_true", help="Redraw the PNG from the stored JSON."
    )
    args = parser.parse_args()
    if args.plot_only:
        stored = json.loads((RESULTS / "dp_error.json").read_text())
        console.print(f"wrote {plot(stored['results'], RESULTS / 'dp_error.png')}")
        return
    started = time.perf_counter()
    datasets = {"cardano": cardano}
    ml = movielens()
    if ml is not None:
        datasets["ml-1m"] = lambda: ml
    else:
        console.print("[yellow]MovieLens-1M not found under ../shared/data: skipped[/]")
    results: dict = {}
    for name, load in datasets.items():
        t = time.perf_counter()
        data = load()
        runs = figure_runs(data)
        out: dict = {"records": int(data["users"].size), "figures": {}}
        for figure, run in runs.items():
            rows = []
            for eps in EPSILONS:
                errors = [run(eps, np.random.default_rng(1000 * r + 7)) for r in range(args.reps)]
                rows.append(
                    {
                        "epsilon": eps,
                        "mean": float(np.mean(errors)),
                        "std": float(np.std(errors)),
                        "min": float(np.min(errors)),
                        "max": float(np.max(errors)),
                    }
                )
            out["figures"][figure] = rows
        out["seconds"] = round(time.perf_counter() - t, 1)
        results[name] = out
        table = Table(title=f"{name}: error against epsilon ({args.reps} releases each)")
        table.add_column("figure")
        for eps in EPSILONS:
            table.add_column(f"{eps:g}", justify="right")
        for figure in FIGURES:
            table.add_row(figure, *(f"{r['mean']:.3f}" for r in out["figures"][figure]))
        console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "run": run_record({"reps": args.reps, "epsilons": list(EPSILONS)}),
        "metrics": METRIC,
        "bounds": {n: vars(s) for n, s in dp.FIGURES.items()},
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (RESULTS / "dp_error.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(results, RESULTS / "dp_error.png")
    console.print(f"wrote {RESULTS / 'dp_error.json'} and {RESULTS / 'dp_error.png'}")


if __name__ == "__main__":
    main()
