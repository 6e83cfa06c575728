"""Where the reported content is: URLs validated and normalised, or account handles where no URL exists.

A URL must be http(s), name a real host (a dot, no spaces), carry no user or password, and is normalised so
that two spellings of one location compare equal: scheme and host in lower case, no default port, no
``#fragment``, no tracking parameters (``utm_*``, ``fbclid``, ``igshid``…), spaces percent-encoded. A handle
is ``@name`` (letters, digits, ``.``, ``_``, ``-``). Anything else is refused with a message naming the item.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MAX_LOCATIONS = 20
MAX_LENGTH = 2000
TRACKING = frozenset({"fbclid", "gclid", "igshid", "igsh", "si", "mibextid", "ref_src"})
_HANDLE = re.compile(r"^@[A-Za-z0-9._-]{1,64}$")
_HOST = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


class LocationError(ValueError):
    """A content location that is neither a valid http(s) URL nor an @handle (its message says which);
    ``position``: which one (1 first), None for the list (none given, too many)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        super().__init__(message)


def normalise_locations(values: list[str]) -> tuple[str, ...]:
    """Each location normalised, duplicates dropped, in the order given; LocationError for a bad one."""
    if not values:
        raise LocationError("give at least one location (a URL, or an @handle where there is no URL)")
    if len(values) > MAX_LOCATIONS:
        raise LocationError(f"at most {MAX_LOCATIONS} locations in one notice")
    found = [normalise(value, n + 1) for n, value in enumerate(values)]
    return tuple(dict.fromkeys(found))


def normalise(value: str, position: int = 1) -> str:
    text = value.strip()
    if not text or len(text) > MAX_LENGTH:
        raise LocationError(f"location {position} is empty or longer than {MAX_LENGTH} characters", position)
    if text.startswith("@"):
        if not _HANDLE.match(text):
            raise LocationError(f"location {position}: a handle is @ then letters, digits, '.', '_' or '-'", position)
        return text
    if "://" not in text:
        raise LocationError(f"location {position}: write the whole address (https://…) or an @handle", position)
    return _url(text, position)


def _url(text: str, position: int) -> str:
    parts = urlsplit(text)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme.lower() not in ("http", "https") or not _HOST.match(host):
        raise LocationError(f"location {position}: not an http(s) address with a host name", position)
    if parts.username or parts.password:
        raise LocationError(f"location {position}: an address with a user name or password is refused", position)
    try:
        port = parts.port
    except ValueError:
        raise LocationError(f"location {position}: bad port", position) from None
    scheme = parts.scheme.lower()
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_") and k.lower() not in TRACKING]  # fmt: skip
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    return urlunsplit((scheme, netloc, path, urlencode(query, safe=":/@"), ""))
