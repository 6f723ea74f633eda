"""How well Agora's badge rules reproduce Stack Exchange's own badges on real dumps.

    .venv/bin/python bench/badge_agreement.py [--dumps data/cardano-se ../shared/data/...]

Each dump is imported with the Stack Exchange importer into a temporary SQLite store, the
ledger is replayed under :func:`agora.engagement.config.stackexchange_badges` (badges only;
the default points and trust rules), and the (user, badge) pairs awarded are compared with the
dump's own ``Badges.xml``: per badge the users SE awarded it to (A), the users the rules
awarded it to (P), precision |P & A| / |P|, recall |P & A| / |A| and agreement (Jaccard)
|P & A| / |P | A|; overall, the same over all pairs of the expressible badges.

How the rules see the dump: post scores and view counts are item attributes (SE up/down votes
are anonymous counts in the dump, not events), so score and view badges test the final score,
not the score at the time SE awarded them; visit days are not in the dump, so Enthusiast and
Fanatic use streaks of days with a post, comment, accept or bookmark. Badges the rules cannot
express are listed with the reason. Prints a table; writes bench/results/badge_agreement.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from _record import run_record
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from agora.config import Settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.db.tables import User
from agora.engagement import ledger
from agora.engagement.config import EngagementConfig, stackexchange_badges
from agora.engagement.models import BadgeAward
from agora.ingest.service import add_dataset
from agora.ingest.stackexchange import iter_rows, load_stackexchange, table_path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DUMPS = [
    REPO / "data" / "cardano-se",
    REPO.parent / "shared" / "data" / "community-conlang-meta-se",
]

#: SE badge name -> why the rules cannot express it from an imported dump.
NOT_EXPRESSIBLE = {
    "Autobiographer": "profile fields (AboutMe...) are never imported",
    "Informed": "reading the tour is a page view the dump does not hold",
    "Supporter": "votes are anonymous in the dump: the voter is unknown",
    "Critic": "votes are anonymous in the dump: the voter is unknown",
    "Caucus": "election visits are not in the dump",
    "Constituent": "election votes are not in the dump",
    "Civic Duty": "votes are anonymous in the dump: the voter is unknown",
    "Electorate": "votes are anonymous in the dump: the voter is unknown",
    "Suffrage": "votes are anonymous in the dump: the voter is unknown",
    "Vox Populi": "votes are anonymous in the dump: the voter is unknown",
    "Sportsmanship": "votes are anonymous in the dump: the voter is unknown",
    "Editor": "edits live in PostHistory, which the importer does not read",
    "Organizer": "retags live in PostHistory, which the importer does not read",
    "Explainer": "edits live in PostHistory, which the importer does not read",
    "Refiner": "edits live in PostHistory, which the importer does not read",
    "Illuminator": "edits live in PostHistory, which the importer does not read",
    "Proofreader": "suggested-edit reviews are not in the dump",
    "Strunk & White": "edits live in PostHistory, which the importer does not read",
    "Copy Editor": "edits live in PostHistory, which the importer does not read",
    "Archaeologist": "edits live in PostHistory, which the importer does not read",
    "Excavator": "edits live in PostHistory, which the importer does not read",
    "Tag Editor": "tag wiki edits are not imported",
    "Research Assistant": "tag wiki edits are not imported",
    "Custodian": "review queues are not in the dump",
    "Reviewer": "review queues are not in the dump",
    "Steward": "review queues are not in the dump",
    "Cleanup": "rollbacks live in PostHistory, which the importer does not read",
    "Citizen Patrol": "flags are not in the dump",
    "Deputy": "flags are not in the dump",
    "Marshal": "flags are not in the dump",
    "Quorum": "meta participation needs the meta site's posts",
    "Convention": "meta participation needs the meta site's posts",
    "Disciplined": "deleted posts are not in the dump",
    "Peer Pressure": "deleted posts are not in the dump",
    "Precognitive": "private-beta membership is not in the dump",
    "Beta": "private-beta membership is not in the dump",
    "Mortarboard": "daily reputation needs per-vote recipients and dates (votes are counts)",
    "Epic": "daily reputation needs per-vote recipients and dates (votes are counts)",
    "Legendary": "daily reputation needs per-vote recipients and dates (votes are counts)",
    "Self-Learner": "a cross-item condition (an answer to one's own question)",
    "Necromancer": "a cross-item condition (answer date against question date)",
    "Revival": "a cross-item condition (answer date against question date)",
    "Curious": "a question record over days (well received and a positive record)",
    "Inquisitive": "a question record over days (well received and a positive record)",
    "Socratic": "a question record over days (well received and a positive record)",
    "Promoter": "bounties are not imported",
    "Investor": "bounties are not imported",
    "Benefactor": "bounties are not imported",
    "Altruist": "bounties are not imported",
    "Announcer": "visits from shared links are not in the dump",
    "Booster": "visits from shared links are not in the dump",
    "Publicist": "visits from shared links are not in the dump",
    "Taxonomist": "tag creation is not imported",
    "Synonymizer": "tag synonyms are not imported",
    "Yearling": "membership years with reputation need per-day reputation",
    "Talkative": "chat messages are not in the dump",
    "Outspoken": "chat messages are not in the dump",
    "Pundit": "comment scores are not imported",
    "Tenacious": "a share of a user's answers (zero score, accepted) over time",
    "Unsung Hero": "a share of a user's answers (zero score, accepted) over time",
    "Populist": "a cross-item condition (outscoring the accepted answer)",
    "Reversal": "a cross-item condition (answer score against question score)",
    "Lifejacket": "a cross-item condition (answer score against question score)",
    "Lifeboat": "a cross-item condition (answer score against question score)",
    "Generalist": "per-tag answer scores over many tags",
    "Analytical": "visiting the help center is not in the dump",
}


#: Rules that only approximate the SE badge: visit days stand in as days with an event, and
#: Tumbleweed's "low views for a week" as at most 50 views now.
APPROXIMATE = ("Enthusiast", "Fanatic", "Tumbleweed")


def _name(folder: Path) -> str:
    for root in (REPO, REPO.parent):
        if folder.is_relative_to(root):
            return str(folder.relative_to(root))
    return str(folder)


def _overall(rows: list[dict]) -> dict:
    tp = sum(r["both"] for r in rows)
    fp = sum(r["rule_users"] - r["both"] for r in rows)
    fn = sum(r["se_users"] - r["both"] for r in rows)
    return {
        "pairs_se": tp + fn,
        "pairs_rules": tp + fp,
        "both": tp,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "agreement": tp / (tp + fp + fn) if tp + fp + fn else None,
    }


def _actual(folder: Path) -> dict[str, set[str]]:
    """SE badge name -> users awarded it (non-tag badges), from the dump's Badges table."""
    path = table_path(folder, "Badges")
    if path is None:
        raise SystemExit(f"{folder}: no Badges.xml(.gz) to compare with")
    out: dict[str, set[str]] = defaultdict(set)
    for row in iter_rows(path):
        if row.get("UserId") and row.get("TagBased", "").lower() != "true":
            out[row.get("Name", "")].add(row["UserId"])
    return out


def run(folder: Path, console: Console) -> dict:
    """Import ``folder``, replay the SE badge rules, compare with its Badges table."""
    config = EngagementConfig(badges=stackexchange_badges())
    titles = {b.name: b.title for b in config.badges}
    started = time.perf_counter()
    imported = load_stackexchange(folder)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'agora.db'}")
        migrate(engine)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            add_dataset(session, imported.dataset, Settings().event_types, max_future_seconds=300.0)
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        with transaction(sessions) as session:
            applied = ledger.replay(session, config, datetime.now(UTC))
        replay_s = time.perf_counter() - started
        predicted: dict[str, set[str]] = defaultdict(set)
        with sessions() as session:
            rows = session.execute(
                select(BadgeAward.badge, User.external_id).join(User, User.id == BadgeAward.user_id)
            )
            for badge, user in rows:
                predicted[titles[badge]].add(user)
        engine.dispose()
    actual = _actual(folder)
    per_badge = []
    for title in titles.values():
        p, a = predicted.get(title, set()), actual.get(title, set())
        hit = len(p & a)
        per_badge.append(
            {
                "badge": title,
                "se_users": len(a),
                "rule_users": len(p),
                "both": hit,
                "precision": hit / len(p) if p else None,
                "recall": hit / len(a) if a else None,
                "agreement": hit / len(p | a) if p | a else None,
                "approximate": title in APPROXIMATE,
            }
        )
    unexpressed = {
        name: {"se_users": len(users), "why": NOT_EXPRESSIBLE.get(name, "not modelled")}
        for name, users in sorted(actual.items(), key=lambda kv: -len(kv[1]))
        if name not in titles.values()
    }
    result = {
        "dump": _name(folder),
        "events": applied,
        "import_seconds": round(import_s, 2),
        "replay_seconds": round(replay_s, 2),
        "overall": _overall(per_badge),
        "overall_exact_rules": _overall([r for r in per_badge if not r["approximate"]]),
        "badges": per_badge,
        "not_expressible": unexpressed,
        "se_pairs_not_expressible": sum(v["se_users"] for v in unexpressed.values()),
    }
    _print(result, console)
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _print(result: dict, console: Console) -> None:
    table = Table(title=f"{result['dump']}: {result['events']:,} events, replay "
                        f"{result['replay_seconds']:.1f} s")  # fmt: skip
    for column in ("badge", "SE users", "rule users", "both", "precision", "recall", "agreement"):
        table.add_column(column, justify="left" if column == "badge" else "right")
    for row in result["badges"]:
        table.add_row(
            row["badge"] + (" ~" if row["approximate"] else ""),
            str(row["se_users"]), str(row["rule_users"]), str(row["both"]),
            _pct(row["precision"]), _pct(row["recall"]), _pct(row["agreement"]),
        )  # fmt: skip
    for label, key in (("all expressed", "overall"), ("exact rules (no ~)", "overall_exact_rules")):
        o = result[key]
        table.add_row(
            f"[bold]{label}", str(o["pairs_se"]), str(o["pairs_rules"]), str(o["both"]),
            _pct(o["precision"]), _pct(o["recall"]), _pct(o["agreement"]),
        )  # fmt: skip
    console.print(table)
    missing = ", ".join(
        f"{name} ({v['se_users']})" for name, v in result["not_expressible"].items()
    )
    console.print("~ approximates the SE badge (see APPROXIMATE)")
    console.print(f"not expressible ({result['se_pairs_not_expressible']} SE pairs): {missing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dumps", nargs="+", type=Path, default=[d for d in DUMPS if d.is_dir()])
    args = parser.parse_args()
    console = Console(width=110)
    results = [run(folder.resolve(), console) for folder in args.dumps]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "badge_agreement.json"
    out.write_text(
        json.dumps({"run": run_record(vars(args)), "dumps": results}, indent=2, default=str)
    )
    console.print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
