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
from collections.abc import Iterator
from pathlib import Path

from agora.ingest.errors import ImportFailed, ImportProblem
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, ItemIn, UserIn

REQUIRED = "user_artists.dat"


def is_lastfm_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``user_artists.dat``."""
    return (Path(folder) / REQUIRED).is_file()


def _rows(path: Path, n: int, encoding: str = "utf-8") -> Iterator[tuple[int, list[str]]]:
    """Tab-separated data rows (header skipped, blank lines skipped, CRLF or LF)."""
    with path.open("r", encoding=encoding, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if number == 1 or not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < n:
                raise ImportFailed(
                    [ImportProblem(path, number, f"expected {n} tab-separated fields")], file=path
                )
            yield number, parts


def _int_text(path: Path, number: int, text: str) -> str:
    text = text.strip()
    if not text.lstrip("-").isdigit():
        raise ImportFailed([ImportProblem(path, number, f"expected an integer, got {text!r}")])
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
        for _number, parts in _rows(path, 2, encoding="latin-1"):
            tag_names[parts[0].strip()] = parts[1].strip()

    tag_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for name in ("user_taggedartists.dat", "user_taggedartists_2.dat"):
        path = folder / name
        if path.is_file():
            for _number, parts in _rows(path, 3):
                tag = tag_names.get(parts[2].strip())
                if tag:
                    tag_counts[parts[1].strip()][tag] += 1

    items: list[ItemIn] = []
    known_items: set[str] = set()
    path = folder / "artists.dat"
    if path.is_file():
        for number, parts in _rows(path, 2):
            artist = _int_text(path, number, parts[0])
            known_items.add(artist)
            items.append(_artist(artist, parts, tag_counts.get(artist), top_tags))

    users: list[UserIn] = []
    known_users: set[str] = set()

    def user(uid: str) -> str:
        if uid not in known_users:
            known_users.add(uid)
            users.append(UserIn(user_id=uid))
        return uid

    events: list[EventIn] = []
    for number, parts in _rows(plays_path, 3):
        uid = _int_text(plays_path, number, parts[0])
        artist = _int_text(plays_path, number, parts[1])
        plays = _int_text(plays_path, number, parts[2])
        if artist not in known_items:
            known_items.add(artist)
            items.append(_artist(artist, [artist], tag_counts.get(artist), top_tags))
        events.append(
            EventIn(
                event_id=f"lastfm:play:{user(uid)}:{artist}",
                user_id=uid,
                item_id=artist,
                type=event_type,
                value=float(plays),
            )
        )

    edges: list[EdgeIn] = []
    path = folder / "user_friends.dat"
    if path.is_file():
        pairs: dict[tuple[str, str], None] = {}
        for number, parts in _rows(path, 2):
            a = _int_text(path, number, parts[0])
            b = _int_text(path, number, parts[1])
            if a != b:
                pairs[(a, b)] = None
        for a, b in list(pairs):
            pairs.setdefault((b, a), None)
        edges = [EdgeIn(source_id=user(a), target_id=user(b), type="friend") for a, b in pairs]
    return Dataset(users=users, items=items, events=events, edges=edges)


def _artist(artist: str, parts: list[str], counts: Counter[str] | None, top_tags: int) -> ItemIn:
    name = parts[1].strip() if len(parts) > 1 else ""
    media = {}
    if len(parts) > 2 and parts[2].strip():
        media["url"] = parts[2].strip()
    if len(parts) > 3 and parts[3].strip():
        media["image"] = parts[3].strip()
    top = sorted((counts or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:top_tags]
    attributes = {"tag_counts": dict(top)} if top else {}
    return ItemIn(
        item_id=artist,
        title=name,
        tags=[t for t, _ in top],
        media=media,
        attributes=attributes,
    )
