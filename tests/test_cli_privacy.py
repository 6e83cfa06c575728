"""``gateway purge`` and ``gateway erase``, run in-process on a SQLite store: counts printed, never content."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
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
    assert code == 0 and out.splitlines()[0] == "erased 1 conversation(s), 1 transcript entries"
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


def test_an_erasure_done_after_a_backup_is_done_again_on_the_restored_store(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, store_url: str, tmp_path: Path
) -> None:
    """A backup (``VACUUM INTO``, docs/deployment.md), then an erasure, then the backup restored: the person's
    conversations and words are back. Until 2026-12-05 nothing said what to erase again (the audit entry, in the
    store, went with the restore, and names no id): the erasure was undone without a word. Now the erasure logs,
    and ``gateway erase`` prints, ``gateway erase --again KEY`` (the keyed hash of the channel identity, never
    the identity), which erases that person from the restored store; a store without them: nothing to do."""
    database = Path(store_url.removeprefix("sqlite:///"))
    old, recent = on_store(store_url, two_conversations)  # type: ignore[misc]
    backup = tmp_path / "backup.sqlite3"
    subprocess.run(["sqlite3", str(database), f"VACUUM INTO '{backup}'"], check=True)

    with caplog.at_level(logging.INFO, logger="gateway.erasure"):
        code, out, _ = run(capsys, "erase", "--conversation", old.id)
    assert code == 0 and "erased 1 conversation(s)" in out
    again = re.findall(r"gateway erase --again (\S+)", out)
    assert again and again == re.findall(r"gateway erase --again (\S+)", caplog.text)
    assert PHONE not in caplog.text + out and SECRET not in caplog.text + out

    for companion in ("-wal", "-shm"):  # the restore, as the docs say
        database.with_name(database.name + companion).unlink(missing_ok=True)
    shutil.copy(backup, database)
    assert on_store(store_url, lambda s: s.transcript(old.id))  # back with the restore

    code, out, _ = run(capsys, "erase", "--again", again[0])
    assert code == 0 and "erased 1 conversation(s), 1 transcript entries" in out
    assert on_store(store_url, lambda s: s.get_conversation(old.id)) is None
    assert on_store(store_url, lambda s: s.transcript(old.id)) == []
    assert len(on_store(store_url, lambda s: s.transcript(recent.id))) == 1  # type: ignore[arg-type]
    code, out, _ = run(capsys, "erase", "--again", again[0])  # done already: nothing of them left
    assert code == 0 and "erased 0 conversation(s)" in out
