"""Turning the store's events and items into the matrices models are fitted on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from agora.db import queries
from agora.db.tables import Event, Item, ItemMedia, SocialEdge, User
from agora.features.interactions import Interactions, SideData
from agora.ingest.schemas import as_utc

#: Edge types that say "this person's taste matters to me" (block says the opposite).
SOCIAL_TYPES = ("follow", "friend", "trust", "interact")

#: Ratings below this value are not counted as interest (5-point scales: 1 and 2 are dislikes).
RATING_THRESHOLD = 3.0


def event_weight(event_type: str, value: float | None, weights: Mapping[str, float]) -> float:
    """How much one event says the user is interested in the item (0 = not at all)."""
    base = weights.get(event_type, 1.0)
    if event_type == "rating" and value is not None and value < RATING_THRESHOLD:
        return 0.0
    return max(base, 0.0)


def item_text(title: str, body: str, image_text: str = "") -> str:
    """An item's text as the models read it (title, body, then the text read in its images)."""
    return f"{title}\n{body}\n{image_text}" if image_text else f"{title}\n{body}"


def _bucket(value: float | None, edges: tuple[float, ...], names: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    return next((n for edge, n in zip(edges, names, strict=False) if value < edge), names[-1])


def media_tokens(readings: list[dict[str, Any]]) -> list[str]:
    """An item's media as feature tokens: the kinds it has (image, animation, video, audio),
    how many images, whether text was read in them, video/audio length and image size
    buckets. ``readings``: ``kind``, ``text``, ``bytes``, ``duration`` (seconds) each."""
    tokens: list[str] = []
    images = [r for r in readings if r.get("kind") in ("image", "animation")]
    for reading in readings:
        kind = reading.get("kind")
        if kind is None:
            continue
        tokens.append(f"media:{kind}")
        length = _bucket(reading.get("duration"), (60, 600), ("short", "medium", "long"))
        if length and kind in ("video", "audio", "animation"):
            tokens.append(f"media:{kind}:{length}")
        size = _bucket(reading.get("bytes"), (100_000, 1_000_000), ("small", "medium", "large"))
        if size and kind in ("image", "animation"):
            tokens.append(f"media:image:{size}")
        if reading.get("text"):
            tokens.append("media:text-in-image")
    if len(images) > 1:
        tokens.append("media:gallery")
    return list(dict.fromkeys(tokens))


def load_training_data(
    session: Session, weights: Mapping[str, float]
) -> tuple[Interactions, SideData, int]:
    """Interactions over every stored item (items without events stay rankable), item side data,
    and the largest event row id read, so serving knows which events arrived after training."""
    item_rows = session.execute(
        select(
            Item.external_id, Item.title, Item.body, Item.tags, Item.created, User.external_id,
            Item.id, Item.media,
        )
        .outerjoin(User, Item.author_id == User.id)
        .order_by(Item.id)
    ).all()  # fmt: skip
    item_ids = [r[0] for r in item_rows]
    seen = queries.image_texts(session)
    readings = media_readings(session)
    side = SideData(
        texts=[item_text(r[1], r[2], seen.get(r[6], "")) for r in item_rows],
        tags=[list(r[3] or []) for r in item_rows],
        created=np.array([as_utc(r[4]).timestamp() for r in item_rows], dtype=np.float64),
        authors=[r[5] for r in item_rows],
        media=[item_media_tokens(readings.get(r[6], {}), r[7]) for r in item_rows],
    )
    users: list[str] = []
    items: list[str] = []
    values: list[float] = []
    stamps: list[float] = []
    max_event_row = 0
    query = (
        select(
            Event.id, User.external_id, Item.external_id, Event.type, Event.value, Event.timestamp
        )
        .join(User, Event.user_id == User.id)
        .join(Item, Event.item_id == Item.id)
        .order_by(Event.id)
        .execution_options(yield_per=50_000)
    )
    for row_id, user, item, etype, value, ts in session.execute(query):
        max_event_row = max(max_event_row, row_id)
        weight = event_weight(etype, value, weights)
        if weight <= 0:
            continue
        users.append(user)
        items.append(item)
        values.append(weight)
        stamps.append(as_utc(ts).timestamp())
    interactions = Interactions.from_triples(
        users, items, values, stamps, item_ids=np.array(item_ids, dtype=object)
    )
    side.social = load_social(session, interactions.user_ids)
    return interactions, side, max_event_row


#: Most images read per item (a gallery post is summarised by its first ten).
MAX_IMAGES_PER_ITEM = 10
#: Longest image source kept (the ``item_media.source`` column's width).
MAX_SOURCE_LENGTH = 1024


def image_sources(media: dict[str, Any] | None) -> list[str]:
    """The images an item's ``media`` names, in order, without repeats (at most
    :data:`MAX_IMAGES_PER_ITEM`)."""
    if not isinstance(media, dict):
        return []
    named: list[Any] = []
    images = media.get("images")
    if isinstance(images, list):
        named.extend(images)
    named.append(media.get("image"))
    out: list[str] = []
    for entry in named:
        if isinstance(entry, dict):
            entry = entry.get("url") or entry.get("path")
        entry = entry.strip() if isinstance(entry, str) else ""
        if entry and len(entry) <= MAX_SOURCE_LENGTH and entry not in out:
            out.append(entry)
    return out[:MAX_IMAGES_PER_ITEM]


def media_readings(session: Session) -> dict[int, dict[str, dict[str, Any]]]:
    """What was read of every item's images (``item_media``), per item row id and source."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    query = select(
        ItemMedia.item_id, ItemMedia.source, ItemMedia.kind, ItemMedia.text, ItemMedia.bytes,
        ItemMedia.duration_seconds,
    ).where(ItemMedia.kind.is_not(None))  # fmt: skip
    for item_id, source, kind, text, size, duration in session.execute(query):
        reading = {"kind": kind, "text": text, "bytes": size, "duration": duration}
        out.setdefault(item_id, {})[source] = reading
    return out


def item_media_tokens(
    readings: dict[str, dict[str, Any]], media: dict[str, Any] | None
) -> list[str]:
    """An item's media tokens: its images as read (an image it names that was not read, e.g.
    on a host Agora may not fetch, still says "this post shows an image"), its uploads, and
    the video and audio it declares."""
    named = image_sources(media)
    shown = [readings.get(source, {"kind": "image"}) for source in named]
    uploads = [r for source, r in readings.items() if source not in named]
    return media_tokens(shown + uploads + declared_media(media))


def declared_media(media: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Facts the platform declared in an item's ``media`` about its video and audio (kind,
    bytes, duration in seconds); values that are not non-negative numbers are left out."""
    if not isinstance(media, dict):
        return []
    out = []
    for kind in ("video", "audio"):
        entries = media.get(kind) if isinstance(media.get(kind), list) else [media.get(kind)]
        for entry in entries:
            if isinstance(entry, dict):
                facts: dict[str, Any] = {"kind": kind}
                for key, name in (("duration", "duration"), ("bytes", "bytes")):
                    value = entry.get(key)
                    if (
                        isinstance(value, int | float)
                        and not isinstance(value, bool)
                        and value >= 0
                    ):
                        facts[name] = float(value)
                out.append(facts)
    return out


def load_social(session: Session, user_ids: np.ndarray) -> sp.csr_matrix:
    """Users x users matrix of positive social edges (follow, friend, trust, interact) between
    the given users; parallel edges of different types add up. Blocks are left out."""
    index = {u: i for i, u in enumerate(user_ids.tolist())}
    source, target = aliased(User), aliased(User)
    rows, cols, weights = [], [], []
    query = (
        select(source.external_id, target.external_id, SocialEdge.weight)
        .join(source, SocialEdge.source_id == source.id)
        .join(target, SocialEdge.target_id == target.id)
        .where(SocialEdge.type.in_(SOCIAL_TYPES), SocialEdge.weight > 0)
    )
    for src, dst, weight in session.execute(query):
        if src in index and dst in index:
            rows.append(index[src])
            cols.append(index[dst])
            weights.append(weight)
    n = len(user_ids)
    return sp.csr_matrix(
        (np.asarray(weights, dtype=np.float32), (rows, cols)), shape=(n, n), dtype=np.float32
    )
