"""The serving stack's ceiling for bench/serve_load.py: FastAPI on uvicorn doing no work.

    uvicorn _ceiling_app:app --app-dir bench --workers N   (as serve_load.py starts it)

``GET /health`` says it is up; ``GET /users/{user_id}/feed`` answers a fixed, prebuilt feed
page (the JSON file named by ``SERVE_LOAD_PAGE``: a real page the bench fetched from ``agora
serve``) and ``POST /events`` reads its body and answers a fixed acknowledgement, both behind
the same kind of bearer-key check as Agora's routes (``AGORA_API_KEY``, compared in constant
time). Each echoes ``X-Request-ID``, as Agora does, so
the same wrk script measures it the same way. Whatever ``agora serve`` needs beyond this, on the
same uvicorn settings and the same load, is Agora's cost.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

KEY = os.environ.get("AGORA_API_KEY", "").encode()
PAGE = Path(os.environ["SERVE_LOAD_PAGE"]).read_bytes()
ACCEPTED = b'{"accepted":1,"duplicates":0}'

app = FastAPI()
bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def _check(credentials: HTTPAuthorizationCredentials | None) -> None:
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), KEY):
        raise HTTPException(401, "missing or unknown API key")


def _echo(request: Request) -> dict[str, str]:
    rid = request.headers.get("x-request-id")
    return {"x-request-id": rid} if rid else {}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/users/{user_id}/feed")
def feed(user_id: str, request: Request, credentials: Credentials) -> Response:
    _check(credentials)
    return Response(PAGE, media_type="application/json", headers=_echo(request))


@app.post("/events")
async def events(request: Request, credentials: Credentials) -> Response:
    _check(credentials)
    await request.body()
    return Response(ACCEPTED, 201, media_type="application/json", headers=_echo(request))
