"""The store's Redis URLs (gateway/store/redis_url.py): the Sentinel form read in one place, its mistakes named
without the URL (it may hold a password), and the settings refusing what cannot work."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.store.redis_url import SentinelURL, is_redis, is_sentinel, where
from gateway.store.waiting import where as waiting_where

SECRET = "s3cret-pa55"


def test_the_sentinels_the_service_and_the_options_of_each_side() -> None:
    url = SentinelURL.parse(f"redis+sentinel://:{SECRET}@h1:26380,h2,10.0.0.3:26381/helpline?db=2&socket_timeout=3")
    assert url.sentinels == (("h1", 26380), ("h2", 26379), ("10.0.0.3", 26381))
    assert url.service == "helpline"
    assert not url.tls
    assert url.redis_options == {"password": SECRET, "db": 2, "socket_timeout": 3.0}
    assert url.sentinel_options == {"password": SECRET, "socket_timeout": 3.0}  # no db: a Sentinel has none


def test_the_sentinels_own_password_or_none() -> None:
    own = SentinelURL.parse(f"redis+sentinel://user:{SECRET}@h1/helpline?sentinel_password=other&sentinel_username=s")
    assert own.redis_options == {"username": "user", "password": SECRET}
    assert own.sentinel_options == {"username": "s", "password": "other"}
    none = SentinelURL.parse(f"redis+sentinel://:{SECRET}@h1/helpline?sentinel_password=")
    assert none.sentinel_options == {}
    assert none.redis_options == {"password": SECRET}


def test_tls_to_both_sides_with_redis_pys_options() -> None:
    url = SentinelURL.parse("rediss+sentinel://h1:26379/helpline?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem")
    assert url.tls
    assert url.redis_options == url.sentinel_options == {"ssl_cert_reqs": "none", "ssl_ca_certs": "/etc/ca.pem"}


def test_which_urls_are_redis() -> None:
    for url in ("redis://h/0", "rediss://h/0", "unix:///run/r.sock", "redis+sentinel://h/s", "rediss+sentinel://h/s"):
        assert is_redis(url)
    assert not is_redis("sqlite:///var/gateway.sqlite3")
    assert is_sentinel("redis+sentinel://h/s") and not is_sentinel("redis://h/0")


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (f"redis+sentinel://:{SECRET}@h1:26379", "names the primary's service"),
        (f"redis+sentinel://:{SECRET}@h1:26379/", "names the primary's service"),
        (f"redis+sentinel://:{SECRET}@h1:26379/mymaster/0", "names the primary's service"),
        (f"redis+sentinel://:{SECRET}@h1:26379,,h2/mymaster", "separated by commas, none empty"),
        (f"redis+sentinel://:{SECRET}@h1:port/mymaster", "port is not a number"),
        (f"redis+sentinel://:{SECRET}@h1:99999/mymaster", "port is not a number"),
        (f"redis+sentinel://:{SECRET}@h1/mymaster?db=zero", "'db'"),
    ],
)
def test_a_mistake_is_named_without_the_password(url: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SentinelURL.parse(url)
    assert named in str(raised.value)
    assert SECRET not in str(raised.value)
    with pytest.raises(ConfigError) as raised:  # at start-up: the variable named
        Settings(store=url)
    assert "GATEWAY_STORE" in str(raised.value) and named in str(raised.value)
    assert SECRET not in str(raised.value)


@given(st.text(max_size=80))
def test_any_text_after_the_scheme_is_read_or_refused_clearly(rest: str) -> None:
    try:
        url = SentinelURL.parse("redis+sentinel://" + rest)
    except ConfigError:
        return
    assert url.sentinels and url.service


def test_a_sentinel_url_with_the_cluster_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_REDIS_CLUSTER needs a redis:// URL"):
        Settings(store="redis+sentinel://h1/helpline", redis_cluster=1)


def test_settings_accept_the_sentinel_forms() -> None:
    for url in ("redis+sentinel://h1:26379,h2:26379,h3:26379/helpline?db=0", "rediss+sentinel://h1/helpline"):
        assert Settings(store=url).store == url


def test_where_never_names_a_password() -> None:
    url = f"redis+sentinel://user:{SECRET}@h1,h2:26380/helpline?sentinel_password={SECRET}"
    assert where(url) == waiting_where(url) == "redis+sentinel service helpline via h1:26379,h2:26380"
    assert SECRET not in repr(SentinelURL.parse(url))
    assert where(f"redis://:{SECRET}@h1:6380/0") == "redis h1:6380"
