"""User segments and personas: users clustered by behaviour and interests, each described.

Each user with events gets behaviour features (log event count, log active days, the share of
each event type, the share of their activity that is authoring posts, log days since their last
event) and interest features (the TF-IDF-weighted tags of the items they engaged with, reduced
with TruncatedSVD). The standardised features are clustered with KMeans (MiniBatchKMeans on large
stores); without a given ``k`` the silhouette picks it from a small range. A segment is described
by its size, the tags over-represented in it (lift: the tag's share of the members' tag
engagements over its share in the population), median activity, top
event types and its most central members, and named from those ("active · rust, cargo").

Stored segments are groups ``segment:<k>:<n>`` with ``attributes["kind"] == "segment"`` and their
members, so the market's ``target_segments`` can target them by that external id at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from agora.db.tables import Event, Group, Item, Membership, User
from agora.ingest.schemas import GroupIn, MembershipIn
from agora.ingest.service import SYSTEM_GROUP_PREFIX, add_memberships, upsert_groups

if TYPE_CHECKING:  # the model registry loads heavy libraries: only when a model is used
    from agora.models.artifacts import LoadedModel

PREFIX = SYSTEM_GROUP_PREFIX
K_RANGE = (2, 8)
#: Above this many users the clustering uses MiniBatchKMeans and a sampled silhouette.
LARGE = 20_000
SILHOUETTE_SAMPLE = 5_000
SVD_COMPONENTS = 16
TOP_TAGS = 5
EXAMPLES = 5
#: A tag describes a segment only if at least this share of its members engaged with it (and it
#: is over-represented: lift above 1).
MIN_TAG_COVERAGE = 0.1


@dataclass
class UserFeatures:
    """The users segmented, their feature matrix and the raw facts the descriptions use."""

    users: list[str]
    behaviour: np.ndarray  # users x behaviour columns (unscaled)
    behaviour_columns: list[str]
    tags: list[str]
    tag_counts: sparse.csr_matrix  # users x tags, engagement counts
    events: np.ndarray  # events per user
    active_days: np.ndarray
    type_shares: np.ndarray  # users x event types
    event_types: list[str]


@dataclass
class Segment:
    """One segment: who is in it and what sets it apart."""

    group_id: str
    label: str
    size: int
    top_tags: list[dict[str, float | str]]
    median_events: float
    median_active_days: float
    top_event_types: list[dict[str, float | str]]
    examples: list[str]
    members: list[str] = field(repr=False, default_factory=list)

    def attributes(self) -> dict[str, Any]:
        """The group attributes this segment is stored with (everything but the members)."""
        out = asdict(self)
        del out["members"], out["group_id"]
        return {"kind": "segment", **out}


@dataclass
class Segmentation:
    """A clustering of the store's users with each segment described."""

    k: int
    silhouette: float | None
    silhouettes: dict[int, float]
    users: list[str]
    labels: np.ndarray
    segments: list[Segment]
    seconds: dict[str, float]
    embedding: np.ndarray = field(repr=False)  # the standardised features that were clustered


def load_features(session: Session) -> UserFeatures:
    """Per-user behaviour and interest facts from the events, items and authorship in the store.

    Only users with at least one event are segmented: a user without any has no behaviour."""
    # in id order: tags are numbered as first met, and the numbering must not depend on how the
    # database happens to return rows (PostgreSQL's heap order is not the id order)
    rows = session.execute(
        select(Event.user_id, Event.item_id, Event.type, Event.timestamp).order_by(Event.id)
    ).all()
    if not rows:
        raise ValueError("the store has no events: there is no behaviour to segment")
    names = dict(session.execute(select(User.id, User.external_id)).all())
    item_tags = dict(session.execute(select(Item.id, Item.tags)).all())
    authored = dict(
        session.execute(
            select(Item.author_id, func.count())
            .where(Item.author_id.is_not(None))
            .group_by(Item.author_id)
        ).all()
    )
    user_pks = sorted({r[0] for r in rows})
    row_of = {pk: i for i, pk in enumerate(user_pks)}
    event_types = sorted({r[2] for r in rows})
    type_col = {t: j for j, t in enumerate(event_types)}
    n = len(user_pks)
    type_counts = np.zeros((n, len(event_types)))
    last = np.full(n, -np.inf)
    days: list[set] = [set() for _ in range(n)]
    tag_index: dict[str, int] = {}
    tri, trc = [], []
    for user_pk, item_pk, kind, stamp in rows:
        i = row_of[user_pk]
        type_counts[i, type_col[kind]] += 1
        ts = stamp.timestamp() if stamp.tzinfo else stamp.replace(tzinfo=UTC).timestamp()
        last[i] = max(last[i], ts)
        days[i].add(int(ts // 86400))
        for tag in item_tags.get(item_pk) or ():
            tri.append(i)
            trc.append(tag_index.setdefault(tag, len(tag_index)))
    tag_counts = sparse.csr_matrix(
        (np.ones(len(tri)), (tri, trc)), shape=(n, max(len(tag_index), 1))
    )
    return features_from(
        users=[names[pk] for pk in user_pks],
        event_types=event_types,
        type_counts=type_counts,
        last=last,
        active_days=np.array([len(d) for d in days], dtype=float),
        posts=np.array([authored.get(pk, 0) for pk in user_pks], dtype=float),
        tags=sorted(tag_index, key=tag_index.__getitem__),
        tag_counts=tag_counts,
    )


def features_from(
    users: list[str],
    event_types: list[str],
    type_counts: np.ndarray,
    last: np.ndarray,
    active_days: np.ndarray,
    posts: np.ndarray,
    tags: list[str],
    tag_counts: sparse.csr_matrix,
) -> UserFeatures:
    """:class:`UserFeatures` from the per-user facts (rows in ``users`` order): events per type
    (columns in ``event_types`` order), the last event's epoch seconds, distinct active days,
    posts authored and tag engagements (columns in ``tags`` order)."""
    events = type_counts.sum(axis=1)
    type_shares = type_counts / events[:, None]
    recency_days = (last.max() - last) / 86400
    behaviour = np.column_stack(
        [
            np.log1p(events),
            np.log1p(active_days),
            type_shares,
            posts / (posts + events),
            np.log1p(recency_days),
        ]
    )
    columns = ["log_events", "log_active_days", *(f"share_{t}" for t in event_types)]
    columns += ["share_authored", "log_recency_days"]
    return UserFeatures(
        users=users,
        behaviour=behaviour,
        behaviour_columns=columns,
        tags=tags,
        tag_counts=tag_counts,
        events=events,
        active_days=active_days,
        type_shares=type_shares,
        event_types=event_types,
    )


def model_factors(users: list[str], loaded: LoadedModel) -> np.ndarray:
    """The users' latent factors from a trained factor model (ALS, BPR), in ``users`` order;
    users the model was not trained on get zeros. Rows are L2-normalised: the direction of a
    user's factors is their taste, the length mostly their activity (already a feature)."""
    factors = getattr(loaded.model, "user_factors_", None)
    if factors is None:
        raise ValueError(f"model {loaded.meta.get('name')!r} has no user factors (use als or bpr)")
    out = np.zeros((len(users), factors.shape[1]))
    for i, user in enumerate(users):
        j = loaded.user_index.get(user, -1)
        if 0 <= j < len(factors):
            out[i] = factors[j]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def embed(
    features: UserFeatures,
    svd_components: int = SVD_COMPONENTS,
    seed: int = 0,
    interests: np.ndarray | None = None,
) -> np.ndarray:
    """The standardised behaviour + interest matrix that is clustered; interests are the TF-IDF
    tag profile reduced by SVD unless ``interests`` (e.g. :func:`model_factors`) is given."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.preprocessing import StandardScaler

    blocks = [features.behaviour]
    n_tags = features.tag_counts.shape[1]
    if interests is not None:
        blocks.append(interests)
    elif features.tag_counts.nnz and n_tags >= 2:
        tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(features.tag_counts)
        dims = min(svd_components, n_tags - 1, len(features.users) - 1)
        if dims >= 1:
            blocks.append(TruncatedSVD(dims, random_state=seed).fit_transform(tfidf))
    return StandardScaler().fit_transform(np.column_stack(blocks))


def cluster(
    x: np.ndarray, k: int | None = None, seed: int = 0, k_range: tuple[int, int] = K_RANGE
) -> tuple[int, np.ndarray, float | None, dict[int, float]]:
    """KMeans labels with the given ``k``, or the ``k`` in ``k_range`` of highest silhouette.

    Returns (k, labels, silhouette of that k, silhouette of every k tried)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import silhouette_score

    n = len(x)
    if n < 2:
        raise ValueError(f"segmenting needs at least 2 users with events, the store has {n}")
    if k is not None and not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of users ({n}), got {k}")
    large = n > LARGE

    def fit(kk: int) -> np.ndarray:
        if large:
            model = MiniBatchKMeans(kk, random_state=seed, n_init=3, batch_size=4096)
        else:
            model = KMeans(kk, random_state=seed, n_init=10)
        return model.fit_predict(x)

    def score(labels: np.ndarray) -> float | None:
        if len(set(labels.tolist())) < 2 or len(set(labels.tolist())) >= n:
            return None
        sample = SILHOUETTE_SAMPLE if n > SILHOUETTE_SAMPLE else None
        return float(silhouette_score(x, labels, sample_size=sample, random_state=seed))

    if k is not None:
        labels = fit(k)
        s = score(labels)
        return k, labels, s, {} if s is None else {k: s}
    tried: dict[int, tuple[float, np.ndarray]] = {}
    for kk in range(k_range[0], min(k_range[1], n - 1) + 1):
        labels = fit(kk)
        s = score(labels)
        if s is not None:
            tried[kk] = (s, labels)
    if not tried:
        labels = fit(min(2, n))
        return min(2, n), labels, score(labels), {}
    best = max(tried, key=lambda kk: tried[kk][0])
    return best, tried[best][1], tried[best][0], {kk: s for kk, (s, _) in tried.items()}


def _activity_level(median: float, population: np.ndarray) -> str:
    low, high = np.quantile(population, [1 / 3, 2 / 3])
    if median > high:
        return "active"
    if median <= low and low < high:
        return "casual"
    return "regular"


def _tag_shares(counts: sparse.csr_matrix) -> np.ndarray:
    """Each tag's share of all the tag engagements of these users."""
    totals = np.asarray(counts.sum(axis=0)).ravel()
    return totals / totals.sum() if totals.sum() else totals


def describe(features: UserFeatures, x: np.ndarray, labels: np.ndarray, k: int) -> list[Segment]:
    """Each cluster as a :class:`Segment`, largest first (numbered ``segment:<k>:<n>``)."""
    counts = features.tag_counts.tocsr()
    engaged = (counts > 0).astype(float)
    population = _tag_shares(counts)
    order = sorted(set(labels.tolist()), key=lambda c: (-int((labels == c).sum()), c))
    segments = []
    for n, c in enumerate(order):
        mask = labels == c
        idx = np.flatnonzero(mask)
        coverage = np.asarray(engaged[idx].mean(axis=0)).ravel()
        shares_here = _tag_shares(counts[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = np.where(population > 0, shares_here / population, 0.0)
        candidates = list(np.flatnonzero((coverage >= MIN_TAG_COVERAGE) & (lift > 1)))
        candidates.sort(key=lambda j: (-lift[j], -coverage[j], features.tags[j]))
        top_tags = [
            {
                "tag": features.tags[j],
                "lift": round(float(lift[j]), 3),
                "coverage": round(float(coverage[j]), 3),
            }
            for j in candidates[:TOP_TAGS]
        ]
        shares = features.type_shares[idx].mean(axis=0)
        top_types = [
            {"type": features.event_types[j], "share": round(float(shares[j]), 3)}
            for j in np.argsort(-shares, kind="stable")[:3]
            if shares[j] > 0
        ]
        centre = x[idx].mean(axis=0)
        central = idx[np.argsort(((x[idx] - centre) ** 2).sum(axis=1), kind="stable")]
        median_events = float(np.median(features.events[idx]))
        level = _activity_level(median_events, features.events)
        named = ", ".join(t["tag"] for t in top_tags[:2]) or (  # type: ignore[misc]
            f"mostly {top_types[0]['type']}" if top_types else "no tags"
        )
        segments.append(
            Segment(
                group_id=f"{PREFIX}{k}:{n}",
                label=f"{level} · {named}",
                size=int(mask.sum()),
                top_tags=top_tags,
                median_events=median_events,
                median_active_days=float(np.median(features.active_days[idx])),
                top_event_types=top_types,
                examples=[features.users[i] for i in central[:EXAMPLES]],
                members=[features.users[i] for i in idx],
            )
        )
    return segments


def segment_users(
    session: Session,
    k: int | None = None,
    seed: int = 0,
    k_range: tuple[int, int] = K_RANGE,
    factors: LoadedModel | None = None,
    load: Callable[[], UserFeatures] | None = None,
) -> Segmentation:
    """Load, embed, cluster and describe the store's users (nothing is written); with
    ``factors`` (a trained ALS/BPR model) its user factors replace the tag profile; ``load``
    computes the features instead of :func:`load_features` (the Spark engine's)."""
    t0 = time.perf_counter()
    features = load() if load is not None else load_features(session)
    t1 = time.perf_counter()
    interests = None if factors is None else model_factors(features.users, factors)
    x = embed(features, seed=seed, interests=interests)
    t2 = time.perf_counter()
    chosen, labels, silhouette, silhouettes = cluster(x, k, seed, k_range)
    t3 = time.perf_counter()
    segments = describe(features, x, labels, chosen)
    t4 = time.perf_counter()
    return Segmentation(
        k=chosen,
        silhouette=silhouette,
        silhouettes=silhouettes,
        users=features.users,
        labels=labels,
        segments=segments,
        seconds={
            "load": t1 - t0,
            "embed": t2 - t1,
            "cluster": t3 - t2,
            "describe": t4 - t3,
        },
        embedding=x,
    )


def store_segments(session: Session, segmentation: Segmentation, now: datetime) -> int:
    """Replace every stored segment group with these segments and their members.

    Runs in the caller's transaction, so readers see the old or the new segments, never a mix.
    Returns the number of memberships written."""
    old = select(Group.id).where(Group.external_id.startswith(PREFIX, autoescape=True))
    session.execute(delete(Membership).where(Membership.group_id.in_(old)))
    session.execute(delete(Group).where(Group.external_id.startswith(PREFIX, autoescape=True)))
    built = {"built": now.isoformat(), "silhouette": segmentation.silhouette}
    upsert_groups(
        session,
        [
            GroupIn(
                group_id=s.group_id,
                name=s.label,
                created=now,
                attributes={**s.attributes(), **built},
            )
            for s in segmentation.segments
        ],
    )
    return add_memberships(
        session,
        [
            MembershipIn(group_id=s.group_id, user_id=user, created=now)
            for s in segmentation.segments
            for user in s.members
        ],
    )


def build_segments(
    session: Session,
    k: int | None = None,
    seed: int = 0,
    store: bool = False,
    now: datetime | None = None,
    factors: LoadedModel | None = None,
    load: Callable[[], UserFeatures] | None = None,
) -> Segmentation:
    """Segment the store's users and, with ``store``, replace the stored segment groups."""
    segmentation = segment_users(session, k, seed, factors=factors, load=load)
    if store:
        t = time.perf_counter()
        store_segments(session, segmentation, now or datetime.now(UTC))
        segmentation.seconds["store"] = time.perf_counter() - t
    return segmentation


def _stored(group: Group) -> dict[str, Any]:
    """The group's attributes as a segment description (whatever the row holds: callers
    validate it, since a row written behind the API's back may hold anything)."""
    attributes = group.attributes if isinstance(group.attributes, dict) else {}
    return {**attributes, "group_id": group.external_id}


def _segment_order(group: Group) -> tuple[tuple[int, ...], str]:
    numbers = tuple(int(p) for p in group.external_id[len(PREFIX) :].split(":") if p.isdecimal())
    return numbers, group.external_id


def stored_segments(session: Session) -> list[dict[str, Any]]:
    """The stored segments (group id and description), in segment order."""
    groups = session.scalars(
        select(Group).where(Group.external_id.startswith(PREFIX, autoescape=True))
    ).all()
    return [_stored(g) for g in sorted(groups, key=_segment_order)]


def user_segments(session: Session, user_id: str) -> list[dict[str, Any]]:
    """The stored segment groups ``user_id`` belongs to, in segment order (empty for an unknown
    or unsegmented user; one after a build, more only if rows were written by other means)."""
    groups = session.scalars(
        select(Group)
        .join(Membership, Membership.group_id == Group.id)
        .join(User, User.id == Membership.user_id)
        .where(
            User.external_id == user_id,
            Group.external_id.startswith(PREFIX, autoescape=True),
        )
    ).all()
    return [_stored(g) for g in sorted(groups, key=_segment_order)]
