#!/usr/bin/env bash
# Run the Bruno collection in api-tests/ against a fresh Panels server.
#
#   scripts/api-tests.sh [extra `bru run` options, e.g. --bail or --reporter-junit out.xml]
#
# Starts `uv run panels serve` on a free port with throw-away embedded databases, mints an
# admin token, a token of another tenant and two plain `user` tokens, runs every request of
# the collection and exits non-zero on any failed test or assertion. The server and its
# databases are always stopped.
#
# Environment: BRU_VERSION (default 2.15.1) when the Bruno CLI must be installed;
# PANELS_NODE_CACHE (default .panels/node) where it is installed; KEEP_WORK_DIR=1 keeps
# the temp folder with the server log.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/test-server.sh"

BRU_VERSION="${BRU_VERSION:-2.15.1}"  # tested with node 20; the 2.x line keeps `--env-var`

find_bru() {
  if command -v bru >/dev/null 2>&1; then
    BRU="$(command -v bru)"
    return
  fi
  command -v npm >/dev/null 2>&1 || { log "Neither bru nor npm is installed (Node.js >= 18 needed)"; exit 1; }
  # A private install in an ignored cache folder: nothing lands in the repository.
  local cache="${PANELS_NODE_CACHE:-$ROOT/.panels/node}"
  BRU="$cache/node_modules/.bin/bru"
  if [[ ! -x "$BRU" || "$("$BRU" --version 2>/dev/null)" != "$BRU_VERSION" ]]; then
    log "Installing @usebruno/cli@$BRU_VERSION into $cache"
    mkdir -p "$cache"
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$cache" \
      "@usebruno/cli@$BRU_VERSION" >&2
  fi
}

on_exit() {
  local status=$?
  stop_test_server "$status"
  exit "$status"
}

find_bru
log "Bruno CLI $("$BRU" --version) on node $(node --version)"

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start_test_server api-tests

# Tenant A's admin drives the life cycle; tenant B's admin must see none of it; a plain
# `user` of tenant A may read but not create; a second `user` of tenant A must not see the
# first one's personal views.
PANELS_TOKEN="$(mint_token --tenant api-tests-a --user alice --email alice@example.test --role admin)"
PANELS_TOKEN_OTHER_TENANT="$(mint_token --tenant api-tests-b --user bob --email bob@example.test --role admin)"
PANELS_TOKEN_USER="$(mint_token --tenant api-tests-a --user carol --email carol@example.test --role user)"
PANELS_TOKEN_USER2="$(mint_token --tenant api-tests-a --user dave --email dave@example.test --role user)"
export PANELS_TOKEN PANELS_TOKEN_OTHER_TENANT PANELS_TOKEN_USER PANELS_TOKEN_USER2

cd "$ROOT/api-tests"
log "Running the Bruno collection against $BASE_URL"
# bru exits non-zero on any failed request, test or assertion (pipefail keeps its status).
"$BRU" run --env local --env-var "baseUrl=$BASE_URL" "$@" 2>&1 | tee "$WORK_DIR/bru.log"

# bru only warns about a .bru file it cannot parse and runs the rest: treat that as a failure.
if grep -q "Skipping invalid file" "$WORK_DIR/bru.log"; then
  log "Some .bru files could not be parsed (see the warnings above)"
  exit 1
fi
