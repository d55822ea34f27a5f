"""Every environment variable the service reads, parsed and checked once.

`Settings.from_env` is pure (it reads only the mapping it is given) so tests build as many
configurations as they like; `load_settings` adds the `.env` file of the working directory.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

from cryptography.fernet import Fernet
from dotenv import dotenv_values

Environment = Literal["development", "test", "production"]
LogFormat = Literal["json", "console"]
ClaimsPreset = Literal["default", "stytch"]
AuthMode = Literal["builtin", "external", "both"]

_ENVIRONMENTS: tuple[Environment, ...] = ("development", "test", "production")
_PRESETS: tuple[ClaimsPreset, ...] = ("default", "stytch")
_FORMATS: tuple[LogFormat, ...] = ("json", "console")
_AUTH_MODES: tuple[AuthMode, ...] = ("builtin", "external", "both")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_JWT_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
_ASYMMETRIC_ALGORITHMS = tuple(a for a in _JWT_ALGORITHMS if not a.startswith("HS"))
MIN_PRODUCTION_SECRET_BYTES = 32
_T = TypeVar("_T", bound=str)


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class JwtSettings:
    secret: str
    secret_is_generated: bool
    jwks_url: str | None
    algorithms: tuple[str, ...]
    issuer: str | None
    audience: str | None
    require_exp: bool
    claims_preset: ClaimsPreset
    user_claim: str
    email_claim: str
    tenant_claim: str
    roles_claim: str
    leeway_seconds: int


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """The service as its own issuer (API.md "Identity for standalone use and integrators")."""

    mode: AuthMode
    access_token_ttl_seconds: int
    refresh_token_ttl_seconds: int
    # Failed logins allowed per email and per client address within the window, then 429.
    login_failures_per_email: int
    login_failures_per_address: int
    login_window_seconds: int
    stytch_project_id: str | None
    stytch_secret: str | None
    stytch_api_url: str

    @property
    def accepts_builtin(self) -> bool:
        return self.mode in ("builtin", "both")

    @property
    def accepts_external(self) -> bool:
        return self.mode in ("external", "both")

    @property
    def uses_stytch(self) -> bool:
        return self.stytch_project_id is not None and self.stytch_secret is not None


@dataclass(frozen=True, slots=True)
class Settings:
    env: Environment
    host: str
    port: int
    database_url: str | None
    database_read_url: str | None
    redis_url: str | None
    jwt: JwtSettings
    identity: IdentitySettings
    cors_origins: tuple[str, ...]
    rate_limit_per_minute: int
    log_level: str
    log_format: LogFormat
    max_body_bytes: int
    cache_ttl_seconds: int
    db_pool_size: int
    data_dir: Path
    secret_keys: tuple[str, ...]
    allow_private_sources: bool
    # Syncs: whether `panels serve` runs a job worker in each server process (`panels worker`
    # runs one alone), how long a dead worker's job waits before another picks it up, an
    # attempt's time limit, and the first retry's delay (then times 4).
    in_process_worker: bool
    job_heartbeat_seconds: int
    sync_timeout_seconds: int
    sync_retry_ms: int

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def check_ready_to_serve(self) -> None:
        """Production serves only with explicit services and real secrets.

        Checked by the server, not at parse time, so that `panels db upgrade` needs no more
        than DATABASE_URL.
        """
        if not self.is_production:
            return
        if self.database_url is None:
            raise SettingsError("DATABASE_URL: required when PANELS_ENV=production")
        if self.redis_url is None:
            raise SettingsError("REDIS_URL: required when PANELS_ENV=production")
        jwt = self.jwt
        if jwt.jwks_url is None and (
            jwt.secret_is_generated or len(jwt.secret.encode()) < MIN_PRODUCTION_SECRET_BYTES
        ):
            raise SettingsError(
                f"JWT_SECRET: must be at least {MIN_PRODUCTION_SECRET_BYTES} bytes when "
                "PANELS_ENV=production (or set JWT_JWKS_URL)"
            )
        if not self.secret_keys:
            raise SettingsError("PANELS_SECRET_KEY: required when PANELS_ENV=production")

    def with_services(self, database_url: str, redis_url: str) -> Settings:
        """The same settings pointing at concrete (for example embedded) services."""
        return replace(self, database_url=database_url, redis_url=redis_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = _choice(environ, "PANELS_ENV", _ENVIRONMENTS, "development")
        data_dir = Path(environ.get("PANELS_DATA_DIR", ".panels")).resolve()
        jwt = _jwt_settings(environ, env, data_dir)
        database_url = _postgres_url(environ, "DATABASE_URL")
        redis_url = _redis_url(environ)
        return cls(
            env=env,
            host=environ.get("HOST", "127.0.0.1"),
            port=_integer(environ, "PORT", 3001, 1, 65535),
            database_url=database_url,
            database_read_url=_postgres_url(environ, "DATABASE_READ_URL"),
            redis_url=redis_url,
            jwt=jwt,
            identity=_identity_settings(environ),
            cors_origins=_origins(environ),
            rate_limit_per_minute=_integer(environ, "RATE_LIMIT", 1200, 0, 10_000_000),
            log_level=_choice(environ, "LOG_LEVEL", _LOG_LEVELS, "info"),
            log_format=_choice(
                environ,
                "LOG_FORMAT",
                _FORMATS,
                "console" if sys.stderr.isatty() else "json",
            ),
            max_body_bytes=_integer(environ, "MAX_BODY_BYTES", 1024 * 1024, 1024, 100 * 1024**2),
            cache_ttl_seconds=_integer(environ, "CACHE_TTL_SECONDS", 300, 1, 86_400),
            db_pool_size=_integer(environ, "DB_POOL_SIZE", 20, 1, 500),
            data_dir=data_dir,
            secret_keys=_secret_keys(environ, env, data_dir),
            allow_private_sources=_boolean(environ, "ALLOW_PRIVATE_SOURCES", False),
            in_process_worker=_boolean(environ, "IN_PROCESS_WORKER", True),
            job_heartbeat_seconds=_integer(environ, "JOB_HEARTBEAT_SECONDS", 30, 1, 3600),
            sync_timeout_seconds=_integer(environ, "SYNC_TIMEOUT_SECONDS", 900, 1, 86_400),
            sync_retry_ms=_integer(environ, "SYNC_RETRY_MS", 2000, 0, 3_600_000),
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the process environment, with `.env` filling what it leaves unset."""
    merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    merged.update(os.environ if environ is None else environ)
    return Settings.from_env(merged)


def _jwt_settings(environ: Mapping[str, str], env: Environment, data_dir: Path) -> JwtSettings:
    secret = environ.get("JWT_SECRET", "")
    generated = not secret
    if generated and env != "production":
        secret = _stored_random(data_dir / "dev-jwt-secret", lambda: secrets.token_urlsafe(48))
    jwks_url = environ.get("JWT_JWKS_URL") or None
    if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
        raise SettingsError("JWT_JWKS_URL: must be an http(s) URL")
    # With a key set the keys are public ones; an HMAC algorithm would let anyone who can read
    # the key set sign tokens, so it is refused rather than ignored.
    default_algorithms = ",".join(_ASYMMETRIC_ALGORITHMS) if jwks_url else "HS256"
    algorithms = tuple(
        a.strip()
        for a in (environ.get("JWT_ALGORITHMS") or default_algorithms).split(",")
        if a.strip()
    )
    for algorithm in algorithms:
        if algorithm not in _JWT_ALGORITHMS:
            raise SettingsError(f"JWT_ALGORITHMS: unsupported algorithm {algorithm!r}")
        if jwks_url and algorithm.startswith("HS"):
            raise SettingsError(
                f"JWT_ALGORITHMS: {algorithm} cannot be used with JWT_JWKS_URL "
                "(a key set holds public keys; use RS*, PS* or ES*)"
            )
    if not algorithms:
        raise SettingsError("JWT_ALGORITHMS: at least one algorithm is required")
    preset = _choice(environ, "JWT_CLAIMS", _PRESETS, "default")
    stytch = preset == "stytch"
    return JwtSettings(
        secret=secret,
        secret_is_generated=generated,
        jwks_url=jwks_url,
        algorithms=algorithms,
        issuer=environ.get("JWT_ISSUER") or None,
        audience=environ.get("JWT_AUDIENCE") or None,
        require_exp=_boolean(environ, "JWT_REQUIRE_EXP", True),
        claims_preset=preset,
        user_claim=environ.get("JWT_USER_CLAIM", "sub"),
        email_claim=environ.get("JWT_EMAIL_CLAIM", "email"),
        tenant_claim=environ.get(
            "JWT_TENANT_CLAIM",
            "https://stytch.com/organization.slug" if stytch else "tenant_id",
        ),
        roles_claim=environ.get(
            "JWT_ROLES_CLAIM", "https://stytch.com/session.roles" if stytch else "roles"
        ),
        leeway_seconds=_integer(environ, "JWT_LEEWAY_SECONDS", 30, 0, 600),
    )


def _identity_settings(environ: Mapping[str, str]) -> IdentitySettings:
    stytch_api_url = environ.get("STYTCH_API_URL") or "https://api.stytch.com"
    if not stytch_api_url.startswith(("https://", "http://")):
        raise SettingsError("STYTCH_API_URL: must be an http(s) URL")
    return IdentitySettings(
        mode=_choice(environ, "AUTH_MODE", _AUTH_MODES, "both"),
        access_token_ttl_seconds=_duration(
            "ACCESS_TOKEN_TTL", environ.get("ACCESS_TOKEN_TTL"), 900, 10, 86_400
        ),
        refresh_token_ttl_seconds=_duration(
            "REFRESH_TOKEN_TTL", environ.get("REFRESH_TOKEN_TTL"), 30 * 86_400, 60, 365 * 86_400
        ),
        login_failures_per_email=_integer(environ, "LOGIN_FAILURES_PER_EMAIL", 10, 1, 1_000_000),
        login_failures_per_address=_integer(
            environ, "LOGIN_FAILURES_PER_ADDRESS", 100, 1, 1_000_000
        ),
        login_window_seconds=_integer(environ, "LOGIN_WINDOW_SECONDS", 900, 1, 86_400),
        stytch_project_id=environ.get("STYTCH_PROJECT_ID") or None,
        stytch_secret=environ.get("STYTCH_SECRET") or None,
        stytch_api_url=stytch_api_url.rstrip("/"),
    )


def _duration(name: str, value: str | None, default: int, low: int, high: int) -> int:
    """Seconds, written as a number of seconds or with a unit: `900`, `15m`, `30d`."""
    raw = (value or "").strip().lower()
    if not raw:
        return default
    unit = _DURATION_UNITS.get(raw[-1])
    digits = raw[:-1] if unit else raw
    if not digits.isascii() or not digits.isdigit():
        raise SettingsError(f"{name}: expected seconds or a number with s, m, h or d, got {raw!r}")
    seconds = int(digits) * (unit or 1)
    if not low <= seconds <= high:
        raise SettingsError(f"{name}: must be between {low} and {high} seconds, got {seconds}")
    return seconds


def _secret_keys(environ: Mapping[str, str], env: Environment, data_dir: Path) -> tuple[str, ...]:
    """Fernet keys for secrets at rest: the first encrypts, all decrypt (for rotation)."""
    raw = environ.get("PANELS_SECRET_KEY", "")
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        if env == "production":
            return ()  # refused by check_ready_to_serve: production never invents a key
        return (
            _stored_random(data_dir / "dev-secret-key", lambda: Fernet.generate_key().decode()),
        )
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise SettingsError(
                "PANELS_SECRET_KEY: each key must be 32 url-safe base64-encoded bytes "
                "(make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from None
    return keys


def _stored_random(path: Path, make: Callable[[], str]) -> str:
    """A random value kept under the data folder, so every process of this machine agrees."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value


def _postgres_url(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name) or None
    if value is None:
        return None
    scheme = value.split("://", 1)[0]
    if scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise SettingsError(f"{name}: must be a postgresql:// URL")
    return value


def _redis_url(environ: Mapping[str, str]) -> str | None:
    value = environ.get("REDIS_URL") or None
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL: must be a redis://, rediss:// or unix:// URL")
    return value


def _origins(environ: Mapping[str, str]) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in environ.get("CORS_ORIGINS", "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise SettingsError(f"CORS_ORIGINS: {origin!r} is not an http(s) origin")
    return origins


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: must be between {low} and {high}, got {value}")
    return value


def _boolean(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[_T, ...], default: _T) -> _T:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    for option in allowed:
        if option.lower() == lowered:
            return option
    raise SettingsError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}")
