"""``GET /items/trending`` made differentially private for non-admin keys: the trending model's
list picked by noisy top-k over its scores (each person adds at most 1 to an item's score). The
route is serving's; the app wires :func:`private_trending` in (``app.state.private_trending``),
so serving, a layer below privacy, does not import it."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from fastapi import Request, Response
from sqlalchemy.orm import Session

from agora.api import dp
from agora.serving import service
from agora.serving.schemas import ItemList
from agora.serving.views import released_trending

#: Lengths of the released trending lists: a request for ``n`` gets the shortest one that
#: holds ``n + 20`` (items deleted since training are dropped from it), so asking for 10 or 15
#: items is one release, not two.
TOP_K_SIZES = (30, 100, 300, 1020)


def private_trending(
    request: Request, response: Response, session: Session, models: service.ModelStore, n: int
) -> ItemList | None:
    """The released trending list for a key that gets released figures (:func:`dp.applies`),
    else None (``X-Privacy: exact`` for an admin key while differential privacy is on)."""
    if dp.applies(request):
        loaded = models.get(service.FALLBACK_MODEL)  # 503 before training, as without DP
        size = next(k for k in TOP_K_SIZES if k >= min(n + 20, TOP_K_SIZES[-1]))
        noisy = dp.answer(
            request,
            response,
            "trending_items",
            {"version": models.versions().get(service.FALLBACK_MODEL), "k": size},
            lambda grant: noisy_trending(loaded, grant, size),
            lambda released: released_trending(
                session, released.payload["items"], n, released.privacy
            ),
        )
        if noisy is not None:
            return noisy
    dp.mark(response, request.app.state.settings, None)
    return None


def noisy_trending(loaded: Any, grant: dp.Grant, k: int) -> dict[str, Any]:
    """The trending model's top ``k`` items picked by noisy top-k: an item's score is its
    decayed count of distinct users (each at most 1, plus a 1e-9 tie-breaker)."""
    scores = getattr(loaded.model, "item_scores_", None)
    if scores is None:
        scores = loaded.model.score(np.asarray([-1]), sp.csr_matrix((1, len(loaded.item_ids))))[0]
    picked = grant.top_k(np.asarray(scores, dtype=np.float64), k, 1.0 + 1e-6, grant.epsilon)
    return {"items": [loaded.item_ids[int(i)] for i in picked]}
