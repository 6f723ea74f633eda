"""The online path of the feed, in one straight line:

    ready candidates -> filters -> re-rank -> page -> impressions

* **Ready candidates** (:class:`Ready`): the user's record from the candidate store (kept in
  memory a short while, re-read as soon as the user's event count differs from the record's),
  the record everybody shares (``trending``) and two sources built here from the in-memory
  catalogue: ``topics`` (recent items on followed tags) and ``fresh`` (Thompson draws on new
  items' exposure). A user without a record gets one computed now (the way every page was built
  before the refresher existed) and stored; a stale record is served and the user is queued.
* **Filters** from the user's in-memory state (:mod:`agora.feed.state`): touched, hidden,
  authored, blocked or muted authors, muted topics, shown earlier in the browsing session,
  taken down by moderation, creatives of running campaigns.
* **Re-rank** in numpy: relevance (ranking model percentile + social, freshness and topic
  boosts - "not interested" suppression), best item per thread, then
  :func:`agora.feed.rerank.rerank` (diversity, author decay, exploration, new creators).
* **Page** as plain dicts; **impressions** handed to the writer (a buffer in a served app).

No model is scored and no multi-table query runs here once a user's record and state are held.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from agora.config import FeedConfig
from agora.experiments.service import planned_overrides, running_experiments
from agora.feed import sources
from agora.feed.cache import MAX_PAGE, FeedCache, Snapshot, among
from agora.feed.candidates import (
    EVERYONE,
    Candidates,
    Prepared,
    compute_candidates,
    compute_global,
    model_pks,
    model_stamp,
)
from agora.feed.ready import Held
from agora.feed.rerank import rerank
from agora.feed.state import (
    UserState,
    events_since,
    events_since_many,
    from_stored,
    recent_users,
    same_filters,
    stored_form,
)
from agora.models.retrieval import is_factor_model
from agora.serving.service import ModelStore, ModelUnavailable, user_event_rows

FRESHNESS_HOURS = 48.0
TOPIC_BOOST = 1.0
UNKNOWN_RELEVANCE = 0.3  # items the ranking model has not seen (posted after training)
#: pages ranked after the one asked for: a session's next pages in the same worker take them
#: (re-filtered) instead of ranking again, while nothing they were ranked from changed
PAGES_AHEAD = 2
#: The page size the refresher ranks first pages for (the feed route's default).
FIRST_PAGE = 20
#: Sources from the most to the least specific: names an item nominated as strongly by two.
ATTRIBUTION = (
    "in_network",
    "topics",
    "sequential",
    "collaborative",
    "content",
    "fresh",
    "trending",
)
REASONS = {
    "collaborative": "picked for you from what you engaged with",
    "sequential": "follows on from what you engaged with recently",
    "content": "similar in content to what you engaged with",
    "trending": "popular in the community now",
    "fresh": "new in the community",
    "exploration": "new post we are giving a first audience",
}


@dataclass
class Controls:
    """A user's effective feed controls: their own settings over the platform defaults."""

    diversity: float
    social_weight: float
    freshness: float
    exploration: float
    followed_tags: list[str] = field(default_factory=list)
    muted_tags: list[str] = field(default_factory=list)
    muted_authors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (what ``dataclasses.asdict`` gives, without its deep copies:
        a prepared page compares it on every first page)."""
        return {name: getattr(self, name) for name in _CONTROL_FIELDS}


_CONTROL_FIELDS = tuple(f.name for f in fields(Controls))


def effective_controls(state: UserState, defaults: FeedConfig) -> Controls:
    """The user's own settings over the A/B arm's over the platform defaults."""

    def pick(name: str) -> float:
        if name in state.own:
            return state.own[name]
        return float(state.variant.get(name, getattr(defaults, name)))

    return Controls(
        diversity=pick("diversity"),
        social_weight=pick("social_weight"),
        freshness=pick("freshness"),
        exploration=pick("exploration"),
        followed_tags=list(state.followed_tags),
        muted_tags=sorted(state.muted_tags),
    )


# -- sources built online --------------------------------------------------------------------
def topic_candidates(
    snapshot: Snapshot, recent: np.ndarray, followed: list[str], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Recent items on followed topics, by the share of followed topics they carry."""
    codes = [snapshot.vocab.tags[t] for t in set(followed) if t in snapshot.vocab.tags]
    if not codes or not len(recent):
        return np.empty(0, np.int64), np.empty(0)
    rows = snapshot.tag_matrix[recent]
    hits = np.asarray(rows[:, codes].sum(axis=1)).ravel() / len(set(followed))
    best = np.argsort(-hits, kind="stable")[:k]
    best = best[hits[best] > 0]
    if not len(best):
        return np.empty(0, np.int64), np.empty(0)
    return recent[best], hits[best] / hits[best[0]]


def fresh_candidates(
    fresh: np.ndarray, shown: np.ndarray, engaged: np.ndarray, budget: int,
    rng: np.random.Generator, k: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Thompson draws ``Beta(1 + engaged, 1 + shown - engaged)`` for new items (catalogue
    positions ``fresh``, with their impressions and engagements) under their budget."""
    if not len(fresh):
        return np.empty(0, np.int64), np.empty(0)
    open_ = shown < budget
    hits = np.where(shown > 0, np.minimum(engaged, shown), engaged)[open_]
    draws = rng.beta(1.0 + hits, 1.0 + np.maximum(shown[open_] - hits, 0.0))
    best = best_k(draws, k)
    return fresh[open_][best], draws[best]


def best_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``values``, best first, equal values by index: what
    ``np.argsort(-values, kind="stable")[:k]`` gives, at a partition's cost (a full sort of
    a page's 2,000 Thompson draws was a tenth of a prepared page's time)."""
    if k >= len(values):
        return np.argsort(-values, kind="stable")
    if k <= 0:
        return np.empty(0, np.int64)
    kth = np.partition(values, len(values) - k)[len(values) - k]
    above = np.flatnonzero(values > kth)
    chosen = np.concatenate([above, np.flatnonzero(values == kth)[: k - len(above)]])
    chosen.sort()
    return chosen[np.argsort(-values[chosen], kind="stable")]


# -- ranking ---------------------------------------------------------------------------------
def nominate(by_source: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Every candidate once: (positions, the source naming it, its strength there, the order
    of first nomination). On equal strength the more specific source (:data:`ATTRIBUTION`)
    names the item."""
    parts = [
        (pos, strength, np.full(len(pos), rank))
        for rank, name in enumerate(ATTRIBUTION)
        if (pair := by_source.get(name)) is not None and len(pos := pair[0])
        for strength in [np.asarray(pair[1], dtype=np.float64)]
    ]
    if not parts:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0), empty
    pos = np.concatenate([p for p, _, _ in parts])
    strength = np.concatenate([s for _, s, _ in parts])
    rank = np.concatenate([r for _, _, r in parts])
    order = np.lexsort((rank, -strength, pos))
    ordered = pos[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # each item's strongest
    # keep the order in which items were first nominated (the earlier feed's iteration order):
    # an item's first nomination is the least index among its own (``order`` holds indices)
    entered = np.minimum.reduceat(order, first)
    by_entry = np.argsort(entered, kind="stable")
    chosen = order[first][by_entry]
    return pos[chosen], rank[chosen], strength[chosen], entered[by_entry]


def percentiles(values: np.ndarray) -> np.ndarray:
    """Each value's rank among them in (0, 1] (ties share their average rank, as
    ``scipy.stats.rankdata(values, "average") / len(values)`` gives, at a fraction of its cost)."""
    count = len(values)
    if not count:
        return values
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ties = np.diff(np.r_[starts, count])
    ranks = np.empty(count)
    ranks[order] = np.repeat(starts + (ties + 1) / 2, ties)  # ranks from 1: a tie's mean
    return ranks / count


def looked_up(
    keys: np.ndarray, values: np.ndarray, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``pos``: whether ``keys`` holds it, and the ``values`` of those it holds."""
    if not len(keys):
        return np.zeros(len(pos), dtype=bool), np.empty(0, np.asarray(values).dtype)
    order = np.argsort(keys)
    at = np.searchsorted(keys[order], pos)
    at[at >= len(keys)] = 0
    hit = keys[order][at] == pos
    return hit, np.asarray(values)[order][at[hit]]


def tag_hits(snapshot: Snapshot, pos: np.ndarray, codes: list[int]) -> np.ndarray:
    """How many of the tags ``codes`` each item at ``pos`` carries."""
    return np.asarray(snapshot.tag_matrix[pos][:, codes].sum(axis=1)).ravel()


def jaccard_rows(snapshot: Snapshot, positions: np.ndarray, other: int) -> np.ndarray:
    """Jaccard similarity of the tags of the items at ``positions`` to item ``other``'s."""
    tags = snapshot.tag_matrix[positions]
    mine = snapshot.tag_matrix[other]
    inter = np.asarray((tags @ mine.T).todense()).ravel()
    sizes = np.diff(tags.indptr)
    union = sizes + mine.nnz - inter
    return np.divide(inter, union, out=np.zeros(len(positions)), where=union > 0)


@dataclass
class Ranked:
    """The chosen page: catalogue positions in order, with what the response says of each."""

    positions: np.ndarray
    sources: list[str]
    scores: np.ndarray
    tie_counts: np.ndarray
    new_creator: np.ndarray
    followed: set[str]

    def part(self, rows: np.ndarray | slice) -> Ranked:
        """The items at ``rows`` (a slice or a mask), in order."""
        picked = np.arange(len(self.positions))[rows]
        return Ranked(
            self.positions[picked],
            [self.sources[i] for i in picked.tolist()],
            self.scores[picked],
            self.tie_counts[picked],
            self.new_creator[picked],
            self.followed,
        )


@dataclass
class Ahead:
    """The rest of a session's ranking, kept by the worker that ranked it: its next pages come
    from it while nothing it was ranked from changed (the same user state, records, catalogue
    lineage, controls and page size); what changed inside those (new events, take-downs,
    running creatives) is filtered out again at each page."""

    page: int  # the page it serves next
    n: int
    user: UserState
    held: Held
    everyone: Held
    lineage: int
    controls: Controls
    ranked: Ranked

    def serves(
        self, page: int, n: int, user: UserState, held: Held, everyone: Held,
        snapshot: Snapshot, controls: Controls,
    ) -> bool:  # fmt: skip
        return (
            self.page == page
            and self.n == n
            and self.user is user
            and self.held is held
            and self.everyone is everyone
            and self.lineage == snapshot.lineage
            and self.controls == controls
        )


def next_from(
    ahead: Ahead, snapshot: Snapshot, user: UserState, promoted: np.ndarray
) -> tuple[Ranked, Ranked] | None:
    """The next page of ``ahead`` and what is left after it, without the items the user has
    touched since, moderation took down or a campaign now promotes; None when fewer than a
    page remain."""
    pos = ahead.ranked.positions
    keep = ~np.isin(pos, snapshot.positions(user.touched_array()))
    keep &= ~snapshot.removed_mask(pos)
    if len(promoted):
        keep &= ~np.isin(pos, promoted)
    rest = ahead.ranked.part(keep)
    if len(rest.positions) < ahead.n:
        return None
    return rest.part(slice(0, ahead.n)), rest.part(slice(ahead.n, None))


def rank_page(
    snapshot: Snapshot,
    user: UserState,
    held: Held,
    everyone: Held,
    extra: Mapping[str, tuple[np.ndarray, np.ndarray]],
    known: Callable[[str | None], np.ndarray | None],
    ctl: Controls,
    cfg: FeedConfig,
    shown: np.ndarray,
    promoted: np.ndarray,
    n: int,
    now: float,
    ahead: int = 1,
) -> Ranked:
    """Filters and re-ranking over ready candidates (see the module docstring): ``ahead``
    pages of ``n`` in order (each page holds its share of new creators)."""
    mine, shared = held.placed(snapshot), everyone.placed(snapshot)
    by_source = dict(mine.sources)
    by_source["trending"] = shared.sources.get("trending", (np.empty(0, np.int64), np.empty(0)))
    by_source.update(extra)
    pos, src, _, _ = nominate(by_source)
    network = by_source.get("in_network", (np.empty(0, np.int64),) * 2)
    author = snapshot.author_pks[pos]
    keep = _allowed(snapshot, user, pos, author, shown, promoted)
    pos, src, author = pos[keep], src[keep], author[keep]
    if not len(pos):
        return Ranked(pos, [], np.empty(0), np.empty(0, np.int16), np.empty(0, bool), set())
    primary = held if held.record.personal else everyone
    relevance = _relevance(snapshot, user, primary, known, network, pos, author, ctl, cfg, now)
    if cfg.max_per_thread > 0:
        chosen = _best_per_thread(snapshot, pos, relevance, cfg.max_per_thread)
        pos, src, relevance, author = pos[chosen], src[chosen], relevance[chosen], author[chosen]
    new_since = now - cfg.new_creator_days * 86400.0
    new_creator = (author >= 0) & (snapshot.first_post[pos] >= new_since)
    placement = rerank(
        relevance,
        snapshot.tag_matrix[pos],
        n * ahead,
        diversity=ctl.diversity,
        authors=author,
        author_decay=cfg.author_decay,
        explore=_explore_draws(by_source, pos),
        exploration=ctl.exploration,
        new_creator=new_creator,
        new_creator_share=cfg.new_creator_share,
        page_size=n,
    )
    rows = placement.order
    names = [
        "exploration" if explored else ATTRIBUTION[src[r]]
        for r, explored in zip(rows.tolist(), placement.explored.tolist(), strict=True)
    ]
    counts = np.zeros(len(rows), np.int16)
    if len(network[0]) and len(mine.tie_counts):
        hit, ties = looked_up(network[0], mine.tie_counts, pos[rows])
        counts[hit] = ties
    followed = set(ctl.followed_tags)
    return Ranked(pos[rows], names, relevance[rows], counts, new_creator[rows], followed)


def _allowed(
    snapshot: Snapshot,
    user: UserState,
    pos: np.ndarray,
    author: np.ndarray,
    shown: np.ndarray,
    promoted: np.ndarray,
) -> np.ndarray:
    """Which candidates pass the filters: not touched or hidden by the user, not their own, no
    author they excluded, no muted tag, not shown or promoted on this page, not taken down."""
    keep = ~among(pos, snapshot.positions(user.touched_array()))
    if user.hidden:
        keep &= ~among(snapshot.pks[pos], np.fromiter(user.hidden, np.int64))
    keep &= author != user.pk
    if user.excluded_authors:
        keep &= ~among(author, np.fromiter(user.excluded_authors, np.int64))
    if user.muted_tags:
        codes = [snapshot.vocab.tags[t] for t in user.muted_tags if t in snapshot.vocab.tags]
        if codes:
            keep &= tag_hits(snapshot, pos, codes) == 0
    if len(shown):
        keep &= ~among(pos, shown)
    if len(promoted):
        keep &= ~among(pos, promoted)
    keep &= ~snapshot.removed_mask(pos)
    return keep


def _relevance(
    snapshot: Snapshot,
    user: UserState,
    primary: Held,
    known: Callable[[str | None], np.ndarray | None],
    network: tuple[np.ndarray, np.ndarray],
    pos: np.ndarray,
    author: np.ndarray,
    ctl: Controls,
    cfg: FeedConfig,
    now: float,
) -> np.ndarray:
    """Each candidate's relevance: the percentile of its primary model score (items the model
    knows but did not list rank below those it listed, unknown ones get a constant), plus the
    social, freshness and followed-topic boosts, minus the not-interested suppression."""
    p_pos, p_scores = primary.placed(snapshot).primary
    raw = np.full(len(pos), np.nan)
    mask = known(primary.record.primary_model)
    if mask is not None:
        floor = float(p_scores.min()) - 1.0 if len(p_scores) else 0.0
        inside = pos < len(mask)
        raw[inside & mask[np.minimum(pos, len(mask) - 1)]] = floor
    listed, scores = looked_up(p_pos, p_scores, pos)
    raw[listed] = scores
    relevance = np.full(len(pos), UNKNOWN_RELEVANCE)
    ranked = ~np.isnan(raw)
    relevance[ranked] = percentiles(raw[ranked])
    network_pos, network_strength = network
    if len(network_pos):
        hit, social = looked_up(network_pos, network_strength, pos)
        relevance[hit] += ctl.social_weight * social
    age_h = np.maximum((now - snapshot.created[pos]) / 3600.0, 0.0)
    relevance += ctl.freshness * np.exp(-age_h / FRESHNESS_HOURS)
    followed = set(ctl.followed_tags)
    if followed:
        codes = [snapshot.vocab.tags[t] for t in followed if t in snapshot.vocab.tags]
        if codes:
            relevance += TOPIC_BOOST * tag_hits(snapshot, pos, codes) / len(followed)
    if user.not_interested:
        relevance -= suppression(snapshot, pos, author, user.not_interested, now, cfg)
    return relevance


def _best_per_thread(
    snapshot: Snapshot, pos: np.ndarray, relevance: np.ndarray, per_thread: int
) -> np.ndarray:
    """Rows of the ``per_thread`` most relevant candidates of each thread, in candidate order."""
    best = np.argsort(-relevance, kind="stable")
    threads = snapshot.thread_codes[pos[best]]
    by_thread = np.argsort(threads, kind="stable")  # each thread's best first
    sorted_threads = threads[by_thread]
    starts = np.flatnonzero(np.r_[True, sorted_threads[1:] != sorted_threads[:-1]])
    rank_in_thread = np.arange(len(best)) - np.repeat(starts, np.diff(np.r_[starts, len(best)]))
    return np.sort(best[by_thread[rank_in_thread < per_thread]])


def _explore_draws(
    by_source: Mapping[str, tuple[np.ndarray, np.ndarray]], pos: np.ndarray
) -> np.ndarray:
    """The fresh source's exploration draw of each candidate (NaN for the others)."""
    fresh_pos, fresh_draws = by_source.get("fresh", (np.empty(0, np.int64), np.empty(0)))
    explore = np.full(len(pos), np.nan)
    if len(fresh_pos):
        hit, draws = looked_up(fresh_pos, fresh_draws, pos)
        explore[hit] = draws
    return explore


# -- first pages ranked ahead by the refresher -------------------------------------------------
def prepare(
    snapshot: Snapshot,
    user: UserState,
    held: Held,
    everyone: Held,
    known: Callable[[str | None], np.ndarray | None],
    cfg: FeedConfig,
    marks: dict[str, float],
    now: float,
) -> Prepared:
    """The user's first :data:`FIRST_PAGE`-item pages, ranked now as :func:`serve` would
    (without exploration, drawn per page), with the state they were ranked under."""
    ctl = effective_controls(user, cfg)
    recent = sources.recent_items(snapshot, now, cfg.candidates_per_source)
    extra = {
        "topics": topic_candidates(snapshot, recent, ctl.followed_tags, cfg.candidates_per_source)
    }
    none = np.empty(0, np.int64)
    ranked = rank_page(
        snapshot, user, held, everyone, extra, known, ctl, cfg, none, none, FIRST_PAGE, now,
        ahead=1 + PAGES_AHEAD,
    )  # fmt: skip
    return Prepared(
        n=FIRST_PAGE,
        controls=ctl.as_dict(),
        state=stored_form(user),
        marks=marks,
        touched=user.touched_array(),
        pks=snapshot.pks[ranked.positions],
        sources=ranked.sources,
        scores=ranked.scores,
        ties=ranked.tie_counts,
        new_creator=ranked.new_creator,
    )


def takes_prepared(prepared: Prepared | None, user: UserState, ctl: Controls, n: int) -> bool:
    """Whether a first page of ``n`` for ``user`` under ``ctl`` may come from ``prepared``:
    ranked for that size, under the same controls and filters (events aside: what the user
    touched since is dropped)."""
    return (
        prepared is not None
        and prepared.n == n
        and prepared.controls == ctl.as_dict()
        and same_filters(user, prepared.state)
    )


def from_prepared(
    snapshot: Snapshot,
    user: UserState,
    prepared: Prepared,
    fresh: tuple[np.ndarray, np.ndarray],
    ctl: Controls,
    cfg: FeedConfig,
    promoted: np.ndarray,
    now: float,
) -> Ranked:
    """The prepared pages without what the user touched since, moderation took down or a
    campaign promotes, and with their exploration slots: every ``round(1 / exploration)``-th
    slot takes the best of this page's Thompson draws (``fresh``) the user's filters allow,
    as :func:`agora.feed.rerank.rerank` places them."""
    pos = snapshot.positions(prepared.pks)
    gone = snapshot.positions(user.touched_array())
    keep = (pos >= 0) & ~np.isin(pos, gone)
    keep[keep] &= ~snapshot.removed_mask(pos[keep])
    if len(promoted):
        keep &= ~np.isin(pos, promoted)
    rows = np.flatnonzero(keep)
    organic = Ranked(
        pos[rows],
        [prepared.sources[r] for r in rows.tolist()],
        np.asarray(prepared.scores)[rows],
        np.asarray(prepared.ties)[rows],
        np.asarray(prepared.new_creator)[rows],
        set(ctl.followed_tags),
    )
    spacing = round(1.0 / ctl.exploration) if ctl.exploration > 0 else 0
    f_pos, draws = fresh
    if not spacing or not len(f_pos):
        return organic
    author = snapshot.author_pks[f_pos]
    allowed = ~np.isin(f_pos, gone) & ~snapshot.removed_mask(f_pos) & (author != user.pk)
    if user.hidden:
        allowed &= ~np.isin(snapshot.pks[f_pos], np.fromiter(user.hidden, np.int64))
    if user.excluded_authors:
        allowed &= ~np.isin(author, np.fromiter(user.excluded_authors, np.int64))
    if user.muted_tags:
        codes = [snapshot.vocab.tags[t] for t in user.muted_tags if t in snapshot.vocab.tags]
        if codes:
            allowed &= np.asarray(snapshot.tag_matrix[f_pos][:, codes].sum(axis=1)).ravel() == 0
    if len(promoted):
        allowed &= ~np.isin(f_pos, promoted)
    explorers = f_pos[allowed][np.argsort(-np.asarray(draws)[allowed], kind="stable")].tolist()
    return _with_exploration(snapshot, organic, explorers, spacing, ctl, cfg, now)


def _with_exploration(
    snapshot: Snapshot, organic: Ranked, explorers: list[int], spacing: int, ctl: Controls,
    cfg: FeedConfig, now: float,
) -> Ranked:  # fmt: skip
    """``organic`` with ``explorers`` (positions, best first) in every ``spacing``-th slot; an
    explored item leaves its organic place. The slots are chosen over plain ints; the
    columns are then gathered with numpy."""
    organic_positions = organic.positions.tolist()
    total = len(organic_positions)
    placed: set[int] = set()
    order: list[int] = []  # positions
    rows: list[int] = []  # each one's organic row, or -1 for an exploration slot
    next_row = next_explorer = 0
    while len(order) < total:
        if (len(order) + 1) % spacing == 0 and next_explorer < len(explorers):
            p = explorers[next_explorer]
            next_explorer += 1
            if p not in placed:
                placed.add(p)
                order.append(p)
                rows.append(-1)
            continue
        if next_row == total:
            break
        p = organic_positions[next_row]
        if p not in placed:
            placed.add(p)
            order.append(p)
            rows.append(next_row)
        next_row += 1
    positions = np.array(order, np.int64)
    picked = np.array(rows, np.int64)
    kept = picked >= 0
    scores = np.empty(len(picked))
    ties = np.zeros(len(picked), np.int16)
    new_creator = np.zeros(len(picked), bool)
    scores[kept] = organic.scores[picked[kept]]
    ties[kept] = organic.tie_counts[picked[kept]]
    new_creator[kept] = organic.new_creator[picked[kept]]
    explored = ~kept
    if explored.any():  # their organic score if they had one, else unknown relevance
        at = {p: i for i, p in enumerate(organic_positions)}
        where = positions[explored]
        known = np.array([at.get(p, -1) for p in where.tolist()], np.int64)
        age_h = np.maximum((now - snapshot.created[where].astype(float)) / 3600.0, 0.0)
        unknown = UNKNOWN_RELEVANCE + ctl.freshness * np.exp(-age_h / FRESHNESS_HOURS)
        scores[explored] = np.where(known >= 0, organic.scores[np.maximum(known, 0)], unknown)
        new_since = now - cfg.new_creator_days * 86400.0
        new_creator[explored] = (snapshot.author_pks[where] >= 0) & (
            snapshot.first_post[where].astype(float) >= new_since
        )
    names = [organic.sources[r] if r >= 0 else "exploration" for r in rows]
    return Ranked(positions, names, scores, ties, new_creator, organic.followed)


def suppression(
    snapshot: Snapshot, pos: np.ndarray, author: np.ndarray, not_interested: list,
    now: float, cfg: FeedConfig,
) -> np.ndarray:  # fmt: skip
    """How much recent "not interested" feedback pushes each candidate down: same author 0.6,
    else the Jaccard of their tags, halving every ``feedback_half_life_hours`` (at most 2)."""
    total = np.zeros(len(pos))
    others = snapshot.positions(np.array([pk for pk, _ in not_interested], np.int64))
    for other, (_, when) in zip(others.tolist(), not_interested, strict=True):
        if other < 0:
            continue
        fade = 0.5 ** ((now - when) / 3600.0 / cfg.feedback_half_life_hours)
        same = (author == snapshot.author_pks[other]) & (author >= 0)
        total += fade * np.where(same, 0.6, jaccard_rows(snapshot, pos, other))
    return np.minimum(total, 2.0)


def reason(source: str, ties: int, tags: list[str], followed: set[str]) -> str:
    if source == "in_network":
        return f"{ties} {'person' if ties == 1 else 'people'} you follow or trust engaged or posted"
    if source == "topics":
        return f"on a topic you follow: {', '.join(sorted(followed & set(tags)))}"
    return REASONS.get(source, "recommended for you")


def page_items(snapshot: Snapshot, ranked: Ranked) -> list[dict[str, Any]]:
    """The page's items as the API answers them."""
    out = []
    for i, p in enumerate(ranked.positions.tolist()):
        created = snapshot.created_at[p]
        out.append(
            {
                "item_id": snapshot.ids[p],
                "score": round(float(ranked.scores[i]), 6),
                "source": ranked.sources[i],
                "reason": reason(
                    ranked.sources[i], int(ranked.tie_counts[i]), snapshot.tags[p], ranked.followed
                ),
                "title": snapshot.titles[p],
                "author_id": snapshot.authors[p],
                "tags": list(snapshot.tags[p]),
                "created": created,
                "new_creator": bool(ranked.new_creator[i]),
            }
        )
    return out


def positions_of(snapshot: Snapshot, item_ids: Collection[str]) -> np.ndarray:
    """Catalogue positions of external item ids (ids the catalogue lacks are left out)."""
    return np.array(
        [p for i in item_ids if (p := snapshot.index.get(i)) is not None], dtype=np.int64
    )


def fresh_stats(
    session: Session, cache: FeedCache, snapshot: Snapshot, fresh: np.ndarray,
    weights: Mapping[str, float],
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Impressions and engagements of the new items at ``fresh``, as arrays: shared by every
    request, recomputed in the background every ``exposure_seconds`` and when new items
    arrive (see :meth:`FeedCache.exposure`)."""
    if not len(fresh):
        return np.empty(0), np.empty(0)
    pks = snapshot.pks[fresh]
    stats = cache.exposure(session, pks, lambda own, wanted: sources.exposure(own, wanted, weights))

    def arrays() -> tuple[np.ndarray, np.ndarray]:
        def of(counts: Mapping[int, int]) -> np.ndarray:
            return np.fromiter((counts.get(int(p), 0) for p in pks), np.float64, len(pks))

        return of(stats["shown"]), of(stats["engaged"])

    # once per exposure refresh and set of new items, not per page
    key = f"{id(stats)}:{snapshot.generation}:{fresh[0]}:{len(fresh)}"
    return cache.per_model("fresh:exposure", key, arrays)


@dataclass
class Served:
    """What one page of the online path produced."""

    user: UserState
    items: list[dict[str, Any]]
    model: str | None
    candidates: str  # ready, stale or built (see :meth:`agora.feed.ready.Ready.get`)
    ranking: str  # prepared (by the refresher), ahead (with an earlier page) or now
    personal: bool


def serve(
    session: Session,
    models: ModelStore,
    cache: FeedCache,
    user_id: str,
    n: int,
    browsing: str,
    page: int,
    defaults: FeedConfig,
    weights: Mapping[str, float],
    now: datetime,
    rng: np.random.Generator,
    promoted: Collection[str] = frozenset(),
) -> Served:
    """One page: ready candidates -> filters -> re-rank -> page -> impressions."""
    stamp = now.timestamp()
    models_now = model_stamp(models)
    snapshot = cache.catalogue.get(session, models=models_now)
    user = cache.states.get(session, user_id, now, _from_record(cache, snapshot, user_id))
    held, status, everyone = _ready_candidates(
        session, models, cache, snapshot, user, user_id, models_now, defaults, weights, now
    )
    ctl = effective_controls(user, defaults)
    promoted_at = positions_of(snapshot, promoted)
    ahead = cache.ahead(browsing)
    taken = None
    if ahead is not None and ahead.serves(page, n, user, held, everyone, snapshot, ctl):
        taken = next_from(ahead, snapshot, user, promoted_at)
    prepared = held.record.prepared
    if taken is not None:
        ranked, rest = taken
        ranking = "ahead"
    elif page == 1 and takes_prepared(prepared, user, ctl, n):
        recent = sources.recent_items(snapshot, stamp, defaults.candidates_per_source)
        fresh = _fresh(session, cache, snapshot, recent, defaults, weights, rng, stamp)
        pages = from_prepared(snapshot, user, prepared, fresh, ctl, defaults, promoted_at, stamp)
        ranked, rest = pages.part(slice(0, n)), pages.part(slice(n, None))
        ranking = "prepared"
    else:
        ranked, rest = _rank(
            session, models, cache, snapshot, user, held, everyone, ctl, browsing, page, n,
            defaults, weights, rng, promoted_at, stamp,
        )  # fmt: skip
        ranking = "now"
    cache.keep_ahead(
        browsing,
        Ahead(page + 1, n, user, held, everyone, snapshot.lineage, ctl, rest)
        if len(rest.positions)
        else None,
    )
    _record_impressions(session, cache, snapshot, user, ranked, browsing, page, now)
    return Served(
        user=user,
        items=page_items(snapshot, ranked),
        model=held.record.ranking,
        candidates=status,
        ranking=ranking,
        personal=held.record.personal,
    )


def _ready_candidates(
    session: Session,
    models: ModelStore,
    cache: FeedCache,
    snapshot: Snapshot,
    user: UserState,
    user_id: str,
    models_now: str,
    defaults: FeedConfig,
    weights: Mapping[str, float],
    now: datetime,
) -> tuple[Held, str, Held]:
    """The user's ready candidates (with how they were had: ready, stale or built) and
    everyone's, each computed now when missing."""

    def own() -> Candidates:
        rows = user_event_rows(session, user_id)
        return compute_candidates(
            session, models, cache, user.pk, user_id, rows, defaults, weights, now
        )

    def shared() -> Candidates:
        return compute_global(session, models, cache, defaults, weights, now)

    # a cold-start user who has just acted gets personal candidates now, not at the next round
    def cold(record: Candidates) -> bool:
        return not record.personal and record.events < user.events

    held, status = cache.ready.get(user.pk, user.events, models_now, snapshot, own, cold)
    everyone, _ = cache.ready.get(EVERYONE, -1, models_now, snapshot, shared, _empty_shared)
    return held, status, everyone


def _empty_shared(record: Candidates) -> bool:
    """The store's own popularity (before a trending model is trained), redone while empty."""
    return record.primary_model is None and not len(record.primary[0])


def _record_impressions(
    session: Session,
    cache: FeedCache,
    snapshot: Snapshot,
    user: UserState,
    ranked: Ranked,
    browsing: str,
    page: int,
    now: datetime,
) -> None:
    """The page's impressions (written after the session commits) and its items as shown in
    this browsing session (later pages leave them out)."""
    cache.impressions.add_after_commit(
        session,
        [
            {
                "user_id": user.pk,
                "item_id": int(snapshot.pks[p]),
                "session": browsing,
                "position": (page - 1) * MAX_PAGE + i,
                "source": source,
                "served": now,
            }
            for i, (p, source) in enumerate(
                zip(ranked.positions.tolist(), ranked.sources, strict=True)
            )
        ],
    )
    cache.shown.add(browsing, page, snapshot.pks[ranked.positions])


def _from_record(
    cache: FeedCache, snapshot: Snapshot, user_id: str
) -> Callable[[Session, int], UserState | None]:
    """How a worker that does not hold the user's state takes it from their ready record: the
    state the record carries, with the events stored since (None: no record, or the user's
    feedback, edges or settings changed since it was computed)."""

    def stored(own: Session, pk: int) -> UserState | None:
        found = cache.ready.stored(pk, snapshot)
        prepared = found.record.prepared if found is not None else None
        if prepared is None:
            return None
        new = events_since(own, pk, prepared.state["last_event"], prepared.marks)
        return _state_from(pk, user_id, prepared, new) if new is not None else None

    return stored


def _state_from(pk: int, user_id: str, prepared: Prepared, new: list[tuple[int, int]]) -> UserState:
    """The state a ready record carries, with the events (id, item) stored since."""
    state = from_stored(pk, user_id, prepared.state, prepared.touched)
    for event_id, item in new:
        state.touched.add(item)
        state.events += 1
        state.last_event = event_id
    return state


def hold_recent_users(
    sessions: sessionmaker[Session],
    models: ModelStore,
    cache: FeedCache,
    limit: int,
    stop: threading.Event | None = None,
) -> int:
    """Hold the states and ready records of the ``limit`` users who acted last, taken from
    their records as their first pages would take them (in chunks of :data:`HOLD_CHUNK`: one
    read of the records and :func:`events_since_many` per chunk), so that those pages read
    nothing from the store (a worker runs it in a thread as it starts; pages served meanwhile
    load their users as before). While an experiment runs a state is held without its arms
    (loading them logs the user's exposure, which only a page served may do): the user's
    first page reads them. Returns how many users it holds."""
    with sessions() as session:
        users = session.execute(recent_users(limit)).all()
        if not users:  # an empty store: the first page reads the catalogue
            return 0
        snapshot = cache.catalogue.get(session, models=model_stamp(models))
    cache.ready.stored(EVERYONE, snapshot)  # the shared record, which every page reads
    held = 0
    for start in range(0, len(users), HOLD_CHUNK):
        if stop is not None and stop.is_set():
            break
        ids = {
            pk: uid for pk, uid in users[start : start + HOLD_CHUNK] if not cache.states.held(uid)
        }
        generation = cache.states.generation
        records = {
            pk: found.record.prepared
            for pk, found in cache.ready.stored_many(list(ids), snapshot).items()
            if found.record.prepared is not None
        }
        with sessions() as session:
            wanted = {pk: (p.state["last_event"], p.marks) for pk, p in records.items()}
            since = events_since_many(session, wanted)
            now = datetime.now(UTC)
            exposed = not running_experiments(session, now)
            for pk, new in since.items():
                if new is None:  # feedback, edges or settings changed: the page reads them
                    continue
                state = _state_from(pk, ids[pk], records[pk], new)
                state.variant = planned_overrides(session, ids[pk], now)
                state.exposed = exposed
                held += cache.states.hold(state, generation)
    return held


#: Users :func:`hold_recent_users` reads together.
HOLD_CHUNK = 256


def warm(
    sessions: sessionmaker[Session], models: ModelStore, cache: FeedCache, defaults: FeedConfig,
    weights: Mapping[str, float],
) -> dict[str, float]:  # fmt: skip
    """Build what a worker's first feed page would otherwise build on its request (seconds at
    200k items): the catalogue, each served factor model's item index, each model's known
    items and items' catalogue positions, the new items' exposure and the shared record (read
    from the store, else computed and stored), loading the served models it needs; only the
    catalogue while the store holds no item. Returns what took how long (seconds)."""
    took: dict[str, float] = {}
    empty = np.empty(0, np.int64)

    def timed(what: str, build: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        built = build(*args)
        took[what] = round(time.perf_counter() - t0, 3)
        return built

    with sessions() as session:
        stamp = model_stamp(models)
        snapshot = timed("catalogue", cache.catalogue.preload, session)
        if not len(snapshot.pks):  # nothing stored yet: the first page builds from what is then
            return took
        for name in models.versions():
            try:
                loaded = models.get(name)
            except ModelUnavailable:  # swapped out by a reload meanwhile
                continue
            if is_factor_model(loaded.model):
                timed(f"{name} index", models.item_index, loaded)
            timed(f"{name} known", cache.known.mask, models, name, snapshot)
            listing = sources.Scored(name, empty, empty, loaded.item_ids, loaded.item_index, True)
            timed(f"{name} positions", model_pks, models, cache, snapshot, listing)
        now = time.time()
        recent = sources.recent_items(snapshot, now, defaults.candidates_per_source)
        fresh = recent[snapshot.created[recent] >= now - defaults.fresh_days * 86400.0]
        timed("exposure", fresh_stats, session, cache, snapshot, fresh, weights)

        def shared() -> Candidates:
            return compute_global(session, models, cache, defaults, weights, datetime.now(UTC))

        get = cache.ready.get
        timed("shared record", get, EVERYONE, -1, stamp, snapshot, shared, _empty_shared)
    return took


def _rank(
    session: Session, models: ModelStore, cache: FeedCache, snapshot: Snapshot,
    user: UserState, held: Held, everyone: Held, ctl: Controls, browsing: str, page: int,
    n: int, defaults: FeedConfig, weights: Mapping[str, float], rng: np.random.Generator,
    promoted_at: np.ndarray, stamp: float,
) -> tuple[Ranked, Ranked]:  # fmt: skip
    """This page, ranked with the :data:`PAGES_AHEAD` after it: (this page, the rest)."""
    k = defaults.candidates_per_source
    recent = sources.recent_items(snapshot, stamp, k)
    extra = {
        "topics": topic_candidates(snapshot, recent, ctl.followed_tags, k),
        "fresh": _fresh(session, cache, snapshot, recent, defaults, weights, rng, stamp),
    }
    ranked = rank_page(
        snapshot,
        user,
        held,
        everyone,
        extra,
        lambda name: cache.known.mask(models, name, snapshot),
        ctl,
        defaults,
        cache.shown.positions(session, snapshot, user.pk, browsing, page),
        promoted_at,
        n,
        stamp,
        ahead=1 + PAGES_AHEAD,
    )
    return ranked.part(slice(0, n)), ranked.part(slice(n, None))


def _fresh(
    session: Session, cache: FeedCache, snapshot: Snapshot, recent: np.ndarray,
    defaults: FeedConfig, weights: Mapping[str, float], rng: np.random.Generator, stamp: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """This page's Thompson draws on the new items among ``recent`` (the ``fresh`` source)."""
    fresh = recent[snapshot.created[recent] >= stamp - defaults.fresh_days * 86400.0]
    return fresh_candidates(
        fresh,
        *fresh_stats(session, cache, snapshot, fresh, weights),
        defaults.exploration_budget,
        rng,
        defaults.candidates_per_source,
    )
