"""Request and response shapes of serving's routes (:mod:`agora.serving.views`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agora.api import dp_marks


class PastItem(BaseModel):
    item_id: str
    title: str | None = None
    share: float = Field(description="Share of the score this past item carried (0..1).")


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    model: str = Field(description="The model that produced this item (trending for fallbacks).")
    title: str | None = None
    author_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    created: datetime | None = None
    because: list[PastItem] | None = Field(
        None, description="With explain=true: past items that carried this item's score."
    )
    ties_engaged: list[str] | None = Field(
        None, description="With explain=true: people the user follows or trusts who engaged."
    )
    reason: str | None = Field(None, description="With explain=true: one readable sentence.")


class Recommendations(BaseModel):
    user_id: str
    model: str = Field(description="The model asked for; each item says which one produced it.")
    items: list[RecommendedItem]


class SimilarItems(BaseModel):
    item_id: str
    model: str
    items: list[RecommendedItem]


class ItemList(dp_marks.Marked):
    model: str
    items: list[RecommendedItem]


class ModelInfo(BaseModel):
    version: str
    meta: dict[str, Any]


class Reloaded(BaseModel):
    models: dict[str, str] = Field(description="Model name -> version now served.")
