from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from panels.settings import Settings, SettingsError

BASE = {"PANELS_DATA_DIR": "/tmp/panels-unit-settings"}


def settings(**environ: str) -> Settings:
    return Settings.from_env({**BASE, **environ})


def test_defaults() -> None:
    s = settings()
    assert (s.host, s.port, s.env) == ("127.0.0.1", 3001, "development")
    assert s.rate_limit_per_minute == 1200
    assert s.max_body_bytes == 1024 * 1024
    assert s.database_url is None
    assert s.redis_url is None
    assert s.jwt.algorithms == ("HS256",)
    assert s.jwt.tenant_claim == "tenant_id"
    assert s.jwt.secret_is_generated


def test_generated_development_secret_is_stable(tmp_path: Path) -> None:
    first = Settings.from_env({"PANELS_DATA_DIR": str(tmp_path)})
    second = Settings.from_env({"PANELS_DATA_DIR": str(tmp_path)})
    assert first.jwt.secret == second.jwt.secret
    assert len(first.jwt.secret) >= 32


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"RATE_LIMIT": "-1"}, "RATE_LIMIT"),
        ({"PANELS_ENV": "staging"}, "PANELS_ENV"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"CORS_ORIGINS": "app.example.com"}, "CORS_ORIGINS"),
        ({"JWT_ALGORITHMS": "HS256,XX999"}, "JWT_ALGORITHMS"),
        ({"JWT_REQUIRE_EXP": "maybe"}, "JWT_REQUIRE_EXP"),
        ({"JWT_CLAIMS": "okta"}, "JWT_CLAIMS"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        settings(**environ)


def ready(**environ: str) -> Settings:
    s = settings(**environ)
    s.check_ready_to_serve()
    return s


def test_production_needs_explicit_services_and_a_strong_secret() -> None:
    services = {
        "DATABASE_URL": "postgresql://db/panels",
        "REDIS_URL": "redis://cache:6379/0",
        "PANELS_SECRET_KEY": Fernet.generate_key().decode(),
    }
    with pytest.raises(SettingsError, match=r"^DATABASE_URL:"):
        ready(PANELS_ENV="production", REDIS_URL="redis://x", JWT_SECRET="s" * 40)  # no DB
    with pytest.raises(SettingsError, match=r"^REDIS_URL:"):
        ready(PANELS_ENV="production", DATABASE_URL="postgresql://x", JWT_SECRET="s" * 40)
    with pytest.raises(SettingsError, match=r"^JWT_SECRET:"):
        ready(PANELS_ENV="production", JWT_SECRET="short", **services)
    with pytest.raises(SettingsError, match=r"^JWT_SECRET:"):
        ready(PANELS_ENV="production", **services)
    assert ready(PANELS_ENV="production", JWT_SECRET="s" * 32, **services).is_production
    assert settings(
        PANELS_ENV="production", JWT_JWKS_URL="https://idp/jwks", **services
    ).is_production


def test_stytch_preset_maps_claim_paths() -> None:
    s = settings(JWT_CLAIMS="stytch")
    assert s.jwt.tenant_claim == "https://stytch.com/organization.slug"
    assert s.jwt.roles_claim == "https://stytch.com/session.roles"
    custom = settings(JWT_TENANT_CLAIM="org.id", JWT_ROLES_CLAIM="app.roles")
    assert (custom.jwt.tenant_claim, custom.jwt.roles_claim) == ("org.id", "app.roles")


def test_secret_keys() -> None:
    one, two = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert settings(PANELS_SECRET_KEY=f"{one}, {two}").secret_keys == (one, two)
    with pytest.raises(SettingsError, match=r"^PANELS_SECRET_KEY:"):
        settings(PANELS_SECRET_KEY="not-a-key")
    with pytest.raises(SettingsError, match=r"^PANELS_SECRET_KEY:"):
        ready(
            PANELS_ENV="production",
            DATABASE_URL="postgresql://db/panels",
            REDIS_URL="redis://cache:6379/0",
            JWT_SECRET="s" * 40,
        )
    assert settings(ALLOW_PRIVATE_SOURCES="true").allow_private_sources
