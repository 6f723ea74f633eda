"""Engagement rules an operator can change: points, daily caps, badges, trust levels.

``EngagementConfig`` is the ``engagement`` field of :class:`agora.config.Settings`
(``AGORA_ENGAGEMENT`` as JSON), read by :func:`engagement_config`. Changing the rules changes
:func:`EngagementConfig.fingerprint`; the next read replays the ledger under the new rules
(``agora engagement replay`` does it at once).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agora.config import Settings

Recipient = Literal["actor", "author"]
RuleName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointRule(_Rule):
    """Every event of type ``event`` gives ``points`` to its actor or to the item's author."""

    name: RuleName
    event: str = Field(min_length=1, max_length=32, description="Event type the rule matches.")
    to: Recipient = Field(description="actor: who did it; author: the author of the item.")
    points: int = Field(ge=-10_000, le=10_000)
    daily_cap: int | None = Field(
        None, ge=1, description="Most points (in absolute value) one user gets from it a UTC day."
    )
    include_self: bool = Field(
        False, description="Author rules: count events by the author on their own item."
    )

    @model_validator(mode="after")
    def _nonzero(self) -> PointRule:
        if self.points == 0:
            raise ValueError(f"rule {self.name!r}: points must not be 0")
        return self


class Condition(_Rule):
    """A test on one item attribute (``items.attributes[attribute] op value``)."""

    attribute: str = Field(min_length=1, max_length=64)
    op: Literal["ge", "le", "eq"] = "ge"
    value: int | float | bool | str


class BadgeRule(_Rule):
    """A badge, earned when a count reaches ``threshold`` (or an item meets ``conditions``).

    * ``post_events``: events of type ``event`` by other users on one item, for its author
      (e.g. 10 likes on a post); awarded per item.
    * ``count``: the user's own events of type ``event`` (``who=actor``) or those others made on
      the user's items (``who=author``); awarded once.
    * ``streak``: consecutive UTC days with at least one event; awarded once.
    * ``post_attribute``: an item of the user (of ``post_type``, when given) whose attributes meet
      every condition (e.g. a Stack Exchange score >= 10); per item or once (``per_post``).
    """

    name: RuleName
    title: str = Field(min_length=1, max_length=80)
    description: str = ""
    level: Literal["bronze", "silver", "gold"] = "bronze"
    kind: Literal["post_events", "count", "streak", "post_attribute"]
    event: str | None = Field(None, max_length=32)
    who: Recipient = "actor"
    threshold: int = Field(1, ge=1)
    noun: str | None = Field(None, description='What is counted, plural: "likes".')
    post_type: str | None = None
    conditions: tuple[Condition, ...] = ()
    per_post: bool = False

    @model_validator(mode="after")
    def _complete(self) -> BadgeRule:
        if self.kind in ("post_events", "count") and not self.event:
            raise ValueError(f"badge {self.name!r}: kind {self.kind!r} needs an event type")
        if self.kind == "post_attribute" and not self.conditions:
            raise ValueError(f"badge {self.name!r}: kind 'post_attribute' needs conditions")
        return self

    @property
    def each_post(self) -> bool:
        """Awarded once per item (post badges) rather than once per user."""
        return self.per_post or self.kind == "post_events"

    @property
    def counted(self) -> str:
        """The plural noun progress sentences use."""
        if self.noun:
            return self.noun
        if self.kind == "streak":
            return "consecutive days"
        return NOUNS.get(self.event or "", f"{self.event} events")


NOUNS = {
    "like": "likes",
    "answer": "answers",
    "ask": "questions",
    "comment": "comments",
    "accept": "accepted answers",
    "bookmark": "bookmarks",
    "share": "shares",
    "view": "views",
}


class TrustRequirements(_Rule):
    """What a level asks for; ``None`` = not required. Counts are over the user's whole history
    except upheld flags, counted over the last ``flag_window_days``."""

    days_visited: int | None = Field(None, ge=0, description="UTC days with any event.")
    posts_read: int | None = Field(None, ge=0, description="Distinct items with a read event.")
    topics_entered: int | None = Field(None, ge=0, description="Distinct items with any event.")
    likes_given: int | None = Field(None, ge=0)
    likes_received: int | None = Field(None, ge=0)
    replies: int | None = Field(None, ge=0, description="Reply events (comments, answers).")
    points: int | None = None
    max_upheld_flags: int | None = Field(None, ge=0, description="Upheld flags allowed, recent.")


class TrustLevel(_Rule):
    level: int = Field(ge=1, le=4)
    name: str = Field(min_length=1, max_length=40)
    requires: TrustRequirements


def _default_points() -> list[PointRule]:
    return [
        PointRule(name="like_received", event="like", to="author", points=10, daily_cap=200),
        PointRule(name="answer_accepted", event="accept", to="author", points=15),
        PointRule(name="accepted_an_answer", event="accept", to="actor", points=2),
        PointRule(name="answer_posted", event="answer", to="actor", points=2, daily_cap=20),
        PointRule(name="question_asked", event="ask", to="actor", points=1, daily_cap=10),
        PointRule(name="comment_posted", event="comment", to="actor", points=1, daily_cap=10),
        PointRule(name="bookmark_received", event="bookmark", to="author", points=5, daily_cap=50),
        PointRule(name="share_received", event="share", to="author", points=5, daily_cap=50),
        PointRule(name="flag_upheld", event="flag_upheld", to="actor", points=-100),
    ]


def _post(name: str, title: str, level: str, likes: int) -> BadgeRule:
    return BadgeRule(
        name=name,
        title=title,
        level=level,
        kind="post_events",
        event="like",
        threshold=likes,
        description=f"A post liked {likes} times.",
    )


def _default_badges() -> list[BadgeRule]:
    return [
        _post("nice_post", "Nice Post", "bronze", 10),
        _post("good_post", "Good Post", "silver", 25),
        _post("great_post", "Great Post", "gold", 50),
        BadgeRule(name="first_question", title="First Question", kind="count", event="ask"),
        BadgeRule(name="first_answer", title="First Answer", kind="count", event="answer"),
        BadgeRule(name="first_like", title="Supporter", kind="count", event="like"),
        BadgeRule(
            name="scholar",
            title="Scholar",
            kind="count",
            event="accept",
            noun="answers accepted",
            description="Accepted an answer to your question.",
        ),
        BadgeRule(
            name="teacher",
            title="Teacher",
            kind="count",
            event="accept",
            who="author",
            description="One of your answers was accepted.",
        ),
        BadgeRule(
            name="commentator", title="Commentator", kind="count", event="comment", threshold=10
        ),
        BadgeRule(
            name="answerer",
            title="Answerer",
            level="silver",
            kind="count",
            event="answer",
            threshold=25,
        ),
        BadgeRule(name="regular", title="Regular", kind="streak", threshold=7),
        BadgeRule(
            name="enthusiast", title="Enthusiast", level="silver", kind="streak", threshold=30
        ),
        BadgeRule(name="fanatic", title="Fanatic", level="gold", kind="streak", threshold=100),
    ]


def _default_trust() -> list[TrustLevel]:
    """Discourse's automatic levels 1-3 (absolute counts instead of its 100-day shares), and a
    level 4 earned by sustained, unflagged contribution (manual in Discourse)."""
    return [
        TrustLevel(
            level=1, name="basic", requires=TrustRequirements(topics_entered=5, posts_read=30)
        ),
        TrustLevel(
            level=2,
            name="member",
            requires=TrustRequirements(
                days_visited=15,
                topics_entered=20,
                posts_read=100,
                likes_given=1,
                likes_received=1,
                replies=3,
            ),
        ),
        TrustLevel(
            level=3,
            name="regular",
            requires=TrustRequirements(
                days_visited=50,
                topics_entered=200,
                posts_read=500,
                likes_given=30,
                likes_received=20,
                replies=10,
                max_upheld_flags=0,
            ),
        ),
        TrustLevel(
            level=4,
            name="leader",
            requires=TrustRequirements(
                days_visited=100,
                topics_entered=500,
                posts_read=1000,
                likes_given=100,
                likes_received=100,
                replies=50,
                points=1000,
                max_upheld_flags=0,
            ),
        ),
    ]


class EngagementConfig(BaseModel):
    """Points rules with daily caps, badge definitions and trust-level requirements."""

    model_config = ConfigDict(extra="forbid")

    points: list[PointRule] = Field(default_factory=_default_points)
    badges: list[BadgeRule] = Field(default_factory=_default_badges)
    trust_levels: list[TrustLevel] = Field(default_factory=_default_trust)
    read_events: tuple[str, ...] = Field(("view", "click", "dwell"), description="Reading a post.")
    reply_events: tuple[str, ...] = Field(("comment", "answer"), description="Replying.")
    like_events: tuple[str, ...] = ("like",)
    flag_event: str = Field("flag_upheld", description="Written by moderation on an upheld flag.")
    flag_window_days: float = Field(100.0, gt=0, description="How long an upheld flag counts.")
    batch_size: int = Field(5000, ge=1, le=100_000, description="Events applied per step.")

    @model_validator(mode="after")
    def _consistent(self) -> EngagementConfig:
        for kind, names in (
            ("points rule", [r.name for r in self.points]),
            ("badge", [b.name for b in self.badges]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} names must be unique; repeated: {dupes}")
        levels = [t.level for t in self.trust_levels]
        if levels != sorted(set(levels)):
            raise ValueError(f"trust levels must be distinct and ascending, got {levels}")
        return self

    def fingerprint(self) -> str:
        """A digest of everything that decides the ledger and the awards (not the batch size)."""
        data = self.model_dump_json(exclude={"batch_size"})
        return hashlib.sha256(data.encode()).hexdigest()[:32]


def _score(name: str, title: str, level: str, post_type: str, score: int) -> BadgeRule:
    return BadgeRule(
        name=name,
        title=title,
        level=level,
        kind="post_attribute",
        post_type=post_type,
        conditions=(Condition(attribute="score", value=score),),
        per_post=True,
        description=f"A {post_type} with a score of {score} or more.",
    )


def _views(name: str, title: str, level: str, views: int) -> BadgeRule:
    return BadgeRule(
        name=name,
        title=title,
        level=level,
        kind="post_attribute",
        post_type="question",
        conditions=(Condition(attribute="view_count", value=views),),
        per_post=True,
        description=f"A question with {views:,} views.",
    )


#: The Stack Exchange badges these rules can express on an imported dump (rules are frozen,
#: so one table serves every caller).
STACKEXCHANGE_BADGES: tuple[BadgeRule, ...] = (
    _score("nice_question", "Nice Question", "bronze", "question", 10),
    _score("good_question", "Good Question", "silver", "question", 25),
    _score("great_question", "Great Question", "gold", "question", 100),
    _score("nice_answer", "Nice Answer", "bronze", "answer", 10),
    _score("good_answer", "Good Answer", "silver", "answer", 25),
    _score("great_answer", "Great Answer", "gold", "answer", 100),
    _views("popular_question", "Popular Question", "bronze", 1000),
    _views("notable_question", "Notable Question", "silver", 2500),
    _views("famous_question", "Famous Question", "gold", 10000),
    BadgeRule(
        name="student",
        title="Student",
        kind="post_attribute",
        post_type="question",
        conditions=(Condition(attribute="score", value=1),),
        description="First question with a score of 1 or more.",
    ),
    BadgeRule(
        name="teacher",
        title="Teacher",
        kind="post_attribute",
        post_type="answer",
        conditions=(Condition(attribute="score", value=1),),
        description="An answer with a score of 1 or more.",
    ),
    BadgeRule(
        name="enlightened",
        title="Enlightened",
        level="silver",
        kind="post_attribute",
        post_type="answer",
        conditions=(
            Condition(attribute="accepted", op="eq", value=True),
            Condition(attribute="score", value=10),
        ),
        description="An accepted answer with a score of 10 or more.",
    ),
    BadgeRule(
        name="guru",
        title="Guru",
        level="silver",
        kind="post_attribute",
        post_type="answer",
        conditions=(
            Condition(attribute="accepted", op="eq", value=True),
            Condition(attribute="score", value=40),
        ),
        per_post=True,
        description="An accepted answer with a score of 40 or more.",
    ),
    BadgeRule(
        name="tumbleweed",
        title="Tumbleweed",
        kind="post_attribute",
        post_type="question",
        conditions=(
            Condition(attribute="score", op="eq", value=0),
            Condition(attribute="answer_count", op="eq", value=0),
            Condition(attribute="comment_count", op="eq", value=0),
            Condition(attribute="view_count", op="le", value=50),
        ),
        description="A question with no score, answers or comments and few views.",
    ),
    BadgeRule(
        name="scholar",
        title="Scholar",
        kind="count",
        event="accept",
        noun="answers accepted",
        description="Asked a question and accepted an answer.",
    ),
    BadgeRule(name="commentator", title="Commentator", kind="count", event="comment", threshold=10),
    BadgeRule(
        name="favorite_question",
        title="Favorite Question",
        level="silver",
        kind="post_events",
        event="bookmark",
        threshold=25,
    ),
    BadgeRule(
        name="stellar_question",
        title="Stellar Question",
        level="gold",
        kind="post_events",
        event="bookmark",
        threshold=100,
    ),
    BadgeRule(name="enthusiast", title="Enthusiast", level="silver", kind="streak", threshold=30),
    BadgeRule(name="fanatic", title="Fanatic", level="gold", kind="streak", threshold=100),
)


def stackexchange_badges() -> list[BadgeRule]:
    """The Stack Exchange badges these rules can express on an imported dump.

    Post scores and view counts are item attributes in an import (the dump's up and down votes
    are anonymous counts, not events), so score and view badges are ``post_attribute`` badges
    on the final score; Scholar and Commentator count events; Favorite/Stellar Question count
    bookmark events; Enthusiast/Fanatic stand in streaks of days with any event for the dump's
    missing visit days."""
    return list(STACKEXCHANGE_BADGES)


def engagement_config(settings: Settings) -> EngagementConfig:
    """The ``engagement`` section of ``settings`` (``AGORA_ENGAGEMENT``) as the domain's rules."""
    return settings.section("engagement", EngagementConfig)
