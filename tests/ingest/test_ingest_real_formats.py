"""Real-format importers on the real files in ../shared/data and ../shared/benchmarks.

Expected counts are the verified ones from each folder's PROVENANCE.md / README.md.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agora.ingest.benchmark_tsv import BENCHMARK_EPOCH, load_benchmark
from agora.ingest.ciaodvd import load_ciaodvd
from agora.ingest.errors import ImportFailed
from agora.ingest.lastfm import load_lastfm
from agora.ingest.movielens import load_movielens
from agora.ingest.schemas import Dataset


def closed(ds: Dataset) -> None:
    """Every event and edge points at a user and item of the same dataset; ids are unique."""
    users = {u.user_id for u in ds.users}
    items = {i.item_id for i in ds.items}
    assert len(users) == len(ds.users) and len(items) == len(ds.items)
    assert all(e.user_id in users and e.item_id in items for e in ds.events)
    assert all(e.source_id in users and e.target_id in users for e in ds.edges)
    assert len({e.event_id for e in ds.events}) == len(ds.events)


# --------------------------------------------------------------------------------------------
# MovieLens


def test_movielens_100k(data_root: Path) -> None:
    ds = load_movielens(data_root / "movielens-100k")  # the folder holding ml-100k/
    assert (len(ds.events), len(ds.users), len(ds.items)) == (100_000, 943, 1682)
    closed(ds)
    assert Counter(e.value for e in ds.events) == {
        1.0: 6110,
        2.0: 11370,
        3.0: 27145,
        4.0: 34174,
        5.0: 21201,
    }
    assert {e.type for e in ds.events} == {"rating"}
    stamps = [e.timestamp for e in ds.events]
    assert min(stamps) == datetime.fromtimestamp(874_724_710, UTC)
    assert max(stamps) == datetime.fromtimestamp(893_286_638, UTC)
    toy = next(i for i in ds.items if i.item_id == "1")
    assert toy.title == "Toy Story (1995)"
    assert toy.tags == ["Animation", "Children's", "Comedy"] and toy.attributes["year"] == 1995
    assert any("é" in i.title for i in ds.items)  # Latin-1 decoded
    user = next(u for u in ds.users if u.user_id == "1")
    assert user.attributes == {"age": 24, "gender": "M", "occupation": "technician"}
    assert ds.events[0].event_id == "ml100k:196:242"


def test_movielens_100k_split_file(data_root: Path) -> None:
    ds = load_movielens(data_root / "movielens-100k" / "ml-100k", ratings_file="u1.test")
    assert len(ds.events) == 20_000 and len(ds.users) == 943


def test_movielens_1m_prefix(data_root: Path) -> None:
    ds = load_movielens(data_root / "movielens-1m" / "ml-1m")
    assert len(ds.events) == 487_650  # users 1-2999, with timestamps
    assert len(ds.users) == 6040 and len({e.user_id for e in ds.events}) == 2999
    assert len(ds.items) == 3883 and len({e.item_id for e in ds.events}) == 3615
    assert all(e.timestamp is not None for e in ds.events)
    closed(ds)
    user = next(u for u in ds.users if u.user_id == "1")
    assert user.attributes == {"gender": "F", "age_group": "Under 18", "occupation": "K-12 student"}


@pytest.mark.slow
def test_movielens_1m_full(data_root: Path) -> None:
    ds = load_movielens(data_root / "movielens-1m", full=True)
    assert len(ds.events) == 1_000_209 and len({e.user_id for e in ds.events}) == 6040
    assert len({e.item_id for e in ds.events}) == 3706
    assert sum(i.item_id.startswith("ml1m-idx:") for i in ds.items) == 20
    assert Counter(e.value for e in ds.events)[5.0] == 226_310
    closed(ds)


def test_movielens_wrong_folder_and_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="not a MovieLens folder"):
        load_movielens(tmp_path)
    (tmp_path / "u.data").write_text(
        "1\t2\t5\t881250949\n1\t3\tfive\t881250949\n2\t2\n3\t4\t1\tx\n"
    )
    with pytest.raises(ImportFailed) as info:
        load_movielens(tmp_path)
    assert [(p.line, p.message) for p in info.value.problems] == [
        (2, "bad rating 'five'"),
        (3, "expected 4 fields separated by '\\t', found 2"),
        (4, "bad unix timestamp 'x'"),
    ]
    assert str(info.value.problems[0]) == f"{tmp_path / 'u.data'}:2: bad rating 'five'"


# --------------------------------------------------------------------------------------------
# Last.fm


def test_lastfm(data_root: Path) -> None:
    ds = load_lastfm(data_root / "lastfm-hetrec2011-2k")
    assert len(ds.events) == 92_834
    assert len(ds.users) == 1892 and len(ds.items) == 17_632
    assert {e.type for e in ds.events} == {"view"}
    assert sum(e.value for e in ds.events) == 69_183_975  # play counts as values
    assert len(ds.edges) == 25_434  # 12,717 friend pairs, both directions
    pairs = {(e.source_id, e.target_id) for e in ds.edges}
    assert all((b, a) in pairs for a, b in pairs) and {e.type for e in ds.edges} == {"friend"}
    closed(ds)
    first = next(i for i in ds.items if i.item_id == "1")
    assert first.title == "MALICE MIZER" and first.tags[0] == "j-rock"
    assert first.media["url"] == "http://www.last.fm/music/MALICE+MIZER"
    tagged = [i for i in ds.items if i.tags]
    assert len(tagged) == 12_133  # of the 12,523 tagged artists, 390 are not in artists.dat
    assert max(len(i.tags) for i in tagged) == 10
    assert any("español" in i.tags for i in ds.items)  # tags.dat is Latin-1


def test_lastfm_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "user_artists.dat").write_text(
        "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\tfifty\t1\r\n3\r\n"
    )
    with pytest.raises(ImportFailed) as info:
        load_lastfm(tmp_path)
    assert [p.line for p in info.value.problems] == [3, 4]
    assert "user_artists.dat:3: expected a numeric id, got 'fifty'" in str(info.value)


# --------------------------------------------------------------------------------------------
# CiaoDVD


def test_ciaodvd(data_root: Path) -> None:
    ds = load_ciaodvd(data_root / "ciaodvd-guo")
    assert len(ds.events) == 72_665
    assert len({e.user_id for e in ds.events}) == 17_615
    assert len(ds.items) == 16_121
    assert len({t for i in ds.items for t in i.tags}) == 17
    assert len(ds.edges) == 40_133 and {e.type for e in ds.edges} == {"trust"}
    assert {e.weight for e in ds.edges} == {1.0}
    assert len({u for e in ds.edges for u in (e.source_id, e.target_id)}) == 4658
    assert Counter(e.value for e in ds.events) == {
        1.0: 2651,
        2.0: 4685,
        3.0: 10_074,
        4.0: 22_560,
        5.0: 32_695,
    }
    stamps = [e.timestamp for e in ds.events]
    assert min(stamps) == datetime(2000, 5, 31, tzinfo=UTC)
    assert max(stamps) == datetime(2013, 11, 28, tzinfo=UTC)
    closed(ds)


def test_ciaodvd_bad_row(tmp_path: Path) -> None:
    (tmp_path / "movie-ratings.txt").write_text("1,1,1,1,5,2000-07-12\n2,1,1,2,5,12/07/2000\n3,1\n")
    with pytest.raises(ImportFailed) as info:
        load_ciaodvd(tmp_path)
    text = str(info.value)
    assert "movie-ratings.txt:2: field 'date': bad date '12/07/2000'" in text
    assert "movie-ratings.txt:3: expected 6 comma-separated fields, found 2" in text


# --------------------------------------------------------------------------------------------
# benchmark splits


def test_benchmark_lastfm_social(benchmarks_root: Path) -> None:
    ds = load_benchmark(benchmarks_root / "lastfm-social")
    splits = Counter(e.context["split"] for e in ds.events)
    assert splits == {"train": 74_295, "valid": 9269, "test": 9270}
    assert (len(ds.users), len(ds.items), len(ds.events)) == (1892, 17_632, 92_834)
    assert len(ds.edges) == 25_434
    closed(ds)
    # timestamp column is 0: a fixed synthetic order, train before valid before test
    assert ds.events[0].timestamp == BENCHMARK_EPOCH.replace(second=1)
    stamps = [e.timestamp for e in ds.events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert ds.events[0].event_id == "lastfm-social:train:2"


def test_benchmark_ml100k_seq(benchmarks_root: Path) -> None:
    ds = load_benchmark(benchmarks_root / "ml100k-seq")
    splits = Counter(e.context["split"] for e in ds.events)
    assert splits == {"train": 78_515, "valid": 939, "test": 939}
    assert (len(ds.users), len(ds.items)) == (939, 1016) and not ds.edges
    first = ds.events[0]
    assert (first.user_id, first.item_id, first.value) == ("1", "168", 5.0)
    assert first.timestamp == datetime.fromtimestamp(874_965_478, UTC)


def test_benchmark_bad_header(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("user\titem\n1\t2\n")
    with pytest.raises(ImportFailed, match=r"train\.tsv:1: header must be user_id"):
        load_benchmark(tmp_path)
