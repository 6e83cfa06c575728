"""The console's routes for takedown notices and warm referrals (docs/console.md: "Takedown notices", "Warm referrals").

* ``GET /api/casework`` — platforms (e-mail or web form), notice categories (``csam`` ones: never attached),
  partners that take referrals, in the listeners' language.
* ``GET /api/conversations/{id}/notices`` — the conversation's notices (with the ready text for web forms and
  ``overdue`` when the platform is late) and referrals.
* ``POST /api/conversations/{id}/notices`` — ``{platform, category, locations: [...], description,
  evidence: [attachment numbers]}`` → 201, the draft notice(s): a CSAM one comes with its Pharos companion.
* ``POST /api/notices/{nid}/send`` (e-mail platforms), ``POST /api/notices/{nid}/filed`` (web forms),
  ``POST /api/notices/{nid}/status`` ``{status: acknowledged|removed|refused|no_answer, answer}``.
* ``GET /api/notices`` — every notice, for the follow-up list (late ones first).
* ``GET /api/conversations/{id}/referrals/preview?partner=`` — the fields the partner would receive.
* ``POST /api/conversations/{id}/referrals/ask`` ``{partner, id}`` — sends the consent question (``id``: the console's,
  kept for its resends: asked once).
* ``POST /api/conversations/{id}/referrals`` ``{partner, consent: true|false, shared: [[label, value]], summary, id}``
  (``id``: the console's, kept for its resends: a referral recorded under it is answered as it was, not e-mailed again).
* ``POST /api/referrals/{rid}/status`` ``{status: taken_up|closed}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from gateway.clock import Clock
from gateway.console.access import Sight, sight
from gateway.console.api import LISTENER, REPLY_ID, ListenerAPI, action_id, json_body
from gateway.errors import ActionRefused
from gateway.flows.model import Flow
from gateway.flowset import FlowSet
from gateway.notices.compose import compose, not_in_flow, reference
from gateway.notices.record import Evidence, Notice, Referral
from gateway.notices.referrals import Referrals
from gateway.notices.referrals import reference as referral_reference
from gateway.notices.service import Notices
from gateway.store import CaseworkStore, ConversationStore, Listener


class CaseworkRoles(CaseworkStore, ConversationStore, Protocol):
    """What the casework routes read of the store (the notices and referrals services write)."""


class CaseworkAPI:
    def __init__(
        self, api: ListenerAPI, store: CaseworkRoles, flows: FlowSet, notices: Notices, referrals: Referrals, *,
        clock: Clock,
    ) -> None:  # fmt: skip
        self.api, self.store, self.flows = api, store, flows
        self.notices, self.referrals, self.clock = notices, referrals, clock

    def routes(self) -> list[web.RouteDef]:
        a, c, full = self.api.authed, "/api/conversations/{id}", Sight.FULL
        return [
            web.get("/api/casework", a(self.material)),
            web.get("/api/notices", a(self.all_notices)),
            web.get(c + "/notices", a(self.of_conversation, wall=full)),
            web.post(c + "/notices", a(self.create, wall=full)),
            web.post("/api/notices/{nid}/send", a(self.send)),
            web.post("/api/notices/{nid}/filed", a(self.filed)),
            web.post("/api/notices/{nid}/status", a(self.status)),
            web.get("/api/notices/{nid}/evidence/{k}", a(self.evidence)),
            web.get(c + "/referrals/preview", a(self.preview, wall=full)),
            web.post(c + "/referrals/ask", a(self.ask, wall=full)),
            web.post(c + "/referrals", a(self.refer, wall=full)),
            web.post("/api/referrals/{rid}/status", a(self.referral_status)),
        ]

    def _flow(self) -> Flow:
        return self.flows.engine().flow

    async def material(self, request: web.Request) -> web.Response:
        flow = self._flow()
        lang = flow.default_language
        return web.json_response({
            "enabled": flow.notices is not None,
            "platforms": [{"id": k, "name": p.name, "by": "email" if p.email else "form", "form": p.form,
                           "response_hours": p.response_hours} for k, p in flow.platforms.items()],
            "categories": [{"id": k, "label": c.label.get(lang, k), "csam": c.csam}
                           for k, c in flow.notice_categories.items()],
            "partners": [{"id": k, "name": p.name.get(lang, k)} for k, p in flow.partners.items() if p.referral],
        })  # fmt: skip

    async def all_notices(self, request: web.Request) -> web.Response:
        """Every notice for a supervisor; for a listener, those of the conversations they see in full."""
        now, flow, listener = self.clock(), self._flow(), request[LISTENER]
        notices = await self.store.list_notices()
        if not listener.supervisor:
            seen: dict[str, bool] = {}
            for conversation_id in {n.conversation_id for n in notices}:
                seen[conversation_id] = await self._sees(listener, conversation_id)
            notices = [n for n in notices if seen[n.conversation_id]]
        shown = [self._notice(n, flow, now) for n in notices]
        shown.sort(key=lambda n: (not n["overdue"], n["status"] not in ("sent", "acknowledged"), n["created_at"]))
        return web.json_response({"notices": shown})

    async def of_conversation(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["id"]
        notices = await self._shown(await self.store.list_notices(conversation_id))
        referrals = [_referral(r) for r in await self.store.list_referrals(conversation_id)]
        return web.json_response({"notices": notices, "referrals": referrals})

    async def create(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        locations, evidence = body.get("locations") or [], body.get("evidence") or []
        strings = {k: body.get(k, "") for k in ("platform", "category", "description")}
        if (not all(isinstance(v, str) for v in strings.values()) or not _list_of(locations, str)
                or not _list_of(evidence, int)):  # fmt: skip
            raise ActionRefused("bad_request", "a notice needs platform, category, locations (a list), description"
                                               " and evidence (attachment numbers)")  # fmt: skip
        made = await self.notices.create(
            request.match_info["id"], request[LISTENER].name, str(strings["platform"]), str(strings["category"]),
            list(locations), str(strings["description"]), list(evidence),
        )  # fmt: skip
        return web.json_response({"notices": await self._shown(made)}, status=201)

    async def send(self, request: web.Request) -> web.Response:
        await self._notice_wall(request)
        notice = await self.notices.send(request.match_info["nid"], request[LISTENER].name)
        return web.json_response((await self._shown([notice]))[0])

    async def filed(self, request: web.Request) -> web.Response:
        await self._notice_wall(request)
        notice = await self.notices.mark_filed(request.match_info["nid"], request[LISTENER].name)
        return web.json_response((await self._shown([notice]))[0])

    async def status(self, request: web.Request) -> web.Response:
        await self._notice_wall(request)
        body = await json_body(request)
        status, answer = body.get("status"), body.get("answer", "")
        if not isinstance(status, str) or not isinstance(answer, str):
            raise ActionRefused("bad_request", "give a status (and optionally the platform's answer)")
        notice = await self.notices.update(request.match_info["nid"], request[LISTENER].name, status, answer)
        return web.json_response((await self._shown([notice]))[0])

    async def evidence(self, request: web.Request) -> web.Response:
        """A copy of one evidence file (to upload by hand on a platform's web form); 404 once deleted."""
        await self._notice_wall(request)
        files = await self.store.get_evidence(request.match_info["nid"])
        k = request.match_info["k"]
        if not (k.isascii() and k.isdigit() and len(k) <= 9) or int(k) >= len(files):  # "²" is no int: not a 500
            raise ActionRefused("not_found", "no such evidence file (or deleted after the retention)")
        found = files[int(k)]
        headers = {
            "Content-Disposition": f'attachment; filename="{found.name}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        }
        return web.Response(body=found.data, content_type="application/octet-stream", headers=headers)

    async def _sees(self, listener: Listener, conversation_id: str) -> bool:
        conversation = await self.store.get_conversation(conversation_id)
        return conversation is not None and sight(listener, conversation) == Sight.FULL

    async def _wall(self, request: web.Request, conversation_id: str) -> None:
        """The access walls (console/access.py) for a route about a notice or a referral: its conversation must
        be one the listener sees in full (a supervisor sees every one)."""
        listener = request[LISTENER]
        if not listener.supervisor and not await self._sees(listener, conversation_id):
            raise ActionRefused("forbidden", "this conversation is not yours to see (another listener holds it)")

    async def _notice_wall(self, request: web.Request) -> None:
        notice = await self.store.get_notice(request.match_info["nid"])
        if notice is not None:  # else the service's own "not found"
            await self._wall(request, notice.conversation_id)

    async def _shown(self, notices: list[Notice]) -> list[dict[str, Any]]:
        """Notices as the console shows them, a web-form one with its ready text and its evidence files' names."""
        now, flow, shown = self.clock(), self._flow(), []
        for notice in notices:
            platform = flow.platforms.get(notice.platform)
            files = await self.store.get_evidence(notice.id) if platform and platform.form else None
            shown.append(self._notice(notice, flow, now, files=files))
        return shown

    def _notice(
        self, notice: Notice, flow: Flow, now: datetime, *, files: list[Evidence] | None = None
    ) -> dict[str, Any]:
        platform = flow.platforms.get(notice.platform)
        due = notice.due_at(platform.response_hours) if platform else None
        shown: dict[str, Any] = {
            "id": notice.id, "reference": reference(notice), "conversation_id": notice.conversation_id,
            "pseudonym": notice.pseudonym, "platform": notice.platform, "form": platform.form if platform else None,
            "platform_name": platform.name if platform else notice.platform,
            "category": notice.category, "csam": notice.csam, "locations": list(notice.locations),
            "description": notice.description, "evidence": list(notice.evidence), "status": notice.status.value,
            "linked": notice.linked, "answer": notice.answer, "created_by": notice.created_by,
            "created_at": notice.created_at.isoformat(), "sent_at": _iso(notice.sent_at),
            "closed_at": _iso(notice.closed_at), "told_at": _iso(notice.told_at), "due_at": _iso(due),
            "overdue": due is not None and due <= now, "evidence_deleted": notice.evidence_deleted_at is not None,
        }  # fmt: skip
        shown["files"] = [f.name for f in files or []]
        shown["not_in_flow"] = gone = not_in_flow(notice, flow)  # removed by a reload: shown as recorded
        if files is not None and flow.notices is not None and not gone:
            shown["text"] = compose(notice, flow, files).text  # for the web form; the files are uploaded by hand
        return shown

    async def preview(self, request: web.Request) -> web.Response:
        conversation = await self.store.get_conversation(request.match_info["id"])
        if conversation is None:
            raise ActionRefused("not_found", "no such conversation")
        partner = request.query.get("partner", "")
        return web.json_response({"shared": [list(p) for p in self.referrals.preview(conversation, partner)]})

    async def ask(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        partner, key = body.get("partner"), action_id(body)  # ``id``: the console's, kept for its resends
        if not isinstance(partner, str):
            raise ActionRefused("bad_request", "'partner' is required")
        await self.referrals.ask(request.match_info["id"], request[LISTENER].name, partner, key)
        return web.Response(status=204)

    async def refer(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        partner, consent, shared, summary = (body.get(k) for k in ("partner", "consent", "shared", "summary"))
        pairs, key = (shared if isinstance(shared, list) else []), body.get("id")
        if (not isinstance(partner, str) or not isinstance(consent, bool) or not isinstance(summary or "", str)
                or not all(_list_of(p, str) and len(p) == 2 for p in pairs)
                or not (key is None or (isinstance(key, str) and REPLY_ID.fullmatch(key)))):  # fmt: skip
            raise ActionRefused("bad_request", "a referral needs partner, consent (true or false), shared pairs,"
                                               " a summary, and an id of up to 64 letters, digits, - or _")  # fmt: skip
        referral = await self.referrals.refer(
            request.match_info["id"], request[LISTENER].name, partner, consent,
            [(str(p[0]), str(p[1])) for p in pairs], str(summary or ""), key,
        )  # fmt: skip
        return web.json_response(_referral(referral), status=201)

    async def referral_status(self, request: web.Request) -> web.Response:
        referral = await self.store.get_referral(request.match_info["rid"])
        if referral is not None:
            await self._wall(request, referral.conversation_id)
        status = (await json_body(request)).get("status")
        if not isinstance(status, str):
            raise ActionRefused("bad_request", "'status' is required")
        referral = await self.referrals.update(request.match_info["rid"], request[LISTENER].name, status)
        return web.json_response(_referral(referral))


def _referral(referral: Referral) -> dict[str, Any]:
    return {
        "id": referral.id, "reference": referral_reference(referral), "partner": referral.partner,
        "consent": referral.consent, "status": referral.status.value, "shared": [list(p) for p in referral.shared],
        "summary": referral.summary, "created_by": referral.created_by, "created_at": referral.created_at.isoformat(),
        "sent_at": _iso(referral.sent_at), "closed_at": _iso(referral.closed_at),
    }  # fmt: skip


def _list_of(value: object, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
