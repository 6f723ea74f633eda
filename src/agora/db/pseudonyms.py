"""Pseudonymous user ids: with ``AGORA_PSEUDONYMIZE_IDS=1`` the store and the model artefacts
hold no platform user id in the clear, and the API still takes and gives the platform's ids.

A stored id is its **pseudonym** (HMAC-SHA256 of the id under a key derived from
``AGORA_ID_SECRET``, first 16 bytes) followed by the id encrypted with AES-256-CTR under that
pseudonym as the counter block: the SIV construction (RFC 5297 with S2V replaced by HMAC). The
same id always seals to the same text, so lookups, joins, uniqueness and ``IN (...)`` work in
SQL on sealed values; without the secret the text shows neither the id nor which ids are alike
beyond equality; with it the engine opens ids for its answers and checks each one's pseudonym.

:class:`SealedUserId` is the column type of ``users.external_id``; :class:`SealedJSON` seals
whole JSON values (randomised AES-256-GCM) where ids sit inside documents (stored analytics,
private releases); :class:`SealedValues` seals each value of a flat JSON object
deterministically (the admin audit's path parameters, which an erasure finds by value). They
read the :class:`IdSealer` an engine carries (``engine.dialect.agora_ids``, set by
:func:`agora.db.engine.make_engine`): the same code runs on plain and on sealed stores.

The store records which secret sealed it (:func:`check_store`): an engine started with
another secret, or without one on a sealed store, refuses to serve instead of taking every
user for a new one. ``agora users rekey`` seals a plain store, opens a sealed one, or moves it
to a new secret (:mod:`agora.privacy.rekey`).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from functools import lru_cache
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import JSON, Dialect, Engine, String, TypeDecorator, text
from sqlalchemy.orm import Session

TAG_BYTES = 16
#: Ids whose sealed and opened forms a sealer keeps in memory (each way).
CACHED = 200_000
PLAIN = "plain"
#: Where a store records how its user ids are kept (``store_meta``, migration 0014).
IDS_KEY = "user_ids"


class WrongSecret(RuntimeError):
    """The store (or an artefact) was sealed under another secret, or is sealed and no secret
    was given, or is plain and a secret was given: serving would mistake every user."""


class IdSealer:
    """Seals and opens user ids under one secret (see the module docstring)."""

    def __init__(self, secret: str):
        if len(secret) < 16:
            raise ValueError("AGORA_ID_SECRET must be at least 16 characters")
        keys = HKDF(
            algorithm=hashes.SHA256(), length=96, salt=b"agora-ids", info=b"user ids v1"
        ).derive(secret.encode())
        self._mac_key, self._ctr_key, self._json_key = keys[:32], keys[32:64], keys[64:]
        self.fingerprint = "sealed:" + self.pseudonym("agora id check")[:16]
        # the same members come back all the time (a batch's users, a page's ties): each id is
        # sealed and opened once per CACHED ids, not per row (about 6 us each otherwise)
        self.seal = lru_cache(maxsize=CACHED)(self._seal)  # type: ignore[method-assign]
        self.open = lru_cache(maxsize=CACHED)(self._open)  # type: ignore[method-assign]

    def pseudonym(self, user_id: str) -> str:
        """The id's keyed hash (hex): the same for the same id under the same secret."""
        return self._tag(user_id.encode()).hex()

    def seal(self, user_id: str) -> str:
        """The stored text of ``user_id`` (deterministic)."""
        return self._seal(user_id)

    def open(self, sealed: str) -> str:
        """The id a :meth:`seal` text holds; ValueError when the secret did not seal it."""
        return self._open(sealed)

    def _seal(self, user_id: str) -> str:
        raw = user_id.encode()
        tag = self._tag(raw)
        return base64.urlsafe_b64encode(tag + self._ctr(tag, raw)).decode().rstrip("=")

    def _open(self, sealed: str) -> str:
        try:
            blob = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        except ValueError as exc:
            raise ValueError("not a sealed user id") from exc
        tag, body = blob[:TAG_BYTES], blob[TAG_BYTES:]
        raw = self._ctr(tag, body)
        if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, self._tag(raw)):
            raise ValueError("a sealed user id that this secret did not seal")
        return raw.decode()

    def seal_json(self, value: Any) -> str:
        nonce = os.urandom(12)
        body = AESGCM(self._json_key).encrypt(nonce, json.dumps(value).encode(), b"agora")
        return base64.b64encode(nonce + body).decode()

    def open_json(self, sealed: str) -> Any:
        blob = base64.b64decode(sealed)
        return json.loads(AESGCM(self._json_key).decrypt(blob[:12], blob[12:], b"agora"))

    def _tag(self, raw: bytes) -> bytes:
        return hmac.new(self._mac_key, raw, sha256).digest()[:TAG_BYTES]

    def _ctr(self, tag: bytes, data: bytes) -> bytes:
        cipher = Cipher(algorithms.AES(self._ctr_key), modes.CTR(tag)).encryptor()
        return cipher.update(data) + cipher.finalize()


def sealer_of(dialect: Dialect) -> IdSealer | None:
    """The sealer an engine's dialect carries (None: ids are stored as given)."""
    return getattr(dialect, "agora_ids", None)


def sealer_for_session(session: Session) -> IdSealer | None:
    return sealer_of(session.get_bind().dialect)


class SealedUserId(TypeDecorator[str]):
    """A platform user id, sealed when the engine carries a sealer (:func:`sealer_of`)."""

    impl = String(2048)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        # SQLite keeps any length; its column stays as created (see migration 0014)
        return dialect.type_descriptor(String(255) if dialect.name == "sqlite" else String(2048))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        sealer = sealer_of(dialect)
        return sealer.seal(value) if sealer is not None and value is not None else value

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        sealer = sealer_of(dialect)
        return sealer.open(value) if sealer is not None and value is not None else value


class SealedJSON(TypeDecorator[Any]):
    """A JSON value, stored as ``{"sealed": <AES-GCM text>}`` when the engine carries a sealer."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        sealer = sealer_of(dialect)
        return (
            {"sealed": sealer.seal_json(value)}
            if sealer is not None and value is not None
            else value
        )

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        sealer = sealer_of(dialect)
        if sealer is not None and isinstance(value, dict) and set(value) == {"sealed"}:
            return sealer.open_json(value["sealed"])
        return value


class SealedValues(TypeDecorator[dict[str, Any]]):
    """A flat JSON object whose string values are sealed like user ids (deterministic: a
    value can be found in SQL by its sealed form, :func:`sealed_text`)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        sealer = sealer_of(dialect)
        if sealer is None or not isinstance(value, dict):
            return value
        return {k: sealer.seal(v) if isinstance(v, str) else v for k, v in value.items()}

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        sealer = sealer_of(dialect)
        if sealer is None or not isinstance(value, dict):
            return value
        return {k: sealer.open(v) if isinstance(v, str) else v for k, v in value.items()}


def sealed_text(session: Session, value: str) -> str:
    """``value`` as :class:`SealedUserId` and :class:`SealedValues` store it on this session's
    engine (for searches SQL makes inside stored text)."""
    sealer = sealer_for_session(session)
    return sealer.seal(value) if sealer is not None else value


def store_ids(engine: Engine) -> str | None:
    """How the store says its user ids are kept: ``plain``, ``sealed:<fingerprint>``, or None
    (never recorded: a store from before migration 0014 or never started)."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT value FROM store_meta WHERE name = :name"), {"name": IDS_KEY}
        ).scalar()


def check_store(engine: Engine) -> None:
    """Refuse a store sealed otherwise than the engine would read it (:class:`WrongSecret`).
    A store that never recorded how (one from before migration 0014) holds plain ids; one
    that holds no user yet takes the engine's way."""
    sealer = sealer_of(engine.dialect)
    wanted = sealer.fingerprint if sealer is not None else PLAIN
    recorded = store_ids(engine)
    found = recorded or PLAIN
    if found != wanted:
        with engine.connect() as conn:
            empty = not conn.execute(text("SELECT count(*) FROM users")).scalar()
        if not empty:
            if found == PLAIN:
                raise WrongSecret(
                    "the store holds plain user ids and AGORA_PSEUDONYMIZE_IDS=1 is set: seal "
                    "them first with `agora users rekey` (see docs/privacy.md)"
                )
            if sealer is None:
                raise WrongSecret(
                    "the store's user ids are sealed: set AGORA_PSEUDONYMIZE_IDS=1 and the "
                    "AGORA_ID_SECRET that sealed them"
                )
            raise WrongSecret("AGORA_ID_SECRET is not the secret that sealed this store's user ids")
    if recorded != wanted:
        with engine.begin() as conn:
            set_store_ids(conn, wanted)


def set_store_ids(conn: Any, value: str) -> None:
    """Record how the store keeps its user ids (inside the caller's transaction; an upsert
    SQLite and PostgreSQL both take, so workers starting together do not collide)."""
    conn.execute(
        text(
            "INSERT INTO store_meta (name, value) VALUES (:name, :value) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ),
        {"name": IDS_KEY, "value": value},
    )
