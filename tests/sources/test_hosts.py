"""The SSRF guard: handle-derived hosts must not lead flockwatch into its own network."""

from __future__ import annotations

import asyncio
import ipaddress

import httpcore
import httpx
import pytest

from service.clock import ManualClock
from service.samples import AccountState
from service.sources.base import AccountProblem, Target
from service.sources.hosts import (
    GuardedBackend,
    HostRefused,
    Resolver,
    check_host,
    guarded_transport,
    is_public,
)
from service.sources.platforms.mastodon import MastodonSource
from tests.sources.world import START


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::6810:85e5"])
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "169.254.169.254", "::1"])
async def test_internal_hosts_are_refused(host: str) -> None:
    with pytest.raises(HostRefused, match="non-public address"):
        await check_host(host, 443, allow_hosts=())


async def test_an_allowed_host_or_host_and_port_passes() -> None:
    await check_host("localhost", 443, allow_hosts=("localhost",))
    await check_host("127.0.0.1", 8443, allow_hosts=("127.0.0.1:8443",))
    with pytest.raises(HostRefused):
        await check_host("127.0.0.1", 443, allow_hosts=("127.0.0.1:8443",))


async def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(HostRefused, match="does not resolve"):
        await check_host("no-such-host.invalid", 443, allow_hosts=())


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a request went out to {request.url.host}")


async def test_mastodon_refuses_a_handle_pointing_inside_without_sending_anything() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(_no_network))
    source = MastodonSource(client, clock=ManualClock(START))
    target = Target("alice@127.0.0.1")

    result = (await source.fetch([target]))[target]

    assert isinstance(result, AccountProblem)
    assert result.state is AccountState.ERRORING
    assert result.kind == "refused_host" and result.permanent
    assert "allow_hosts" in result.message
    await source.aclose()


async def test_mastodon_reaches_an_allowed_internal_host_and_keeps_its_token_to_itself() -> None:
    seen: list[httpx.Request] = []

    def instance(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "7", "acct": "alice", "followers_count": 3})

    client = httpx.AsyncClient(transport=httpx.MockTransport(instance))
    source = MastodonSource(
        client, token="only-for-base-url", clock=ManualClock(START), allow_hosts=["127.0.0.1"]
    )
    target = Target("alice@127.0.0.1")

    result = (await source.fetch([target]))[target]

    assert result.followers == 3 and result.handle == "alice@127.0.0.1"  # type: ignore[union-attr]
    assert seen[0].url.host == "127.0.0.1"
    assert "authorization" not in seen[0].headers  # a handle's host never gets the operator's token
    await source.aclose()


async def test_redirects_to_other_hosts_are_not_followed() -> None:
    def instance(request: httpx.Request) -> httpx.Response:
        if request.url.host == "169.254.169.254":
            raise AssertionError("followed a redirect to the metadata service")
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}, json={})

    client = httpx.AsyncClient(transport=httpx.MockTransport(instance))
    source = MastodonSource(client, clock=ManualClock(START), allow_hosts=["127.0.0.1"])
    target = Target("alice@127.0.0.1")

    result = (await source.fetch([target]))[target]

    assert isinstance(result, AccountProblem) and result.state is AccountState.ERRORING
    await source.aclose()


# The connection's own check: DNS answers once, for the check and the connection together -------------------


class _Recording(httpcore.AsyncNetworkBackend):
    """An inner backend that records where it was asked to connect, and connects nowhere."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def connect_tcp(
        self, host: str, port: int, *args: object, **kwargs: object
    ) -> httpcore.AsyncNetworkStream:
        self.asked.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


def _answers(*addresses: str) -> Resolver:
    async def lookup(host: str, port: int) -> list[str]:
        return list(addresses)

    return lookup


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    inner = _Recording()
    backend = GuardedBackend((), _answers("93.184.216.34"), inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("social.example", 443)
    assert inner.asked == [("93.184.216.34", 443)]  # not the name, which DNS could answer differently


async def test_a_host_that_now_resolves_inside_is_refused_at_connection_time() -> None:
    # DNS rebinding: whatever an earlier check saw, the connection's own answer is private, so no request.
    seen: list[str] = []

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await reader.readline()).decode())
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(server, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=guarded_transport((), _answers("127.0.0.1"))) as client:
            with pytest.raises(HostRefused, match=r"non-public address 127\.0\.0\.1"):
                await client.get(f"http://social.example:{port}/api/v1/accounts/lookup")
        assert seen == []
        allowed = guarded_transport((f"localhost:{port}",), _answers("127.0.0.1"))
        async with httpx.AsyncClient(transport=allowed) as client:
            response = await client.get(f"http://localhost:{port}/api/v1/accounts/lookup")
        assert response.status_code == 200 and seen and seen[0].startswith("GET /api/v1/accounts/lookup")
    finally:
        listening.close()
        await listening.wait_closed()
