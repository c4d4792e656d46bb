"""Which addresses a dataset URL may reach: public internet addresses only.

Checked on the literal host of every URL (before and after each redirect) and on every
address a host name resolves to, right before the connection is made to that same address.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.dataset.errors import DatasetError

# Cloud metadata services, some of them on otherwise public-looking addresses (Azure's).
METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean…
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wireserver
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS DNS over IPv6
    )
)
_NAT64 = ip_network("64:ff9b::/96")
PUBLIC_ONLY = "Only links to files on the public internet are accepted."


def address_problem(address: IPv4Address | IPv6Address, *, allow_loopback: bool) -> str | None:
    """Why ``address`` may not be fetched, or None when it is a public address."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_problem(embedded, allow_loopback=allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private network address"),
        (isinstance(address, IPv6Address) and address.is_site_local, "a site-local address"),
        (not address.is_global, "not a public internet address"),
    )
    return next((reason for failed, reason in checks if failed), None)


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), which is what counts."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    allow_loopback: bool = False

    def check_url(self, url: URL) -> None:
        host = url.host
        if not host:
            raise DatasetError("The dataset URL has no host.", "Paste the full https:// link to the zip.")
        loopback_http = url.scheme == "http" and self.allow_loopback and _is_loopback_name(host)
        if url.scheme != "https" and not loopback_http:
            raise DatasetError("The dataset URL must start with https://.", "Use the https link to the zip.")
        try:
            literal = ip_address(host)
        except ValueError:
            return  # a name: checked on every address it resolves to
        self.check_address(literal, host)

    def check_address(self, address: IPv4Address | IPv6Address, host: str) -> None:
        problem = address_problem(address, allow_loopback=self.allow_loopback)
        if problem:
            raise DatasetError(f"The dataset URL's host `{host}` is {problem} ({address}).", PUBLIC_ONLY)


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and refuses if any address is not allowed.

    aiohttp connects to exactly the addresses a resolver returns, so what is checked here is
    what is connected to: a name cannot resolve differently between the check and the connect.
    """

    def __init__(self, inner: AbstractResolver, policy: AddressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise DatasetError(f"The host `{host}` could not be found.", "Check the link.")
        for result in results:
            self._policy.check_address(ip_address(result["host"]), host)
        return results

    async def close(self) -> None:
        await self._inner.close()
