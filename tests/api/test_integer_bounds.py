"""Every integer and every list the API takes is bounded at the edge. An integer too large (2⁶³,
past a 64-bit column) or negative where the schema says it cannot be gets a 422 naming its
place, on SQLite and PostgreSQL alike (SQLite used to raise OverflowError: a 500). A list (a
repeated query parameter, a list in a body, a body that is a list) declares ``maxItems``, and
one item more is refused: a 422 naming its place, or a 413 for a whole batch body.

The cases are read from ``app.openapi()``: query, path and body values of every operation, so a
new route or field is covered without editing this file. Free-form JSON values (``StorableJson``:
a user's ``attributes``, an event's ``context``) are the one kind of list left without a count:
the body's byte cap (10 MB, a 413) bounds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_support import ADMIN, make_settings
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings

TOO_LARGE = 2**63


@dataclass(frozen=True)
class RequestInput:
    """One integer or list a request can carry: where it goes (``query``/``path``/``body``;
    a list's ``name`` is empty for a body that is itself a list, and a query list is a repeated
    parameter) and its schema (bounds included)."""

    method: str
    path: str
    where: str
    name: tuple[str | int, ...]
    schema: dict[str, Any]

    @property
    def location(self) -> str:
        return ".".join(str(part) for part in (self.where, *self.name))

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path} {self.location}"


def _integer_branch(schema: dict[str, Any]) -> dict[str, Any] | None:
    if schema.get("type") == "integer":
        return schema
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        found = _integer_branch(branch)
        if found is not None:
            return found
    return None


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _body_integers(
    schema: dict[str, Any], document: dict[str, Any], at: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """(place in the body, integer schema) for every integer a JSON body may hold."""
    schema = _resolve(schema, document)
    found = _integer_branch(schema)
    if found is not None:
        yield at, found
        return
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        branch = _resolve(branch, document)
        if branch.get("type") == "object" or "properties" in branch:
            yield from _body_integers(branch, document, at)
            return  # one object, or a list of them: the object says it all
    for name, field in schema.get("properties", {}).items():
        yield from _body_integers(field, document, (*at, name))
    if schema.get("type") == "array" and "items" in schema:
        yield from _body_integers(schema["items"], document, (*at, 0))


def integer_inputs(document: dict[str, Any]) -> list[RequestInput]:
    out: list[RequestInput] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                found = _integer_branch(_resolve(parameter["schema"], document))
                if found is not None:
                    out.append(
                        RequestInput(method, path, parameter["in"], (parameter["name"],), found)
                    )
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for at, found in _body_integers(body["schema"], document):
                    out.append(RequestInput(method, path, "body", at, found))
    return out


def _document() -> dict[str, Any]:
    settings = Settings(data_dir=Path("/nonexistent"), database_url="sqlite://", api_key="k")
    return create_app(settings).openapi()


INPUTS = integer_inputs(_document())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def app_client(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schemas: Callable[[], AbstractContextManager[str]],
) -> Iterator[TestClient]:
    """One app per database for the whole module (hundreds of requests, no writes)."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        with TestClient(create_app(make_settings(tmp, f"sqlite:///{tmp / 'agora.db'}"))) as c:
            yield c
        return
    with postgres_schemas() as url, TestClient(create_app(make_settings(tmp, url))) as client:
        yield client


def _place(value: int, name: tuple[str | int, ...]) -> Any:
    """A JSON body holding ``value`` at ``name`` (lists of one element along the way)."""
    for part in reversed(name):
        value = [value] if isinstance(part, int) else {part: value}
    return value


def _send(client: TestClient, case: RequestInput, value: int) -> Any:
    path = case.path
    params: dict[str, Any] = {}
    body = None
    for segment in [s for s in case.path.split("/") if s.startswith("{")]:
        filler = str(value) if case.where == "path" and segment[1:-1] == case.name[0] else "1"
        path = path.replace(segment, filler)
    if case.where == "query":
        params[str(case.name[0])] = value
    if case.where == "body":
        body = _place(value, case.name)
    elif case.method in ("post", "put", "patch"):
        body = {}
    return client.request(case.method, path, params=params, json=body, headers=ADMIN)


def test_the_openapi_document_has_integer_inputs() -> None:
    """The walk sees the integers named in issue 11 (so an empty walk cannot pass)."""
    names = {str(case) for case in INPUTS}
    assert "GET /moderation/queue query.offset" in names
    assert "POST /ads/clicks body.impression_id" in names
    assert "POST /moderation/queue/{case_id}/decision path.case_id" in names


@pytest.mark.parametrize("case", INPUTS, ids=str)
def test_every_integer_declares_its_bounds(case: RequestInput) -> None:
    assert "minimum" in case.schema, f"{case}: no lower bound in the OpenAPI schema"
    assert case.schema.get("maximum", TOO_LARGE) < TOO_LARGE, f"{case}: no upper bound below 2^63"


@pytest.mark.parametrize("case", INPUTS, ids=str)
def test_integers_out_of_bounds_get_422_with_their_location(
    app_client: TestClient, case: RequestInput
) -> None:
    values = [TOO_LARGE]
    if case.schema.get("minimum", -1) >= 0:
        values.append(-1)
    for value in values:
        answer = _send(app_client, case, value)
        assert answer.status_code == 422, (case, value, answer.status_code, answer.text)
        locations = {p["location"] for p in answer.json()["problems"]}
        assert case.location in locations, (case, value, answer.text)


# -- lists -----------------------------------------------------------------------------------
FREE_FORM = "#/components/schemas/StorableJson"


def _array_branch(schema: dict[str, Any]) -> dict[str, Any] | None:
    if schema.get("type") == "array":
        return schema
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        if branch.get("type") == "array":
            return branch
    return None


def _body_lists(
    schema: dict[str, Any], document: dict[str, Any], at: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """(place in the body, array schema) for every list a JSON body may hold (free-form JSON
    values left out), the lists inside a list's items at item 0."""
    if schema.get("$ref") == FREE_FORM:
        return
    schema = _resolve(schema, document)
    found = _array_branch(schema)
    if found is not None:
        yield at, found
        yield from _body_lists(found.get("items", {}), document, (*at, 0))
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        branch = _resolve(branch, document)
        if branch.get("type") == "object" or "properties" in branch:
            yield from _body_lists(branch, document, at)
            return
    for name, field in schema.get("properties", {}).items():
        yield from _body_lists(field, document, (*at, name))


def list_inputs(document: dict[str, Any]) -> list[RequestInput]:
    out: list[RequestInput] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                found = _array_branch(_resolve(parameter["schema"], document))
                if found is not None:
                    out.append(
                        RequestInput(method, path, parameter["in"], (parameter["name"],), found)
                    )
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for at, found in _body_lists(body["schema"], document):
                    out.append(RequestInput(method, path, "body", at, found))
    return out


LISTS = list_inputs(_document())


def _an_item(schema: dict[str, Any]) -> Any:
    """A valid item of a list's ``items`` schema (the lists' own rules are the test's topic)."""
    schema = _resolve(schema, _document_once())
    if "enum" in schema:
        return schema["enum"][0]
    kinds = {"string": "t", "integer": schema.get("minimum", 1), "number": 1.0, "boolean": True}
    if schema.get("type") in kinds:
        return kinds[schema["type"]]
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            return _an_item(branch)
    return {}


_DOCUMENT: list[dict[str, Any]] = []


def _document_once() -> dict[str, Any]:
    if not _DOCUMENT:
        _DOCUMENT.append(_document())
    return _DOCUMENT[0]


def test_the_openapi_document_has_list_inputs() -> None:
    """The walk sees lists of each kind (so an empty walk cannot pass)."""
    names = {str(case) for case in LISTS}
    assert "POST /events body" in names  # a batch
    assert "PUT /items/{item_id} body.tags" in names  # a list field
    assert "GET /analytics/engagement/attention query.event_type" in names  # a repeated parameter
    assert not any("attributes" in name or "context" in name for name in names)  # free-form


@pytest.mark.parametrize("case", LISTS, ids=str)
def test_every_list_declares_its_most_items(case: RequestInput) -> None:
    assert isinstance(case.schema.get("maxItems"), int), f"{case}: no maxItems"


@pytest.mark.parametrize("case", LISTS, ids=str)
def test_a_list_one_past_its_bound_is_refused_at_its_place(
    app_client: TestClient, case: RequestInput
) -> None:
    items = [_an_item(case.schema.get("items", {}))] * (case.schema["maxItems"] + 1)
    path = case.path
    for segment in [s for s in case.path.split("/") if s.startswith("{")]:
        path = path.replace(segment, "1")
    if case.where == "query":
        answer = app_client.request(
            case.method, path, params={str(case.name[0]): items}, headers=ADMIN
        )
    else:
        body: Any = items
        for part in reversed(case.name):
            body = [body] if isinstance(part, int) else {part: body}
        answer = app_client.request(case.method, path, json=body, headers=ADMIN)
    if case.where == "body" and not case.name:  # a whole batch: refused before it is read
        assert answer.status_code == 413, (case, answer.status_code, answer.text)
        return
    assert answer.status_code == 422, (case, answer.status_code, answer.text)
    locations = {p["location"] for p in answer.json()["problems"]}
    assert case.location in locations, (case, answer.text)
