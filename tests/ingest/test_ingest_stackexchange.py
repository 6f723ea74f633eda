"""The bundled Cardano Stack Exchange dump imports with the counts measured from the raw dump."""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from agora.ingest.errors import ImportFailed
from agora.ingest.stackexchange import (
    PROFILE_TEXT_FIELDS,
    StackExchangeImport,
    html_to_text,
    load_stackexchange,
    parse_tags,
)

TABLES = ("Posts", "Users", "Comments", "Votes", "Badges", "Tags", "PostLinks")
KEPT_USER_FIELDS = {
    "Id",
    "Reputation",
    "CreationDate",
    "LastAccessDate",
    "Views",
    "UpVotes",
    "DownVotes",
    "AccountId",
}


def test_bundle_has_every_table_gzipped_with_notice_and_licence(cardano_bundle: Path) -> None:
    for table in TABLES:
        assert (cardano_bundle / f"{table}.xml.gz").is_file()
        assert not (cardano_bundle / f"{table}.xml").exists()
    notice = (cardano_bundle / "NOTICE").read_text()
    assert "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)" in notice
    assert "https://cardano.stackexchange.com/q/<PostId>" in notice
    assert "https://cardano.stackexchange.com/users/<UserId>" in notice
    assert "DisplayName" in notice and "gzip" in notice
    assert "CC BY-SA 4.0" in (cardano_bundle / "LICENSE").read_text()


def test_bundled_users_table_has_no_profile_text(cardano_bundle: Path) -> None:
    raw = gzip.decompress((cardano_bundle / "Users.xml.gz").read_bytes())
    rows = [row.attrib for row in ET.fromstring(raw).iter("row")]
    assert len(rows) == 3988
    assert all(set(row) <= KEPT_USER_FIELDS for row in rows)
    for name in PROFILE_TEXT_FIELDS:
        assert f"{name}=".encode() not in raw


def test_bundle_matches_the_raw_dump_except_profile_text(
    cardano_bundle: Path, data_root: Path
) -> None:
    source = data_root / "community-cardano-se"
    for table in TABLES:
        bundled = gzip.decompress((cardano_bundle / f"{table}.xml.gz").read_bytes())
        original = (source / f"{table}.xml").read_bytes()
        if table != "Users":
            assert bundled == original, table
            continue
        ours = [r.attrib for r in ET.fromstring(bundled).iter("row")]
        theirs = [r.attrib for r in ET.fromstring(original).iter("row")]
        assert [{k: r[k] for k in KEPT_USER_FIELDS if k in r} for r in theirs] == ours


def test_counts(cardano: StackExchangeImport) -> None:
    ds, stats = cardano.dataset, cardano.stats
    assert ds.counts() == {
        "users": 3988,
        "groups": 0,
        "items": 1042 + 1496,
        "events": 5112,
        "edges": 2195,
        "memberships": 0,
    }
    kinds = Counter(i.attributes["post_type"] for i in ds.items)
    assert kinds == {"question": 1042, "answer": 1496}
    assert Counter(e.type for e in ds.events) == {
        "ask": 1040,  # 2 questions belong to a deleted user
        "answer": 1496,
        "comment": 1826,  # 1,829 minus 2 by deleted users minus 1 on a moderator nomination
        "accept": 459,
        "bookmark": 291,
    }
    assert stats["votes"] == 9147 and stats["votes_skipped_deleted_post"] == 345
    assert stats["postlinks"] == 104 and stats["postlinks_skipped_deleted_post"] == 11
    assert stats["posts_skipped_other_types"] == 43 + 43 + 6
    assert stats["badges"] == 4467 and stats["tags"] == 224
    assert stats["comments_without_user"] == 2 and stats["posts_without_owner"] == 2


def test_user_28_is_the_most_active_author(cardano: StackExchangeImport) -> None:
    authors = Counter(i.author_id for i in cardano.dataset.items if i.author_id)
    (top, n), (_, second) = authors.most_common(2)
    assert top == "28" and n == 168 and second < n
    ids = {u.user_id for u in cardano.dataset.users}
    assert "28" in ids and "-1" in ids  # ids stay the Stack Exchange ids, as text


def test_users_carry_badges_and_no_profile_text(cardano: StackExchangeImport) -> None:
    users = cardano.dataset.users
    badges = [b for u in users for b in u.attributes["badges"]]
    assert len(badges) == 4467
    assert Counter(b["class"] for b in badges) == {1: 9, 2: 123, 3: 4335}
    assert all(set(b) == {"name", "class", "date", "tag_based"} for b in badges)
    assert not any(b["tag_based"] for b in badges)
    for user in users:
        assert set(user.attributes) == {
            "reputation",
            "views",
            "upvotes",
            "downvotes",
            "badges",
            "url",
        }
        assert user.attributes["url"] == f"https://cardano.stackexchange.com/users/{user.user_id}"
    dumped = "".join(u.model_dump_json() for u in users)
    for name in PROFILE_TEXT_FIELDS + ("display_name", "about", "location", "website"):
        assert name.lower() not in dumped.lower()
    assert max(u.attributes["reputation"] for u in users) == 5519
    assert sum(u.attributes["reputation"] > 1 for u in users) == 1268


def test_items(cardano: StackExchangeImport) -> None:
    items = {i.item_id: i for i in cardano.dataset.items}
    question = items["1"]
    assert question.title == "How Cardano is different from Ethereum (2.0)?"
    assert question.tags == ["proof-of-work", "governance", "ethereum"]
    assert question.author_id == "17" and question.language == "en"
    assert question.body.startswith("As far as I know, the Cardano project")
    assert "<p>" not in question.body and "&lt;" not in question.body
    assert question.attributes["accepted_answer_id"] == "12"
    assert question.attributes["url"] == "https://cardano.stackexchange.com/q/1"
    answer = items["12"]
    assert answer.attributes["post_type"] == "answer"
    assert answer.attributes["parent_id"] == "1" and answer.attributes["accepted"] is True
    assert answer.title == question.title and answer.tags == question.tags  # inherited
    questions = [i for i in items.values() if i.attributes["post_type"] == "question"]
    assert sum(i.attributes["view_count"] for i in questions) == 187201
    assert max(i.attributes["view_count"] for i in questions) == 17309
    assert sum(len(i.tags) for i in questions) / len(questions) == pytest.approx(2.31, abs=0.01)
    assert sum(i.attributes["closed"] for i in questions) > 0
    scores = [i.attributes["score"] for i in items.values()]
    assert min(scores) == -8 and max(scores) == 43
    # anonymous votes are counts on the item, never user events
    assert (
        sum(i.attributes["upvotes"] for i in items.values()) == 7604 - 53
    )  # minus votes on deleted posts
    assert sum(i.attributes["downvotes"] for i in items.values()) == 268 - 108  # idem
    # no HTML markup left in any body (code blocks may hold XML text, which is kept)
    assert not any("<p>" in i.body or "<a href" in i.body for i in items.values())
    assert "<groupId>org.bitcoinj</groupId>" in items["830"].body


def test_events_are_deterministic_unique_and_point_at_known_records(
    cardano: StackExchangeImport, cardano_bundle: Path
) -> None:
    ds = cardano.dataset
    ids = [e.event_id for e in ds.events]
    assert len(ids) == len(set(ids))
    users = {u.user_id for u in ds.users}
    items = {i.item_id: i for i in ds.items}
    assert all(e.user_id in users and e.item_id in items for e in ds.events)
    assert all(e.timestamp is not None for e in ds.events)
    by_id = {e.event_id: e for e in ds.events}
    assert by_id["se:post:1"].type == "ask" and by_id["se:post:1"].user_id == "17"
    answer = by_id["se:post:12"]
    assert answer.type == "answer" and answer.item_id == "1"  # on the question
    assert answer.context == {"answer_id": "12"}
    accept = by_id["se:accept:1"]
    assert (accept.type, accept.user_id, accept.item_id) == ("accept", "17", "12")
    assert accept.timestamp >= items["12"].created
    assert all(e.item_id in items for e in ds.events if e.type == "bookmark")
    assert {e.event_id.split(":")[1] for e in ds.events} == {"post", "comment", "accept", "vote"}
    again = load_stackexchange(cardano_bundle)
    assert [e.event_id for e in again.dataset.events] == ids


def test_interaction_edges(cardano: StackExchangeImport) -> None:
    ds = cardano.dataset
    edges = ds.edges
    assert all(e.type == "interact" and e.source_id != e.target_id for e in edges)
    pairs = {(e.source_id, e.target_id) for e in edges}
    assert len(pairs) == len(edges) == 2195
    assert len({u for p in pairs for u in p}) == 741
    users = {u.user_id for u in ds.users}
    assert all(s in users and t in users for s, t in pairs)
    # answerer -> asker for an answer by someone else
    items = {i.item_id: i for i in ds.items}
    answers = [
        i
        for i in ds.items
        if i.attributes["post_type"] == "answer"
        and i.author_id
        and items[i.attributes["parent_id"]].author_id not in (None, i.author_id)
    ]
    for a in answers:
        assert (a.author_id, items[a.attributes["parent_id"]].author_id) in pairs
    # weight counts interactions: the sum equals answers + comments that made an edge
    assert sum(e.weight for e in edges) >= len(edges)
    assert max(e.weight for e in edges) > 1


def test_reads_plain_xml_too(tmp_path: Path, cardano_bundle: Path) -> None:
    for table in ("Posts", "Users"):
        (tmp_path / f"{table}.xml").write_bytes(
            gzip.decompress((cardano_bundle / f"{table}.xml.gz").read_bytes())
        )
    result = load_stackexchange(tmp_path)
    assert result.dataset.counts()["items"] == 2538
    assert result.dataset.counts()["users"] == 3988
    events = Counter(e.type for e in result.dataset.events)
    assert events == {"ask": 1040, "answer": 1496, "accept": 459}  # no Comments, no Votes
    assert any("Votes.xml not found" in note for note in result.notes)
    assert all(i.attributes["upvotes"] == 0 for i in result.dataset.items)


def test_malformed_or_missing_tables_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="no Posts.xml"):
        load_stackexchange(tmp_path)
    (tmp_path / "Posts.xml").write_text('<posts>\n  <row Id="1" PostTypeId="1"\n</posts>')
    (tmp_path / "Users.xml").write_text("<users></users>")
    with pytest.raises(ImportFailed) as info:
        load_stackexchange(tmp_path)
    assert f"{tmp_path / 'Posts.xml'}:3: malformed dump XML" in str(info.value)


def test_html_to_text_keeps_code_and_paragraphs() -> None:
    html = (
        "<p>Run <code>cardano-cli query tip</code> &amp; wait.</p>\n"
        "<pre><code>line 1\n  line 2\n</code></pre><ul><li>a</li><li>b</li></ul>"
    )
    assert html_to_text(html) == ("Run cardano-cli query tip & wait.\n\nline 1\n  line 2\n\na\n\nb")
    assert html_to_text("") == ""
    assert parse_tags("<plutus><nft>") == ["plutus", "nft"]
    assert parse_tags("|plutus|nft|") == ["plutus", "nft"]
