"""`POST /api/panels/{id}/datasources/{dsId}/records`: formats, modes, counts, limits, rights."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.db import bind_tenant, request_engine
from tests.conftest import Caller, Services

Client = AsyncTestClient[Litestar]
JSON, NDJSON, CSV = "application/json", "application/x-ndjson", "text/csv"


@pytest.fixture
async def source(client: Client, builder: Caller, create_panel: Any) -> str:
    """The records URL of a `custom` source keyed by `mrn`."""
    panel = await create_panel(builder)
    response = await client.post(
        f"/api/panels/{panel['id']}/datasources",
        json={"type": "custom", "config": {"keyField": "mrn"}},
        headers=builder.headers,
    )
    assert response.status_code == 201, response.text
    return f"/api/panels/{panel['id']}/datasources/{response.json()['id']}/records"


async def push(
    client: Client,
    caller: Caller,
    url: str,
    body: bytes | str,
    media_type: str = NDJSON,
    mode: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    return await client.post(
        url,
        content=body.encode() if isinstance(body, str) else body,
        params={"mode": mode} if mode else None,
        headers={**caller.headers, "content-type": media_type, **(headers or {})},
    )


def ndjson(*records: dict[str, Any]) -> bytes:
    return b"".join(msgspec.json.encode(r) + b"\n" for r in records)


def counts(processed: int, inserted: int = 0, updated: int = 0, deleted: int = 0) -> Any:
    return {
        "recordsProcessed": processed,
        "recordsInserted": inserted,
        "recordsUpdated": updated,
        "recordsDeleted": deleted,
    }


async def stored(services: Services, caller: Caller, url: str) -> dict[str, Any]:
    source_id = int(url.split("/")[-2])
    engine = request_engine(services.database_url, pool_size=1)
    try:
        async with AsyncSession(engine) as session:
            bind_tenant(session, caller.tenant)
            rows = await session.execute(
                text("SELECT key, record FROM source_record WHERE source_id = :s"),
                {"s": source_id},
            )
            return dict(rows.tuples().all())
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        (JSON, '[{"mrn": "a1", "age": 40}, {"mrn": 7, "age": null}]'),
        (NDJSON, '{"mrn": "a1", "age": 40}\n\n{"mrn": 7, "age": null}'),
        (NDJSON, '\ufeff{"mrn": "a1", "age": 40}\r\n{"mrn": 7, "age": null}\r\n'),
        (CSV, "mrn,age\r\na1,40\r\n7,\r\n"),
    ],
)
async def test_each_format_stores_records_under_their_key(
    client: Client, services: Services, builder: Caller, source: str, media_type: str, body: str
) -> None:
    response = await push(client, builder, source, body, media_type)
    assert response.status_code == 200, response.text
    assert response.json() == counts(2, inserted=2)
    records = await stored(services, builder, source)
    assert set(records) == {"a1", "7"}
    assert records["7"]["age"] is None
    assert records["a1"]["age"] == ("40" if media_type == CSV else 40)


async def test_csv_quoted_fields_may_hold_commas_quotes_and_line_breaks(
    client: Client, services: Services, builder: Caller, source: str
) -> None:
    body = 'mrn,note\n1,"a, ""b""\nc"\n2,plain\n'
    response = await push(client, builder, source, body, CSV)
    assert response.json() == counts(2, inserted=2)
    records = await stored(services, builder, source)
    assert records["1"]["note"] == 'a, "b"\nc'
    assert records["2"] == {"mrn": "2", "note": "plain"}


async def test_upsert_and_replace_count_inserted_updated_unchanged_and_deleted(
    client: Client, services: Services, builder: Caller, source: str
) -> None:
    first = ndjson(*({"mrn": n, "v": 0} for n in range(4)))
    assert (await push(client, builder, source, first)).json() == counts(4, inserted=4)
    assert (await push(client, builder, source, first)).json() == counts(4)
    second = ndjson({"mrn": 0, "v": 1}, {"mrn": 1, "v": 0}, {"mrn": 9, "v": 0})
    response = await push(client, builder, source, second, mode="upsert")
    assert response.json() == counts(3, inserted=1, updated=1)
    response = await push(client, builder, source, second, mode="replace")
    assert response.json() == counts(3, deleted=2)
    assert set(await stored(services, builder, source)) == {"0", "1", "9"}


@pytest.mark.parametrize(
    ("media_type", "body", "field", "message"),
    [
        (JSON, '[{"mrn": 1}, {"mrn": 2}, {"other": 3}]', "body[2]", "has no key field `mrn`"),
        (JSON, '[{"mrn": 1}, 5]', "body[1]", "must be an object"),
        (JSON, '[{"mrn": 1}, {"mrn": 2], 3]', "body[1]", "is not valid JSON"),
        (JSON, '{"mrn": 1}', "body", "must be a JSON array of objects"),
        (JSON, '[{"mrn": "a\\u0000"}]', "body[0]", "must not contain NUL characters"),
        (NDJSON, '{"mrn": 1}\n{"mrn": 2}\n\n{"mrn": }', "line 4", "is not valid JSON"),
        (NDJSON, '{"mrn": 1}\n{"x": 2}', "line 2", "has no key field `mrn`"),
        (NDJSON, '{"mrn": 1}\n' + "[" * 33 + "]" * 33, "line 2", "is nested deeper than 32"),
        (NDJSON, b'{"mrn": 1}\n{"mrn": "\xff"}', "line 2", "is not valid JSON"),
        (CSV, "mrn,age\n1,2\n,3\n", "line 3", "has no key field `mrn`"),
        (CSV, "mrn,age\n1,2\n3\n", "line 3", "has 1 fields where the header has 2"),
        (CSV, "mrn,mrn\n1,2\n", "line 1", "names the column `mrn` twice"),
        (CSV, 'mrn,age\n1,2\n"3,4\n', "line 3", "is not valid CSV"),
        (CSV, b"mrn,age\n1,2\n3,\xff\n", "line 3", "is not valid UTF-8"),
    ],
)
async def test_a_bad_record_anywhere_is_a_400_naming_it_and_writes_nothing(
    client: Client,
    services: Services,
    builder: Caller,
    source: str,
    media_type: str,
    body: str | bytes,
    field: str,
    message: str,
) -> None:
    response = await push(client, builder, source, body, media_type, mode="replace")
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}: {message}")
    assert await stored(services, builder, source) == {}


async def test_an_error_in_a_later_batch_rolls_back_the_earlier_ones(
    client: Client, services: Services, builder: Caller, source: str
) -> None:
    body = ndjson(*({"mrn": n} for n in range(12_000))) + b'{"no": "key"}\n'
    response = await push(client, builder, source, body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("line 12001: has no key field")
    assert await stored(services, builder, source) == {}


async def test_bodies_up_to_16_mib_are_taken_and_larger_ones_are_a_413(
    client: Client, services: Services, builder: Caller, source: str
) -> None:
    line = msgspec.json.encode({"mrn": "x", "pad": "p" * 1000}) + b"\n"
    records = [line.replace(b'"x"', b'"%d"' % n) for n in range(16 * 1024)]
    body = b"".join(records)
    body = body[: body.rfind(b"\n", 0, 16 * 1024 * 1024) + 1]
    response = await push(client, builder, source, body)
    assert response.status_code == 200, response.text
    assert response.json()["recordsInserted"] == body.count(b"\n")
    oversized = body + line.replace(b'"x"', b'"last"') * 20
    for media_type, payload in (
        (NDJSON, oversized),
        (JSON, b"[" + oversized.replace(b"\n", b",") + b"{}]"),
    ):
        response = await push(client, builder, source, payload, media_type, mode="replace")
        assert response.status_code == 413, response.text
    assert len(await stored(services, builder, source)) == body.count(b"\n")


async def test_other_routes_keep_the_ordinary_body_limit(client: Client, builder: Caller) -> None:
    response = await client.post(
        "/api/panels",
        json={"name": "big", "description": "d" * 2000, "metadata": {"pad": "p" * 2_000_000}},
        headers=builder.headers,
    )
    assert response.status_code == 413


@pytest.mark.parametrize("media_type", ["text/plain", "application/xml", ""])
async def test_another_content_type_is_a_415(
    client: Client, builder: Caller, source: str, media_type: str
) -> None:
    response = await push(client, builder, source, '{"mrn": 1}', media_type)
    assert response.status_code == 415, response.text


async def test_an_unknown_mode_is_a_400(client: Client, builder: Caller, source: str) -> None:
    response = await push(client, builder, source, '{"mrn": 1}', mode="merge")
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "query.mode"


async def test_a_viewer_gets_403_another_tenant_and_a_stranger_404(
    client: Client,
    builder: Caller,
    member: Caller,
    outsider: Caller,
    make_caller: Any,
    share: Any,
    source: str,
) -> None:
    panel_id = int(source.split("/")[3])
    await share(builder, "panel", panel_id, member.email, "viewer")
    stranger = make_caller("sam", "user")
    assert (await push(client, member, source, '{"mrn": 1}')).status_code == 403
    assert (await push(client, stranger, source, '{"mrn": 1}')).status_code == 404
    assert (await push(client, outsider, source, '{"mrn": 1}')).status_code == 404
    editor = make_caller("ed", "user")
    await share(builder, "panel", panel_id, editor.email, "editor")
    assert (await push(client, editor, source, '{"mrn": 1}')).status_code == 200


async def test_a_source_of_another_panel_is_a_404(
    client: Client, builder: Caller, create_panel: Any, source: str
) -> None:
    other = await create_panel(builder, name="Other")
    source_id = source.split("/")[-2]
    url = f"/api/panels/{other['id']}/datasources/{source_id}/records"
    response = await push(client, builder, url, '{"mrn": 1}')
    assert response.status_code == 404
    assert response.json()["message"] == "Data source not found"


async def test_records_of_a_deleted_source_are_gone_for_the_push_route(
    client: Client, builder: Caller, source: str
) -> None:
    await push(client, builder, source, '{"mrn": 1}')
    source_url = source.removesuffix("/records")
    assert (await client.delete(source_url, headers=builder.headers)).status_code == 204
    assert (await push(client, builder, source, '{"mrn": 1}')).status_code == 404


async def test_a_repeated_push_with_an_idempotency_key_over_1_mib_is_replayed(
    client: Client, services: Services, builder: Caller, source: str
) -> None:
    body = ndjson(*({"mrn": n, "pad": "p" * 200} for n in range(8000)))
    assert len(body) > 1024 * 1024
    headers = {"idempotency-key": "push-1"}
    first = await push(client, builder, source, body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == counts(8000, inserted=8000)
    again = await push(client, builder, source, body, headers=headers)
    assert again.json() == first.json()


async def test_the_openapi_document_declares_the_three_body_media_types(client: Client) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    operation = spec["paths"]["/api/panels/{panel_id}/datasources/{source_id}/records"]["post"]
    assert set(operation["requestBody"]["content"]) == {JSON, NDJSON, CSV}
    assert {"200", "400", "404", "413", "415"} <= set(operation["responses"])
