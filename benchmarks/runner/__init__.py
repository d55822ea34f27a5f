"""The benchmark runner behind `uv run python -m benchmarks.run` (see benchmarks/README.md).

- `common`: paths, constants, targets, `log`.
- `measure`: /proc accounting (CPU per process tree, RSS, sockets and fd limits).
- `services`: embedded PostgreSQL/Redis and the server subprocesses.
- `seed`: bulk-loading panels and the other database statements.
- `httpclient`: the small keep-alive client for seeding and checks.
- `wrk`: running wrk and merging its figures.
- `scenarios`: the wrk scenarios and how each is measured.
- `realtime`, `ws_client`: the WebSocket delivery scenario and its client processes.
- `report`: the machine description and the Markdown report.
- `session`: one whole run, in order.

Kept free of imports: `python -m benchmarks.runner.ws_client` loads this package too.
"""
