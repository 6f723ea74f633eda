"""How Gorse's data maps onto Agora's: the ``gorse`` field of :class:`agora.config.Settings`
(``AGORA_GORSE`` as JSON), read by :func:`gorse_config`.

Gorse feedback types are free strings that a Gorse deployment sorts into positive and read
types in its own configuration; Agora stores events of its configured event types. A feedback
type is stored as the event type ``feedback_types`` maps it to, else as itself when that is an
Agora event type; any other type is refused (400), so a platform states what its types mean
once instead of training on types nobody weighed. The Gorse type itself is kept on the event,
so feedback reads give back exactly what was written.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agora.config import Settings


def _default_feedback_types() -> dict[str, str]:
    # Gorse's own examples: "star" and "like" are positive feedback, "read" is read feedback
    return {"star": "like", "favorite": "bookmark", "read": "view"}


class GorseConfig(BaseModel):
    """The Gorse-compatible API's mapping and defaults."""

    model_config = ConfigDict(extra="forbid")

    feedback_types: dict[str, str] = Field(
        default_factory=_default_feedback_types,
        description="Gorse feedback type -> Agora event type; a type not listed is stored as "
        "itself when it is an Agora event type (like, view, share...), else refused.",
    )
    default_n: int = Field(10, ge=1, le=1000, description="Items or rows when `n` is not given.")
    neighbors_model: str = Field(
        "itemknn",
        description="Model behind /api/item/{id}/neighbors and /api/session/recommend (Gorse "
        "answers both from item-to-item neighbours).",
    )
    popular_model: str = Field("trending", description="Model behind /api/popular.")


def gorse_config(settings: Settings) -> GorseConfig:
    """The ``gorse`` section of ``settings`` (``AGORA_GORSE``) as this API's GorseConfig."""
    return settings.section("gorse", GorseConfig)
