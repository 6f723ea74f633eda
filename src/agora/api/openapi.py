"""The OpenAPI document says exactly what the API answers.

FastAPI documents a route's success answer and whatever its ``responses=`` name; the answers
that come from the kit (auth, body reading, validation, the database handlers in
:mod:`agora.api.errors`) are the same for every route of a kind, so :func:`install` adds them
here, from what the document already says about each operation:

* an API key (``security``) → 401 and 403;
* any parameter or body → 422 (``problems`` give each location);
* a JSON body → 400 (malformed JSON) and 413 (over 10 MB, or a list over the batch limit);
* every operation → 503 (the database is unavailable or busy).

Every 4xx/5xx answer is shown with the real error body (:class:`~agora.api.errors.ErrorOut`), and
the ``$defs`` that pydantic puts inside hand-documented bodies (:func:`agora.api.body.body_doc`)
are moved to ``components/schemas`` so that every ``$ref`` resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from agora.api.auth import AUTH_ERRORS
from agora.api.body import STORABLE_JSON
from agora.api.errors import MAX_BODY_BYTES, ErrorOut
from agora.api.types import MAX_INT64

#: The answers of the kit, by what an operation takes.
KEYED: dict[str, str] = {str(code): answer["description"] for code, answer in AUTH_ERRORS.items()}
VALIDATED = {
    "422": "Invalid request: `problems` lists each location (`query.n`, `body.3.timestamp`) "
    "and what is wrong there."
}
WITH_BODY = {
    "400": "Malformed JSON (the answer gives line and column), or a body that is not UTF-8.",
    "413": f"A body over {MAX_BODY_BYTES // (1024 * 1024)} MB, or a list longer than the "
    "batch limit.",
}
ANY = {"503": "The database is unavailable or busy; try again after `Retry-After` seconds."}

_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def _complete(operation: dict[str, Any]) -> None:
    """Add the kit's answers an operation can give, keeping the route's own descriptions."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    generic = dict(ANY)
    if operation.get("security"):
        generic |= KEYED
    if operation.get("parameters") or operation.get("requestBody"):
        generic |= VALIDATED
    if operation.get("requestBody"):
        generic |= WITH_BODY
    for code, description in generic.items():
        responses.setdefault(code, {"description": description})
    for code, answer in responses.items():
        if code[:1] in ("4", "5"):
            answer["content"] = _ERROR_BODY
    operation["responses"] = dict(sorted(responses.items()))


def _exact_integers(node: Any) -> None:
    """Integer bounds as integers: FastAPI's OpenAPI model turns bounds given in
    ``openapi_extra`` into floats, and 2⁶³-1 as a float is 2⁶³, which a column cannot hold."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    node[key] = max(-MAX_INT64 - 1, min(MAX_INT64, int(value)))
        for value in node.values():
            _exact_integers(value)
    elif isinstance(node, list):
        for value in node:
            _exact_integers(value)


def _rewrite_refs(node: Any) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in node.values():
            _rewrite_refs(value)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value)


def _pop_defs(node: Any, into: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            into.setdefault(name, definition)
        for value in node.values():
            _pop_defs(value, into)
    elif isinstance(node, list):
        for value in node:
            _pop_defs(value, into)


def _hoist_defs(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """Move a request body's local ``$defs`` to the shared components (its refs follow)."""
    body = operation.get("requestBody")
    if body:
        found: dict[str, Any] = {}
        _pop_defs(body, found)
        _rewrite_refs(body)
        _rewrite_refs(found)
        for name, definition in found.items():
            components.setdefault(name, definition)


def fill_enum(mark: str, values: Sequence[str]) -> Callable[[dict[str, Any]], None]:
    """A refinement for :func:`install`: every schema carrying ``mark`` gets ``values`` as its
    enum (values only the app's settings know, such as its event types)."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.pop(mark, False):
                node["enum"] = list(values)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    return walk


def fill_max_items(mark: str, value: int) -> Callable[[dict[str, Any]], None]:
    """A refinement for :func:`install`: every schema carrying ``mark`` gets ``maxItems``
    ``value`` (a bound only the app's settings know, such as the batch limit)."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.pop(mark, False):
                node["maxItems"] = value
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    return walk


def install(app: FastAPI, *refine: Callable[[dict[str, Any]], None]) -> None:
    """Make ``app.openapi()`` document the kit's answers on every operation (see module doc);
    each ``refine`` then adds what only this app's settings know (e.g. its event types)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        error = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error.pop("$defs", {}))
        components["ErrorOut"] = error
        components["StorableJson"] = STORABLE_JSON
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                _hoist_defs(operation, components)
                _complete(operation)
        _exact_integers(schema)
        for step in refine:
            step(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
