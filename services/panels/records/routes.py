from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import QueryParameter

from panels.platform.openapi import POST_CODES, error_responses
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import PathId
from panels.platform.tenancy import RequestContext
from panels.records.formats import CSV, JSON, MEDIA_TYPES, NDJSON
from panels.records.services import RecordService
from panels.records.writer import RecordCounts

MAX_RECORDS_BODY_BYTES = 16 * 1024 * 1024
Mode = Annotated[
    Literal["upsert", "replace"],
    QueryParameter(description="`replace` also deletes the source's records not in the body."),
]


@dataclass
class RecordsOperation(Operation):
    """The body is read as a stream, not by a typed parameter: its media types are declared here."""

    def __post_init__(self) -> None:
        record = Schema(type=OpenAPIType.OBJECT, description="A record; `keyField` names its key.")
        text = Schema(type=OpenAPIType.STRING)
        self.request_body = RequestBody(
            required=True,
            description="Up to 16 MiB.",
            content={
                JSON: OpenAPIMediaType(schema=Schema(type=OpenAPIType.ARRAY, items=record)),
                NDJSON: OpenAPIMediaType(schema=text),
                CSV: OpenAPIMediaType(schema=text),
            },
        )


async def provide_record_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> RecordService:
    return RecordService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


def body_media_type(request: Request[Any, Any, Any]) -> str:
    """The body's media type, one this route reads, else a 415."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise HTTPException(
            status_code=415, detail=f"Content-Type must be one of: {', '.join(MEDIA_TYPES)}"
        )
    return media_type


class RecordController(Controller):
    path = "/api/panels/{panel_id:int}/datasources/{source_id:int}/records"
    tags = ["Data sources"]
    dependencies = {"records": Provide(provide_record_service)}

    @post(
        "/",
        summary="Push records to a data source",
        status_code=200,
        responses=error_responses(*POST_CODES),
        request_max_body_size=MAX_RECORDS_BODY_BYTES,
        opt={"media_types": MEDIA_TYPES},
        operation_class=RecordsOperation,
    )
    async def push_records(
        self,
        request: Request[Any, Any, Any],
        records: NamedDependency[RecordService],
        panel_id: PathId,
        source_id: PathId,
        mode: Mode = "upsert",
    ) -> RecordCounts:
        """A JSON array of objects, NDJSON (one object per line) or CSV with a header line, up
        to 16 MiB; each record is kept under the value of the source's `keyField`, as text
        (a string, or a number as JSON writes it). All or nothing: a record without its key
        or a body that does not parse is a 400 naming the index (JSON array, 0-based) or the
        line (NDJSON and CSV, 1-based, the CSV header being line 1), and nothing is written.
        A key sent twice: the last record wins. CSV values are strings and an empty field is
        `null`. `recordsUpdated` counts records whose content changed; an identical record is
        only processed. Any type of source takes records; a later full sync of an `api`,
        `database` or `file` source replaces them."""
        return await records.push(
            panel_id, source_id, body_media_type(request), request.stream(), mode
        )
