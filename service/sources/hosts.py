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
from collections.abc import Collection

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


async def check_host(host: str, port: int, allow_hosts: Collection[str]) -> None:
    """Raise ``HostRefused`` unless every address ``host`` resolves to is public, or the host is allowed."""
    host = host.lower().rstrip(".")
    if host in allow_hosts or f"{host}:{port}" in allow_hosts:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise HostRefused(f"{host} does not resolve") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not is_public(address):
            raise HostRefused(
                f"{host} resolves to the non-public address {address}; "
                "add it to allow_hosts if flockwatch may reach it"
            )
