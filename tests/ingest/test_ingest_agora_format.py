"""Agora's own JSONL/CSV format: round trips, and every bad input named by file, line and field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agora.ingest.agora_format import (
    KIND_LISTS,
    dump_csv,
    dump_jsonl,
    iter_agora,
    load_agora,
    load_csv,
    load_jsonl,
    validate_agora,
)
from agora.ingest.errors import ImportFailed, ImportProblem
from agora.ingest.schemas import (
    Dataset,
    EdgeIn,
    EventIn,
    GroupIn,
    ItemIn,
    MembershipIn,
    UserIn,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
T = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def sample() -> Dataset:
    return Dataset(
        users=[
            UserIn(user_id="u1", created=T, attributes={"reputation": 10, "badges": ["a"]}),
            UserIn(user_id="u2"),
        ],
        groups=[GroupIn(group_id="g1", name="Plutus, devs", attributes={"public": True})],
        items=[
            ItemIn(
                item_id="p1",
                author_id="u1",
                title='How do I "mint" an NFT, cheaply?',
                body="Line one\nline two, with a comma",
                tags=["nft", "minting"],
                language="en",
                created=T,
                media={"image": "https://example.org/a.png"},
                attributes={"score": 3, "nested": {"x": [1, 2]}},
            ),
            ItemIn(item_id="p2", title="Ünïcödé ✓ 中文"),
        ],
        events=[
            EventIn(event_id="e1", user_id="u1", item_id="p1", type="like", timestamp=T),
            EventIn(
                event_id="e2",
                user_id="u2",
                item_id="p1",
                type="rating",
                value=4.5,
                timestamp=T,
                context={"surface": "feed"},
            ),
            EventIn(event_id="e3", user_id="u2", item_id="p2", type="answer"),
        ],
        edges=[EdgeIn(source_id="u1", target_id="u2", type="follow", weight=2.0, created=T)],
        memberships=[MembershipIn(group_id="g1", user_id="u1", role="admin", created=T)],
    )


def problems_of(info: pytest.ExceptionInfo[ImportFailed]) -> list[ImportProblem]:
    return info.value.problems


# --------------------------------------------------------------------------------------------
# good input


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    dataset = sample()
    assert dump_jsonl(dataset, path) == sum(dataset.counts().values())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["kind"] == "user"
    assert all("kind" not in json.loads(line) for line in lines if '"event_id"' in line)
    again = load_jsonl(path, now=NOW)
    assert again.model_dump() == dataset.model_dump()


def test_csv_round_trip_per_kind(tmp_path: Path) -> None:
    dataset = sample()
    for kind, list_name in KIND_LISTS.items():
        records = getattr(dataset, list_name)
        path = tmp_path / f"{list_name}.csv"
        dump_csv(records, path, kind)
        loaded = load_csv(path, kind=kind, now=NOW)
        assert getattr(loaded, list_name) == records, kind
        # the same file with a kind column needs no kind argument
        path = tmp_path / f"{list_name}-with-kind.csv"
        dump_csv(records, path, kind, with_kind=True)
        assert getattr(load_agora(path, now=NOW), list_name) == records, kind


def test_documented_jsonl_example_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "example.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"kind":"event","event_id":"e1","user_id":"u1","item_id":"p1",'
        b'"type":"like","timestamp":"2024-05-01T10:00:00Z"}\r\n'
        b"\r\n"
        b'{"event_id":2,"user_id":7,"item_id":"p1","type":"view","timestamp":1714557600}\n'
        b'{"kind":"item","item_id":"p1","tags":["a"]}'  # last line without newline is fine
    )
    ds = load_agora(path, now=NOW)
    assert [e.event_id for e in ds.events] == ["e1", "2"]
    assert ds.events[1].user_id == "7" and ds.events[1].timestamp == T
    assert ds.events[0].timestamp == T and ds.items[0].tags == ["a"]


def test_csv_cells(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        "item_id,title,tags,attributes,created\n"
        'p1,"Hello, world", a | b ||c ,"{""score"": 2}",2024-05-01T10:00:00+02:00\n'
        "p2,,,,\n",
        encoding="utf-8",
    )
    ds = load_csv(path, kind="item", now=NOW)
    assert ds.items[0].tags == ["a", "b", "c"]
    assert ds.items[0].attributes == {"score": 2}
    assert ds.items[0].created == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert ds.items[1] == ItemIn(item_id="p2")


def test_custom_event_types_and_future_check_switches(tmp_path: Path) -> None:
    path = tmp_path / "plays.jsonl"
    path.write_text(
        '{"event_id":"e1","user_id":"u","item_id":"i","type":"play",'
        '"timestamp":"2030-01-01T00:00:00Z"}\n'
    )
    with pytest.raises(ImportFailed):
        load_agora(path, now=NOW)
    ds = load_agora(path, event_types=["play"], max_future_seconds=None)
    assert ds.events[0].type == "play"
    assert load_agora(path, event_types=["play"], now=datetime(2030, 1, 1, tzinfo=UTC)).events


def test_chunks_come_validated_and_in_write_order(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    dataset = sample()
    # events first in the file: chunks must still bring users and items before events
    lines = path.with_suffix(".tmp")
    dump_jsonl(dataset, lines)
    text = lines.read_text().splitlines()
    path.write_text("\n".join(sorted(text, key=lambda s: '"kind"' in s)) + "\n")
    chunks = list(iter_agora(path, chunk_size=2, now=NOW))
    order = [next(k for k, n in c.counts().items() if n) for c in chunks]
    assert order == ["users", "groups", "items", "events", "events", "edges", "memberships"]
    assert all(sum(c.counts().values()) <= 2 for c in chunks)
    assert validate_agora(path, now=NOW) == dataset.counts()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text() + '{"kind":"user"}\n')
    chunks_seen = []
    with pytest.raises(ImportFailed, match="bad.jsonl:11: field 'user_id'"):
        for chunk in iter_agora(bad, chunk_size=2, now=NOW):
            chunks_seen.append(chunk)
    assert chunks_seen == []  # nothing from a bad file


# --------------------------------------------------------------------------------------------
# bad input: each is reported with file, line and field


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


GOOD = '{"event_id":"e%d","user_id":"u1","item_id":"p1","type":"like"}\n'


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "latin.jsonl",
        (GOOD % 1).encode()
        + b'{"event_id":"e2","user_id":"Jos\xe9","item_id":"p1","type":"like"}\n'
        + (GOOD % 3).encode(),
    )
    with pytest.raises(ImportFailed) as info:
        load_agora(path)
    (problem,) = problems_of(info)
    assert (problem.line, problem.column) == (2, 32)
    assert f"{path}:2: not valid UTF-8: byte 0xe9 at column 32" in str(info.value)

    csv_path = write(tmp_path, "latin.csv", b"user_id,attributes\nu1,\nJos\xe9,\n")
    with pytest.raises(ImportFailed, match=r"latin\.csv:3: not valid UTF-8"):
        load_agora(csv_path, kind="user")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.jsonl", b"", "empty.jsonl:1: file is empty (0 bytes"),
        ("blank.jsonl", b"\n  \n\r\n", "blank.jsonl:1: file is empty (only blank lines"),
        ("empty.csv", b"", "empty.csv:1: file is empty"),
        ("header-only.csv", b"user_id,created\n", "header-only.csv:2: no data rows"),
    ],
)
def test_empty_files(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(ImportFailed) as info:
        load_agora(path, kind="user" if name.endswith(".csv") else None)
    assert expected in str(info.value)


def test_truncated_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cut.jsonl", GOOD % 1 + GOOD % 2 + '{"event_id":"e3","user_id":"u')
    with pytest.raises(ImportFailed) as info:
        load_agora(path)
    (problem,) = problems_of(info)
    assert problem.line == 3 and "truncated last line" in problem.message
    assert str(problem).startswith(f"{path}:3: truncated last line")


def test_malformed_json_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.jsonl", GOOD % 1 + '{"event_id": "e2", "user_id": u1}\n')
    with pytest.raises(ImportFailed) as info:
        load_agora(path)
    (problem,) = problems_of(info)
    assert (problem.line, problem.column) == (2, 31)
    assert f"{path}:2: malformed JSON at column 31: Expecting value" == str(problem)


def test_wrong_types_name_the_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "types.jsonl",
        GOOD % 1 + '{"event_id":"e2","user_id":"u1","item_id":"p1","type":"rating","value":"high",'
        '"timestamp":"2024-05-01T25:00:00Z"}\n'
        + '{"kind":"item","item_id":"p1","tags":"nft","attributes":[1]}\n'
        + '{"kind":"user"}\n'
        + '{"kind":"user","user_id":"u9","nickname":"x"}\n',
    )
    with pytest.raises(ImportFailed) as info:
        load_agora(path, now=NOW)
    found = {(p.line, p.field) for p in problems_of(info)}
    assert found == {
        (2, "value"),
        (2, "timestamp"),
        (3, "tags"),
        (3, "attributes"),
        (4, "user_id"),
        (5, "nickname"),
    }
    text = str(info.value)
    assert f"{path}:2: field 'timestamp': Input should be a valid datetime" in text
    assert f"{path}:4: field 'user_id': required for a user record but missing" in text
    assert f"{path}:5: field 'nickname': not a field of a user record" in text


def test_duplicate_event_ids_name_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "dups.jsonl", GOOD % 1 + GOOD % 2 + GOOD % 1)
    with pytest.raises(ImportFailed) as info:
        load_agora(path)
    (problem,) = problems_of(info)
    assert (
        str(problem) == f"{path}:3: field 'event_id': duplicate event_id 'e1': first used on line 1"
    )

    csv_path = write(
        tmp_path,
        "dups.csv",
        "event_id,user_id,item_id,type\ne1,u,i,like\ne2,u,i,like\ne1,u,i,view\n",
    )
    with pytest.raises(ImportFailed, match=r"dups\.csv:4: field 'event_id': .*line 2"):
        load_agora(csv_path, kind="event")


def test_far_future_timestamp(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "future.jsonl",
        '{"event_id":"e1","user_id":"u1","item_id":"p1","type":"like",'
        '"timestamp":"2024-06-01T12:04:00Z"}\n'  # 240 s ahead: allowed
        '{"event_id":"e2","user_id":"u1","item_id":"p1","type":"like",'
        '"timestamp":"2024-06-01T12:06:00Z"}\n'  # 360 s ahead: rejected
        '{"kind":"user","user_id":"u1","created":"2099-01-01T00:00:00Z"}\n',
    )
    with pytest.raises(ImportFailed) as info:
        load_agora(path, now=NOW, max_future_seconds=300)
    assert [(p.line, p.field) for p in problems_of(info)] == [(2, "timestamp"), (3, "created")]
    assert "360 s in the future" in str(info.value)
    assert len(load_agora(path, now=NOW, max_future_seconds=10**10).events) == 2
    # a limit past the engine's span is no limit (it used to overflow: a 500 on every write)
    assert len(load_agora(path, now=NOW, max_future_seconds=1e12).users) == 1


def test_unknown_kind_and_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kinds.jsonl",
        '{"kind":"post","item_id":"p1"}\n'
        '{"event_id":"e1","user_id":"u1","item_id":"p1","type":"upvote"}\n'
        '{"kind":"edge","source_id":"u1","target_id":"u2","type":"likes"}\n'
        "[1, 2]\n",
    )
    with pytest.raises(ImportFailed) as info:
        load_agora(path)
    text = str(info.value)
    assert f"{path}:1: field 'kind': unknown kind 'post'" in text
    assert f"{path}:2: field 'type': unknown event type 'upvote'" in text
    assert f"{path}:3: field 'type': unknown edge type 'likes'" in text
    assert f"{path}:4: expected a JSON object, got an array" in text


def test_csv_structure_problems(tmp_path: Path) -> None:
    no_kind = write(tmp_path, "nokind.csv", "user_id\nu1\n")
    with pytest.raises(ImportFailed, match=r"nokind\.csv:1: field 'kind': cannot tell"):
        load_agora(no_kind)
    no_header = write(tmp_path, "noheader.csv", "e1,u1,p1,like\n")
    with pytest.raises(ImportFailed, match=r"noheader\.csv:1: a header row is required"):
        load_agora(no_header, kind="event")
    unknown = write(tmp_path, "cols.csv", "user_id,email\nu1,a@b.c\n")
    with pytest.raises(ImportFailed, match=r"cols\.csv:1: field 'email': unknown column"):
        load_agora(unknown, kind="user")
    rows = write(
        tmp_path,
        "rows.csv",
        "kind,item_id,attributes\n"
        "item,p1,{}\n"
        "item,p2\n"
        'item,p3,"{""a"": }"\n'
        "user,p4,{}\n"
        'item,p5,"[1]"\n'
        'item,"p6,{}\n',
    )
    with pytest.raises(ImportFailed) as info:
        load_agora(rows)
    assert [(p.line, p.field) for p in problems_of(info)] == [
        (3, None),
        (4, "attributes"),
        (5, "kind"),
        (6, "attributes"),
        (7, None),
    ]
    text = str(info.value)
    assert f"{rows}:3: expected 3 columns as in the header, found 2" in text
    assert f"{rows}:4: field 'attributes': malformed JSON at column 7" in text
    assert f"{rows}:5: field 'kind': kind 'user' differs from 'item'" in text
    assert f"{rows}:7: malformed CSV" in text


def test_all_problems_are_collected_and_the_listing_is_capped(tmp_path: Path) -> None:
    path = write(tmp_path, "many.jsonl", "".join('{"kind":"user"}\n' for _ in range(30)))
    with pytest.raises(ImportFailed) as info:
        load_agora(path)
    failed = info.value
    assert failed.total == 30 and len(failed.problems) == 30
    text = str(failed)
    assert text.splitlines()[0] == f"{path}: 30 problems, nothing was imported"
    assert f"{path}:20: field 'user_id'" in text and f"{path}:21:" not in text
    assert text.endswith("... and 10 more")


def test_import_problem_rendering() -> None:
    problem = ImportProblem("data.jsonl", 17, "invalid datetime", field="timestamp")
    assert str(problem) == "data.jsonl:17: field 'timestamp': invalid datetime"
    assert str(ImportProblem("data.csv", None, "file is empty")) == "data.csv: file is empty"
    assert str(ImportProblem("d.jsonl", 3, "malformed JSON")) == "d.jsonl:3: malformed JSON"
    assert isinstance(problem, Exception)
    failed = ImportFailed([problem])
    assert failed.file == "data.jsonl" and failed.total == 1
    assert str(failed).splitlines() == [
        "data.jsonl: 1 problem, nothing was imported",
        "  data.jsonl:17: field 'timestamp': invalid datetime",
    ]


def test_text_no_database_can_store_is_refused_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"event_id": "e1", "user_id": "u1", "item_id": "p1", "type": "like"}\n'
        '{"event_id": "e2", "user_id": "u1", "item_id": "p2", "type": "like", '
        '"context": {"note": "half \\ud800 a pair"}}\n'
        '{"kind": "item", "item_id": "p3", "title": "nul \\u0000 inside"}\n'
    )
    with pytest.raises(ImportFailed) as err:
        load_agora(path)
    text = str(err.value)
    assert "events.jsonl:2: field 'context.note'" in text and "surrogate" in text
    assert "events.jsonl:3: field 'title'" in text and "NUL" in text
