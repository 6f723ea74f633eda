"""Retention digest: what a user missed since their last activity that matters to them.

Replies (comments, answers) and likes on their own posts, the points and badges they earned,
and the top of their feed, preferring items posted since they were last active. The feed page
records no impression (:class:`~agora.feed.cache.NoImpressions`), so a digest never counts as
one and writes nothing in its caller's transaction.
Rendered as plain text or HTML (jinja2, autoescaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from agora.config import FeedConfig
from agora.db.tables import Event, Item, User
from agora.engagement import badge_awards, ledger
from agora.engagement.config import EngagementConfig
from agora.feed.cache import NoImpressions, uncached
from agora.feed.service import build_feed
from agora.ingest.schemas import as_utc
from agora.ingest.service import known_user_pk
from agora.serving.service import ModelStore

if TYPE_CHECKING:
    from jinja2 import Template


@dataclass
class Digest:
    user_id: str
    since: datetime
    now: datetime
    replies: list[dict[str, Any]] = field(default_factory=list)
    replies_total: int = 0
    likes_received: int = 0
    points: int = 0
    badges: list[dict[str, Any]] = field(default_factory=list)
    picks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing happened and nothing to suggest: a platform may skip sending it."""
        return not (self.replies_total or self.likes_received or self.badges or self.picks)


def last_active(session: Session, pk: int, now: datetime) -> datetime | None:
    """The user's latest event before ``now`` (None: never active)."""
    found = session.scalar(
        select(func.max(Event.timestamp)).where(Event.user_id == pk, Event.timestamp < now)
    )
    return as_utc(found)


def feed_picks(
    session: Session,
    models: ModelStore,
    user_id: str,
    n: int,
    feed: FeedConfig,
    weights: Mapping[str, float],
    now: datetime,
    since: datetime,
) -> list[dict[str, Any]]:
    """The top ``n`` of the user's feed, items posted after ``since`` first; nothing is written
    on ``session`` (no impression).

    ``session`` must hold no write lock (on SQLite: no ``BEGIN IMMEDIATE``, nothing written
    and not committed yet): the feed loads the user's state on a session of its own that may
    write and commits at once (the user's first exposure to a running experiment), and on
    SQLite that write would wait the whole busy timeout (30 s) for ``session``'s lock, then
    fail."""
    cache = uncached(NoImpressions())
    page = build_feed(session, models, user_id, 3 * n, None, feed, weights, now, cache=cache)
    missed = [i for i in page.items if i.created is not None and as_utc(i.created) > since]
    rest = [i for i in page.items if i not in missed]
    return [
        {
            "item_id": i.item_id,
            "title": i.title,
            "author_id": i.author_id,
            "tags": i.tags,
            "reason": i.reason,
            "created": i.created,
        }
        for i in (missed + rest)[:n]
    ]


def build_digest(
    session: Session,
    config: EngagementConfig,
    user_id: str,
    now: datetime,
    since: datetime | None = None,
    picks: list[dict[str, Any]] | None = None,
    n_replies: int = 10,
) -> Digest:
    """The user's digest for ``(since, now]``; ``since`` defaults to their last activity (or
    their sign-up when they never were active). ``picks`` come from :func:`feed_picks`."""
    pk = known_user_pk(session, user_id)
    if since is None:
        created = as_utc(session.scalar(select(User.created).where(User.id == pk)))
        since = last_active(session, pk, now) or created or now
    since = as_utc(since)
    assert since is not None
    replier = aliased(User)
    on_mine = (
        select(Event.type, replier.external_id, Item.external_id, Item.title, Event.timestamp)
        .join(Item, Item.id == Event.item_id)
        .join(replier, replier.id == Event.user_id)
        .where(
            Item.author_id == pk,
            Event.user_id != pk,
            Event.timestamp > since,
            Event.timestamp <= now,
        )
    )
    replies = session.execute(
        on_mine.where(Event.type.in_(config.reply_events))
        .order_by(Event.timestamp.desc(), Event.id.desc())
        .limit(n_replies)
    ).all()
    replies_total = session.scalar(
        select(func.count()).select_from(
            on_mine.where(Event.type.in_(config.reply_events)).subquery()
        )
    )
    likes = session.scalar(
        select(func.count()).select_from(
            on_mine.where(Event.type.in_(config.like_events)).subquery()
        )
    )
    return Digest(
        user_id=user_id,
        since=since,
        now=now,
        replies=[
            {"type": t, "by": who, "item_id": item, "title": title, "when": as_utc(when)}
            for t, who, item, title, when in replies
        ],
        replies_total=int(replies_total or 0),
        likes_received=int(likes or 0),
        points=ledger.points_since(session, pk, since),
        badges=badge_awards.awards_since(session, config, pk, since),
        picks=picks or [],
    )


_TEXT = """\
Your digest since {{ d.since.strftime('%Y-%m-%d %H:%M') }} UTC
{% if d.empty %}
Nothing new for you this time.
{% endif %}
{%- if d.replies_total %}
Replies to your posts ({{ d.replies_total }}):
{% for r in d.replies %}  - {{ r.by }} {{ verbs.get(r.type, r.type) }} on \
"{{ r.title or r.item_id }}" ({{ r.when.strftime('%Y-%m-%d') }})
{% endfor %}{% endif %}
{%- if d.likes_received %}
Your posts got {{ d.likes_received }} like{{ 's' if d.likes_received != 1 }}.
{% endif %}
{%- if d.points %}
Points: {{ '%+d' % d.points }}
{% endif %}
{%- if d.badges %}
Badges earned:
{% for b in d.badges %}  - {{ b.title }}{% if b.item_title %} for "{{ b.item_title }}"{% endif %}
{% endfor %}{% endif %}
{%- if d.picks %}
Picked for you:
{% for p in d.picks %}  - {{ p.title or p.item_id }}: {{ p.reason }}
{% endfor %}{% endif %}"""

_HTML = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your digest</title></head>
<body>
<h1>Your digest since {{ d.since.strftime('%Y-%m-%d %H:%M') }} UTC</h1>
{% if d.empty %}<p>Nothing new for you this time.</p>{% endif %}
{% if d.replies_total %}<h2>Replies to your posts ({{ d.replies_total }})</h2>
<ul>{% for r in d.replies %}
<li>{{ r.by }} {{ verbs.get(r.type, r.type) }} on <q>{{ r.title or r.item_id }}</q>
 <small>{{ r.when.strftime('%Y-%m-%d') }}</small></li>{% endfor %}
</ul>{% endif %}
{% if d.likes_received %}<p>Your posts got {{ d.likes_received }} like\
{{ 's' if d.likes_received != 1 }}.</p>{% endif %}
{% if d.points %}<p>Points: <strong>{{ '%+d' % d.points }}</strong></p>{% endif %}
{% if d.badges %}<h2>Badges earned</h2>
<ul>{% for b in d.badges %}
<li>{{ b.title }}{% if b.item_title %} for <q>{{ b.item_title }}</q>{% endif %}</li>{% endfor %}
</ul>{% endif %}
{% if d.picks %}<h2>Picked for you</h2>
<ul>{% for p in d.picks %}
<li><strong>{{ p.title or p.item_id }}</strong>: {{ p.reason }}</li>{% endfor %}
</ul>{% endif %}
</body></html>
"""

VERBS = {"comment": "commented", "answer": "answered"}


@lru_cache(maxsize=2)
def _template(fmt: str) -> Template:
    """The compiled template of ``fmt`` (``text`` or ``html``); jinja2 is imported on the first
    render, not by every command and server start that imports the engagement package."""
    from jinja2 import Environment

    if fmt == "html":
        return Environment(autoescape=True).from_string(_HTML)
    return Environment(autoescape=False, keep_trailing_newline=True).from_string(_TEXT)


def render(digest: Digest, fmt: str = "text") -> str:
    """The digest as plain text (``text``) or an HTML page (``html``)."""
    if fmt == "html":
        return _template("html").render(d=digest, verbs=VERBS)
    if fmt == "text":
        return _template("text").render(d=digest, verbs=VERBS)
    raise ValueError(f"format must be 'text' or 'html', not {fmt!r}")
