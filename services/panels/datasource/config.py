"""Checks on a data source's `config`, and its secrets: sealed at rest, `"***"` on the wire.

Secrets are every value of `headers`, any value whose key is named like a password, token,
secret or API key, and, inside URLs, the password and any query parameter named that way.
A URL carrying a secret is sealed whole; masked, it shows `***` in place of each secret.
Sending `"***"` back on update keeps the stored value.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from panels.datasource.query import check_single_select
from panels.datasource.schemas import CONFIG_TYPES
from panels.platform.crypto import SecretBox, is_sealed
from panels.platform.egress import EgressRefused, public_addresses
from panels.platform.errors import BadRequest

MASK = "***"
_SECRET_NAME = re.compile(r"pass(word|wd)?|token|secret|api[_-]?key|credential", re.IGNORECASE)
_URL_KEYS = {"url"}
_URL_SCHEMES = {"api": ("http", "https"), "database": ("postgresql", "postgres")}
# libpq and asyncpg take these from the query string over the URL's own host.
_DATABASE_HOST_PARAMETERS = {"host", "hostaddr", "port"}
LARGE_VALUE_BYTES = 4096


async def validate_config(
    source_type: str, raw: Any, *, allow_private: bool, where: str = "body.config"
) -> dict[str, Any]:
    """The config in its type's shape, or a 400 naming the field.

    Only what is sent is kept and checked (unknown keys dropped, `keyField` defaulted): a
    source may be saved before it is complete, and a sync names what it still lacks.
    """
    try:
        config = msgspec.convert(raw, CONFIG_TYPES[source_type])
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        raise BadRequest(f"{where}{path.rstrip('`')}", message) from None
    data: dict[str, Any] = msgspec.to_builtins(config)
    if "url" in data:
        await check_source_url(
            source_type, data["url"], allow_private=allow_private, where=f"{where}.url"
        )
    if "query" in data:
        await check_single_select(data["query"], where=f"{where}.query")
    return data


async def check_source_url(source_type: str, url: str, *, allow_private: bool, where: str) -> None:
    """An `api` or `database` URL of its scheme, with a host the service may reach."""
    schemes = _URL_SCHEMES[source_type]
    parts = split_url(url, where)
    if parts.scheme not in schemes or not parts.hostname:
        raise BadRequest(where, f"must be a {schemes[0]}:// URL with a host")
    if source_type == "database":
        overriding = _DATABASE_HOST_PARAMETERS.intersection(
            name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)
        )
        if overriding:
            parameter = min(overriding)
            raise BadRequest(where, f"must name its host before the path, not in ?{parameter}=")
    if allow_private:
        return
    try:
        await public_addresses(parts.hostname, parts.port)
    except EgressRefused as exc:
        raise BadRequest(where, str(exc)) from None


def split_url(url: str, where: str) -> SplitResult:
    """The URL's parts, its port checked; a URL that does not parse is a 400 naming `where`."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # parsed lazily: raises for a port that is not 0-65535
    except ValueError:
        raise BadRequest(where, "is not a valid URL") from None
    return parts


def digest_large_values(value: dict[str, Any]) -> dict[str, Any]:
    """`value` with every string over LARGE_VALUE_BYTES replaced by `{sha256, bytes}`.

    Change records (and the realtime events that carry them) then say that inline content
    changed, and to what, without copying up to a mebibyte of it into each.
    """
    result: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            result[key] = digest_large_values(item)
        elif isinstance(item, str) and len(encoded := item.encode()) > LARGE_VALUE_BYTES:
            result[key] = {"sha256": hashlib.sha256(encoded).hexdigest(), "bytes": len(encoded)}
        else:
            result[key] = item
    return result


def seal_config(
    config: dict[str, Any], box: SecretBox, stored: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The config as stored: secrets sealed, `"***"` replaced by the stored secret.

    Stored secrets are kept only while the URL points where it did: an editor who moves a
    source to another host must send its secrets again, or they could be replayed to a host
    of their choosing.
    """
    if stored and _origin(config.get("url"), box) != _origin(stored.get("url"), box):
        stored = {}
    return _walk(config, stored or {}, "body.config", box, under_headers=False)


def _origin(url: Any, box: SecretBox) -> tuple[str, str | None, int | None] | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(box.open(url))
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, parts.hostname, port


def _walk(
    value: dict[str, Any],
    stored: dict[str, Any],
    where: str,
    box: SecretBox,
    *,
    under_headers: bool,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        previous = stored.get(key) if isinstance(stored, dict) else None
        path = f"{where}.{key}"
        if isinstance(item, dict):
            result[key] = _walk(item, previous or {}, path, box, under_headers=key == "headers")
        elif isinstance(item, str) and key in _URL_KEYS and not under_headers:
            result[key] = _seal_url(item, previous, path, box)
        elif isinstance(item, str) and (under_headers or _SECRET_NAME.search(key)):
            result[key] = _seal_value(item, previous, path, box)
        else:
            result[key] = item
    return result


def _seal_value(value: str, previous: Any, where: str, box: SecretBox) -> str:
    if value != MASK:
        return box.seal(value)
    if not is_sealed(previous):
        raise BadRequest(where, '"***" keeps a stored secret, and none is stored for this URL')
    return str(previous)


def _seal_url(url: str, previous: Any, where: str, box: SecretBox) -> str:
    secrets = _url_secrets(url)
    if not secrets:
        return url
    if MASK in secrets.values():
        known = _url_secrets(box.open(previous)) if isinstance(previous, str) else {}
        missing = [name for name, v in secrets.items() if v == MASK and name not in known]
        if missing:
            raise BadRequest(where, '"***" keeps a stored secret, and none is stored for this URL')
        url = _replace_url_secrets(
            url, {n: known[n] if v == MASK else v for n, v in secrets.items()}
        )
    return box.seal(url)


def mask_config(
    stored: dict[str, Any], box: SecretBox, *, under_headers: bool = False
) -> dict[str, Any]:
    """The config as clients see it: every secret shown as `"***"`."""
    masked: dict[str, Any] = {}
    for key, item in stored.items():
        if isinstance(item, dict):
            masked[key] = mask_config(item, box, under_headers=key == "headers")
        elif isinstance(item, str) and key in _URL_KEYS and not under_headers:
            plain = box.open(item)
            masked[key] = _replace_url_secrets(plain, dict.fromkeys(_url_secrets(plain), MASK))
        elif isinstance(item, str) and (under_headers or _SECRET_NAME.search(key)):
            masked[key] = MASK
        else:
            masked[key] = item
    return masked


def _url_secrets(url: str) -> dict[str, str]:
    """The secrets inside a URL: its password (key ":password") and secret-named parameters."""
    parts = urlsplit(url)
    found = {
        name: v
        for name, v in parse_qsl(parts.query, keep_blank_values=True)
        if _SECRET_NAME.search(name)
    }
    if parts.password is not None:
        found[":password"] = parts.password
    return found


def _replace_url_secrets(url: str, values: dict[str, str]) -> str:
    if not values:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if ":password" in values and parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        password = values[":password"]
        netloc = f"{user}:{password}@{hostport}"  # as found in a URL: already percent-encoded
    query = parts.query
    if any(name != ":password" for name in values):
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(n, values.get(n, v)) for n, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
