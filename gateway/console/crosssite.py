"""The console's defence against other sites: who may call the API and open the live socket (and the web
chat's routes that need it: :func:`own_pages_only`).

A listener's browser sends its session cookie with every request to the gateway, whichever page asked for it
(SameSite=Strict only keeps other *sites* out: a page on another port of the same host counts as the same site).
So every state-changing call (any method but GET and HEAD) and every websocket of the console is checked:

* **Origin**: when the browser says which page sent the request (it always does for a cross-origin POST, a
  ``fetch`` and a websocket), that origin must be the gateway's own: the origin of ``GATEWAY_PUBLIC_URL``, one of
  ``GATEWAY_CONSOLE_ORIGINS``, or the one the request was addressed to (``Host``) when that is an address
  (``127.0.0.1``, ``[::1]``, any IP) or ``localhost``: ``make run`` reached as the README says or as
  ``localhost``, the tests' servers. A *name* in ``Host`` is never taken for ours: a page of another site whose
  name its owner makes resolve to the gateway (DNS rebinding) sends that name in both ``Origin`` and ``Host``;
  until 2026-12-07 it passed (its visitors' browsers opened web chats, its login answered). An address cannot be
  rebound: a page of ``http://192.0.2.7:8080`` is the one that address and port serve. Anything else, ``null``
  included, gets 403 ``cross_site``.
* **JSON only**: every POST, with or without a body, must say ``Content-Type: application/json``. An HTML form can
  only send ``application/x-www-form-urlencoded``, ``multipart/form-data`` or ``text/plain``, and a script of
  another origin cannot set that type without the browser asking first (CORS preflight, which the gateway never
  grants): a request without an ``Origin`` header (an old browser, a plugin) is still stopped. 415 otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str) -> str:
    """``https://Example.org:443/path`` → ``https://example.org``: scheme, host, port unless the default; ``""``
    for what is none (no scheme or host, a port out of range, what the URL parser cannot split: a bracket left
    open, not an IPv6 address inside). Until 2026-12-07 the parser's ValueError escaped: a client's ``Origin`` or
    ``Host`` of ``http://[`` was a 503 and an ERROR line on every route checked here."""
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return ""
    if not scheme or not host:
        return ""
    default = {"http": 80, "https": 443}.get(scheme)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def unbindable(origin: str) -> bool:
    """Whether ``origin`` (as :func:`origin_of` gives it) names its host by an address or as ``localhost``: what no
    DNS answer can make another site's page (:class:`CrossSite`)."""
    host = urlsplit(origin).hostname or ""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class CrossSite:
    def __init__(self, public_url: str, console_origins: Iterable[str] = ()) -> None:
        self.allowed = frozenset(origin_of(url) for url in (public_url, *console_origins))

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when the request may go on; else the answer that refuses it."""
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method in SAFE_METHODS and not websocket:
            return None
        origin = request.headers.get("Origin")
        if origin is not None and not self.allowed_origin(origin, request):
            return _error(403, "cross_site", "this request comes from another site's page")
        if request.method == "POST" and request.content_type != "application/json":
            return _error(415, "bad_request", "send JSON (Content-Type: application/json), even without a body")
        return None

    def allowed_origin(self, origin: str, request: web.Request) -> bool:
        """``origin`` is the gateway's own (one that is none, ``""``, never is: ``null`` included): an allowed one,
        or the request's own (``Host``) when that is an address or ``localhost`` (:func:`unbindable`)."""
        said = origin_of(origin)
        if not said or said in self.allowed:
            return bool(said)
        return said == origin_of(f"{request.scheme}://{request.host}") and unbindable(said)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def own_pages_only(handler: Handler, cross_site: CrossSite, refused: Callable[[], None]) -> Handler:
    """The web chat's routes that a page of another site could call through a visitor's browser (its socket, which
    opens a conversation without any token; its upload and its quick exit's beacon): refused 403 ``cross_site`` when
    the browser says the request comes from another origin than the gateway's own (the chat page, and the widget's
    frame, are always served by the gateway). Else a troll's page, a forum post or an ad opening the socket and
    typing a danger phrase would make each of its visitors a "young person at risk" in the queue, each counted on
    their own network's limits. A request without ``Origin`` (not a browser's page) goes on to the usual guards."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and not cross_site.allowed_origin(origin, request):
            refused()
            return _error(403, "cross_site", "this request comes from another site's page")
        return await handler(request)

    return guarded


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)
