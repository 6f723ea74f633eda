"""The OpenAPI document describes the answers the API really gives."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_error_answers_are_documented_with_the_real_error_body(sqlite_client: TestClient) -> None:
    client = sqlite_client
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error = schema["components"]["schemas"]["ErrorOut"]
    assert {"detail", "problems"} <= set(error["properties"])
    for code in ("401", "413", "422"):
        answer = schema["paths"]["/events"]["post"]["responses"][code]
        assert answer["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"
        }
    bad = client.post("/events", json={"event_id": "x"}, headers={"Authorization": "Bearer w"})
    assert bad.status_code == 422
    assert set(bad.json()) <= set(error["properties"])
