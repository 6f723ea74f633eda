"""``agora experiment report``: a Markdown report of one experiment with a PNG per metric
(each arm's value over time, and each arm minus control with its confidence band)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from agora.experiments import service
from agora.experiments.schemas import METRICS

LABELS = {
    "ctr": "CTR (clicks per impression)",
    "engagement_per_user": "engagement events per exposed user",
    "retention": "retention (active on day N)",
}


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def _time(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def plot_metric(timeline: list[dict[str, Any]], metric: str, control: str, path: Path) -> Path:
    """Two panels over time: the metric per arm, and each arm minus control with its CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [point["at"] for point in timeline]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    arms = [a["arm"] for a in timeline[0]["arms"]] if timeline else []
    for i, arm in enumerate(arms):
        values = [point["arms"][i][metric] for point in timeline]
        left.plot(times, [float("nan") if v is None else v for v in values], marker="o", ms=3,
                  label=arm)  # fmt: skip
    left.set_title(LABELS[metric])
    left.legend()
    for arm in (a for a in arms if a != control):
        rows = [point["comparisons"][arm][metric] for point in timeline]
        diff = [float("nan") if r["difference"] is None else r["difference"] for r in rows]
        low = [float("nan") if r["low"] is None else r["low"] for r in rows]
        high = [float("nan") if r["high"] is None else r["high"] for r in rows]
        line = right.plot(times, diff, marker="o", ms=3, label=f"{arm} - {control}")[0]
        right.fill_between(times, low, high, color=line.get_color(), alpha=0.2)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_title("difference vs control, 95% CI (cumulative)")
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    session: Session, experiment_id: str, out: Path, now: datetime, confidence: float = 0.95
) -> Path:
    """Write ``report.md`` and one PNG per metric into ``out``; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    row = service.get_experiment(session, experiment_id)
    info = service.experiment_out(session, row)
    body = service.results(session, experiment_id, now, confidence)
    timeline = service.timeline(session, experiment_id, now, confidence)
    lines = [
        f"# Experiment `{experiment_id}`: {info['name']}",
        "",
        f"Status **{info['status']}**; started {_time(info['started'])}, "
        f"{'stopped ' + _time(info['stopped']) if info['stopped'] else 'still running'}; "
        f"results as of {_time(body['as_of'])}. Planned {info['planned_users']:,} exposed users, "
        f"{info['looks']} guardrail looks at alpha {info['alpha']}.",
    ]
    if info["stop_reason"]:
        lines += ["", f"Stop reason: {info['stop_reason']}"]
    lines += ["", "## Arms", "", "| arm | weight | feed overrides | exposed users |"]
    lines.append("|---|---:|---|---:|")
    for arm in info["arms"]:
        overrides = ", ".join(f"{k}={v}" for k, v in arm["overrides"].items()) or "(none)"
        lines.append(
            f"| {arm['name']} | {arm['weight']:g} | {overrides} | {arm['exposed_users']:,} |"
        )
    lines += [
        "",
        "## Metrics per arm",
        "",
        "| arm | users | impressions | clicks | CTR | engagements | per user | retention |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in body["arms"]:
        lines.append(
            f"| {a['arm']} | {a['users']:,} | {a['impressions']:,} | {a['clicks']:,} | "
            f"{_num(a['ctr'])} | {a['engagements']:,} | {_num(a['engagement_per_user'])} | "
            f"{_num(a['retention'])} ({a['retained']}/{a['retention_users']}) |"
        )
    level = f"{100 * confidence:g}%"
    lines += [
        "",
        f"## Against control ({body['control']}), {level} intervals",
        "",
        f"| arm | metric | control | arm | difference | {level} CI | relative | p-value |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    methods = {}
    for group in body["comparisons"]:
        for c in group["comparisons"]:
            methods[c["metric"]] = c["method"]
            lines.append(
                f"| {group['arm']} | {c['metric']} | {_num(c['control_value'])} | "
                f"{_num(c['arm_value'])} | {_num(c['difference'])} | "
                f"[{_num(c['low'])}, {_num(c['high'])}] | {_pct(c['relative'])} | "
                f"{_num(c['p_value'], 3)} |"
            )
    lines += ["", "Methods:", ""] + [f"* {m}: {text}" for m, text in methods.items()]
    lines += [f"* {note}" for note in body["notes"]]
    if body["looks"]:
        lines += ["", "## Guardrail looks (O'Brien-Fleming bound)", ""]
        lines.append("| look | users | arm | metric | z | bound | tripped |")
        lines.append("|---:|---:|---|---|---:|---:|---|")
        for look in body["looks"]:
            for t in look["tests"]:
                lines.append(
                    f"| {look['look']} | {look['users']:,} | {t['arm']} | {t['metric']} | "
                    f"{_num(t['z'], 3)} | {t['bound']:.3f} | {'yes' if t['tripped'] else 'no'} |"
                )
    lines += ["", "## Over time", ""]
    for metric in METRICS:
        name = f"{metric}.png"
        if timeline:
            plot_metric(timeline, metric, body["control"], out / name)
            lines += [f"![{LABELS[metric]}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
