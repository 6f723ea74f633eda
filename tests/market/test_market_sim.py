"""bench/market_sim.py on a short day with tight budgets: pacing never overspends, frequency
caps hold and holdout users never see a campaign, counted from the stored impressions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _sim():
    # bench scripts import their sibling ``_record`` as they do when run as scripts
    if str(REPO / "bench") not in sys.path:
        sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("market_sim", REPO / "bench" / "market_sim.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["market_sim"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_short_day_keeps_budgets_caps_and_holdouts(tmp_path: Path) -> None:
    body = _sim().main(
        [
            "--sessions", "150",
            "--reserves", "0.05",
            "--slots", "3,10",
            "--ctr", "empirical",
            "--budget-scale", "0.1",
            "--no-plots",
            "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert json.loads((tmp_path / "market_sim.json").read_text()) == body
    assert [r["name"] for r in body["runs"]] == ["default", "no pacing"]
    assert body["ctr_source"].startswith("empirical")
    # budgets bind (some campaign spends nearly all of it) yet none is ever exceeded
    assert 0.9 <= body["max_spend_over_budget"] <= 1.0 + 1e-9
    assert body["holdout_impressions"] == 0
    assert body["frequency_cap_violations"] == 0
    default = body["runs"][0]
    assert default["ads_per_page"] > 0 and default["revenue"] > 0
    arms = [c["lift"]["holdout"][1] for c in default["campaigns"].values()]
    assert sum(arms) > 0  # there were holdout users, and none of them saw an ad
