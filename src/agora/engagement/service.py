"""What the engagement modules share: chunked ``IN`` lists, external ids of users, the
"N more ..." wording of progress, day streaks.

The engagement domain is split by concern: :mod:`.ledger` applies the event log (points with
daily caps, visit days, badge awards; catch-up, replay) and reads points; :mod:`.trust_levels`
computes trust levels; :mod:`.badge_awards` reads awards and progress; :mod:`.tasks` holds
tasks and contests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora.db.tables import User

IN_CHUNK = 500  # ids per IN (...) list


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    """``values`` in slices of ``size`` (one ``IN (...)`` list each)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def streak(days: set[date], day: date) -> int:
    """Length of the run of consecutive days in ``days`` that contains ``day``."""
    n, before, after = 1, day - timedelta(days=1), day + timedelta(days=1)
    while before in days:
        n, before = n + 1, before - timedelta(days=1)
    while after in days:
        n, after = n + 1, after + timedelta(days=1)
    return n


def more_of(n: int, noun: str) -> str:
    """ "3 more likes received", "1 more like received": the first plural word made singular."""
    if n == 1:
        words = noun.split(" ")
        for i, word in enumerate(words):
            if word.endswith("ies"):
                words[i] = word[:-3] + "y"
                break
            if word.endswith("s") and not word.endswith("ss"):
                words[i] = word[:-1]
                break
        noun = " ".join(words)
    return f"{n} more {noun}"


def external_users(session: Session, pks: Iterable[int]) -> dict[int, str]:
    """External id of each internal user id (for leaderboards)."""
    names: dict[int, str] = {}
    for part in chunks(sorted(set(pks))):
        names.update(
            session.execute(select(User.id, User.external_id).where(User.id.in_(part))).all()
        )
    return names
