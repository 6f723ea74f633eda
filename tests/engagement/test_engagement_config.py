"""Operators change the rules with AGORA_ENGAGEMENT; bad rules get errors that say where."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agora.config import Settings
from agora.engagement.config import EngagementConfig, engagement_config


def test_rules_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = {
        "points": [{"name": "liked", "event": "like", "to": "author", "points": 5}],
        "badges": [{"name": "fan", "title": "Fan", "kind": "count", "event": "like",
                    "threshold": 3}],
    }  # fmt: skip
    monkeypatch.setenv("AGORA_ENGAGEMENT", json.dumps(rules))
    config = engagement_config(Settings())
    assert [r.name for r in config.points] == ["liked"]
    assert config.badges[0].counted == "likes"
    assert config.trust_levels == EngagementConfig().trust_levels  # untouched: the defaults
    assert config.fingerprint() != EngagementConfig().fingerprint()  # a replay will follow


@pytest.mark.parametrize(
    ("rules", "location", "message"),
    [
        ({"points": [{"name": "x", "event": "like", "to": "author", "points": 0}]},
         ("points", 0), "points must not be 0"),
        ({"points": [{"name": "x", "event": "like", "to": "reader", "points": 1}]},
         ("points", 0, "to"), "'actor' or 'author'"),
        ({"badges": [{"name": "b", "title": "B", "kind": "count"}]},
         ("badges", 0), "needs an event type"),
        ({"badges": [{"name": "b", "title": "B", "kind": "streak"}] * 2},
         (), "badge names must be unique; repeated: ['b']"),
        ({"trust_levels": [{"level": 2, "name": "a", "requires": {}},
                           {"level": 1, "name": "b", "requires": {}}]},
         (), "ascending"),
        ({"points": [{"name": "Bad Name", "event": "like", "to": "actor", "points": 1}]},
         ("points", 0, "name"), "pattern"),
    ],
)  # fmt: skip
def test_bad_rules_say_what_and_where(rules: dict, location: tuple, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EngagementConfig.model_validate(rules)
    error = caught.value.errors()[0]
    assert error["loc"][: len(location)] == location
    assert message in error["msg"]
