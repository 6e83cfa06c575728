"""A purge pass on SQLite reads the processed marks once a day of conversations, not once a conversation.

``SqliteStore.forget_seen`` reads every mark of the ``seen`` table (a mark is named by a digest of its key, which the
table does not index: each row's is computed) in a write transaction on the store's one thread. Until 2026-12-07 the
purge forgot each conversation's marks with a ``forget_seen`` of its own (``Retention._forget_marks``, made so that a
purge cut midway leaves no mark): a day's purge of a thousand conversations on a line with 40,000 marks held the
store's thread ~80 s (81 ms a call measured on the shared 2-core machine), every webhook waiting behind each call.
Now the marks of the day's conversations due are forgotten in one call, still before any of their contents goes.

The real dispatcher and store; the statements run on the store's own connection traced (``set_trace_callback``).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.store import Store
from tests.conftest import ROOT, Clock
from tests.test_purge_outage import ended

DUE, OTHER_MARKS = 20, 4_000


async def test_a_purge_pass_reads_the_marks_once_not_once_a_conversation(sqlite_store: Store, clock: Clock) -> None:
    store = sqlite_store
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=clock)
    inbounds = [(await ended(store, dispatcher, clock, f"zoe{n}"))[1] for n in range(DUE)]
    expires = int((datetime.now(UTC) + timedelta(days=8)).timestamp() * 1_000_000)
    run = getattr(store, "_run")  # noqa: B009  # the store's thread, the only one on its connection

    def others(conn: sqlite3.Connection) -> None:  # the marks of the line's other messages, in its 8 days
        rows = [(f"in:messenger:m-other{n}", expires, f"c-other{n}") for n in range(OTHER_MARKS)]
        with conn:
            conn.executemany("INSERT INTO seen (key, expires_us, owner, conversation_id) VALUES (?, ?, NULL, ?)", rows)

    await run(others)
    clock.advance(days=31)
    statements: list[str] = []
    await run(lambda conn: conn.set_trace_callback(statements.append))
    purged = await Retention(store, flows, clock=clock, metrics=Metrics()).purge(clock())
    await run(lambda conn: conn.set_trace_callback(None))

    assert purged.conversations == DUE
    marks = set(await store.seen_keys())
    assert not marks & {seen_digest(inbound_key(i)) for i in inbounds}  # every purged message's mark forgotten
    assert len(marks) == OTHER_MARKS  # the others kept
    every_mark_read = [s for s in statements if s.startswith("SELECT key FROM seen WHERE owner IS NULL")]
    assert len(every_mark_read) == 1  # before: 20, one a conversation
