"""The client's address behind a reverse proxy: a header believed from the declared proxies only, read from its
right end (``gateway/proxies.py``)."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.proxies import ClientAddresses
from gateway.settings import Settings

BEHIND = ClientAddresses.of("X-Forwarded-For", "10.0.0.0/24, 2001:db8:9::/64")


def test_a_header_from_a_declared_proxy_names_the_client() -> None:
    assert BEHIND.client("10.0.0.7", "198.51.100.4") == "198.51.100.4"
    assert BEHIND.client("2001:db8:9::2", "2001:db8:1:2::5") == "2001:db8:1:2::5"
    assert BEHIND.client("10.0.0.7", None) == "10.0.0.7"  # no header: the proxy itself (a health check)


def test_a_header_from_anyone_else_is_only_words_the_peer_is_the_client() -> None:
    """A troll talking to the gateway directly cannot take a new address for each request."""
    assert BEHIND.client("203.0.113.9", "198.51.100.4") == "203.0.113.9"
    assert ClientAddresses.of("", "10.0.0.0/24").client("10.0.0.7", "198.51.100.4") == "10.0.0.7"  # no header set


def test_the_client_is_the_first_address_from_the_right_that_is_not_a_proxy_of_ours() -> None:
    """Each proxy appends the address it saw: what lies left of the first untrusted hop was written by the client."""
    assert BEHIND.client("10.0.0.7", "1.2.3.4, 198.51.100.4") == "198.51.100.4"  # "1.2.3.4": the client's own words
    assert BEHIND.client("10.0.0.7", "1.2.3.4, 198.51.100.4, 10.0.0.3") == "198.51.100.4"  # two proxies of ours
    assert BEHIND.client("10.0.0.7", "10.0.0.9, 10.0.0.3") == "10.0.0.9"  # every hop ours: the first saw the client
    assert BEHIND.client("10.0.0.7", "[2001:db8:1:2::5]:443") == "[2001:db8:1:2::5]:443"  # keyed by its network later
    assert BEHIND.client("10.0.0.7", " , ") == "10.0.0.7"


def test_a_proxy_is_trusted_only_when_a_header_is_configured() -> None:
    assert BEHIND.trusted("10.0.0.7") and BEHIND.trusted("::ffff:10.0.0.7")
    assert not BEHIND.trusted("10.0.1.7") and not BEHIND.trusted("not an address")
    assert not ClientAddresses.of("", "10.0.0.0/24").trusted("10.0.0.7")


def test_the_default_trusts_a_proxy_on_the_same_host_and_a_bad_network_is_a_config_error(settings: Settings) -> None:
    addresses = settings.replace(client_address_header="X-Forwarded-For").client_addresses()
    assert addresses.trusted("127.0.0.1") and addresses.trusted("::1") and not addresses.trusted("192.0.2.1")
    with pytest.raises(ConfigError, match=r"GATEWAY_TRUSTED_PROXIES: 'proxy\.local' is not a network"):
        settings.replace(trusted_proxies="10.0.0.0/8,proxy.local")
