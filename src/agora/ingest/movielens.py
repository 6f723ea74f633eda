"""MovieLens importer: ML-100K (``u.data``/``u.item``/``u.user``) and ML-1M (``*.dat``).

Every rating becomes a ``rating`` event with ``value`` = the 1-5 stars and the rating's unix time
as ``timestamp``; movies become items (title, genres as tags, year and release date as
attributes); users get age, gender and occupation as attributes (zip codes are left out).
Event ids are ``ml100k:<user>:<movie>`` / ``ml1m:<user>:<movie>`` (one rating per pair).

ML-1M comes in three shapes, all handled:

* the official ``ratings.dat`` (or ``ratings.dat.gz``) next to ``movies.dat`` and ``users.dat``;
* only a prefix of it, e.g. ``ratings.dat.PREFIX-users1-2999.gz`` (users 1-2999, with
  timestamps), which is what ``../shared/data/movielens-1m/ml-1m`` holds: used when no full
  ``ratings.dat`` is present;
* ``full=True`` with the ``derived/`` folder next to ``ml-1m/`` (all 1,000,209 ratings, decoded
  from an R package, *without timestamps* and with items re-indexed): item indices are mapped
  back to MovieIDs with ``derived/item_idx_to_movieid.csv``; the 20 indices it cannot map
  unambiguously become items ``ml1m-idx:<n>`` with the candidate MovieIDs as an attribute.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from agora.ingest.errors import ImportFailed, ImportProblem, ProblemCollector
from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn

ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ML1M_AGES = {
    "1": "Under 18",
    "18": "18-24",
    "25": "25-34",
    "35": "35-44",
    "45": "45-49",
    "50": "50-55",
    "56": "56+",
}
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
_YEAR = re.compile(r"\((\d{4})\)\s*$")
T = TypeVar("T")


def _text_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding=encoding, newline="") as fh:  # type: ignore[operator]
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def _rows(path: Path, encoding: str, sep: str, n: int, build: Callable[[list[str]], T]) -> list[T]:
    """``build`` applied to every row split on ``sep``; all bad rows reported together.

    ``build`` raises ValueError (a pydantic ValidationError is one) for a bad value.
    """
    problems = ProblemCollector(path)
    out: list[T] = []
    for number, line in _text_lines(path, encoding):
        parts = line.split(sep)
        if len(parts) < n:
            problems.add(number, f"expected {n} fields separated by {sep!r}, found {len(parts)}")
            continue
        try:
            out.append(build(parts))
        except ValidationError as exc:
            for err in exc.errors():
                problems.add(number, err["msg"], field=".".join(map(str, err["loc"])))
        except ValueError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return out


def _when(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(text), UTC)
    except ValueError:
        raise ValueError(f"bad unix timestamp {text!r}") from None


def _rating(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad rating {text!r}") from None


def _year(title: str) -> int | None:
    match = _YEAR.search(title)
    return int(match.group(1)) if match else None


def detect_variant(folder: str | Path) -> str | None:
    """``"100k"``, ``"1m"`` or None for a folder (or its ``ml-100k``/``ml-1m`` subfolder)."""
    folder = _resolve(Path(folder))
    if (folder / "u.data").is_file():
        return "100k"
    if (folder / "movies.dat").is_file():
        return "1m"
    return None


def _resolve(folder: Path) -> Path:
    """Step into ``ml-100k``/``ml-1m`` when given the folder that contains it."""
    for sub in ("ml-100k", "ml-1m"):
        if not (folder / "u.data").is_file() and (folder / sub).is_dir():
            return folder / sub
    return folder


def load_movielens(
    folder: str | Path,
    *,
    ratings_file: str | None = None,
    full: bool = False,
) -> Dataset:
    """Import MovieLens 100K or 1M from its folder (the variant is detected from the files).

    ``ratings_file`` picks another ratings file of the same format (``u1.base``, ...).
    ``full=True`` (ML-1M only) reads all ratings from the ``derived/`` folder next to ``ml-1m``
    (no timestamps).
    """
    folder = _resolve(Path(folder))
    variant = detect_variant(folder)
    if variant == "100k":
        if full:
            raise ValueError("full=True is for ML-1M only")
        return _load_100k(folder, ratings_file or "u.data")
    if variant == "1m":
        return _load_1m(folder, ratings_file, full)
    raise ImportFailed(
        [
            ImportProblem(
                folder, None, "not a MovieLens folder: no u.data (100K) or movies.dat (1M)"
            )
        ],
        file=folder,
    )


# --------------------------------------------------------------------------------------------
# ML-100K


def _load_100k(folder: Path, ratings_file: str) -> Dataset:
    def user(parts: list[str]) -> UserIn:
        uid, age, gender, occupation = parts[:4]
        return UserIn(
            user_id=uid,
            attributes={"age": int(age), "gender": gender, "occupation": occupation},
        )

    def item(parts: list[str]) -> ItemIn:
        genres = [g for g, flag in zip(ML100K_GENRES, parts[5:24], strict=True) if flag == "1"]
        attributes: dict[str, object] = {"year": _year(parts[1])}
        if parts[2]:
            released = datetime.strptime(parts[2], "%d-%b-%Y").date()
            attributes["release_date"] = released.isoformat()
        if parts[4]:
            attributes["imdb_url"] = parts[4]
        return ItemIn(item_id=parts[0], title=parts[1], tags=genres, attributes=attributes)

    def event(parts: list[str]) -> EventIn:
        uid, iid, rating, ts = parts[:4]
        return EventIn(
            event_id=f"ml100k:{uid}:{iid}",
            user_id=uid,
            item_id=iid,
            type="rating",
            value=_rating(rating),
            timestamp=_when(ts),
        )

    path = folder / "u.user"
    users = _rows(path, "latin-1", "|", 5, user) if path.is_file() else []
    path = folder / "u.item"
    items = _rows(path, "latin-1", "|", 24, item) if path.is_file() else []
    events = _rows(folder / ratings_file, "latin-1", "\t", 4, event)
    return _complete(users, items, events)


# --------------------------------------------------------------------------------------------
# ML-1M


def _ratings_1m(folder: Path, ratings_file: str | None) -> Path:
    if ratings_file:
        return folder / ratings_file
    for name in ("ratings.dat", "ratings.dat.gz"):
        if (folder / name).is_file():
            return folder / name
    prefixes = sorted(folder.glob("ratings.dat*.gz")) + sorted(folder.glob("ratings*.dat"))
    if prefixes:
        return prefixes[0]
    raise ImportFailed(
        [ImportProblem(folder, None, "ML-1M folder without ratings.dat (or ratings.dat*.gz)")],
        file=folder,
    )


def _load_1m(folder: Path, ratings_file: str | None, full: bool) -> Dataset:
    def user(parts: list[str]) -> UserIn:
        uid, gender, age, occupation = parts[:4]
        occ = int(occupation) if occupation.isdigit() else None
        known = occ is not None and occ < len(ML1M_OCCUPATIONS)
        return UserIn(
            user_id=uid,
            attributes={
                "gender": gender,
                "age_group": ML1M_AGES.get(age, age),
                "occupation": ML1M_OCCUPATIONS[occ] if known else occupation,  # type: ignore[index]
            },
        )

    def item(parts: list[str]) -> ItemIn:
        mid, title, genres = parts[:3]
        return ItemIn(
            item_id=mid,
            title=title,
            tags=[g for g in genres.split("|") if g],
            attributes={"year": _year(title)},
        )

    path = folder / "users.dat"
    users = _rows(path, "latin-1", "::", 5, user) if path.is_file() else []
    items = _rows(folder / "movies.dat", "latin-1", "::", 3, item)
    events = _full_1m(folder, items) if full else _prefix_1m(_ratings_1m(folder, ratings_file))
    return _complete(users, items, events)


def _prefix_1m(path: Path) -> list[EventIn]:
    def event(parts: list[str]) -> EventIn:
        uid, mid, rating, ts = parts[:4]
        return EventIn(
            event_id=f"ml1m:{uid}:{mid}",
            user_id=uid,
            item_id=mid,
            type="rating",
            value=_rating(rating),
            timestamp=_when(ts),
        )

    return _rows(path, "latin-1", "::", 4, event)


def _full_1m(folder: Path, items: list[ItemIn]) -> list[EventIn]:
    derived = folder.parent / "derived"
    mapping_path = derived / "item_idx_to_movieid.csv"
    ratings_path = derived / "ratings_user_itemidx_rating.csv.gz"
    for p in (mapping_path, ratings_path):
        if not p.is_file():
            raise ImportFailed(
                [ImportProblem(p, None, "full=True needs the derived ML-1M files next to ml-1m/")],
                file=p,
            )
    to_movie: dict[str, str] = {}
    with mapping_path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["movie_id"]:
                to_movie[row["item_idx"]] = row["movie_id"]
            else:
                item_id = f"ml1m-idx:{row['item_idx']}"
                to_movie[row["item_idx"]] = item_id
                candidates = row["how"].split(":", 1)[-1].split("|")
                items.append(
                    ItemIn(
                        item_id=item_id,
                        attributes={
                            "ambiguous_movie_ids": candidates,
                            "ml1m_item_idx": row["item_idx"],
                        },
                    )
                )
    events: list[EventIn] = []
    with gzip.open(ratings_path, "rb") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = next(reader)
        if header[:3] != ["user_id", "item_idx", "rating"]:
            raise ImportFailed([ImportProblem(ratings_path, 1, f"unexpected header {header}")])
        for number, (uid, idx, rating) in enumerate(reader, start=2):
            mid = to_movie.get(idx)
            if mid is None:
                problem = ImportProblem(ratings_path, number, f"item_idx {idx} has no MovieID")
                raise ImportFailed([problem])
            events.append(
                EventIn(
                    event_id=f"ml1m:{uid}:{mid}",
                    user_id=uid,
                    item_id=mid,
                    type="rating",
                    value=float(rating),
                )
            )
    return events


def _complete(users: list[UserIn], items: list[ItemIn], events: list[EventIn]) -> Dataset:
    """Add bare users and items for ids that occur only in ratings, so the dataset is closed."""
    known_users = {u.user_id for u in users}
    known_items = {i.item_id for i in items}
    for e in events:
        if e.user_id not in known_users:
            known_users.add(e.user_id)
            users.append(UserIn(user_id=e.user_id))
        if e.item_id not in known_items:
            known_items.add(e.item_id)
            items.append(ItemIn(item_id=e.item_id))
    return Dataset(users=users, items=items, events=events)
