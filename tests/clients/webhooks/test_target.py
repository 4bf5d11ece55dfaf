import ipaddress

import pytest

from app.clients.webhooks.target import TargetGuard, TargetUnresolvableError, is_forbidden_address
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
