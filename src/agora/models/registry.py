"""Model names to classes: the one place the evaluator, CLI and feed look models up."""

from __future__ import annotations

from typing import Any

from agora.models.admmslim import ADMMSLIMModel
from agora.models.base import Recommender
from agora.models.content import ContentModel
from agora.models.content_attention import ContentAttentionModel
from agora.models.ease import EASEModel
from agora.models.hybrid import HybridModel
from agora.models.implicit_mf import ALSModel, BPRModel
from agora.models.itemknn import ItemKNNModel
from agora.models.popularity import LatestModel, TrendingModel
from agora.models.sasrec import SASRecModel
from agora.models.social import LightGCNModel, SocialGCNModel

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        TrendingModel,
        LatestModel,
        ItemKNNModel,
        ALSModel,
        BPRModel,
        EASEModel,
        ADMMSLIMModel,
        ContentModel,
        ContentAttentionModel,
        HybridModel,
        SASRecModel,
        LightGCNModel,
        SocialGCNModel,
    )
}


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; ValueError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; known models: {known}") from None


def create_model(name: str, **params: Any) -> Recommender:
    """A new, unfitted model; unknown parameters raise ValueError naming the accepted ones."""
    cls = model_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        accepted = ", ".join(cls().get_params())
        raise ValueError(
            f"bad parameters for model {name!r}: {exc}; accepted: {accepted}"
        ) from None
