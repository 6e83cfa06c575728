"""Which address a request comes from: the TCP peer, or, behind a trusted reverse proxy, the client it names.

Behind a reverse proxy or a load balancer every connection comes from the proxy; the proxy names the client in a
header (``GATEWAY_CLIENT_ADDRESS_HEADER``, e.g. ``X-Forwarded-For``). A header is only words a client can write
too: a troll talking to the gateway directly could name a new address in each request and never meet the
per-client guards (the web chat's chats per network, the console's login brake). So the header is believed only
when the TCP peer is one of the proxies the operator declared (``GATEWAY_TRUSTED_PROXIES``, networks; loopback
by default: a proxy on the same host), and it is read from its right end: each proxy appends the address it saw,
so the first address that is not a trusted proxy's, walking leftwards, is the client's (what the leftmost entries
say was written by the client itself and is never believed over it).

A trusted proxy's connections are not the cap of one client network at the TCP level either
(``gateway/connections.py``): it carries every young person's connections; it caps its own clients' (nginx
``limit_conn``, HAProxy ``maxconn``: docs/deployment.md). Addresses are only ever used through a keyed hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.networks import Network, parse_address, parse_networks

LOOPBACK = "127.0.0.0/8,::1/128"


@dataclass(frozen=True)
class ClientAddresses:
    header: str = ""  # the header a trusted proxy names the client in; empty: the TCP peer is the client
    proxies: tuple[Network, ...] = parse_networks(LOOPBACK)

    @classmethod
    def of(cls, header: str, proxies: str) -> ClientAddresses:
        """From the settings' texts; ConfigError naming ``GATEWAY_TRUSTED_PROXIES`` and the item not a network."""
        return cls(header.strip(), parse_networks(proxies, "GATEWAY_TRUSTED_PROXIES"))

    def trusted(self, peer: str) -> bool:
        """Whether ``peer`` is a trusted proxy that names its clients (a header is configured)."""
        parsed = parse_address(peer) if self.header else None
        return parsed is not None and any(parsed in network for network in self.proxies)

    def client(self, peer: str, forwarded: str | None) -> str:
        """The client's address of a request from ``peer`` whose header (``self.header``) says ``forwarded``."""
        if not forwarded or not self.trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            parsed = parse_address(hop)
            if parsed is None or not any(parsed in network for network in self.proxies):
                return hop
        return hops[0] if hops else peer  # every hop a proxy of ours: the first one saw the client
