"""Fake-engagement detection evaluated by injecting attacks into the bundled Cardano store.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/fake_engagement.py [--seed 0]

The Stack Exchange dump ``data/cardano-se`` is imported (``agora.ingest.registry.load_any``)
into a temporary SQLite store. Its real engagement (comments, answers, bookmarks) is kept;
realistic background traffic is added from it (seeded): a like a few minutes after 30% of the
real engagements, and for 1,500 of them a click followed by a dwell (20% of those bounce: a
dwell of 1-4 s, under the 5 s threshold). Then, through the ingest service
(``agora.ingest.service.add_dataset``), four attacks are injected as real users and events:

a. **like farm**: 30 accounts created 0-48 h before, liking one real author's 5 posts within
   one hour;
b. **reciprocal ring**: 10 accounts (5 new, each posting 2 items, and 5 existing authors) liking
   each other's posts over two weeks;
c. **click bots**: 20 accounts (old, 100-400 days) clicking 30 random items each over a week, no
   dwell;
d. **camouflaged farm**: 15 accounts that like another author's 6 posts within two hours but
   also like 10 popular items at random times over 60 days and click-and-dwell like readers.

``agora.analytics.anomalies.service.detect`` then scores every user. Per attack (its accounts
against every non-injected user) and overall: precision@k with k = the number injected, recall and
precision at the flag threshold, average precision, and the precision-recall curve
(``bench/results/fake_engagement.png``). The false positives of the attacked run are listed
with their reasons, and a run with no injection (background only) counts the real accounts
at or above the threshold. Writes ``bench/results/fake_engagement.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _record import run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve  # noqa: E402

from agora.analytics import anomalies  # noqa: E402
from agora.config import BUILTIN_EVENT_TYPES  # noqa: E402
from agora.db.engine import make_engine, migrate, session_factory, transaction  # noqa: E402
from agora.ingest.registry import load_any  # noqa: E402
from agora.ingest.schemas import Dataset, EventIn, ItemIn, UserIn  # noqa: E402
from agora.ingest.service import add_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TYPES = [*BUILTIN_EVENT_TYPES, "answer", "accept", "ask"]
ENGAGE = ("comment", "answer", "bookmark")
console = Console(soft_wrap=True)


class Injector:
    """Builds the injected users, items and events with unique ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.users: list[UserIn] = []
        self.items: list[ItemIn] = []
        self.events: list[EventIn] = []

    def event(self, user: str, item: str, kind: str, when: datetime, value: float | None = None):
        self.events.append(
            EventIn(
                event_id=f"inj:{len(self.events)}",
                user_id=user,
                item_id=item,
                type=kind,
                timestamp=when,
                value=value,
            )
        )

    def dataset(self) -> Dataset:
        return Dataset(users=self.users, items=self.items, events=self.events)


def background(real: Dataset, rng: random.Random) -> Dataset:
    """Likes and clicks-with-dwell shaped by the real engagement (not attacks)."""
    inj = Injector(rng)
    engaged = [e for e in real.events if e.type in ENGAGE and e.timestamp is not None]
    for e in engaged:
        if rng.random() < 0.3:
            inj.event(
                e.user_id, e.item_id, "like", e.timestamp + timedelta(minutes=rng.uniform(1, 30))
            )
    for e in rng.sample(engaged, min(1500, len(engaged))):
        click = e.timestamp - timedelta(minutes=rng.uniform(1, 20))
        inj.event(e.user_id, e.item_id, "click", click)
        dwell = rng.uniform(1, 4) if rng.random() < 0.2 else rng.uniform(10, 300)
        inj.event(e.user_id, e.item_id, "dwell", click + timedelta(seconds=5), dwell)
    for k, ev in enumerate(inj.events):
        inj.events[k] = ev.model_copy(update={"event_id": f"bg:{k}"})
    return inj.dataset()


def attacks(real: Dataset, rng: random.Random) -> tuple[Dataset, dict[str, list[str]]]:
    """The four attacks (see the module docstring) and the accounts of each."""
    inj = Injector(rng)
    posts: dict[str, list[ItemIn]] = {}
    for item in real.items:
        if item.author_id:
            posts.setdefault(item.author_id, []).append(item)
    times = sorted(e.timestamp for e in real.events if e.timestamp is not None)
    start, end = times[len(times) // 4], times[-1]

    def some_time() -> datetime:
        return start + (end - start) * rng.random()

    popularity: dict[str, int] = {}
    for e in real.events:
        if e.type in ENGAGE:
            popularity[e.item_id] = popularity.get(e.item_id, 0) + 1
    popular = sorted(popularity, key=popularity.get, reverse=True)[:100]
    prolific = sorted(a for a, p in posts.items() if len(p) >= 6)
    victims = rng.sample(prolific, 2)
    groups: dict[str, list[str]] = {}

    # a. like farm
    t = some_time()
    targets = rng.sample(posts[victims[0]], 5)
    groups["like farm"] = [f"farm{i}" for i in range(30)]
    for u in groups["like farm"]:
        inj.users.append(UserIn(user_id=u, created=t - timedelta(hours=rng.uniform(0, 48))))
        for item in targets:
            inj.event(u, item.item_id, "like", t + timedelta(minutes=rng.uniform(0, 60)))

    # b. reciprocal ring: 5 new accounts with 2 posts each, 5 existing authors
    t = some_time()
    new = [f"ring{i}" for i in range(5)]
    old = rng.sample([a for a in posts if len(posts[a]) >= 2 and a not in victims], 5)
    groups["reciprocal ring"] = new + old
    ring_posts: dict[str, list[str]] = {a: [p.item_id for p in posts[a][-2:]] for a in old}
    for u in new:
        inj.users.append(UserIn(user_id=u, created=t - timedelta(days=rng.uniform(0, 5))))
        ring_posts[u] = []
        for j in range(2):
            item = f"ring-post-{u}-{j}"
            inj.items.append(ItemIn(item_id=item, author_id=u, title="ADA staking", created=t))
            ring_posts[u].append(item)
    for u in groups["reciprocal ring"]:
        for v in groups["reciprocal ring"]:
            if u != v:
                for item in ring_posts[v]:
                    inj.event(u, item, "like", t + timedelta(days=rng.uniform(0, 14)))

    # c. click bots
    t = some_time()
    groups["click bots"] = [f"clickbot{i}" for i in range(20)]
    all_items = [i.item_id for i in real.items]
    for u in groups["click bots"]:
        inj.users.append(UserIn(user_id=u, created=t - timedelta(days=rng.uniform(100, 400))))
        for item in rng.sample(all_items, 30):
            inj.event(u, item, "click", t + timedelta(days=rng.uniform(0, 7)))

    # d. camouflaged farm
    t = some_time()
    targets = rng.sample(posts[victims[1]], 6)
    groups["camouflaged"] = [f"camo{i}" for i in range(15)]
    for u in groups["camouflaged"]:
        inj.users.append(UserIn(user_id=u, created=t - timedelta(days=rng.uniform(0, 90))))
        for item in targets:
            inj.event(u, item.item_id, "like", t + timedelta(minutes=rng.uniform(0, 120)))
        for item in rng.sample(popular, 10):
            when = t + timedelta(days=rng.uniform(-30, 30))
            inj.event(u, item, "click", when)
            inj.event(u, item, "dwell", when + timedelta(seconds=5), rng.uniform(10, 200))
            inj.event(u, item, "like", when + timedelta(minutes=2))
    return inj.dataset(), groups


def store(tmp: str, name: str, parts: list[Dataset]) -> float:
    engine = make_engine(f"sqlite:///{tmp}/{name}.db")
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        for part in parts:
            add_dataset(session, part, TYPES)
    start = time.perf_counter()
    with session_factory(engine)() as session:
        report = anomalies.detect(session)
    seconds = time.perf_counter() - start
    engine.dispose()
    return report, seconds


def evaluate(report: anomalies.AnomalyReport, groups: dict[str, list[str]]) -> dict:
    scores = {u.user_id: u.score for u in report.users}
    injected = {u for g in groups.values() for u in g}
    negatives = [s for u, s in scores.items() if u not in injected]
    flag = report.params.flag_at
    out, curves = {}, {}
    for name, members in [*groups.items(), ("overall", sorted(injected))]:
        pos = [scores.get(u, 0.0) for u in members]
        y = np.r_[np.ones(len(pos)), np.zeros(len(negatives))]
        s = np.r_[pos, negatives]
        order = np.argsort(-s, kind="stable")
        k = len(pos)
        tp_flag = int(sum(p >= flag for p in pos))
        fp_flag = int(sum(n >= flag for n in negatives))
        out[name] = {
            "injected": k,
            "precision_at_k": float(y[order[:k]].mean()),
            "recall_at_threshold": tp_flag / k,
            "precision_at_threshold": tp_flag / max(tp_flag + fp_flag, 1),
            "average_precision": float(average_precision_score(y, s)),
        }
        precision, recall, _ = precision_recall_curve(y, s)
        curves[name] = (recall, precision)
    return out, curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    real = load_any(REPO / "data" / "cardano-se")
    bg = background(real, rng)
    attack, groups = attacks(real, rng)
    with tempfile.TemporaryDirectory() as tmp:
        clean, t_clean = store(tmp, "clean", [real, bg])
        attacked, t_attacked = store(tmp, "attacked", [real, bg, attack])
    metrics, curves = evaluate(attacked, groups)
    injected = {u for g in groups.values() for u in g}
    group_of = {u: g for g, members in groups.items() for u in members}

    table = Table(title=f"Recovering injected accounts (threshold {attacked.params.flag_at})")
    for col in ("attack", "injected", "precision@k", "recall@thr", "precision@thr", "AP"):
        table.add_column(col, justify="left" if col == "attack" else "right")
    for name, m in metrics.items():
        table.add_row(
            name,
            str(m["injected"]),
            f"{m['precision_at_k']:.3f}",
            f"{m['recall_at_threshold']:.3f}",
            f"{m['precision_at_threshold']:.3f}",
            f"{m['average_precision']:.3f}",
        )
    console.print(table)

    false_pos = [u for u in attacked.users if u.user_id not in injected][:10]
    fp_table = Table(title="Highest-scoring real accounts in the attacked store")
    for col in ("user", "score", "engagements", "clicks", "reasons"):
        fp_table.add_column(col)
    for u in false_pos:
        fp_table.add_row(
            u.user_id, f"{u.score:.3f}", str(u.engagements), str(u.clicks), "; ".join(u.reasons)
        )
    console.print(fp_table)
    missed = [
        {"user_id": u.user_id, "attack": group_of[u.user_id], "score": round(u.score, 4)}
        for u in attacked.users
        if u.user_id in injected and u.score < attacked.params.flag_at
    ]
    clean_flagged = clean.flagged()
    console.print(
        f"no injection: {len(clean_flagged)} of {len(clean.users)} scored real accounts at or "
        f"above {clean.params.flag_at}; detect() took {t_clean:.2f} s (clean), "
        f"{t_attacked:.2f} s (attacked)"
    )

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=f"{name} (AP {metrics[name]['average_precision']:.2f})")
    ax.set_xlabel("recall of injected accounts")
    ax.set_ylabel("precision")
    ax.set_title("Fake-engagement detection on the Cardano store")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "fake_engagement.png", dpi=120)

    out = {
        "run": run_record(vars(args)),
        "seed": args.seed,
        "weights": anomalies.WEIGHTS,
        "threshold": attacked.params.flag_at,
        "store": {
            "real_users": len(real.users),
            "real_items": len(real.items),
            "real_events": len(real.events),
            "background_events": len(bg.events),
            "injected_events": len(attack.events),
        },
        "metrics": metrics,
        "false_positives_top10": [
            {
                "user_id": u.user_id,
                "score": round(u.score, 4),
                "signals": u.signals,
                "reasons": u.reasons,
                "engagements": u.engagements,
                "clicks": u.clicks,
            }
            for u in false_pos
        ],
        "missed": missed,
        "no_injection": {
            "scored_users": len(clean.users),
            "flagged": len(clean_flagged),
            "flagged_users": [
                {"user_id": u.user_id, "score": round(u.score, 4), "reasons": u.reasons}
                for u in clean_flagged
            ],
        },
        "seconds_detect": {"clean": round(t_clean, 3), "attacked": round(t_attacked, 3)},
    }
    (RESULTS / "fake_engagement.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
