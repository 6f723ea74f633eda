"""Which images an item has, getting their bytes, analysing and storing them.

An item names its images in ``media`` (any of these forms)::

    {"images": ["shots/a.png", {"url": "https://cdn.example.org/b.jpg"}], "image": "c.webp"}

A relative path is read under ``media_root``; an http(s) URL is fetched only from
``media_fetch_hosts`` (and their subdomains), without following redirects, so users' posts
cannot make the server reach other addresses. Bytes are never kept: only what was read.
Declared facts of other media (``{"video": {"duration": 42, "bytes": ...}}``) become
features without fetching anything (``features.store.declared_media``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Text, cast, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from agora.db.engine import transaction
from agora.db.tables import Item, ItemMedia
from agora.features.store import image_sources
from agora.moderation.service import review_explicit
from agora.vision.analyse import ImageAnalysis, analyse_image
from agora.vision.probe import UnreadableImage

FETCH_TIMEOUT_SECONDS = 10.0
#: The source of an image sent to the API: this and its SHA-256.
UPLOAD_PREFIX = "upload:"


class MediaUnavailable(Exception):
    """An image could not be fetched (the message says why, without the bytes)."""


@dataclass(frozen=True)
class MediaPolicy:
    """Where images may come from and how large they may be (from the settings)."""

    root: Path | None = None
    hosts: tuple[str, ...] = ()
    max_bytes: int = 10_000_000
    explicit_threshold: float = 0.5

    @classmethod
    def of(cls, settings: Any) -> MediaPolicy:
        return cls(
            settings.media_root,
            tuple(h.lower().strip(".") for h in settings.media_fetch_hosts),
            settings.media_max_bytes,
            settings.explicit_image_threshold,
        )


def _allowed(host: str, hosts: Sequence[str]) -> bool:
    host = host.lower().strip(".")
    return any(host == h or host.endswith("." + h) for h in hosts)


def fetch(source: str, policy: MediaPolicy) -> bytes:
    """The bytes of one image source under ``policy`` (:class:`MediaUnavailable` if not)."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https"):
        if not _allowed(parts.hostname or "", policy.hosts):
            raise MediaUnavailable(
                f"host {parts.hostname!r} is not in media_fetch_hosts, so it is not fetched"
            )
        return _download(source, policy.max_bytes)
    if parts.scheme:
        raise MediaUnavailable(f"{parts.scheme!r} URLs are not read (http, https or a path)")
    if policy.root is None:
        raise MediaUnavailable("a path is read only under media_root, which is not set")
    root = policy.root.resolve()
    path = (root / source).resolve()
    if not path.is_relative_to(root):
        raise MediaUnavailable("the path leads outside media_root")
    if not path.is_file():
        raise MediaUnavailable("no such file under media_root")
    if path.stat().st_size > policy.max_bytes:
        raise MediaUnavailable(f"larger than media_max_bytes ({policy.max_bytes:,})")
    return path.read_bytes()


def _download(url: str, max_bytes: int) -> bytes:
    import httpx

    try:
        with httpx.stream(
            "GET", url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise MediaUnavailable(f"the server answered {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data.extend(chunk)
                if len(data) > max_bytes:
                    raise MediaUnavailable(f"larger than media_max_bytes ({max_bytes:,})")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise MediaUnavailable(f"fetch failed: {type(exc).__name__}") from exc


def store(
    session: Session,
    item_id: int,
    source: str,
    now: datetime,
    analysis: ImageAnalysis | None = None,
    error: str | None = None,
) -> ItemMedia:
    """Store (or replace) what was read of one image of an item, or why it could not be."""
    session.execute(
        delete(ItemMedia).where(ItemMedia.item_id == item_id, ItemMedia.source == source)
    )
    row = ItemMedia(item_id=item_id, source=source, analysed=now, error=error, text="")
    if analysis is not None:
        info = analysis.info
        row.sha256, row.kind, row.mime = analysis.sha256, info.kind, info.mime
        row.width, row.height, row.bytes = info.width, info.height, info.bytes
        row.frames, row.duration_seconds = info.frames, info.duration_seconds
        row.text, row.text_confidence = analysis.text.text, analysis.text.confidence
        row.explicit_score = analysis.explicit.score
        row.explicit_parts = analysis.explicit.parts
    session.add(row)
    session.flush()
    return row


def add_reading(
    session: Session,
    item_id: int,
    source: str,
    analysis: ImageAnalysis,
    policy: MediaPolicy,
    now: datetime,
) -> tuple[ItemMedia, bool]:
    """Store what was read of one image of an item; an explicit one opens a review case.
    Returns the row and whether the item is in the review queue now. (Images are read before
    the transaction opens: a second of OCR holds no lock.)"""
    row = store(session, item_id, source, now, analysis=analysis)
    return row, review_explicit(session, item_id, policy.explicit_threshold, now)


def pending(session: Session) -> tuple[list[tuple[int, str]], list[int]]:
    """(item row id, source) of the images items name that were not read yet, and the ids of
    stored readings of images their items no longer name (uploads always stay)."""
    done: dict[int, dict[str, int]] = {}
    for row_id, item_id, source in session.execute(
        select(ItemMedia.id, ItemMedia.item_id, ItemMedia.source)
    ):
        done.setdefault(item_id, {})[source] = row_id
    todo: list[tuple[int, str]] = []
    stale: list[int] = []
    # only items with media or with readings: the job runs every minute over the catalogue
    has_media = or_(cast(Item.media, Text) != "{}", Item.id.in_(select(ItemMedia.item_id)))
    query = (
        select(Item.id, Item.media)
        .where(has_media)
        .order_by(Item.id)
        .execution_options(yield_per=5000)
    )
    for item_id, media in session.execute(query):
        named = image_sources(media)
        read = done.get(item_id, {})
        todo.extend((item_id, source) for source in named if source not in read)
        stale.extend(
            row_id
            for source, row_id in read.items()
            if source not in named and not source.startswith(UPLOAD_PREFIX)
        )
    return todo, stale


@dataclass
class AnalyseSummary:
    analysed: int = 0
    failed: int = 0
    queued: int = 0
    left: int = 0
    seconds: float = 0.0


def analyse_pending(
    sessions: sessionmaker[Session],
    policy: MediaPolicy,
    now: Callable[[], datetime],
    budget_seconds: float | None = None,
    on_image: Callable[[int, int], None] | None = None,
) -> AnalyseSummary:
    """Read every image items name and Agora has not read, one transaction per image, until
    none is left or ``budget_seconds`` passed (the next run goes on). A source that cannot be
    fetched or read is stored with its error and not tried again until the item names it
    anew; readings of images the items no longer name are dropped first."""
    started = time.perf_counter()
    summary = AnalyseSummary()
    with transaction(sessions) as session:
        todo, stale = pending(session)
        for part in range(0, len(stale), 900):
            session.execute(delete(ItemMedia).where(ItemMedia.id.in_(stale[part : part + 900])))
    for done, (item_id, source) in enumerate(todo):
        if budget_seconds is not None and time.perf_counter() - started > budget_seconds:
            summary.left = len(todo) - done
            break
        analysis, error = None, None
        try:
            analysis = analyse_image(fetch(source, policy))
        except (MediaUnavailable, UnreadableImage) as exc:
            error = str(exc)
        with transaction(sessions) as session:
            item = session.get(Item, item_id)
            if item is None or source not in image_sources(item.media):
                continue  # deleted or changed meanwhile
            if analysis is not None:
                _, queued = add_reading(session, item_id, source, analysis, policy, now())
                summary.analysed += 1
                summary.queued += int(queued)
            else:
                store(session, item_id, source, now(), error=error)
                summary.failed += 1
        if on_image is not None:
            on_image(done + 1, len(todo))
    summary.seconds = time.perf_counter() - started
    return summary


def item_media(session: Session, item_id: int) -> list[ItemMedia]:
    """The stored readings of an item's images, in the order they were stored."""
    return list(
        session.scalars(
            select(ItemMedia).where(ItemMedia.item_id == item_id).order_by(ItemMedia.id)
        )
    )
