"""The store's Redis URLs, read in this one place: which schemes are Redis, and the Sentinel form.

* ``redis://``, ``rediss://`` (TLS), ``unix://``: one Redis (or a node of a Cluster), read by redis-py itself;
* ``redis+sentinel://`` and ``rediss+sentinel://`` (TLS to the Sentinels and to Redis): the primary of a Redis
  watched by Sentinel, found by asking the Sentinels at each new connection (``gateway/store/redis_pool.py``)::

    redis+sentinel://[[user]:password@]host1:26379[,host2:26379,...]/service[?db=0&sentinel_password=...]

The form of the ``limits`` library and Flask-Limiter (``redis+sentinel://host:port,host:port/service_name``): the
Sentinels' addresses (port 26379 when none is given), then the name they monitor the primary under (``sentinel
monitor <name> ...``). The query takes what a ``redis://`` URL's takes (``db``, ``socket_timeout``, ``ssl_ca_certs``,
``ssl_cert_reqs``…: redis-py's own parser reads them, so they mean the same), plus ``sentinel_password`` and
``sentinel_username`` for the Sentinels when theirs differ: the URL's password is sent to both (as ``limits``
does), and ``sentinel_password=`` with nothing after it sends none to the Sentinels (a Sentinel without
``requirepass`` refuses AUTH).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio.connection import parse_url

from gateway.errors import ConfigError

SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", *SCHEMES)
SENTINEL_PORT = 26379
_FOR_SENTINELS = ("sentinel_password", "sentinel_username")


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEMES)


def is_redis(url: str) -> bool:
    """A Redis store's URL, of any form (the store, the rate limits and the CLI ask this)."""
    return url.startswith(REDIS_SCHEMES)


def where(url: str) -> str:
    """Where the store is, for a log line: host and port, socket path, or Sentinel service and Sentinels; never its
    user or password."""
    if is_sentinel(url):
        return SentinelURL.parse(url).where()
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix socket {parts.path}"
    return f"{parts.scheme} {parts.hostname or 'localhost'}:{parts.port or 6379}"


@dataclass(frozen=True)
class SentinelURL:
    """A ``redis+sentinel://`` URL read: where the Sentinels are, the service, and the options of each side's
    connections (redis-py keyword arguments). ``repr`` leaves the options out: they may hold a password."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    tls: bool
    redis_options: dict[str, Any] = field(repr=False)  # db, username, password, socket and TLS options
    sentinel_options: dict[str, Any] = field(repr=False)  # username, password, socket and TLS options

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """ConfigError naming what is wrong (never the URL itself: it may hold a password)."""
        if not is_sentinel(url):
            raise ConfigError("a Sentinel URL starts with redis+sentinel:// or rediss+sentinel://")
        try:
            return cls._parse(url)
        except ValueError:  # urllib's (a bracket that does not close…): its message may quote the URL
            raise ConfigError("a Sentinel URL that cannot be read as a URL: redis+sentinel://host1:26379,"
                              "host2:26379/mymaster?db=0") from None  # fmt: skip

    @classmethod
    def _parse(cls, url: str) -> SentinelURL:
        parts = urlsplit(url)
        tls = parts.scheme == "rediss+sentinel"
        userinfo, _, hosts = parts.netloc.rpartition("@")
        sentinels = tuple(_address(host) for host in hosts.split(","))
        path = parts.path.strip("/")
        if not path or "/" in path:
            raise ConfigError("a Sentinel URL names the primary's service after the hosts, and only that: "
                              "redis+sentinel://host1:26379,host2:26379/mymaster?db=0")  # fmt: skip
        query = parse_qsl(parts.query, keep_blank_values=True)
        for_sentinels = {name: value for name, value in query if name in _FOR_SENTINELS}
        rest = urlencode([(name, value) for name, value in query if name not in _FOR_SENTINELS])
        credentials = userinfo + "@" if userinfo else ""
        try:  # redis-py's reading of a redis:// URL's user, password and query: the same names, the same types
            options: dict[str, Any] = dict(parse_url(f"{'rediss' if tls else 'redis'}://{credentials}sentinel/?{rest}"))
        except ValueError as error:
            raise ConfigError(f"a Sentinel URL's query is not valid: {error}") from None  # names the option only
        options.pop("host", None)
        options.pop("connection_class", None)  # ours, chosen by gateway/store/redis_pool.py
        sentinel_options = {k: v for k, v in options.items() if k not in ("db", "username", "password")}
        for name in _FOR_SENTINELS:
            own = name.removeprefix("sentinel_")
            if name in for_sentinels:
                if for_sentinels[name]:
                    sentinel_options[own] = unquote(for_sentinels[name])
            elif options.get(own):
                sentinel_options[own] = options[own]
        return cls(sentinels, unquote(path), tls, options, sentinel_options)

    def where(self) -> str:
        """The service and the Sentinels' addresses, for a log line (no user, no password)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"{'rediss' if self.tls else 'redis'}+sentinel service {self.service} via {hosts}"


def _address(text: str) -> tuple[str, int]:
    if not text:
        raise ConfigError("a Sentinel URL lists its Sentinels as host:port, separated by commas, none empty")
    parts = urlsplit("//" + text)
    try:
        port = parts.port or SENTINEL_PORT
    except ValueError:
        raise ConfigError(f"a Sentinel's port is not a number from 1 to 65535 (host {parts.hostname})") from None
    if not parts.hostname:
        raise ConfigError("a Sentinel URL lists its Sentinels as host:port, separated by commas, none empty")
    return parts.hostname, port
