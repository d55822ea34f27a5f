#!/usr/bin/env bash
# Property-based API tests: schemathesis against the service's own OpenAPI document.
#
#   scripts/schemathesis.sh [extra `schemathesis run` options, e.g. --seed N or -c all]
#
# Starts a fresh server exactly as scripts/api-tests.sh does, then lets schemathesis
# generate requests for every operation of /schema/openapi.json (examples, coverage,
# fuzzing and stateful phases) as an admin, both valid ones and ones that break the schema
# (`--mode all`: negative data is generated in every phase). Any failed check fails the script.
#
# Environment:
#   ST_CHECKS        checks to run (default below)
#   ST_MAX_EXAMPLES  test cases per operation and pass (default 50)
#   ST_MAX_TIME      time budget of the whole run in seconds (default 150); fuzzing and
#                    stateful testing repeat until it is spent, so the run lasts about this
#   ST_STATE_DIR     where schemathesis keeps its example database, replay data and its
#                    JUnit report (default .panels/schemathesis; `st replay <id>` runs from there)
#   KEEP_WORK_DIR=1  keep the temp folder with the server log
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/test-server.sh"

# negative_data_rejection: a request that breaks the schema must get a 4xx, not a 2xx.
ST_CHECKS="${ST_CHECKS:-not_a_server_error,status_code_conformance,response_schema_conformance,negative_data_rejection}"
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-50}"
ST_MAX_TIME="${ST_MAX_TIME:-150}"
ST_STATE_DIR="${ST_STATE_DIR:-$ROOT/.panels/schemathesis}"

on_exit() {
  local status=$?
  stop_test_server "$status"
  exit "$status"
}

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start_test_server schemathesis

TOKEN="$(mint_token --tenant schemathesis --user fuzzer --email fuzzer@example.test --role admin)"
# The built-in user of the login example (ada@example.com / correct horse battery), so that the
# examples phase logs in for real; every other generated login is refused (401), and past
# LOGIN_FAILURES_PER_ADDRESS failures in the window, rate limited (429): both are documented.
curl -fsS -o /dev/null -X POST "$BASE_URL/api/users" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' \
  -d '{"email": "ada@example.com", "password": "correct horse battery", "role": "user"}'

# Nothing is excluded: /metrics and /docs are not in the OpenAPI document, and every other
# route must answer every generated request without a 5xx and as documented.
# NUL bytes are allowed in generated strings (off by default): clients can send them and
# the contract says a bad input is a 4xx, never a 500.
# The request timeout is above the longest answer the contract allows: `POST …/sync?wait=true`
# holds a request up to 60 s (API.md), and a generated api or database source whose host
# resolves but never answers spends its 10 s connect timeout before the sync fails.
# One worker: with several threads, hypothesis' concurrent ast.parse calls hit a CPython 3.11
# bug ("AST constructor recursion depth mismatch", python/cpython#106905) that aborts
# operations at random.
mkdir -p "$ST_STATE_DIR"
cd "$ST_STATE_DIR"  # keeps .hypothesis/ and .schemathesis/ out of the work tree
log "Running schemathesis against $BASE_URL (checks: $ST_CHECKS; budget ${ST_MAX_TIME}s)"
uv run --project "$ROOT" schemathesis run "$BASE_URL/schema/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks "$ST_CHECKS" \
  --mode all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$ST_MAX_EXAMPLES" \
  --max-time "$ST_MAX_TIME" \
  --workers 1 \
  --request-timeout 75 \
  --generation-allow-x00 true \
  --report junit \
  --report-junit-path "$ST_STATE_DIR/junit.xml" \
  "$@"
