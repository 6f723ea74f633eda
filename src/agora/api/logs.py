"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to.

``agora serve`` installs :func:`logging_config` (also handed to uvicorn, so its own lines are
JSON too). The request id lives in :data:`request_id` (a context variable set by
:class:`agora.api.middleware.RequestContext`); it follows a request into the thread pool, so
every line logged while a request is answered carries it. Extra fields go in ``extra={"fields":
{...}}``. Secrets never belong in a log line: keys are logged as their fingerprint only
(:func:`agora.api.auth.fingerprint`) and database URLs with their password masked.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

#: The id of the request being answered in this context (None outside a request).
request_id: ContextVar[str | None] = ContextVar("agora_request_id", default=None)

LEVELS = ("debug", "info", "warning", "error")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (``record.request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "pid", "message", "request_id", ...fields, "exception"}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str = "info") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` mapping sending every logger (Agora's, uvicorn's) to
    stderr as JSON lines at ``level``. uvicorn's own access log is off: Agora writes one
    (``agora.access``) that names the route template, never the raw path or query string."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            "alembic": {"level": "WARNING"},  # one line per migration plugin at each start
        },
    }
