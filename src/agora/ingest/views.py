"""HTTP routes for writing and reading users, items, social edges, groups and events.

Each route only translates HTTP to :mod:`agora.ingest.service` / :mod:`agora.db.queries` calls.
Write routes need the ``write`` scope (deleting a user or an item, which erases data of many
people, needs ``admin``) and run in ONE transaction (``db.engine.transaction``), so a refused
request stores nothing; read routes need ``read``. Bodies are read after the scope
check (see :mod:`agora.api.body`).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel

from agora.api.auth import AUTH_ERRORS, AdminScope, ReadScope, WriteScope
from agora.api.body import Batch, body_doc, read_json, validate_batch, validate_one, with_path_id
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.errors import BodyRejected, InvalidRequest, NotFound, problem
from agora.api.routing import OneHopRoute
from agora.config import Settings
from agora.db import queries
from agora.db.engine import transaction
from agora.ingest import service
from agora.ingest.schemas import (
    ID_PATTERN,
    EdgeIn,
    EdgeKey,
    EdgeOut,
    EventIn,
    EventsAccepted,
    GroupIn,
    GroupOut,
    ItemIn,
    ItemOut,
    MembershipIn,
    UserIn,
    UserOut,
    Written,
)

router = APIRouter(route_class=OneHopRoute)


def _path_id(description: str, pattern: str = ID_PATTERN) -> Any:
    """A path id, with the id rule documented as its pattern (checked by ``with_path_id``)."""
    return PathParam(
        min_length=1,
        max_length=255,
        description=description,
        json_schema_extra={"pattern": pattern},
    )


UserId = Annotated[str, _path_id("External user id.")]
ItemId = Annotated[str, _path_id("External item id.")]
GroupId = Annotated[str, _path_id("External group id.")]

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    400: {"description": "Malformed JSON (the answer gives line and column)."},
    413: {"description": "More records than `max_batch_events`, or a body over 10 MB."},
    422: {"description": "Invalid records; `problems` lists each location and message."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not found."}}


# -- bodies (read after the scope check) -----------------------------------------------------
M = TypeVar("M", bound=BaseModel)


def _timely(records: Batch[M], settings: Settings) -> Batch[M]:
    """``records`` when all their times are within the configured bounds; else a 422 at each."""
    problems = service.check_times(
        records.items, settings.earliest_timestamp, settings.max_future_seconds
    )
    if problems:
        raise BodyRejected(service.Rejected(problems), records.single)
    return records


def writable_group(
    group_id: Annotated[
        str,
        _path_id(
            "External group id (not a system-owned `segment:` one).",
            "^(?!segment:)" + ID_PATTERN[1:],
        ),
    ],
) -> str:
    """The path's group id, refused (422) when the system owns that group."""
    if service.is_system_group(group_id):
        message = (
            f"group {group_id!r} is system-owned: ids starting with "
            f"{service.SYSTEM_GROUP_PREFIX!r} are the stored user segments, built and replaced "
            "by POST /analytics/segments (admin); choose another group id"
        )
        raise InvalidRequest([problem(("path", "group_id"), message)])
    return group_id


WritableGroupId = Annotated[str, Depends(writable_group)]


async def user_body(request: Request, user_id: UserId, settings: SettingsDep) -> UserIn:
    user = validate_one(UserIn, with_path_id(await read_json(request), "user_id", user_id))
    return _timely(Batch([user], single=True), settings).items[0]


async def item_body(request: Request, item_id: ItemId, settings: SettingsDep) -> ItemIn:
    item = validate_one(ItemIn, with_path_id(await read_json(request), "item_id", item_id))
    return _timely(Batch([item], single=True), settings).items[0]


async def group_body(request: Request, group_id: WritableGroupId, settings: SettingsDep) -> GroupIn:
    group = validate_one(GroupIn, with_path_id(await read_json(request), "group_id", group_id))
    return _timely(Batch([group], single=True), settings).items[0]


async def events_body(request: Request, settings: SettingsDep) -> Batch[EventIn]:
    return validate_batch(EventIn, await read_json(request), settings.max_batch_events, "events")


async def edges_body(request: Request, settings: SettingsDep) -> Batch[EdgeIn]:
    edges = validate_batch(EdgeIn, await read_json(request), settings.max_batch_events, "edges")
    return _timely(edges, settings)


async def members_body(
    request: Request, group_id: WritableGroupId, settings: SettingsDep
) -> Batch[MembershipIn]:
    data = await read_json(request)
    if isinstance(data, dict):
        data = with_path_id(data, "group_id", group_id)
    elif isinstance(data, list) and len(data) <= settings.max_batch_events:
        data = [with_path_id(d, "group_id", group_id, ("body", i)) for i, d in enumerate(data)]
    members = validate_batch(MembershipIn, data, settings.max_batch_events, "memberships")
    return _timely(members, settings)


async def edge_key(
    request: Request,
    # documented on the route (``openapi_extra``): all three, as the query form needs them
    source_id: Annotated[str | None, Query(max_length=255, include_in_schema=False)] = None,
    target_id: Annotated[str | None, Query(max_length=255, include_in_schema=False)] = None,
    type: Annotated[str | None, Query(max_length=32, include_in_schema=False)] = None,  # noqa: A002
) -> EdgeKey:
    if (await request.body()).strip():
        return validate_one(EdgeKey, await read_json(request))
    given = {"source_id": source_id, "target_id": target_id, "type": type}
    return validate_one(
        EdgeKey, {k: v for k, v in given.items() if v is not None}, prefix=("query",)
    )


# -- users -----------------------------------------------------------------------------------
@router.put(
    "/users/{user_id}",
    tags=["users"],
    summary="Create or replace a user",
    dependencies=[WriteScope],
    openapi_extra=body_doc(UserIn, from_path=("user_id",)),
    responses={**WRITE_ERRORS, 201: {"description": "Created.", "model": UserOut}},
)
def put_user(
    user: Annotated[UserIn, Depends(user_body)], sessions: SessionFactoryDep, response: Response
) -> UserOut:
    with transaction(sessions) as session:
        existed = queries.user_record(session, user.user_id) is not None
        service.upsert_users(session, [user])
        record = queries.user_record(session, user.user_id)
    response.status_code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
    return UserOut.model_validate(record)


@router.get(
    "/users/{user_id}",
    tags=["users"],
    summary="A user",
    dependencies=[ReadScope],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_user(user_id: UserId, session: SessionDep) -> UserOut:
    record = queries.user_record(session, user_id)
    if record is None:
        raise NotFound(f"user {user_id!r} not found")
    return UserOut.model_validate(record)


@router.get(
    "/users/{user_id}/edges",
    tags=["users"],
    summary="A user's outgoing social edges",
    dependencies=[ReadScope],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_user_edges(user_id: UserId, session: SessionDep) -> list[EdgeOut]:
    if queries.user_record(session, user_id) is None:
        raise NotFound(f"user {user_id!r} not found")
    return [EdgeOut.model_validate(e) for e in queries.user_edges(session, user_id)]


# -- items -----------------------------------------------------------------------------------
@router.put(
    "/items/{item_id}",
    tags=["items"],
    summary="Create or replace an item (post, question, track...)",
    dependencies=[WriteScope],
    openapi_extra=body_doc(ItemIn, from_path=("item_id",)),
    responses={**WRITE_ERRORS, 201: {"description": "Created.", "model": ItemOut}},
)
def put_item(
    item: Annotated[ItemIn, Depends(item_body)], sessions: SessionFactoryDep, response: Response
) -> ItemOut:
    with transaction(sessions) as session:
        existed = bool(queries.item_summaries(session, [item.item_id]))
        service.upsert_items(session, [item])
        record = queries.item_record(session, item.item_id)
    response.status_code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
    return ItemOut.model_validate(record)


@router.get(
    "/items/{item_id}",
    tags=["items"],
    summary="An item",
    dependencies=[ReadScope],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_item(item_id: ItemId, session: SessionDep) -> ItemOut:
    record = queries.item_record(session, item_id)
    if record is None:
        raise NotFound(f"item {item_id!r} not found")
    return ItemOut.model_validate(record)


@router.delete(
    "/items/{item_id}",
    tags=["items"],
    summary="Delete an item with every event on it",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminScope],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def delete_item(item_id: ItemId, sessions: SessionFactoryDep) -> Response:
    with transaction(sessions) as session:
        found = service.delete_item(session, item_id)
    if not found:
        raise NotFound(f"item {item_id!r} not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- social edges ----------------------------------------------------------------------------
@router.post(
    "/edges",
    tags=["social"],
    summary="Add or update social edges (one object or a list)",
    dependencies=[WriteScope],
    openapi_extra=body_doc(EdgeIn, many=True),
    responses=WRITE_ERRORS,
)
def post_edges(
    request: Request,
    edges: Annotated[Batch[EdgeIn], Depends(edges_body)],
    sessions: SessionFactoryDep,
) -> Written:
    try:
        with transaction(sessions) as session:
            written = service.add_edges(session, edges.items)
    except service.Rejected as exc:
        raise BodyRejected(exc, edges.single) from exc
    _after_edge_writes(request, {edge.source_id for edge in edges.items})
    return Written(written=written)


def _after_edge_writes(request: Request, sources: set[str]) -> None:
    """What the app derives at once from changed social edges of ``sources`` (the feed's
    held states of those users)."""
    for derive in getattr(request.app.state, "after_edge_writes", ()):
        derive(sources)


@router.delete(
    "/edges",
    tags=["social"],
    summary="Delete one edge (source_id, target_id, type in the JSON body or the query)",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WriteScope],
    responses={**WRITE_ERRORS, **NOT_FOUND},
    # documented: the query form, where all three are needed (a JSON body may carry them instead)
    openapi_extra={
        "parameters": [
            {"name": name, "in": "query", "required": True, "schema": schema}
            for name, schema in EdgeKey.model_json_schema()["properties"].items()
        ]
    },
)
def delete_edge(
    request: Request, key: Annotated[EdgeKey, Depends(edge_key)], sessions: SessionFactoryDep
) -> Response:
    with transaction(sessions) as session:
        found = service.delete_edge(session, key.source_id, key.target_id, key.type)
    if not found:
        raise NotFound(f"no {key.type!r} edge from {key.source_id!r} to {key.target_id!r}")
    _after_edge_writes(request, {key.source_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- groups ----------------------------------------------------------------------------------
@router.put(
    "/groups/{group_id}",
    tags=["groups"],
    summary="Create or replace a group",
    dependencies=[WriteScope],
    openapi_extra=body_doc(GroupIn, from_path=("group_id",)),
    responses=WRITE_ERRORS,
)
def put_group(
    group: Annotated[GroupIn, Depends(group_body)], sessions: SessionFactoryDep
) -> GroupOut:
    with transaction(sessions) as session:
        service.upsert_groups(session, [group])
    return GroupOut.model_validate(group.model_dump())


@router.post(
    "/groups/{group_id}/members",
    tags=["groups"],
    summary="Add users to a group (one object or a list; group_id comes from the path)",
    dependencies=[WriteScope],
    openapi_extra=body_doc(MembershipIn, many=True, from_path=("group_id",)),
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
def post_members(
    group_id: GroupId,
    members: Annotated[Batch[MembershipIn], Depends(members_body)],
    sessions: SessionFactoryDep,
) -> Written:
    try:
        with transaction(sessions) as session:
            written = service.add_memberships(session, members.items)
    except service.Rejected as exc:
        if all(p.field == "group_id" for p in exc.problems):
            raise NotFound(f"group {group_id!r} not found; create it with PUT first") from exc
        raise BodyRejected(exc, members.single) from exc
    return Written(written=written)


# -- events ----------------------------------------------------------------------------------
@router.post(
    "/events",
    tags=["events"],
    summary="Record behaviour events (one object or a list)",
    description=(
        "Stores each event once: re-sending an `event_id` already stored is a success that "
        "stores nothing new (counted in `duplicates`). Unknown users and items are created. "
        "The whole request is one transaction: one bad event (its index and field are named "
        "in the 422 answer) means none is stored. Lists longer than `max_batch_events` "
        "(default 1000) get 413. Answers 201 when something was stored, 200 otherwise."
    ),
    dependencies=[WriteScope],
    openapi_extra=body_doc(EventIn, many=True),
    responses={**WRITE_ERRORS, 201: {"description": "Stored.", "model": EventsAccepted}},
)
def post_events(
    request: Request,
    events: Annotated[Batch[EventIn], Depends(events_body)],
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    response: Response,
    after: BackgroundTasks,
) -> EventsAccepted:
    try:
        with transaction(sessions) as session:
            summary = service.add_events(
                session,
                events.items,
                settings.event_types,
                settings.max_future_seconds,
                settings.earliest_timestamp,
            )
    except service.Rejected as exc:
        raise BodyRejected(exc, events.single) from exc
    accepted = summary.written.get("events", 0)
    if accepted:  # what the app derives from events (engagement points...), once answered
        for derive in getattr(request.app.state, "after_event_writes", ()):
            after.add_task(derive)
    response.status_code = status.HTTP_201_CREATED if accepted else status.HTTP_200_OK
    return EventsAccepted(accepted=accepted, duplicates=summary.duplicate_events)
