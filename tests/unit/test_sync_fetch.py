"""File sources parsed (positions for errors, counts for progress), and what a sync needs."""

from __future__ import annotations

from typing import Any

import pytest

from panels.sync.fetch.common import FetchError, at_path, missing_field
from panels.sync.fetch.file import expected_records, fetch_file


async def _read(config: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [item async for batch in fetch_file(config) for item in batch]


async def test_csv_positions_are_lines_with_the_header_as_line_one() -> None:
    config = {"format": "csv", "content": 'id,note\n1,"two\nlines"\n\n3,x\n'}
    assert await _read(config) == [
        (2, {"id": "1", "note": "two\nlines"}),
        (5, {"id": "3", "note": "x"}),
    ]


async def test_csv_content_reads_like_a_pushed_csv_body() -> None:
    """Empty fields are null and a repeated column name is refused, as in `records`."""
    assert await _read({"format": "csv", "content": "id,note\n1,\n"}) == [
        (2, {"id": "1", "note": None})
    ]
    with pytest.raises(FetchError, match="names the column `id` twice"):
        await _read({"format": "csv", "content": "id,id\n1,2\n"})


@pytest.mark.parametrize(
    ("form", "content"),
    [
        ("csv", "id,note\n1,x\n"),
        ("ndjson", '{"id": "1", "note": "x"}\n'),
        ("json", '[{"id": "1", "note": "x"}]'),
    ],
)
async def test_a_leading_byte_order_mark_is_not_part_of_the_content(
    form: str, content: str
) -> None:
    """As in a pushed body: spreadsheets save CSV with one, and it must not rename `id`."""
    records = await _read({"format": form, "content": "\ufeff" + content})
    assert [record for _, record in records] == [{"id": "1", "note": "x"}]


async def test_ndjson_and_json_positions() -> None:
    assert await _read({"format": "ndjson", "content": '{"id":1}\n\n{"id":2}\n'}) == [
        (1, {"id": 1}),
        (3, {"id": 2}),
    ]
    assert await _read({"format": "json", "content": '[{"id":1},{"id":2}]'}) == [
        (0, {"id": 1}),
        (1, {"id": 2}),
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"format": "json", "content": "{"}, "^config.content must be a JSON array of objects$"),
        ({"format": "json", "content": '{"id": 1}'}, "must be a JSON array of objects"),
        ({"format": "json", "content": '[{"id": 1}, {"id": }]'}, "^config.content\\[1\\] is not"),
        ({"format": "ndjson", "content": '{"id":1}\n{2\n'}, "^config.content line 2 is not valid"),
        (
            {"format": "csv", "content": "a,b\n1\n"},
            "^config.content line 2 has 1 fields where the header has 2$",
        ),
        (
            {"format": "json", "content": "[" + '{"a":' * 40 + "1" + "}" * 40 + "]"},
            "^config.content is nested deeper than 32 levels$",
        ),
        (
            {"format": "ndjson", "content": '{"id":1}\n' + '{"a":' * 40 + "1" + "}" * 40},
            "^config.content line 2 is nested deeper than 32 levels$",
        ),
    ],
)
async def test_content_that_does_not_parse_names_where(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(FetchError, match=message):
        await _read(config)


async def test_values_that_are_not_objects_reach_the_writer_as_in_a_push() -> None:
    """The writer refuses them, naming `config.content[0]` (the worker's label), as it
    refuses a pushed body's (test_syncs covers a record without its key the same way)."""
    assert await _read({"format": "json", "content": "[1]"}) == [(0, 1)]
    assert await _read({"format": "ndjson", "content": "[2]\n"}) == [(1, [2])]


def test_expected_records_for_progress() -> None:
    assert expected_records({"format": "json", "content": "[{}, {}, {}]"}) == 3
    assert expected_records({"format": "csv", "content": "id\n1\n2\n"}) == 2
    assert expected_records({"format": "ndjson", "content": "{}\n\n{}\n"}) == 2
    assert expected_records({"format": "json", "content": "nope"}) is None


def test_what_a_sync_needs() -> None:
    assert missing_field("api", {"keyField": "id"}) == "config.url"
    assert missing_field("database", {"url": "postgresql://h/d"}) == "config.query"
    assert missing_field("file", {"format": "csv", "content": ""}) == "config.content"
    assert missing_field("file", {"format": "csv", "content": "id\n"}) is None


def test_items_path_reads_objects_and_array_indexes() -> None:
    document = {"data": [{"items": [1]}]}
    assert at_path(document, "data.0.items", "config.itemsPath") == [1]
    assert at_path(document, None, "config.itemsPath") is document
    with pytest.raises(FetchError, match=r"'data\.1\.items' is not in the response"):
        at_path(document, "data.1.items", "config.itemsPath")
