"""What every ``agora`` command group shares: the migrated store, error exits, JSON spec files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import make_engine, migrate, session_factory

err = Console(stderr=True, soft_wrap=True)
Spec = TypeVar("Spec")


def store_sessions(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the configured store, its schema brought up to date first."""
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return session_factory(engine)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned exit."""
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def read_specs(path: Path, model: type[Spec]) -> list[Spec]:
    """One JSON object or a list of them from ``path``, each validated as ``model``; a file that
    cannot be read or holds a bad object exits 2 naming the file and each problem's location."""
    try:
        raw = json.loads(path.read_text())
        return TypeAdapter(list[model]).validate_python(raw if isinstance(raw, list) else [raw])
    except (OSError, json.JSONDecodeError) as exc:
        raise fail(f"{path}: {exc}") from exc
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise fail(f"{path}: {where}") from exc
