"""platform/egress.py: the one check on hosts the service connects to for a client."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panels.platform.egress import EgressRefused, is_public, literal_address, public_addresses

REFUSED_LITERALS = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",  # shared address space (CGNAT)
    "100.127.255.254",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "0.0.0.0",
    "0.1.2.3",
    "192.0.2.1",
    "::1",
    "::",
    "[::1]",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::6440:1",  # NAT64 of 100.64.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "::127.0.0.1",
    "2130706433",  # legacy IPv4 spellings of 127.0.0.1 that resolvers accept
    "0x7f.1",
    "0177.0.0.1",
    "127.1",
]
PUBLIC_LITERALS = [
    "93.184.215.14",
    "8.8.8.8",
    "2606:4700::1111",
    "::ffff:93.184.215.14",
    "64:ff9b::5db8:d70e",  # NAT64 of 93.184.215.14: what DNS64 answers on IPv6-only networks
]


@pytest.mark.parametrize("host", REFUSED_LITERALS)
async def test_private_literals_are_refused(host: str) -> None:
    address = literal_address(host)
    assert address is not None
    assert not is_public(address)
    with pytest.raises(EgressRefused, match="not allowed"):
        await public_addresses(host)


@pytest.mark.parametrize("host", PUBLIC_LITERALS)
async def test_public_literals_pass_as_written(host: str) -> None:
    assert await public_addresses(host, 443) == [ipaddress.ip_address(host)]


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "db.localhost", "printer.local", "api.internal"]
)
async def test_local_names_are_refused_without_a_lookup(host: str) -> None:
    with pytest.raises(EgressRefused, match="local"):
        await public_addresses(host)


async def test_a_name_is_judged_by_the_addresses_it_resolves_to() -> None:
    """The machine's own name resolves to one of its own (loopback or private) addresses."""
    name = socket.gethostname()
    try:
        resolved = {ipaddress.ip_address(i[4][0]) for i in socket.getaddrinfo(name, None)}
    except OSError:
        pytest.skip("this machine's name does not resolve")
    if all(is_public(a) for a in resolved):
        pytest.skip("this machine's name resolves to public addresses only")
    with pytest.raises(EgressRefused, match=f"host {name.lower()} resolves to"):
        await public_addresses(name)


@pytest.mark.parametrize("host", ["no-such-host.invalid", "a..b", "-x-", "a b", "x" * 64 + ".com"])
async def test_names_that_do_not_resolve_or_are_malformed_are_refused(host: str) -> None:
    with pytest.raises(EgressRefused, match=r"does not resolve|not a valid host name"):
        await public_addresses(host)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[0-9a-fx.:\[\]%]{1,40}", fullmatch=True))
def test_any_host_text_is_refused_cleanly_or_public(host: str) -> None:
    try:
        addresses = asyncio.run(public_addresses(host))
    except EgressRefused:
        return
    assert addresses
    assert all(is_public(a) for a in addresses)
