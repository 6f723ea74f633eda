"""Where ready candidates live between the refresher and the online path.

:class:`RedisCandidates` when ``AGORA_REDIS_URL`` is set (several API nodes and ``agora worker``
nodes share it), :class:`TableCandidates` otherwise (the ``feed_candidates`` table of the
store: nothing else to run). Both hold one record per user (bytes of
:class:`~agora.feed.candidates.Candidates`) with the time it was stored (serving processes
poll :meth:`CandidateStore.stored_since` for the records written since their last look), the
refresher's marks (how far it has read the
event log, which model versions it last refreshed everybody for) and the set of users the online
path wants refreshed. :func:`candidate_store` picks one.

Users can be split between several refreshers (:class:`Shard`, ``agora worker --shard``): each
keeps its own marks and takes only its own wanted users.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session, sessionmaker

from agora.db.engine import insert_for, transaction
from agora.db.tables import User
from agora.feed.candidates import EVERYONE, Candidates
from agora.feed.models import FeedCandidates, FeedRefreshMark, FeedRefreshWanted

PREFIX = "agora:feed:"


@dataclass(frozen=True)
class Shard:
    """The users one refresher keeps: those whose pk modulo ``count`` is ``index`` (one
    ``agora worker --shard`` process or node each). The single refresher is ``Shard(0, 1)``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index} of {self.count}: shards are 0 to {self.count - 1}"
            )

    def owns(self, user_pk: int) -> bool:
        return user_pk % self.count == self.index

    def mark(self, name: str) -> str:
        """The name of one of this shard's marks (the single refresher's are unsuffixed)."""
        return name if self.count == 1 else f"{name}@{self.index}/{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


#: The shard of a refresher that keeps every user (the default: one refresher per store).
EVERY_USER = Shard()


class CandidateStore(Protocol):
    """What the refresher writes and the online path reads."""

    def get(self, user_pk: int) -> Candidates | None: ...

    def get_many(self, user_pks: list[int]) -> dict[int, Candidates]:
        """The records of those of ``user_pks`` who have one, in one read."""
        ...

    def put(self, records: Iterable[Candidates]) -> None: ...

    def drop(self, user_pks: Iterable[int]) -> None: ...

    def stored_since(self, after: float) -> list[tuple[int, float]]:
        """(user pk, when stored) of the records stored after ``after`` (epoch seconds), oldest
        first, at most :data:`MAX_CHANGES`."""
        ...

    def mark(self, name: str) -> str | None: ...

    def set_mark(self, name: str, value: str) -> None: ...

    def want(self, user_pk: int) -> None: ...

    def take_wanted(self, limit: int, shard: Shard = EVERY_USER) -> list[int]:
        """Up to ``limit`` wanted users of ``shard``, no longer wanted once taken."""
        ...


#: How long a dropped user's records are refused (far longer than a refresher's chunk takes).
GONE_SECONDS = 3600
#: The most changes one :meth:`CandidateStore.stored_since` call returns.
MAX_CHANGES = 50_000
#: KEYS: (record key, its user's "gone" key) pairs, then the sorted set of store times; ARGV:
#: (record, user pk) pairs, then the store time.
_PUT_UNLESS_GONE = """
local stored = KEYS[#KEYS]
local at = ARGV[#ARGV]
for i = 1, (#KEYS - 1) / 2 do
  if redis.call('EXISTS', KEYS[2 * i]) == 0 then
    redis.call('SET', KEYS[2 * i - 1], ARGV[2 * i - 1])
    redis.call('ZADD', stored, at, ARGV[2 * i])
  end
end
"""


class RedisCandidates:
    """Records as Redis strings (``agora:feed:cand:<user pk>``) with their store times in a
    sorted set, marks as strings, wanted users as a set per shard (``shards``: how many
    refreshers split the users). A record is about 12 bytes per candidate (a few KB per
    user)."""

    def __init__(self, redis_url: str, namespace: str, shards: int = 1):
        import redis

        self.redis = redis.Redis.from_url(redis_url, socket_timeout=2.0)
        self.prefix = f"{PREFIX}{namespace}:"
        self.shards = shards
        self._put = self.redis.register_script(_PUT_UNLESS_GONE)

    def get(self, user_pk: int) -> Candidates | None:
        raw = self.redis.get(f"{self.prefix}cand:{user_pk}")
        return Candidates.from_bytes(raw) if raw is not None else None

    def get_many(self, user_pks: list[int]) -> dict[int, Candidates]:
        if not user_pks:
            return {}
        raws = self.redis.mget([f"{self.prefix}cand:{pk}" for pk in user_pks])
        return {
            pk: Candidates.from_bytes(raw)
            for pk, raw in zip(user_pks, raws, strict=True)
            if raw is not None
        }

    def put(self, records: Iterable[Candidates]) -> None:
        """Store ``records``, except those of users dropped lately (a refresher that read an
        erased user just before the erasure must not bring their record back)."""
        keys: list[str] = []
        args: list[bytes | int | float] = []
        for record in records:
            keys += [f"{self.prefix}cand:{record.user_pk}", f"{self.prefix}gone:{record.user_pk}"]
            args += [record.to_bytes(), record.user_pk]
        if keys:
            self._put(keys=[*keys, f"{self.prefix}stored"], args=[*args, time.time()])

    def drop(self, user_pks: Iterable[int]) -> None:
        """Remove the users' records, and refuse new ones for a while (:data:`GONE_SECONDS`)."""
        pks = list(user_pks)
        if pks:
            pipe = self.redis.pipeline(transaction=True)
            for pk in pks:
                pipe.set(f"{self.prefix}gone:{pk}", 1, ex=GONE_SECONDS)
            pipe.delete(*[f"{self.prefix}cand:{pk}" for pk in pks])
            pipe.zrem(f"{self.prefix}stored", *pks)
            pipe.execute()

    def stored_since(self, after: float) -> list[tuple[int, float]]:
        rows = self.redis.zrangebyscore(
            f"{self.prefix}stored", f"({after!r}", "+inf", start=0, num=MAX_CHANGES, withscores=True
        )
        return [(int(pk), float(at)) for pk, at in rows]

    def mark(self, name: str) -> str | None:
        raw = self.redis.get(f"{self.prefix}mark:{name}")
        return raw.decode() if raw is not None else None

    def set_mark(self, name: str, value: str) -> None:
        self.redis.set(f"{self.prefix}mark:{name}", value)

    def _wanted(self, shard: Shard) -> str:
        return f"{self.prefix}wanted" if shard.count == 1 else f"{self.prefix}wanted:{shard}"

    def want(self, user_pk: int) -> None:
        self.redis.sadd(self._wanted(Shard(user_pk % self.shards, self.shards)), user_pk)

    def take_wanted(self, limit: int, shard: Shard = EVERY_USER) -> list[int]:
        return [int(pk) for pk in self.redis.spop(self._wanted(shard), limit) or []]


_PAYLOAD = select(FeedCandidates.payload).where(FeedCandidates.user_id == bindparam("pk"))
_PAYLOADS = select(FeedCandidates.user_id, FeedCandidates.payload).where(
    FeedCandidates.user_id.in_(bindparam("pks", expanding=True))
)
_STORED_SINCE = (
    select(FeedCandidates.user_id, FeedCandidates.stored)
    .where(FeedCandidates.stored > bindparam("after"))
    .order_by(FeedCandidates.stored)
    .limit(MAX_CHANGES)
)


class TableCandidates:
    """Records in the store's ``feed_candidates`` table (one primary-key read per record)."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def get(self, user_pk: int) -> Candidates | None:
        with self.sessions() as session:
            raw = session.connection().execute(_PAYLOAD, {"pk": user_pk}).scalar()
        return Candidates.from_bytes(raw) if raw is not None else None

    def get_many(self, user_pks: list[int]) -> dict[int, Candidates]:
        if not user_pks:
            return {}
        with self.sessions() as session:
            rows = session.connection().execute(_PAYLOADS, {"pks": user_pks}).all()
        return {int(pk): Candidates.from_bytes(raw) for pk, raw in rows}

    def put(self, records: Iterable[Candidates]) -> None:
        """Store ``records``, but only for users still in the store: their rows are held
        shared meanwhile, so an erasure (which locks the row first) either comes after and
        removes the record, or came before and the record is not stored."""
        records = sorted(records, key=lambda r: r.user_pk)  # one lock order for every writer
        if not records:
            return
        with transaction(self.sessions, writes=True) as session:
            people = [r.user_pk for r in records if r.user_pk != EVERYONE]
            present = set(
                session.scalars(
                    select(User.id).where(User.id.in_(people)).with_for_update(read=True)
                )
            ) if people else set()  # fmt: skip
            now = time.time()
            rows = [
                {"user_id": r.user_pk, "payload": r.to_bytes(), "stored": now}
                for r in records
                if r.user_pk == EVERYONE or r.user_pk in present
            ]
            if not rows:
                return
            stmt = insert_for(session, FeedCandidates.__table__)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["user_id"],
                    set_={"payload": stmt.excluded.payload, "stored": stmt.excluded.stored},
                ),
                rows,
            )

    def drop(self, user_pks: Iterable[int]) -> None:
        pks = list(user_pks)
        if pks:
            with transaction(self.sessions) as session:
                session.execute(delete(FeedCandidates).where(FeedCandidates.user_id.in_(pks)))

    def stored_since(self, after: float) -> list[tuple[int, float]]:
        with self.sessions() as session:
            rows = session.connection().execute(_STORED_SINCE, {"after": after}).all()
        return [(int(pk), float(at)) for pk, at in rows]

    def mark(self, name: str) -> str | None:
        with self.sessions() as session:
            return session.scalar(select(FeedRefreshMark.value).where(FeedRefreshMark.name == name))

    def set_mark(self, name: str, value: str) -> None:
        with transaction(self.sessions) as session:
            stmt = insert_for(session, FeedRefreshMark.__table__)
            session.execute(
                stmt.values(name=name, value=value).on_conflict_do_update(
                    index_elements=["name"], set_={"value": value}
                )
            )

    def want(self, user_pk: int) -> None:
        with transaction(self.sessions) as session:
            stmt = insert_for(session, FeedRefreshWanted.__table__)
            session.execute(stmt.values(user_id=user_pk).on_conflict_do_nothing())

    def take_wanted(self, limit: int, shard: Shard = EVERY_USER) -> list[int]:
        mine = FeedRefreshWanted.user_id % shard.count == shard.index
        with transaction(self.sessions) as session:
            pks = list(session.scalars(select(FeedRefreshWanted.user_id).where(mine).limit(limit)))
            if pks:
                session.execute(delete(FeedRefreshWanted).where(FeedRefreshWanted.user_id.in_(pks)))
        return pks


def candidate_store(
    redis_url: str | None, sessions: sessionmaker[Session], shards: int = 1
) -> CandidateStore:
    """Redis when configured (keys named after the database, so stores sharing one Redis stay
    apart), else the store's own table; ``shards`` refreshers split the users."""
    if redis_url:
        return RedisCandidates(redis_url, namespace(sessions), shards)
    return TableCandidates(sessions)


def namespace(sessions: sessionmaker[Session]) -> str:
    """A short name for the database ``sessions`` reach (Redis keys of different stores)."""
    url = sessions.kw["bind"].url.render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:12]
