"""Validate the experiment statistics by simulation, and run a simulated experiment end to end.

Part 1, the statistics (``agora.experiments.stats`` and ``assignment``), repeated many times:

* **A/A false positives**: the 3,988 users of the bundled community (``data/cardano-se``) are
  split by the real ``hash(salt, user)`` assignment with a new salt per repetition; nothing
  differs between the arms, so each test should reject at rate alpha. Metrics: engagement
  events per user (the community's real, heavy-tailed counts; Welch), "active on two or more
  days" (real; two-proportion z-test), and a CTR with per-user click propensities (synthetic
  Beta(1, 19) x Poisson impressions; delta method). For contrast, the same CTR with a naive
  binomial test that treats impressions as independent.
* **Power at the planned size**: a proportion 5% -> 6% with the planned 8,158 users per arm
  (``agora experiment power --baseline 0.05 --mde 0.01``), and engagement per user +20% with
  the size from ``sample_size_means`` on the community's standard deviation.
* **Guardrail looks**: engagement per user, 5 looks, alpha 0.05: the O'Brien-Fleming bound's
  false-stop rate on A/A against naive peeking (1.645 at every look), and how often and how
  early it stops an arm that lowers engagement by 20%.

Part 2, end to end: the community imported into a temporary SQLite store, ten simulated days
of feed visits through ``service.arm_overrides`` (assignment, exposure logging, due guardrail
looks), with users reacting to the controls their arm sets (diversity 0.6 raises the click
rate by 20%; exploration 0 lowers visits and clicks). Two experiments run at once with their
own salts: ``diversity`` (a guardrail on retention) and ``no-exploration`` (a guardrail on
engagement per user, which should stop it). ``agora experiment report`` (the typer app)
writes both reports under ``bench/results/experiment_report/``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/experiment_sim.py        # ~2 minutes
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/experiment_sim.py --reps 500 --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from _record import run_record
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from typer.testing import CliRunner

from agora.config import Settings, get_settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.tables import FeedImpression, Item, User
from agora.experiments import service, stats
from agora.experiments.assignment import assign
from agora.experiments.cli import app
from agora.experiments.schemas import ExperimentIn
from agora.ingest.schemas import EventIn, as_utc
from agora.ingest.service import add_dataset, add_events
from agora.ingest.stackexchange import load_stackexchange

REPO = Path(__file__).resolve().parents[1]
DUMP = REPO / "data" / "cardano-se"
RESULTS = REPO / "bench" / "results"
ALPHA = 0.05
console = Console()


def community() -> tuple[list[str], np.ndarray, np.ndarray]:
    """User ids, engagement events per user and 'active on 2+ days' from the bundled dump."""
    data = load_stackexchange(DUMP).dataset
    users = [u.user_id for u in data.users]
    counts = Counter(e.user_id for e in data.events)
    days = Counter(u for u, _ in {(e.user_id, e.timestamp.date()) for e in data.events})
    return (
        users,
        np.array([counts.get(u, 0) for u in users], dtype=float),
        np.array([days.get(u, 0) >= 2 for u in users], dtype=bool),
    )


def ctr_users(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user impressions (1 + Poisson(20)) and clicks with a Beta(1, 19) propensity."""
    shown = 1 + rng.poisson(20, n)
    return rng.binomial(shown, rng.beta(1, 19, n)).astype(float), shown.astype(float)


def aa(reps: int, users: list[str], engagement: np.ndarray, active: np.ndarray) -> dict:
    """False-positive rate of each test when the arms do not differ."""
    rng = np.random.default_rng(1)
    arms = [("A", 1.0), ("B", 1.0)]
    rejections = Counter()
    shares = []
    for r in range(reps):
        b = np.array([assign(f"aa-{r}", u, arms) == "B" for u in users])
        shares.append(b.mean())
        rejections["engagement_per_user (Welch)"] += (
            stats.welch(engagement[b], engagement[~b]).p_value < ALPHA
        )
        rejections["active_2_days (z-test)"] += (
            stats.two_proportions(active[b].sum(), b.sum(), active[~b].sum(), (~b).sum()).p_value
            < ALPHA
        )
        clicks, shown = ctr_users(rng, len(users))
        rejections["ctr (delta method)"] += (
            stats.ratio_delta(clicks[b], shown[b], clicks[~b], shown[~b]).p_value < ALPHA
        )
        naive = stats.two_proportions(
            int(clicks[b].sum()), int(shown[b].sum()), int(clicks[~b].sum()), int(shown[~b].sum())
        )
        rejections["ctr (naive binomial, wrong)"] += naive.p_value < ALPHA
    rates = {k: v / reps for k, v in rejections.items()}
    return {
        "reps": reps,
        "users": len(users),
        "alpha": ALPHA,
        "false_positive_rate": rates,
        "ci_half_width": 1.96 * math.sqrt(ALPHA * (1 - ALPHA) / reps),
        "mean_share_B": float(np.mean(shares)),
    }


def power(reps: int, engagement: np.ndarray) -> dict:
    """Rejection rate at the planned sample size for a proportion and a mean metric."""
    rng = np.random.default_rng(2)
    n_prop = stats.sample_size_proportions(0.05, 0.01, ALPHA, 0.8)
    hits = sum(
        stats.two_proportions(
            int(rng.binomial(n_prop, 0.06)), n_prop, int(rng.binomial(n_prop, 0.05)), n_prop
        ).p_value
        < ALPHA
        for _ in range(reps)
    )
    lift = 0.2
    mde = lift * engagement.mean()
    n_mean = stats.sample_size_means(float(engagement.std(ddof=1)), mde, ALPHA, 0.8)
    mean_hits_shift = mean_hits_scale = 0
    for _ in range(reps):
        control = rng.choice(engagement, n_mean)
        base = rng.choice(engagement, n_mean)
        mean_hits_shift += stats.welch(base + mde, control).p_value < ALPHA
        mean_hits_scale += stats.welch(base * (1 + lift), control).p_value < ALPHA
    return {
        "target_power": 0.8,
        "proportion": {"baseline": 0.05, "mde": 0.01, "n_per_arm": n_prop, "power": hits / reps},
        "engagement_per_user": {
            "mean": float(engagement.mean()),
            "sd": float(engagement.std(ddof=1)),
            "mde": mde,
            "n_per_arm": n_mean,
            "power_additive_shift": mean_hits_shift / reps,
            "power_multiplicative_lift": mean_hits_scale / reps,
        },
    }


def sequential(reps: int, engagement: np.ndarray, looks: int = 5) -> dict:
    """Guardrail stop rates over ``looks`` looks: A/A with the O'Brien-Fleming bound and with
    naive peeking, and a variant that lowers engagement per user by 20%."""
    rng = np.random.default_rng(3)
    drop = 0.2
    n = stats.sample_size_means(float(engagement.std(ddof=1)), drop * engagement.mean(), ALPHA, 0.8)
    bounds = np.array(stats.obrien_fleming_bounds(looks, ALPHA))
    naive = np.full(looks, stats.NORMAL.inv_cdf(1 - ALPHA))
    out: dict = {"looks": looks, "n_per_arm": n, "bounds": bounds.tolist(), "drop": drop}
    for name, factor in (("aa", 1.0), ("harmful", 1 - drop)):
        stops = {"obrien_fleming": [], "naive": []}
        for _ in range(reps):
            control, arm = rng.choice(engagement, n), rng.choice(engagement, n) * factor
            z = []
            for k in range(1, looks + 1):
                m = n * k // looks
                z.append(stats.harm_z(stats.welch(arm[:m], control[:m]), 0.0))
            z = np.array(z)
            for rule, bound in (("obrien_fleming", bounds), ("naive", naive)):
                crossed = np.nonzero(z < -bound)[0]
                stops[rule].append(int(crossed[0]) + 1 if len(crossed) else 0)
        out[name] = {
            rule: {
                "stop_rate": float(np.mean(np.array(s) > 0)),
                "stops_at_look": {
                    str(k): int(np.sum(np.array(s) == k)) for k in range(1, looks + 1)
                },
            }
            for rule, s in stops.items()
        }
    out["bound_crossing_probability"] = stats.crossing_probability(bounds)
    return out


# ---------------------------------------------------------------- part 2: end to end


def end_to_end(days: int, out: Path) -> dict:
    """Ten days of simulated feed visits through the service, then the CLI report."""
    rng = np.random.default_rng(4)
    folder = Path(tempfile.mkdtemp(prefix="agora-experiment-sim-"))
    url = f"sqlite:///{folder / 'agora.db'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    settings = Settings()
    with transaction(sessions) as session:
        add_dataset(session, load_stackexchange(DUMP).dataset, settings.event_types, 1e9)
    with sessions() as session:
        users = dict(session.execute(select(User.external_id, User.id)).all())
        items = session.execute(select(Item.id, Item.external_id)).all()
    user_ids = sorted(users)
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(minute=0, second=0)
    with transaction(sessions) as session:
        for spec in SPECS:
            service.create_experiment(session, ExperimentIn.model_validate(spec), start)
    visits = impressions = clicks = 0
    propensity = rng.beta(2, 6, len(user_ids))  # how often each user comes back per day
    experienced: dict[str, dict[str, float]] = {}  # the controls each user's last page had
    t0 = time.perf_counter()
    for day in range(days):
        times = rng.uniform(0, 86000, len(user_ids))
        with transaction(sessions) as session:
            rows, events = [], []
            for u in np.argsort(times):  # visits in time order
                user = user_ids[u]
                # a feed without exploration slots brings users back less often
                lowered = experienced.get(user, {}).get("exploration") == 0.0
                if rng.random() >= propensity[u] * (0.6 if lowered else 1.0):
                    continue
                at = start + timedelta(days=day, seconds=float(times[u]))
                overrides = service.arm_overrides(session, user, at)
                experienced[user] = overrides
                visits += 1
                ctr = 0.05 * (1.2 if overrides.get("diversity") == 0.6 else 1.0)
                ctr *= 0.7 if overrides.get("exploration") == 0.0 else 1.0
                shown = rng.choice(len(items), PAGE, replace=False)
                for pos, index in enumerate(shown):
                    pk, external = items[index]
                    served = at + timedelta(seconds=pos)
                    rows.append(
                        {"user_id": users[user], "item_id": pk, "session": f"{user}-{day}",
                         "position": pos, "source": "fresh", "served": served}
                    )  # fmt: skip
                    if rng.random() < ctr:
                        clicks += 1
                        events.append(
                            EventIn(event_id=f"sim-{user}-{day}-{pos}", user_id=user,
                                    item_id=external, type="click",
                                    timestamp=served + timedelta(seconds=30))
                        )  # fmt: skip
                impressions += PAGE
                events.append(
                    EventIn(event_id=f"sim-{user}-{day}-visit", user_id=user,
                            item_id=items[shown[0]][1], type="view", timestamp=at)
                )  # fmt: skip
                if len(rows) >= FLUSH_ROWS:  # what the feed and the platform store as they go
                    session.execute(FeedImpression.__table__.insert(), rows)
                    add_events(session, events, settings.event_types, 1e9)
                    rows, events = [], []
            if rows:
                session.execute(FeedImpression.__table__.insert(), rows)
                add_events(session, events, settings.event_types, 1e9)
        with transaction(sessions) as session:
            service.take_due_looks(session, start + timedelta(days=day + 1))
        service._RUNNING.clear()  # the simulated clock jumps a day: refresh the running list
        console.print(f"day {day + 1}: {visits:,} visits so far")
    seconds = time.perf_counter() - t0
    os.environ["AGORA_DATABASE_URL"] = url
    get_settings.cache_clear()
    reports = {}
    for spec in SPECS:
        name = spec["experiment_id"]
        result = CliRunner().invoke(app, ["report", name, "--out", str(out / name)])
        if result.exit_code != 0:
            raise SystemExit(result.output)
        reports[name] = str((out / name / "report.md").relative_to(REPO))
    with sessions() as session:
        summary = {}
        for spec in SPECS:
            name = spec["experiment_id"]
            body = service.results(session, name, datetime.now(UTC))
            row = service.get_experiment(session, name)
            summary[name] = {
                "stopped_after_days": (
                    round((as_utc(row.stopped) - start).total_seconds() / 86400, 2)
                    if row.stopped
                    else None
                ),
                **{key: body[key] for key in ("status", "stop_reason", "arms", "comparisons")},
            }
    engine.dispose()
    return {
        "days": days,
        "visits": visits,
        "impressions": impressions,
        "clicks": clicks,
        "simulation_seconds": round(seconds, 1),
        "experiments": summary,
        "reports": reports,
    }


SPECS = [
    {
        "experiment_id": "diversity",
        "name": "More diverse feed (MMR diversity 0.6)",
        "arms": [{"name": "control"}, {"name": "diverse", "overrides": {"diversity": 0.6}}],
        "planned_users": 3000,
        "looks": 4,
        "guardrails": [{"metric": "retention", "max_drop": 0.1}],
        "start": True,
    },
    {
        "experiment_id": "no-exploration",
        "name": "No exploration slots",
        "arms": [{"name": "control"}, {"name": "no-explore", "overrides": {"exploration": 0.0}}],
        "planned_users": 3000,
        "looks": 4,
        "guardrails": [{"metric": "engagement_per_user", "max_drop": 0.0}],
        "start": True,
    },
]
PAGE = 8
FLUSH_ROWS = 400  # impressions written at a time while a simulated day runs


def plot(result: dict, path: Path) -> None:
    """A/A false-positive rates, power against the target, and guardrail stop rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    aa_rates = result["aa"]["false_positive_rate"]
    ax = axes[0]
    ax.barh(list(aa_rates), list(aa_rates.values()), color="tab:blue")
    ax.axvline(ALPHA, color="black", linestyle="--", label=f"alpha = {ALPHA}")
    half = result["aa"]["ci_half_width"]
    ax.axvspan(ALPHA - half, ALPHA + half, color="grey", alpha=0.2, label="95% sim. band")
    ax.set_title(f"A/A false-positive rate ({result['aa']['reps']} splits)")
    ax.legend(fontsize=8)
    ax = axes[1]
    p = result["power"]
    labels = [
        f"5%->6%, n={p['proportion']['n_per_arm']:,}",
        f"engagement +20% (shift), n={p['engagement_per_user']['n_per_arm']:,}",
        f"engagement x1.2 (scale), n={p['engagement_per_user']['n_per_arm']:,}",
    ]
    values = [
        p["proportion"]["power"],
        p["engagement_per_user"]["power_additive_shift"],
        p["engagement_per_user"]["power_multiplicative_lift"],
    ]
    ax.barh(labels, values, color="tab:green")
    ax.axvline(p["target_power"], color="black", linestyle="--", label="target 0.8")
    ax.set_xlim(0, 1)
    ax.set_title("power at the planned sample size")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=8)
    ax = axes[2]
    seq = result["sequential"]
    names = ["A/A, O'Brien-Fleming", "A/A, naive peeking", "harmful -20%, O'Brien-Fleming"]
    rates = [
        seq["aa"]["obrien_fleming"]["stop_rate"],
        seq["aa"]["naive"]["stop_rate"],
        seq["harmful"]["obrien_fleming"]["stop_rate"],
    ]
    ax.barh(names, rates, color=["tab:blue", "tab:red", "tab:orange"])
    ax.axvline(ALPHA, color="black", linestyle="--", label=f"alpha = {ALPHA}")
    ax.set_xlim(0, 1)
    ax.set_title(f"guardrail stop rate over {seq['looks']} looks")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="Repetitions per simulation.")
    parser.add_argument("--days", type=int, default=10, help="Days of the end-to-end run.")
    parser.add_argument("--quick", action="store_true", help="Skip the end-to-end run.")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    users, engagement, active = community()
    result: dict = {"run": run_record(vars(args))}
    result["aa"] = aa(args.reps, users, engagement, active)
    result["power"] = power(args.reps, engagement)
    result["sequential"] = sequential(args.reps, engagement)
    if not args.quick:
        result["end_to_end"] = end_to_end(args.days, RESULTS / "experiment_report")
    result["seconds"] = round(time.perf_counter() - t0, 1)

    table = Table(title="experiment statistics by simulation")
    table.add_column("check")
    table.add_column("measured", justify="right")
    table.add_column("expected", justify="right")
    for name, rate in result["aa"]["false_positive_rate"].items():
        table.add_row(f"A/A false positives: {name}", f"{rate:.3f}", f"{ALPHA}")
    p = result["power"]
    table.add_row(
        f"power, 5% -> 6% at n = {p['proportion']['n_per_arm']:,}/arm",
        f"{p['proportion']['power']:.3f}",
        "0.8",
    )
    e = p["engagement_per_user"]
    table.add_row(
        f"power, engagement +20% (shift / scale) at n = {e['n_per_arm']:,}/arm",
        f"{e['power_additive_shift']:.3f} / {e['power_multiplicative_lift']:.3f}",
        "0.8",
    )
    seq = result["sequential"]
    for scenario, rule in (
        ("aa", "obrien_fleming"),
        ("aa", "naive"),
        ("harmful", "obrien_fleming"),
    ):
        table.add_row(
            f"guardrail stop rate: {scenario}, {rule}",
            f"{seq[scenario][rule]['stop_rate']:.3f}",
            f"{ALPHA}" if scenario == "aa" and rule == "obrien_fleming" else "-",
        )
    console.print(table)
    if "end_to_end" in result:
        e2e = result["end_to_end"]
        console.print(
            f"end to end: {e2e['visits']:,} visits, {e2e['impressions']:,} impressions, "
            f"reports: {e2e['reports']}"
        )
        for name, e in e2e["experiments"].items():
            console.print(
                f"  {name}: {e['status']} after {e['stopped_after_days']} days: "
                f"{e['stop_reason'] or '-'}"
            )
    (RESULTS / "experiment_sim.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot(result, RESULTS / "experiment_sim.png")
    console.print(f"wrote {RESULTS / 'experiment_sim.json'} and experiment_sim.png")


if __name__ == "__main__":
    main()
