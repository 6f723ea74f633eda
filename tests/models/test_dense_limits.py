"""Dense item-item models refuse catalogues they cannot hold, and training goes on without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.features.interactions import Interactions, SideData
from agora.models.admmslim import ADMMSLIMModel
from agora.models.base import CatalogueTooLarge
from agora.models.ease import EASEModel
from agora.models.training import train_models


def test_ease_and_admmslim_name_the_memory_they_would_need(tiny: Interactions) -> None:
    with pytest.raises(CatalogueTooLarge, match=r"ease .* 5 items need .* limited to 3 items"):
        EASEModel(max_items=3).fit(tiny)
    with pytest.raises(CatalogueTooLarge, match=r"admmslim .* 6 items .* max_items"):
        ADMMSLIMModel(max_items=4).fit(tiny)
    assert EASEModel(max_items=5).fit(tiny).weights_.shape == (5, 5)  # the active items fit


def test_training_skips_a_model_that_refuses_and_saves_the_others(
    tiny: Interactions, tmp_path: Path
) -> None:
    steps: list[tuple[str, str]] = []
    trained = train_models(
        tiny,
        SideData(),
        ["ease", "itemknn"],
        tmp_path,
        params={"ease": {"max_items": 2}},
        on_step=lambda name, stage: steps.append((name, stage)),
    )
    assert [t.name for t in trained] == ["itemknn"]
    skipped = [stage for name, stage in steps if name == "ease" and stage.startswith("skipped")]
    assert skipped and "dense items x items" in skipped[0]
    assert not (tmp_path / "ease").exists()
