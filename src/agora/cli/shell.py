"""What every ``agora`` command group shares: the migrated store, error exits, JSON spec files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import open_store, session_factory

#: Every command prints through these two consoles. Markup and emoji codes are off, so titles,
#: tags and ids from the store print as they are ("How do I [staking] pools?" keeps its tag);
#: styles are given as ``style=`` or :class:`rich.text.Text` instead. Long lines stay whole.
console = Console(soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)
Spec = TypeVar("Spec")


def progress() -> Progress:
    """The progress bar of long commands: spinner, what it does, bar, n of m, time taken."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def store_sessions(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the configured store, its schema brought up to date first."""
    return session_factory(open_store(settings))


def error(message: str) -> None:
    """Print ``error: message`` on stderr (``error:`` in red, the message as it is)."""
    err.print(Text.assemble(("error:", "red"), " ", message))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned exit."""
    error(message)
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
