"""The floors of Agora's serving stack for bench/stack_floor.py: FastAPI on uvicorn doing the
smallest pieces of work a route of Agora's does, each on its own path.

    uvicorn _floor_app:app --app-dir bench   (as stack_floor.py starts it, FLOOR_DATABASE_URL set)

* ``GET /async``: a constant answer from an ``async`` route (no thread);
* ``GET /sync``: the same from a plain ``def`` route (FastAPI's thread pool);
* ``GET /core``: a ``def`` route reading one user's primary key by external id with a
  SQLAlchemy Core statement built once, on a pooled connection;
* ``GET /orm``: a ``def`` route with an ORM session reading the user and their row by primary
  key, the two statements of Agora's simplest read routes;
* ``POST /write``: a ``def`` route inserting one row in a transaction of its own and
  committing it, what acknowledging one event needs at the least.

The store is the bench community of bench/serve_load.py (``FLOOR_DATABASE_URL``), on Agora's
own engine settings (:func:`agora.db.engine.make_engine`); ``/write`` writes to a table of its
own, ``floor_writes``, which stack_floor.py drops afterwards.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select
from sqlalchemy.orm import sessionmaker

from agora.db.engine import make_engine
from agora.db.tables import User

engine = make_engine(os.environ["FLOOR_DATABASE_URL"])
sessions = sessionmaker(engine)
WRITES = Table(
    "floor_writes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("note", String(40), nullable=False),
)
WRITES.create(engine, checkfirst=True)
USER = os.environ.get("FLOOR_USER", "u5")
USER_PK = select(User.__table__.c.id).where(User.__table__.c.external_id == bindparam("user_id"))
INSERT = WRITES.insert()

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    """Up (bench/serve_load.py's ``start`` waits for it)."""
    return {"status": "ok"}


@app.get("/async")
async def constant_async() -> dict[str, bool]:
    return {"ok": True}


@app.get("/sync")
def constant_sync() -> dict[str, bool]:
    return {"ok": True}


@app.get("/core")
def core_read() -> dict[str, int | None]:
    with engine.connect() as conn:
        return {"pk": conn.execute(USER_PK, {"user_id": USER}).scalar()}


@app.get("/orm")
def orm_read() -> dict[str, int | None]:
    with sessions() as session:
        pk = session.scalar(select(User.id).where(User.external_id == USER))
        user = session.get(User, pk) if pk is not None else None
        return {"pk": user.id if user is not None else None}


@app.post("/write", status_code=201)
def write_one() -> dict[str, int]:
    with sessions.begin() as session:
        session.execute(INSERT, {"note": "floor"})
    return {"accepted": 1}
