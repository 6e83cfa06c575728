"""Who may read ``/metrics``: a client on the machine itself, or the bearer of ``GATEWAY_METRICS_TOKEN``."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.proxies import ClientAddresses
from gateway.ratelimit import client_address


class Scrapers:
    """Who may read ``/metrics``. Its figures name no one, but say when nobody is answering (listeners online 0),
    how long the queue is and how many risky messages came in: an abuser or a troll should not read them (found by a
    red-team review: any visitor could). With ``GATEWAY_METRICS_TOKEN``, only ``Authorization: Bearer <token>``
    (401 otherwise); without it, only a client on this machine (a loopback address, the one a trusted proxy names
    when its header is read): 403 otherwise, saying what to set. Each refusal costs no store read."""

    def __init__(self, token: str, addresses: ClientAddresses) -> None:
        self._token, self._addresses = token.encode(), addresses

    def only(
        self, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            if self._token:
                given = request.headers.get("Authorization", "").encode("utf-8", "replace")
                if not hmac.compare_digest(given, b"Bearer " + self._token):
                    return web.json_response({"error": "unauthorized", "message": "Authorization: Bearer <token>"},
                                             status=401, headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
            elif not _loopback(client_address(request, self._addresses)):
                return web.json_response({"error": "forbidden", "message": "set GATEWAY_METRICS_TOKEN to read the"
                                          " metrics from another machine"}, status=403)  # fmt: skip
            return await handler(request)

        return guarded


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
