"""CiaoDVD importer (Guo et al. 2014): ``movie-ratings.txt`` and ``trusts.txt``.

* ``movie-ratings.txt`` (userID, movieID, genreID, reviewID, movieRating, date; comma-separated,
  no header): one ``rating`` event per review, ``value`` = the 1-5 rating, ``timestamp`` = the date
  (midnight UTC), event id ``ciao:review:<reviewID>`` (a user may review one movie more than
  once: 320 pairs do). Movies become items with tag ``genre:<genreID>`` and ``genre_id``
  attribute. The genre *names* are not used: the readme lists 17 genre names, but the data gives
  no mapping from genreID to them (their rating counts do not fit the readme's order).
* ``trusts.txt`` (trustorID, trusteeID, trustValue): directed ``trust`` edges, weight = trustValue.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from agora.ingest.errors import ImportFailed, ImportProblem, ProblemCollector
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, ItemIn, UserIn

RATINGS = "movie-ratings.txt"
TRUSTS = "trusts.txt"


def is_ciaodvd_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``movie-ratings.txt``."""
    return (Path(folder) / RATINGS).is_file()


def _rows(path: Path, n: int, problems: ProblemCollector) -> Iterator[tuple[int, list[str]]]:
    with path.open("r", encoding="utf-8", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != n:
                problems.add(number, f"expected {n} comma-separated fields, found {len(parts)}")
                continue
            yield number, parts


def load_ciaodvd(folder: str | Path) -> Dataset:
    """Import a CiaoDVD folder (``movie-ratings.txt``, optional ``trusts.txt``)."""
    folder = Path(folder)
    ratings_path = folder / RATINGS
    if not ratings_path.is_file():
        raise ImportFailed(
            [ImportProblem(folder, None, f"not a CiaoDVD folder: no {RATINGS}")], file=folder
        )
    users: list[UserIn] = []
    known_users: set[str] = set()

    def user(uid: str) -> str:
        if uid not in known_users:
            known_users.add(uid)
            users.append(UserIn(user_id=uid))
        return uid

    items: dict[str, ItemIn] = {}
    events: list[EventIn] = []
    problems = ProblemCollector(ratings_path)
    for number, (uid, movie, genre, review, rating, date) in _rows(ratings_path, 6, problems):
        try:
            when = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            problems.add(number, f"bad date {date!r} (expected YYYY-MM-DD)", field="date")
            continue
        try:
            value = float(rating)
        except ValueError:
            problems.add(number, f"bad rating {rating!r}", field="movieRating")
            continue
        if movie not in items:
            items[movie] = ItemIn(
                item_id=movie,
                tags=[f"genre:{genre}"] if genre else [],
                attributes={"genre_id": int(genre)} if genre.isdigit() else {},
            )
        events.append(
            EventIn(
                event_id=f"ciao:review:{review}",
                user_id=user(uid),
                item_id=movie,
                type="rating",
                value=value,
                timestamp=when,
            )
        )
    problems.raise_if_any()

    edges: list[EdgeIn] = []
    trusts_path = folder / TRUSTS
    if trusts_path.is_file():
        problems = ProblemCollector(trusts_path)
        for number, (src, dst, value) in _rows(trusts_path, 3, problems):
            try:
                weight = float(value)
            except ValueError:
                problems.add(number, f"bad trust value {value!r}", field="trustValue")
                continue
            if src != dst:
                edges.append(
                    EdgeIn(source_id=user(src), target_id=user(dst), type="trust", weight=weight)
                )
        problems.raise_if_any()
    return Dataset(users=users, items=list(items.values()), events=events, edges=edges)
