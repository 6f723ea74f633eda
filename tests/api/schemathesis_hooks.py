"""Rules of Agora's request bodies that JSON Schema cannot state (each is in the field's
description and checked by the server with a 422): schemathesis's generated bodies are mended to
keep them, so that a case it means as valid is valid. Loaded with ``SCHEMATHESIS_HOOKS``.

* a time window ends after it starts (campaigns ``start_at``/``end_at``, tasks ``starts``/``ends``);
* an edge joins two different users;
* an experiment's arm names are unique, its ``control`` is one of them, one guardrail per metric;
* a ``volume_spike`` alert threshold is a probability below 1.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import schemathesis

WINDOWS = (("start_at", "end_at"), ("starts", "ends"))


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _mend_window(record: dict[str, Any], start_name: str, end_name: str) -> None:
    start, end = _time(record.get(start_name)), _time(record.get(end_name))
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        return
    if end <= start:
        try:
            record[end_name] = (start + timedelta(days=1)).isoformat()
        except OverflowError:  # year 9999: move the start back instead
            record[start_name] = (end - timedelta(days=1)).isoformat()


def _mend(record: dict[str, Any]) -> None:
    for start_name, end_name in WINDOWS:
        _mend_window(record, start_name, end_name)
    source, target = record.get("source_id"), record.get("target_id")
    if isinstance(source, str) and source == target:
        record["target_id"] = (target[:250] + "-peer") if target.strip() else "peer"
    arms = record.get("arms")
    if isinstance(arms, list) and all(isinstance(a, dict) for a in arms):
        for index, arm in enumerate(arms):
            if isinstance(arm.get("name"), str):
                arm["name"] = f"{arm['name'][:58]}-{index}"
        names = [a.get("name") for a in arms]
        if record.get("control") is not None and names:
            record["control"] = names[0]
        guardrails = record.get("guardrails")
        if isinstance(guardrails, list):
            seen: set[Any] = set()
            record["guardrails"] = [
                g
                for g in guardrails
                if not isinstance(g, dict)
                or not (g.get("metric") in seen or seen.add(g.get("metric")))
            ]
    threshold = record.get("threshold")
    number = isinstance(threshold, float | int) and not isinstance(threshold, bool)
    if record.get("kind") == "volume_spike" and number and threshold >= 1:
        record["threshold"] = 0.5


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    for record in body if isinstance(body, list) else [body]:
        if isinstance(record, dict):
            _mend(record)
    return body
