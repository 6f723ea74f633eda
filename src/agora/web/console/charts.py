"""ECharts options built on the server: each page passes one to ``layout.chart`` and
``static/console/console.js`` draws it (SVG renderer, no animation: a chart redrawn every few
seconds, or read at a glance, shows its values at once). Every chart has named axes with
units."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

#: A colour-blind-safe palette (Okabe-Ito), in the order series take it.
#: Series with at most this many points draw a dot on each (a lone point is otherwise unseen).
FEW = 40
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]


def _axes(x_name: str, y_name: str, categories: Sequence[str] | None = None) -> dict[str, Any]:
    x: dict[str, Any] = {"name": x_name, "nameLocation": "middle", "nameGap": 28}
    if categories is not None:
        x |= {"type": "category", "data": list(categories)}
    else:
        x |= {"type": "time", "axisLabel": {"hideOverlap": True}}
    y = {"type": "value", "name": y_name, "nameLocation": "middle", "nameGap": 44, "minInterval": 1}
    return {"xAxis": x, "yAxis": y}


def time_lines(
    series: dict[str, list[tuple[str, float]]],
    x_name: str,
    y_name: str,
    span: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    """One line per named series of (ISO time, value) points over a time axis covering
    ``span`` (default: the points'); a series of few points shows each as a dot."""
    axes = _axes(x_name, y_name)
    if span is not None:
        axes["xAxis"] |= {"min": span[0].isoformat(), "max": span[1].isoformat()}
    return {
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 60, "right": 20, "top": 36, "bottom": 48},
        **axes,
        "series": [
            {"name": name, "type": "line", "showSymbol": len(points) <= FEW, "data": points}
            for name, points in series.items()
        ],
    }


def bars(
    labels: Sequence[str], values: Sequence[float], x_name: str, y_name: str
) -> dict[str, Any]:
    """Vertical bars, one per label."""
    return {
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 60, "right": 20, "top": 20, "bottom": 48},
        **_axes(x_name, y_name, labels),
        "series": [{"type": "bar", "name": y_name, "data": list(values), "barMaxWidth": 48}],
    }


def cascade_tree(root: str, parent: dict[str, str | None], labels: dict[str, str]) -> dict:
    """A share cascade as a tree: ``parent[user]`` (None for the root); ``labels[user]`` is
    the text shown on each node (e.g. the user and how they joined)."""
    children: dict[str, list[str]] = {}
    for user, up in parent.items():
        if up is not None:
            children.setdefault(up, []).append(user)

    def node(user: str, seen: frozenset[str]) -> dict[str, Any]:
        below = [c for c in sorted(children.get(user, [])) if c not in seen]
        return {
            "name": labels.get(user, user),
            "children": [node(c, seen | {c}) for c in below],
        }

    return {
        "color": PALETTE,
        "tooltip": {"trigger": "item"},
        "series": [
            {
                "type": "tree",
                "data": [node(root, frozenset({root}))],
                "top": 20,
                "bottom": 20,
                "left": 80,
                "right": 120,
                "symbolSize": 9,
                "initialTreeDepth": -1,
                "label": {"position": "left", "verticalAlign": "middle", "align": "right"},
                "leaves": {"label": {"position": "right", "align": "left"}},
            }
        ],
    }


# -- the Models page -------------------------------------------------------------------------
def _value_axis(name: str, gap: int = 48) -> dict[str, Any]:
    return {"type": "value", "name": name, "nameLocation": "middle", "nameGap": gap, "scale": True}


def epoch_curves(
    loss: dict[str, list[float | None]],
    valid: dict[str, list[float | None]],
    x_name: str,
    loss_name: str,
    valid_name: str,
) -> dict[str, Any]:
    """Training curves over epochs 1..n: one loss line per named version on the left axis
    and, for versions that measured it, valid NDCG@10 (dashed) on the right axis."""
    longest = max((len(points) for points in (*loss.values(), *valid.values())), default=0)
    series = [
        {"name": name, "type": "line", "yAxisIndex": 0, "showSymbol": len(points) <= FEW,
         "data": [[i + 1, v] for i, v in enumerate(points)]}
        for name, points in loss.items()
    ] + [
        {"name": name, "type": "line", "yAxisIndex": 1, "connectNulls": True,
         "lineStyle": {"type": "dashed"},
         "data": [[i + 1, v] for i, v in enumerate(points)]}
        for name, points in valid.items() if any(v is not None for v in points)
    ]  # fmt: skip
    y_axes = [_value_axis(loss_name)]
    if len(series) > len(loss):
        y_axes.append(_value_axis(valid_name) | {"splitLine": {"show": False}})
    else:
        y_axes.append(_value_axis("") | {"show": False})
    return {
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "type": "scroll"},
        "grid": {"left": 64, "right": 64, "top": 40, "bottom": 48},
        "xAxis": {"type": "value", "name": x_name, "nameLocation": "middle", "nameGap": 28,
                  "min": 1, "max": max(longest, 1), "minInterval": 1},
        "yAxis": y_axes,
        "series": series,
    }  # fmt: skip


def version_metrics(
    series: dict[str, list[tuple[str, float]]], x_name: str, y_name: str
) -> dict[str, Any]:
    """A metric (0..1) of each model's versions over the time they were trained: one line
    per model, a dot per version."""
    option = time_lines(series, x_name, y_name)
    option["yAxis"] = _value_axis(y_name) | {"nameGap": 48}
    option["legend"] |= {"type": "scroll"}
    option["xAxis"] |= {"splitNumber": 3}
    for line in option["series"]:
        line["showSymbol"] = True
    return option


def _fractional(axes: dict[str, Any]) -> dict[str, Any]:
    """Axes whose values are not counts (money, scores): ticks between whole numbers too."""
    axes["yAxis"].pop("minInterval", None)
    return axes


def pacing_lines(
    spend: Sequence[tuple[str, float]],
    target: Sequence[tuple[str, float]],
    budget: float,
    names: tuple[str, str, str],
    x_name: str,
    y_name: str,
    span: tuple[datetime, datetime],
) -> dict[str, Any]:
    """A day's cumulative spend (a step line: it rises at each click) against the pacing
    target curve (dashed), with the daily budget as a line across; ``names`` are the spend,
    target and budget labels."""
    axes = _fractional(_axes(x_name, y_name))
    axes["xAxis"] |= {"min": span[0].isoformat(), "max": span[1].isoformat()}
    axes["xAxis"]["axisLabel"]["formatter"] = "{HH}:{mm}"
    axes["yAxis"]["max"] = max([budget, *(v for _, v in spend)]) or None
    spent, aimed, cap = names
    return {
        "useUTC": True,  # the axis is in UTC, whatever the browser's zone
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "data": [spent, aimed]},
        "grid": {"left": 60, "right": 70, "top": 36, "bottom": 48},
        **axes,
        "series": [
            {
                "name": spent,
                "type": "line",
                "step": "end",
                "showSymbol": len(spend) <= FEW,
                "data": list(spend),
                "lineStyle": {"width": 2.5},
                "markLine": {
                    "symbol": "none",
                    "silent": True,
                    "lineStyle": {"color": "#656d76"},
                    "label": {"formatter": cap, "position": "insideEndTop"},
                    "data": [{"yAxis": budget}],
                },
            },
            {
                "name": aimed,
                "type": "line",
                "showSymbol": False,
                "data": list(target),
                "lineStyle": {"type": "dashed"},
            },
        ],
    }


def grouped_bars(
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    label_name: str,
    value_name: str,
    whole: bool = True,
) -> dict[str, Any]:
    """Horizontal bars, one per named series side by side for each label, the first label
    at the top: long labels (tags, keywords) stay readable (``whole``: the values are
    counts)."""
    value: dict[str, Any] = {
        "type": "value",
        "name": value_name,
        "nameLocation": "middle",
        "nameGap": 26,
    }
    if whole:
        value["minInterval"] = 1
    return {
        "color": PALETTE,
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "legend": {"top": 0, "right": 0},
        "grid": {"left": 8, "right": 24, "top": 44, "bottom": 40, "containLabel": True},
        "xAxis": value,
        "yAxis": {
            "type": "category",
            "data": list(labels),
            "inverse": True,
            "name": label_name,
            "nameLocation": "start",
            "nameTextStyle": {"align": "right"},
        },
        "series": [
            {"type": "bar", "name": name, "data": list(values), "barMaxWidth": 14}
            for name, values in series.items()
        ],
    }


def score_line(
    points: Sequence[tuple[str, float]],
    name: str,
    x_name: str,
    y_name: str,
    span: tuple[datetime, datetime],
) -> dict[str, Any]:
    """A score in [-1, 1] per day (sentiment) over the days of ``span``, with the neutral
    zero marked."""
    axes = _fractional(_axes(x_name, y_name))
    axes["xAxis"] |= {"min": span[0].isoformat(), "max": span[1].isoformat()}
    axes["xAxis"]["axisLabel"]["formatter"] = "{MM}-{dd}"
    axes["yAxis"] |= {"min": -1, "max": 1}
    return {
        "useUTC": True,
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 60, "right": 20, "top": 20, "bottom": 48},
        **axes,
        "series": [
            {
                "name": name,
                "type": "line",
                "showSymbol": len(points) <= FEW,
                "data": list(points),
                "markLine": {
                    "symbol": "none",
                    "silent": True,
                    "data": [{"yAxis": 0}],
                    "lineStyle": {"color": "#656d76", "type": "dotted"},
                    "label": {"show": False},
                },
            },
        ],
    }
