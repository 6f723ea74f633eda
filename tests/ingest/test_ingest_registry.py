"""Format names, detection from the path, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agora.ingest.errors import ImportFailed, UnknownFormat
from agora.ingest.registry import (
    FORMATS,
    chunk_dataset,
    detect_format,
    iter_any,
    load_any,
    load_any_result,
)
from agora.ingest.stackexchange import StackExchangeImport


def test_format_names() -> None:
    assert set(FORMATS) == {"agora", "stackexchange", "movielens", "lastfm", "ciaodvd", "benchmark"}
    assert FORMATS["agora"].options() == [
        "kind",
        "event_types",
        "edge_types",
        "max_future_seconds",
        "now",
        "delimiter",
        "earliest",
    ]


def test_detect_real_folders(data_root: Path, benchmarks_root: Path, cardano_bundle: Path) -> None:
    assert detect_format(cardano_bundle) == "stackexchange"
    assert detect_format(data_root / "community-cardano-se") == "stackexchange"
    assert detect_format(data_root / "community-conlang-meta-se") == "stackexchange"
    assert detect_format(data_root / "movielens-100k") == "movielens"
    assert detect_format(data_root / "movielens-1m" / "ml-1m") == "movielens"
    assert detect_format(data_root / "lastfm-hetrec2011-2k") == "lastfm"
    assert detect_format(data_root / "ciaodvd-guo") == "ciaodvd"
    assert detect_format(benchmarks_root / "ml1m-general") == "benchmark"


def test_detect_files_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"kind":"user","user_id":"u1"}\n')
    (tmp_path / "b.csv").write_text("user_id\nu1\n")
    (tmp_path / "c.txt").write_text("hello\n")
    assert detect_format(tmp_path / "a.jsonl") == "agora"
    assert detect_format(tmp_path / "b.csv") == "agora"
    with pytest.raises(UnknownFormat, match=r"c\.txt: cannot tell the import format"):
        detect_format(tmp_path / "c.txt")
    with pytest.raises(UnknownFormat, match="looked for: agora"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_any(tmp_path / "missing.jsonl")
    with pytest.raises(UnknownFormat, match="unknown format 'mystery'"):
        load_any(tmp_path / "a.jsonl", "mystery")


def test_load_any_passes_options(tmp_path: Path, cardano_bundle: Path) -> None:
    (tmp_path / "b.csv").write_text("user_id\nu1\n")
    assert load_any(tmp_path / "b.csv", kind="user").users[0].user_id == "u1"
    with pytest.raises(ImportFailed, match="cannot tell the record kind"):
        load_any(tmp_path / "b.csv")
    with pytest.raises(TypeError, match="format 'stackexchange' takes no option 'kind'"):
        load_any(cardano_bundle, kind="user")
    result = load_any_result(cardano_bundle, "stackexchange", site_url=None)
    assert result.format == "stackexchange"
    assert result.stats["votes_skipped_deleted_post"] == 345
    assert result.dataset.counts()["items"] == 2538


def test_forced_format_on_the_wrong_folder(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="not a HetRec Last.fm folder"):
        load_any(tmp_path, "lastfm")


def test_iter_any_chunks(tmp_path: Path, cardano: StackExchangeImport) -> None:
    chunks = list(chunk_dataset(cardano.dataset, 1000))
    kinds = [next(k for k, n in c.counts().items() if n) for c in chunks]
    assert kinds == ["users"] * 4 + ["items"] * 3 + ["events"] * 6 + ["edges"] * 3
    assert sum(sum(c.counts().values()) for c in chunks) == sum(cardano.dataset.counts().values())
    (tmp_path / "a.jsonl").write_text(
        '{"kind":"user","user_id":"u1"}\n{"kind":"user","user_id":"u2"}\n'
    )
    assert [len(c.users) for c in iter_any(tmp_path / "a.jsonl", chunk_size=1)] == [1, 1]


def test_common_options_are_checked_for_every_format(tmp_path: Path, cardano_bundle: Path) -> None:
    builtin = ("view", "click", "like", "comment", "bookmark", "rating")
    with pytest.raises(ImportFailed) as info:
        load_any(cardano_bundle, event_types=builtin)
    text = str(info.value)
    assert "1,040 events of type 'ask', which is not an allowed event type" in text
    assert info.value.total == 3  # ask, answer, accept
    ds = load_any(
        cardano_bundle,
        event_types=builtin + ("ask", "answer", "accept"),
        max_future_seconds=300,
    )
    assert ds.counts()["events"] == 5112
    # the whole dump lies in the future of a clock set to 2021-06-01
    with pytest.raises(ImportFailed, match=r"s in the future \(limit 300 s after 2021-06-01"):
        load_any(cardano_bundle, max_future_seconds=300, now=datetime(2021, 6, 1, tzinfo=UTC))
