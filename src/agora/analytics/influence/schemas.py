"""Response shapes of the influence, reach and cascade routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agora.analytics.results.schemas import Freshness


class UserInfluenceOut(BaseModel):
    user_id: str
    pagerank: float = Field(description="Weighted PageRank (sums to 1 over the graph).")
    eigenvector: float = Field(description="Eigenvector centrality, undirected, max = 1.")
    in_degree: float = Field(description="Weighted in-degree (attention received).")


class InfluenceOut(Freshness):
    users: int = Field(description="Users in the attention graph.")
    edges: int
    top: list[UserInfluenceOut]


class ReachOut(BaseModel):
    key: str = Field(description="Item or author external id.")
    users: int = Field(description="Distinct users other than the author with an event.")
    events: int


class CascadeNodeOut(BaseModel):
    user_id: str
    parent: str | None
    depth: int
    seconds: float = Field(description="Seconds after the item was created.")
    how: str = Field(description="root, via (named in the event), follow or root fallback.")


class CascadeOut(BaseModel):
    item_id: str
    root: str
    size: int
    depth: int
    max_breadth: int
    structural_virality: float
    seconds_to_10: float | None
    seconds_to_100: float | None
    repeated_shares: int
    nodes: list[CascadeNodeOut]
