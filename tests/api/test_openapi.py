"""The OpenAPI document describes the answers the API really gives."""

from __future__ import annotations

from api_support import ADMIN
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


def test_every_path_answers_405_with_the_methods_it_documents(sqlite_client: TestClient) -> None:
    """A method a path does not serve gets 405 and an ``Allow`` header naming exactly the
    documented methods (the router used to name only the first route it met)."""
    schema = sqlite_client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        concrete = path.replace("{", "").replace("}", "")  # any value fits every path parameter
        documented = {method.upper() for method in operations}
        answer = sqlite_client.request("OPTIONS", concrete, headers=ADMIN)
        assert answer.status_code == 405, (path, answer.status_code)
        allowed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert allowed - {"HEAD"} == documented, (path, allowed, documented)
        assert answer.json()["detail"]


def test_bounds_use_json_schema_keywords(sqlite_client: TestClient) -> None:
    """Bounds show as ``minimum``/``maximum`` (pydantic writes ``ge``/``le``, which no client
    reads, when a constraint lands on a validated type)."""
    found: list[str] = []

    def walk(node: object, at: str) -> None:
        if isinstance(node, dict):
            found.extend(f"{at}.{k}" for k in ("ge", "le", "gt", "lt") if k in node)
            for key, value in node.items():
                walk(value, f"{at}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{at}.{index}")

    walk(sqlite_client.get("/openapi.json").json(), "")
    assert found == []
