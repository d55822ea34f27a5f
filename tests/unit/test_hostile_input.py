"""Every pure parser of client text raises nothing but the project's 4xx errors.

Formulas have their own property tests (tests/unit/formula/test_properties.py); the HTTP
side of every parser is driven in tests/integration/test_hostile_input.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from litestar.datastructures import Headers
from litestar.exceptions import NotAuthorizedException, ValidationException

from panels.column.entities import PanelColumn
from panels.platform.auth import TokenVerifier, bearer_token
from panels.platform.errors import BadRequest, PreconditionFailed
from panels.platform.guards import (
    MAX_BODY_DEPTH,
    check_headers,
    check_json_body,
    check_query,
    nested_deeper_than,
)
from panels.platform.http import check_if_match
from panels.platform.params import parse_id, parse_ids, parse_since
from panels.platform.schemas import MAX_ID, JsonValueError, check_json_value
from panels.settings import Settings
from panels.view.rules import resolve_column, resolve_visible_columns

SECRET = "unit-secret-that-is-long-enough-for-hs256-0123"
# Superscript two, Arabic-Indic three, fullwidth one, mathematical bold nine, then ASCII forms
# that `int` takes but an id is not.
UNICODE_DIGITS = ["²", "\u0663", "\uff11", "\U0001d7d7", "1_0", "+1", "0", "-1", str(MAX_ID + 1)]
any_text = st.text(st.characters(codec="utf-8"), max_size=80) | st.sampled_from(UNICODE_DIGITS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=40,
)


@given(any_text)
@example("²")
def test_since_is_a_date_or_a_400(text: str) -> None:
    try:
        moment = parse_since(text)
    except BadRequest:
        return
    assert isinstance(moment, datetime)
    assert moment.tzinfo is not None


@given(
    st.datetimes(),
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
    st.sampled_from(["seconds", "minutes", "microseconds"]),
)
@example(datetime(9999, 12, 31, 23, 59, 59), timedelta(hours=-14), "seconds")
@example(datetime(1, 1, 1), timedelta(hours=14), "seconds")
def test_since_near_the_years_limits_is_a_utc_moment_or_a_400(
    moment: datetime, offset: timedelta, timespec: str
) -> None:
    text = moment.replace(tzinfo=timezone(offset)).isoformat(timespec=timespec)
    try:
        parsed = parse_since(text)
    except BadRequest:
        return
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.timestamp() == datetime.fromisoformat(text).timestamp()


@given(any_text)
def test_ids_are_ascii_digits_in_range_or_a_400(text: str) -> None:
    value = parse_id(text)
    assert value is None or (1 <= value <= MAX_ID and text.isascii())
    try:
        ids = parse_ids([text])
    except BadRequest:
        return
    assert all(1 <= i <= MAX_ID for i in ids)


@pytest.mark.parametrize("text", UNICODE_DIGITS)
def test_digits_of_other_scripts_are_not_ids(text: str) -> None:
    assert parse_id(text) is None
    with pytest.raises(BadRequest):
        parse_ids([text])


@given(st.binary(max_size=200) | any_text.map(str.encode))
@example(b"limit=1&limit=2")
@example(b"ids=%C2%B2&a=%00")
def test_query_strings_raise_only_a_400(query: bytes) -> None:
    with contextlib.suppress(BadRequest):
        check_query(query, frozenset({"ids"}))


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=5))
def test_headers_raise_only_a_400(headers: list[tuple[bytes, bytes]]) -> None:
    try:
        check_headers(headers)
    except BadRequest:
        assert any(b"\x00" in value for _, value in headers)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(json_values, st.integers(0, 40), st.sampled_from(["[", '{"a":']))
def test_depth_scan_agrees_with_decoding(value: Any, extra: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * extra + json.dumps(value) + closer * extra
    depth = depth_of(json.loads(text))
    assert nested_deeper_than(text.encode(), MAX_BODY_DEPTH) == (depth > MAX_BODY_DEPTH)


body_bytes = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.integers(30, 5000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(30, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
    | st.sampled_from([b'{"name":"\xff"}', b'["\\"[[[[', b'"\\', b'{"a":"\xed\xa0\x80"}'])
)


@given(body_bytes)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_json_bodies_that_pass_the_guard_decode_or_fail_as_a_decode_error(body: bytes) -> None:
    """What the guard lets through, the decoder refuses only with a DecodeError (a 400)."""
    try:
        check_json_body(body)
    except BadRequest:
        return
    with contextlib.suppress(msgspec.DecodeError):
        msgspec.json.decode(body)


@given(json_values)
def test_free_form_json_raises_only_its_own_error(value: Any) -> None:
    with contextlib.suppress(JsonValueError):
        check_json_value(value, "metadata")


@given(any_text, st.text(max_size=40))
def test_if_match_raises_only_a_412(header: str, etag: str) -> None:
    with contextlib.suppress(PreconditionFailed):
        check_if_match(header, etag)


verifier = TokenVerifier(
    Settings.from_env({"PANELS_DATA_DIR": "/tmp/panels-unit-hostile", "JWT_SECRET": SECRET}).jwt
)
tokens = (
    any_text
    | st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789-_=", max_size=60)).map(
        ".".join
    )
    | st.dictionaries(st.text(max_size=5), json_values, max_size=4).map(
        lambda header: (
            jwt.encode({"sub": "u"}, SECRET, algorithm="HS256", headers=header)
            if all(isinstance(k, str) and k not in ("alg", "kid", "crit") for k in header)
            else "x"
        )
    )
    | st.dictionaries(
        st.sampled_from(["sub", "tenant_id", "exp", "nbf", "roles"]), json_values
    ).map(lambda claims: jwt.encode(claims, SECRET, algorithm="HS256"))
)


@given(tokens)
@example(
    jwt.encode(
        {"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"
    )
)
def test_tokens_raise_only_a_401(token: str) -> None:
    with contextlib.suppress(NotAuthorizedException):
        asyncio.run(verifier.verify(token))


@given(any_text)
def test_authorization_headers_raise_only_a_401(value: str) -> None:
    with contextlib.suppress(NotAuthorizedException):
        bearer_token(Headers({"authorization": value}))


COLUMNS = [PanelColumn(id=7, name="Age", type="number"), PanelColumn(id=9, name="²", type="text")]


@given(any_text, st.lists(any_text | st.integers(), max_size=4))
def test_column_references_raise_only_a_400(reference: str, visible: list[int | str]) -> None:
    with contextlib.suppress(ValidationException):
        resolve_column(COLUMNS, reference, "body.sorts[0].column")
    with contextlib.suppress(ValidationException):
        resolve_visible_columns(COLUMNS, visible, "body.visibleColumns")
