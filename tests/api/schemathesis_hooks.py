"""Rules of Agora's request bodies that JSON Schema cannot state (each is in the field's
description and checked by the server with a 422): schemathesis's generated bodies are mended to
keep them, so that a case it means as valid is valid, and where a phase bypasses the mending
(the coverage phase builds its own bodies) a 422 for a body that breaks one of these rules is not
counted as "valid data rejected" (only then: the rule is checked here on the body sent).
Loaded with ``SCHEMATHESIS_HOOKS``.

* a time window ends after it starts (campaigns ``start_at``/``end_at``, tasks ``starts``/``ends``)
  and lies within the engine's span of times (1970..2100);
* an edge joins two different users;
* an experiment's arm names are unique, its ``control`` is one of them, one guardrail per metric;
* a ``volume_spike`` alert threshold is a probability below 1;
* a text field is not whitespace alone (the server strips text by Python's rule of whitespace,
  which no JSON Schema pattern states exactly);
* a record's time (``timestamp``, ``created``) is not in the future (``AGORA_MAX_FUTURE_SECONDS``)
  nor before the platform could exist: times outside 2000..now are moved to 2024-01-01 (unix
  seconds only when they lie in the schema's range: a negative case must stay negative).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import schemathesis

from agora.ingest.schemas import ID_PATTERN

WINDOWS = (("start_at", "end_at"), ("starts", "ends"))
RECORD_TIMES = ("timestamp", "created")
SAFE_TIME = "2024-01-01T00:00:00+00:00"
SAFE_SECONDS = 1_704_067_200  # the same time as unix seconds
#: Unix seconds a record's time may be at all (the schema's range): others are left for the
#: server to refuse (a negative case stays negative).
SECONDS_SPAN = (0, 4_102_444_800)


def _as_id(value: object) -> str | None:
    """An id as the API reads it (integral numbers as their decimal text), None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else None


def _safe_like(value: Any) -> Any:
    """SAFE_TIME in the form ``value`` has (text or unix seconds); a number outside the
    schema's range is kept as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return SAFE_SECONDS if SECONDS_SPAN[0] <= value < SECONDS_SPAN[1] else value
    return SAFE_TIME


def _time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):  # unix seconds
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
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
            later = start + timedelta(days=1)
        except OverflowError:  # year 9999
            later = None
        if later is not None and later.year < 2100:
            record[end_name] = later.isoformat()
        else:  # past the engine's span: move the start back instead
            record[start_name] = (end - timedelta(days=1)).isoformat()


def _mend(record: dict[str, Any]) -> None:
    for name, value in record.items():
        if isinstance(value, str) and value and not value.strip():
            record[name] = "x"  # stripped (Python's whitespace), it would be empty
    for name in RECORD_TIMES:
        when = _time(record.get(name))
        aware = when is not None and when.tzinfo is not None
        if aware and not datetime(2000, 1, 1, tzinfo=UTC) <= when <= datetime.now(UTC):
            record[name] = _safe_like(record[name])
    for name in (n for window in WINDOWS for n in window):
        when = _time(record.get(name))
        if when is not None and when.tzinfo is not None and not 1970 < when.year < 2100:
            record[name] = _safe_like(record[name])  # the engine's span (1970..2100)
    for start_name, end_name in WINDOWS:
        _mend_window(record, start_name, end_name)
    source, target = _as_id(record.get("source_id")), _as_id(record.get("target_id"))
    if source is not None and source == target:  # "0" and 0.0 are one id: a self-edge
        record["target_id"] = (target[:250] + "-peer") if target.strip() else "peer"
    arms = record.get("arms")
    if isinstance(arms, list) and all(isinstance(a, dict) for a in arms):
        names = [a.get("name") for a in arms]
        if len(set(map(str, names))) != len(names):
            for index, arm in enumerate(arms):
                if isinstance(arm.get("name"), str):
                    arm["name"] = f"{arm['name'][:58]}-{index}"
            names = [a.get("name") for a in arms]
        if record.get("control") is not None and names and record["control"] not in names:
            record["control"] = names[0]
        guardrails = record.get("guardrails")
        if isinstance(guardrails, list):
            metrics = [g.get("metric") for g in guardrails if isinstance(g, dict)]
            if len(set(map(str, metrics))) != len(metrics):
                seen: set[str] = set()
                kept = []
                for g in guardrails:
                    metric = str(g.get("metric")) if isinstance(g, dict) else None
                    if metric is None or metric not in seen:
                        kept.append(g)
                    if metric is not None:
                        seen.add(metric)
                record["guardrails"] = kept
    threshold = record.get("threshold")
    number = isinstance(threshold, float | int) and not isinstance(threshold, bool)
    # mended only inside the documented range (0, 2]: a value outside it is a negative case
    # schemathesis made on purpose, which the server must refuse as it stands
    if record.get("kind") == "volume_spike" and number and 1 <= threshold <= 2:
        record["threshold"] = 0.5


def breaks_a_rule(record: Any) -> bool:
    """Whether ``record`` breaks one of the rules above (the server's 422 is then right)."""
    if not isinstance(record, dict):
        return False
    mended = copy.deepcopy(record)
    _mend(mended)
    return mended != record


def breaks_the_id_pattern(path_parameters: dict[str, Any] | None) -> bool:
    """Whether a path id breaks the documented id pattern (schemathesis's coverage phase builds
    some path values from the length bounds alone: the server's 422 is then right)."""
    return any(
        isinstance(value, str)
        # the fuzzing phase may hold a value already percent-encoded (what the server decodes)
        and not (re.match(ID_PATTERN, value) and re.match(ID_PATTERN, unquote(value)))
        for value in (path_parameters or {}).values()
    )


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but "valid data rejected" (422) for a body breaking a rule above, or
    for a path id breaking the documented id pattern."""
    if failure.__class__.__name__ != "RejectedPositiveData" or response.status_code != 422:
        return True
    if breaks_the_id_pattern(case.path_parameters):
        return False
    body = case.body
    return not any(breaks_a_rule(r) for r in (body if isinstance(body, list) else [body]))


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    for record in body if isinstance(body, list) else [body]:
        if isinstance(record, dict):
            _mend(record)
    return body
