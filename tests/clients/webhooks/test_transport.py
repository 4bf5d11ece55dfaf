"""Where a webhook request really goes: the addresses the guard checked, looked up once, and nowhere else.

Receivers run on loopback; a client that allows public targets only must never reach them, whatever the URL
or DNS says. A recording network backend stands in for the internet: it records every address the client
connects to and refuses all but loopback, so no test depends on a network outside this machine.
"""

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from app.clients.webhooks.client import WebhookClient, create_webhook_client
from app.clients.webhooks.models import WebhookMessage
from app.clients.webhooks.target import IPAddress, TargetGuard, TargetRejectedError, TargetUnresolvableError
from app.clients.webhooks.transport import AddrInfo, GuardedResolver, guarded_socket
from tests.support.certificates import tls_for
from tests.support.receiver import Receiver, running_receiver
from tests.support.sealing import KEYRING, sealed
from tests.support.settings import test_settings

TIMEOUT = 2.0
PUBLIC = "93.184.216.34"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class RecordingBackend:
    """A socket factory that records each connection's address; connects to loopback only (anything else:
    connection refused, as an unreachable host would)."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    def __call__(self, addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, address = addr_info
        self.connected.append((address[0], address[1]))
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError(111, "Connection refused")
        return socket.socket(family=family, type=type_, proto=proto)


class ScriptedResolver:
    """Gives the next answer for a name on each lookup (repeating the last); records every lookup."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "."): list(script) for name, script in answers.items()}
        self.asked: list[str] = []

    def give(self, name: str, *script: list[str]) -> None:
        self.answers[name] = list(script)

    async def __call__(self, host: str) -> list[IPAddress]:
        self.asked.append(host)
        script = self.answers.get(host)
        if not script:
            raise TargetUnresolvableError(f"{host} is not in the test's DNS")
        answer = script.pop(0) if len(script) > 1 else script[0]
        return [ipaddress.ip_address(address) for address in answer]


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def dns() -> ScriptedResolver:
    return ScriptedResolver()


async def _client(guard: TargetGuard, backend: RecordingBackend, **options: Any) -> WebhookClient:
    return WebhookClient(guard, KEYRING, socket_factory=backend, **options)


@pytest.fixture
async def public_only(dns: ScriptedResolver, backend: RecordingBackend) -> AsyncIterator[WebhookClient]:
    """As outside local/test: public targets only, names answered by `dns`, connections made by `backend`."""
    client = await _client(TargetGuard(allow_private=False, resolver=dns), backend)
    yield client
    await client.aclose()


@pytest.fixture
async def local(dns: ScriptedResolver, backend: RecordingBackend) -> AsyncIterator[WebhookClient]:
    """As in local development: private targets allowed, names still answered by `dns` (and pinned)."""
    client = await _client(TargetGuard(allow_private=True, resolver=dns), backend)
    yield client
    await client.aclose()


@pytest.fixture
def proxy() -> Iterator[Receiver]:
    """A second local server standing in for a proxy: records what was sent to it."""
    with running_receiver() as running:
        yield running


def _port(receiver: Receiver) -> int:
    return int(receiver.base_url.rsplit(":", 1)[1])


async def test_a_name_rebound_to_loopback_after_the_check_is_never_connected_to(
    public_only: WebhookClient,
    dns: ScriptedResolver,
    backend: RecordingBackend,
    receiver: Receiver,
    secret: str,
    message: WebhookMessage,
) -> None:
    # TTL 0: public for whoever asks first, loopback afterwards. "localhost" so that a client resolving the
    # name again on its own (as HTTP clients do) would reach the receiver through the system resolver.
    dns.give("localhost", [PUBLIC], ["127.0.0.1"])
    url = receiver.url().replace("127.0.0.1", "localhost")

    outcome = await public_only.deliver(url, sealed(secret), message, TIMEOUT)

    assert dns.asked == ["localhost"]  # one lookup: the connection went where the check said
    assert backend.connected == [(PUBLIC, _port(receiver))]
    assert (outcome.succeeded, outcome.retryable, outcome.error) == (False, True, "connection refused")
    assert receiver.requests == []


async def test_a_name_rebound_from_loopback_is_refused_on_its_one_lookup(
    public_only: WebhookClient,
    dns: ScriptedResolver,
    backend: RecordingBackend,
    receiver: Receiver,
    secret: str,
    message: WebhookMessage,
) -> None:
    dns.give("localhost", ["127.0.0.1"], [PUBLIC])

    outcome = await public_only.deliver(receiver.url().replace("127.0.0.1", "localhost"), sealed(secret), message, 2)

    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error is not None
    assert "non-public address" in outcome.error
    assert dns.asked == ["localhost"]
    assert backend.connected == []
    assert receiver.requests == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",  # decimal
        "017700000001",  # octal
        "0x7f000001",  # hex
        "0x7f.1",
        "127.1",  # short
        "0",  # 0.0.0.0 reaches loopback on Linux
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "faß.example",  # IDNA 2008: xn--fa-hia.example, pointed at loopback
        "ς.example",
    ],
)
async def test_a_receiver_on_loopback_sees_no_request_from_a_public_only_client(
    host: str, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    # The real resolver (getaddrinfo), except for the two IDN names, which point at loopback as the client sends
    # them and at a public address as getaddrinfo's IDNA 2003 would (fass.example, xn--4xa.example).
    real = TargetGuard(allow_private=False)
    answers = {"xn--fa-hia.example": "127.0.0.1", "xn--3xa.example": "127.0.0.1", "fass.example": PUBLIC}

    async def resolve(name: str) -> list[IPAddress]:
        if name in answers or name.endswith(".example"):
            return [ipaddress.ip_address(answers.get(name, PUBLIC))]
        return await real.resolver(name)

    client = WebhookClient(TargetGuard(allow_private=False, resolver=resolve), KEYRING)
    try:
        outcome = await client.deliver(receiver.url().replace("127.0.0.1", host), sealed(secret), message, TIMEOUT)
    finally:
        await client.aclose()
        real.close()

    assert not outcome.succeeded
    assert not outcome.retryable
    assert outcome.error is not None
    assert "non-public address" in outcome.error
    assert receiver.requests == []


async def test_the_checked_address_is_connected_to_with_the_name_in_the_host_header(
    local: WebhookClient,
    dns: ScriptedResolver,
    backend: RecordingBackend,
    receiver: Receiver,
    secret: str,
    message: WebhookMessage,
) -> None:
    port = _port(receiver)
    dns.give("a.example", ["127.0.0.1"])
    dns.give("xn--fa-hia.example", ["127.0.0.1"])
    urls = [receiver.url().replace("127.0.0.1", host) for host in ("a.example", "faß.example", "a.example")]

    outcomes = [await local.deliver(url, sealed(secret), message, TIMEOUT) for url in urls]

    assert all(outcome.succeeded for outcome in outcomes)
    hosts = [request.headers["host"] for request in receiver.requests]
    assert hosts == [f"a.example:{port}", f"xn--fa-hia.example:{port}", f"a.example:{port}"]
    assert backend.connected == [("127.0.0.1", port)] * 3  # the receiver closes each connection (HTTP/1.0)
    assert dns.asked == ["a.example", "xn--fa-hia.example", "a.example"]  # one lookup per connection


async def test_every_address_of_a_name_is_tried_in_turn(
    local: WebhookClient,
    dns: ScriptedResolver,
    backend: RecordingBackend,
    receiver: Receiver,
    secret: str,
    message: WebhookMessage,
) -> None:
    dns.give("hooks.example", [PUBLIC, "127.0.0.1"])

    outcome = await local.deliver(receiver.url().replace("127.0.0.1", "hooks.example"), sealed(secret), message, 2)

    assert outcome.succeeded
    assert [address for address, _ in backend.connected] == [PUBLIC, "127.0.0.1"]


async def test_tls_checks_the_certificate_and_sends_sni_for_the_name_not_the_address(
    dns: ScriptedResolver, backend: RecordingBackend, secret: str, message: WebhookMessage
) -> None:
    tls = tls_for("hooks.example")
    dns.give("hooks.example", ["127.0.0.1"])
    dns.give("other.example", ["127.0.0.1"])
    guard = TargetGuard(allow_private=True, resolver=dns)
    client = await _client(guard, backend, ssl_context=tls.client)
    try:
        with running_receiver(tls=tls.server) as receiver:
            good = await client.deliver(
                receiver.url().replace("127.0.0.1", "hooks.example"), sealed(secret), message, TIMEOUT
            )
            # Same address, a name the certificate does not cover: refused, so verification is on the name.
            wrong = await client.deliver(
                receiver.url().replace("127.0.0.1", "other.example"), sealed(secret), message, TIMEOUT
            )
            requests = list(receiver.requests)
    finally:
        await client.aclose()

    assert good.succeeded, good.error
    assert requests[0].headers["host"] == f"hooks.example:{backend.connected[0][1]}"
    assert tls.server_names[0] == "hooks.example"
    assert (wrong.succeeded, wrong.retryable) == (False, True)
    assert wrong.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in wrong.error
    assert len(requests) == 1


async def test_proxy_settings_in_the_environment_are_ignored(
    monkeypatch: pytest.MonkeyPatch, proxy: Receiver, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy.base_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = create_webhook_client(test_settings())  # the worker's client
    try:
        outcome = await client.deliver(receiver.url(), sealed(secret), message, TIMEOUT)
    finally:
        await client.aclose()

    assert outcome.succeeded, outcome.error
    assert len(receiver.requests) == 1
    assert proxy.requests == []


async def test_the_egress_proxy_setting_sends_every_delivery_through_it(
    proxy: Receiver, secret: str, message: WebhookMessage
) -> None:
    target = "http://hooks.example/deliveries"
    proxy.url(path="/deliveries")
    client = create_webhook_client(test_settings(WEBHOOK_EGRESS_PROXY=proxy.base_url))
    try:
        outcome = await client.deliver(target, sealed(secret), message, TIMEOUT)
    finally:
        await client.aclose()

    assert outcome.succeeded, outcome.error
    [request] = proxy.requests
    assert request.path == target  # absolute form: the proxy connects
    assert request.headers["host"] == "hooks.example"
    Webhook(secret).verify(request.body, request.headers)


async def test_with_an_egress_proxy_private_targets_are_still_refused_before_sending(
    dns: ScriptedResolver, proxy: Receiver, secret: str, message: WebhookMessage
) -> None:
    dns.give("hooks.example", [PUBLIC])
    dns.give("internal.example", ["10.0.0.7"])
    proxy.url(path="/hook")
    client = WebhookClient(TargetGuard(allow_private=False, resolver=dns), KEYRING, proxy=proxy.base_url)
    try:
        refused = [
            await client.deliver(url, sealed(secret), message, TIMEOUT)
            for url in ("http://internal.example/hook", "http://127.0.0.1/hook", "http://2130706433/hook")
        ]
        sent = await client.deliver("http://hooks.example/hook", sealed(secret), message, TIMEOUT)
    finally:
        await client.aclose()

    assert all(outcome.error and "non-public address" in outcome.error for outcome in refused)
    assert sent.succeeded, sent.error
    assert [request.path for request in proxy.requests] == ["http://hooks.example/hook"]


async def test_the_client_reads_no_proxy_or_credentials_from_the_environment(public_only: WebhookClient) -> None:
    assert public_only.session.trust_env is False


async def test_the_resolver_answers_the_addresses_the_guard_approved_and_nothing_else(dns: ScriptedResolver) -> None:
    dns.give("hooks.example", [PUBLIC, "2001:4860:4860::8888"])
    dns.give("internal.example", [PUBLIC, "10.0.0.7"])
    resolver = GuardedResolver(TargetGuard(allow_private=False, resolver=dns))

    answers = await resolver.resolve("hooks.example", 443)
    with pytest.raises(TargetRejectedError, match="non-public address"):
        await resolver.resolve("internal.example", 443)

    assert [(a["hostname"], a["host"], a["port"], a["family"]) for a in answers] == [
        ("hooks.example", PUBLIC, 443, socket.AF_INET),
        ("hooks.example", "2001:4860:4860::8888", 443, socket.AF_INET6),
    ]
    assert dns.asked == ["hooks.example", "internal.example"]


async def test_an_address_literal_is_refused_at_connect_time_without_a_resolver(backend: RecordingBackend) -> None:
    # aiohttp never asks a resolver about a host written as an IP address: the socket factory refuses it.
    create = guarded_socket(TargetGuard(allow_private=False), backend)

    with pytest.raises(TargetRejectedError, match="non-public address"):
        create((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 80, 0, 0)))
    with pytest.raises(ConnectionRefusedError):  # a public address goes on to the inner factory
        create((socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, 80)))

    assert backend.connected == [(PUBLIC, 80)]
