"""Response shapes of the media routes (an item's images and their facts)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class MediaOut(BaseModel):
    """What Agora read of one image of an item."""

    model_config = ConfigDict(from_attributes=True)

    source: str = Field(description="The URL or path the item names, or upload:<sha256>.")
    kind: str | None = Field(description="image or animation (None: it could not be read).")
    mime: str | None
    width: int | None
    height: int | None
    bytes: int | None
    frames: int | None
    duration_seconds: float | None = Field(description="Animations: their play time.")
    text: str = Field(description="The text read inside the image (OCR), line by line.")
    text_confidence: float | None = Field(description="Mean confidence of the text read.")
    explicit_score: float | None = Field(
        description="Highest confidence of an exposed intimate part (NudeNet), 0-1."
    )
    explicit_parts: dict[str, float] = Field(description="Everything the detector found.")
    sha256: str | None
    analysed: datetime
    error: str | None = Field(description="Why the image could not be fetched or read.")


class MediaAdded(MediaOut):
    in_review: bool = Field(description="The item is in the moderation queue now.")
