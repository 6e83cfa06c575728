"""Client networks: what the web chat's per-address guards count, so that shared addresses are not one person.

A client address is counted by its **network**: an IPv6 address by its /64 (``GATEWAY_CLIENT_IPV6_PREFIX``: one
subscriber's line or one phone usually gets a whole /64, and a troll rotating through it stays one client), an
IPv4 address by itself (``GATEWAY_CLIENT_IPV4_PREFIX``, 32), an IPv4-mapped IPv6 address (``::ffff:192.0.2.7``,
what a dual-stack socket reports) as its IPv4 address. A full-length prefix keeps the address's own text, so
counters and conversations marked before this module keep their keys. A port a proxy appended is dropped
(``192.0.2.7:51234``, ``[2001:db8::1]:443``); what does not parse as an address is kept as it is: never an error.

Operators declare the networks they know to be shared by many young people (``GATEWAY_SHARED_NETWORKS``: a
school's or a foster home's public address, a carrier's CGNAT range): a client network inside one keeps its own
key but gets the larger cap and rate of shared networks (``gateway/gate.py``). Only ever used through a keyed hash.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gateway.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(cidrs: str, variable: str = "GATEWAY_SHARED_NETWORKS") -> tuple[Network, ...]:
    """``"192.0.2.0/24, 2001:db8::/48"`` as networks; ConfigError naming the variable and the bad item."""
    networks = []
    for item in filter(None, (part.strip() for part in cidrs.split(","))):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{variable}: '{item}' is not a network like 192.0.2.0/24 or 2001:db8::/48") from None
        networks.append(network)
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """``text`` as an address (a port a proxy appended dropped, an IPv4-mapped one as IPv4), None if it is not one."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443, as some proxies forward it
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.7:51234
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class ClientNetworks:
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    shared: tuple[Network, ...] = ()

    def key(self, address: str) -> str:
        """What the per-address guards count for ``address``: its network, or the text itself when unparsable."""
        parsed = parse_address(address)
        if parsed is None:
            return address
        if isinstance(parsed, ipaddress.IPv4Address):
            network: Network = ipaddress.IPv4Network((int(parsed), self.ipv4_prefix), strict=False)
        else:  # built from the number: a zone (fe80::1%eth0) is not part of the network
            network = ipaddress.IPv6Network((int(parsed), self.ipv6_prefix), strict=False)
        return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)

    def is_shared(self, address: str) -> bool:
        """Whether ``address`` is inside a network the operator declared shared."""
        parsed = parse_address(address)
        return parsed is not None and any(parsed in network for network in self.shared)
