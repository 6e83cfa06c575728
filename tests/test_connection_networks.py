"""``gateway serve``'s cap on open connections counts a client network, as the web chat's guards do.

An IPv6 client rotating through the addresses of its own /64 stays one client; an IPv4-mapped peer is its IPv4
address; a network the operator declared shared (a school, a carrier's CGNAT) gets its own, larger cap
(``gateway/connections.py``, ``gateway/networks.py``; docs/security.md, "Shared addresses").

The machine's loopback has one IPv6 address (``::1``), so a real server cannot be reached from distinct addresses
of one IPv6 /64 without changing the host's network (root). The real server is reached from distinct addresses
of ``127.0.0.0/8`` (every one of them is the loopback's on Linux) with ``GATEWAY_CLIENT_IPV4_PREFIX=24``: the
same keying (``ClientNetworks.key``) and the same path through ``_Guarded.connection_made`` as an IPv6 /64;
the IPv6 keys are checked on the guard itself.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp

from gateway.connections import ConnectionGuard
from gateway.metrics import Metrics
from gateway.networks import ClientNetworks, parse_networks
from tests.test_serve import running


def test_the_addresses_of_one_ipv6_64_share_one_cap_and_a_mapped_ipv4_peer_is_its_ipv4_address() -> None:
    guard = ConnectionGuard(max_per_address=64, header_timeout=10, metrics=Metrics(), networks=ClientNetworks())
    rotating = [f"2001:db8:7:1:{n:x}:{n:x}:{n:x}:{n:x}" for n in range(1, 101)]  # 100 addresses of one /64
    admitted = [guard.admit(address) for address in rotating]
    assert sum(network is not None for network in admitted) == 64
    assert {network for network in admitted if network is not None} == {"2001:db8:7:1::/64"}
    assert guard.admit("2001:db8:7:2::1") == "2001:db8:7:2::/64"  # the next /64: another client
    guard.release("2001:db8:7:1::/64")
    assert guard.admit("2001:db8:7:1::ffff") is not None  # one closed: one more of that /64 may open

    assert all(guard.admit("::ffff:198.51.100.7") == "198.51.100.7" for _ in range(63))
    assert guard.admit("198.51.100.7") == "198.51.100.7"
    assert guard.admit("::ffff:198.51.100.7") is None  # the same client whichever form its address takes


def test_a_declared_shared_network_gets_its_own_larger_cap_per_client_network() -> None:
    networks = ClientNetworks(shared=parse_networks("192.0.2.0/24"))
    guard = ConnectionGuard(max_per_address=4, header_timeout=10, metrics=Metrics(), networks=networks,
                            max_per_shared_network=10)  # fmt: skip
    assert sum(guard.admit("192.0.2.9") is not None for _ in range(12)) == 10  # a school's one public address
    assert sum(guard.admit("192.0.2.10") is not None for _ in range(12)) == 10  # a declared range is not one client
    assert sum(guard.admit("203.0.113.5") is not None for _ in range(12)) == 4  # anyone else


def _half_request(source: str, port: int) -> socket.socket:
    """A connection from ``source`` (a loopback address) that has sent part of its request's headers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def _answered(sock: socket.socket) -> bool:
    """The request finished: True when the server answers it, False when it had closed the connection. The
    connection stays open: one closed before the server accepted the others would make room for them."""
    sock.settimeout(30)  # a bound on a busy machine, not a wait: the answer or the close comes at once
    try:
        sock.sendall(b"\r\n")
        return sock.recv(12).startswith(b"HTTP/1.1 200")
    except (ConnectionResetError, BrokenPipeError):
        return False


async def _answered_from(sources: list[str], port: int) -> int:
    """Connections opened from each of ``sources`` in turn, all held open, then finished: how many the server kept."""
    socks = [await asyncio.to_thread(_half_request, source, port) for source in sources]
    try:
        return sum(await asyncio.gather(*(asyncio.to_thread(_answered, sock) for sock in socks)))
    finally:
        for sock in socks:
            sock.close()


async def test_a_real_server_counts_the_distinct_addresses_of_one_client_network_together(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        server.env.update({
            "GATEWAY_CLIENT_IPV4_PREFIX": "24",  # 127.0.1.x is one client network, as an IPv6 /64 is by default
            "GATEWAY_MAX_CONNECTIONS_PER_ADDRESS": "6",
            "GATEWAY_SHARED_NETWORKS": "127.0.2.0/24",
            "GATEWAY_MAX_CONNECTIONS_PER_SHARED_NETWORK": "9",
            "GATEWAY_HTTP_HEADER_TIMEOUT": "120",  # the held connections are not dropped for being slow
        })  # fmt: skip
        server.start()
        async with aiohttp.ClientSession() as http:
            await server.ready(http)  # from 127.0.0.1: another client network
            assert await _answered_from([f"127.0.1.{n}" for n in range(2, 12)], server.port) == 6
            assert await _answered_from([f"127.0.2.{n}" for n in range(2, 14)], server.port) == 9  # declared shared
            assert await _answered_from([f"127.0.3.{n}" for n in range(2, 6)], server.port) == 4  # under its cap
            metrics = await (await http.get(server.url + "/metrics")).text()
            assert 'gateway_connections_refused_total{reason="too_many"} 7.0' in metrics


async def test_a_trusted_proxy_is_not_capped_as_one_client_network_and_anyone_else_still_is(tmp_path: Path) -> None:
    """Behind a reverse proxy every young person's connection comes from the proxy: with a client address header
    configured, the peers of ``GATEWAY_TRUSTED_PROXIES`` are not one client network's cap (before, a 65th
    connection from the proxy was closed at once: the web chat deaf for everybody); any other peer still is."""
    with running(tmp_path) as server:
        server.env.update({
            "GATEWAY_CLIENT_ADDRESS_HEADER": "X-Forwarded-For",
            "GATEWAY_TRUSTED_PROXIES": "127.0.5.0/24",
            "GATEWAY_MAX_CONNECTIONS_PER_ADDRESS": "4",
            "GATEWAY_HTTP_HEADER_TIMEOUT": "120",
        })  # fmt: skip
        server.start()
        async with aiohttp.ClientSession() as http:
            await server.ready(http)
            assert await _answered_from(["127.0.5.2"] * 10, server.port) == 10  # the proxy
            assert await _answered_from(["127.0.6.2"] * 10, server.port) == 4  # a client talking directly
