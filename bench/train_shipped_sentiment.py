"""Retrain the sentiment artefact that ships inside the package (``agora/analytics/
sentiment/model/``): one logistic-regression head per language on its features, on the train
parts of the fixed split of the labelled sets, with the shipped configuration
(``agora.analytics.sentiment.service.SHIPPED``). Run it only when the data or the configuration
change:

    PYTHONPATH=src .venv/bin/python bench/train_shipped_sentiment.py --data ../shared/data

Writes the heads (``heads.npz``, ``params.json``, TF-IDF vocabularies, the English head's
BitFit values ``minilm_en.npz``) and ``meta.json``
(command, git revision, data files with their sha256, rows used) into the package folder, prints
a table of the rows used per set, and writes the same record to
``bench/results/sentiment_shipped.json``. Then it scores the artefact as shipped (loaded from
the package folder) on the test parts of the same split (at most ``--max-test`` rows per set,
as bench/sentiment.py caps them): accuracy, macro-F1 and macro-recall per set and texts per
second (the model loaded beforehand), in the record's ``test``. ``--evaluate-only`` does that
part alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from _record import run_record
from rich.console import Console
from rich.table import Table

import agora
from agora.analytics.sentiment import service as sa

RESULTS = Path(__file__).resolve().parent / "results" / "sentiment_shipped.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=sa.DEFAULT_DATA_DIR, help="labelled sets")
    parser.add_argument("--out", type=Path, default=sa.SHIPPED_MODEL_DIR, help="artefact folder")
    parser.add_argument(
        "--datasets", nargs="+", choices=list(sa.DATASETS), default=list(sa.DATASETS)
    )
    parser.add_argument("--max-test", type=int, default=600)
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args()
    if args.evaluate_only:
        record = json.loads(RESULTS.read_text())
        record["test"] = evaluate(args.out, args.data, args.datasets, args.max_test)
        RESULTS.write_text(json.dumps(record, indent=2) + "\n")
        return
    started = time.perf_counter()
    model, info = sa.train_sentiment(args.data, datasets=args.datasets, **sa.SHIPPED)
    seconds = time.perf_counter() - started
    files = {
        name: {
            str(p.relative_to(args.data)): _sha256(p)
            for p in sorted((args.data / folder).iterdir())
            if p.is_file() and p.name != "PROVENANCE.md"
        }
        for name, (folder, _) in sa.DATASETS.items()
        if name in args.datasets
    }
    created = datetime.now(UTC)
    record = {
        "version": f"shipped-{created.strftime('%Y%m%dT%H%M%SZ')}",
        "run": run_record(sa.SHIPPED),
        "agora_version": agora.__version__,
        "created": created.isoformat(),
        "configuration": sa.SHIPPED,
        "train_seconds": round(seconds, 1),
        "data_files_sha256": files,
        **info,
    }
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    (tmp / "meta.json").write_text(json.dumps({"name": "sentiment", **record}, indent=2) + "\n")
    if (args.out / "PROVENANCE.md").exists():
        shutil.copy(args.out / "PROVENANCE.md", tmp / "PROVENANCE.md")
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    table = Table(title=f"shipped sentiment model, trained in {seconds:.0f} s")
    table.add_column("data set")
    table.add_column("train rows", justify="right")
    for name, rows in info["train_rows"].items():
        table.add_row(name, f"{rows:,}")
    Console().print(table)
    record["test"] = evaluate(args.out, args.data, args.datasets, args.max_test)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out} and {RESULTS}")


def evaluate(folder: Path, data_dir: Path, datasets: list[str], max_test: int) -> dict:
    """The artefact in ``folder`` on each set's test part: accuracy, macro-F1 and macro-recall
    (binary sets: the sign of the score; TweetEval: the 3-class label) and texts per second, once
    the model is loaded (``load_seconds``: reading it and its encoders)."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    t0 = time.perf_counter()
    model = sa.load_sentiment_version(folder)
    model.predict(["好吃", "good"])  # loads every head's encoder once, outside the timings
    out: dict[str, dict] = {"load_seconds": round(time.perf_counter() - t0, 1)}
    table = Table(title="the shipped artefact on the test parts")
    for column in ("data set", "rows", "accuracy", "macro-F1", "macro-recall", "texts/s"):
        table.add_column(column, justify="left" if column == "data set" else "right")
    for name in datasets:
        data = sa.load_dataset(name, data_dir)
        _, test = sa.split_dataset(data, max_test=max_test)
        texts = [data.texts[i] for i in test]
        truth = data.labels[test]
        t0 = time.perf_counter()
        labels, scores = model.predict(texts)
        per_second = len(texts) / (time.perf_counter() - t0)
        if len(data.classes) == 2:
            predicted = [1 if s >= 0 else -1 for s in scores]
        else:
            predicted = [sa.LABELS.index(label) - 1 for label in labels]
        row = {
            "rows": len(test),
            "accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
            "macro_recall": round(float(recall_score(truth, predicted, average="macro")), 4),
            "texts_per_s": round(per_second),
        }
        out[name] = row
        table.add_row(name, *(f"{v:,}" if isinstance(v, int) else f"{v:.3f}" for v in row.values()))
    Console().print(table)
    return out


if __name__ == "__main__":
    main()
