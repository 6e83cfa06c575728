"""Supervision routes, for supervisors only: the live board (with the service's state a supervisor must see: replies
waiting in the outbox past the alert's threshold, read from the store so that every instance says the same), the
risk flags of the open conversations
(:mod:`gateway.console.flagged`), the figures of a period (JSON and CSV), the current flow as a diagram and the
result of the last reload. Figures come from :mod:`gateway.console.stats`.

The diagram is drawn by Graphviz's ``dot`` (in a thread, cached per flow version); without ``dot`` the SVG
route answers 503 and the console shows the Mermaid text of ``/api/flow/diagram.mmd`` instead. Both texts are made
in a thread of their own too (:func:`~gateway.flowset.in_own_thread`), cached per version: until 2026-12-06 they
were made on the event loop at each request (the Mermaid text uncached), 0.2-0.4 s of it for a flow of 12,000 steps
during which nothing else was answered. A thread refused by the system answers 503, French then English.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from gateway.clock import Clock
from gateway.console import stats
from gateway.console.api import LISTENER, Handler, ListenerAPI, Presence
from gateway.console.flagged import FlaggedRoles, flagged, read_late
from gateway.errors import FlowError, ThreadRefused
from gateway.flows.graph import run_dot, to_dot, to_mermaid
from gateway.flowset import FlowSet, in_own_thread
from gateway.notices.stats import casework_csv, casework_figures
from gateway.outage_log import RETRY_AFTER_SECONDS
from gateway.store import AuditEntry, AuditStore, CaseworkStore, OutboxStore

SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
NO_THREAD = (
    "le schéma n'a pas pu être dessiné (le système refuse un nouveau fil d'exécution) : réessayez dans un moment. /"
    " the diagram could not be drawn (the system refuses a new thread): try again shortly."
)


class SupervisionRoles(stats.StatsRoles, FlaggedRoles, CaseworkStore, AuditStore, OutboxStore, Protocol):
    """What supervision needs of the store: the figures' (conversations, queue), the flags', the casework's, and the
    outbox's oldest undelivered reply."""


class Supervision:
    def __init__(
        self, store: SupervisionRoles, flows: FlowSet, presence: Presence, api: ListenerAPI, *, clock: Clock,
        outbox_alert_seconds: float = 60.0,
    ) -> None:  # fmt: skip
        """``outbox_alert_seconds``: a reply undelivered longer is shown late (``GATEWAY_OUTBOX_ALERT_SECONDS``, the
        threshold of the alert ``gateway/alerts.py`` logs)."""
        self.store, self.flows, self.presence, self.api, self.clock = store, flows, presence, api, clock
        self.outbox_alert_seconds = outbox_alert_seconds
        self._svg: dict[str, bytes] = {}  # the current version's drawings, made once
        self._mmd: dict[str, str] = {}

    def routes(self) -> list[web.RouteDef]:
        only = self._supervisors
        return [
            web.get("/api/supervision", only(self.board)),
            web.get("/api/supervision/flags", only(self.flags)),
            web.get("/api/supervision/read-late", only(self.read_late)),
            web.post("/api/supervision/read-late/{id}/seen", only(self.read_late_seen)),
            web.get("/api/stats", only(self.figures)),
            web.get("/api/stats.csv", only(self.csv)),
            web.get("/api/flow/diagram.svg", only(self.diagram_svg)),
            web.get("/api/flow/diagram.mmd", only(self.diagram_mmd)),
        ]

    def _supervisors(self, handler: Handler) -> Handler:
        return self.api.authed(handler, supervisor=True)

    async def board(self, request: web.Request) -> web.Response:
        now = self.clock()
        live = await stats.live_board(self.store, self.presence.online(), now)
        live["told_closed"] = await self.api.told_closed()  # told the line is closed and where to turn, this wait
        last = self.flows.last_reload.to_dict() if self.flows.last_reload else None
        return web.json_response({"now": now.isoformat(), "live": live, "service": await self._service(now),
                                  "flow": {"version": self.flows.version, "last_reload": last},
                                  **self.api.lines(now)})  # fmt: skip

    async def _service(self, now: datetime) -> dict[str, Any]:
        """What goes wrong beneath the board, the same on every instance: the age of the oldest reply not delivered
        yet (None: none waits), late past the outbox alert's threshold, as the store says it; the background workers
        down or restarting too often on any instance, by name, as their announcements say (``Presence.troubles``)."""
        oldest = await self.store.outbox_oldest_pending()
        age = int(max((now - oldest).total_seconds(), 0.0)) if oldest else None
        alert = self.outbox_alert_seconds
        outbox = {"oldest_seconds": age, "late": age is not None and age > alert, "alert_seconds": int(alert)}
        return {"outbox": outbox, "workers": self.presence.troubles()}

    async def flags(self, request: web.Request) -> web.Response:
        """The open conversations in which a risk was read, and their flagged messages (``console/flagged.py``)."""
        now = self.clock()
        return web.json_response({"now": now.isoformat(), "flagged": await flagged(self.store, self.api.card, now)})

    async def read_late(self, request: web.Request) -> web.Response:
        """The ended conversations in which a risk was read late (``console/flagged.py``, ``read_late``)."""
        now = self.clock()
        return web.json_response({"now": now.isoformat(), "read_late": await read_late(self.store, self.api.card, now)})

    async def read_late_seen(self, request: web.Request) -> web.Response:
        """A supervisor saw it (and did what was to be done): off the list, in the audit log; 404 when not listed
        (another supervisor marked it first, or it was erased)."""
        conversation_id = request.match_info["id"]
        if not await self.store.forget_read_late(conversation_id):
            return web.json_response({"error": "not_found", "message": "not listed"}, status=404)
        found = await self.store.get_conversation(conversation_id)
        await self.store.audit(AuditEntry(self.clock(), request[LISTENER].name, "read_late_seen", conversation_id,
                                          found.pseudonym if found else ""))  # fmt: skip
        return web.json_response({"seen": conversation_id})

    async def _period(self, request: web.Request) -> stats.Period:
        try:
            return stats.parse_period(request.query, self.flows.engine().tz, self.clock())
        except stats.BadPeriod as exc:
            limits = {"max_days": stats.MAX_DAYS, "min_year": stats.MIN_YEAR, "max_year": stats.MAX_YEAR}
            body = json.dumps({"error": "bad_request", "message": str(exc), **limits})  # the console words them
            raise web.HTTPBadRequest(text=body, content_type="application/json") from None

    async def figures(self, request: web.Request) -> web.Response:
        return web.json_response(await self._figures(await self._period(request)))

    async def _figures(self, period: stats.Period) -> dict[str, Any]:
        """The conversations' figures and the notices' and referrals' (``casework``)."""
        figures = await stats.period_figures(self.store, self.flows, period)
        casework = await casework_figures(self.store, self.flows.engine().flow, period.since, period.until,
                                          self.clock())  # fmt: skip
        return {**figures, "casework": casework}

    async def csv(self, request: web.Request) -> web.Response:
        period = await self._period(request)
        figures = await self._figures(period)
        days = f"{period.since.date().isoformat()}_{period.until.date().isoformat()}"
        text = stats.to_csv(figures) + casework_csv(figures["casework"])
        await self.store.audit(AuditEntry(self.clock(), request[LISTENER].name, "export_csv",
                                          "", f"figures {days}"))  # fmt: skip
        return web.Response(
            text=text, content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="stats_{days}.csv"', "Cache-Control": "no-store"},
        )  # fmt: skip

    async def diagram_svg(self, request: web.Request) -> web.Response:
        engine = self.flows.engine()
        svg = self._svg.get(engine.version)
        if svg is None:
            flow = engine.flow
            try:
                svg = await in_own_thread(lambda: run_dot(to_dot(flow), "svg"), name="flows-diagram")
            except FlowError as exc:
                return web.json_response({"error": "no_dot", "message": str(exc)}, status=503)
            except ThreadRefused:
                return _no_thread()
            self._svg = {engine.version: svg}
        return web.Response(body=svg, content_type="image/svg+xml", headers=SVG_HEADERS)

    async def diagram_mmd(self, request: web.Request) -> web.Response:
        engine = self.flows.engine()
        text = self._mmd.get(engine.version)
        if text is None:
            flow = engine.flow
            try:
                text = await in_own_thread(lambda: to_mermaid(flow), name="flows-diagram")
            except ThreadRefused:
                return _no_thread()
            self._mmd = {engine.version: text}
        return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _no_thread() -> web.Response:
    return web.json_response({"error": "no_thread", "message": NO_THREAD}, status=503,
                             headers={"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip
