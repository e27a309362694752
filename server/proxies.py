"""Which client address a request comes from, behind reverse proxies (`FERRY_TRUSTED_PROXIES`).

`X-Forwarded-For` is a list any client can write, so Ferry believes it only when the direct
peer is a proxy the operator named (addresses or CIDR networks, comma-separated; default
none). It then walks the list from the right, past further trusted proxies, and takes the
first address it does not trust: the client as the outermost trusted proxy saw it. Anything
unparsable stops the walk. The answer replaces the ASGI scope's `client`, so the login rate
limit and the access log both use it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(value: str | Iterable[str] | None) -> tuple[Network, ...]:
    """`"127.0.0.1, 10.0.0.0/8"` -> networks; raises ValueError naming a bad entry."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    networks: list[Network] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"FERRY_TRUSTED_PROXIES: {item!r} is not an address or network") from None
    return tuple(networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:port"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:port"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(peer: str | None, forwarded_for: list[str], networks: tuple[Network, ...]) -> str | None:
    """The client's address: `peer` unless it is trusted and `X-Forwarded-For` says more."""
    if peer is None or not networks or not forwarded_for:
        return peer
    current = _ip(peer)
    if current is None or not _trusted(current, networks):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, networks):
            break
    return str(current)
