"""Which webhook URLs the server will call: ``https://`` to public addresses only.

A URL that names, or resolves to, a loopback, private, link-local or otherwise non-public
address would let an API key make the server call into its own network (SSRF). The check
runs at registration and again before every attempt, since DNS can change in between; the
sender then connects to the very address it checked (``Target.address``), so a second
lookup cannot swap it. ``OPENLOCKER_WEBHOOKS_ALLOW_PRIVATE=1`` lifts the rule, and allows
plain ``http://``, for tests, the demo and carriers on the same network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from openlocker.core.errors import InvalidInput

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """A webhook URL resolves to an address the server will not call, or to none."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to for it."""

    url: SplitResult
    address: str

    @property
    def port(self) -> int:
        return self.url.port or (443 if self.url.scheme == "https" else 80)


def check_url(url: str, *, allow_private: bool) -> SplitResult:
    """The URL's parts when its form may be called; ``invalid_webhook_url`` otherwise.

    Where it points is ``resolve``'s to check.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise _invalid(f"The URL is not valid: {exc}.") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise _invalid("A webhook URL must start with https://.")
    if not parts.hostname:
        raise _invalid("A webhook URL must name a host.")
    if parts.username is not None or parts.password is not None:
        raise _invalid("A webhook URL must not carry a user name or password.")
    if parts.fragment:
        raise _invalid("A webhook URL must not carry a #fragment.")
    return parts


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(detail, code="invalid_webhook_url")


def is_public(address: IpAddress) -> bool:
    """Whether ``address`` is on the public internet (not loopback, private, link-local,
    shared, reserved, multicast, or one of those wrapped in an IPv6 form)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def check_addresses(host: str, addresses: list[str], *, allow_private: bool) -> str:
    """The address to connect to: the first of ``addresses``, once every one is public."""
    if not addresses:
        raise AddressRefused(f"{host} does not resolve to any address.")
    if not allow_private:
        for text in addresses:
            if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
                raise AddressRefused(f"{host} resolves to {text}, which is not a public address.")
    return addresses[0]


def resolve_now(parts: SplitResult, *, allow_private: bool) -> Target:
    """Resolve and check, blocking; for registration. Raises ``AddressRefused``."""
    assert parts.hostname is not None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"{parts.hostname} does not resolve: {exc}.") from exc
    return _target(parts, infos, allow_private)


async def resolve(parts: SplitResult, *, allow_private: bool) -> Target:
    """Resolve and check on the event loop; before each attempt. Raises ``AddressRefused``."""
    assert parts.hostname is not None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"{parts.hostname} does not resolve: {exc}.") from exc
    return _target(parts, infos, allow_private)


def _target(
    parts: SplitResult,
    infos: Sequence[tuple[Any, ...]],
    allow_private: bool,
) -> Target:
    assert parts.hostname is not None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return Target(parts, check_addresses(parts.hostname, addresses, allow_private=allow_private))
