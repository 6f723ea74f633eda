"""The feed's own tables: each user's feed controls, their negative feedback and its candidates
(what a page showed, ``feed_impressions``, is a fact others read too: :mod:`agora.db.tables`).

* ``feed_settings``: one row per user who changed a control (diversity, social weight,
  freshness, exploration, followed and muted topics, muted authors); users without a row get
  the defaults. It is the one place mutes live: mute and unmute feedback change it.
* ``feed_feedback``: "not interested" in an item and "hide" an item. Rows are kept (the feed
  reads their age: suppression fades).
* ``feed_candidates``: each user's ready candidates as the refresher stored them (bytes of
  :class:`agora.feed.candidates.Candidates`; user 0 is the record everybody shares), when no
  Redis is configured. ``feed_refresh_marks`` holds the refresher's progress (the last event
  it has seen) and ``feed_refresh_wanted`` the users the online path asked it to refresh.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from agora.db.tables import Base, BigId

#: Feedback that changes the user's mutes in ``feed_settings`` (stored there, not as feedback).
MUTE_KINDS: tuple[str, ...] = ("mute_author", "mute_tag", "unmute_author", "unmute_tag")
FEEDBACK_KINDS: tuple[str, ...] = (
    "not_interested",
    "hide",
    "mute_author",
    "mute_tag",
    "unmute_author",
    "unmute_tag",
)


class FeedSettings(Base):
    __tablename__ = "feed_settings"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    diversity: Mapped[float | None] = mapped_column(Float)
    social_weight: Mapped[float | None] = mapped_column(Float)
    freshness: Mapped[float | None] = mapped_column(Float)
    exploration: Mapped[float | None] = mapped_column(Float)
    followed_tags: Mapped[list[str]] = mapped_column(default=list)
    muted_tags: Mapped[list[str]] = mapped_column(default=list)
    #: primary keys of muted users (not external ids: erasing a user leaves no trace of them)
    muted_authors: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedFeedback(Base):
    __tablename__ = "feed_feedback"
    __table_args__ = (Index("ix_feed_feedback_user_time", "user_id", "created"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tag: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedCandidates(Base):
    __tablename__ = "feed_candidates"
    # serving processes poll for the records stored since their last look
    __table_args__ = (Index("ix_feed_candidates_stored", "stored"),)

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    stored: Mapped[float] = mapped_column(Float)  # epoch seconds, when written


class FeedRefreshMark(Base):
    __tablename__ = "feed_refresh_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(4000))


class FeedRefreshWanted(Base):
    __tablename__ = "feed_refresh_wanted"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
