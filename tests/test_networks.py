"""How a client address is counted (``gateway/networks.py``): pure, so every odd form is tried here; the
guards that use it are tested through the real app in ``tests/test_client_networks.py``."""

from __future__ import annotations

import pytest

from gateway.networks import ClientNetworks, parse_networks


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),  # IPv4 /32: the address itself, as before (stored keys unchanged)
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped: its IPv4 address
        ("203.0.113.7:51234", "203.0.113.7"),  # a port a proxy appended
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::9]:443", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),  # a zone is not part of the network
        (" 2001:db8:1:2::1 ", "2001:db8:1:2::/64"),
        ("not an address", "not an address"),  # kept as it is: never an error
        ("", ""),
        ("[::1", "[::1"),
    ],
)
def test_an_address_is_counted_by_its_network(address: str, key: str) -> None:
    assert ClientNetworks().key(address) == key


def test_the_prefix_lengths_are_the_operators() -> None:
    networks = ClientNetworks(ipv4_prefix=24, ipv6_prefix=128)
    assert networks.key("203.0.113.7") == networks.key("203.0.113.200") == "203.0.113.0/24"
    assert networks.key("2001:db8::1") == "2001:db8::1" != networks.key("2001:db8::2")


def test_a_declared_shared_network_holds_its_addresses_mapped_or_not() -> None:
    networks = ClientNetworks(shared=parse_networks("198.51.100.0/28, 2001:db8:5::/48"))
    assert networks.is_shared("198.51.100.7") and networks.is_shared("::ffff:198.51.100.7")
    assert networks.is_shared("2001:db8:5:ffff::1")
    assert not networks.is_shared("198.51.100.16") and not networks.is_shared("garbage")
    assert networks.key("198.51.100.7") != networks.key("198.51.100.8")  # not merged: each keeps its own count
