"""``gateway purge`` and ``gateway erase``, run in-process on a SQLite store: counts printed, never content."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.conversation import Conversation, Status
from gateway.erasure import EPOCH, FAR
from gateway.messages import ChannelName
from gateway.store import Author, Store, TranscriptEntry, open_store
from tests.conftest import ROOT
from tests.test_cli import run

SECRET = "je n'ose pas le dire à mes parents"
PHONE = "+33611111111"


@pytest.fixture
def store_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.sqlite3"
    monkeypatch.setenv("GATEWAY_STORE", url)
    monkeypatch.setenv("GATEWAY_FLOWS", str(ROOT / "flows.yaml"))
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "cli-test-secret-key-0123456789")
    monkeypatch.chdir(tmp_path)  # no stray .env
    return url


def on_store(url: str, work: object) -> object:
    async def go() -> object:
        store = await open_store(url)
        try:
            return await work(store)  # type: ignore[operator]
        finally:
            await store.close()

    return asyncio.run(go())


async def two_conversations(store: Store) -> tuple[Conversation, Conversation]:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    old, _ = await store.active_conversation(ChannelName.WHATSAPP, PHONE, long_ago)
    await store.append_transcript(TranscriptEntry("u1", old.id, long_ago, Author.USER, SECRET))
    old.status, old.closed_at = Status.CLOSED, long_ago
    await store.save_conversation(old)
    recent, _ = await store.active_conversation(ChannelName.TELEGRAM, "555", datetime.now(UTC))
    await store.append_transcript(TranscriptEntry("u2", recent.id, datetime.now(UTC), Author.USER, SECRET))
    return old, recent


def test_purge_dry_run_then_purge(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    old, recent = on_store(store_url, two_conversations)  # type: ignore[misc]

    code, out, _ = run(capsys, "purge", "--dry-run")
    assert code == 0 and "would purge 1 conversation(s), 1 transcript entries" in out
    assert len(on_store(store_url, lambda s: s.transcript(old.id))) == 1  # type: ignore[arg-type]

    code, out, _ = run(capsys, "purge")
    assert code == 0 and "purged 1 conversation(s), 1 transcript entries (ended more than 30 days ago)" in out
    assert SECRET not in out and PHONE not in out
    assert on_store(store_url, lambda s: s.transcript(old.id)) == []
    assert len(on_store(store_url, lambda s: s.transcript(recent.id))) == 1  # type: ignore[arg-type]
    record = on_store(store_url, lambda s: s.get_conversation(old.id))
    assert isinstance(record, Conversation) and record.sender == "" and record.purged_at is not None


def test_erase_by_identity_and_by_conversation(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    old, _ = on_store(store_url, two_conversations)  # type: ignore[misc]

    code, out, _ = run(capsys, "erase", "--channel", "telegram", "--identity", "555")
    assert code == 0 and out.strip() == "erased 1 conversation(s), 1 transcript entries"
    code, out, _ = run(capsys, "erase", "--conversation", old.id)
    assert code == 0 and "erased 1 conversation(s)" in out and PHONE not in out
    assert on_store(store_url, lambda s: s.list_conversations(EPOCH, FAR)) == []
    actions = [e.action for e in on_store(store_url, lambda s: s.audit_log())]  # type: ignore[attr-defined]
    assert actions == ["erase", "erase"]

    assert run(capsys, "erase", "--conversation", "nope")[0] == 1
    code, _, err = run(capsys, "erase")
    assert code == 1 and "--conversation" in err
    code, _, err = run(capsys, "erase", "--conversation", "x", "--channel", "telegram", "--identity", "1")
    assert code == 1
    # Values beginning with "-" (ids of conversations created before they never did, Telegram group chats) are
    # values, not options: a clear "nothing found", not a usage error.
    code, _, err = run(capsys, "erase", "--conversation", "-Ab1")
    assert code == 1 and "usage" not in err
    code, _, err = run(capsys, "erase", "--channel", "telegram", "--identity", "-1001234")
    assert code == 0 and "usage" not in err
