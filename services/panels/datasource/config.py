"""Checks on a data source's `config`, and its secrets: sealed at rest, `"***"` on the wire.

Secrets are every value of `headers`, any value whose key is named like a password, token,
secret or API key, and, inside URLs, the password and any query parameter named that way.
A URL carrying a secret is sealed whole; masked, it shows `***` in place of each secret.
Sending `"***"` back on update keeps the stored value.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from panels.datasource.schemas import CONFIG_TYPES
from panels.platform.crypto import SecretBox, is_sealed
from panels.platform.errors import BadRequest

MASK = "***"
_SECRET_NAME = re.compile(r"pass(word|wd)?|token|secret|api[_-]?key|credential", re.IGNORECASE)
_URL_KEYS = {"url"}
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
_SQL_TOKENS = re.compile(
    r"""(?P<skip>--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|\$(?P<tag>\w*)\$.*?\$(?P=tag)\$)
      |(?P<word>[A-Za-z_][A-Za-z_0-9]*)|(?P<semicolon>;)""",
    re.DOTALL | re.VERBOSE,
)
_WRITING_WORDS = {
    "insert", "update", "delete", "merge", "into", "create", "drop", "alter", "grant", "revoke",
    "truncate", "copy", "call", "do", "lock", "vacuum", "analyze", "refresh", "listen", "notify",
    "set", "reset", "execute", "prepare", "comment", "security", "import",
}  # fmt: skip


def validate_config(
    source_type: str, raw: Any, *, allow_private: bool, where: str = "body.config"
) -> dict[str, Any]:
    """The config in its type's shape (unknown keys dropped), or a 400 naming the field."""
    try:
        config = msgspec.convert(raw, CONFIG_TYPES[source_type])
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        raise BadRequest(f"{where}{path.rstrip('`')}", message) from None
    data: dict[str, Any] = msgspec.to_builtins(config)
    if source_type == "api":
        check_api_url(data["url"], allow_private=allow_private, where=f"{where}.url")
    elif source_type == "database":
        if urlsplit(data["url"]).scheme not in ("postgresql", "postgres"):
            raise BadRequest(f"{where}.url", "must be a postgresql:// URL")
        check_single_select(data["query"], where=f"{where}.query")
    return data


def check_api_url(url: str, *, allow_private: bool, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(where, "must be an http:// or https:// URL with a host")
    if not allow_private and _is_private_host(parts.hostname):
        raise BadRequest(where, "private, loopback and link-local addresses are not allowed")


def _is_private_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return True
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[0-9a-fx.]+", host):
            return False  # a DNS name: resolved and checked again when the source is fetched
        try:  # legacy IPv4 forms that resolvers accept: 2130706433, 0x7f.1, 0177.0.0.1
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def check_single_select(query: str, *, where: str) -> None:
    """One read-only SELECT (or WITH … SELECT): no second statement, nothing that writes."""
    words: list[str] = []
    statement_ended = False
    for token in _SQL_TOKENS.finditer(query):
        if token.group("skip"):
            continue
        if token.group("semicolon"):
            statement_ended = True
            continue
        if statement_ended:
            raise BadRequest(where, "must be a single statement")
        words.append(token.group("word").lower())
    if not words or words[0] not in ("select", "with"):
        raise BadRequest(where, "must be a SELECT statement")
    writing = sorted(_WRITING_WORDS.intersection(words))
    if writing:
        raise BadRequest(where, f"must only read; found {writing[0].upper()}")


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
