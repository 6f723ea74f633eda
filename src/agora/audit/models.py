"""The audit log's table.

``admin_audit``: one row per request that used the ``admin`` scope with a method other than
GET/HEAD/OPTIONS, written once its answer's status is known. It holds the time, the API key's
fingerprint (never the key), the method, the route template (``/users/{user_id}``), the path
parameters the operator named (the path ids; for an erasure, :data:`agora.audit.service.ERASURES`,
the names only), the status and the request id. Never the body or the query string.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from agora.db.pseudonyms import SealedValues
from agora.db.tables import Base, BigId, StoredTime


class AdminAudit(Base):
    __tablename__ = "admin_audit"
    __table_args__ = (
        Index("ix_admin_audit_at", "at"),
        Index("ix_admin_audit_key_id", "key_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(StoredTime())
    key_id: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(255))
    path_params: Mapped[dict[str, Any]] = mapped_column(SealedValues(), default=dict)
    status: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(128))
