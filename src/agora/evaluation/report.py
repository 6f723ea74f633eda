"""A short Markdown report of one evaluation, with a metric-vs-K plot beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.plots import plot_curve

_ORDER = ("ndcg", "recall", "mrr", "hit", "precision")


def metric_table(metrics: dict[str, Any]) -> str:
    """Markdown table of the @K metrics, coverage, novelty and timings."""
    k = metrics.get("k", 10)
    rows = [(f"{m}@{k}", metrics.get(f"{m}@{k}")) for m in _ORDER]
    rows += [(name, metrics.get(name)) for name in ("item_coverage", "novelty")]
    rows += [(name, metrics.get(name)) for name in ("fit_seconds", "eval_seconds", "n_test_users")]
    lines = ["| metric | value |", "|---|---:|"]
    for name, value in rows:
        if value is None:
            continue
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {text} |")
    return "\n".join(lines)


def write_report(
    out_dir: str | Path, metrics: dict[str, Any], curve: dict[str, list[float]] | None = None
) -> Path:
    """Write ``out_dir/report.md`` (and ``curve.png`` when a curve is given); return the md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{metrics.get('model', '?')} on {Path(str(metrics.get('split', '?'))).name}"
    parts = [f"# Evaluation: {title}", ""]
    parts.append(f"Parameters: `{metrics.get('params', {})}`")
    parts.append("")
    parts.append(
        "Full ranking over all items, train and valid items masked; metrics recomputed from "
        "`recommendations.tsv`."
    )
    parts += ["", metric_table(metrics), ""]
    if "selection" in metrics:
        from agora.evaluation.auto import selection_table

        parts += [selection_table(metrics["selection"]), ""]
    if "learned" in metrics:
        parts += [f"Learned state: `{metrics['learned']}`", ""]
    if curve is not None:
        plot_curve(curve, out / "curve.png", title)
        parts += ["![NDCG@k and Recall@k](curve.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path
