"""HTTP routes of item images: send one for Agora to read (``write``), see what was read
(``read``). The image is read after the scope check; its bytes are not kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from agora.api.auth import AUTH_ERRORS, ReadScope, WriteScope
from agora.api.deps import SessionDep, SessionFactoryDep, SettingsDep
from agora.api.errors import InvalidRequest, NotFound, TooLarge, problem
from agora.api.routing import OneHopRoute
from agora.db.engine import transaction
from agora.db.tables import Item
from agora.features.store import MAX_SOURCE_LENGTH
from agora.media import service
from agora.media.schemas import MediaAdded, MediaOut
from agora.vision.analyse import analyse_image
from agora.vision.probe import MIME_TYPES, UnreadableImage

router = APIRouter(route_class=OneHopRoute, tags=["media"])

ItemId = Annotated[str, PathParam(min_length=1, max_length=255, description="External item id.")]


#: The request body of ``POST /items/{id}/media`` in the OpenAPI document: the image's bytes.
IMAGE_BODY = {
    mime: {"schema": {"type": "string", "format": "binary"}}
    for mime in sorted(set(MIME_TYPES.values()))
}


def _item(session: Any, item_id: str) -> Item:
    item = session.scalar(select(Item).where(Item.external_id == item_id))
    if item is None:
        raise NotFound(f"item {item_id!r} not found")
    return item


@router.post(
    "/items/{item_id}/media",
    summary="Send an image of an item for Agora to read (text inside, explicit score, facts)",
    description=(
        "The body is the image itself (JPEG, PNG, GIF, WebP, BMP or TIFF; `Content-Type` "
        "image/...), at most `media_max_bytes`. Agora reads its text (OCR, Chinese and "
        "English), scores it for explicit nudity and stores both with its facts; the bytes "
        "are not kept. The text joins the item's text for content models, trending keywords "
        "and the moderation classifier; an image scoring `explicit_image_threshold` or more "
        "puts the item into the review queue. Sending the same image again replaces its "
        "reading. Reading takes about a second on 2 cores."
    ),
    dependencies=[WriteScope],
    openapi_extra={"requestBody": {"required": True, "content": IMAGE_BODY}},
    status_code=status.HTTP_201_CREATED,
    responses={
        **AUTH_ERRORS,
        404: {"description": "The item is not in the store."},
        413: {"description": "The image is larger than `media_max_bytes`."},
        415: {"description": "The body is not declared as an image."},
        422: {"description": "The bytes are not a readable image."},
    },
)
async def post_media(
    item_id: ItemId,
    request: Request,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    source: Annotated[
        str | None,
        Query(
            max_length=MAX_SOURCE_LENGTH,
            description="Name this image (e.g. its URL on the platform); default upload:<sha256>.",
        ),
    ] = None,
) -> MediaAdded:
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not declared.startswith("image/"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the image itself with Content-Type image/... (got {declared or 'none'!r})",
        )
    policy = service.MediaPolicy.of(settings)
    data = await request.body()
    if len(data) > policy.max_bytes:
        raise TooLarge(
            f"the image has {len(data):,} bytes; media_max_bytes is {policy.max_bytes:,}"
        )
    if not data:
        raise InvalidRequest([problem(("body",), "the body is empty: send the image", "missing")])

    def add() -> MediaAdded:
        with sessions() as session:
            _item(session, item_id)  # 404 before a second of reading
        try:
            analysis = analyse_image(data)
        except UnreadableImage as exc:
            raise InvalidRequest([problem(("body",), str(exc))]) from None
        name = source or service.UPLOAD_PREFIX + analysis.sha256
        with transaction(sessions) as session:
            item = _item(session, item_id)
            row, queued = service.add_reading(
                session, item.id, name, analysis, policy, datetime.now(UTC)
            )
            reading = MediaOut.model_validate(row).model_dump()
        return MediaAdded(**reading, in_review=queued)

    return await run_in_threadpool(add)


@router.get(
    "/items/{item_id}/media",
    summary="What Agora read of an item's images",
    dependencies=[ReadScope],
    responses={**AUTH_ERRORS, 404: {"description": "The item is not in the store."}},
)
def get_media(item_id: ItemId, session: SessionDep) -> list[MediaOut]:
    item = _item(session, item_id)
    return [MediaOut.model_validate(row) for row in service.item_media(session, item.id)]
