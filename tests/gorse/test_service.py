"""What the Gorse API parses and writes as Gorse does: integers, durations, times, cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agora.config import Settings
from agora.gorse import service
from agora.gorse.service import GorseError


def _refused(call, *args) -> tuple[int, str]:
    with pytest.raises(GorseError) as refused:
        call(*args)
    return refused.value.status, refused.value.text


def test_integers_are_parsed_with_gos_error_texts() -> None:
    assert service.parse_int(None, 10, "n") == 10
    assert service.parse_int("", 10, "n") == 10
    assert service.parse_int("+7", 10, "n") == 7
    assert _refused(service.parse_int, "ten", 10, "n") == (
        400,
        'strconv.Atoi: parsing "ten": invalid syntax',
    )
    assert _refused(service.parse_int, "9" * 20, 10, "n") == (
        400,
        f'strconv.Atoi: parsing "{"9" * 20}": value out of range',
    )
    assert (
        _refused(service.parse_int, "-1", 0, "offset")[1] == "offset must not be negative (got -1)"
    )
    assert _refused(service.parse_int, "10001", 10, "n")[1] == "n must be at most 10000 (got 10001)"
    assert service.parse_int("10001", 0, "offset") == 10001


def test_durations_are_gos() -> None:
    assert service.parse_duration(None) == timedelta(0)
    assert service.parse_duration("0") == timedelta(0)
    assert service.parse_duration("10m") == timedelta(minutes=10)
    assert service.parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert service.parse_duration("0h0m0s") == timedelta(0)
    assert service.parse_duration("1.5s") == timedelta(seconds=1.5)
    assert service.parse_duration("-2m") == timedelta(minutes=-2)
    for wrong in ("soon", "10", "10 m", "m", "1x"):
        assert _refused(service.parse_duration, wrong) == (400, f'time: invalid duration "{wrong}"')


def test_times_take_the_forms_gorse_clients_send_and_agoras_bounds() -> None:
    settings = Settings(max_future_seconds=300)
    assert service.parse_time("", settings) is None
    assert service.parse_time("2022-08-07T00:26:46Z", settings) == datetime(
        2022, 8, 7, 0, 26, 46, tzinfo=UTC
    )
    assert service.parse_time("2022-02-24", settings) == datetime(2022, 2, 24, tzinfo=UTC)
    assert service.parse_time("2021-10-24T06:42:20.207+02:00", settings) == datetime(
        2021, 10, 24, 4, 42, 20, 207000, tzinfo=UTC
    )
    assert service.parse_time("1709500000", settings) == datetime(2024, 3, 3, 21, 6, 40, tzinfo=UTC)
    assert _refused(service.parse_time, "next week", settings) == (
        400,
        'Could not find format for "next week"',
    )
    status, text = _refused(service.parse_time, "1960-01-01", settings)
    assert status == 400 and "earliest accepted time" in text
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    assert "in the future" in _refused(service.parse_time, ahead, settings)[1]
    assert service.parse_time(ahead, settings, extra_future=600) is not None


def test_times_are_written_as_go_writes_them() -> None:
    assert (
        service.format_time(datetime(2022, 8, 7, 0, 26, 46, tzinfo=UTC)) == "2022-08-07T00:26:46Z"
    )
    assert service.format_time(datetime(2022, 8, 7, 0, 0, 0, 207000)) == "2022-08-07T00:00:00.207Z"
    assert service.format_time(None) == "0001-01-01T00:00:00Z"


def test_cursors_round_trip_and_foreign_ones_are_refused() -> None:
    assert service.decode_cursor("") == 0
    assert service.decode_cursor(service.encode_cursor(12345)) == 12345
    for foreign in ("%%%", service.encode_cursor(1).replace("=", "") + "x", "YWJj"):
        assert _refused(service.decode_cursor, foreign)[0] == 400


def test_feedback_event_ids_are_one_per_type_user_and_item() -> None:
    first = service.feedback_event_id("star", "bob", "i1")
    assert first == service.feedback_event_id("star", "bob", "i1")
    assert first != service.feedback_event_id("like", "bob", "i1")
    assert first != service.feedback_event_id("star", "bo", "bi1")
    assert len(service.feedback_event_id("t" * 255, "u" * 255, "i" * 255)) <= 255


def test_feedback_types_map_by_settings() -> None:
    settings = Settings()
    assert service.event_type("star", settings) == "like"
    assert service.event_type("read", settings) == "view"
    assert service.event_type("share", settings) == "share"  # an Agora type: itself
    assert _refused(service.event_type, "poke", settings)[1].startswith(
        "unknown feedback type 'poke'"
    )
    mapped = Settings(gorse={"feedback_types": {"poke": "click", "broken": "no-such-type"}})
    assert service.event_type("poke", mapped) == "click"
    assert _refused(service.event_type, "broken", mapped)[0] == 400
