"""Agora's REST API from Python, over HTTP: :class:`AgoraClient` (sync) and
:class:`AsyncAgoraClient`, built on httpx, with every route of the API as a method
(:class:`~agora.client.operations.Operations`).

    from agora.client import AgoraClient

    with AgoraClient("http://127.0.0.1:8000", api_key="...") as agora:
        agora.add_events([{"event_id": "e-1", "user_id": "28", "item_id": "735", "type": "like"}])
        page = agora.feed("28", n=20)

Answers 429 (rate limit) and 503 (no model yet, database busy) are retried up to ``retries``
times, after the ``Retry-After`` the server gave (at most ``max_wait`` seconds each; half a
second, doubling, when it gave none); other errors raise at once as
:class:`~agora.client.errors.AgoraError` subclasses that carry the API's problem locations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from agora.client.errors import error_of
from agora.client.operations import JSON, Operations

RETRIED = frozenset({429, 503})


def _url(template: str, path: Mapping[str, str] | None) -> str:
    """The path with its parameters filled in, each quoted whole (an id may hold ``/``)."""
    return template.format(**{k: quote(str(v), safe="") for k, v in (path or {}).items()})


def _query(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The query without the arguments left None (the server's defaults apply)."""
    return {k: v for k, v in (params or {}).items() if v is not None}


def _answer(response: httpx.Response, raw: bool) -> Any:
    if response.is_error:
        raise error_of(response)
    if raw:
        return response.content
    return response.json() if response.content else None


def _wait(response: httpx.Response, attempt: int, max_wait: float) -> float:
    """Seconds before retrying: the server's ``Retry-After``, else 0.5 s doubling."""
    try:
        told = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        told = 0.5 * 2**attempt
    return min(max(told, 0.0), max_wait)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class AgoraClient(Operations[Any]):
    """A synchronous client; use it as a context manager (or call :meth:`close`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retries = retries
        self.max_wait = max_wait
        self.http = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def _request(
        self,
        method: str,
        template: str,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        raw: bool = False,
    ) -> Any:
        url, query = _url(template, path), _query(params)
        for attempt in range(self.retries + 1):
            response = self.http.request(method, url, params=query, json=json)
            if response.status_code not in RETRIED or attempt == self.retries:
                return _answer(response, raw)
            time.sleep(_wait(response, attempt, self.max_wait))
        raise AssertionError("unreachable")  # the loop returns on its last attempt

    def feed_pages(self, user_id: str, n: int | None = None, pages: int = 3) -> Iterator[JSON]:
        """Up to ``pages`` pages of one browsing session, each following the last's cursor."""
        cursor = None
        for _ in range(pages):
            page = self.feed(user_id, n=n, cursor=cursor)
            yield page
            if not page["items"]:
                return
            cursor = page["next_cursor"]

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AgoraClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncAgoraClient(Operations[Any]):
    """An asyncio client: every method returns an awaitable of the answer; use it as an async
    context manager (or await :meth:`aclose`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retries = retries
        self.max_wait = max_wait
        self.http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def _send(
        self, method: str, url: str, query: dict[str, Any], json: Any, raw: bool
    ) -> Any:
        for attempt in range(self.retries + 1):
            response = await self.http.request(method, url, params=query, json=json)
            if response.status_code not in RETRIED or attempt == self.retries:
                return _answer(response, raw)
            await asyncio.sleep(_wait(response, attempt, self.max_wait))
        raise AssertionError("unreachable")  # the loop returns on its last attempt

    def _request(
        self,
        method: str,
        template: str,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        raw: bool = False,
    ) -> Any:
        return self._send(method, _url(template, path), _query(params), json, raw)

    async def feed_pages(
        self, user_id: str, n: int | None = None, pages: int = 3
    ) -> AsyncIterator[JSON]:
        """Up to ``pages`` pages of one browsing session, each following the last's cursor."""
        cursor = None
        for _ in range(pages):
            page = await self.feed(user_id, n=n, cursor=cursor)
            yield page
            if not page["items"]:
                return
            cursor = page["next_cursor"]

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncAgoraClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
