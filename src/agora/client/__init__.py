"""Agora from Python: over HTTP against a running server (:class:`AgoraClient`,
:class:`AsyncAgoraClient`: every REST route as a method, retries on 429/503, errors that say
where the problem is), or in-process on a store and its models, without a server
(:class:`Agora`)."""

from agora.client.errors import (
    AgoraError,
    Forbidden,
    InvalidRequest,
    NotFound,
    Problem,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)
from agora.client.http import AgoraClient, AsyncAgoraClient

__all__ = [
    "Agora",
    "AgoraClient",
    "AgoraError",
    "AsyncAgoraClient",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Problem",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "Unavailable",
]


def __getattr__(name: str) -> object:
    """:class:`Agora` is imported when first asked for: it loads the whole engine, which an HTTP
    client does not need."""
    if name == "Agora":
        from agora.client.local import Agora

        return Agora
    raise AttributeError(f"module 'agora.client' has no attribute {name!r}")
