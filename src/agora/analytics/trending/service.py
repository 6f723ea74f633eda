"""Trending topics and opinion alerts.

**Burst detector** (:func:`flag_bursts`, :func:`detect_bursts`). Volumes are counted per key (a
tag, or a keyword of the title and body: English words and jieba words of two or more characters
for Chinese, from ``agora.features.text.tokenize``) per time bucket (hour, day or week). A key's
*baseline* at bucket t is an exponentially weighted moving average (EWMA, half-life ``halflife``
buckets) of its counts before t, started at the mean of the first ``warmup`` buckets. Bucket t
is *bursting* when its count c is at least ``min_count``, above the baseline b, and improbable
under a Poisson law with mean max(b, ``floor``): P(X >= c) < ``alpha``. Consecutive bursting
buckets of a key form one burst. The baseline keeps adapting during a burst, so a lasting change
becomes the new normal instead of an endless burst.

**Alerts** (:func:`evaluate_alerts`). A rule (``analytics_alert_rules``) watches one tag or any
tag: ``volume_spike`` fires when the last bucket before ``now`` bursts against the mean of the
``baseline_buckets`` before it (the detector above with ``warmup = baseline_buckets``) at
``threshold`` = alpha; ``sentiment_drop`` fires when the mean sentiment score (P(positive) -
P(negative), from ``agora.analytics.sentiment.service.score_store``) of the tag's posts and
comments in the last bucket is at least ``threshold`` below its mean over the
``baseline_buckets`` before, with at least ``min_count`` texts in both. An *episode* (a row of
``analytics_alerts``) opens the first time the condition holds (the alert fires once), stays
open while it keeps holding and is closed at the first evaluation where it does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agora.analytics.models import OPEN, AlertEpisode, AlertRule
from agora.analytics.sentiment.service import score_store
from agora.db import queries
from agora.db.tables import Event, Item, as_utc
from agora.features.text import tokenize

#: Bucket widths in seconds.
BUCKETS: dict[str, int] = {"hour": 3600, "day": 86400, "week": 7 * 86400}
Bucket = Literal["hour", "day", "week"]


class Scorer(Protocol):
    """What sentiment alerts need: ``predict(texts) -> (labels, scores in [-1, 1])``."""

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]: ...


@dataclass
class VolumeSeries:
    """Counts per key (rows, in ``keys`` order) per bucket (columns) from ``start``."""

    keys: list[str]
    start: datetime
    width: int
    counts: np.ndarray

    def bucket_start(self, t: int) -> datetime:
        return self.start + timedelta(seconds=self.width * int(t))


def count_series(
    records: Iterable[tuple[datetime, Iterable[str]]],
    width: int,
    start: datetime,
    end: datetime,
) -> VolumeSeries:
    """Count each record once per distinct key in the bucket of its time; records outside
    ``[start, end)`` are ignored. ``end - start`` is rounded up to whole buckets."""
    start, end = as_utc(start), as_utc(end)
    n_buckets = max(1, -(-int((end - start).total_seconds()) // width))
    index: dict[str, int] = {}
    rows, cols = [], []
    for when, keys in records:
        offset = (as_utc(when) - start).total_seconds()
        if offset < 0 or as_utc(when) >= end:
            continue
        t = int(offset // width)
        for key in dict.fromkeys(keys):
            rows.append(index.setdefault(key, len(index)))
            cols.append(t)
    counts = np.zeros((len(index), n_buckets), dtype=np.int64)
    np.add.at(counts, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)), 1)
    return VolumeSeries(list(index), start, width, counts)


def ewma_baseline(counts: np.ndarray, halflife: float = 7.0, warmup: int = 7) -> np.ndarray:
    """Each key's EWMA of its counts before each bucket, started at the mean of the first
    ``warmup`` buckets (NaN during the warm-up); shaped like ``counts``."""
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    k, n = counts.shape
    baseline = np.full((k, n), np.nan)
    if n > warmup >= 1:
        alpha = 1.0 - 0.5 ** (1.0 / halflife)
        level = counts[:, :warmup].mean(axis=1)
        for t in range(warmup, n):
            baseline[:, t] = level
            level = (1.0 - alpha) * level + alpha * counts[:, t]
    return baseline


@dataclass(frozen=True)
class Burst:
    """One burst of a key: buckets ``[start, end)``, its largest count and that bucket's
    baseline, the smallest tail probability of its buckets and its total count."""

    key: str
    start: datetime
    end: datetime
    peak_count: int
    baseline: float
    p_value: float
    total: int


def flag_bursts(
    counts: np.ndarray,
    halflife: float = 7.0,
    warmup: int = 7,
    alpha: float = 1e-3,
    min_count: int = 5,
    floor: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bursting flags, baselines, p-values) per key and bucket (see the module docstring).

    P-values are computed where a bucket can burst (past the warm-up, at least ``min_count``
    and above its baseline) and are 1 elsewhere: most keys of a keyword series are rare
    words, and the Poisson tail of every cell would be most of the detector's time."""
    # scipy.stats is imported on use: at module level it cost every command and server start
    # about half a second
    from scipy.stats import poisson

    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    baseline = ewma_baseline(counts, halflife, warmup)
    known = ~np.isnan(baseline)
    mean = np.where(known, np.maximum(np.nan_to_num(baseline), floor), floor)
    possible = known & (counts >= min_count) & (counts > mean)
    p_value = np.ones_like(counts)
    p_value[possible] = poisson.sf(counts[possible] - 1, mean[possible])
    flags = possible & (p_value < alpha)
    return flags, baseline, p_value


def detect_bursts(
    series: VolumeSeries,
    halflife: float = 7.0,
    warmup: int = 7,
    alpha: float = 1e-3,
    min_count: int = 5,
) -> list[Burst]:
    """Every burst of every key, strongest (smallest peak p-value) first."""
    flags, baseline, p_value = flag_bursts(series.counts, halflife, warmup, alpha, min_count)
    bursts = []
    for row, col in zip(*np.nonzero(flags), strict=True):
        if col > 0 and flags[row, col - 1]:
            continue  # not the first bucket of its run
        end = col
        while end < flags.shape[1] and flags[row, end]:
            end += 1
        peak = col + int(np.argmax(series.counts[row, col:end]))
        bursts.append(
            Burst(
                key=series.keys[row],
                start=series.bucket_start(col),
                end=series.bucket_start(end),
                peak_count=int(series.counts[row, peak]),
                baseline=round(float(baseline[row, peak]), 4),
                p_value=float(p_value[row, col:end].min()),
                total=int(series.counts[row, col:end].sum()),
            )
        )
    return sorted(bursts, key=lambda b: (b.p_value, -b.peak_count, b.key, b.start))


#: Texts whose keywords are kept: a post is read again by every trending request whose window
#: holds it, and tokenizing (jieba for Chinese) is most of such a request's time.
KEYWORD_CACHE = 8192


@lru_cache(maxsize=KEYWORD_CACHE)
def _keywords(text: str) -> tuple[str, ...]:
    """The distinct words of two characters or more of ``text``, in order of appearance."""
    return tuple(dict.fromkeys(w for w in tokenize(text) if len(w) > 1))


def item_keys(
    tags: Sequence[str] | None, title: str, body: str, source: str, image_text: str = ""
) -> list[str]:
    """The keys an item counts for: its tags, or the keywords of its title, body and the text
    read in its images (English words and jieba words of two characters or more;
    one-character Chinese words are mostly particles or fragments of names)."""
    if source == "tags":
        return list(tags or [])
    if source == "keywords":
        return list(_keywords(f"{title or ''}\n{body or ''}\n{image_text}"))
    raise ValueError(f"source must be 'tags' or 'keywords', not {source!r}")


def store_series(
    session: Session, now: datetime, bucket: str, n_buckets: int, source: str = "tags"
) -> VolumeSeries:
    """Posts per tag (or keyword) per bucket over the ``n_buckets`` buckets ending at ``now``."""
    width = BUCKETS[bucket]
    now = as_utc(now)
    start = now - timedelta(seconds=width * n_buckets)
    window = (Item.created >= start, Item.created < now)
    stmt = select(Item.id, Item.created, Item.tags, Item.title, Item.body).where(*window)
    seen = queries.image_texts(session, where=window) if source == "keywords" else {}
    records = (
        (created, item_keys(tags, title, body, source, seen.get(item_id, "")))
        for item_id, created, tags, title, body in session.execute(stmt)
    )
    return count_series(records, width, start, now)


@dataclass(frozen=True)
class Trending:
    """Keys bursting in the last bucket before ``now`` and all bursts of the window."""

    now: datetime
    bucket: str
    trending: list[Burst]
    bursts: list[Burst]


#: Where an analysis' "now" came from: given in the request, the wall clock, or the store's
#: newest activity (a historic store, such as an imported dump).
NOW_SOURCES = ("query", "clock", "store")


def store_now(session: Session, clock: datetime, bucket: str = "day") -> tuple[datetime, str]:
    """The "now" analytics default to: the wall clock, unless the store's newest activity (its
    newest post or event) is more than one ``bucket`` older, as in an imported dump; then that
    newest activity, so the windows ending "now" hold the store's data. Returns the time and
    its source (``clock`` or ``store``)."""
    newest = [
        session.scalar(select(func.max(Event.timestamp))),
        session.scalar(select(func.max(Item.created))),
    ]
    found = [as_utc(t) for t in newest if t is not None]
    latest = max(found, default=None)
    if latest is None or clock - latest <= timedelta(seconds=BUCKETS[bucket]):
        return clock, "clock"
    return latest, "store"


def trending(
    session: Session,
    now: datetime,
    bucket: str = "day",
    n_buckets: int = 60,
    source: str = "tags",
    halflife: float = 7.0,
    alpha: float = 1e-3,
    min_count: int = 5,
) -> Trending:
    """Burst detection over the store's posts in the ``n_buckets`` buckets before ``now``."""
    series = store_series(session, now, bucket, n_buckets, source)
    bursts = detect_bursts(series, halflife, min(7, n_buckets - 1), alpha, min_count)
    last = series.bucket_start(series.counts.shape[1])
    return Trending(as_utc(now), bucket, [b for b in bursts if b.end == last], bursts)


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Condition:
    """A rule's condition holding for one key at one evaluation."""

    key: str
    value: float
    baseline: float
    detail: dict[str, Any]


def _volume_conditions(session: Session, rule: AlertRule, now: datetime) -> list[Condition]:
    series = store_series(session, now, rule.bucket, rule.baseline_buckets + 1)
    flags, baseline, p_value = flag_bursts(
        series.counts,
        halflife=rule.baseline_buckets,
        warmup=rule.baseline_buckets,
        alpha=rule.threshold,
        min_count=rule.min_count,
    )
    out = []
    for row in np.nonzero(flags[:, -1])[0]:
        key = series.keys[row]
        if rule.tag is None or key == rule.tag:
            out.append(
                Condition(
                    key,
                    float(series.counts[row, -1]),
                    float(baseline[row, -1]),
                    {"p_value": float(p_value[row, -1])},
                )
            )
    return out


def _tag_means(scored: Sequence[Any], tag: str | None) -> dict[str, tuple[int, float]]:
    sums: dict[str, list[float]] = {}
    for s in scored:
        for key in dict.fromkeys(s.tags):
            if tag is None or key == tag:
                sums.setdefault(key, []).append(s.score)
    return {k: (len(v), float(np.mean(v))) for k, v in sums.items()}


def _sentiment_conditions(
    session: Session, rule: AlertRule, now: datetime, scorer: Scorer
) -> list[Condition]:
    width = timedelta(seconds=BUCKETS[rule.bucket])
    current = _tag_means(score_store(session, scorer, now - width, now), rule.tag)
    since = now - width * (rule.baseline_buckets + 1)
    before = _tag_means(score_store(session, scorer, since, now - width), rule.tag)
    out = []
    for key, (n, mean) in sorted(current.items()):
        n_before, mean_before = before.get(key, (0, 0.0))
        if min(n, n_before) >= rule.min_count and mean_before - mean >= rule.threshold:
            detail = {"n": n, "n_baseline": n_before}
            out.append(Condition(key, round(mean, 4), round(mean_before, 4), detail))
    return out


@dataclass
class AlertRun:
    """What one evaluation changed: episodes opened (the alerts that fired), kept, closed."""

    fired: list[AlertEpisode]
    ongoing: list[AlertEpisode]
    closed: list[AlertEpisode]


def evaluate_alerts(
    session: Session,
    now: datetime,
    scorer: Scorer | Callable[[], Scorer] | None = None,
) -> AlertRun:
    """Evaluate every enabled rule at ``now``: open an episode for each newly true condition,
    keep open ones that still hold, close the others. ``scorer`` (or a function returning one,
    called only if a sentiment rule exists) scores texts for ``sentiment_drop`` rules; without
    one those rules raise ``ValueError``. The caller commits."""
    now = as_utc(now)
    run = AlertRun([], [], [])
    rules = session.scalars(select(AlertRule).where(AlertRule.enabled).order_by(AlertRule.id))
    for rule in rules:
        if rule.kind == "volume_spike":
            conditions = _volume_conditions(session, rule, now)
        else:
            if scorer is None:
                raise ValueError(f"rule {rule.name!r} needs a sentiment scorer")
            if not hasattr(scorer, "predict"):
                scorer = scorer()  # type: ignore[operator]
            conditions = _sentiment_conditions(session, rule, now, scorer)  # type: ignore[arg-type]
        open_episodes = {
            e.key: e
            for e in session.scalars(
                select(AlertEpisode).where(
                    AlertEpisode.rule_id == rule.id, AlertEpisode.status == OPEN
                )
            )
        }
        for cond in conditions:
            episode = open_episodes.pop(cond.key, None)
            if episode is None:
                episode = AlertEpisode(
                    rule_id=rule.id,
                    kind=rule.kind,
                    key=cond.key,
                    status=OPEN,
                    opened=now,
                    last_seen=now,
                    value=cond.value,
                    baseline=cond.baseline,
                    peak=cond.value,
                    detail=cond.detail,
                )
                session.add(episode)
                run.fired.append(episode)
            else:
                episode.last_seen = max(as_utc(episode.last_seen), now)
                worse = (
                    cond.value > episode.peak
                    if rule.kind == "volume_spike"
                    else (cond.value < episode.peak)
                )
                episode.peak = cond.value if worse else episode.peak
                run.ongoing.append(episode)
        for episode in open_episodes.values():
            episode.status = "closed"
            episode.closed = now
            run.closed.append(episode)
    session.flush()
    return run


class RuleSpec(BaseModel):
    """An alert rule; posting a rule with an existing name updates that rule."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=255)
    kind: Literal["volume_spike", "sentiment_drop"]
    tag: str | None = Field(None, min_length=1, max_length=255, description="None = any tag.")
    bucket: Bucket = "day"
    baseline_buckets: int = Field(7, ge=1, le=365)
    threshold: float | None = Field(
        None,
        gt=0,
        le=2,
        description="volume_spike: Poisson tail probability (default 0.001); "
        "sentiment_drop: least drop of the mean score (default 0.3).",
    )
    min_count: int = Field(5, ge=1, le=1_000_000)
    enabled: StrictBool = True

    @model_validator(mode="after")
    def _threshold(self) -> RuleSpec:
        if self.threshold is None:
            self.threshold = 1e-3 if self.kind == "volume_spike" else 0.3
        if self.kind == "volume_spike" and self.threshold >= 1:
            raise ValueError("a volume_spike threshold is a probability below 1")
        return self


def upsert_rule(session: Session, spec: RuleSpec, now: datetime) -> tuple[AlertRule, bool]:
    """Create the rule ``spec.name`` or update it to ``spec``; returns it and whether it is
    new. Changing a rule closes nothing: its open episodes continue under the new settings."""
    rule = session.scalar(select(AlertRule).where(AlertRule.name == spec.name))
    created = rule is None
    if rule is None:
        rule = AlertRule(name=spec.name, created=as_utc(now))
        session.add(rule)
    for key, value in spec.model_dump(exclude={"name"}).items():
        setattr(rule, key, value)
    rule.updated = as_utc(now)
    session.flush()
    return rule, created


def list_alerts(
    session: Session, status: str | None = None, limit: int = 100
) -> list[AlertEpisode]:
    """Alert episodes, newest first, optionally only ``open`` or ``closed`` ones."""
    stmt = select(AlertEpisode).order_by(AlertEpisode.opened.desc(), AlertEpisode.id.desc())
    if status is not None:
        stmt = stmt.where(AlertEpisode.status == status)
    return list(session.scalars(stmt.limit(limit)))
