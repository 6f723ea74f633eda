"""Gorse's data files, as its dashboard exports and imports them: a folder holding
``users.csv`` (``user_id,labels``), ``items.csv``
(``item_id,is_hidden,categories,time_stamp,labels,description``) and ``feedback.csv``
(``feedback_type,user_id,item_id,time_stamp``), comma-separated with a header line; labels are
JSON (older Gorse releases wrote ``a|b``, also read), categories ``a|b``, times as Go prints them
(``2022-08-07 00:26:46 +0000 UTC``; any form :func:`agora.gorse.service.parse_time` reads is
taken). A missing file is nothing of that kind.

Reading goes through the same Gorse shapes and service calls as the API, so a file says what
the same records sent to ``/api/`` would say; a file with a bad line is refused whole, every
problem named by file and line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import transaction
from agora.gorse import schemas, service
from agora.gorse.service import GorseError

USERS, ITEMS, FEEDBACK = "users.csv", "items.csv", "feedback.csv"
HEADERS = {
    USERS: ["user_id", "labels"],
    ITEMS: ["item_id", "is_hidden", "categories", "time_stamp", "labels", "description"],
    FEEDBACK: ["feedback_type", "user_id", "item_id", "time_stamp"],
}
#: Records written per call of the service (each call checks and writes them together).
BATCH = 1000
#: Go's strconv.ParseBool.
_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False", ""), False),
}


class FilesRejected(ValueError):
    """The folder holds lines that cannot be read; nothing was written."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} problem(s): {shown}{more}")


@dataclass
class GorseData:
    """The records of a folder of Gorse files."""

    users: list[schemas.UserIn] = field(default_factory=list)
    items: list[schemas.ItemIn] = field(default_factory=list)
    feedback: list[schemas.FeedbackIn] = field(default_factory=list)


def _labels(text: str) -> Any:
    """Labels as Gorse writes them: JSON, or (older releases) ``a|b``; empty: none."""
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text.split("|")


def _rows(path: Path, problems: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row by column) of a Gorse CSV file; a missing file has none."""
    if not path.exists():
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        wanted = HEADERS[path.name]
        if header is None:
            return
        if [h.strip() for h in header] != wanted:
            problems.append(f"{path.name}: the header must be {','.join(wanted)} (got {header})")
            return
        for row in reader:
            if not row:
                continue
            if len(row) != len(wanted):
                problems.append(
                    f"{path.name} line {reader.line_num}: {len(wanted)} fields expected, "
                    f"{len(row)} found"
                )
                continue
            yield reader.line_num, dict(zip(wanted, row, strict=True))


def _record(model: type[Any], data: dict[str, Any], where: str, problems: list[str]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fault = exc.errors()[0]
        place = ".".join(str(part) for part in fault["loc"])
        problems.append(f"{where}: {place}: {fault['msg']}")
        return None


def _time_problem(text: str, settings: Settings) -> str | None:
    try:
        service.parse_time(text, settings)
    except GorseError as exc:
        return exc.text
    return None


def read_folder(folder: Path, settings: Settings) -> GorseData:
    """The users, items and feedback of a folder of Gorse files; FilesRejected with every
    problem found when a line cannot be read (times are held to the settings' bounds)."""
    problems: list[str] = []
    data = GorseData()
    for line, row in _rows(folder / USERS, problems):
        where = f"{USERS} line {line}"
        user = {"UserId": row["user_id"], "Labels": _labels(row["labels"])}
        if (record := _record(schemas.UserIn, user, where, problems)) is not None:
            data.users.append(record)
    for line, row in _rows(folder / ITEMS, problems):
        where = f"{ITEMS} line {line}"
        hidden = _BOOLS.get(row["is_hidden"].strip())
        if hidden is None:
            problems.append(f"{where}: is_hidden {row['is_hidden']!r} is not true or false")
        if fault := _time_problem(row["time_stamp"], settings):
            problems.append(f"{where}: time_stamp: {fault}")
        if hidden is None or fault:
            continue
        item = {
            "ItemId": row["item_id"],
            "IsHidden": hidden,
            "Categories": row["categories"].split("|") if row["categories"] else None,
            "Timestamp": row["time_stamp"],
            "Labels": _labels(row["labels"]),
            "Comment": row["description"],
        }
        if (record := _record(schemas.ItemIn, item, where, problems)) is not None:
            data.items.append(record)
    for line, row in _rows(folder / FEEDBACK, problems):
        where = f"{FEEDBACK} line {line}"
        if fault := _time_problem(row["time_stamp"], settings):
            problems.append(f"{where}: time_stamp: {fault}")
            continue
        feedback = {
            "FeedbackType": row["feedback_type"],
            "UserId": row["user_id"],
            "ItemId": row["item_id"],
            "Timestamp": row["time_stamp"],
        }
        if (record := _record(schemas.FeedbackIn, feedback, where, problems)) is not None:
            data.feedback.append(record)
    if problems:
        raise FilesRejected(problems)
    return data


def import_folder(
    sessions: sessionmaker[Session], folder: Path, settings: Settings
) -> dict[str, int]:
    """Write a folder of Gorse files in one transaction (a line Agora refuses, such as a time
    out of bounds or an unmapped feedback type, writes nothing); feedback already stored is
    overwritten, as Gorse's import does. Answers how many of each were read."""
    data = read_folder(folder, settings)
    with transaction(sessions, writes=True) as session:
        try:
            for start in range(0, len(data.users), BATCH):
                service.insert_users(session, data.users[start : start + BATCH])
            for start in range(0, len(data.items), BATCH):
                service.insert_items(session, data.items[start : start + BATCH], settings)
            for start in range(0, len(data.feedback), BATCH):
                part = data.feedback[start : start + BATCH]
                service.insert_feedback(session, part, settings, overwrite=True)
        except GorseError as exc:
            raise FilesRejected([exc.text]) from None
    return {"users": len(data.users), "items": len(data.items), "feedback": len(data.feedback)}


def _pages(read: Any, session: Session) -> Iterator[Any]:
    """Every page of a Gorse listing (``read(session, cursor, n)``), first to last."""
    cursor = ""
    while True:
        page = read(session, cursor, BATCH)
        yield page
        cursor = page.Cursor
        if not cursor:
            return


def export_folder(session: Session, folder: Path) -> dict[str, int]:
    """Write the store as Gorse's three files into ``folder`` (created if needed): every user,
    every item and the feedback dated up to now. Answers how many rows each file got."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, read, rows in (
        (USERS, service.get_users, _user_rows),
        (ITEMS, service.get_items, _item_rows),
        (FEEDBACK, service.get_feedback, _feedback_rows),
    ):
        with (folder / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(HEADERS[name])
            count = 0
            for page in _pages(read, session):
                lines = list(rows(page))
                writer.writerows(lines)
                count += len(lines)
        written[name] = count
    return written


def _go_time(written: str) -> str:
    """A time of the API's answers (RFC 3339) as Gorse's files print it."""
    return service.go_time(datetime.fromisoformat(written))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _user_rows(page: schemas.Users) -> Iterator[list[str]]:
    for user in page.Users:
        yield [user.UserId, _json(user.Labels)]


def _item_rows(page: schemas.Items) -> Iterator[list[str]]:
    for item in page.Items:
        yield [
            item.ItemId,
            "true" if item.IsHidden else "false",
            "|".join(item.Categories or []),
            _go_time(item.Timestamp),
            _json(item.Labels),
            item.Comment,
        ]


def _feedback_rows(page: schemas.Feedbacks) -> Iterator[list[str]]:
    for f in page.Feedback:
        yield [f.FeedbackType, f.UserId, f.ItemId, _go_time(f.Timestamp)]
