"""Turning the store's events and items into the matrices models are fitted on."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from agora.db.tables import Event, Item, SocialEdge, User
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


def item_text(title: str, body: str) -> str:
    """An item's text as the models read it (title, then body)."""
    return f"{title}\n{body}"


def load_training_data(
    session: Session, weights: Mapping[str, float]
) -> tuple[Interactions, SideData, int]:
    """Interactions over every stored item (items without events stay rankable), item side data,
    and the largest event row id read, so serving knows which events arrived after training."""
    item_rows = session.execute(
        select(Item.external_id, Item.title, Item.body, Item.tags, Item.created, User.external_id)
        .outerjoin(User, Item.author_id == User.id)
        .order_by(Item.id)
    ).all()
    item_ids = [r[0] for r in item_rows]
    side = SideData(
        texts=[item_text(r[1], r[2]) for r in item_rows],
        tags=[list(r[3] or []) for r in item_rows],
        created=np.array([as_utc(r[4]).timestamp() for r in item_rows], dtype=np.float64),
        authors=[r[5] for r in item_rows],
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
