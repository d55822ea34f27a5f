from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from panels.change.recording import field_diff
from panels.platform.conditions import check_operator_value
from panels.platform.schemas import JsonValueError, check_json_value, iso_timestamp


def test_iso_timestamp_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 11, 21, 7, 50, 37, 451999, tzinfo=UTC)
    assert iso_timestamp(moment) == "2026-11-21T07:50:37.451Z"
    assert (
        iso_timestamp(moment.astimezone(timezone(timedelta(hours=2)))) == "2026-11-21T07:50:37.451Z"
    )
    assert iso_timestamp(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": "x\x00"}, "NUL"),
        ({"a\x00": 1}, "NUL"),
        ({"a": "\ud800"}, "Unicode"),
        ({"a": float("nan")}, "NaN"),
        ([[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]], "deeper"),
        ({"k": list(range(20_000))}, "more than"),
    ],
)
def test_json_values_that_cannot_be_stored_are_refused(value: object, message: str) -> None:
    with pytest.raises(JsonValueError, match=message):
        check_json_value(value, "metadata")


def test_json_values_within_limits_pass() -> None:
    check_json_value({"a": [1, 2.5, True, None, {"b": "ü"}]}, "metadata")


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("eq", 1),
        ("ne", "x"),
        ("gt", 2.5),
        ("contains", "ab"),
        ("in", [1, "a"]),
        ("notIn", [True]),
        ("between", [1, 5]),
        ("between", ["2026-01-01", "2026-12-31"]),
        ("isNull", None),
        ("isNotNull", None),
    ],
)
def test_operator_values_accepted(operator: str, value: object) -> None:
    check_operator_value(operator, value)


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("eq", None),
        ("eq", [1]),
        ("eq", {"a": 1}),
        ("contains", 1),
        ("in", []),
        ("in", "a"),
        ("in", [[1]]),
        ("between", [1]),
        ("between", [1, 2, 3]),
        ("between", [True, False]),
        ("isNull", 0),
        ("isNotNull", "x"),
        ("in", list(range(1001))),
    ],
)
def test_operator_values_refused(operator: str, value: object) -> None:
    with pytest.raises(ValueError, match="value"):
        check_operator_value(operator, value)


def test_field_diff_keeps_only_changed_fields() -> None:
    old = {"name": "a", "description": None, "metadata": {"x": 1}}
    new = {"name": "b", "description": None, "metadata": {"x": 1}}
    assert field_diff(old, new) == ({"name": "a"}, {"name": "b"})
    assert field_diff({}, {"description": None}) == ({}, {"description": None})
    assert field_diff({"description": None}, {}) == ({"description": None}, {})
