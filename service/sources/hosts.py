"""Server-side request forgery guard for hosts that come from user-written handles (``mastodon:user@host``).

A watchlist entry must not make flockwatch probe its own network: a host that resolves to a loopback,
private, link-local, reserved or cloud-metadata address is refused unless the operator lists it (``host``
or ``host:port``) in ``platforms.<name>.allow_hosts``. A ``base_url`` written by the operator is trusted and
never passes through here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable

import httpcore
import httpx
from httpcore import SOCKET_OPTION

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)


class HostRefused(Exception):
    """The host may not be contacted; the message says why, fit to show the user."""


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if embedded is not None and not is_public(embedded):
            return False
    return not (
        address in METADATA_ADDRESSES
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or address in ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, often internal
    )


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, as the system resolver gives them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in infos]


async def check_host(
    host: str,
    port: int,
    allow_hosts: Collection[str],
    lookup: Resolver = resolve,
    *,
    deadline: float | None = None,
) -> str:
    """The address to connect to for ``host``: raise ``HostRefused`` unless every address it resolves to
    is public. An allowed host is returned as it is, for the connection to resolve. A lookup that takes
    longer than ``deadline`` seconds is refused too."""
    host = host.lower().rstrip(".")
    if host in allow_hosts or f"{host}:{port}" in allow_hosts:
        return host
    try:
        async with asyncio.timeout(deadline):
            addresses = await lookup(host, port)
    except TimeoutError:
        raise HostRefused(f"{host} did not resolve in time") from None
    except (OSError, UnicodeError):
        raise HostRefused(f"{host} does not resolve") from None
    if not addresses:
        raise HostRefused(f"{host} does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public(address):
            raise HostRefused(
                f"{host} resolves to the non-public address {address}; "
                "add it to allow_hosts if flockwatch may reach it"
            )
    return addresses[0]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to an address it has just checked.

    ``check_host`` before a request and the connection would otherwise each ask DNS: a host could answer
    with a public address for the check and a private one for the connection (DNS rebinding). Here the
    connection goes to the checked address itself; TLS still verifies the certificate against the host's
    name, which httpcore passes separately.
    """

    def __init__(
        self,
        allow_hosts: Collection[str],
        lookup: Resolver = resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_hosts = allow_hosts
        self._lookup = lookup
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await check_host(host, port, self._allow_hosts, self._lookup)
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise HostRefused("unix sockets are not reached from handles")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(allow_hosts: Collection[str], lookup: Resolver = resolve) -> httpx.AsyncHTTPTransport:
    """httpx's transport with its default settings, connecting through ``GuardedBackend``.

    httpx takes no network backend of its own, so the transport's connection pool is replaced by one with
    the same defaults and the guarded backend (checked against httpx 0.28 by tests/sources/test_hosts.py).
    """
    transport = httpx.AsyncHTTPTransport()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(allow_hosts, lookup),
    )
    return transport
