"""Query times (``since``, ``until``, ``now``) are RFC 3339 date-times with their offset, as the
OpenAPI ``date-time`` format says: a bare number is refused (it used to be read as seconds since
1970), and any date-time is accepted, held to the window every store answers the same for."""

from __future__ import annotations

from api_support import ADMIN
from fastapi.testclient import TestClient


def test_a_number_is_not_a_query_time(sqlite_client: TestClient) -> None:
    for path, name in [
        ("/analytics/trending", "now"),
        ("/analytics/engagement/active", "until"),
        ("/users/u1/digest", "since"),
    ]:
        answer = sqlite_client.get(path, params={name: "0.5"}, headers=ADMIN)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["problems"][0]["location"] == f"query.{name}"


def test_any_date_time_is_accepted_and_held_to_the_window(sqlite_client: TestClient) -> None:
    early = sqlite_client.get(
        "/analytics/trending", params={"now": "0001-01-01T00:00:00+05:00"}, headers=ADMIN
    )
    assert early.status_code == 200, early.text
    assert early.json()["now"].startswith("1970-01-01T00:00:00")
    late = sqlite_client.get(
        "/analytics/trending", params={"now": "9999-12-31T23:59:59-05:00"}, headers=ADMIN
    )
    assert late.status_code == 200, late.text
    assert late.json()["now"].startswith("2200-01-01T00:00:00")
