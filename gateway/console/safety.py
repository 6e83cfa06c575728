"""The console's tools against abuse: blocking a sender, lifting blocks, closing a flood, the audit log.

* ``POST /api/conversations/{id}/block`` (any listener): ``{"duration": "24h" | "30d" | "permanent", "reason"}``.
  The block is kept under the keyed hash of the conversation's channel identity (:meth:`Gate.sender_key`), never
  the identity; the sender's next messages stop at the gate with the neutral ``blocked`` notice.
* ``GET /api/blocks`` and ``DELETE /api/blocks/{key}`` (supervisors): the blocks in force, and lifting one.
* ``GET /api/floods`` (supervisors): the conversations waiting for a listener or still in the bot, each with a
  label of its client (the same label for the same web chat address: a flood shows as one label many times), and
  whether it is at risk (``"flagged"``, and ``"risk"``: the class its words were flagged for, else the interrupt or
  rule of its alert, ``Conversation.risk_reason``, or None; never a word).
* ``POST /api/floods/close`` (supervisors): ``{"ids": [...]}`` closes those conversations at once; each young
  person gets the usual ``ended`` message. Each close is an ending as the idle close is (``leaving.close_in_bulk``:
  the conversation's batch, listed as begun, its goodbye's id derived from the conversation and the bulk close),
  so one cut short on Redis is completed by the alert check, told once. One whose ending (an idle close,
  "Terminer", a quick exit, a bulk close cut short) is listed as begun (``gateway/leaving.py``) is skipped, as
  ``Actions.close`` refuses it: the alert check completes that ending. A conversation **at risk** (its young person's
  words flagged by the keywords or the model, ``Conversation.flag``, an urgent hand-off, or an alert: a referring
  interrupt without a risk class, a rule's hand-off at "high", ``Conversation.alert``: :func:`at_risk`) is
  **kept** (not closed, nothing told) unless the body says ``"include_flagged": true`` (a bool if present, else 400):
  a supervisor clearing a troll's flood never closes by accident a young person at risk who was in the list; the page
  shows each one kept and offers a second, explicit button (after a confirmation) that closes those too. Both checks
  are read under the conversation's lock, at the close: one flagged after the page loaded is kept too.
  ``{"closed": n, "ending": m, "flagged_kept": k, "flagged_kept_ids": [...]}``: how many were closed, how many
  skipped as ending, how many kept as at risk and which (the ids the page sends again to close them deliberately).
  The ``bulk_close`` audit line counts the ones at risk kept or closed (counts only, never a text); a
  ``bulk_close_asked`` line before the first close says who asked for which ids (a cut request keeps it).
* ``POST /api/conversations/{id}/erase`` (supervisors): erase everything about the young person of this
  conversation (``gateway/erasure.py``): ``{"confirm": true}`` is required, the console asks first.
* ``GET /api/audit`` (supervisors): who blocked, unblocked, bulk-closed, erased, purged, exported, which login was
  locked; never a text.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from aiohttp import web

from gateway import leaving
from gateway.clock import Clock
from gateway.console.access import Sight
from gateway.console.api import LISTENER, Handler, ListenerAPI, json_body
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.erasure import Eraser
from gateway.flowset import FlowSet
from gateway.gate import Gate
from gateway.store import (
    AuditEntry,
    AuditStore,
    BatchStore,
    Block,
    BlockStore,
    ConversationStore,
    LockStore,
    QueueStore,
    TimerStore,
    TranscriptStore,
)
from gateway.store.codec import decoded_in_parts

DURATIONS: dict[str, timedelta | None] = {"24h": timedelta(hours=24), "30d": timedelta(days=30), "permanent": None}
REASON_MAX = 200
BULK_MAX = 500


class SafetyRoles(
    AuditStore, BlockStore, ConversationStore, LockStore, QueueStore, BatchStore, TimerStore, TranscriptStore, Protocol
):  # fmt: skip
    """What blocks, the flood view and the audit log need of the store (the queue's: the endings listed as begun,
    which the bulk close skips; a batch, the timers and the transcript: the bulk close is an ending,
    ``leaving.close_in_bulk``)."""


class Safety:
    def __init__(
        self, store: SafetyRoles, dispatcher: Dispatcher, flows: FlowSet, gate: Gate, api: ListenerAPI, eraser: Eraser,
        *, clock: Clock,
    ) -> None:  # fmt: skip
        self.store, self.dispatcher, self.flows, self.gate, self.api = store, dispatcher, flows, gate, api
        self.eraser, self.clock = eraser, clock

    def routes(self) -> list[web.RouteDef]:
        only = self._supervisors
        return [
            web.post("/api/conversations/{id}/block", self.api.authed(self.block, wall=Sight.CARD)),
            web.get("/api/blocks", only(self.blocks)),
            web.delete("/api/blocks/{key}", only(self.unblock)),
            web.get("/api/floods", only(self.floods)),
            web.post("/api/floods/close", only(self.close_many)),
            web.post("/api/conversations/{id}/erase", only(self.erase)),
            web.get("/api/audit", only(self.audit)),
        ]

    def _supervisors(self, handler: Handler) -> Handler:
        return self.api.authed(handler, supervisor=True)

    def _now(self) -> datetime:
        return self.clock()

    # ----- blocks -----------------------------------------------------------------------------------------

    async def block(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        duration, reason = body.get("duration"), body.get("reason")
        known = isinstance(duration, str) and duration in DURATIONS  # a list or an object is no duration (not a 500)
        if not known or not isinstance(reason, str) or not 0 < len(reason.strip()) <= REASON_MAX:
            message = f"a block needs a duration (24h, 30d, permanent) and a reason of at most {REASON_MAX} characters"
            return _error(400, "bad_request", message)
        conversation = await self.store.get_conversation(request.match_info["id"])
        if conversation is None:
            return _error(404, "not_found", "no such conversation")
        now, length = self._now(), DURATIONS[str(duration)]
        block = Block(
            key=self.gate.sender_key(conversation.channel, conversation.sender), channel=conversation.channel,
            until=None if length is None else now + length, reason=reason.strip(), by=request[LISTENER].name,
            at=now, pseudonym=conversation.pseudonym,
        )  # fmt: skip
        kept = await self.store.get_block(block.key, now)
        if kept is not None and _same(kept, block):  # sent again (its answer lost, a second tab): answered as made
            return web.json_response(_block(kept), status=201)
        await self.store.put_block(block)
        await self._audit(request, "block", block.key, f"{duration} ({conversation.pseudonym}): {block.reason}")
        return web.json_response(_block(block), status=201)

    async def blocks(self, request: web.Request) -> web.Response:
        return web.json_response({"blocks": [_block(b) for b in await self.store.list_blocks(self._now())]})

    async def unblock(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if not await self.store.remove_block(key):
            return _error(404, "not_found", "no such block")
        await self._audit(request, "unblock", key, "")
        return web.Response(status=204)

    # ----- floods -----------------------------------------------------------------------------------------

    async def floods(self, request: web.Request) -> web.Response:
        open_ = [*await self.store.conversations_by_status(Status.QUEUED),
                 *await self.store.conversations_by_status(Status.BOT)]  # fmt: skip
        return web.json_response({"conversations": await flood_rows(open_, self._now())})

    async def close_many(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        ids, include_flagged = body.get("ids"), body.get("include_flagged", False)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not 0 < len(ids) <= BULK_MAX:
            return _error(400, "bad_request", f"ids: a list of 1 to {BULK_MAX} conversation ids")
        if not isinstance(include_flagged, bool):
            return _error(400, "bad_request", "include_flagged: true or false")
        asked = list(dict.fromkeys(ids))
        # Written first: cut short after some closes, the check completes them (``bulk_close_completed``, by the
        # gateway) and the result's line below is never written; this one still says who asked for what.
        more = f" (+{len(asked) - 20})" if len(asked) > 20 else ""
        flagged = "flagged at risk included" if include_flagged else "flagged at risk kept"
        await self._audit(request, "bulk_close_asked", ", ".join(asked[:20]) + more,
                          f"{len(asked)} conversations asked, {flagged}")  # fmt: skip
        closed: list[str] = []
        kept: list[str] = []
        ending = flagged_closed = 0
        for conversation_id in asked:
            done, skipped = await self._close(conversation_id, include_flagged=include_flagged)
            ending += skipped == "ending"
            if skipped == "flagged":
                kept.append(conversation_id)
            if done is not None:
                closed.append(done.pseudonym)
                flagged_closed += at_risk(done)
        if closed:
            self.dispatcher.kick_outbox()  # the outbox may have looked before the batches' writes were made
        if closed or kept:
            detail = ", ".join([
                f"{len(closed)} conversations closed",
                *([f"{flagged_closed} flagged at risk among them"] if flagged_closed else []),
                *([f"{len(kept)} flagged at risk kept"] if kept else []),
                *([f"{ending} already ending"] if ending else []),
            ])  # fmt: skip
            await self._audit(request, "bulk_close", ", ".join(closed[:20]), detail)
        return web.json_response(
            {"closed": len(closed), "ending": ending, "flagged_kept": len(kept), "flagged_kept_ids": kept}
        )

    async def _close(
        self, conversation_id: str, *, include_flagged: bool
    ) -> tuple[Conversation | None, Literal["ending", "flagged"] | None]:
        """Close one waiting (or still-in-the-bot) conversation: the conversation closed (None if it was not open or
        was skipped), and why it was skipped, if it was:

        * ``"ending"``: its ending is listed as begun (``store.leavings_begun``: an idle close, "Terminer", a quick
          exit or a bulk close cut short on Redis, maybe after its goodbye; the alert check completes it): not closed,
          nothing told, as ``Actions.close`` refuses it since rel31 (never a second goodbye; a bulk close made again
          after its request failed finds its own cut close listed).
        * ``"flagged"``: it is at risk (:func:`at_risk`) and ``include_flagged`` is false: kept, nothing told (since
          rel36). A supervisor clearing a troll's flood of hundreds does not close by accident a young person at risk
          who was in it; the page offers to close the ones kept deliberately.

        The close is an ending (``leaving.close_in_bulk``, since rel34), in the conversation's batch (``locked_batch``:
        one SQLite transaction; on Redis the pipelines of the other endings): listed as begun first, the ``ended``
        goodbye with an id derived from the conversation and the bulk close, the queue step, the record
        (``closed_in_bulk``), unlisted. Cut short anywhere, the alert check completes it as that ending (audited
        ``bulk_close_completed``), no take meanwhile. Before rel34 it was none of these: cut, the goodbye stayed
        pending for good, or the young person waited on, takeable, after it, or was put back in line by the check.

        The list is read under the conversation's lock, once a conversation: an ending lists itself under that lock
        (``leaving._ending``) and unlists itself with its record, so this read sees exactly the endings begun and not
        completed. Read once for the whole request, before the first lock, it would miss one begun after it: the idle
        timer firing for a conversation further down the list, its pipeline cut after its goodbye, the lock then freed
        (its release made again, or lapsed) before this close reaches it (a bulk close of hundreds takes seconds). One
        ``HGETALL`` of a short list a conversation still open, beside the close's own round trips. The risk is read
        the same way, on the record read under the lock: a message (or a model's late reading) flags a conversation
        under that same lock (``Dispatcher._process``, ``Dispatcher.apply_late``), so one flagged after the page
        loaded, or while the close went through the ones before it, is kept."""
        async with self.store.locked_batch(conversation_id):
            conversation = await self.store.get_conversation(conversation_id)
            if conversation is None or conversation.status not in (Status.QUEUED, Status.BOT):
                return None, None
            if conversation_id in await self.store.leavings_begun():
                return None, "ending"
            if at_risk(conversation) and not include_flagged:
                return None, "flagged"
            await leaving.close_in_bulk(self.dispatcher, self.store, conversation, self._now())
            return conversation, None

    # ----- erasure ----------------------------------------------------------------------------------------

    async def erase(self, request: web.Request) -> web.Response:
        if (await json_body(request)).get("confirm") is not True:
            return _error(400, "bad_request", 'an erasure needs {"confirm": true}')
        actor = request[LISTENER].name
        erased = await self.eraser.erase_conversation(request.match_info["id"], actor, "asked to a supervisor")
        if erased is None:
            return _error(404, "not_found", "no such conversation")
        # ``under_way``: erased by another erasure of the person already under way (its counts in its audit line;
        # until 2026-12-07 this said 0 conversations, 0 entries and nothing more)
        answer = {"conversations": erased.conversations, "entries": erased.entries, "under_way": erased.under_way}
        return web.json_response(answer)

    # ----- audit ------------------------------------------------------------------------------------------

    async def audit(self, request: web.Request) -> web.Response:
        entries = await self.store.audit_log(200)
        return web.json_response({"entries": [_audit(e) for e in entries]})

    async def _audit(self, request: web.Request, action: str, subject: str, detail: str) -> None:
        await self.store.audit(AuditEntry(self._now(), request[LISTENER].name, action, subject, detail))


def _same(kept: Block, block: Block) -> bool:
    """Whether ``block`` is the block ``kept`` in force made again: by the same listener, for as long, for the same
    reason. Before, a block sent again (its answer lost, a second tab, a browser's retry) was audited again and its end
    moved on; another block of the sender (longer, another reason, another listener) is made and audited as ever."""
    length = None if kept.until is None else kept.until - kept.at
    wanted = None if block.until is None else block.until - block.at
    return (kept.by, kept.reason, kept.channel, length) == (block.by, block.reason, block.channel, wanted)


def _block(block: Block) -> dict[str, Any]:
    return {
        "key": block.key, "channel": block.channel.value, "pseudonym": block.pseudonym, "reason": block.reason,
        "by": block.by, "at": block.at.isoformat(), "until": block.until.isoformat() if block.until else None,
    }  # fmt: skip


def _audit(entry: AuditEntry) -> dict[str, Any]:
    return {"at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action, "subject": entry.subject,
            "detail": entry.detail}  # fmt: skip


def at_risk(conversation: Conversation) -> bool:
    """Whether a bulk close keeps this conversation unless asked to close it too (``include_flagged``):
    :attr:`Conversation.at_risk`."""
    return conversation.at_risk


async def flood_rows(open_: list[Conversation], now: datetime) -> list[dict[str, Any]]:
    """The flood view's rows: the open conversations, those of the client network with the most first, each network
    labelled ``client N`` (never its address or hash). Made a part at a time, the event loop turning between parts:
    a flood is when the page is read, and 10,000 open conversations in one block held the loop ~0.15 s (until
    2026-12-06), answering no young person meanwhile."""
    per_client = Counter(c.client for c in open_ if c.client)
    labels = {client: f"client {n + 1}" for n, (client, _) in enumerate(per_client.most_common())}
    rows = await decoded_in_parts(
        open_, lambda c: _flood_row(c, labels.get(c.client or ""), per_client.get(c.client or "", 1), now)
    )
    rows.sort(key=lambda r: (-r["same_client"], r["client"] or "", r["created_at"]))
    return rows


def _flood_row(conversation: Conversation, label: str | None, same: int, now: datetime) -> dict[str, Any]:
    since = conversation.queued_at or conversation.created_at
    return {
        "id": conversation.id, "pseudonym": conversation.pseudonym, "channel": conversation.channel.value,
        "status": conversation.status.value, "priority": conversation.priority.value, "client": label,
        "same_client": same if label else 1, "created_at": conversation.created_at.isoformat(),
        "waiting_seconds": int((now - since).total_seconds()), "flagged": at_risk(conversation),
        "risk": conversation.risk_reason,  # the class (or the interrupt, the rule), never the words
    }  # fmt: skip


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)
