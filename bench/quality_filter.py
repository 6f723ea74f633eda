"""Precision and recall of the spam / low-quality classifier on labelled Stack Exchange posts.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/quality_filter.py

Data: the bundled Cardano Stack Exchange dump (``data/cardano-se``) and the Constructed
Languages meta dump (``../shared/data/community-conlang-meta-se``, ids prefixed
``conlang-meta:``), imported into a temporary SQLite store with Agora's own importer; the
labelled set is exactly what ``agora moderation train`` reads
(:func:`agora.moderation.service.labelled_examples`).

Labels (:func:`agora.moderation.classifier.label_from_attributes`): low quality = score < 0, or
a question closed other than as a duplicate; ok = score >= 1 and not closed, or an accepted
answer with score >= 0; left out = score 0 and not accepted, closed duplicates. Spam (VoteTypeId
12) and offensive (4) votes and deletions were looked for and are counted in the output: on these
dumps they all point at posts deleted before the dump, so none labels a post.

Protocols:
* headline: stratified 5-fold cross-validation (seed 0): every labelled post is tested once by a
  model fitted on the other folds; precision, recall and F1 at the threshold each model chose on
  its own training part (the shipped rule, :func:`agora.moderation.classifier.choose_threshold`:
  the F1-best threshold on inner out-of-fold probabilities, raised until their precision
  reaches 0.25);
  PR-AUC (average precision) over the pooled out-of-fold probabilities, with a bootstrap 95%
  interval, and precision / recall / share flagged at fixed thresholds (``operating_points``);
* time split: trained on the oldest 75% of labelled posts, tested on the newest 25% (few
  positives: newer posts had less time to collect down-votes or closure).

Rows: the full model (text + structure + author history), text only, structure + author history
only, a length-only logistic regression and the majority rule (never flag; its PR-AUC is the base
rate). Writes bench/results/quality_filter.json and a precision-recall PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _record import run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from agora.config import Settings  # noqa: E402
from agora.db.engine import make_engine, migrate, session_factory, transaction  # noqa: E402
from agora.ingest.schemas import Dataset  # noqa: E402
from agora.ingest.service import add_dataset  # noqa: E402
from agora.ingest.stackexchange import iter_rows, load_stackexchange, table_path  # noqa: E402
from agora.moderation import service  # noqa: E402
from agora.moderation.classifier import (  # noqa: E402
    PRECISION_TARGET,
    Features,
    QualityClassifier,
    featurize,
    scores_at,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DUMPS = {
    "cardano-se": (REPO / "data" / "cardano-se", None),
    "conlang-meta-se": (
        REPO.parent / "shared" / "data" / "community-conlang-meta-se",
        "conlang-meta",
    ),
}
VARIANTS: dict[str, dict] = {
    "full (text + structure + author history)": {},
    "text only": {"use_structure": False, "use_behaviour": False},
    "structure + author history": {"use_text": False},
    "length only (baseline)": {"use_text": False, "numeric_only": ("log_body_chars",)},
    "majority: never flag (baseline)": "majority",
}
console = Console()


def prefixed(dataset: Dataset, prefix: str) -> Dataset:
    """The dataset with every user and item id prefixed (two dumps share numeric ids)."""

    def p(value: str | None) -> str | None:
        return None if value is None else f"{prefix}:{value}"

    return Dataset(
        users=[u.model_copy(update={"user_id": p(u.user_id)}) for u in dataset.users],
        items=[
            i.model_copy(update={"item_id": p(i.item_id), "author_id": p(i.author_id)})
            for i in dataset.items
        ],
        events=[
            e.model_copy(update={"user_id": p(e.user_id), "item_id": p(e.item_id)})
            for e in dataset.events
        ],
        edges=[
            e.model_copy(update={"source_id": p(e.source_id), "target_id": p(e.target_id)})
            for e in dataset.edges
        ],
    )


def unusable_evidence(folder: Path) -> dict[str, int]:
    """Spam / offensive votes and deletion events, and how many point at posts in the dump."""
    posts = {row["Id"] for row in iter_rows(table_path(folder, "Posts"))}
    out: dict[str, int] = {}
    for vote_type, name in (("12", "spam_votes"), ("4", "offensive_votes"), ("10", "deletions")):
        rows = [
            r for r in iter_rows(table_path(folder, "Votes")) if r.get("VoteTypeId") == vote_type
        ]
        out[name] = len(rows)
        out[f"{name}_on_posts_in_dump"] = sum(r.get("PostId") in posts for r in rows)
    return out


def build_store(url: str, dumps: list[str]) -> dict:
    """Import the dumps into the store at ``url``; returns what each brought."""
    engine = make_engine(url)
    migrate(engine)
    info = {}
    for name in dumps:
        folder, prefix = DUMPS[name]
        loaded = load_stackexchange(folder, id_prefix=prefix or "se")
        dataset = prefixed(loaded.dataset, prefix) if prefix else loaded.dataset
        with transaction(session_factory(engine)) as session:
            add_dataset(session, dataset, Settings().event_types)
        info[name] = {"items": len(dataset.items), **unusable_evidence(folder)}
    engine.dispose()
    return info


def fit_predict(variant: dict | str, train: Features, y: np.ndarray, test: Features):
    """(test probabilities, chosen threshold) of one variant fitted on ``train``."""
    if variant == "majority":
        return np.zeros(len(test)), 0.5
    model = QualityClassifier(**variant).fit_features(train, y)
    return model.predict_features(test), model.threshold_


def bootstrap_pr_auc(y: np.ndarray, prob: np.ndarray, n: int = 1000, seed: int = 0):
    """95% percentile interval of average precision over bootstrap resamples of the posts."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].any():
            values.append(average_precision_score(y[idx], prob[idx]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def cross_validate(variant, features: Features, y: np.ndarray, folds: int, seed: int) -> dict:
    prob = np.zeros(len(y))
    flagged = np.zeros(len(y), dtype=bool)
    thresholds = []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(y)), y):
        p, t = fit_predict(variant, features.rows(train), y[train], features.rows(test))
        prob[test] = p
        flagged[test] = p >= t
        thresholds.append(t)
    # flagged holds each fold's own decision: score it with threshold 0.5 on a 0/1 vector
    result = scores_at(y, flagged.astype(float), 0.5)
    result["pr_auc"] = float(average_precision_score(y, prob))
    result["pr_auc_95"] = bootstrap_pr_auc(y, prob)
    result["threshold"] = float(np.mean(thresholds))
    return {"scores": result, "prob": prob}


#: Thresholds at which the pooled out-of-fold probabilities are read (``operating_points``).
OPERATING_THRESHOLDS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3)


def operating_points(y: np.ndarray, prob: np.ndarray) -> list[dict]:
    """Precision, recall and share of posts flagged at each of ``OPERATING_THRESHOLDS``."""
    out = []
    for threshold in OPERATING_THRESHOLDS:
        at = scores_at(y, prob, threshold)
        out.append(
            {
                "threshold": threshold,
                "precision": at["precision"],
                "recall": at["recall"],
                "flagged_share": at["flagged"] / at["n"],
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dumps", default=",".join(DUMPS), help="comma-separated: " + ", ".join(DUMPS))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "quality_filter.json"))
    args = ap.parse_args()
    dumps = [d.strip() for d in args.dumps.split(",") if d.strip()]

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'agora.db'}"
        sources = build_store(url, dumps)
        engine = make_engine(url)
        with session_factory(engine)() as session:
            examples = service.labelled_examples(session)
        engine.dispose()
    y = examples.labels
    console.print(
        f"labelled posts: {len(y)} ({int(y.sum())} low quality, base rate {y.mean():.3f}); "
        f"store built in {time.perf_counter() - started:.1f} s"
    )
    t0 = time.perf_counter()
    features = featurize(examples.posts, text=True)
    featurize_s = time.perf_counter() - t0

    cut = int(len(y) * 0.75)
    order = np.arange(len(y))  # examples are in creation order
    results: dict[str, dict] = {}
    curves = {}
    for name, variant in VARIANTS.items():
        t0 = time.perf_counter()
        cv = cross_validate(variant, features, y, args.folds, args.seed)
        cv_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        prob, threshold = fit_predict(
            variant, features.rows(order[:cut]), y[:cut], features.rows(order[cut:])
        )
        fit_s = time.perf_counter() - t0
        timed = scores_at(y[cut:], prob, threshold)
        results[name] = {
            "cross_validation": cv["scores"],
            "time_split": timed,
            "operating_points": operating_points(y, cv["prob"]),
            "seconds_cross_validation": round(cv_s, 1),
            "seconds_one_fit": round(fit_s, 1),
        }
        curves[name] = cv["prob"]
        console.print(f"{name}: {cv_s:.1f} s")

    table = Table(title=f"spam / low-quality classifier, {args.folds}-fold CV (seed {args.seed})")
    for col in ("variant", "precision", "recall", "F1", "PR-AUC (95% CI)", "time split P/R/F1"):
        table.add_column(col)
    for name, r in results.items():
        cv, ts = r["cross_validation"], r["time_split"]
        lo, hi = cv["pr_auc_95"]
        table.add_row(
            name,
            f"{cv['precision']:.3f}",
            f"{cv['recall']:.3f}",
            f"{cv['f1']:.3f}",
            f"{cv['pr_auc']:.3f} ({lo:.3f}-{hi:.3f})",
            f"{ts['precision']:.2f}/{ts['recall']:.2f}/{ts['f1']:.2f} "
            f"({ts['true_positives']}/{ts['positives']})",
        )
    console.print(table)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, prob in curves.items():
        if VARIANTS[name] == "majority":
            continue
        precision, recall, _ = precision_recall_curve(y, prob)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, prob):.3f})")
    ax.axhline(y.mean(), color="grey", linestyle=":", label=f"base rate {y.mean():.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Low-quality posts, Stack Exchange dumps: pooled out-of-fold")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    fig.savefig(png, dpi=120)
    payload = {
        "run": run_record(vars(args)),
        "dumps": sources,
        "labels": {
            "rule": (
                "low quality: score < 0, or question closed not as a duplicate; ok: score >= 1 "
                "and not closed, or accepted answer with score >= 0; left out: the rest"
            ),
            "low_quality": int(y.sum()),
            "ok": int((y == 0).sum()),
            "time_split_cut": examples.created[cut].isoformat(),
            "time_split_test_low_quality": int(y[cut:].sum()),
        },
        "protocol": {
            "cross_validation": f"stratified {args.folds}-fold, seed {args.seed}; each fold's "
            "own threshold by the shipped rule (F1-best on inner out-of-fold probabilities, "
            f"raised until their precision reaches {PRECISION_TARGET:g}); PR-AUC over pooled "
            "out-of-fold probabilities",
            "time_split": "train on the oldest 75% of labelled posts, test on the newest 25%",
        },
        "featurize_seconds": round(featurize_s, 1),
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=1))
    console.print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
