"""datasource/config.py: whatever a client sends as `config`, the validator answers a 400
naming a field (the project's BadRequest) or a config; never another exception."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from panels.datasource.config import validate_config
from panels.platform.errors import BadRequest

SOURCE_TYPES = st.sampled_from(["api", "database", "file", "custom"])
KEYS = st.sampled_from(
    ["url", "query", "method", "headers", "itemsPath", "keyField", "format", "content", "x"]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)
URL_TEXT = st.text(max_size=60) | st.builds(
    "{}://{}{}".format,
    st.sampled_from(["http", "https", "postgresql", "postgres", "ftp", ""]),
    st.text(alphabet="[]:@%.0123456789abcdefx/?#=-", max_size=30),
    st.text(max_size=10),
)


def outcome(source_type: str, raw: Any) -> dict[str, Any] | None:
    """The config, or None when refused by a BadRequest naming a field of it."""
    refused: BadRequest | None = None
    try:
        return asyncio.run(validate_config(source_type, raw, allow_private=False))
    except BadRequest as exc:
        refused = exc
    assert isinstance(refused.extra, list)
    assert str(refused.extra[0]["key"]).startswith("body.config")
    return None


@settings(max_examples=200, deadline=None)
@given(SOURCE_TYPES, st.dictionaries(KEYS, JSON, max_size=5) | JSON)
def test_any_config_object_is_checked_or_refused(source_type: str, raw: Any) -> None:
    config = outcome(source_type, raw)
    if config is not None:
        assert config["keyField"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["api", "database"]), URL_TEXT, st.text(max_size=40))
def test_any_url_or_query_text_is_checked_or_refused(
    source_type: str, url: str, query: str
) -> None:
    outcome(source_type, {"url": url, "query": query})
