"""Which webhook targets are safe to POST to: http(s) URLs whose host resolves to public addresses only.

A host is judged by the name parse_target gives (httpx's URL parser, which encodes names with IDNA 2008,
UTS 46); the client sends that same URL, already encoded, so the check and the connection can never see
two different names. At delivery time the transport (transport.py) asks `TargetGuard.addresses` once per
connection and connects to exactly the addresses it approved: no second lookup that DNS rebinding could
answer differently.
"""

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from app.core.exceptions import ValidationFailedError

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[IPAddress]]]
GetAddrInfo = Callable[..., list[tuple[Any, ...]]]

DEFAULT_DNS_TIMEOUT_SECONDS = 3.0
# Lookups in flight at once per resolver. A lookup that hangs holds its thread past its deadline (getaddrinfo
# cannot be cancelled), so the pool is small and of its own: hung lookups delay only other lookups.
DEFAULT_MAX_LOOKUPS = 8

# Named explicitly, not left to `ipaddress`'s is_global alone (whose tables change between Python releases).
_FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 included
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relays
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, 255.255.255.255 included
        "::/96",  # unspecified, loopback and IPv4-compatible (deprecated) addresses
        "::ffff:0:0/96",  # IPv4-mapped: a dual-stack socket sends these to the IPv4 address
        "64:ff9b::/96",  # NAT64, well-known prefix: the gateway forwards to the embedded IPv4 address
        "64:ff9b:1::/48",  # NAT64, local use
        "100::/64",  # discard
        "2001::/32",  # Teredo
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

REJECTED = "The webhook URL points to a private, loopback, link-local or otherwise non-public address."
INVALID_HOST = "The webhook URL's host is not a valid host name or IP address."


class TargetRejectedError(ValidationFailedError):
    """The target URL is not one this service may POST to."""


class TargetUnresolvableError(TargetRejectedError):
    """The target's host did not resolve. Rejected at registration, but retryable at delivery time."""


class TargetResolveTimeoutError(TargetUnresolvableError):
    """The target's host did not resolve within the deadline."""


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for any address that is not plainly on the public internet (SSRF protection)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None and is_forbidden_address(ip.sixtofour):
        return True  # 6to4 carries the IPv4 address its packets end up at
    return any(ip in network for network in _FORBIDDEN_NETWORKS if network.version == ip.version) or not ip.is_global


def parse_target(url: str) -> "httpx.URL":
    """`url` as the webhook client sends it (the host IDNA-encoded); TargetRejectedError unless http(s) with a host."""
    import httpx  # here, not at import: the API parses a target only when a webhook is registered or changed

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise TargetRejectedError(INVALID_HOST) from None
    if parsed.scheme not in ("http", "https"):
        raise TargetRejectedError("The webhook URL must use http or https.")
    if not parsed.raw_host:
        raise TargetRejectedError("The webhook URL has no host.")
    return parsed


def numeric_address(host: str) -> IPAddress | None:
    """The address a host written as an IP address means, in every form a resolver accepts.

    Besides the standard forms: IPv4 as one number (2130706433), in hex or octal parts (0x7f.1, 0177.0.0.1)
    or with parts left out (127.1), which getaddrinfo and browsers read as IPv4 too. Decided here, not left
    to a resolver, so the answer is the same whichever resolver is used.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    last = host.removesuffix(".").rpartition(".")[2].lower()
    if not (last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:]))):
        return None  # a name: WHATWG URL's "ends in a number" rule decides which hosts are IPv4
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.removesuffix(".")))
    except OSError:
        raise TargetRejectedError(INVALID_HOST) from None


class DnsResolver:
    """getaddrinfo in a thread pool of its own, with a deadline per lookup."""

    def __init__(
        self,
        timeout_seconds: float = DEFAULT_DNS_TIMEOUT_SECONDS,
        *,
        max_lookups: int = DEFAULT_MAX_LOOKUPS,
        getaddrinfo: GetAddrInfo = socket.getaddrinfo,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self._getaddrinfo = getaddrinfo
        self._executor = ThreadPoolExecutor(max_workers=max_lookups, thread_name_prefix="webhook-dns")

    async def __call__(self, host: str) -> list[IPAddress]:
        if not host.isascii():
            # getaddrinfo would encode it with IDNA 2003 (faß -> fass), not as parse_target encodes it: never ask it.
            raise TargetRejectedError(INVALID_HOST)
        lookup = functools.partial(self._getaddrinfo, host, None, type=socket.SOCK_STREAM)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                infos = await asyncio.get_running_loop().run_in_executor(self._executor, lookup)
        except TimeoutError:
            raise TargetResolveTimeoutError(
                f"The webhook URL's host {host!r} did not resolve within {self.timeout_seconds:g} s; try again later."
            ) from None
        except (OSError, UnicodeError):  # socket.gaierror is an OSError
            raise TargetUnresolvableError(f"The webhook URL's host {host!r} could not be resolved.") from None
        # sockaddr[0] is the address text; link-local IPv6 may carry a "%scope", which ip_address accepts.
        found = [ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
        if not found:
            raise TargetUnresolvableError(f"The webhook URL's host {host!r} has no IP address.")
        return list(dict.fromkeys(found))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class TargetGuard:
    """Refuses targets that are unsafe to POST to. `allow_private` admits loopback and private networks
    (local development only); `resolver` is how host names are looked up (default: a DnsResolver with
    `dns_timeout_seconds`, closed by `close()`)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        dns_timeout_seconds: float = DEFAULT_DNS_TIMEOUT_SECONDS,
    ) -> None:
        self.allow_private = allow_private
        self._own_resolver: DnsResolver | None = None
        if resolver is None:
            resolver = self._own_resolver = DnsResolver(dns_timeout_seconds)
        self.resolver = resolver

    async def check(self, url: str) -> None:
        """Raise TargetRejectedError unless `url` is http(s) with a host that is safe to POST to."""
        host = parse_target(url).raw_host.decode("ascii")
        if not self.allow_private:
            await self.addresses(host)

    async def addresses(self, host: str) -> list[IPAddress]:
        """Every address `host` (as parse_target encodes it) resolves to, once; TargetRejectedError if any of them
        is not public (the client may connect to any of them), unless private targets are allowed."""
        literal = numeric_address(host)
        addresses = [literal] if literal is not None else await self.resolver(host)
        if not self.allow_private and any(is_forbidden_address(address) for address in addresses):
            raise TargetRejectedError(REJECTED)
        return addresses

    def refuses(self, address: str) -> bool:
        """Whether a connection to `address` (an IP address as text, as a socket takes it) is refused."""
        return not self.allow_private and is_forbidden_address(ipaddress.ip_address(address))

    def close(self) -> None:
        """Stop the resolver's threads, if the guard made the resolver."""
        if self._own_resolver is not None:
            self._own_resolver.close()
