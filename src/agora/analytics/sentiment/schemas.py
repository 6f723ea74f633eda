"""Response shapes of the sentiment route."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agora.api import dp


class SentimentGroupOut(BaseModel):
    key: str = Field(description="The tag, author id or day (YYYY-MM-DD, UTC).")
    n: int = Field(description="Posts and comments counted.")
    mean_score: float = Field(description="Mean of P(positive) - P(negative), in [-1, 1].")
    positive: int
    neutral: int
    negative: int


class SentimentOut(dp.Marked):
    by: str
    n_texts: int = Field(description="Posts and comments with text that are scored.")
    pending: int = Field(
        description="Posts and comments not scored by the current model yet (the background "
        "scorer is on them; they are counted once scored)."
    )
    model_version: str
    groups: list[SentimentGroupOut]
