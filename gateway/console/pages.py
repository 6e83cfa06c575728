"""The console's pages: ``/console`` (queue and conversations), ``/console/supervision`` (supervisors),
``/console/login`` and their static files under ``/console/static/``.

Pages are static HTML driven by plain JavaScript over the listener API; nothing a young person wrote is ever
put into HTML on the server or in the browser (the scripts use ``textContent``). A strict Content Security
Policy allows only this origin's scripts and styles. Without a session, a page redirects to the login page;
while no account exists, the login page says how to create the first one.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from gateway.console.api import ListenerAPI
from gateway.store import ListenerStore

STATIC = resources.files("gateway") / "console" / "static"

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ConsolePages:
    def __init__(self, api: ListenerAPI, store: ListenerStore) -> None:
        self.api, self.store = api, store  # the store: is there any account yet (the login page's first-account form)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/console", self.console),
            web.get("/console/", self.console),
            web.get("/console/supervision", self.supervision),
            web.get("/console/login", self.login),
            web.static("/console/static", str(STATIC)),
        ]

    async def console(self, request: web.Request) -> web.StreamResponse:
        if await self.api.listener_for(request) is None:
            raise web.HTTPFound("/console/login")
        return _page("console.html")

    async def supervision(self, request: web.Request) -> web.StreamResponse:
        listener = await self.api.listener_for(request)
        if listener is None:
            raise web.HTTPFound("/console/login")
        if not listener.supervisor:
            raise web.HTTPFound("/console")
        return _page("supervision.html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        first = not await self.store.list_listeners()
        return _page("login.html", {"{{FIRST_ACCOUNT}}": "" if first else "hidden"})


def _page(name: str, values: dict[str, str] | None = None) -> web.Response:
    html = (STATIC / name).read_text(encoding="utf-8")
    for key, value in (values or {}).items():
        html = html.replace(key, value)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)
