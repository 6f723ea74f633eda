"""Replay a day of synthetic feed traffic against ad campaigns through the real market service.

The bundled community (``data/cardano-se``) is imported into a temporary SQLite store. A day of
traffic is drawn from it: sessions follow the community's hourly activity profile, users are
drawn by their activity (lurkers with no events visit too), each session reads one to a few
organic pages whose items are drawn by popularity and the user's tags. Every page goes through
``agora.market.service.serve_ads`` (targeting, holdout, frequency caps, pacing, GSP auction),
clicks through ``record_click`` and conversions through ``record_conversion``, all in the
store, with the simulated clock.

Users click organic items with a probability from the item's tag match and its position (an ad
above an item pushes it down), and ads with the campaign's true CTR times the same factors.
Eligible users convert with a baseline probability; an ad click adds the campaign's
incremental conversion probability, so the holdout lift has a known true value.

Runs: the default market settings, the same without pacing, then a sweep of reserve prices and
of slot positions. Reports revenue, budget use per campaign, ad load, organic engagement, and
the invariants ``max_spend_over_budget`` (largest spend/budget ratio of any campaign in any
run), ``holdout_impressions`` and ``frequency_cap_violations`` (both must be 0), counted from
the stored impressions.

    # writes bench/results/market_sim.json and the PNG plots next to it
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/market_sim.py
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from _record import run_record
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.tables import Event, Item, User
from agora.feed.service import ad_viewer
from agora.ingest.registry import load_any
from agora.ingest.service import add_dataset
from agora.market import pacing, service
from agora.market.config import MarketConfig
from agora.market.models import AdClick, AdConversion, AdImpression, Campaign, Eligibility
from agora.market.schemas import CampaignIn

REPO = Path(__file__).resolve().parents[1]
DUMP = REPO / "data" / "cardano-se"
RESULTS = REPO / "bench" / "results"
DAY = datetime(2026, 6, 1, tzinfo=UTC)  # the simulated (UTC) day
PAGE = 10  # organic items per page
ORGANIC_CTR = 0.03  # click probability of an organic item in position 1 without tag match
LURKER_WEIGHT = 0.2  # visit weight of a user with no events (active users: 1 + their events)
CTR_TRAIN_SHARE = 0.25  # share of the default run's traffic the CTR model is trained on
console = Console()


@dataclass(frozen=True)
class Plan:
    """A campaign of the simulation: its spec and its true click and conversion behaviour."""

    spec: CampaignIn
    true_ctr: float
    baseline_cvr: float  # conversion probability of an eligible user without the ad
    click_cvr: float  # added conversion probability after an ad click


@dataclass
class Community:
    users: list[str]
    weights: np.ndarray
    items: list[str]
    item_tags: list[frozenset[str]]
    popularity: np.ndarray
    user_tags: dict[str, Counter]
    profile: np.ndarray


@dataclass
class Run:
    name: str
    config: MarketConfig
    pages: int = 0
    ads: int = 0
    slots_offered: int = 0
    organic_clicks: int = 0
    ad_clicks: int = 0
    hourly_spend: dict[str, np.ndarray] = field(default_factory=dict)
    result: dict = field(default_factory=dict)


def pos_factor(position: int) -> float:
    """How much attention a feed position gets (1 at the top)."""
    return 1.0 / math.log2(position + 1)


def load_community(sessions: sessionmaker[Session], profile_days: int) -> Community:
    with sessions() as session:
        users = session.execute(
            select(User.external_id, func.count(Event.id))
            .outerjoin(Event, Event.user_id == User.id)
            .group_by(User.id, User.external_id)
        ).all()
        items = session.execute(
            select(Item.external_id, Item.tags, func.count(Event.id))
            .outerjoin(Event, Event.item_id == Item.id)
            .group_by(Item.id, Item.external_id, Item.tags)
        ).all()
        touched = session.execute(
            select(User.external_id, Item.tags)
            .join(Event, Event.user_id == User.id)
            .join(Item, Item.id == Event.item_id)
        ).all()
        profile = pacing.traffic_profile(session, profile_days)
    user_tags: dict[str, Counter] = defaultdict(Counter)
    for user, tags in touched:
        user_tags[user].update(tags or [])
    return Community(
        users=[u for u, _ in users],
        weights=np.array([n + 1.0 if n else LURKER_WEIGHT for _, n in users]),
        items=[i for i, _, _ in items],
        item_tags=[frozenset(t or []) for _, t, _ in items],
        popularity=np.array([n + 1.0 for _, _, n in items]),
        user_tags=user_tags,
        profile=profile,
    )


def plans(com: Community, budget_scale: float = 1.0) -> list[Plan]:
    """Four campaigns: three targeted at popular tags, one untargeted; budgets that bind."""
    tag_count = Counter(t for tags in com.item_tags for t in tags)
    top = [t for t, _ in tag_count.most_common(3)]

    def creatives(tag: str | None) -> list[str]:
        order = np.argsort(-com.popularity)
        chosen = [com.items[i] for i in order if tag is None or tag in com.item_tags[i]]
        return chosen[:3]

    shapes = [  # (target tag, bid, daily budget, cap, true CTR, baseline CVR, click CVR)
        (top[0], 0.60, 3.0, 3, 0.05, 0.02, 0.30),
        (top[1], 0.40, 2.0, 2, 0.04, 0.03, 0.25),
        (top[2], 0.90, 3.0, 4, 0.03, 0.02, 0.40),
        (None, 0.25, 1.0, 3, 0.02, 0.01, 0.20),
    ]
    out = []
    for k, (tag, bid, budget, cap, ctr, base, lift) in enumerate(shapes):
        spec = CampaignIn(
            campaign_id=f"c{k + 1}-{tag or 'all'}",
            advertiser=f"advertiser {k + 1}",
            items=creatives(tag),
            target_tags=[tag] if tag else [],
            bid=bid,
            daily_budget=budget * budget_scale,
            frequency_cap=cap,
            conversion_event="purchase",
        )
        out.append(Plan(spec, ctr, base, lift))
    return out


def traffic(com: Community, sessions_per_day: int, rng: np.random.Generator) -> list:
    """(time, user, pages) of every session of the day, in time order."""
    hours = rng.choice(24, size=sessions_per_day, p=com.profile)
    seconds = rng.uniform(0, 3600, size=sessions_per_day)
    users = rng.choice(len(com.users), size=sessions_per_day, p=com.weights / com.weights.sum())
    pages = rng.geometric(0.6, size=sessions_per_day)  # 1.67 pages per session on average
    starts = [
        DAY + timedelta(hours=int(h), seconds=float(s)) for h, s in zip(hours, seconds, strict=True)
    ]
    day = zip(starts, (com.users[u] for u in users), pages, strict=True)
    return sorted(day, key=lambda x: x[0])


def match(user_tags: Counter, tags: frozenset[str]) -> float:
    """Share of an item's tags the user has engaged with (0..1)."""
    return sum(1 for t in tags if t in user_tags) / len(tags) if tags else 0.0


def reset(sessions: sessionmaker[Session], plan_list: list[Plan]) -> None:
    with transaction(sessions) as session:
        for table in (AdClick, AdConversion, AdImpression, Eligibility, Campaign):
            session.execute(delete(table))
        for p in plan_list:
            service.create_campaign(session, p.spec, DAY - timedelta(days=1))


def ctr_rows(session: Session) -> list[dict]:
    """Training rows for the CTR model from the stored impressions and clicks so far."""
    rows = session.execute(
        select(
            User.external_id,
            Item.external_id,
            Item.tags,
            Campaign.external_id,
            AdImpression.position,
            AdImpression.served,
            AdClick.id,
        )
        .join(User, User.id == AdImpression.user_id)
        .join(Item, Item.id == AdImpression.item_id)
        .join(Campaign, Campaign.id == AdImpression.campaign_id)
        .outerjoin(AdClick, AdClick.impression_id == AdImpression.id)
    ).all()
    recent: dict[str, list[str]] = defaultdict(list)
    for user, item in session.execute(
        select(User.external_id, Item.external_id)
        .join(Event, Event.user_id == User.id)
        .join(Item, Item.id == Event.item_id)
        .order_by(Event.timestamp.desc())
    ):
        if len(recent[user]) < service.RECENT_EVENTS:
            recent[user].append(item)
    return [
        {
            "user_id": u,
            "item_id": i,
            "campaign_id": c,
            "tags": list(tags or []),
            "position": pos,
            "hour": served.hour,
            "recent_items": recent.get(u, []),
            "clicked": int(click is not None),
        }
        for u, i, tags, c, pos, served, click in rows
    ]


def ctr_available() -> bool:
    """Whether the CTR model module can be imported (another part of Agora provides it)."""
    try:
        import agora.market.ctr  # noqa: F401
    except ImportError:
        return False
    return True


def train_ctr_model(sessions: sessionmaker[Session], path: Path) -> dict:
    """Fit agora.market.ctr.CTRModel on the impressions stored so far and save it."""
    from agora.market.ctr import CTRModel

    with sessions() as session:
        rows = ctr_rows(session)
    started = time.perf_counter()
    model = CTRModel(epochs=4, seed=0).fit(rows)
    model.save(path)
    return {
        "rows": len(rows),
        "clicks": sum(r["clicked"] for r in rows),
        "fit_seconds": round(time.perf_counter() - started, 2),
    }


def simulate(
    sessions: sessionmaker[Session],
    com: Community,
    plan_list: list[Plan],
    run: Run,
    day: list,
    seed: int,
    progress: Progress,
    ctr_switch: tuple[int, MarketConfig] | None = None,
) -> Run:
    """Replay ``day`` through the market service under ``run.config``."""
    rng = np.random.default_rng(seed)
    truth = {p.spec.campaign_id: p for p in plan_list}
    creative_tags = dict(zip(com.items, com.item_tags, strict=True))
    reset(sessions, plan_list)
    config = run.config
    share = com.popularity**0.7
    task = progress.add_task(run.name, total=len(day))
    page_weights: dict[str, np.ndarray] = {}
    for n, (start, user, n_pages) in enumerate(day):
        if ctr_switch is not None and n == ctr_switch[0]:
            config = ctr_switch[1]
        utags = com.user_tags.get(user, Counter())
        if user not in page_weights:
            affinity = [1 + 3 * match(utags, t) for t in com.item_tags] if utags else 1.0
            page_weights[user] = share * np.asarray(affinity) / (share * affinity).sum()
        weights = page_weights[user]
        for k in range(n_pages):
            now = start + timedelta(seconds=40 * k)
            picked = rng.choice(len(com.items), size=PAGE, replace=False, p=weights)
            page = [(com.items[i], sorted(com.item_tags[i])) for i in picked]
            with transaction(sessions) as session:
                ads = service.serve_ads(session, ad_viewer(session, user), page, config, now, rng)
            run.pages += 1
            run.ads += len(ads)
            run.slots_offered += len(service.usable_slots(config.slot_positions, PAGE))
            ad_at = {a.position for a in ads}
            positions = [p for p in range(1, PAGE + len(ads) + 1) if p not in ad_at]
            for item, pos in zip(picked, positions, strict=False):
                p_click = (
                    ORGANIC_CTR * (1 + 2 * match(utags, com.item_tags[item])) * pos_factor(pos)
                )
                run.organic_clicks += rng.random() < p_click
            for a in ads:
                plan = truth[a.campaign_id]
                fit = 1 + 2 * match(utags, creative_tags[a.item_id])
                if rng.random() < min(1.0, plan.true_ctr * fit * pos_factor(a.position)):
                    run.ad_clicks += 1
                    when = now + timedelta(seconds=20)
                    with transaction(sessions) as session:
                        service.record_click(session, a.impression_id, when)
                    if rng.random() < plan.click_cvr:
                        convert(sessions, a.campaign_id, user, when + timedelta(minutes=5), rng)
        progress.advance(task)
    # baseline conversions: every eligible user (both arms) converts with the baseline rate
    with sessions() as session:
        eligible = session.execute(
            select(Campaign.external_id, User.external_id, Eligibility.first_seen)
            .join(Campaign, Campaign.id == Eligibility.campaign_id)
            .join(User, User.id == Eligibility.user_id)
        ).all()
    for cid, user, seen in eligible:
        if rng.random() < truth[cid].baseline_cvr:
            convert(sessions, cid, user, seen + timedelta(minutes=rng.uniform(1, 600)), rng)
    run.result = measure(sessions, run, plan_list, com)
    return run


def convert(sessions: sessionmaker[Session], cid: str, user: str, when: datetime, rng) -> None:
    with transaction(sessions) as session:
        service.record_conversion(
            session, f"{cid}-{user}-{rng.integers(1 << 62)}", cid, user, when, timestamp=when
        )


def measure(
    sessions: sessionmaker[Session], run: Run, plan_list: list[Plan], com: Community
) -> dict:
    """Revenue, budget use, ad load, engagement and the invariants, from the stored rows."""
    cfg = run.config
    with sessions() as session:
        campaigns = {c.id: c for c in session.scalars(select(Campaign))}
        spend = dict(
            session.execute(
                select(AdClick.campaign_id, func.sum(AdClick.cost)).group_by(AdClick.campaign_id)
            ).all()
        )
        hourly = defaultdict(lambda: np.zeros(24))
        for cid, clicked, cost in session.execute(
            select(AdClick.campaign_id, AdClick.clicked, AdClick.cost)
        ):
            hourly[campaigns[cid].external_id][clicked.hour] += cost
        shown = session.execute(
            select(AdImpression.campaign_id, User.external_id).join(
                User, User.id == AdImpression.user_id
            )
        ).all()
        over_cap = session.execute(
            select(
                AdImpression.campaign_id, AdImpression.user_id, AdImpression.day, func.count()
            ).group_by(AdImpression.campaign_id, AdImpression.user_id, AdImpression.day)
        ).all()
        reports = {
            c.external_id: service.report(session, c.external_id, cfg, DAY + timedelta(days=1))
            for c in campaigns.values()
        }
    holdout_impressions = sum(
        service.in_holdout(campaigns[cid].holdout_salt, user, cfg.holdout_share)
        for cid, user in shown
    )
    violations = sum(1 for cid, _, _, n in over_cap if n > campaigns[cid].frequency_cap)
    run.hourly_spend = dict(hourly)
    per_campaign = {}
    for c in campaigns.values():
        r = reports[c.external_id]
        used = float(spend.get(c.id, 0.0)) / c.daily_budget
        lift = r["lift"]
        per_campaign[c.external_id] = {
            "bid": c.bid,
            "daily_budget": c.daily_budget,
            "spend": round(float(spend.get(c.id, 0.0)), 4),
            "budget_use": round(used, 4),
            "impressions": r["impressions"],
            "clicks": r["clicks"],
            "ctr": r["ctr"]["estimate"],
            "cpc": r["cpc"],
            "conversions": r["conversions"],
            "cvr": r["cvr"]["estimate"],
            "roi": r["roi"],
            "lift": {
                "exposed": [lift["exposed_converters"], lift["exposed_users"]],
                "holdout": [lift["holdout_converters"], lift["holdout_users"]],
                "difference": lift["difference"],
                "p_value": lift["p_value"],
            },
            "spend_by_hour": [round(x, 4) for x in hourly[c.external_id]],
        }
    return {
        "name": run.name,
        "reserve_price": cfg.reserve_price,
        "slot_positions": cfg.slot_positions,
        "pacing": cfg.pacing,
        "pages": run.pages,
        "revenue": round(sum(float(v) for v in spend.values()), 4),
        "ads_per_page": round(run.ads / max(run.pages, 1), 4),
        "slot_fill": round(run.ads / max(run.slots_offered, 1), 4),
        "organic_clicks_per_page": round(run.organic_clicks / max(run.pages, 1), 4),
        "ad_clicks": run.ad_clicks,
        "max_spend_over_budget": round(
            max(float(spend.get(c.id, 0.0)) / c.daily_budget for c in campaigns.values()), 6
        ),
        "holdout_impressions": holdout_impressions,
        "frequency_cap_violations": violations,
        "campaigns": per_campaign,
    }


def plot(runs: list[Run], default: Run, unpaced: Run, profile: np.ndarray, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(8, 5))
    hours = np.arange(25)
    target = np.concatenate([[0], np.cumsum(profile)])
    ax.plot(hours, target, "k--", label="target (traffic forecast)")
    for cid, info in default.result["campaigns"].items():
        spent = np.concatenate([[0], np.cumsum(info["spend_by_hour"])]) / info["daily_budget"]
        line = ax.plot(hours, spent, label=f"{cid} paced")[0]
        u = unpaced.result["campaigns"][cid]
        raw = np.concatenate([[0], np.cumsum(u["spend_by_hour"])]) / u["daily_budget"]
        ax.plot(hours, raw, ":", color=line.get_color(), label=f"{cid} unpaced")
    ax.set(
        xlabel="hour of the day (UTC)",
        ylabel="cumulative spend / daily budget",
        title="Budget pacing: spend against the target curve",
        xlim=(0, 24),
        ylim=(0, 1.05),
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    files.append(str(out / "market_sim_pacing.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    by_slots = defaultdict(list)
    for r in runs:
        if r.config.pacing:
            by_slots[tuple(r.config.slot_positions)].append(r)
    for slots, group in by_slots.items():
        group = sorted(group, key=lambda r: r.config.reserve_price)
        if len(group) > 1:
            ax.plot(
                [r.config.reserve_price for r in group],
                [r.result["revenue"] for r in group],
                "o-",
                label=f"revenue, slots {list(slots)}",
            )
    ax2 = ax.twinx()
    for slots, group in by_slots.items():
        group = sorted(group, key=lambda r: r.config.reserve_price)
        if len(group) > 1:
            ax2.plot(
                [r.config.reserve_price for r in group],
                [r.result["ads_per_page"] for r in group],
                "s:",
                color="grey",
                label=f"ads per page, slots {list(slots)}",
            )
    ax.set(
        xlabel="reserve price per click",
        ylabel="revenue per day",
        title="Revenue and ad load against the reserve price",
    )
    ax2.set_ylabel("ads per page")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    files.append(str(out / "market_sim_reserve.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=600, help="Sessions in the day.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reserves", default="0,0.05,0.3", help="Reserve prices to sweep.")
    parser.add_argument("--slots", default="3;3,10;2,5,8", help="Slot position sets to sweep.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder for JSON and PNGs.")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--ctr",
        choices=("auto", "empirical"),
        default="auto",
        help="auto: agora.market.ctr.CTRModel when importable, else the empirical CTR.",
    )
    parser.add_argument("--budget-scale", type=float, default=1.0, help="Multiplies budgets.")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    reserves = [float(x) for x in args.reserves.split(",")]
    slot_sets = [[int(p) for p in s.split(",")] for s in args.slots.split(";")]
    base = MarketConfig(profile_days=3650)  # forecast = the community's all-time hourly profile

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/sim.db")
        migrate(engine)
        sessions = session_factory(engine)
        with console.status(f"importing {DUMP.name}"):
            types = Settings().event_types
            with transaction(sessions) as session:
                add_dataset(session, load_any(DUMP, event_types=types), types, 1e9)
        com = load_community(sessions, base.profile_days)
        plan_list = plans(com, args.budget_scale)
        day = traffic(com, args.sessions, np.random.default_rng(args.seed))
        configs = [("default", base), ("no pacing", base.model_copy(update={"pacing": False}))]
        for r in reserves:
            if r != base.reserve_price:
                configs.append((f"reserve {r:g}", base.model_copy(update={"reserve_price": r})))
        for s in slot_sets:
            if s != base.slot_positions:
                configs.append((f"slots {s}", base.model_copy(update={"slot_positions": s})))
        runs = [Run(name, cfg) for name, cfg in configs]
        ctr_info = None
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            # the CTR model (when there is one) learns from the default run's first quarter
            switch_at = int(CTR_TRAIN_SHARE * len(day))
            model_path = Path(tmp) / "ctr-model"
            ctr_source = "empirical (--ctr empirical)"
            if args.ctr == "auto" and ctr_available():
                first = Run("default (first quarter, CTR training)", base)
                simulate(sessions, com, plan_list, first, day[:switch_at], args.seed, progress)
                ctr_info = train_ctr_model(sessions, model_path)
                ctr_source = (
                    f"CTRModel trained on the first {CTR_TRAIN_SHARE:.0%} of the default day; "
                    "empirical before that point in every run"
                )
            elif args.ctr == "auto":
                ctr_source = "empirical (agora.market.ctr is not importable)"
            for run in runs:
                after = run.config.model_copy(update={"ctr_model_path": model_path})
                switch = (switch_at, after) if ctr_info is not None else None
                simulate(sessions, com, plan_list, run, day, args.seed, progress, switch)
        engine.dispose()

    default = runs[0]
    unpaced = runs[1]
    args.out.mkdir(parents=True, exist_ok=True)
    plots = [] if args.no_plots else plot(runs, default, unpaced, com.profile, args.out)
    body = {
        "run": run_record(vars(args), argv),
        "community": DUMP.name,
        "day": DAY.date().isoformat(),
        "sessions": len(day),
        "ctr_source": ctr_source,
        "ctr_model": ctr_info,
        "max_spend_over_budget": max(r.result["max_spend_over_budget"] for r in runs),
        "holdout_impressions": sum(r.result["holdout_impressions"] for r in runs),
        "frequency_cap_violations": sum(r.result["frequency_cap_violations"] for r in runs),
        "default_config": base.model_dump(mode="json", exclude={"ctr_model_path"}),
        "campaign_truth": {
            p.spec.campaign_id: {
                "true_ctr": p.true_ctr,
                "baseline_cvr": p.baseline_cvr,
                "click_cvr": p.click_cvr,
                "target_tags": p.spec.target_tags,
            }
            for p in plan_list
        },
        "runs": [r.result for r in runs],
        "plots": [
            str(Path(p).relative_to(REPO)) if Path(p).is_relative_to(REPO) else p for p in plots
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "market_sim.json").write_text(json.dumps(body, indent=2) + "\n")
    show(body)
    return body


def show(body: dict) -> None:
    table = Table(
        title=f"market simulation ({body['sessions']:,} sessions; CTR: {body['ctr_source']})"
    )
    for col in (
        "run",
        "revenue",
        "ads/page",
        "slot fill",
        "organic clicks/page",
        "ad clicks",
        "max spend/budget",
        "holdout impr.",
        "cap violations",
    ):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in body["runs"]:
        table.add_row(
            r["name"],
            f"{r['revenue']:.2f}",
            f"{r['ads_per_page']:.2f}",
            f"{r['slot_fill']:.2f}",
            f"{r['organic_clicks_per_page']:.3f}",
            str(r["ad_clicks"]),
            f"{r['max_spend_over_budget']:.3f}",
            str(r["holdout_impressions"]),
            str(r["frequency_cap_violations"]),
        )
    console.print(table)
    camp = Table(title="default run per campaign")
    for col in ("campaign", "budget use", "impr.", "CTR", "CPC", "conv.", "ROI", "lift (95% CI)"):
        camp.add_column(col, justify="left" if col == "campaign" else "right")
    for cid, c in body["runs"][0]["campaigns"].items():
        d = c["lift"]["difference"]
        lift = (
            "-"
            if d["estimate"] is None
            else (f"{100 * d['estimate']:+.1f} pp [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]")
        )
        camp.add_row(
            cid,
            f"{c['budget_use']:.2f}",
            str(c["impressions"]),
            "-" if c["ctr"] is None else f"{c['ctr']:.3f}",
            "-" if c["cpc"] is None else f"{c['cpc']:.3f}",
            str(c["conversions"]),
            "-" if c["roi"] is None else f"{c['roi']:.2f}",
            lift,
        )
    console.print(camp)
    console.print(
        f"max_spend_over_budget {body['max_spend_over_budget']:.4f}, holdout_impressions "
        f"{body['holdout_impressions']}, frequency_cap_violations "
        f"{body['frequency_cap_violations']} ({body['seconds']} s)"
    )


if __name__ == "__main__":
    main()
