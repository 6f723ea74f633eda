"""Influence and spread: who carries attention in the community, and how posts travel.

* **User graph** (:func:`build_user_graph`): directed, weighted edges ``u -> v`` meaning "u pays
  attention to v": social edges (follow, trust, friend in both directions, interact with their
  weight; ``block`` never counts) plus interactions (u's events on an item authored by v add
  the event type's weight from ``Settings.event_weights``). Built with igraph, which is about
  20x faster than networkx on PageRank here (``../shared/DEPENDENCIES.md``).
* **Centrality** (:func:`centrality`): weighted PageRank (damping 0.85) on the directed graph and
  eigenvector centrality on its undirected projection (a directed graph that is not strongly
  connected has no meaningful leading eigenvector), plus weighted in-degree.
* **Reach** (:func:`reach`): distinct users other than the author who had any event on a post,
  and on any post of an author.
* **Cascades** (:func:`reconstruct_cascade`, :func:`item_cascade`): a share/repost of an item
  hangs under a *parent*: the event context's ``via`` user (or the user of the event named by
  ``parent``) when that user already holds the item; else the earliest earlier sharer whom the
  sharer follows (follow, friend or trust edge); else the author (the root). The resulting tree
  gives size, depth, largest breadth (users at one depth), time to reach N users and structural
  virality (Goel et al. 2016: mean distance between all pairs of the tree's nodes).
* **Influence maximisation** (:func:`celf_seeds`): greedy seed set under the independent cascade
  model with CELF lazy evaluation (Leskovec et al. 2007), on live-edge Monte Carlo samples drawn
  once from a seeded generator, so the greedy (1 - 1/e) guarantee holds on the sampled spread.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, aliased

from agora.config import DEFAULT_EVENT_WEIGHTS
from agora.db.tables import Event, Item, SocialEdge, User
from agora.features.store import event_weight

if TYPE_CHECKING:
    import igraph as ig

#: Event types that pass an item on to the sharer's audience.
CASCADE_EVENT_TYPES: tuple[str, ...] = ("share", "repost")
#: Social edge types that carry attention (``block`` is the opposite of attention).
ATTENTION_EDGE_TYPES: tuple[str, ...] = ("follow", "friend", "trust", "interact")
#: Edge types read as "the source sees what the target shares" when placing a share.
FOLLOW_EDGE_TYPES: tuple[str, ...] = ("follow", "friend", "trust")


# --------------------------------------------------------------------------- user graph


#: The largest weight one pair of users carries in a graph (a stored weight of 1e308 would
#: overflow igraph's sums).
MAX_EDGE_WEIGHT = 1e6


def graph_from_edges(
    edges: Mapping[tuple[str, str], float] | Iterable[tuple[str, str]],
) -> ig.Graph:
    """A directed igraph graph over named vertices from ``(source, target) -> weight`` (or
    unweighted pairs, weight 1); self-loops, and weights that are not positive finite numbers,
    are dropped, and a pair's weight is capped at :data:`MAX_EDGE_WEIGHT` (igraph's ARPACK and
    LAPACK code aborts the whole process on an overflowing weight)."""
    weights: dict[tuple[str, str], float] = {}
    pairs = edges.items() if isinstance(edges, Mapping) else ((pair, 1.0) for pair in edges)
    for (src, dst), w in pairs:
        w = float(w)
        if src != dst and math.isfinite(w) and w > 0:
            weights[(src, dst)] = min(weights.get((src, dst), 0.0) + w, MAX_EDGE_WEIGHT)
    names = sorted({u for pair in weights for u in pair})
    index = {name: i for i, name in enumerate(names)}
    import igraph as ig  # here, not at module level: it loads matplotlib (seconds at start-up)

    graph = ig.Graph(
        n=len(names),
        edges=[(index[s], index[t]) for s, t in weights],
        directed=True,
        vertex_attrs={"name": names},
        edge_attrs={"weight": list(weights.values())},
    )
    return graph


def build_user_graph(
    session: Session,
    edge_types: Sequence[str] = ATTENTION_EDGE_TYPES,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
    include_events: bool = True,
) -> ig.Graph:
    """The store's attention graph (vertex ``name`` = external user id, edge ``weight``)."""
    source, target = aliased(User), aliased(User)
    edges: dict[tuple[str, str], float] = {}

    def add(src: str, dst: str, w: float) -> None:
        if w > 0 and src != dst:
            edges[(src, dst)] = edges.get((src, dst), 0.0) + w

    rows = session.execute(
        select(source.external_id, target.external_id, SocialEdge.type, SocialEdge.weight)
        .join(source, source.id == SocialEdge.source_id)
        .join(target, target.id == SocialEdge.target_id)
        .where(SocialEdge.type.in_(list(edge_types)))
    )
    for src, dst, kind, weight in rows:
        add(src, dst, weight)
        if kind == "friend":
            add(dst, src, weight)
    if include_events:
        author = aliased(User)
        rows = session.execute(
            select(source.external_id, author.external_id, Event.type, Event.value, func.count())
            .join(source, source.id == Event.user_id)
            .join(Item, Item.id == Event.item_id)
            .join(author, author.id == Item.author_id)
            .where(Event.user_id != Item.author_id)
            .group_by(source.external_id, author.external_id, Event.type, Event.value)
        )
        for src, dst, kind, value, n in rows:
            add(src, dst, n * event_weight(kind, value, event_weights))
    return graph_from_edges(edges)


@dataclass(frozen=True)
class UserInfluence:
    user_id: str
    pagerank: float
    eigenvector: float
    in_degree: float


def centrality(
    graph: ig.Graph, top: int | None = None, damping: float = 0.85
) -> list[UserInfluence]:
    """Users by weighted PageRank (highest first) with eigenvector centrality (undirected
    projection, scaled so the maximum is 1; users outside the largest component get values
    near 0) and weighted in-degree."""
    if graph.vcount() == 0:
        return []
    weights = graph.es["weight"] if graph.ecount() else None
    pagerank = graph.pagerank(weights=weights, damping=damping, directed=True)
    undirected = graph.as_undirected(mode="collapse", combine_edges="sum")
    with warnings.catch_warnings():  # disconnected graphs: small components get ~0, as documented
        warnings.filterwarnings("ignore", "Some eigenvector centralities", RuntimeWarning)
        eigen = undirected.eigenvector_centrality(
            scale=True, weights=undirected.es["weight"] if undirected.ecount() else None
        )
    in_degree = graph.strength(mode="in", weights=weights)
    order = np.argsort(-np.asarray(pagerank), kind="stable")[: top if top else None]
    names = graph.vs["name"]
    return [
        UserInfluence(names[i], float(pagerank[i]), float(eigen[i]), float(in_degree[i]))
        for i in order
    ]


@dataclass(frozen=True)
class Reach:
    """A post's or author's reach: distinct other users with an event, and their events."""

    key: str
    users: int
    events: int


def reach(
    session: Session, by: str = "item", top: int = 20, only: str | None = None
) -> list[Reach]:
    """Posts (``by="item"``) or authors (``by="author"``) by the number of distinct other users
    who engaged with them, largest first (ties by id); ``only``: just that post or author."""
    if by not in ("item", "author"):
        raise ValueError(f"by must be 'item' or 'author', not {by!r}")
    author = aliased(User)
    key = Item.external_id if by == "item" else author.external_id
    users = func.count(Event.user_id.distinct())
    stmt = (
        select(key, users, func.count())
        .select_from(Event)
        .join(Item, Item.id == Event.item_id)
        .join(author, author.id == Item.author_id, isouter=by == "item")
        .where((Item.author_id.is_(None)) | (Event.user_id != Item.author_id))
        .where(key == only if only is not None else true())
        .group_by(key)
        .order_by(users.desc(), key)
        .limit(top)
    )
    return [Reach(k, int(u), int(n)) for k, u, n in session.execute(stmt)]


# --------------------------------------------------------------------------- cascades


@dataclass(frozen=True)
class Share:
    """One share of an item: who, when (seconds or a datetime) and whom they name as source."""

    user: str
    time: float
    via: str | None = None


@dataclass
class Cascade:
    """A reconstructed tree: ``parent[user]`` (the root has none), join times, depths."""

    root: str
    root_time: float
    parent: dict[str, str | None]
    time: dict[str, float]
    how: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def size(self) -> int:
        return len(self.parent)

    def depths(self) -> dict[str, int]:
        depth = {self.root: 0}
        for user in self.parent:  # insertion order is join order: parents come first
            if user != self.root:
                depth[user] = depth[self.parent[user]] + 1  # type: ignore[index]
        return depth

    @property
    def depth(self) -> int:
        return max(self.depths().values())

    @property
    def max_breadth(self) -> int:
        counts = np.bincount(list(self.depths().values()))
        return int(counts.max())

    def time_to_reach(self, n: int) -> float | None:
        """Seconds from the root until ``n`` users (root included) hold the item."""
        if n > self.size:
            return None
        return sorted(self.time.values())[n - 1] - self.root_time

    def structural_virality(self) -> float:
        """Mean shortest-path distance over all pairs of nodes (the Wiener index divided by
        n(n-1)/2), computed in O(n) as sum over edges of s(n - s) with s the subtree size."""
        n = self.size
        if n < 2:
            return 0.0
        subtree = dict.fromkeys(self.parent, 1)
        wiener = 0
        for user in reversed(list(self.parent)):
            up = self.parent[user]
            if up is not None:
                wiener += subtree[user] * (n - subtree[user])
                subtree[up] += subtree[user]
        return wiener / (n * (n - 1) / 2)

    def stats(self, reach_marks: Sequence[int] = (10, 100)) -> dict[str, float | int | None]:
        """Size, depth, max breadth, structural virality and time to reach each mark."""
        out: dict[str, float | int | None] = {
            "size": self.size,
            "depth": self.depth,
            "max_breadth": self.max_breadth,
            "structural_virality": round(self.structural_virality(), 4),
        }
        for mark in reach_marks:
            out[f"seconds_to_{mark}"] = self.time_to_reach(mark)
        return out


def reconstruct_cascade(
    root: str,
    root_time: float,
    shares: Iterable[Share],
    follows: set[tuple[str, str]] | None = None,
) -> Cascade:
    """Place each share (in time order) under its parent: ``via`` if that user already holds
    the item, else the earliest earlier sharer that the sharer follows (``(sharer, followed)``
    in ``follows``), else the root. A user's second share of the same item is counted in
    ``duplicates`` and does not move them in the tree."""
    followed: dict[str, set[str]] = {}
    for follower, target in follows or ():
        followed.setdefault(follower, set()).add(target)
    cascade = Cascade(root, root_time, {root: None}, {root: root_time}, {root: "root"})
    order: dict[str, int] = {}  # sharers in join order
    for share in sorted(shares, key=lambda s: s.time):
        if share.user in cascade.parent:
            cascade.duplicates += 1
            continue
        if share.via is not None and share.via in cascade.parent and share.via != share.user:
            parent, how = share.via, "via"
        else:
            earlier = [(order[f], f) for f in followed.get(share.user, ()) if f in order]
            parent, how = (min(earlier)[1], "follow") if earlier else (root, "root")
        cascade.parent[share.user] = parent
        cascade.time[share.user] = share.time
        cascade.how[share.user] = how
        order[share.user] = len(order)
    return cascade


def _seconds(when: datetime) -> float:
    return when.timestamp()


def item_cascade(session: Session, item_external_id: str) -> Cascade | None:
    """The share/repost cascade of one stored item (None if the item is not in the store).

    Times are Unix seconds. The root is the author (or, for an item without author, its first
    sharer); a context ``parent`` names the event id of the share this one came from.
    """
    item = session.execute(
        select(Item.id, Item.created, User.external_id.label("author"))
        .join(User, User.id == Item.author_id, isouter=True)
        .where(Item.external_id == item_external_id)
    ).one_or_none()
    if item is None:
        return None
    rows = session.execute(
        select(Event.event_id, User.external_id, Event.timestamp, Event.context)
        .join(User, User.id == Event.user_id)
        .where(Event.item_id == item.id, Event.type.in_(CASCADE_EVENT_TYPES))
        .order_by(Event.timestamp, Event.id)
    ).all()
    user_of_event = {event_id: user for event_id, user, _, _ in rows}
    shares = []
    for _, user, when, context in rows:
        context = context or {}
        via = context.get("via")
        if via is None and context.get("parent") is not None:
            via = user_of_event.get(str(context["parent"]))
        shares.append(Share(user, _seconds(when), str(via) if via is not None else None))
    root = item.author
    if root is None:
        if not shares:
            return None
        root, shares = shares[0].user, shares[1:]
    participants = {root} | {s.user for s in shares}
    follows = _follow_pairs(session, participants)
    return reconstruct_cascade(root, _seconds(item.created), shares, follows)


def _follow_pairs(session: Session, users: set[str]) -> set[tuple[str, str]]:
    """(follower, followed) pairs among ``users`` (friend edges count both ways)."""
    source, target = aliased(User), aliased(User)
    rows = session.execute(
        select(source.external_id, target.external_id, SocialEdge.type)
        .join(source, source.id == SocialEdge.source_id)
        .join(target, target.id == SocialEdge.target_id)
        .where(
            SocialEdge.type.in_(FOLLOW_EDGE_TYPES),
            source.external_id.in_(users),
            target.external_id.in_(users),
        )
    )
    pairs = set()
    for src, dst, kind in rows:
        pairs.add((src, dst))
        if kind == "friend":
            pairs.add((dst, src))
    return pairs


# --------------------------------------------------------------------------- Weibo cascades


@dataclass(frozen=True)
class WeiboCascade:
    """One line of the DeepHawkes/CasFlow Weibo file: the dataset's own fields."""

    cascade_id: str
    root: str
    published: int
    n_declared: int
    paths: list[tuple[list[str], int]]

    def shares(self) -> list[Share]:
        """Every non-root path end as a share with ``via`` = the previous user on its path."""
        return [Share(p[-1], self.published + t, p[-2]) for p, t in self.paths if len(p) > 1]

    @property
    def path_depth(self) -> int:
        """Depth as the dataset states it: the longest retweet path, in hops."""
        return max(len(p) - 1 for p, _ in self.paths)


def read_weibo_cascades(path: str | Path) -> list[WeiboCascade]:
    """Parse ``cascade_id<TAB>root<TAB>publish_unix<TAB>n<TAB>u0/../uk:seconds ...`` lines."""
    cascades = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        cascade_id, root, published, n, paths = line.split("\t")
        parsed = []
        for token in paths.split():
            chain, seconds = token.rsplit(":", 1)
            parsed.append((chain.split("/"), int(seconds)))
        cascades.append(WeiboCascade(cascade_id, root, int(published), int(n), parsed))
    return cascades


# --------------------------------------------------------------------------- influence max


def spread_graph(attention: ig.Graph) -> ig.Graph:
    """The attention graph reversed: if u pays attention to v, v can activate u."""
    spread = attention.copy()
    spread.reverse_edges()
    return spread


class LiveEdgeSamples:
    """``runs`` live-edge samples of the independent cascade model on ``graph`` (an edge u -> v
    means u can activate v; see :func:`spread_graph`): each edge is
    kept with its probability (``p`` for all edges, or ``1 / in-degree of the target`` when
    ``p`` is None: the weighted cascade model). ``spread(S)`` is the mean number of vertices
    reachable from S over the samples."""

    def __init__(self, graph: ig.Graph, p: float | None, runs: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        edges = np.asarray(graph.get_edgelist(), dtype=np.int64).reshape(-1, 2)
        if p is None:
            indeg = np.asarray(graph.indegree(), dtype=float)
            prob = 1.0 / np.maximum(indeg[edges[:, 1]], 1.0)
        else:
            prob = np.full(len(edges), float(p))
        self.n = graph.vcount()
        graph_class = type(graph)  # igraph.Graph, without importing it here
        self.samples = [
            graph_class(n=self.n, edges=edges[rng.random(len(edges)) < prob], directed=True)
            for _ in range(runs)
        ]

    def reach(self, sample: int, vertex: int) -> list[int]:
        return self.samples[sample].subcomponent(vertex, mode="out")

    def spread(self, seeds: Sequence[int]) -> float:
        total = 0
        for r in range(len(self.samples)):
            covered: set[int] = set()
            for v in seeds:
                if v not in covered:
                    covered.update(self.reach(r, v))
            total += len(covered)
        return total / len(self.samples)


@dataclass(frozen=True)
class SeedSet:
    """Chosen seeds in order, the sampled spread of the first k of them, spread evaluations."""

    seeds: list[str]
    spread: list[float]
    evaluations: int


def celf_seeds(graph: ig.Graph, k: int, samples: LiveEdgeSamples) -> SeedSet:
    """Greedy seed set of size ``k`` maximising expected spread on ``samples`` (CELF: a node's
    marginal gain is only recomputed when it tops the queue with a stale value, which is exact
    because spread is submodular)."""
    runs = len(samples.samples)
    covered = [np.zeros(samples.n, dtype=bool) for _ in range(runs)]

    def gain(v: int) -> float:
        return sum(int((~covered[r][samples.reach(r, v)]).sum()) for r in range(runs)) / runs

    heap = [(-gain(v), v, 0) for v in range(samples.n)]
    evaluations = len(heap)
    heapq.heapify(heap)
    chosen: list[int] = []
    spread: list[float] = []
    total = 0.0
    while heap and len(chosen) < k:
        neg, v, stamp = heapq.heappop(heap)
        if stamp == len(chosen):
            chosen.append(v)
            total += -neg
            spread.append(total)
            for r in range(runs):
                covered[r][samples.reach(r, v)] = True
        else:
            heapq.heappush(heap, (-gain(v), v, len(chosen)))
            evaluations += 1
    names = graph.vs["name"] if "name" in graph.vs.attributes() else list(range(graph.vcount()))
    return SeedSet([names[v] for v in chosen], spread, evaluations)
