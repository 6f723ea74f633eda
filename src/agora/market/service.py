"""The ad market: campaigns, serving ads into feed slots, clicks, conversions, measurement.

Serving (:func:`serve_ads`) runs after the feed page's transaction, in a savepoint of its own (a
failed ad step leaves the organic page whole). It reads a :class:`Book` (the active campaigns
with their creatives, targeting, today's spend and predicted CTRs: a serving process keeps one
in memory, :class:`agora.market.serving.MarketCache`) and a :class:`Viewer` (the user's filters
and interests: the feed's in-memory state when served), so a page does arithmetic and a few
indexed reads and writes:

1. active, scheduled campaigns with valid stored settings whose targeting matches the user
   (tags of the page they are about to see or of their activity; segments = their groups),
   with a creative the user may see: the feed's own filters hold (no take-down, no hidden
   item, no blocked or muted author, no muted topic); the creatives of running campaigns are
   never organic items (:meth:`Book.running_creatives`);
2. a user in a campaign's holdout (a hash of the campaign's salt and the user id, below
   ``holdout_share``) never gets its ads; their first eligibility is recorded in both arms;
3. a campaign at its frequency cap for the user today, or without budget to pay the reserve,
   does not bid; one ahead of its pacing curve bids with the pacing probability;
4. the remaining campaigns bid ``min(bid, budget left)`` with their best creative (by its
   predicted CTR: the CTR model's baseline for the pair, or the campaign's smoothed empirical
   CTR) in a GSP auction (:mod:`agora.market.auction`) over the page's ad slots; winners'
   impressions are stored with a per-day sequence number whose uniqueness enforces the cap in
   the database.

A click (:func:`record_click`) is charged the impression's price, capped at what is left of the
day's budget, so spend never exceeds it. :func:`report` measures a campaign, including the lift
of its conversion rate over its holdout; :func:`serving_status` says whether it can serve now
and, if not, why.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import bindparam, case, func, literal_column, or_, select, union_all
from sqlalchemy.orm import Session

from agora.api.errors import Conflict, Invalid, NotFound, problem
from agora.db import queries
from agora.db.engine import insert_for
from agora.db.tables import Event, Group, Item, Membership, User
from agora.experiments.assignment import unit_draw
from agora.market import pacing
from agora.market.auction import Win, gsp
from agora.market.config import MarketConfig
from agora.market.models import AdClick, AdConversion, AdImpression, Campaign, Eligibility
from agora.market.schemas import CampaignFields, CampaignIn
from agora.moderation.models import ModerationDecision
from agora.moderation.service import removed_item_ids
from agora.significance import pooled_two_proportion_p, z_quantile

#: Events of the user whose items' tags describe their interests (for tag targeting).
RECENT_EVENTS = 50
#: Empirical CTRs are counted over this many days of impressions.
CTR_DAYS = 14

#: Predicted click probabilities for rows of (user, item, campaign, tags, position, hour, ...).
CTRPredictor = Callable[[list[dict[str, Any]]], np.ndarray]


class UnknownCampaign(NotFound):
    """No campaign with this id."""


class UnknownReference(NotFound):
    """A user, item or impression named by a request is not in the store."""


class CampaignConflict(Conflict):
    """A campaign with this id exists with other settings."""


class MissingItems(NotFound):
    """Creatives that are not stored items (``missing`` lists them with their index; each is a
    problem at ``body.items.<index>``)."""

    def __init__(self, missing: list[tuple[int, str]]):
        self.missing = missing
        super().__init__(
            f"unknown items: {', '.join(item for _, item in missing)}",
            [
                problem(("body", "items", i), f"item {item!r} is not stored", "not_found")
                for i, item in missing
            ],
        )

    def body(self) -> dict[str, Any]:
        missing = ", ".join(repr(item) for _, item in self.missing)
        return {**super().body(), "detail": f"creatives not stored: {missing}"}


class InvalidCampaign(Invalid):
    """A change that would leave the campaign invalid: one problem per field, at
    ``body.<field>``; the message names each (``field: why; ...``)."""

    @classmethod
    def from_validation(cls, exc: ValidationError) -> InvalidCampaign:
        errors = exc.errors(include_url=False)
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".lstrip(": ") for e in errors
        )
        return cls(message, [problem(("body", *e["loc"]), e["msg"]) for e in errors])


@dataclass(frozen=True)
class Placement:
    """An ad placed on a feed page: where, which campaign and creative, at what price."""

    position: int
    campaign_id: str
    advertiser: str
    item_id: str
    impression_id: int
    price: float
    ctr: float
    title: str
    author_id: str | None
    tags: list[str]
    created: datetime


# ---------------------------------------------------------------- pure rules (also simulated)


def in_holdout(salt: str, user_id: str, share: float) -> bool:
    """Whether ``user_id`` is in the campaign's holdout: a stable hash of (salt, user) in [0, 1)
    below ``share``, so the same user is always in the same arm."""
    return unit_draw(salt, user_id) < share


def effective_bid(
    bid: float,
    budget: float,
    spent: float,
    cap: int,
    shown: int,
    share: float,
    config: MarketConfig,
    draw: float,
) -> float | None:
    """What a (non-held-out, targeted) campaign bids now, or None when it sits out: at its
    frequency cap, unable to pay the reserve from what is left of its budget, or throttled by
    pacing (``draw`` uniform in [0, 1) against the pass probability)."""
    left = budget - spent
    if shown >= cap or left < config.reserve_price or left <= 0:
        return None
    if config.pacing:
        p = pacing.pass_probability(
            spent, budget, share, config.pacing_tolerance, config.pacing_floor
        )
        if draw >= p:
            return None
    return min(bid, left)


def usable_slots(positions: Sequence[int], organic: int) -> list[int]:
    """Slot positions a page of ``organic`` items can carry: the j-th ad (0-based) at position
    p needs p - 1 items before it, of which j are earlier ads."""
    return [p for j, p in enumerate(sorted(positions)) if organic > 0 and p - 1 <= organic + j]


def wilson(k: int, n: int, confidence: float) -> tuple[float | None, float | None, float | None]:
    """Proportion k/n with its Wilson score interval (None when n = 0)."""
    if n <= 0:
        return None, None, None
    z = z_quantile(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def lift(
    k1: int, n1: int, k0: int, n0: int, confidence: float
) -> dict[str, float | int | str | dict | None]:
    """Conversion-rate lift of the exposed arm (k1 of n1) over the holdout (k0 of n0): the
    difference of proportions with Newcombe's hybrid score interval (from each arm's Wilson
    interval: sound with few or no conversions, where the Wald interval collapses) and the
    two-sided p-value of the pooled two-proportion z-test."""
    out: dict[str, Any] = {
        "method": "difference of proportions: Newcombe hybrid score interval (Wilson per arm); "
        "p-value from the pooled two-proportion z-test",
        "exposed_users": n1,
        "exposed_converters": k1,
        "holdout_users": n0,
        "holdout_converters": k0,
        "exposed_rate": k1 / n1 if n1 else None,
        "holdout_rate": k0 / n0 if n0 else None,
        "difference": {"estimate": None, "low": None, "high": None},
        "relative_lift": None,
        "incremental_conversions": None,
        "p_value": None,
    }
    if not n1 or not n0:
        return out
    p1, l1, u1 = wilson(k1, n1, confidence)
    p0, l0, u0 = wilson(k0, n0, confidence)
    diff = p1 - p0
    out["difference"] = {
        "estimate": diff,
        "low": diff - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
        "high": diff + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2),
    }
    out["relative_lift"] = diff / p0 if p0 > 0 else None
    out["incremental_conversions"] = diff * n1
    out["p_value"] = pooled_two_proportion_p(k1, n1, k0, n0)
    return out


# ---------------------------------------------------------------- campaigns


def _aware(t: datetime) -> datetime:
    """A stored time as UTC (SQLite hands times back without their zone)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _campaign(session: Session, campaign_id: str) -> Campaign:
    row = session.scalar(select(Campaign).where(Campaign.external_id == campaign_id))
    if row is None:
        raise UnknownCampaign(f"campaign {campaign_id!r} not found")
    return row


def _check_items(session: Session, items: list[str]) -> None:
    found = set(session.scalars(select(Item.external_id).where(Item.external_id.in_(items))))
    missing = [(i, item) for i, item in enumerate(items) if item not in found]
    if missing:
        raise MissingItems(missing)


def _fields(spec: CampaignFields) -> dict[str, Any]:
    return spec.model_dump(exclude={"campaign_id"})


def _same(row: Campaign, fields: dict[str, Any]) -> bool:
    return all(getattr(row, k) == v for k, v in fields.items())


def create_campaign(session: Session, spec: CampaignIn, now: datetime) -> tuple[Campaign, bool]:
    """Store a new campaign; returns (campaign, created). Re-sending the same campaign is a
    no-op; the same id with other settings raises :class:`CampaignConflict`."""
    fields = _fields(spec)
    existing = session.scalar(select(Campaign).where(Campaign.external_id == spec.campaign_id))
    if existing is not None:
        if _same(existing, fields):
            return existing, False
        raise CampaignConflict(
            f"campaign {spec.campaign_id!r} exists with other settings; PATCH it instead"
        )
    _check_items(session, spec.items)
    row = Campaign(
        external_id=spec.campaign_id,
        holdout_salt=secrets.token_hex(8),
        created=now,
        updated=now,
        **fields,
    )
    session.add(row)
    session.flush()
    return row, True


def update_campaign(
    session: Session, campaign_id: str, changes: dict[str, Any], now: datetime
) -> Campaign:
    """Change some fields of a campaign (its holdout salt never changes: arms stay put)."""
    row = _campaign(session, campaign_id)
    if "items" in changes:
        _check_items(session, changes["items"])
    merged = {**_stored_fields(row), **changes}
    try:
        CampaignFields.model_validate(merged)  # the whole campaign must stay valid
    except ValidationError as exc:
        raise InvalidCampaign.from_validation(exc) from exc
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated = now
    session.flush()
    return row


def list_campaigns(session: Session) -> list[Campaign]:
    """Every campaign, oldest first."""
    return list(session.scalars(select(Campaign).order_by(Campaign.id)))


def get_campaign(session: Session, campaign_id: str) -> Campaign:
    """One campaign by its id."""
    return _campaign(session, campaign_id)


def spent_on(session: Session, campaign_pks: Iterable[int], day: date) -> dict[int, float]:
    """Charged per campaign on ``day`` (UTC)."""
    pks = list(campaign_pks)
    if not pks:
        return {}
    rows = session.execute(
        select(AdClick.campaign_id, func.sum(AdClick.cost))
        .where(AdClick.campaign_id.in_(pks), AdClick.day == day)
        .group_by(AdClick.campaign_id)
    )
    return {pk: float(total or 0.0) for pk, total in rows}


def _stored_fields(row: Campaign) -> dict[str, Any]:
    """A stored campaign's fields (times in UTC: SQLite returns them without a zone)."""
    fields = {k: getattr(row, k) for k in CampaignFields.model_fields}
    for key in ("start_at", "end_at"):
        if fields[key] is not None:
            fields[key] = _aware(fields[key])
    return fields


def _entries(value: Any, kind: type) -> list:
    """The entries of type ``kind`` of a stored list (a row written around the API may hold
    anything in its JSON columns)."""
    return [v for v in value if isinstance(v, kind)] if isinstance(value, list) else []


def campaign_out(
    session: Session, row: Campaign, config: MarketConfig, now: datetime
) -> dict[str, Any]:
    """A campaign as the API shows it, with today's spend and whether it can serve now (its
    lists as far as they are lists: ``serving`` says what is wrong with an odd row)."""
    fields = _stored_fields(row)
    for key, kind in (("items", str), ("target_tags", str), ("target_segments", str)):
        fields[key] = _entries(fields[key], kind)
    fields["hours"] = _entries(fields["hours"], int)
    spent = spent_on(session, [row.id], now.date()).get(row.id, 0.0)
    return {
        "campaign_id": row.external_id,
        **fields,
        "spent_today": spent,
        "created": _aware(row.created),
        "updated": _aware(row.updated),
        "serving": serving_status(session, row, config, now),
    }


def _why(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "detail": detail}


def _audience(session: Session, c: Campaign) -> str | None:
    """Why no user can match the campaign's targeting, or None when some can: nobody is in its
    segments, or no item carries one of its tags (so no user's activity or page can)."""
    if c.target_segments:
        members = session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(Group, Group.id == Membership.group_id)
            .where(Group.external_id.in_(c.target_segments))
        )
        if not members:
            return f"no user is in its target segments ({', '.join(sorted(c.target_segments))})"
    if c.target_tags:
        wanted = set(c.target_tags)
        tagged = session.scalars(select(Item.tags).execution_options(yield_per=2000))
        try:  # streamed, and stopped at the first item that matches
            matched = any(wanted.intersection(tags or ()) for tags in tagged)
        finally:
            tagged.close()
        if not matched:
            return (
                f"no item carries one of its target tags ({', '.join(sorted(wanted))}), so no "
                "user's activity or page can match them"
            )
    return None


def serving_status(
    session: Session, c: Campaign, config: MarketConfig, now: datetime
) -> dict[str, Any]:
    """Whether the campaign can win an ad slot now (``serving``/``not_serving``), with every
    reason against it found in the store and the settings (``reasons``), and problems that do
    not stop it (``notes``: some creatives unusable, every eligible user capped today)."""
    reasons: list[dict[str, str]] = []
    notes: list[dict[str, str]] = []
    invalid = _invalid(c)
    if invalid is not None:
        reasons.append(
            _why("invalid_settings", f"its stored settings are invalid ({invalid}); PATCH it")
        )
        return {"status": "not_serving", "reasons": reasons, "notes": notes}
    if not config.enabled or not config.slot_positions:
        reasons.append(_why("ads_disabled", "the platform has no ad slots (market settings)"))
    if c.status != "active":
        reasons.append(_why("paused", f"its status is {c.status}; PATCH status=active"))
    start = None if c.start_at is None else _aware(c.start_at)
    end = None if c.end_at is None else _aware(c.end_at)
    if start is not None and start > now:
        reasons.append(_why("not_started", f"it starts at {start.isoformat()}"))
    if end is not None and end <= now:
        reasons.append(_why("ended", f"it ended at {end.isoformat()}"))
    if c.hours and now.hour not in c.hours:
        hours = ", ".join(str(h) for h in sorted(c.hours))
        reasons.append(_why("outside_hours", f"it runs in UTC hours {hours}; now is {now.hour}"))
    if c.bid < config.reserve_price:
        reasons.append(
            _why(
                "bid_below_reserve",
                f"its bid {c.bid:g} is below the reserve price {config.reserve_price:g}",
            )
        )
    today = now.date()
    spent = spent_on(session, [c.id], today).get(c.id, 0.0)
    if c.daily_budget - spent < config.reserve_price or c.daily_budget <= spent:
        reasons.append(
            _why(
                "budget_spent",
                f"{spent:g} of today's budget {c.daily_budget:g} is spent (less than the "
                f"reserve price {config.reserve_price:g} is left); it serves again tomorrow (UTC)",
            )
        )
    info = _creatives(session, c.items)
    removed = removed_item_ids(session, [row.pk for row in info.values()])
    gone = [f"{item} (not stored)" for item in c.items if item not in info]
    gone += [
        f"{item} (taken down)" for item in c.items if item in info and info[item].pk in removed
    ]
    if len(gone) == len(c.items):
        reasons.append(_why("no_creatives", f"no creative can be shown: {', '.join(gone)}"))
    elif gone:
        notes.append(_why("creatives_unavailable", f"not shown: {', '.join(gone)}"))
    nobody = _audience(session, c)
    if nobody is not None:
        reasons.append(_why("no_audience", nobody))
    exposed = session.scalar(
        select(func.count()).where(Eligibility.campaign_id == c.id, Eligibility.holdout.is_(False))
    )
    capped = session.scalar(
        select(func.count(func.distinct(AdImpression.user_id))).where(
            AdImpression.campaign_id == c.id,
            AdImpression.day == today,
            AdImpression.nth >= c.frequency_cap,
        )
    )
    if exposed and capped >= exposed:
        notes.append(
            _why(
                "frequency_capped",
                f"every user eligible so far ({exposed}) saw it {c.frequency_cap} times today "
                "(its frequency cap); only other users can see it until tomorrow (UTC)",
            )
        )
    return {"status": "not_serving" if reasons else "serving", "reasons": reasons, "notes": notes}


# ---------------------------------------------------------------- CTR


def click_stats(
    session: Session, campaign_pks: Sequence[int], now: datetime
) -> dict[int, tuple[float, int]]:
    """Per campaign: (charged today, clicks over the last ``CTR_DAYS``), in one query."""
    today = now.date()
    rows = session.execute(
        select(
            AdClick.campaign_id,
            func.sum(case((AdClick.day == today, AdClick.cost), else_=0.0)),
            func.count(),
        )
        .where(
            AdClick.campaign_id.in_(campaign_pks),
            AdClick.clicked >= now - timedelta(days=CTR_DAYS),
        )
        .group_by(AdClick.campaign_id)
    )
    return {pk: (float(spent or 0.0), int(n)) for pk, spent, n in rows}


def empirical_ctr(
    session: Session,
    campaign_pks: Sequence[int],
    clicks: dict[int, int],
    config: MarketConfig,
    now: datetime,
) -> dict[int, float]:
    """Smoothed CTR per campaign over the last ``CTR_DAYS``:
    (clicks + prior x w) / (impressions + w)."""
    shown = dict(
        session.execute(
            select(AdImpression.campaign_id, func.count())
            .where(
                AdImpression.campaign_id.in_(campaign_pks),
                AdImpression.served >= now - timedelta(days=CTR_DAYS),
            )
            .group_by(AdImpression.campaign_id)
        ).all()
    )
    w, prior = config.ctr_prior_weight, config.ctr_prior
    return {pk: (clicks.get(pk, 0) + prior * w) / (shown.get(pk, 0) + w) for pk in campaign_pks}


_LOADED_CTR: dict[Path, tuple[float, Any]] = {}


def ctr_model(config: MarketConfig) -> CTRPredictor | None:
    """The trained CTR model at ``config.ctr_model_path`` (reloaded when the file changes), or
    None when none is configured or saved (serving falls back to the empirical CTR)."""
    path = config.ctr_model_path
    if path is None or not path.exists():
        return None
    from agora.market.ctr import CTRModel  # the model is optional: imported only when saved

    stamp = path.stat().st_mtime
    cached = _LOADED_CTR.get(path)
    if cached is None or cached[0] != stamp:
        cached = (stamp, CTRModel.load(path))
        _LOADED_CTR[path] = cached
    return cached[1].predict


# ---------------------------------------------------------------- serving


_PROFILES: dict[tuple[str, date, int], np.ndarray] = {}


def _profile(session: Session, config: MarketConfig, today: date) -> np.ndarray:
    """The hourly traffic forecast, computed once per day per database in this process."""
    key = (str(session.get_bind().url), today, config.profile_days)
    if key not in _PROFILES:
        _PROFILES.clear()
        _PROFILES[key] = pacing.traffic_profile(session, config.profile_days)
    return _PROFILES[key]


def _invalid(row: Campaign) -> str | None:
    """Why a stored campaign's settings are unusable (a row written around the API, or by an
    older version), or None when they are valid: such a campaign never enters the auction."""
    try:
        CampaignFields.model_validate(_stored_fields(row))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "campaign"
        return f"{where}: {first['msg']}"
    return None


@dataclass(frozen=True)
class Creative:
    """A stored creative of an active campaign, as its ad shows it."""

    pk: int
    item_id: str
    title: str
    tags: tuple[str, ...]
    author_pk: int | None
    author_id: str | None
    created: datetime


@dataclass(frozen=True)
class Bidder:
    """An active campaign with valid stored settings, as the auction reads it."""

    pk: int
    campaign_id: str
    advertiser: str
    items: tuple[str, ...]
    target_tags: frozenset[str]
    members: frozenset[int] | None  # user pks in its target segments (None: not targeted)
    bid: float
    daily_budget: float
    frequency_cap: int
    start_at: datetime | None
    end_at: datetime | None
    hours: frozenset[int]
    holdout_salt: str

    def runs(self, now: datetime) -> bool:
        """Whether its schedule (window and UTC hours) holds ``now``."""
        return (
            (self.start_at is None or self.start_at <= now)
            and (self.end_at is None or self.end_at > now)
            and (not self.hours or now.hour in self.hours)
        )


@dataclass
class Book:
    """Everything the auction reads besides the page and its user (:func:`read_book`): the
    active campaigns with their creatives (those not taken down), targeting and segments'
    members, what each spent today, the predicted CTR of each (campaign, creative) per UTC hour
    and the traffic forecast (pacing on). A serving process keeps one in memory
    (:class:`agora.market.serving.MarketCache`), so a page only does arithmetic on it."""

    day: date
    bidders: list[Bidder]
    creatives: dict[str, Creative]
    spent: dict[int, float]  # campaign pk -> charged on ``day``
    ctrs: dict[tuple[int, str], tuple[float, ...]]  # (campaign pk, item) -> CTR per UTC hour
    profile: np.ndarray | None
    decided: int = 0  # the newest moderation decision when read (pages check later take-downs)

    def running(self, now: datetime) -> list[Bidder]:
        """The campaigns whose schedule holds ``now``."""
        return [b for b in self.bidders if b.runs(now)]

    def running_creatives(self, now: datetime) -> frozenset[str]:
        """Items that are creatives of a campaign running now: the feed never shows them as
        organic content (the auction would then skip them: they are on the page already)."""
        return frozenset(item for b in self.running(now) for item in b.items)


@dataclass(frozen=True)
class Viewer:
    """The user a page is for, as the ads need them: ``allows`` applies the feed's filters to
    a creative (blocked or muted authors, muted topics, hidden items); ``interests`` gives the
    tags of the user's activity, asked for only when the page's own tags leave a campaign's
    tag targeting open."""

    pk: int
    user_id: str
    allows: Callable[[Creative], bool]
    interests: Callable[[], Collection[str]]


def _members(session: Session, segments: Collection[str]) -> dict[str, set[int]]:
    """The user pks of each segment (group) named."""
    out: dict[str, set[int]] = {}
    if segments:
        for group, user in session.execute(
            select(Group.external_id, Membership.user_id)
            .join(Membership, Membership.group_id == Group.id)
            .where(Group.external_id.in_(list(segments)))
        ):
            out.setdefault(group, set()).add(user)
    return out


def _baseline_ctrs(
    session: Session,
    pairs: list[tuple[Bidder, str]],
    creatives: dict[str, Creative],
    config: MarketConfig,
    now: datetime,
) -> dict[tuple[int, str], tuple[float, ...]]:
    """Predicted CTR of each (campaign, creative) per UTC hour: the CTR model's for the pair in
    the page's first ad slot, without the user's own fields (so it is computed once for every
    user), or else the campaign's smoothed empirical CTR of the last ``CTR_DAYS``."""
    if not pairs:
        return {}
    model = ctr_model(config)
    if model is not None:
        position = min(config.slot_positions, default=1)
        rows = [
            {
                "item_id": item,
                "campaign_id": b.campaign_id,
                "tags": list(creatives[item].tags),
                "position": position,
                "hour": hour,
            }
            for b, item in pairs
            for hour in range(pacing.HOURS)
        ]
        p = np.asarray(model(rows), dtype=float).reshape(len(pairs), pacing.HOURS)
        return {
            (b.pk, item): tuple(map(float, row)) for (b, item), row in zip(pairs, p, strict=True)
        }
    pks = sorted({b.pk for b, _ in pairs})
    clicks = {pk: n for pk, (_, n) in click_stats(session, pks, now).items()}
    rates = empirical_ctr(session, pks, clicks, config, now)
    return {(b.pk, item): (rates[b.pk],) * pacing.HOURS for b, item in pairs}


def read_book(
    session: Session, config: MarketConfig, now: datetime, previous: Book | None = None
) -> Book:
    """The :class:`Book` as the store holds it at ``now``. The CTRs of pairs that ``previous``
    holds are kept from it (a serving process recomputes them all less often than it reads the
    rest); the other pairs' are predicted now."""
    rows = session.scalars(
        select(Campaign)
        .where(Campaign.status == "active", or_(Campaign.end_at.is_(None), Campaign.end_at > now))
        .order_by(Campaign.id)
    )
    valid = [c for c in rows if _invalid(c) is None]
    members = _members(session, {s for c in valid for s in c.target_segments})
    bidders = [
        Bidder(
            pk=c.id,
            campaign_id=c.external_id,
            advertiser=c.advertiser,
            items=tuple(c.items),
            target_tags=frozenset(c.target_tags),
            members=(
                frozenset(u for s in c.target_segments for u in members.get(s, ()))
                if c.target_segments
                else None
            ),
            bid=c.bid,
            daily_budget=c.daily_budget,
            frequency_cap=c.frequency_cap,
            start_at=None if c.start_at is None else _aware(c.start_at),
            end_at=None if c.end_at is None else _aware(c.end_at),
            hours=frozenset(c.hours),
            holdout_salt=c.holdout_salt,
        )
        for c in valid
    ]
    decided = session.scalar(select(func.max(ModerationDecision.id))) or 0
    creatives = _creatives(session, {item for b in bidders for item in b.items})
    removed = removed_item_ids(session, [c.pk for c in creatives.values()])
    creatives = {item: c for item, c in creatives.items() if c.pk not in removed}
    kept = previous.ctrs if previous is not None else {}
    pairs = [(b, item) for b in bidders for item in b.items if item in creatives]
    ctrs = {(b.pk, item): kept[b.pk, item] for b, item in pairs if (b.pk, item) in kept}
    missing = [(b, item) for b, item in pairs if (b.pk, item) not in ctrs]
    ctrs.update(_baseline_ctrs(session, missing, creatives, config, now))
    today = now.date()
    return Book(
        day=today,
        bidders=bidders,
        creatives=creatives,
        spent=spent_on(session, [b.pk for b in bidders], today),
        ctrs=ctrs,
        profile=_profile(session, config, today) if config.pacing else None,
        decided=decided,
    )


def recent_tags(session: Session, user_pk: int) -> set[str]:
    """Tags of the items of the user's latest ``RECENT_EVENTS`` events: their interests when
    no served page gives them (:func:`agora.feed.service.ad_viewer`)."""
    rows = session.scalars(
        select(Item.tags)
        .join(Event, Event.item_id == Item.id)
        .where(Event.user_id == user_pk)
        .order_by(Event.timestamp.desc())
        .limit(RECENT_EVENTS)
    )
    return {t for tags in rows for t in tags or ()}


def _targeted(bidders: list[Bidder], viewer: Viewer, page_tags: set[str]) -> list[Bidder]:
    """The campaigns whose targeting matches the user (an empty list matches everyone): one of
    its segments holds them, and one of its tags is on the page or in their interests."""
    interests: set[str] | None = None
    out = []
    for b in bidders:
        if b.members is not None and viewer.pk not in b.members:
            continue
        if b.target_tags and b.target_tags.isdisjoint(page_tags):
            if interests is None:
                interests = set(viewer.interests())
            if b.target_tags.isdisjoint(interests):
                continue
        out.append(b)
    return out


#: What a page reads of the store, in one round trip, as (kind, key, value) rows: the campaigns
#: with the user's arm recorded (kind 0), the user's ad impressions today per campaign (kind 1,
#: the highest ``nth``) and the items taken down after the book was read (kind 2: an upheld
#: decision, as :func:`agora.moderation.service.removed_item_ids` says, newer than its mark)
_PAGE_STATE = union_all(
    select(literal_column("0"), Eligibility.campaign_id, literal_column("0")).where(
        Eligibility.user_id == bindparam("user")
    ),
    select(literal_column("1"), AdImpression.campaign_id, func.max(AdImpression.nth))
    .where(AdImpression.user_id == bindparam("user"), AdImpression.day == bindparam("day"))
    .group_by(AdImpression.campaign_id),
    select(literal_column("2"), ModerationDecision.item_id, literal_column("0")).where(
        ModerationDecision.id > bindparam("mark"), ModerationDecision.outcome == "uphold"
    ),
)


def _page_state(
    session: Session, user_pk: int, day: date, mark: int
) -> tuple[set[int], dict[int, int], set[int]]:
    """(campaigns with the user's arm recorded, their ad impressions on ``day`` per campaign,
    item pks taken down after decision ``mark``): see ``_PAGE_STATE``."""
    known: set[int] = set()
    shown: dict[int, int] = {}
    taken_down: set[int] = set()
    params = {"user": user_pk, "day": day, "mark": mark}
    for kind, key, value in session.connection().execute(_PAGE_STATE, params):
        if kind == 0:
            known.add(key)
        elif kind == 1:
            shown[key] = value
        else:
            taken_down.add(key)
    return known, shown, taken_down


_INSERTS: dict[str, tuple[Any, Any]] = {}


def _inserts(session: Session) -> tuple[Any, Any]:
    """The ad step's two inserts (first eligibility; impressions, returning their ids) for the
    session's dialect, built once: a page only binds its rows."""
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        _INSERTS[dialect] = (
            insert_for(session, Eligibility.__table__).on_conflict_do_nothing(
                index_elements=["campaign_id", "user_id"]
            ),
            insert_for(session, AdImpression.__table__)
            .on_conflict_do_nothing(index_elements=["campaign_id", "user_id", "day", "nth"])
            .returning(AdImpression.id, AdImpression.campaign_id),
        )
    return _INSERTS[dialect]


def _record_eligibility(
    session: Session,
    viewer: Viewer,
    bidders: list[Bidder],
    known: set[int],
    share: float,
    now: datetime,
) -> dict[int, bool]:
    """Each campaign's arm for this user (True = holdout), storing first eligibility (unless
    ``known``: recorded already)."""
    arms = {b.pk: in_holdout(b.holdout_salt, viewer.user_id, share) for b in bidders}
    new = [
        {"campaign_id": pk, "user_id": viewer.pk, "holdout": held, "first_seen": now}
        for pk, held in arms.items()
        if pk not in known
    ]
    if new:  # a concurrent request may have recorded one first: keep its row
        session.connection().execute(_inserts(session)[0], new)
    return arms


def _creatives(session: Session, items: Collection[str]) -> dict[str, Creative]:
    """The stored ones among ``items``."""
    return {
        row.external_id: Creative(
            pk=row.id,
            item_id=row.external_id,
            title=row.title,
            tags=tuple(row.tags or ()),
            author_pk=row.author_id,
            author_id=author,
            created=row.created,
        )
        for row, author in session.execute(
            select(Item, User.external_id)
            .outerjoin(User, User.id == Item.author_id)
            .where(Item.external_id.in_(list(items)))
        )
    }


def serve_ads(
    session: Session,
    viewer: Viewer | None,
    page: Sequence[tuple[str, Sequence[str]]],
    config: MarketConfig,
    now: datetime,
    rng: np.random.Generator | None = None,
    *,
    book: Book | None = None,
) -> list[Placement]:
    """Auction the ad slots of a feed page for ``viewer`` and store the winners' impressions
    (none for no viewer: an unknown user).

    ``page`` is the organic page in order as (item id, tags). Returns the ads with their
    1-based positions on the final page (organic items shift down by one per earlier ad).

    The feed gives the ``viewer``: from its in-memory state when a serving process passes its
    ``book`` (:class:`agora.market.serving.MarketCache`), else from the store
    (:func:`agora.feed.service.ad_viewer`). The page then reads, in one round trip, the user's
    recorded arms and ad impressions of the day and the take-downs newer than the book, and
    writes the eligibility and impression rows. Without a book, one is read for this page."""
    slots = usable_slots(config.slot_positions, len(page)) if config.enabled else []
    if not slots:
        return []
    book = book if book is not None else read_book(session, config, now)
    running = book.running(now)
    if not running:
        return []
    if viewer is None:
        return []
    targeted = _targeted(running, viewer, {t for _, tags in page for t in tags})
    if not targeted:
        return []
    # the feed's filters hold for ads: no taken-down creative, nothing the user hid, no author
    # they blocked or muted, no muted topic (and nothing already on the page); a campaign with
    # nothing left to show is not eligible for this user, in either arm
    today = now.date()
    known, shown, taken_down = _page_state(session, viewer.pk, today, book.decided)
    creatives = _showable_creatives(book, targeted, page, viewer, taken_down)
    targeted = [b for b in targeted if creatives[b.pk]]
    if not targeted:
        return []
    arms = _record_eligibility(session, viewer, targeted, known, config.holdout_share, now)
    exposed = [b for b in targeted if not arms[b.pk]]
    if not exposed:
        return []
    offers = _offers(book, exposed, creatives, shown, config, now, rng or np.random.default_rng())
    if not offers:
        return []
    won = _auction(book, offers, len(slots), config, now)
    if not won:
        return []
    return _store_placements(session, book, viewer, won, shown, slots, now)


#: An offer in a page's auction: the campaign, its effective bid, the creative (item id).
Offer = tuple[Bidder, float, str]


def _showable_creatives(
    book: Book,
    targeted: list[Bidder],
    page: Sequence[tuple[str, Sequence[str]]],
    viewer: Viewer,
    taken_down: set[int],
) -> dict[int, list[str]]:
    """Each targeted campaign's creatives this page may show.

    The feed's filters hold for ads: no taken-down creative, nothing the user hid, no author
    they blocked or muted, no muted topic (and nothing already on the page); a campaign with
    nothing left to show is not eligible for this user, in either arm."""
    on_page = {item for item, _ in page}
    showable = {
        item
        for b in targeted
        for item in b.items
        if item in book.creatives
        and item not in on_page
        and book.creatives[item].pk not in taken_down
        and viewer.allows(book.creatives[item])
    }
    return {b.pk: [item for item in b.items if item in showable] for b in targeted}


def _offers(
    book: Book,
    exposed: list[Bidder],
    creatives: dict[int, list[str]],
    shown: dict[int, int],
    config: MarketConfig,
    now: datetime,
    rng: np.random.Generator,
) -> list[Offer]:
    """Every creative of each exposed campaign at the campaign's paced bid (a campaign out of
    budget, past its frequency cap or held back by pacing makes none)."""
    spent = book.spent if book.day == now.date() else {}  # a new day: nothing spent yet
    share = pacing.target_share(book.profile, now) if book.profile is not None else 0.0
    offers: list[Offer] = []
    for b in exposed:
        bid = effective_bid(
            b.bid,
            b.daily_budget,
            spent.get(b.pk, 0.0),
            b.frequency_cap,
            shown.get(b.pk, 0),
            share,
            config,
            float(rng.random()),
        )
        if bid is not None:
            offers.extend((b, bid, item) for item in creatives[b.pk])
    return offers


def _auction(
    book: Book, offers: list[Offer], n_slots: int, config: MarketConfig, now: datetime
) -> dict[int, tuple[Win, Offer]]:
    """The GSP auction of the slots among each campaign's offer with the best predicted CTR
    this hour: campaign pk -> (its win, its offer)."""
    ctrs = np.array([book.ctrs[b.pk, item][now.hour] for b, _, item in offers])
    best: dict[int, int] = {}  # campaign -> its offer with the best predicted CTR
    for k, (b, _, _) in enumerate(offers):
        if b.pk not in best or ctrs[k] > ctrs[best[b.pk]]:
            best[b.pk] = k
    chosen = list(best.values())
    wins = gsp(
        [offers[k][1] for k in chosen],
        ctrs[chosen],
        n_slots,
        config.reserve_price,
        config.epsilon,
    )
    return {offers[chosen[w.index]][0].pk: (w, offers[chosen[w.index]]) for w in wins}


def _store_placements(
    session: Session,
    book: Book,
    viewer: Viewer,
    won: dict[int, tuple[Win, Offer]],
    shown: dict[int, int],
    slots: list[int],
    now: datetime,
) -> list[Placement]:
    """Store the winners' impressions and return them as placements, in page order.

    The cap's unique (campaign, user, day, nth): an ad whose slot a concurrent page took is
    not stored, and not shown."""
    rows = [
        {
            "campaign_id": b.pk,
            "user_id": viewer.pk,
            "item_id": book.creatives[item].pk,
            "day": now.date(),
            "nth": shown.get(b.pk, 0) + 1,
            "position": slots[w.slot],
            "price": w.price,
            "ctr": w.ctr,
            "served": now,
        }
        for w, (b, _, item) in won.values()
    ]
    stored = session.connection().execute(_inserts(session)[1], rows).all()
    placed = []
    for impression_id, pk in stored:
        w, (b, _, item) = won[pk]
        creative = book.creatives[item]
        placed.append(
            Placement(
                position=slots[w.slot],
                campaign_id=b.campaign_id,
                advertiser=b.advertiser,
                item_id=item,
                impression_id=impression_id,
                price=w.price,
                ctr=w.ctr,
                title=creative.title,
                author_id=creative.author_id,
                tags=list(creative.tags),
                created=creative.created,
            )
        )
    return sorted(placed, key=lambda p: p.position)


# ---------------------------------------------------------------- clicks and conversions


def record_click(session: Session, impression_id: int, now: datetime) -> tuple[AdClick, str, bool]:
    """Charge a click on an ad impression once: (click, campaign id, duplicate). The cost is
    the impression's GSP price, capped at what is left of today's budget."""
    impression = session.get(AdImpression, impression_id)
    if impression is None:
        raise UnknownReference(f"ad impression {impression_id} not found")
    campaign = session.scalars(
        select(Campaign).where(Campaign.id == impression.campaign_id).with_for_update()
    ).one()
    existing = session.scalar(select(AdClick).where(AdClick.impression_id == impression_id))
    if existing is not None:
        return existing, campaign.external_id, True
    today = now.date()
    spent = spent_on(session, [campaign.id], today).get(campaign.id, 0.0)
    click = AdClick(
        impression_id=impression_id,
        campaign_id=campaign.id,
        user_id=impression.user_id,
        cost=pacing.charge(impression.price, spent, campaign.daily_budget),
        day=today,
        clicked=now,
    )
    session.add(click)
    session.flush()
    return click, campaign.external_id, False


def record_conversion(
    session: Session,
    conversion_id: str,
    campaign_id: str,
    user_id: str,
    now: datetime,
    item_id: str | None = None,
    value: float | None = None,
    timestamp: datetime | None = None,
) -> tuple[AdConversion, bool]:
    """Store a conversion reported by the platform once: (conversion, duplicate)."""
    existing = session.scalar(
        select(AdConversion).where(AdConversion.conversion_id == conversion_id)
    )
    if existing is not None:
        return existing, True
    campaign = _campaign(session, campaign_id)
    user_pk = queries.user_pk(session, user_id)
    if user_pk is None:
        raise UnknownReference(f"user {user_id!r} not found")
    item_pk = None
    if item_id is not None:
        item_pk = session.scalar(select(Item.id).where(Item.external_id == item_id))
        if item_pk is None:
            raise UnknownReference(f"item {item_id!r} not found")
    row = AdConversion(
        conversion_id=conversion_id,
        campaign_id=campaign.id,
        user_id=user_pk,
        item_id=item_pk,
        value=campaign.conversion_value if value is None else value,
        timestamp=timestamp or now,
    )
    session.add(row)
    session.flush()
    return row, False


# ---------------------------------------------------------------- measurement


def _conversions(session: Session, campaign: Campaign, user_pks: select) -> list[tuple]:
    """(user pk, time, value) of every conversion of ``campaign`` by the users selected: events
    of its conversion type on its items, and conversions reported through the API."""
    item_pks = select(Item.id).where(Item.external_id.in_(_entries(campaign.items, str)))
    events = session.execute(
        select(Event.user_id, Event.timestamp).where(
            Event.item_id.in_(item_pks),
            Event.type == campaign.conversion_event,
            Event.user_id.in_(user_pks),
        )
    ).all()
    reported = session.execute(
        select(AdConversion.user_id, AdConversion.timestamp, AdConversion.value).where(
            AdConversion.campaign_id == campaign.id, AdConversion.user_id.in_(user_pks)
        )
    ).all()
    out = [(u, _aware(t), campaign.conversion_value) for u, t in events]
    return out + [(u, _aware(t), v) for u, t, v in reported]


def report(session: Session, campaign_id: str, config: MarketConfig, now: datetime) -> dict:
    """A campaign's measurement: impressions, clicks, CTR, spend, CPC, post-click conversions,
    CVR, value and ROI, and the lift of its conversion rate over its holdout."""
    c = _campaign(session, campaign_id)
    impressions = session.scalar(
        select(func.count()).select_from(AdImpression).where(AdImpression.campaign_id == c.id)
    )
    clicks = session.execute(
        select(AdClick.user_id, AdClick.clicked, AdClick.cost).where(AdClick.campaign_id == c.id)
    ).all()
    spend = float(sum(cost for _, _, cost in clicks))
    window = timedelta(days=config.attribution_days)

    clickers = select(AdClick.user_id).where(AdClick.campaign_id == c.id)
    by_user: dict[int, list[tuple[datetime, float]]] = {}
    for u, t, v in _conversions(session, c, clickers):
        by_user.setdefault(u, []).append((t, v))
    converted, value = 0, 0.0
    for u, clicked, _ in clicks:
        start = _aware(clicked)
        after = sorted(x for x in by_user.get(u, []) if start <= x[0] <= start + window)
        if after:
            converted += 1
            value += after[0][1]

    arms = session.execute(
        select(Eligibility.user_id, Eligibility.holdout, Eligibility.first_seen).where(
            Eligibility.campaign_id == c.id
        )
    ).all()
    eligible = select(Eligibility.user_id).where(Eligibility.campaign_id == c.id)
    first: dict[int, datetime] = {}
    for u, t, _ in _conversions(session, c, eligible):
        first[u] = min(first.get(u, t), t)
    n = {True: 0, False: 0}
    k = {True: 0, False: 0}
    for u, held, seen in arms:
        n[held] += 1
        if u in first and first[u] >= _aware(seen):
            k[held] += 1

    ctr = wilson(len(clicks), impressions, config.confidence)
    cvr = wilson(converted, len(clicks), config.confidence)
    return {
        "campaign_id": c.external_id,
        "impressions": impressions,
        "clicks": len(clicks),
        "ctr": dict(zip(("estimate", "low", "high"), ctr, strict=True)),
        "spend": spend,
        "cpc": spend / len(clicks) if clicks else None,
        "conversions": converted,
        "cvr": dict(zip(("estimate", "low", "high"), cvr, strict=True)),
        "conversion_value": value,
        "roi": (value - spend) / spend if spend > 0 else None,
        "spent_today": spent_on(session, [c.id], now.date()).get(c.id, 0.0),
        "lift": lift(k[False], n[False], k[True], n[True], config.confidence),
        "serving": serving_status(session, c, config, now),
    }


def pacing_today(
    session: Session, campaign_id: str, config: MarketConfig, now: datetime
) -> dict[str, Any]:
    """Today's spend of a campaign against its pacing curve (UTC day up to ``now``): the
    cumulative charge after each click, and the target the pacer steers by, the daily budget
    times the share of the day's forecast traffic before each hour (as :func:`serve_ads`
    paces), with its value now."""
    c = _campaign(session, campaign_id)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    clicks = session.execute(
        select(AdClick.clicked, AdClick.cost)
        .where(AdClick.campaign_id == c.id, AdClick.day == now.date())
        .order_by(AdClick.clicked, AdClick.id)
    ).all()
    spent, spend = 0.0, [(midnight, 0.0)]
    for clicked, cost in clicks:
        spent += float(cost)
        spend.append((_aware(clicked), spent))
    spend.append((now, spent))
    profile = _profile(session, config, now.date())
    budget = float(c.daily_budget)
    target = [
        (midnight + timedelta(hours=h), budget * float(profile[:h].sum()))
        for h in range(pacing.HOURS + 1)
    ]
    return {
        "budget": budget,
        "spent": spent,
        "spend": spend,
        "target": target,
        "target_now": budget * pacing.target_share(profile, now),
        "paced": config.pacing,
    }
