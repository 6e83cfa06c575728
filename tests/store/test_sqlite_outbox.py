"""The SQLite outbox's purge of resolved rows: every outbox pass drops the sent and failed rows older than
``RESOLVED_OUTBOX_KEPT`` (never a pending one), found on a partial index rather than by reading the table, which
holds every reply of the last week (a scan made each message cost more with each conversation of the week)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.store import OutboxItem, OutboxStatus, Store, open_store
from gateway.store.sqlite import _OLDEST_PENDING, _PURGE_RESOLVED, RESOLVED_OUTBOX_KEPT, path_from_url
from gateway.testing import store_keys

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


async def sqlite_store(tmp_path: Path) -> tuple[Store, str]:
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    return await open_store(url, keys=store_keys(url)), url


async def test_a_pass_purges_old_resolved_rows_and_keeps_pending_and_recent_ones(tmp_path: Path) -> None:
    store, _ = await sqlite_store(tmp_path)
    try:
        for item_id, conversation in (("sent", "A"), ("failed", "B"), ("pending", "C"), ("recent", "D")):
            at = T0 + RESOLVED_OUTBOX_KEPT if item_id == "recent" else T0
            await store.outbox_put(OutboxItem(item_id, conversation, {"text": "x"}, at))
        assert await store.outbox_mark_sent("A", "sent", "pm-1")
        assert await store.outbox_mark_failed("B", "failed", "HTTP 400")
        assert await store.outbox_mark_sent("D", "recent", "pm-2")

        due = await store.outbox_due(T0 + RESOLVED_OUTBOX_KEPT + timedelta(hours=1), 10)

        assert [item.id for item in due] == ["pending"]
        assert await store.outbox_get("A", "sent") is None
        assert await store.outbox_get("B", "failed") is None
        recent = await store.outbox_get("D", "recent")
        assert recent is not None and recent.status == OutboxStatus.SENT
    finally:
        await store.close()


async def test_the_purge_reads_the_partial_index_not_the_table(tmp_path: Path) -> None:
    store, url = await sqlite_store(tmp_path)
    await store.close()  # the file with the store's schema
    with contextlib.closing(sqlite3.connect(path_from_url(url))) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + _PURGE_RESOLVED, (0,)))
    assert "INDEX outbox_resolved" in plan and "SCAN" not in plan, plan


async def test_the_oldest_pending_reply_is_one_seek_on_a_partial_index(tmp_path: Path) -> None:
    """The alert's read (every 10 s) does not grow with the replies waiting (a provider down: every conversation)."""
    store, url = await sqlite_store(tmp_path)
    await store.close()
    with contextlib.closing(sqlite3.connect(path_from_url(url))) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + _OLDEST_PENDING))
    assert "INDEX outbox_waiting" in plan and "SCAN" not in plan, plan
