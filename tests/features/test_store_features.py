"""Training data read from the real store: weights per event type, social edges, new items."""

from __future__ import annotations

from agora.config import Settings
from agora.db.engine import session_factory, transaction
from agora.features.store import load_training_data
from agora.ingest import service
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, ItemIn

SETTINGS = Settings()


def test_training_data_weights_events_keeps_new_items_and_reads_social_edges(engine) -> None:
    data = Dataset(
        items=[ItemIn(item_id="fresh", title="nobody has seen me")],
        events=[
            EventIn(event_id="1", user_id="ann", item_id="p1", type="view"),
            EventIn(event_id="2", user_id="ann", item_id="p1", type="like"),
            EventIn(event_id="3", user_id="bob", item_id="p2", type="rating", value=2),
            EventIn(event_id="4", user_id="bob", item_id="p1", type="rating", value=5),
            EventIn(event_id="5", user_id="cat", item_id="p2", type="dislike"),
        ],
        edges=[
            EdgeIn(source_id="ann", target_id="bob", type="friend", weight=2.0),
            EdgeIn(source_id="ann", target_id="cat", type="block"),
        ],
    )
    with transaction(session_factory(engine)) as session:
        service.add_dataset(session, data, SETTINGS.event_types)
    with session_factory(engine)() as session:
        inter, side, last_row = load_training_data(session, SETTINGS.event_weights)
    assert last_row >= 5
    assert set(inter.item_ids) == {"fresh", "p1", "p2"}  # items without events stay rankable
    assert set(inter.user_ids) == {"ann", "bob"}  # cat only disliked: no positive interaction
    ann, bob = inter.user_index("ann"), inter.user_index("bob")
    p1, p2 = inter.item_index("p1"), inter.item_index("p2")
    assert inter.matrix[ann, p1] == SETTINGS.event_weights["view"] + SETTINGS.event_weights["like"]
    assert inter.matrix[bob, p2] == 0  # a 2-star rating is not interest
    assert inter.matrix[bob, p1] > 0
    assert side.texts[inter.item_index("fresh")].strip() == "nobody has seen me"
    social = side.social.toarray()
    assert social[ann, bob] == 2.0 and social[bob, ann] == 2.0  # friends both ways
    assert social.sum() == 4.0  # the block edge (and the user with no interactions) left out
