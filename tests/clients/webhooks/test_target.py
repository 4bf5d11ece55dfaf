import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.clients.webhooks.target import (
    DnsResolver,
    IPAddress,
    TargetGuard,
    TargetRejectedError,
    TargetResolveTimeoutError,
    TargetUnresolvableError,
    is_forbidden_address,
    numeric_address,
)
from app.core.exceptions import ValidationFailedError


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "127.0.0.1",
        "127.8.8.8",
        "0.0.0.0",  # noqa: S104 - an address under test, nothing binds to it
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",  # multicast
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:a00:1::",  # 6to4 wrapping 10.0.0.1
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
        "64:ff9b::808:808",  # NAT64 wrapping 8.8.8.8: still a gateway on our side
        "64:ff9b:1::a00:1",  # NAT64, local use
        "::ffff:8.8.8.8",  # IPv4-mapped: refused whatever it maps
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "2001::1",  # Teredo
        "2001:db8::1",  # documentation
        "fec0::1",  # site-local
        "192.0.2.1",  # documentation
        "198.18.0.1",  # benchmarking
        "240.0.0.1",  # reserved
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1", "2a00:1450:4001:80e::200e"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("ftp://example.com/hook", "must use http or https"),
        ("file:///etc/passwd", "must use http or https"),
        ("example.com/hook", "must use http or https"),
        ("http:///hook", "has no host"),
        ("https://", "has no host"),
    ],
)
@pytest.mark.parametrize("allow_private", [True, False])
async def test_malformed_targets_are_rejected(url: str, detail: str, allow_private: bool) -> None:
    with pytest.raises(ValidationFailedError, match=detail):
        await TargetGuard(allow_private=allow_private).check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/hook",
        "http://127.0.0.1/hook",
        "https://[::1]:8443/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/hook",
        "http://2130706433/hook",  # 127.0.0.1 written as one number
    ],
)
async def test_private_targets_are_rejected_unless_allowed(url: str) -> None:
    with pytest.raises(ValidationFailedError, match="non-public address"):
        await TargetGuard(allow_private=False).check(url)

    await TargetGuard(allow_private=True).check(url)


async def test_public_literal_addresses_are_accepted() -> None:
    await TargetGuard(allow_private=False).check("https://93.184.216.34/hook")
    await TargetGuard(allow_private=False).check("https://[2606:4700::1]/hook")


async def test_an_unresolvable_host_is_rejected() -> None:
    # A DNS label longer than 63 characters fails to resolve without asking any DNS server.
    with pytest.raises(TargetUnresolvableError, match="could not be resolved"):
        await TargetGuard(allow_private=False).check(f"https://{'a' * 64}.example/hook")


class RecordingResolver:
    """Answers from a table of names (as asked) to addresses; records every name it was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.answers:
            raise TargetUnresolvableError(f"{host} is not in the test's DNS")
        return [ipaddress.ip_address(address) for address in self.answers[host]]


@pytest.mark.parametrize(
    ("url", "sent_as", "old_lookup"),
    [
        ("https://faß.example/hook", "xn--fa-hia.example", "fass.example"),
        ("https://FAß.example/hook", "xn--fa-hia.example", "fass.example"),
        ("https://ς.example/hook", "xn--3xa.example", "xn--4xa.example"),
    ],
)
async def test_names_are_checked_as_httpx_sends_them_idna_2008(url: str, sent_as: str, old_lookup: str) -> None:
    # A tenant owning both names points the IDNA 2003 one (what getaddrinfo would look up) somewhere public
    # and the IDNA 2008 one (what httpx connects to) at an internal host.
    resolver = RecordingResolver({old_lookup: ["93.184.216.34"], sent_as: ["10.0.0.7"]})

    with pytest.raises(TargetRejectedError, match="non-public address"):
        await TargetGuard(allow_private=False, resolver=resolver).check(url)

    assert resolver.asked == [sent_as]
    assert httpx.URL(url).raw_host.decode() == sent_as


async def test_the_dns_resolver_never_encodes_a_name_itself() -> None:
    asked: list[str] = []

    def getaddrinfo(host: str, *_: Any, **__: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0))]

    with pytest.raises(TargetRejectedError, match="not a valid host name or IP address"):
        await DnsResolver(getaddrinfo=getaddrinfo)("faß.example")  # getaddrinfo would look up fass.example

    assert asked == []


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # decimal
        "017700000001",  # octal, one number
        "0x7f000001",  # hex, one number
        "0x7f.0.0.1",  # hex part
        "0x7F.0x0.0x0.0x1",
        "127.1",  # short
        "127.0.1",
        "0",  # 0.0.0.0
        "10.1",  # 10.0.0.1
        "0xa9.254.169.254",  # 169.254.169.254
        "0251.0376.0251.0376",  # 169.254.169.254 in octal parts
    ],
)
async def test_every_ipv4_form_is_decided_locally_and_refused(host: str) -> None:
    resolver = RecordingResolver({})  # an IP address in any form is never looked up

    # httpx itself refuses dotted quads with leading zeros; every other form is judged as the address it means.
    with pytest.raises(TargetRejectedError, match=r"non-public address|not a valid host name or IP address"):
        await TargetGuard(allow_private=False, resolver=resolver).check(f"http://{host}:8080/hook")

    assert resolver.asked == []


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x5d.184.216.34", "93.184.216.34"),
        ("1.2.3.4.", "1.2.3.4"),
    ],
)
def test_numeric_hosts_mean_what_getaddrinfo_and_browsers_read(host: str, address: str) -> None:
    assert numeric_address(host) == ipaddress.ip_address(address)
    assert numeric_address("hooks.example") is None


@pytest.mark.parametrize("host", ["1.2.3.4.5", "0x1g.0.0.1", "999.1.1.1", "1.2.3.0x"])
async def test_a_host_ending_in_a_number_that_is_no_address_is_refused(host: str) -> None:
    with pytest.raises(TargetRejectedError, match="not a valid host name or IP address"):
        await TargetGuard(allow_private=False, resolver=RecordingResolver({})).check(f"https://{host}/hook")


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:7f00:1]/hook",
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[64:ff9b::808:808]/hook",  # NAT64 of a public address still goes through the gateway
        "http://[::ffff:8.8.8.8]/hook",
        "http://[fe80::1%25eth0]/hook",
        "http://[0:0:0:0:0:0:0:1]/hook",
    ],
)
async def test_ipv6_forms_carrying_ipv4_or_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(TargetRejectedError, match="non-public address"):
        await TargetGuard(allow_private=False, resolver=RecordingResolver({})).check(url)


async def test_a_name_with_any_private_address_is_refused() -> None:
    resolver = RecordingResolver({"hooks.example": ["93.184.216.34", "2606:4700::1", "::1"]})

    with pytest.raises(TargetRejectedError, match="non-public address"):
        await TargetGuard(allow_private=False, resolver=resolver).check("https://hooks.example/")


async def test_a_public_name_is_accepted_and_its_addresses_are_returned() -> None:
    resolver = RecordingResolver({"hooks.example": ["93.184.216.34", "2606:4700::1"]})
    guard = TargetGuard(allow_private=False, resolver=resolver)

    await guard.check("https://hooks.example/")
    assert await guard.addresses("hooks.example") == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("2606:4700::1"),
    ]


@pytest.mark.parametrize(
    "url",
    ["http://[::g]/", "http://\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34/", "http://a\u200b.example/"],
)
async def test_hosts_httpx_cannot_encode_are_refused(url: str) -> None:
    with pytest.raises(TargetRejectedError, match="not a valid host name or IP address"):
        await TargetGuard(allow_private=True).check(url)


def _slow_getaddrinfo(seconds: float) -> Callable[..., list[tuple[Any, ...]]]:
    def getaddrinfo(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        time.sleep(seconds)  # a DNS server that does not answer
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0))]

    return getaddrinfo


async def test_a_lookup_that_does_not_answer_in_time_is_refused_at_the_deadline() -> None:
    resolver = DnsResolver(0.2, getaddrinfo=_slow_getaddrinfo(2.0))
    started = time.perf_counter()
    try:
        with pytest.raises(TargetResolveTimeoutError, match=r"'hooks\.example' did not resolve within 0\.2 s"):
            await TargetGuard(allow_private=False, resolver=resolver).check("https://hooks.example/")
    finally:
        resolver.close()
    assert time.perf_counter() - started < 1.5


async def test_slow_lookups_do_not_hold_up_other_blocking_work() -> None:
    # The finding: 40 slow lookups on the default thread pool delayed an unrelated to_thread call by 48 s.
    resolver = DnsResolver(0.5, getaddrinfo=_slow_getaddrinfo(1.0))
    guard = TargetGuard(allow_private=False, resolver=resolver)
    try:
        lookups = [asyncio.ensure_future(guard.check(f"https://h{n}.example/")) for n in range(40)]
        await asyncio.sleep(0.05)  # every lookup is queued or running
        started = time.perf_counter()
        assert await asyncio.to_thread(lambda: 42) == 42
        unrelated = time.perf_counter() - started
        outcomes = await asyncio.gather(*lookups, return_exceptions=True)
    finally:
        resolver.close()
    assert unrelated < 0.5
    assert all(isinstance(outcome, TargetResolveTimeoutError) for outcome in outcomes)


async def test_the_guard_closes_only_the_resolver_it_made() -> None:
    resolver = DnsResolver(getaddrinfo=_slow_getaddrinfo(0.0))
    TargetGuard(allow_private=False, resolver=resolver).close()
    assert await resolver("hooks.example") == [ipaddress.ip_address("93.184.216.34")]
    resolver.close()

    guard = TargetGuard(allow_private=False)
    guard.close()
    with pytest.raises(RuntimeError):
        await guard.resolver("hooks.example")


async def test_a_name_with_no_ip_address_is_unresolvable() -> None:
    def only_unix(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", "hooks.sock")]

    resolver = DnsResolver(getaddrinfo=only_unix)
    try:
        with pytest.raises(TargetUnresolvableError, match="has no IP address"):
            await resolver("hooks.example")
    finally:
        resolver.close()
