"""Gorse's REST API under ``/api/``: its paths, JSON fields, status codes and plain-text errors.

Each route only translates HTTP to :mod:`agora.gorse.service` calls. The key is Agora's own,
sent as Gorse clients send it (``X-API-Key``; ``Authorization: Bearer`` works too), with
Agora's scopes: reads need ``read``, writes ``write``, and deleting a user or an item (which
erases everyone's events on it) ``admin``, as on Agora's own routes. Errors are answered as a
Gorse server answers them, in plain text (``"<id>: user not found"`` with 404,
``"unauthorized"`` with 401, Go's parse errors with 400), so Gorse clients raise the exception
they would raise against Gorse. Paths are served with and without the trailing slash Gorse's
clients add when a category is left out (``/api/popular/``).

The routes are left out of Agora's OpenAPI document, whose error bodies they do not share;
docs/gorse.md lists them with the mapping, and ``docs/scopes.md`` with their scopes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
)
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from agora.api.auth import require_key_header
from agora.api.body import read_json, validate_batch, validate_one
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.errors import InvalidRequest, MalformedJson, TooLarge, problem
from agora.api.routing import OneHopRoute
from agora.config import Settings
from agora.db.engine import transaction
from agora.gorse import schemas, service
from agora.gorse.config import gorse_config
from agora.gorse.service import GorseError
from agora.ingest import service as ingest
from agora.privacy.views import erase_asked
from agora.serving.views import ModelsDep, ReadyAnswersDep


class GorseRoute(OneHopRoute):
    """A route that answers its errors as Gorse does: plain text with Gorse's status (401
    ``unauthorized``; a body that is not JSON or not of the expected shape: 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except GorseError as exc:
                return PlainTextResponse(exc.text, exc.status)
            except HTTPException as exc:  # auth (401, 403) and rate limits (429)
                text = "unauthorized" if exc.status_code == 401 else str(exc.detail)
                return PlainTextResponse(text, exc.status_code, headers=exc.headers)
            except MalformedJson as exc:
                return PlainTextResponse(str(exc), 400)
            except InvalidRequest as exc:
                return PlainTextResponse(_located(exc.problems) or str(exc), 400)
            except RequestValidationError as exc:  # a path or query value out of its bounds
                problems = [problem(e["loc"], e["msg"], e["type"]) for e in exc.errors()]
                return PlainTextResponse(_located(problems), 400)
            except TooLarge as exc:
                return PlainTextResponse(str(exc), 413)

        return answer


def _located(problems: list[dict[str, Any]]) -> str:
    """The first problems of a request, each with its place: ``body.UserId: Field required``."""
    return "; ".join(f"{p['location']}: {p['message']}" for p in problems[:5])


router = APIRouter(prefix="/api", route_class=GorseRoute, include_in_schema=False)

ReadScope = Depends(require_key_header("read"))
WriteScope = Depends(require_key_header("write"))
AdminScope = Depends(require_key_header("admin"))

UserId = Annotated[str, PathParam(min_length=1, max_length=255)]
ItemId = Annotated[str, PathParam(min_length=1, max_length=255)]
FeedbackType = Annotated[str, PathParam(min_length=1, max_length=schemas.TYPE_MAX_LENGTH)]
Category = Annotated[str, PathParam(min_length=1, max_length=255)]
#: Gorse's integer query values are parsed as Gorse parses them (service.parse_int).
NText = Annotated[str | None, Query(description="How many (Gorse's default_n when absent).")]
OffsetText = Annotated[str | None, Query(description="How many to skip.")]
CursorText = Annotated[str, Query(description="The Cursor of the previous page.")]
#: gorsejs sends its cursor as ``Cursor``: taken too.
CursorAlias = Annotated[str, Query(alias="Cursor", description="gorsejs's name of `cursor`.")]
CategoryQuery = Annotated[
    list[str] | None, Query(alias="category", description="Categories every item must be in.")
]
UserFilter = Annotated[str | None, Query(alias="user-id", description="Leave out their items.")]


def _routes(method: str, *paths: str, **kwargs: Any) -> Callable[[Any], Any]:
    """Register one endpoint under several paths (Gorse's with and without a category)."""

    def register(endpoint: Any) -> Any:
        for path in paths:
            router.add_api_route(path, endpoint, methods=[method], **kwargs)
        return endpoint

    return register


def _n(n: str | None, settings: Settings) -> int:
    return service.parse_int(n, gorse_config(settings).default_n, "n")


async def page(
    request: Request, n: NText = None, cursor: CursorText = "", gorsejs_cursor: CursorAlias = ""
) -> tuple[str, int]:
    """The cursor and size of the page asked for (Gorse's ``cursor`` or gorsejs's ``Cursor``)."""
    return cursor or gorsejs_cursor, _n(n, request.app.state.settings)


Page = Annotated[tuple[str, int], Depends(page)]


def _after_event_writes(request: Request, after: BackgroundTasks) -> None:
    """What the app derives from new events (engagement, the feed's held states), once the
    answer is sent, as after ``POST /events``."""
    for derive in getattr(request.app.state, "after_event_writes", ()):
        after.add_task(derive)


# -- bodies (read after the scope check) -----------------------------------------------------
M = TypeVar("M", bound=BaseModel)


def one(model: type[M]) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """A dependency reading the body as one ``model``."""

    async def body(request: Request) -> M:
        return validate_one(model, await read_json(request))

    return body


def many(model: type[M], what: str) -> Callable[[Request], Coroutine[Any, Any, list[M]]]:
    """A dependency reading the body as a list of ``model`` (at most ``max_batch_events``)."""

    async def body(request: Request) -> list[M]:
        limit = request.app.state.settings.max_batch_events
        return validate_batch(model, await read_json(request), limit, what).items

    return body


async def session_body(request: Request) -> list[schemas.FeedbackIn]:
    """A session's feedback; an empty body is an empty session."""
    if not (await request.body()).strip():
        return []
    return await many(schemas.FeedbackIn, "feedback")(request)


UserBody = Annotated[schemas.UserIn, Depends(one(schemas.UserIn))]
UserPatchBody = Annotated[schemas.UserPatch, Depends(one(schemas.UserPatch))]
Users = Annotated[list[schemas.UserIn], Depends(many(schemas.UserIn, "users"))]
ItemBody = Annotated[schemas.ItemIn, Depends(one(schemas.ItemIn))]
ItemPatchBody = Annotated[schemas.ItemPatch, Depends(one(schemas.ItemPatch))]
Items = Annotated[list[schemas.ItemIn], Depends(many(schemas.ItemIn, "items"))]
Feedback = Annotated[list[schemas.FeedbackIn], Depends(many(schemas.FeedbackIn, "feedback"))]
SessionFeedback = Annotated[list[schemas.FeedbackIn], Depends(session_body)]


# -- health (no key, as in Gorse) ------------------------------------------------------------
def _health(error: str | None) -> dict[str, Any]:
    """Gorse's HealthStatus; Agora's cache (Redis, when used) answers in the feed's own health."""
    return {
        "Ready": error is None,
        "DataStoreError": error,
        "CacheStoreError": None,
        "DataStoreConnected": error is None,
        "CacheStoreConnected": True,
    }


@router.get("/health/live", summary="Liveness: 200 once the server runs")
async def health_live(request: Request) -> dict[str, Any]:
    return _health(await request.app.state.database_check.error())


@router.get("/health/ready", summary="Readiness: 200 while the database answers, else 503")
async def health_ready(request: Request) -> Response:
    status = _health(await request.app.state.database_check.error())
    if status["Ready"]:
        return JSONResponse(status)
    return PlainTextResponse(json.dumps(status), 503)


# -- users -----------------------------------------------------------------------------------
@router.post("/user", summary="Insert a user (overwrite if it exists)", dependencies=[WriteScope])
def insert_user(user: UserBody, sessions: SessionFactoryDep) -> schemas.RowAffected:
    with transaction(sessions) as session:
        return schemas.RowAffected(RowAffected=service.insert_users(session, [user]))


@router.post("/users", summary="Insert users", dependencies=[WriteScope])
def insert_users(users: Users, sessions: SessionFactoryDep) -> schemas.RowAffected:
    with transaction(sessions) as session:
        return schemas.RowAffected(RowAffected=service.insert_users(session, users))


@router.get("/user/{user_id}", summary="Get a user", dependencies=[ReadScope])
def get_user(user_id: UserId, session: SessionDep) -> schemas.UserOut:
    return service.get_user(session, user_id)


@router.patch("/user/{user_id}", summary="Modify a user", dependencies=[WriteScope])
def modify_user(
    user_id: UserId,
    patch: UserPatchBody,
    sessions: SessionFactoryDep,
) -> schemas.RowAffected:
    with transaction(sessions) as session:
        return schemas.RowAffected(RowAffected=service.modify_user(session, user_id, patch))


@router.delete(
    "/user/{user_id}",
    summary="Delete a user and their feedback (Agora's erasure)",
    dependencies=[AdminScope],
)
def delete_user(
    user_id: UserId, request: Request, sessions: SessionFactoryDep, settings: SettingsDep
) -> schemas.RowAffected:
    """The erasure of ``DELETE /users/{id}``: every row about them, them from the models, the
    erasure recorded; their items stay without author."""
    record = erase_asked(request, sessions, settings, user_id)
    return schemas.RowAffected(RowAffected=0 if record is None else 1)


@router.get("/users", summary="Get users", dependencies=[ReadScope])
def get_users(asked: Page, session: SessionDep) -> schemas.Users:
    return service.get_users(session, *asked)


# -- items -----------------------------------------------------------------------------------
@router.post("/item", summary="Insert an item (overwrite if it exists)", dependencies=[WriteScope])
def insert_item(
    item: ItemBody,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
) -> schemas.RowAffected:
    with transaction(sessions) as session:
        return schemas.RowAffected(RowAffected=service.insert_items(session, [item], settings))


@router.post("/items", summary="Insert items", dependencies=[WriteScope])
def insert_items(
    items: Items, sessions: SessionFactoryDep, settings: SettingsDep
) -> schemas.RowAffected:
    with transaction(sessions) as session:
        return schemas.RowAffected(RowAffected=service.insert_items(session, items, settings))


@router.get("/item/{item_id}", summary="Get an item", dependencies=[ReadScope])
def get_item(item_id: ItemId, session: SessionDep) -> schemas.ItemOut:
    return service.get_item(session, item_id)


@router.patch("/item/{item_id}", summary="Modify an item", dependencies=[WriteScope])
def modify_item(
    item_id: ItemId,
    patch: ItemPatchBody,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
) -> schemas.RowAffected:
    with transaction(sessions) as session:
        changed = service.modify_item(session, item_id, patch, settings)
    return schemas.RowAffected(RowAffected=changed)


@router.delete(
    "/item/{item_id}", summary="Delete an item and its feedback", dependencies=[AdminScope]
)
def delete_item(item_id: ItemId, sessions: SessionFactoryDep) -> schemas.RowAffected:
    with transaction(sessions) as session:
        return schemas.RowAffected(RowAffected=int(ingest.delete_item(session, item_id)))


@router.api_route(
    "/item/{item_id}/category/{category}",
    methods=["PUT", "DELETE"],
    summary="Insert (PUT) or delete (DELETE) a category of an item",
    dependencies=[WriteScope],
)
def item_category(
    item_id: ItemId, category: Category, request: Request, sessions: SessionFactoryDep
) -> schemas.RowAffected:
    with transaction(sessions) as session:
        changed = service.change_category(session, item_id, category, request.method == "PUT")
    return schemas.RowAffected(RowAffected=changed)


@router.get("/items", summary="Get items", dependencies=[ReadScope])
def get_items(asked: Page, session: SessionDep) -> schemas.Items:
    return service.get_items(session, *asked)


# -- feedback --------------------------------------------------------------------------------
def _insert_feedback(
    request: Request,
    after: BackgroundTasks,
    feedback: list[schemas.FeedbackIn],
    sessions: sessionmaker[Session],
    settings: Settings,
    overwrite: bool,
) -> schemas.RowAffected:
    with transaction(sessions) as session:
        written = service.insert_feedback(session, feedback, settings, overwrite)
    if written.stored or overwrite:
        _after_event_writes(request, after)
    return schemas.RowAffected(RowAffected=written.row_affected)


@router.post("/feedback", summary="Insert feedback (kept if it exists)", dependencies=[WriteScope])
def insert_feedback(
    request: Request,
    after: BackgroundTasks,
    feedback: Feedback,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
) -> schemas.RowAffected:
    return _insert_feedback(request, after, feedback, sessions, settings, overwrite=False)


@router.put(
    "/feedback", summary="Insert feedback (overwritten if it exists)", dependencies=[WriteScope]
)
def put_feedback(
    request: Request,
    after: BackgroundTasks,
    feedback: Feedback,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
) -> schemas.RowAffected:
    return _insert_feedback(request, after, feedback, sessions, settings, overwrite=True)


async def path_feedback_type(request: Request) -> str | None:
    """The feedback type the path names (None on the paths without one: every type)."""
    return request.path_params.get("feedback_type")


TypeInPath = Annotated[str | None, Depends(path_feedback_type)]


@_routes(
    "GET",
    "/feedback",
    "/feedback/{feedback_type}",
    summary="Get feedback (of one type)",
    dependencies=[ReadScope],
)
def get_feedback(feedback_type: TypeInPath, asked: Page, session: SessionDep) -> schemas.Feedbacks:
    return service.get_feedback(session, *asked, feedback_type)


@router.get(
    "/feedback/{user_id}/{item_id}",
    summary="Get the feedback between a user and an item",
    dependencies=[ReadScope],
)
def get_user_item_feedback(
    user_id: UserId, item_id: ItemId, session: SessionDep
) -> list[schemas.FeedbackOut]:
    return service.feedback_of(session, user_id, item_id)


@router.get(
    "/feedback/{feedback_type}/{user_id}/{item_id}",
    summary="Get the feedback of one type between a user and an item",
    dependencies=[ReadScope],
)
def get_typed_user_item_feedback(
    feedback_type: FeedbackType, user_id: UserId, item_id: ItemId, session: SessionDep
) -> schemas.FeedbackOut:
    found = service.feedback_of(session, user_id, item_id, feedback_type)
    if not found:
        raise GorseError(404, f"{feedback_type}/{user_id}/{item_id}: feedback not found")
    return found[0]


@_routes(
    "DELETE",
    "/feedback/{user_id}/{item_id}",
    "/feedback/{feedback_type}/{user_id}/{item_id}",
    summary="Delete the feedback (of one type) between a user and an item",
    dependencies=[WriteScope],
)
def delete_user_item_feedback(
    user_id: UserId, item_id: ItemId, feedback_type: TypeInPath, sessions: SessionFactoryDep
) -> schemas.RowAffected:
    with transaction(sessions) as session:
        deleted = service.delete_feedback(session, user_id, item_id, feedback_type)
    return schemas.RowAffected(RowAffected=deleted)


@_routes(
    "GET",
    "/user/{user_id}/feedback",
    "/user/{user_id}/feedback/",
    "/user/{user_id}/feedback/{feedback_type}",
    summary="Get a user's feedback (of one type)",
    dependencies=[ReadScope],
)
def get_user_feedback(
    user_id: UserId, feedback_type: TypeInPath, session: SessionDep
) -> list[schemas.FeedbackOut]:
    return service.feedback_of(session, user_id=user_id, feedback_type=feedback_type)


@_routes(
    "GET",
    "/item/{item_id}/feedback",
    "/item/{item_id}/feedback/",
    "/item/{item_id}/feedback/{feedback_type}",
    summary="Get an item's feedback (of one type)",
    dependencies=[ReadScope],
)
def get_item_feedback(
    item_id: ItemId, feedback_type: TypeInPath, session: SessionDep
) -> list[schemas.FeedbackOut]:
    return service.feedback_of(session, item_id=item_id, feedback_type=feedback_type)


# -- recommendations -------------------------------------------------------------------------
async def window(
    request: Request,
    n: NText = None,
    offset: OffsetText = None,
    categories: CategoryQuery = None,
) -> service.Window:
    """The part of a list asked for: ``n`` and ``offset`` as Gorse parses them, the
    ``category`` query values, else the path's category."""
    settings: Settings = request.app.state.settings
    asked = list(categories) if categories else [request.path_params.get("category", "")]
    return service.Window(
        service.parse_int(offset, 0, "offset"),
        _n(n, settings),
        tuple(category for category in asked if category),
    )


WindowDep = Annotated[service.Window, Depends(window)]


@_routes(
    "GET",
    "/recommend/{user_id}",
    "/recommend/{user_id}/",
    "/recommend/{user_id}/{category}",
    summary="Get recommendations for a user",
    dependencies=[ReadScope],
)
def get_recommend(
    user_id: UserId,
    part: WindowDep,
    request: Request,
    after: BackgroundTasks,
    sessions: SessionFactoryDep,
    models: ModelsDep,
    ready: ReadyAnswersDep,
    settings: SettingsDep,
    write_back_type: Annotated[
        str | None, Query(alias="write-back-type", max_length=schemas.TYPE_MAX_LENGTH)
    ] = None,
    write_back_delay: Annotated[str | None, Query(alias="write-back-delay")] = None,
    api_version: Annotated[str | None, Header(alias="X-API-Version")] = None,
) -> Any:
    """Plain item ids; ``{Id, Score}`` objects with ``X-API-Version: 2``. With
    ``write-back-type`` each returned item is written back as that feedback, dated
    ``write-back-delay`` (a Go duration) from now."""
    delay = service.parse_duration(write_back_delay)
    with sessions() as session:
        ranked = service.recommend(session, models, ready, settings, user_id, part)
    if write_back_type and ranked:
        with transaction(sessions) as session:
            service.write_back(session, settings, user_id, ranked, write_back_type, delay)
        _after_event_writes(request, after)
    if api_version == "2":
        return service.scores(ranked)
    return [item for item, _ in ranked]


@_routes(
    "POST",
    "/session/recommend",
    "/session/recommend/",
    "/session/recommend/{category}",
    summary="Get recommendations for a session's feedback",
    dependencies=[ReadScope],
)
def session_recommend(
    feedback: SessionFeedback,
    part: WindowDep,
    session: SessionDep,
    models: ModelsDep,
    settings: SettingsDep,
) -> list[schemas.Score]:
    ranked = service.session_recommend(session, models, settings, feedback, part)
    return service.scores(ranked)


@_routes(
    "GET",
    "/item/{item_id}/neighbors",
    "/item/{item_id}/neighbors/",
    "/item/{item_id}/neighbors/{category}",
    summary="Get the neighbors of an item",
    dependencies=[ReadScope],
)
def get_item_neighbors(
    item_id: ItemId, part: WindowDep, session: SessionDep, models: ModelsDep, settings: SettingsDep
) -> list[schemas.Score]:
    return service.scores(service.item_neighbors(session, models, settings, item_id, part))


@_routes(
    "GET",
    "/user/{user_id}/neighbors",
    "/user/{user_id}/neighbors/",
    summary="Get the neighbors of a user",
    dependencies=[ReadScope],
)
def get_user_neighbors(
    user_id: UserId, part: WindowDep, session: SessionDep, settings: SettingsDep
) -> list[schemas.Score]:
    return service.scores(service.user_neighbors(session, settings, user_id, part))


@_routes(
    "GET",
    "/popular",
    "/popular/",
    "/popular/{category}",
    summary="Get popular items",
    dependencies=[ReadScope],
)
def get_popular(
    part: WindowDep,
    session: SessionDep,
    models: ModelsDep,
    settings: SettingsDep,
    user_id: UserFilter = None,
) -> list[schemas.Score]:
    return service.scores(service.popular_list(session, models, settings, user_id, part))


@_routes(
    "GET",
    "/latest",
    "/latest/",
    "/latest/{category}",
    summary="Get the latest items",
    dependencies=[ReadScope],
)
def get_latest(
    part: WindowDep, session: SessionDep, user_id: UserFilter = None
) -> list[schemas.Score]:
    return service.scores(service.latest_list(session, user_id, part))
