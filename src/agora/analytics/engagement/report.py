"""A Markdown engagement report of the store with four matplotlib PNGs beside it: DAU/WAU lines,
retention curves per cohort, the Lorenz curves of attention and a response-time histogram."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from agora.analytics.engagement import service as eg

#: Cohorts drawn in the retention plot (the largest ones), so the figure stays readable.
PLOTTED_COHORTS = 12


@dataclass
class Engagement:
    """Every engagement analytic of one store, with the seconds each took."""

    daily: list[eg.ActivePoint]
    weekly: list[eg.ActivePoint]
    top_items: list[eg.InteractionRate]
    top_authors: list[eg.InteractionRate]
    retention: eg.Retention
    response: eg.ResponseTimes
    attention: eg.Attention
    seconds: dict[str, float] = field(default_factory=dict)


def compute(
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    weeks: int = 8,
    of: str | None = None,
    top: int = 10,
) -> Engagement:
    """Run every analytic once, timing each: active users within ``[since, until)``, the rest
    over the whole store; response times over posts with an ``of`` event (all posts if None)."""
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(session, *args)
        seconds[name] = time.perf_counter() - start
        return out

    return Engagement(
        daily=timed("active_users_day", eg.active_users, "day", since, until),
        weekly=timed("active_users_week", eg.active_users, "week", since, until),
        top_items=timed("interaction_rates_item", eg.interaction_rates, "item", top),
        top_authors=timed("interaction_rates_author", eg.interaction_rates, "author", top),
        retention=timed("retention_cohorts", eg.retention_cohorts, weeks),
        response=timed("time_to_first_response", eg.time_to_first_response, eg.RESPONSE_TYPES, of),
        attention=timed("attention_gini", eg.attention_gini, None, True),
        seconds=seconds,
    )


def _figure(path: Path, draw: Callable[[Any], None], size: tuple[float, float] = (7, 3.6)) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=100)
    draw(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def _plot_active(ax: Any, e: Engagement) -> None:
    ax.plot([p.start for p in e.daily], [p.users for p in e.daily], lw=0.7, label="DAU")
    ax.plot([p.start for p in e.weekly], [p.users for p in e.weekly], lw=1.4, label="WAU")
    ax.set_ylabel("active users")
    ax.set_title("Daily and weekly active users")
    ax.legend()
    ax.figure.autofmt_xdate()


def _plot_retention(ax: Any, e: Engagement) -> None:
    largest = sorted(e.retention.cohorts, key=lambda c: -c.users)[:PLOTTED_COHORTS]
    for c in sorted(largest, key=lambda c: c.start):
        y = np.asarray([np.nan if r is None else r for r in c.retention])
        ax.plot(np.arange(y.size), y, lw=0.8, alpha=0.7, label=f"{c.start:%Y-%m-%d} ({c.users})")
    overall = np.asarray([np.nan if r is None else r for r in e.retention.overall])
    ax.plot(np.arange(overall.size), overall, "k-o", lw=2, ms=3, label="all cohorts")
    ax.set_xlabel("weeks after the first")
    ax.set_ylabel("share active")
    ax.set_ylim(0, 1)
    ax.set_title(f"Weekly retention ({PLOTTED_COHORTS} largest cohorts)")
    ax.legend(fontsize=6, ncol=2)


def _plot_lorenz(ax: Any, e: Engagement) -> None:
    for name, c in (("items", e.attention.items), ("creators", e.attention.creators)):
        pts = np.asarray(c.lorenz)
        ax.plot(pts[:, 0], pts[:, 1], label=f"{name} (Gini {c.gini:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="equal attention")
    ax.set_xlabel("share of population (least engaged first)")
    ax.set_ylabel("share of engagement")
    ax.set_title("Lorenz curves of attention")
    ax.legend()


def _plot_response(ax: Any, e: Engagement) -> None:
    hours = e.response.seconds / 3600.0
    if hours.size:
        bins = np.logspace(np.log10(max(hours.min(), 1 / 60)), np.log10(hours.max() + 1), 40)
        ax.hist(np.maximum(hours, 1 / 60), bins=bins)
        ax.set_xscale("log")
    ax.set_xlabel("hours to the first answer or comment (log)")
    ax.set_ylabel("posts")
    ax.set_title("Time to first response")


def _hours(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 3600:.2f} h"


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


def write_report(e: Engagement, out: Path, title: str = "Engagement report") -> Path:
    """Write ``engagement.md`` and its PNGs into ``out``; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    figs = {
        "active": _figure(out / "active_users.png", lambda ax: _plot_active(ax, e)),
        "retention": _figure(out / "retention.png", lambda ax: _plot_retention(ax, e)),
        "lorenz": _figure(out / "lorenz.png", lambda ax: _plot_lorenz(ax, e), (5, 4.5)),
        "response": _figure(out / "response_times.png", lambda ax: _plot_response(ax, e)),
    }
    dau = np.asarray([p.users for p in e.daily] or [0])
    wau = np.asarray([p.users for p in e.weekly] or [0])
    r = e.response
    lines = [f"# {title}", ""]
    if e.daily:
        lines += [
            f"Events from {e.daily[0].start:%Y-%m-%d} to {e.daily[-1].start:%Y-%m-%d} (UTC).",
            "",
        ]
    lines += [
        "## Active users",
        "",
        f"Mean DAU {dau.mean():.1f} (max {dau.max()}), mean WAU {wau.mean():.1f} "
        f"(max {wau.max()}), over {len(e.daily)} days and {len(e.weekly)} weeks.",
        "",
        f"![DAU and WAU]({figs['active']})",
        "",
        "## Retention",
        "",
        f"{len(e.retention.cohorts)} weekly cohorts (users by the week of their first event).",
        "",
        "| week | " + " | ".join(str(n) for n in range(len(e.retention.overall))) + " |",
        "|---|" + "---:|" * len(e.retention.overall),
        "| share active | " + " | ".join(_pct(s) for s in e.retention.overall) + " |",
        "",
        f"![Retention]({figs['retention']})",
        "",
        "## Time to first response",
        "",
        f"{r.items} posts, {r.answered} answered or commented by someone else "
        f"({_pct(r.share_answered)}); median {_hours(r.median_seconds)}, "
        f"p90 {_hours(r.p90_seconds)}, mean {_hours(r.mean_seconds)}.",
        "",
        f"![Response times]({figs['response']})",
        "",
        "## Attention",
        "",
        "Other users' events per item and per creator, zero-engagement ones included. Gini: 0 = ",
        "every member gets the same attention, towards 1 = one member gets it all.",
        "",
        "| population | members | engaged | events | Gini | top 1% share | top 10% share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in (("items", e.attention.items), ("creators", e.attention.creators)):
        lines.append(
            f"| {name} | {c.population} | {c.engaged} | {c.events} | {c.gini:.3f} | "
            f"{_pct(c.top1_share)} | {_pct(c.top10_share)} |"
        )
    lines += ["", f"![Lorenz curves]({figs['lorenz']})", "", "## Highest interaction rates", ""]
    for name, rows in (("posts", e.top_items), ("authors", e.top_authors)):
        lines += [
            f"| {name} | items | events | users | events per item-day |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| {x.key} | {x.items} | {x.events} | {x.users} | {x.rate:.3f} |" for x in rows]
        lines.append("")
    lines += ["## Timings", "", "| analytic | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in e.seconds.items()]
    path = out / "engagement.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
