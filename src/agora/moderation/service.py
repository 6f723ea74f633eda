"""Quality filtering: user flags, classifier scans, the review queue, decisions and feedback.

* ``add_flag``: a user reports an item (one open flag per user and item: a repeat returns the
  open flag). The item's open case is created or raised in priority.
* ``scan``: the classifier scores items not scored yet; items at or above the threshold join
  the review queue with their score (items already decided are never queued again).
* ``review_queue`` and ``decide``: admins take open cases by priority and uphold or reject them.
  An upheld case removes the item from feeds (:func:`removed_item_ids`), becomes a training
  label (``train``), and writes one ``flag_upheld`` event (event id ``moderation:<decision
  id>``) for the item's author through ingestion, which the points and trust rules read.

* ``review_explicit``: an image of the item whose explicit score (``agora.media``) reaches the
  threshold opens a case by itself.

Priority combines the classifier's probability ``s`` (0 if unscored), the item's highest
explicit-image score ``e`` (0 without images) and the number ``k`` of distinct users with an
open flag: ``1 - (1 - s) * (1 - e) * 0.5**k``: each signal removes its share of the remaining
doubt, so one flag on an unscored item is 0.5, two are 0.75, a score of 0.9 alone is 0.9.

Every function takes an open session and leaves committing to the caller.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from agora.api.errors import Conflict, Invalid, NotFound
from agora.db import queries
from agora.db.tables import Item, ItemMedia, User
from agora.ingest.schemas import EventIn, as_utc
from agora.ingest.service import add_events, ensure_users
from agora.moderation.classifier import (
    LoadedClassifier,
    Post,
    QualityClassifier,
    label_from_attributes,
)
from agora.moderation.models import (
    FLAG_REASONS,
    OPEN,
    OUTCOMES,
    STATUS_OF_OUTCOME,
    ModerationCase,
    ModerationDecision,
    ModerationFlag,
    ModerationScore,
)

#: Event type written for the author of an item whose case was upheld.
FLAG_UPHELD = "flag_upheld"
CHUNK = 900  # ids per IN (...) clause


class UnknownItem(NotFound):
    """The item named is not in the store."""


class UnknownCase(NotFound):
    """The review case named does not exist."""


class AlreadyDecided(Conflict):
    """The case was decided the other way already."""


class BadRequest(Invalid):
    """An argument outside what the service accepts (reason, outcome, status)."""


def priority(score: float | None, n_flags: int, image_score: float | None = None) -> float:
    """Queue priority of a case: ``1 - (1 - score) * (1 - image_score) * 0.5 ** n_flags``
    (module docstring)."""
    return 1.0 - (1.0 - (score or 0.0)) * (1.0 - (image_score or 0.0)) * 0.5**n_flags


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- labels and the classifier's view of items -----------------------------------------------
def decision_labels(session: Session) -> dict[int, int]:
    """Item id -> 1 (latest decision upheld) or 0 (latest decision rejected)."""
    rows = session.execute(
        select(ModerationDecision.item_id, ModerationDecision.outcome).order_by(
            ModerationDecision.id
        )
    )
    return {item_id: int(outcome == "uphold") for item_id, outcome in rows}


@dataclass
class _History:
    """One author's labelled posts in time order, for "earlier posts" counts."""

    keys: list[tuple[datetime, int]] = field(default_factory=list)
    low: list[int] = field(default_factory=list)  # prefix sums of low-quality labels
    labelled: list[int] = field(default_factory=list)  # prefix sums of labelled posts

    def before(self, key: tuple[datetime, int]) -> tuple[int, int, int]:
        """(posts, low-quality posts, labelled posts) strictly before ``key``."""
        n = bisect.bisect_left(self.keys, key)
        return n, (self.low[n - 1] if n else 0), (self.labelled[n - 1] if n else 0)


def _histories(
    session: Session, author_ids: set[int], decided: dict[int, int]
) -> dict[int, _History]:
    rows: list[tuple[int, int, datetime, dict]] = []
    for part in _chunks(sorted(author_ids)):
        rows.extend(
            session.execute(
                select(Item.author_id, Item.id, Item.created, Item.attributes).where(
                    Item.author_id.in_(part)
                )
            )
        )
    rows.sort(key=lambda r: (r[0], as_utc(r[2]), r[1]))
    out: dict[int, _History] = defaultdict(_History)
    for author, item_id, created, attributes in rows:
        label = decided.get(item_id, label_from_attributes(attributes or {}))
        h = out[author]
        h.keys.append((as_utc(created), item_id))
        h.low.append((h.low[-1] if h.low else 0) + int(label == 1))
        h.labelled.append((h.labelled[-1] if h.labelled else 0) + int(label is not None))
    return out


def posts_for(
    session: Session, item_ids: Sequence[int], decided: dict[int, int] | None = None
) -> dict[int, Post]:
    """The classifier's view of each item: text, post type and its author's history then."""
    decided = decision_labels(session) if decided is None else decided
    items: list[Item] = []
    for part in _chunks(list(item_ids)):
        items.extend(session.scalars(select(Item).where(Item.id.in_(part))))
    authors = {i.author_id for i in items if i.author_id is not None}
    created: dict[int, datetime] = {}
    for part in _chunks(sorted(authors)):
        rows = session.execute(select(User.id, User.created).where(User.id.in_(part)))
        created.update({user_id: when for user_id, when in rows})
    history = _histories(session, authors, decided)
    seen = queries.image_texts(session, [i.id for i in items])
    out: dict[int, Post] = {}
    for item in items:
        posted = as_utc(item.created)
        attributes = item.attributes or {}
        if item.author_id is None:
            out[item.id] = Post(
                item.title or "",
                item.body or "",
                attributes.get("post_type"),
                has_author=False,
                image_text=seen.get(item.id, ""),
            )
            continue
        n, low, labelled = history[item.author_id].before((posted, item.id))
        joined = as_utc(created.get(item.author_id)) or posted
        out[item.id] = Post(
            title=item.title or "",
            body=item.body or "",
            post_type=attributes.get("post_type"),
            has_author=True,
            account_age_days=(posted - joined).total_seconds() / 86400,
            prior_posts=n,
            prior_low=low,
            prior_labelled=labelled,
            image_text=seen.get(item.id, ""),
        )
    return out


def image_scores(session: Session, item_ids: Sequence[int]) -> dict[int, tuple[float, dict]]:
    """Each item's highest explicit-image score and that image's detected parts."""
    out: dict[int, tuple[float, dict]] = {}
    for part in _chunks(list(item_ids)):
        rows = session.execute(
            select(ItemMedia.item_id, ItemMedia.explicit_score, ItemMedia.explicit_parts).where(
                ItemMedia.item_id.in_(part), ItemMedia.explicit_score.is_not(None)
            )
        )
        for item_id, score, parts in rows:
            if item_id not in out or score > out[item_id][0]:
                out[item_id] = (float(score), dict(parts or {}))
    return out


@dataclass
class Examples:
    """Labelled items in creation order: the training (and evaluation) set."""

    item_ids: list[int]
    external_ids: list[str]
    created: list[datetime]
    posts: list[Post]
    labels: np.ndarray

    def counts(self) -> dict[str, int]:
        return {"low_quality": int(self.labels.sum()), "ok": int((self.labels == 0).sum())}


def labelled_examples(session: Session) -> Examples:
    """Every item with a label (decisions over the attribute rule), oldest first."""
    decided = decision_labels(session)
    rows = session.execute(
        select(Item.id, Item.external_id, Item.created, Item.attributes).order_by(
            Item.created, Item.id
        )
    )
    labelled = []
    for item_id, external_id, created, attributes in rows:
        label = decided.get(item_id, label_from_attributes(attributes or {}))
        if label is not None:
            labelled.append((item_id, external_id, as_utc(created), label))
    posts = posts_for(session, [r[0] for r in labelled], decided)
    return Examples(
        item_ids=[r[0] for r in labelled],
        external_ids=[r[1] for r in labelled],
        created=[r[2] for r in labelled],
        posts=[posts[r[0]] for r in labelled],
        labels=np.array([r[3] for r in labelled], dtype=int),
    )


@dataclass
class TrainResult:
    path: Path
    version: str
    labels: dict[str, int]
    out_of_fold: dict[str, float]
    seconds: float


def train(
    session: Session,
    root_dir: Path,
    now: datetime,
    params: dict[str, Any] | None = None,
    keep: int = 3,
) -> TrainResult:
    """Fit the classifier on every labelled item (imported evidence and decided cases) and
    save a new version under ``root_dir``; ValueError when a class has too few examples."""
    started = time.perf_counter()
    examples = labelled_examples(session)
    model = QualityClassifier(**(params or {})).fit(examples.posts, examples.labels)
    path = model.save(root_dir, labels=examples.counts(), now=now, keep=keep)
    return TrainResult(
        path, path.name, examples.counts(), model.oof_, time.perf_counter() - started
    )


# -- scoring and the queue -------------------------------------------------------------------
def _score_of(session: Session, item_id: int) -> float | None:
    return session.scalar(select(ModerationScore.score).where(ModerationScore.item_id == item_id))


def _open_case(session: Session, item_id: int) -> ModerationCase | None:
    return session.scalar(
        select(ModerationCase).where(
            ModerationCase.item_id == item_id, ModerationCase.status == OPEN
        )
    )


def _ensure_open_case(session: Session, item_id: int, now: datetime) -> ModerationCase:
    case = _open_case(session, item_id)
    if case is None:
        case = ModerationCase(
            item_id=item_id,
            status=OPEN,
            score=None,
            n_flags=0,
            priority=0.0,
            opened=now,
            updated=now,
        )
        session.add(case)
        session.flush()
    return case


def _refresh(session: Session, case: ModerationCase, now: datetime) -> None:
    """Recompute a case's score, flag count and priority from the store."""
    case.score = _score_of(session, case.item_id)
    case.n_flags = session.scalar(
        select(func.count(func.distinct(ModerationFlag.user_id))).where(
            ModerationFlag.case_id == case.id, ModerationFlag.status == OPEN
        )
    )
    image = image_scores(session, [case.item_id]).get(case.item_id, (None, {}))[0]
    case.priority = priority(case.score, case.n_flags, image)
    case.updated = now


def score_items(
    session: Session, item_ids: Sequence[int], classifier: LoadedClassifier, now: datetime
) -> dict[int, float]:
    """Score items with the classifier and store (or replace) their scores."""
    if not item_ids:
        return {}
    posts = posts_for(session, item_ids)
    ids = [i for i in item_ids if i in posts]
    probs = classifier.model.predict_proba([posts[i] for i in ids])
    scores = {i: float(p) for i, p in zip(ids, probs, strict=True)}
    for part in _chunks(ids):
        session.execute(delete(ModerationScore).where(ModerationScore.item_id.in_(part)))
    session.add_all(
        ModerationScore(item_id=i, score=s, model_version=classifier.version, scored=now)
        for i, s in scores.items()
    )
    session.flush()
    return scores


@dataclass
class ScanSummary:
    scored: int
    queued: int
    threshold: float
    model_version: str


def scan(
    session: Session,
    classifier: LoadedClassifier,
    now: datetime,
    threshold: float | None = None,
    limit: int | None = None,
    rescore: bool = False,
    batch: int = 1000,
) -> ScanSummary:
    """Score the items with content not scored yet (all items with ``rescore``) and queue
    those at or above ``threshold`` (default: the model's F1-best threshold). Items with a
    decision are scored but not queued again."""
    threshold = classifier.threshold if threshold is None else threshold
    query = select(Item.id).where(or_(Item.title != "", Item.body != "")).order_by(Item.id)
    if not rescore:
        query = query.outerjoin(ModerationScore, ModerationScore.item_id == Item.id).where(
            ModerationScore.item_id.is_(None)
        )
    if limit is not None:
        query = query.limit(limit)
    todo = list(session.scalars(query))
    decided = set(session.scalars(select(ModerationDecision.item_id).distinct()))
    scored = queued = 0
    for part in _chunks(todo, batch):
        scores = score_items(session, part, classifier, now)
        scored += len(scores)
        for item_id, score in scores.items():
            case = _open_case(session, item_id)
            if case is None and (score < threshold or item_id in decided):
                continue
            case = case or _ensure_open_case(session, item_id, now)
            _refresh(session, case, now)
            queued += 1
    return ScanSummary(scored, queued, threshold, classifier.version)


def review_explicit(session: Session, item_id: int, threshold: float, now: datetime) -> bool:
    """Open (or raise) the item's case when one of its images scores ``threshold`` or more
    as explicit; an item already decided is not queued again. True when it is in the queue."""
    score = image_scores(session, [item_id]).get(item_id, (0.0, {}))[0]
    case = _open_case(session, item_id)
    if case is None:
        decided = session.scalar(
            select(ModerationDecision.id).where(ModerationDecision.item_id == item_id).limit(1)
        )
        if score < threshold or decided is not None:
            return False
        case = _ensure_open_case(session, item_id, now)
    _refresh(session, case, now)
    return True


# -- flags -----------------------------------------------------------------------------------
def _item(session: Session, external_id: str) -> Item:
    item = session.scalar(select(Item).where(Item.external_id == external_id))
    if item is None:
        raise UnknownItem(f"item {external_id!r} not found")
    return item


@dataclass
class FlagResult:
    flag: ModerationFlag
    case: ModerationCase
    created: bool


def add_flag(
    session: Session,
    item_external_id: str,
    user_external_id: str,
    reason: str,
    now: datetime,
    note: str = "",
    classifier: LoadedClassifier | None = None,
) -> FlagResult:
    """A user's flag on an item; the same user's open flag on it is returned unchanged.

    The item's open case is created or updated; with a classifier, an unscored item is scored
    first so the case's priority has both signals. Unknown users are created (as for events).
    """
    if reason not in FLAG_REASONS:
        raise BadRequest(f"unknown reason {reason!r}; known: {list(FLAG_REASONS)}")
    item = _item(session, item_external_id)
    user_id = ensure_users(session, [user_external_id])[user_external_id]
    existing = session.scalar(
        select(ModerationFlag).where(
            ModerationFlag.item_id == item.id,
            ModerationFlag.user_id == user_id,
            ModerationFlag.status == OPEN,
        )
    )
    if existing is not None:
        return FlagResult(existing, session.get(ModerationCase, existing.case_id), False)
    if classifier is not None and _score_of(session, item.id) is None:
        score_items(session, [item.id], classifier, now)
    case = _ensure_open_case(session, item.id, now)
    flag = ModerationFlag(
        item_id=item.id,
        user_id=user_id,
        case_id=case.id,
        reason=reason,
        note=note,
        status=OPEN,
        created=now,
    )
    session.add(flag)
    session.flush()
    _refresh(session, case, now)
    return FlagResult(flag, case, True)


# -- the review queue and decisions ----------------------------------------------------------
@dataclass
class CaseView:
    """A review case as admins see it."""

    case_id: int
    item_id: str
    title: str
    author_id: str | None
    status: str
    score: float | None
    n_flags: int
    reasons: dict[str, int]
    priority: float
    opened: datetime
    outcome: str | None = None
    decided: datetime | None = None
    image_score: float | None = None
    image_parts: dict[str, float] = field(default_factory=dict)


def _views(session: Session, cases: list[ModerationCase]) -> list[CaseView]:
    if not cases:
        return []
    ids = [c.id for c in cases]
    reasons: dict[int, Counter[str]] = defaultdict(Counter)
    decisions: dict[int, ModerationDecision] = {}
    items: dict[int, tuple[str, str, str | None]] = {}
    for part in _chunks(ids):
        for case_id, reason in session.execute(
            select(ModerationFlag.case_id, ModerationFlag.reason).where(
                ModerationFlag.case_id.in_(part)
            )
        ):
            reasons[case_id][reason] += 1
        decisions.update(
            (d.case_id, d)
            for d in session.scalars(
                select(ModerationDecision).where(ModerationDecision.case_id.in_(part))
            )
        )
    item_ids = sorted({c.item_id for c in cases})
    for part in _chunks(item_ids):
        for item_id, ext, title, author in session.execute(
            select(Item.id, Item.external_id, Item.title, User.external_id)
            .outerjoin(User, Item.author_id == User.id)
            .where(Item.id.in_(part))
        ):
            items[item_id] = (ext, title or "", author)
    images = image_scores(session, item_ids)
    out = []
    for c in cases:
        ext, title, author = items[c.item_id]
        image_score, image_parts = images.get(c.item_id, (None, {}))
        decision = decisions.get(c.id)
        out.append(
            CaseView(
                case_id=c.id,
                item_id=ext,
                title=title,
                author_id=author,
                status=c.status,
                score=c.score,
                n_flags=c.n_flags,
                reasons=dict(reasons[c.id]),
                priority=c.priority,
                opened=as_utc(c.opened),
                outcome=decision.outcome if decision else None,
                decided=as_utc(decision.created) if decision else None,
                image_score=image_score,
                image_parts=image_parts,
            )
        )
    return out


def review_queue(
    session: Session, status: str = OPEN, limit: int = 50, offset: int = 0
) -> list[CaseView]:
    """Cases with ``status`` (open, upheld, rejected): highest priority first, then oldest."""
    if status not in (OPEN, *STATUS_OF_OUTCOME.values()):
        raise BadRequest(f"unknown status {status!r}; known: open, upheld, rejected")
    cases = list(
        session.scalars(
            select(ModerationCase)
            .where(ModerationCase.status == status)
            .order_by(ModerationCase.priority.desc(), ModerationCase.opened, ModerationCase.id)
            .limit(limit)
            .offset(offset)
        )
    )
    return _views(session, cases)


#: Classifier-score bands of :func:`queue_summary` (tenths of the probability).
SCORE_BANDS = 10


@dataclass
class QueueSummary:
    """The review queue at a glance: cases per status, open cases per classifier-score band
    (``bands[i]``: score in [i/10, (i+1)/10), the last band holding 1.0) and without a score,
    and open flags per reason."""

    cases: dict[str, int]
    bands: list[int]
    unscored: int
    open_flags: dict[str, int]


def queue_summary(session: Session) -> QueueSummary:
    """Counts only (no item is named): what the console shows every key above the queue."""
    cases = {OPEN: 0, **{s: 0 for s in STATUS_OF_OUTCOME.values()}}
    query = select(ModerationCase.status, func.count()).group_by(ModerationCase.status)
    cases.update({status: n for status, n in session.execute(query)})
    bands, unscored = [0] * SCORE_BANDS, 0
    for score in session.scalars(select(ModerationCase.score).where(ModerationCase.status == OPEN)):
        if score is None:
            unscored += 1
        else:
            bands[min(max(int(score * SCORE_BANDS), 0), SCORE_BANDS - 1)] += 1
    flags = (
        select(ModerationFlag.reason, func.count())
        .where(ModerationFlag.status == OPEN)
        .group_by(ModerationFlag.reason)
    )
    open_flags = {reason: n for reason, n in session.execute(flags)}
    return QueueSummary(cases, bands, unscored, open_flags)


@dataclass
class DecisionResult:
    decision_id: int
    case: CaseView
    created: bool
    event_id: str | None


def decide(
    session: Session,
    case_id: int,
    outcome: str,
    now: datetime,
    decided_by: str = "",
    note: str = "",
) -> DecisionResult:
    """Uphold or reject a case (its flags take the outcome). Repeating the same decision
    returns it unchanged; the opposite one raises AlreadyDecided. Upholding writes one
    ``flag_upheld`` event for the item's author (none when the item has no author)."""
    if outcome not in OUTCOMES:
        raise BadRequest(f"unknown outcome {outcome!r}; known: {list(OUTCOMES)}")
    case = session.get(ModerationCase, case_id)
    if case is None:
        raise UnknownCase(f"review case {case_id} not found")
    previous = session.scalar(
        select(ModerationDecision).where(ModerationDecision.case_id == case_id)
    )
    if previous is not None:
        if previous.outcome != outcome:
            raise AlreadyDecided(f"review case {case_id} was already decided: {previous.outcome}")
        return DecisionResult(previous.id, _views(session, [case])[0], False, _event_id(previous))
    decision = ModerationDecision(
        case_id=case.id,
        item_id=case.item_id,
        outcome=outcome,
        decided_by=decided_by,
        note=note,
        created=now,
    )
    session.add(decision)
    session.flush()
    status = STATUS_OF_OUTCOME[outcome]
    case.status = status
    case.updated = now
    for flag in session.scalars(select(ModerationFlag).where(ModerationFlag.case_id == case.id)):
        flag.status = status
    session.flush()
    event_id = None
    if outcome == "uphold":
        event_id = _write_upheld_event(session, case, decision, now)
    return DecisionResult(decision.id, _views(session, [case])[0], True, event_id)


def _event_id(decision: ModerationDecision) -> str | None:
    return f"moderation:{decision.id}" if decision.outcome == "uphold" else None


def _write_upheld_event(
    session: Session, case: ModerationCase, decision: ModerationDecision, now: datetime
) -> str | None:
    row = session.execute(
        select(Item.external_id, User.external_id)
        .join(User, Item.author_id == User.id)
        .where(Item.id == case.item_id)
    ).first()
    if row is None:  # no author: nobody to debit
        return None
    item_external_id, author_external_id = row
    reasons = sorted(
        set(session.scalars(select(ModerationFlag.reason).where(ModerationFlag.case_id == case.id)))
    )
    event = EventIn(
        event_id=f"moderation:{decision.id}",
        user_id=author_external_id,
        item_id=item_external_id,
        type=FLAG_UPHELD,
        timestamp=now,
        context={"case_id": case.id, "reasons": reasons, "score": case.score},
    )
    add_events(session, [event], allowed_types=(FLAG_UPHELD,))
    return event.event_id


def removed_item_ids(session: Session, among: Collection[int] | None = None) -> set[int]:
    """Internal ids of items with an upheld decision (only those ``among`` the given ones, when
    given): the feed and its ads leave them out."""
    query = select(ModerationDecision.item_id).where(ModerationDecision.outcome == "uphold")
    if among is not None:
        query = query.where(ModerationDecision.item_id.in_(list(among)))
    return set(session.scalars(query))


# -- one item's moderation state -------------------------------------------------------------
@dataclass
class ItemModeration:
    item_id: str
    status: str
    score: float | None
    model_version: str | None
    flags: dict[str, int]
    open_flags: int
    cases: list[CaseView]


def item_moderation(session: Session, item_external_id: str) -> ItemModeration:
    """An item's status (removed, in_review, cleared, scored, unscored), score and flags
    (counts per reason; flaggers are not named)."""
    item = _item(session, item_external_id)
    score_row = session.get(ModerationScore, item.id)
    cases = list(
        session.scalars(
            select(ModerationCase)
            .where(ModerationCase.item_id == item.id)
            .order_by(ModerationCase.id)
        )
    )
    views = _views(session, cases)
    statuses = {c.status for c in cases}
    if "upheld" in statuses:
        status = "removed"
    elif OPEN in statuses:
        status = "in_review"
    elif "rejected" in statuses:
        status = "cleared"
    else:
        status = "scored" if score_row is not None else "unscored"
    flags = Counter(
        session.scalars(select(ModerationFlag.reason).where(ModerationFlag.item_id == item.id))
    )
    open_flags = session.scalar(
        select(func.count()).where(ModerationFlag.item_id == item.id, ModerationFlag.status == OPEN)
    )
    return ItemModeration(
        item_id=item.external_id,
        status=status,
        score=score_row.score if score_row else None,
        model_version=score_row.model_version if score_row else None,
        flags=dict(flags),
        open_flags=open_flags,
        cases=views,
    )
