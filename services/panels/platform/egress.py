"""Which hosts the service may connect to on a client's behalf: public addresses only.

A client that names a URL (a data source) must not reach the service's own network: private,
loopback, link-local, shared (CGNAT 100.64/10), multicast, reserved and unspecified addresses
are refused, in every spelling: IPv4-mapped IPv6 (`::ffff:127.0.0.1`), NAT64 (`64:ff9b::a00:1`)
and 6to4 forms are judged by the IPv4 address they carry, and the legacy IPv4 forms resolvers
accept (`2130706433`, `0x7f.1`) by the address they mean. `localhost` names are refused
without a lookup. A host name is resolved (off the event loop) and every address it resolves
to must pass; callers connect to one of the addresses returned, never to the name again, so a
DNS change between the check and the connection cannot redirect them inward.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
# RFC 1123 labels (underscores tolerated, as resolvers do), ASCII after IDNA encoding.
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}\.?$)({_LABEL}\.)*{_LABEL}\.?")
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")
RESOLVE_TIMEOUT_SECONDS = 5.0


class EgressRefused(ValueError):
    """The host may not be reached; the message says why, in words fit for a client."""


def is_public(address: IPAddress) -> bool:
    """True for an address reachable on the public internet and nothing else."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(address.packed[-4:]) if address in _NAT64 else None
        )
        if embedded is not None:
            return is_public(embedded)
        if address.sixtofour is not None and not is_public(address.sixtofour):
            return False
        if address.is_site_local:
            return False
    elif address in _SHARED:
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal means, or None for a name."""
    host = host.strip("[]").partition("%")[0]  # brackets and an IPv6 zone say nothing
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


async def public_addresses(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address `host` stands for, all public; else EgressRefused.

    An IP literal is judged as written; a name is resolved in a worker thread (at most
    RESOLVE_TIMEOUT_SECONDS) and a name that does not resolve is refused too.
    """
    address = literal_address(host)
    if address is not None:
        _require_public(address)
        return [address]
    name = _ascii_name(host)
    bare = name.rstrip(".")
    if bare == "localhost" or bare.endswith(_LOCAL_SUFFIXES):
        raise EgressRefused("localhost and local network names are not allowed")
    addresses = await _resolve(name, port)
    if not addresses:
        raise EgressRefused(f"host {name} does not resolve")
    for resolved in addresses:
        _require_public(resolved, name)
    return addresses


async def addresses_to_connect(
    host: str, port: int | None, *, allow_private: bool
) -> list[IPAddress]:
    """The addresses to connect to for `host`: `public_addresses`, or, when private targets
    are allowed, whatever it resolves to. Either way the caller connects to one of these and
    never looks the name up again."""
    if not allow_private:
        return await public_addresses(host, port)
    address = literal_address(host)
    if address is not None:
        return [address]
    return await _resolve(host, port)


async def _resolve(host: str, port: int | None) -> list[IPAddress]:
    """The distinct addresses `host` resolves to (in a worker thread, at most
    RESOLVE_TIMEOUT_SECONDS); EgressRefused when it does not resolve."""
    try:
        found = await asyncio.wait_for(
            asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM),
            RESOLVE_TIMEOUT_SECONDS,
        )
    except (OSError, TimeoutError, UnicodeError):
        raise EgressRefused(f"host {host} does not resolve") from None
    return list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found)
    )


def _ascii_name(host: str) -> str:
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise EgressRefused("is not a valid host name") from None
    if not _HOST_NAME.fullmatch(name):
        raise EgressRefused("is not a valid host name")
    return name


def _require_public(address: IPAddress, name: str | None = None) -> None:
    if not is_public(address):
        what = f"host {name} resolves to {address}, which" if name else f"address {address}"
        raise EgressRefused(f"{what} is private, loopback, link-local or reserved: not allowed")
