"""Which webhook targets are safe to POST to: http(s) URLs whose host resolves to public addresses only."""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from app.core.exceptions import ValidationFailedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[IPAddress]]]

# Cloud instance-metadata endpoints (AWS, GCP, Azure, ...); both are also caught by the range checks,
# but they are the classic SSRF target, so they are named explicitly.
_METADATA = frozenset(ipaddress.ip_address(address) for address in ("169.254.169.254", "fd00:ec2::254"))


class TargetRejectedError(ValidationFailedError):
    """The target URL is not one this service may POST to."""


class TargetUnresolvableError(TargetRejectedError):
    """The target's host did not resolve. Rejected at registration, but retryable at delivery time."""


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for any address that is not plainly on the public internet (SSRF protection)."""
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address the packets end up at: judge that address.
        # (NAT64's 64:ff9b::/96 needs no unwrapping: it lies in ::/8, which is_reserved rejects.)
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        ip in _METADATA
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global  # shared (100.64/10), documentation and other special-purpose ranges
    )


async def resolve(host: str) -> list[IPAddress]:
    """Every address `host` resolves to (the HTTP client may connect to any of them)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; IDNA encoding raises UnicodeError
        raise TargetUnresolvableError(f"The webhook URL's host {host!r} could not be resolved.") from None
    # sockaddr[0] is the address text; link-local IPv6 may carry a "%scope", which ip_address accepts.
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise TargetUnresolvableError(f"The webhook URL's host {host!r} has no IP address.")
    return addresses


class TargetGuard:
    """Refuses targets that are unsafe to POST to. `allow_private` admits loopback and private networks
    (local development only); `resolver` is how host names are looked up."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    async def check(self, url: str) -> None:
        """Raise TargetRejectedError unless `url` is http(s) with a host that is safe to POST to.

        Every address the host resolves to is checked, since the HTTP client may connect to any of them.
        This narrows but does not close DNS rebinding (the client resolves again when it connects).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise TargetRejectedError("The webhook URL must use http or https.")
        host = parts.hostname
        if not host:
            raise TargetRejectedError("The webhook URL has no host.")
        if self.allow_private:
            return
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await self.resolver(host)
        if any(is_forbidden_address(address) for address in addresses):
            raise TargetRejectedError(
                "The webhook URL points to a private, loopback, link-local or otherwise non-public address."
            )
