"""`panels seed`: a demo tenant with a panel of synthetic patients, built through the API.

It talks to a running service the way an integrator would (so what it shows is what the API
does), as an admin of the tenant `demo`:

- a panel "Demo: discharge planning" (an earlier one of that name is replaced);
- a `file` source holding the patients' demographics as inline CSV, synced at once;
- a `custom` source receiving a risk score per patient through `records` (NDJSON batches);
- base columns over both sources, two calculated columns, and a published view that sorts the
  oldest high-risk patients first.

The patients are generated from a fixed seed, so every run makes the same data.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

DEMO_TENANT = "demo"
DEMO_PANEL = "Demo: discharge planning"
PATIENTS = 10_000
PUSH_BATCH = 2_500
_GIVEN = ("Ada", "Ben", "Cleo", "Dev", "Elif", "Farid", "Gwen", "Hiro", "Ines", "Jon", "Kemi")
_FAMILY = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Byrne")
_WARDS = ("Cardiology", "Geriatrics", "Oncology", "Orthopaedics", "Respiratory")

Progress = Callable[[str, int], None]
"""Told what step runs and how many patients it has handled so far."""


class SeedError(Exception):
    """The service refused a step; the message says which and why."""


@dataclass(frozen=True)
class DemoPanel:
    panel_id: int
    view_id: int
    records_synced: int
    scores_pushed: int


def patients(count: int = PATIENTS) -> Iterator[dict[str, Any]]:
    """Synthetic patients: the same ones on every run."""
    rng = random.Random(20261130)  # noqa: S311  # demo data, not secrets
    today = datetime.now(UTC).date()
    for number in range(1, count + 1):
        yield {
            "mrn": f"MRN{number:06d}",
            "name": f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}",
            "age": rng.randint(18, 99),
            "ward": rng.choice(_WARDS),
            "admittedOn": (today - timedelta(days=rng.randint(0, 40))).isoformat(),
            "risk": round(rng.betavariate(2, 5), 3),
        }


def demographics_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["mrn", "name", "age", "ward", "admittedOn"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in writer.fieldnames})
    return out.getvalue()


async def build_demo(client: httpx.AsyncClient, progress: Progress) -> DemoPanel:
    """Make the demo panel through `client` (its base URL and admin token already set)."""
    everyone = list(patients())
    await _remove_earlier_demo(client)
    panel = await _call(
        client,
        "POST",
        "/api/panels",
        {
            "name": DEMO_PANEL,
            "description": "Synthetic patients made by `panels seed`.",
            "cohortRule": {
                "logic": "AND",
                "conditions": [{"field": "age", "operator": "gte", "value": 18}],
            },
        },
    )
    base = f"/api/panels/{panel['id']}"
    demographics = await _call(
        client,
        "POST",
        f"{base}/datasources",
        {
            "type": "file",
            "config": {"format": "csv", "keyField": "mrn", "content": demographics_csv(everyone)},
        },
    )
    progress("demographics (file source sync)", 0)
    synced = await _call(client, "POST", f"{base}/datasources/{demographics['id']}/sync?wait=true")
    if synced.get("status") != "success":
        raise SeedError(f"the demographics sync ended as {synced.get('status')}: {synced}")
    progress("demographics (file source sync)", len(everyone))
    scores = await _call(
        client, "POST", f"{base}/datasources", {"type": "custom", "config": {"keyField": "mrn"}}
    )
    pushed = 0
    for start in range(0, len(everyone), PUSH_BATCH):
        batch = everyone[start : start + PUSH_BATCH]
        body = b"".join(
            msgspec.json.encode({"mrn": p["mrn"], "risk": p["risk"]}) + b"\n" for p in batch
        )
        counts = await _call(
            client,
            "POST",
            f"{base}/datasources/{scores['id']}/records",
            content=body,
            content_type="application/x-ndjson",
        )
        pushed += int(counts["recordsProcessed"])
        progress("risk scores (pushed records)", pushed)
    progress("columns and view", 0)
    columns = {}
    for name, kind, field, source in (
        ("Patient", "text", "name", demographics["id"]),
        ("Age", "number", "age", demographics["id"]),
        ("Ward", "select", "ward", demographics["id"]),
        ("Admitted", "date", "admittedOn", demographics["id"]),
        ("Risk", "number", "risk", scores["id"]),
    ):
        column = {"name": name, "type": kind, "sourceField": field, "dataSourceId": source}
        columns[name] = (await _call(client, "POST", f"{base}/columns/base", column))["id"]
    for name, kind, formula in (
        ("Days in hospital", "number", 'DATEDIFF(Admitted, TODAY(), "days")'),
        ("Needs review", "text", 'IF(AND(Risk >= 0.5, Age >= 75), "yes", "no")'),
    ):
        column = {"name": name, "type": kind, "formula": formula}
        columns[name] = (await _call(client, "POST", f"{base}/columns/calculated", column))["id"]
    view = await _call(
        client,
        "POST",
        "/api/views",
        {
            "panelId": panel["id"],
            "name": "High risk first",
            "visibleColumns": list(columns.values()),
        },
    )
    await _call(
        client,
        "PUT",
        f"/api/views/{view['id']}/sorts",
        {
            "sorts": [
                {"columnName": "Risk", "direction": "desc"},
                {"columnName": "Age", "direction": "desc"},
            ]
        },
    )
    await _call(
        client,
        "PUT",
        f"/api/views/{view['id']}/filters",
        {"filters": [{"columnName": "Age", "operator": "gte", "value": 65}]},
    )
    await _call(client, "POST", f"/api/views/{view['id']}/publish")
    progress("columns and view", len(everyone))
    return DemoPanel(
        panel_id=int(panel["id"]),
        view_id=int(view["id"]),
        records_synced=int(synced["recordsProcessed"]),
        scores_pushed=pushed,
    )


async def first_rows(client: httpx.AsyncClient, view_id: int, limit: int = 5) -> dict[str, Any]:
    """The first page of the view's rows (`{rows, total, columns, nextCursor}`)."""
    response = await client.get(f"/api/views/{view_id}/rows", params={"limit": limit})
    return dict(_json(response, "reading the view's rows"))


async def _remove_earlier_demo(client: httpx.AsyncClient) -> None:
    listed = await _call(client, "GET", "/api/panels", params={"q": DEMO_PANEL, "limit": 500})
    for panel in listed:
        if panel["name"] == DEMO_PANEL:
            await _call(client, "DELETE", f"/api/panels/{panel['id']}")


async def _call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: Any = None,
    *,
    content: bytes | None = None,
    content_type: str = "application/json",
    params: dict[str, Any] | None = None,
) -> Any:
    payload = (
        content if content is not None else (None if body is None else msgspec.json.encode(body))
    )
    headers = {"content-type": content_type} if payload is not None else {}
    response = await client.request(method, url, content=payload, headers=headers, params=params)
    return _json(response, f"{method} {url}")


def _json(response: httpx.Response, step: str) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise SeedError(f"{step}: {response.status_code} {message}")
    return response.json() if response.content else None
