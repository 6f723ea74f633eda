"""Stack Exchange data dump importer (Posts, Users, Comments, Votes, Badges, Tags, PostLinks).

Reads the official dump XML with ``iterparse`` (each table as ``Name.xml`` or ``Name.xml.gz``) and
maps it onto Agora records:

* users: SE user id as external id; reputation, views, up/down votes and badges as attributes.
  Profile text (DisplayName, AboutMe, Location, WebsiteUrl, ProfileImageUrl) is never read into
  the dataset, nor are the display names of deleted users on posts and comments.
* items: questions and answers (PostTypeId 1 and 2), with plain-text bodies, the question's title
  and tags on its answers, and score, views, vote counts, links as attributes; the images a
  post shows (``<img src>``) as ``media.images`` (read by ``agora.media`` where allowed). Tag
  wikis and moderator nominations are skipped (counted).
* events: ``ask`` (question author, on the question), ``answer`` (answer author, on the question:
  the thread is the unit of interest; authorship of the answer item itself is its ``author_id``),
  ``comment`` (on the commented question or answer), ``accept`` (asker, on the accepted answer),
  ``bookmark`` (vote type 5, the only vote with a user). Anonymous up/down votes become counts on
  the item (``upvotes``/``downvotes``), not events.
* edges: ``interact`` from answerer to asker and from commenter to post author, weight = number
  of such interactions, created = the first one; no self-edges.

Rows pointing at posts missing from the dump (deleted before it was made) are skipped and counted
in :attr:`StackExchangeImport.stats`.
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any

from agora.ingest.errors import ImportFailed, ImportProblem
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, ItemIn, UserIn, as_utc

#: Dump tables this importer reads; Posts and Users are required, the rest optional.
TABLES = ("Posts", "Users", "Comments", "Votes", "Badges", "Tags", "PostLinks")
REQUIRED_TABLES = ("Posts", "Users")
#: User fields that are public profile text: never copied into a dataset.
PROFILE_TEXT_FIELDS = ("DisplayName", "AboutMe", "Location", "WebsiteUrl", "ProfileImageUrl")

QUESTION, ANSWER = "1", "2"
VOTE_ACCEPT, VOTE_UP, VOTE_DOWN, VOTE_BOOKMARK = "1", "2", "3", "5"
LINK_DUPLICATE = "3"
#: Optional one-line file in a dump folder giving the site's base URL (default for ``site_url``).
SITE_URL_FILE = "SITE_URL"


@dataclass
class StackExchangeImport:
    """A Stack Exchange import: the records, plus what was counted or skipped on the way."""

    dataset: Dataset
    stats: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# files


def table_path(folder: str | Path, name: str) -> Path | None:
    """The file holding table ``name`` (``Name.xml`` or ``Name.xml.gz``), or None."""
    folder = Path(folder)
    for candidate in (folder / f"{name}.xml", folder / f"{name}.xml.gz"):
        if candidate.is_file():
            return candidate
    return None


def is_stackexchange_dump(folder: str | Path) -> bool:
    """True when ``folder`` holds a Posts table."""
    return Path(folder).is_dir() and table_path(folder, "Posts") is not None


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def iter_rows(path: Path) -> Iterator[dict[str, str]]:
    """The attributes of every ``<row>`` of one dump table, read incrementally.

    A malformed file raises :class:`ImportFailed` naming the file, line and column.
    """
    with _open(path) as fh:
        try:
            context = ET.iterparse(fh, events=("start", "end"))
            root = None
            for event, elem in context:
                if event == "start":
                    if root is None:
                        root = elem
                    continue
                if elem.tag == "row":
                    yield dict(elem.attrib)
                    root.clear()  # type: ignore[union-attr]
        except (ET.ParseError, EOFError, OSError) as exc:
            line = getattr(exc, "position", (None, None))[0]
            raise ImportFailed(
                [ImportProblem(path, line, f"malformed dump XML: {exc}")], file=path
            ) from exc


# --------------------------------------------------------------------------------------------
# values


def _dt(text: str | None) -> datetime | None:
    if not text:
        return None
    return as_utc(datetime.fromisoformat(text))


def _int(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return None


_TAG_RE = re.compile(r"<([^<>]+)>")


def parse_tags(text: str | None) -> list[str]:
    """Question tags from ``<a><b>`` (classic dumps) or ``|a|b|`` (newer dumps)."""
    if not text:
        return []
    if text.startswith("<"):
        return _TAG_RE.findall(text)
    return [t for t in text.split("|") if t]


class _TextExtractor(HTMLParser):
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "ul", "ol", "pre", "blockquote", "hr", "tr", "table"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "dl", "dt", "dd"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.images: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and (src := dict(attrs).get("src")):
            self.images.append(src)
        if tag in self._BLOCK:
            self.parts.append("\n")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.pre:
            self.parts.append(data)
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str | None) -> str:
    """Plain text of an HTML fragment: tags dropped, code kept, paragraphs on their own lines."""
    return _read_html(html)[0]


def _read_html(html: str | None) -> tuple[str, list[str]]:
    """An HTML fragment's plain text (see :func:`html_to_text`) and its images' URLs."""
    if not html:
        return "", []
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip(), list(dict.fromkeys(parser.images))


# --------------------------------------------------------------------------------------------
# import


@dataclass
class _Post:
    id: str
    type: str
    owner: str | None
    created: datetime | None
    parent: str | None = None
    row: dict[str, str] = field(default_factory=dict)


@dataclass
class _Build:
    """What an import gathers while it reads the tables: the posts, the events, the user to
    user interactions (the edges) and the counts reported in ``stats``."""

    id_prefix: str
    posts: dict[str, _Post]
    stats: Counter[str]
    events: list[EventIn] = field(default_factory=list)
    interactions: Counter[tuple[str, str]] = field(default_factory=Counter)
    first_interaction: dict[tuple[str, str], datetime | None] = field(default_factory=dict)
    referenced_users: set[str] = field(default_factory=set)

    def kept(self, post_id: str | None) -> _Post | None:
        """The question or answer with this id (None for other post types and deleted posts)."""
        post = self.posts.get(post_id) if post_id else None
        return post if post is not None and post.type in (QUESTION, ANSWER) else None

    def interact(self, src: str | None, dst: str | None, when: datetime | None) -> None:
        """Count one interaction of ``src`` with ``dst``, keeping the earliest time."""
        if not src or not dst or src == dst:
            return
        key = (src, dst)
        self.interactions[key] += 1
        old = self.first_interaction.get(key)
        if key not in self.first_interaction or (when is not None and (old is None or when < old)):
            self.first_interaction[key] = when

    def event(
        self,
        event_type: str,
        id_kind: str,
        local_id: str,
        user: str,
        item: str,
        when: datetime | None,
        **context: Any,
    ) -> None:
        """Add an event whose id is ``<id_prefix>:<id_kind>:<local_id>``."""
        self.referenced_users.add(user)
        self.events.append(
            EventIn(
                event_id=f"{self.id_prefix}:{id_kind}:{local_id}",
                user_id=user,
                item_id=item,
                type=event_type,
                timestamp=when,
                context={k: v for k, v in context.items() if v is not None},
            )
        )


@dataclass
class _Votes:
    """What the Votes table says of each kept post."""

    upvotes: Counter[str] = field(default_factory=Counter)
    downvotes: Counter[str] = field(default_factory=Counter)
    bookmarks: Counter[str] = field(default_factory=Counter)
    accept_dates: dict[str, datetime | None] = field(default_factory=dict)


@dataclass
class _Links:
    """Post links: related and duplicate questions, per post."""

    linked: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    duplicates: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def load_stackexchange(
    folder: str | Path,
    *,
    site_url: str | None = None,
    language: str = "en",
    id_prefix: str = "se",
) -> StackExchangeImport:
    """Import a Stack Exchange dump folder (tables as ``.xml`` or ``.xml.gz``).

    ``site_url`` (e.g. ``https://cardano.stackexchange.com``; default: the first line of a
    ``SITE_URL`` file in the folder, if any) adds a ``url`` attribute to items and users, the
    links CC BY-SA attribution asks for. ``id_prefix`` starts every event id (``se:post:123``).
    Returns the dataset and a stats dict of counts, including skipped rows.
    """
    folder = Path(folder)
    paths = _table_paths(folder)
    stats: Counter[str] = Counter()
    notes = [f"{name}.xml not found: skipped" for name in TABLES if paths[name] is None]
    site = _site(folder, site_url)
    build = _Build(id_prefix, _read_posts(paths["Posts"], stats), stats)  # type: ignore[arg-type]
    _post_events(build)
    votes = _read_votes(build, paths["Votes"])
    _accept_events(build, votes.accept_dates)
    _comment_events(build, paths["Comments"])
    links = _read_links(build, paths["PostLinks"])
    if paths["Tags"] is not None:
        stats["tags"] = sum(1 for _ in iter_rows(paths["Tags"]))
    items = _items(build, votes, links, site, language)
    badges = _read_badges(paths["Badges"], stats)
    users = _users(build, paths["Users"], badges, site)  # type: ignore[arg-type]
    edges = _edges(build)
    stats["users"] = len(users)
    stats["items"] = len(items)
    stats["events"] = len(build.events)
    stats["edges"] = len(edges)
    for e in build.events:
        stats[f"events_{e.type}"] += 1
    dataset = Dataset(users=users, items=items, events=build.events, edges=edges)
    return StackExchangeImport(dataset=dataset, stats=dict(stats), notes=notes)


def _table_paths(folder: Path) -> dict[str, Path | None]:
    """Each table's file in the dump folder; ImportFailed without the required ones."""
    paths = {name: table_path(folder, name) for name in TABLES}
    missing = [name for name in REQUIRED_TABLES if paths[name] is None]
    if missing:
        raise ImportFailed(
            [
                ImportProblem(folder, None, f"not a Stack Exchange dump: no {name}.xml(.gz)")
                for name in missing
            ],
            file=folder,
        )
    return paths


def _site(folder: Path, site_url: str | None) -> str | None:
    """The site's URL without a trailing slash: given, or the first line of SITE_URL."""
    if site_url is None and (folder / SITE_URL_FILE).is_file():
        site_url = (folder / SITE_URL_FILE).read_text(encoding="utf-8").strip().splitlines()[0]
    return site_url.rstrip("/") if site_url else None


def _read_posts(path: Path, stats: Counter[str]) -> dict[str, _Post]:
    """Every post's type/owner/parent (comments on any post make edges); the rows of questions
    and answers only, which become items."""
    posts: dict[str, _Post] = {}
    for row in iter_rows(path):
        post = _Post(
            id=row["Id"],
            type=row.get("PostTypeId", ""),
            owner=row.get("OwnerUserId") or None,
            created=_dt(row.get("CreationDate")),
            parent=row.get("ParentId") or None,
        )
        if post.type in (QUESTION, ANSWER):
            post.row = row
        else:
            stats["posts_skipped_other_types"] += 1
        posts[post.id] = post
    return posts


def _post_events(build: _Build) -> None:
    """An ``ask`` per question and an ``answer`` per answer (on its question) with an owner."""
    stats = build.stats
    for post in build.posts.values():
        if post.type == QUESTION:
            stats["questions"] += 1
            if post.owner:
                build.event("ask", "post", post.id, post.owner, post.id, post.created)
            else:
                stats["posts_without_owner"] += 1
        elif post.type == ANSWER:
            stats["answers"] += 1
            question = build.kept(post.parent)
            if question is None:
                stats["answers_without_question"] += 1
                continue
            if post.owner:
                build.event(
                    "answer",
                    "post",
                    post.id,
                    post.owner,
                    question.id,
                    post.created,
                    answer_id=post.id,
                )
                build.interact(post.owner, question.owner, post.created)
            else:
                stats["posts_without_owner"] += 1


def _read_votes(build: _Build, path: Path | None) -> _Votes:
    """Vote counts on items, bookmarks as events, accept dates."""
    votes = _Votes()
    if path is None:
        return votes
    stats = build.stats
    for row in iter_rows(path):
        stats["votes"] += 1
        post_id = row.get("PostId")
        vote_type = row.get("VoteTypeId", "")
        if post_id not in build.posts:
            stats["votes_skipped_deleted_post"] += 1
            continue
        post = build.kept(post_id)
        if post is None:
            stats["votes_skipped_other_post_types"] += 1
            continue
        when = _dt(row.get("CreationDate"))
        if vote_type == VOTE_UP:
            votes.upvotes[post.id] += 1
        elif vote_type == VOTE_DOWN:
            votes.downvotes[post.id] += 1
        elif vote_type == VOTE_ACCEPT:
            votes.accept_dates[post.id] = when
        elif vote_type == VOTE_BOOKMARK:
            user = row.get("UserId")
            if user:
                votes.bookmarks[post.id] += 1
                build.event("bookmark", "vote", row["Id"], user, post.id, when)
            else:
                stats["bookmarks_without_user"] += 1
        else:
            stats["votes_other_types"] += 1
    return votes


def _accept_events(build: _Build, accept_dates: dict[str, datetime | None]) -> None:
    """Accepted answers: the asker accepts the answer (never before it was written)."""
    for post in build.posts.values():
        if post.type != QUESTION or not post.row.get("AcceptedAnswerId"):
            continue
        answer = build.kept(post.row["AcceptedAnswerId"])
        if answer is None:
            build.stats["accepts_skipped_missing_answer"] += 1
            continue
        if not post.owner:
            build.stats["accepts_without_asker"] += 1
            continue
        when = accept_dates.get(answer.id)
        if answer.created is not None and (when is None or when < answer.created):
            when = answer.created  # vote dates are day precision: never before the answer
        build.event("accept", "accept", post.id, post.owner, answer.id, when, question_id=post.id)


def _comment_events(build: _Build, path: Path | None) -> None:
    """Comments: events on questions and answers; edges from any comment on any post."""
    if path is None:
        return
    stats = build.stats
    for row in iter_rows(path):
        stats["comments"] += 1
        post = build.posts.get(row.get("PostId", ""))
        if post is None:
            stats["comments_skipped_deleted_post"] += 1
            continue
        user = row.get("UserId")
        when = _dt(row.get("CreationDate"))
        if not user:
            stats["comments_without_user"] += 1
            continue
        build.interact(user, post.owner, when)
        if post.type not in (QUESTION, ANSWER):
            stats["comments_on_other_post_types"] += 1
            continue
        build.event("comment", "comment", row["Id"], user, post.id, when)


def _read_links(build: _Build, path: Path | None) -> _Links:
    """Post links: related and duplicate questions, for the items' attributes."""
    links = _Links()
    if path is None:
        return links
    for row in iter_rows(path):
        build.stats["postlinks"] += 1
        src, dst = row.get("PostId"), row.get("RelatedPostId")
        if src not in build.posts or dst not in build.posts:
            build.stats["postlinks_skipped_deleted_post"] += 1
            continue
        target = links.duplicates if row.get("LinkTypeId") == LINK_DUPLICATE else links.linked
        if dst not in target[src]:  # type: ignore[index]
            target[src].append(dst)  # type: ignore[index,arg-type]
    return links


def _items(
    build: _Build, votes: _Votes, links: _Links, site: str | None, language: str
) -> list[ItemIn]:
    """An item per question and per answer whose question is kept."""
    items: list[ItemIn] = []
    for post in build.posts.values():
        if post.type not in (QUESTION, ANSWER):
            continue
        question = post if post.type == QUESTION else build.kept(post.parent)
        if question is None:
            continue
        if post.owner:
            build.referenced_users.add(post.owner)
        body, images = _read_html(post.row.get("Body"))
        items.append(
            ItemIn(
                item_id=post.id,
                author_id=post.owner,
                title=question.row.get("Title", ""),
                body=body,
                media={"images": images} if images else {},
                tags=parse_tags(question.row.get("Tags")),
                language=language,
                created=post.created,
                attributes=_item_attributes(post, question, votes, links, site),
            )
        )
    return items


def _item_attributes(
    post: _Post, question: _Post, votes: _Votes, links: _Links, site: str | None
) -> dict[str, Any]:
    """A post's score, views, votes, links and state as item attributes."""
    row = post.row
    attributes: dict[str, Any] = {
        "post_type": "question" if post.type == QUESTION else "answer",
        "score": _int(row.get("Score")) or 0,
        "view_count": _int(row.get("ViewCount")),
        "parent_id": post.parent,
        "accepted_answer_id": row.get("AcceptedAnswerId") or None,
        "closed": bool(row.get("ClosedDate")),
        "upvotes": votes.upvotes[post.id],
        "downvotes": votes.downvotes[post.id],
    }
    if post.type == QUESTION:
        attributes["answer_count"] = _int(row.get("AnswerCount")) or 0
        attributes["bookmarks"] = votes.bookmarks[post.id]
    else:
        attributes["accepted"] = question.row.get("AcceptedAnswerId") == post.id
    attributes["comment_count"] = _int(row.get("CommentCount")) or 0
    if links.linked.get(post.id):
        attributes["linked"] = links.linked[post.id]
    if links.duplicates.get(post.id):
        attributes["duplicate_of"] = links.duplicates[post.id]
    if site:
        attributes["url"] = f"{site}/{'q' if post.type == QUESTION else 'a'}/{post.id}"
    return attributes


def _read_badges(path: Path | None, stats: Counter[str]) -> defaultdict[str, list[dict[str, Any]]]:
    """Each user's badges (name, class, date, tag-based) from the Badges table."""
    badges: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    if path is None:
        return badges
    for row in iter_rows(path):
        stats["badges"] += 1
        user = row.get("UserId")
        if not user:
            stats["badges_without_user"] += 1
            continue
        badges[user].append(
            {
                "name": row.get("Name", ""),
                "class": _int(row.get("Class")),
                "date": row.get("Date"),
                "tag_based": row.get("TagBased", "").lower() == "true",
            }
        )
    return badges


def _users(
    build: _Build, path: Path, badges: dict[str, list[dict[str, Any]]], site: str | None
) -> list[UserIn]:
    """The Users table's users, then every user an event or edge names that it lacks."""
    users: list[UserIn] = []
    seen_users: set[str] = set()
    for row in iter_rows(path):
        user_id = row["Id"]
        seen_users.add(user_id)
        attributes = {
            "reputation": _int(row.get("Reputation")) or 0,
            "views": _int(row.get("Views")) or 0,
            "upvotes": _int(row.get("UpVotes")) or 0,
            "downvotes": _int(row.get("DownVotes")) or 0,
            "badges": badges.get(user_id, []),
        }
        if site:
            attributes["url"] = f"{site}/users/{user_id}"
        users.append(
            UserIn(user_id=user_id, created=_dt(row.get("CreationDate")), attributes=attributes)
        )
    build.stats["badges_skipped_unknown_user"] = sum(
        len(v) for k, v in badges.items() if k not in seen_users
    )
    build.referenced_users.update(u for pair in build.interactions for u in pair)
    for user_id in sorted(build.referenced_users - seen_users, key=_numeric_key):
        users.append(UserIn(user_id=user_id))
        build.stats["users_added_missing_from_users_table"] += 1
    return users


def _edges(build: _Build) -> list[EdgeIn]:
    """An ``interact`` edge per (user, user) pair, weighted by its count."""
    return [
        EdgeIn(
            source_id=src,
            target_id=dst,
            type="interact",
            weight=float(n),
            created=build.first_interaction.get((src, dst)),
        )
        for (src, dst), n in build.interactions.items()
    ]


def _numeric_key(value: str) -> tuple[int, str]:
    try:
        return (int(value), "")
    except ValueError:
        return (0, value)
