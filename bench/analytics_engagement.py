"""Engagement analytics on the largest timestamped datasets, with the time each analytic takes.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/analytics_engagement.py

1. **MovieLens-1M** (``../shared/data/movielens-1m``, the ratings with timestamps: users
   1-2999, 487,650 ratings, 2000-04 to 2003-02; the full 1M ratings have no timestamps) imported
   with the project's importer (``load_any(..., "movielens")``, as ``agora import`` does) into a
   temporary SQLite store. Ratings are events: DAU/WAU, retention cohorts, interaction rates and
   the Gini of ratings across movies (movies have no authors, so no creator Gini).
2. **Cardano Stack Exchange** (the bundled ``data/cardano-se`` dump, the whole site
   2021-04-27..2021-12-05) for time to first answer/comment on questions (``of="ask"``) and the
   Gini across posts and creators.

Each store's engagement report (Markdown + PNGs) goes to
``bench/results/analytics_engagement/<dataset>/``; timings and figures to
``bench/results/analytics_engagement.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from _record import run_record
from rich.console import Console
from rich.table import Table

from agora.analytics.engagement.report import Engagement, compute, write_report
from agora.config import BUILTIN_EVENT_TYPES
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.registry import load_any
from agora.ingest.service import add_dataset

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
TYPES = (*BUILTIN_EVENT_TYPES, "ask", "answer", "accept")
console = Console(soft_wrap=True)

DATASETS = {
    "movielens-1m": (DATA / "movielens-1m", "movielens", None),
    "cardano-se": (REPO / "data" / "cardano-se", "stackexchange", "ask"),
}


def run(name: str, path: Path, fmt: str, of: str | None, tmp: Path) -> dict:
    start = time.perf_counter()
    dataset = load_any(path, fmt, event_types=TYPES)
    read_s = time.perf_counter() - start
    engine = make_engine(f"sqlite:///{tmp / f'{name}.db'}")
    migrate(engine)
    factory = session_factory(engine)
    start = time.perf_counter()
    with transaction(factory) as session:
        add_dataset(session, dataset, TYPES)
    write_s = time.perf_counter() - start
    with factory() as session:
        result = compute(session, weeks=12, of=of)
    engine.dispose()
    write_report(result, RESULTS / "analytics_engagement" / name, title=f"Engagement: {name}")
    return summary(name, dataset.counts(), read_s, write_s, result)


def summary(name: str, counts: dict, read_s: float, write_s: float, e: Engagement) -> dict:
    dau = [p.users for p in e.daily]
    wau = [p.users for p in e.weekly]
    r = e.response
    return {
        "dataset": name,
        "counts": counts,
        "import_seconds": {"read": round(read_s, 2), "write_sqlite": round(write_s, 2)},
        "analytic_seconds": {k: round(v, 3) for k, v in e.seconds.items()},
        "days": len(dau),
        "mean_dau": sum(dau) / max(len(dau), 1),
        "max_dau": max(dau, default=0),
        "mean_wau": sum(wau) / max(len(wau), 1),
        "max_wau": max(wau, default=0),
        "cohorts": len(e.retention.cohorts),
        "retention_overall": e.retention.overall,
        "response": {
            "items": r.items,
            "answered": r.answered,
            "share_answered": r.share_answered,
            "median_hours": None if r.median_seconds is None else r.median_seconds / 3600,
            "p90_hours": None if r.p90_seconds is None else r.p90_seconds / 3600,
        },
        "attention": {
            pop: {
                "population": c.population,
                "engaged": c.engaged,
                "events": c.events,
                "gini": c.gini,
                "top1_share": c.top1_share,
                "top10_share": c.top10_share,
            }
            for pop, c in (("items", e.attention.items), ("creators", e.attention.creators))
        },
    }


def main() -> None:
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, fmt, of) in DATASETS.items():
            console.print(f"[bold]{name}[/bold]: importing {path}")
            out.append(run(name, path, fmt, of, Path(tmp)))
    timings = Table(title="Engagement analytics: seconds per analytic (SQLite store)")
    timings.add_column("analytic")
    for s in out:
        timings.add_column(f"{s['dataset']} ({s['counts'].get('events', 0):,} events)")
    for key in out[0]["analytic_seconds"]:
        timings.add_row(key, *(f"{s['analytic_seconds'][key]:.2f}" for s in out))
    for key in ("read", "write_sqlite"):
        timings.add_row(f"import: {key}", *(f"{s['import_seconds'][key]:.1f}" for s in out))
    console.print(timings)
    figures = Table(title="Engagement figures")
    figures.add_column("figure")
    for s in out:
        figures.add_column(s["dataset"])

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    rows = {
        "mean / max DAU": lambda s: f"{s['mean_dau']:.1f} / {s['max_dau']}",
        "mean / max WAU": lambda s: f"{s['mean_wau']:.1f} / {s['max_wau']}",
        "weekly cohorts": lambda s: str(s["cohorts"]),
        "week-1 / week-4 retention": lambda s: (
            f"{pct(s['retention_overall'][1])} / {pct(s['retention_overall'][4])}"
        ),
        "posts answered": lambda s: pct(s["response"]["share_answered"]),
        "median / p90 hours to response": lambda s: (
            "n/a"
            if s["response"]["median_hours"] is None
            else f"{s['response']['median_hours']:.2f} / {s['response']['p90_hours']:.2f}"
        ),
        "Gini items (top 1% share)": lambda s: (
            f"{s['attention']['items']['gini']:.3f} ({pct(s['attention']['items']['top1_share'])})"
        ),
        "Gini creators": lambda s: f"{s['attention']['creators']['gini']:.3f}",
    }
    for label, fmt in rows.items():
        figures.add_row(label, *(fmt(s) for s in out))
    console.print(figures)
    path = RESULTS / "analytics_engagement.json"
    path.write_text(
        json.dumps({"run": run_record(), "results": out}, indent=2) + "\n",
        encoding="utf-8",
    )
    console.print(f"wrote {path} and the reports under {RESULTS / 'analytics_engagement'}")


if __name__ == "__main__":
    main()
