"""Last.fm HetRec 2011 importer (hetrec2011-lastfm-2k).

* ``user_artists.dat`` (userID, artistID, weight = listening count): one ``view`` event per
  user-artist pair with ``value`` = the play count (the dataset aggregates plays: it has no single
  listening events and no times, so ``timestamp`` is empty). Event id
  ``lastfm:play:<user>:<artist>``.
* ``artists.dat``: items, the artist name as title, the Last.fm page and picture as ``media``.
* ``user_taggedartists.dat`` (+ ``user_taggedartists_2.dat``, the second half of the same file
  in some copies): per artist, the ``top_tags`` most used tag names (``tags.dat``, Latin-1) as item
  tags, all tag counts kept as ``attributes["tag_counts"]`` for those top tags. Tag assignments
  are not turned into events.
* ``user_friends.dat``: ``friend`` edges in both directions (the file already lists both; a
  missing reverse row is added).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from agora.ingest.errors import ImportFailed, ImportProblem, ProblemCollector
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, ItemIn, UserIn

REQUIRED = "user_artists.dat"


def is_lastfm_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``user_artists.dat``."""
    return (Path(folder) / REQUIRED).is_file()


def _each_row(
    path: Path, n: int, handle: Callable[[list[str]], None], encoding: str = "utf-8"
) -> None:
    """Call ``handle`` on every tab-separated data row (header and blank lines skipped).

    Rows with too few fields, or for which ``handle`` raises ValueError, are collected and
    reported together as one ImportFailed once the whole file is read.
    """
    problems = ProblemCollector(path)
    for number, parts in _lines(path, encoding):
        if len(parts) < n:
            problems.add(number, f"expected {n} tab-separated fields, found {len(parts)}")
            continue
        try:
            handle(parts)
        except ValueError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    with path.open("r", encoding=encoding, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if number > 1 and line.strip():
                yield number, [p.strip() for p in line.split("\t")]


def _id(text: str) -> str:
    if not text.isdigit():
        raise ValueError(f"expected a numeric id, got {text!r}")
    return text


def load_lastfm(folder: str | Path, *, top_tags: int = 10, event_type: str = "view") -> Dataset:
    """Import a hetrec2011-lastfm-2k folder; ``top_tags`` artist tags are kept per artist."""
    folder = Path(folder)
    plays_path = folder / REQUIRED
    if not plays_path.is_file():
        raise ImportFailed(
            [ImportProblem(folder, None, f"not a HetRec Last.fm folder: no {REQUIRED}")],
            file=folder,
        )

    tag_names: dict[str, str] = {}
    path = folder / "tags.dat"
    if path.is_file():

        def tag_name(parts: list[str]) -> None:
            tag_names[parts[0]] = parts[1]

        _each_row(path, 2, tag_name, encoding="latin-1")

    tag_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def tagging(parts: list[str]) -> None:
        tag = tag_names.get(parts[2])
        if tag:
            tag_counts[_id(parts[1])][tag] += 1

    for name in ("user_taggedartists.dat", "user_taggedartists_2.dat"):
        if (folder / name).is_file():
            _each_row(folder / name, 3, tagging)

    items: dict[str, ItemIn] = {}

    def artist(parts: list[str]) -> None:
        artist_id = _id(parts[0])
        items[artist_id] = _artist(artist_id, parts, tag_counts.get(artist_id), top_tags)

    if (folder / "artists.dat").is_file():
        _each_row(folder / "artists.dat", 2, artist)

    users: dict[str, UserIn] = {}

    def user(uid: str) -> str:
        if uid not in users:
            users[uid] = UserIn(user_id=uid)
        return uid

    events: list[EventIn] = []

    def play(parts: list[str]) -> None:
        uid, artist_id, plays = _id(parts[0]), _id(parts[1]), _id(parts[2])
        if artist_id not in items:
            items[artist_id] = _artist(artist_id, [artist_id], tag_counts.get(artist_id), top_tags)
        events.append(
            EventIn(
                event_id=f"lastfm:play:{user(uid)}:{artist_id}",
                user_id=uid,
                item_id=artist_id,
                type=event_type,
                value=float(plays),
            )
        )

    _each_row(plays_path, 3, play)

    pairs: dict[tuple[str, str], None] = {}

    def friends(parts: list[str]) -> None:
        a, b = _id(parts[0]), _id(parts[1])
        if a != b:
            pairs[(a, b)] = None

    if (folder / "user_friends.dat").is_file():
        _each_row(folder / "user_friends.dat", 2, friends)
    for a, b in list(pairs):
        pairs.setdefault((b, a), None)
    edges = [EdgeIn(source_id=user(a), target_id=user(b), type="friend") for a, b in pairs]
    return Dataset(
        users=list(users.values()), items=list(items.values()), events=events, edges=edges
    )


def _artist(artist: str, parts: list[str], counts: Counter[str] | None, top_tags: int) -> ItemIn:
    name = parts[1] if len(parts) > 1 else ""
    media = {}
    if len(parts) > 2 and parts[2]:
        media["url"] = parts[2]
    if len(parts) > 3 and parts[3]:
        media["image"] = parts[3]
    top = sorted((counts or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:top_tags]
    attributes = {"tag_counts": dict(top)} if top else {}
    return ItemIn(
        item_id=artist,
        title=name,
        tags=[t for t, _ in top],
        media=media,
        attributes=attributes,
    )
