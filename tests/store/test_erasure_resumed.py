"""On every store (SQLite, Redis, Redis Cluster): a young person's confirmed erasure is listed as begun in the same
commit as their confirming message, so when the instance that processed it dies before the erasure is done, the
alert check of the instance that runs next (``Watch.check``, wired as the app wires it) finishes it: nothing of
them left, the other young person's kept, ``erasure.done`` told once, the redelivery of their "oui" a duplicate.
Until 2026-12-05 nothing was listed (SQLite had no such list at all): that erasure was never finished.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.alerts import Watch
from gateway.conversation import Conversation
from gateway.dispatcher import Dispatcher
from gateway.erasure import EPOCH, FAR, Eraser
from gateway.flowset import FlowSet
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Store
from tests.conftest import ROOT

CHAT, OTHER = "70707070", "80808080"
NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def message(sender: str, number: int, text: str) -> Inbound:
    return Inbound(ChannelName.TELEGRAM, sender, f"upd-{sender}-{number}", text)


def gateway(store: Store) -> tuple[Dispatcher, Eraser]:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=lambda: NOW)
    keyed = KeyedHash("k" * 32)
    eraser = Eraser(store, dispatcher, flows, lambda c, s: keyed.sender(c.value, s), clock=lambda: NOW)
    dispatcher.eraser = lambda conversation, key: eraser.finish_confirmed(conversation.id, key)  # as the app
    return dispatcher, eraser


async def test_an_erasure_whose_instance_died_before_it_is_finished_by_the_next_alert_check(store: Store) -> None:
    dead, _ = gateway(store)

    async def died(conversation: Conversation, key: str) -> None:
        """The instance that processed "oui" is killed once its message is committed, before the erasure."""

    dead.eraser = died
    assert await dead.handle_inbound(message(OTHER, 0, "bonjour"))
    for number, text in enumerate(["bonjour", "efface mes données", "oui"]):
        assert await dead.handle_inbound(message(CHAT, number, text))
    assert [c.sender for c in await store.list_conversations(EPOCH, FAR)].count(CHAT) == 1  # nothing erased yet

    dispatcher, eraser = gateway(store)  # the next instance
    watch = Watch(store, Metrics(), clock=lambda: NOW, outbox_alert_seconds=60,
                  complete_erasure=eraser.finish_confirmed)  # fmt: skip
    await watch.check()
    await watch.check()  # done: nothing more, nobody told twice

    assert [c.sender for c in await store.list_conversations(EPOCH, FAR)] == [OTHER]
    told = [str(item.payload) for item in await store.outbox_due(NOW, 50, run=100) if "3114" in str(item.payload)]
    assert len(told) == 1, told  # erasure.done, with where to turn, once
    assert await store.erasures_begun() == {}
    assert not await dispatcher.handle_inbound(message(CHAT, 2, "oui"))  # Telegram's redelivery: a duplicate
    assert [e.actor for e in await store.audit_log() if e.action == "erase"] == ["young person"]


async def test_an_erasure_cut_after_its_last_record_gets_its_audit_line_when_it_is_finished(store: Store) -> None:
    """The instance died after the erasure's last step (the record of the conversation asked from) and before its
    audit line: the alert check finds it listed with nothing left to erase; until 2026-12-05 it only unlisted it,
    and the audit log never said that this young person's data was erased. Now it writes the line (what it erased is
    not counted: nothing says) with the unlisting, in one commit; a finished erasure still has one line only."""
    dead, _ = gateway(store)
    cut: list[str] = []

    async def died(conversation: Conversation, key: str) -> None:
        """Erased up to its very last step, then killed: the record gone, no audit line, still listed."""
        cut.append(conversation.id)

    dead.eraser = died
    for number, text in enumerate(["bonjour", "efface mes données", "oui"]):
        assert await dead.handle_inbound(message(CHAT, number, text))
    [asked] = cut
    await store.erase_conversation(asked)  # the erasure's last step

    _, eraser = gateway(store)
    watch = Watch(store, Metrics(), clock=lambda: NOW, outbox_alert_seconds=60,
                  complete_erasure=eraser.finish_confirmed)  # fmt: skip
    await watch.check()
    await watch.check()
    assert await store.erasures_begun() == {}
    lines = [e for e in await store.audit_log() if e.action == "erase"]
    assert [e.actor for e in lines] == ["young person"] and "cut short" in lines[0].detail
