"""All import formats by name, with detection from the path.

``load_any(path)`` picks the format from what the path holds; ``load_any(path, "movielens")`` forces
it. Options are passed on to the format's loader (for example ``kind="event"`` for an Agora CSV
file, ``site_url=...`` for a Stack Exchange dump); an option the loader does not take is an error.
Every format also takes ``event_types``, ``max_future_seconds`` and ``now``: the Agora format checks
them line by line, the others check the records they produced (so a Stack Exchange import into a
deployment without the ``ask``/``answer``/``accept`` types fails with a clear message).
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agora.db.tables import TIME_FLOOR
from agora.ingest import benchmark_tsv, ciaodvd, lastfm, movielens, stackexchange
from agora.ingest.agora_format import CSV_SUFFIXES, JSONL_SUFFIXES, iter_agora, load_agora
from agora.ingest.errors import ProblemCollector, UnknownFormat
from agora.ingest.schemas import Dataset, record_time_problems

__all__ = [
    "FORMATS",
    "Format",
    "ImportResult",
    "chunk_dataset",
    "detect_format",
    "iter_any",
    "load_any",
    "load_any_result",
]


@dataclass
class ImportResult:
    """What an import produced: the format used, the records and per-format counts."""

    format: str
    dataset: Dataset
    stats: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _stackexchange(path: Path, **opts: Any) -> ImportResult:
    result = stackexchange.load_stackexchange(path, **opts)
    return ImportResult("stackexchange", result.dataset, result.stats, result.notes)


def _wrap(name: str, loader: Callable[..., Dataset]) -> Callable[..., ImportResult]:
    def run(path: Path, **opts: Any) -> ImportResult:
        dataset = loader(path, **opts)
        return ImportResult(name, dataset, dataset.counts())

    return run


@dataclass(frozen=True)
class Format:
    """One import format: its loader, what it reads, and how to recognise it."""

    name: str
    load: Callable[..., ImportResult]
    loader: Callable[..., Any]
    description: str
    detect: Callable[[Path], bool]

    def options(self) -> list[str]:
        """Keyword options the loader accepts."""
        params = inspect.signature(self.loader).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _is_agora_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in JSONL_SUFFIXES + CSV_SUFFIXES


FORMATS: dict[str, Format] = {
    "agora": Format(
        "agora",
        _wrap("agora", load_agora),
        load_agora,
        "Agora JSON Lines (.jsonl/.ndjson) or CSV (.csv) file, see docs/import-format.md",
        _is_agora_file,
    ),
    "stackexchange": Format(
        "stackexchange",
        _stackexchange,
        stackexchange.load_stackexchange,
        "Stack Exchange data dump folder (Posts.xml[.gz], Users.xml[.gz], ...)",
        stackexchange.is_stackexchange_dump,
    ),
    "movielens": Format(
        "movielens",
        _wrap("movielens", movielens.load_movielens),
        movielens.load_movielens,
        "MovieLens 100K (u.data) or 1M (movies.dat, ratings.dat) folder",
        lambda p: p.is_dir() and movielens.detect_variant(p) is not None,
    ),
    "lastfm": Format(
        "lastfm",
        _wrap("lastfm", lastfm.load_lastfm),
        lastfm.load_lastfm,
        "Last.fm HetRec 2011 folder (user_artists.dat, artists.dat, user_friends.dat, ...)",
        lastfm.is_lastfm_folder,
    ),
    "ciaodvd": Format(
        "ciaodvd",
        _wrap("ciaodvd", ciaodvd.load_ciaodvd),
        ciaodvd.load_ciaodvd,
        "CiaoDVD folder (movie-ratings.txt, trusts.txt)",
        ciaodvd.is_ciaodvd_folder,
    ),
    "benchmark": Format(
        "benchmark",
        _wrap("benchmark", benchmark_tsv.load_benchmark),
        benchmark_tsv.load_benchmark,
        "benchmark split folder (train.tsv, valid.tsv, test.tsv, social.tsv)",
        benchmark_tsv.is_benchmark_folder,
    ),
}


def detect_format(path: str | Path) -> str:
    """The name of the format ``path`` holds; raises UnknownFormat when none fits."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    for name, fmt in FORMATS.items():
        if fmt.detect(path):
            return name
    if path.is_file():
        hint = f"Agora files end in {', '.join(JSONL_SUFFIXES + CSV_SUFFIXES)}"
    else:
        hint = "looked for: " + "; ".join(f"{n}: {f.description}" for n, f in FORMATS.items())
    raise UnknownFormat(f"{path}: cannot tell the import format ({hint}); pass a format name")


def _format(path: Path, fmt: str | None) -> Format:
    if fmt is None:
        return FORMATS[detect_format(path)]
    if fmt not in FORMATS:
        raise UnknownFormat(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return FORMATS[fmt]


#: Options every format takes: the allowed event types and the time bounds. The Agora
#: format checks them line by line; for the others they are checked on the loaded records.
COMMON_OPTIONS = ("event_types", "max_future_seconds", "now", "earliest")


def _check_options(fmt: Format, opts: dict[str, Any]) -> None:
    allowed = fmt.options()
    unknown = [k for k in opts if k not in allowed and k not in COMMON_OPTIONS]
    if unknown:
        raise TypeError(
            f"format {fmt.name!r} takes no option {', '.join(map(repr, unknown))} "
            f"(options: {', '.join(dict.fromkeys([*allowed, *COMMON_OPTIONS]))})"
        )


def _check_loaded(
    path: Path,
    dataset: Dataset,
    event_types: Iterable[str] | None,
    max_future_seconds: float | None,
    now: datetime | None,
    earliest: datetime | None = None,
) -> None:
    """Event types and times of a non-Agora import, all problems reported at once."""
    problems = ProblemCollector(path)
    if event_types is not None:
        allowed = set(event_types)
        found = Counter(e.type for e in dataset.events if e.type not in allowed)
        for event_type, n in sorted(found.items()):
            problems.add(
                None,
                f"{n:,} events of type {event_type!r}, which is not an allowed event type "
                f"(allowed: {', '.join(sorted(allowed))}; add it to AGORA_CUSTOM_EVENT_TYPES)",
                field="type",
            )
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    for kind in ("users", "groups", "items", "events", "edges", "memberships"):
        for record in getattr(dataset, kind):
            for name, message in record_time_problems(
                record, earliest or TIME_FLOOR, max_future_seconds, now
            ):
                problems.add(None, f"{kind[:-1]} {_key(record)!r}: {message}", field=name)
    problems.raise_if_any()


def _key(record: Any) -> str:
    """The id that names a record in a message (events by event_id, edges by their ends)."""
    for name in ("event_id", "user_id", "item_id", "group_id"):
        if (value := getattr(record, name, None)) is not None:
            return value
    return f"{record.source_id}->{record.target_id}"


def _load(chosen: Format, path: Path, opts: dict[str, Any]) -> ImportResult:
    _check_options(chosen, opts)
    if chosen.name == "agora":
        return chosen.load(path, **opts)
    common = {k: opts.pop(k) for k in COMMON_OPTIONS if k in opts}
    result = chosen.load(path, **opts)
    _check_loaded(
        path,
        result.dataset,
        common.get("event_types"),
        common.get("max_future_seconds"),
        common.get("now"),
        common.get("earliest"),
    )
    return result


def load_any_result(path: str | Path, fmt: str | None = None, **opts: Any) -> ImportResult:
    """Like :func:`load_any`, also returning the format used and its counts/skip statistics."""
    path = Path(path)
    return _load(_format(path, fmt), path, dict(opts))


def load_any(path: str | Path, fmt: str | None = None, **opts: Any) -> Dataset:
    """Import ``path`` in format ``fmt`` (detected when None) and return the Dataset.

    Raises :class:`~agora.ingest.errors.ImportFailed` for bad input,
    :class:`~agora.ingest.errors.UnknownFormat` when the format is unknown or cannot be detected,
    and ``TypeError`` for an option the format does not take.
    """
    return load_any_result(path, fmt, **opts).dataset


def iter_any(
    path: str | Path, fmt: str | None = None, *, chunk_size: int = 10_000, **opts: Any
) -> Iterator[Dataset]:
    """Import in chunks of at most ``chunk_size`` records, users first, then items, events...

    Agora files are validated whole first and then streamed; the other formats are read whole
    and handed out in chunks. Nothing is yielded from an input that fails validation.
    """
    path = Path(path)
    chosen = _format(path, fmt)
    if chosen.name == "agora":
        _check_options(chosen, opts)
        yield from iter_agora(path, chunk_size=chunk_size, **opts)
        return
    yield from chunk_dataset(_load(chosen, path, dict(opts)).dataset, chunk_size)


def chunk_dataset(dataset: Dataset, chunk_size: int) -> Iterator[Dataset]:
    """Split a Dataset into Datasets of one kind and at most ``chunk_size`` records each."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    for list_name in ("users", "groups", "items", "events", "edges", "memberships"):
        records = getattr(dataset, list_name)
        for start in range(0, len(records), chunk_size):
            yield Dataset(**{list_name: records[start : start + chunk_size]})
