"""Reading request bodies by hand, after authentication, with precise error locations.

Write routes do not let FastAPI parse their body: they read it in a dependency declared after the
scope check, so an unauthenticated request is refused before its body is even decoded, a list
longer than the batch limit is refused (413) before its records are validated, and every
problem is reported at its place in the body (``body.3.timestamp``; ``body.timestamp`` when a
single object was sent). The OpenAPI schema of these bodies is supplied with :func:`body_doc`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel, TypeAdapter, ValidationError

from agora.api.errors import InvalidRequest, MalformedJson, TooLarge, problem
from agora.api.types import id_problem, unstorable_text

M = TypeVar("M", bound=BaseModel)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _text_problems(data: Any) -> list[dict[str, Any]]:
    return [problem(loc, message) for loc, message in unstorable_text(data, ("body",))]


async def read_json(request: Request) -> Any:
    """The request body decoded as JSON (UTF-8, finite numbers only, no NUL characters)."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest([problem(("body",), "a JSON body is required", "missing")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not UTF-8 (bad byte at offset {exc.start})") from None
    try:
        data = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise MalformedJson(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise MalformedJson("the body is nested too deeply") from None
    except ValueError as exc:  # out-of-range numbers, NaN/Infinity, integers too long
        raise MalformedJson(str(exc)) from None
    problems = _text_problems(data)
    if problems:
        raise InvalidRequest(problems)
    return data


def _errors(exc: ValidationError, prefix: tuple[str | int, ...]) -> list[dict[str, Any]]:
    return [problem((*prefix, *err["loc"]), err["msg"], err["type"]) for err in exc.errors()]


def validate_one(model: type[M], data: Any, prefix: tuple = ("body",)) -> M:
    """``data`` as ``model``, or InvalidRequest with every problem located under ``prefix``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(_errors(exc, prefix)) from None


@dataclass
class Batch(Generic[M]):
    """Records from a body that held one object (``single``) or a list of them."""

    items: list[M]
    single: bool


def validate_batch(model: type[M], data: Any, limit: int, what: str = "records") -> Batch[M]:
    """One object or a list of at most ``limit`` objects, each validated as ``model``.

    A longer list raises TooLarge (413) before any record is looked at; otherwise every bad
    record is reported (``body.<index>.<field>``) and none is returned.
    """
    if isinstance(data, dict):
        return Batch([validate_one(model, data)], single=True)
    if not isinstance(data, list):
        raise InvalidRequest(
            [problem(("body",), f"expected one object or a list of {what}", "type_error")]
        )
    if len(data) > limit:
        raise TooLarge(
            f"{len(data)} {what} in one request; at most {limit} are accepted "
            "(split the list into several requests)"
        )
    try:
        return Batch(_list_of(model).validate_python(data), single=False)
    except ValidationError as exc:  # locations start with the record's index
        raise InvalidRequest(_errors(exc, ("body",))) from None


@cache
def _list_of(model: type[M]) -> TypeAdapter[list[M]]:
    """One validator for a whole list of ``model`` (a single call, not a loop per record)."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def with_path_id(data: Any, field: str, value: str, prefix: tuple = ("body",)) -> Any:
    """``data`` with ``field`` set from the path; a different value in the body is a problem,
    and so is a path id that breaks the id rule (at ``path.<field>``)."""
    if fault := id_problem(value):
        raise InvalidRequest([problem(("path", field), fault)])
    if not isinstance(data, dict):
        return data  # validation reports that it is not an object
    given = data.get(field)
    if given is not None and not isinstance(given, bool) and str(given).strip() != value.strip():
        raise InvalidRequest(
            [problem((*prefix, field), f"{field} {given!r} does not match the path ({value!r})")]
        )
    return {**data, field: value}


#: Marks a list body whose most items is the app's ``max_batch_events`` (filled in per app by
#: :func:`agora.api.openapi.fill_max_items`; a longer list is a 413).
BATCH_LIMIT_MARK = "x-agora-batch-limit"

#: What :func:`read_json` refuses in any string of a body, keys included: NUL characters.
NO_NUL = "^[^\\u0000]*$"
#: Any JSON value whose strings and keys hold no NUL (free-form fields: attributes, context...).
STORABLE_JSON: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/StorableJson"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": "#/components/schemas/StorableJson"},
        },
    ]
}


def storable(node: Any) -> Any:
    """``node`` (a JSON schema) saying what :func:`read_json` checks: no string, key or nested
    free-form value holds a NUL (the document defines ``StorableJson``)."""
    if isinstance(node, list):
        return [storable(value) for value in node]
    if not isinstance(node, dict):
        return node
    node = {key: storable(value) for key, value in node.items()}
    if node.get("type") == "string" and not {"enum", "const", "pattern", "format"} & set(node):
        node["pattern"] = NO_NUL
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        node["propertyNames"] = {"pattern": NO_NUL}
        node["additionalProperties"] = {"$ref": "#/components/schemas/StorableJson"}
    if node.get("type") == "array" and node.get("items") == {}:
        node["items"] = {"$ref": "#/components/schemas/StorableJson"}
    return node


def body_doc(
    model: type[BaseModel],
    many: bool = False,
    from_path: tuple[str, ...] = (),
    required: bool = True,
) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON body of ``model`` (or a list of them, if ``many``).

    Fields in ``from_path`` are filled from the path and left out of the document (a body may
    still repeat them, with the path's value); ``required=False`` documents a body that may be
    left out (its fields' defaults apply)."""
    schema = storable(model.model_json_schema())
    for name in from_path:
        schema.get("properties", {}).pop(name, None)
    if from_path:
        schema["required"] = [f for f in schema.get("required", []) if f not in from_path]
    if many:
        batch = {"type": "array", "items": schema, BATCH_LIMIT_MARK: True}
        schema = {
            "anyOf": [schema, batch],
            "description": f"One {model.__name__} object or a list of them.",
        }
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}
