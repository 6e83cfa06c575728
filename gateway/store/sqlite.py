"""The embedded store: one SQLite file, for a single gateway process.

Why the standard ``sqlite3`` module and not ``aiosqlite``: aiosqlite is itself one worker thread owning one
connection, fed from the event loop. Doing the same here takes a dozen lines (``_run``), adds no dependency,
and makes every store method one plain synchronous function that runs as a single transaction on that thread.
Because the thread runs one function at a time, the methods are atomic towards each other inside the process;
write transactions start with ``BEGIN IMMEDIATE`` so a second process on the same file (the ``gateway`` CLI
adding a listener) waits for the lock instead of interleaving.

The file is in WAL mode with ``synchronous=NORMAL``: a commit is written to the WAL before the call returns, and
survives the gateway process crashing or being killed (the operating system has the data); a power cut or kernel
crash may lose the last transactions committed since the last WAL sync (at a checkpoint), never corrupt the file.
``synchronous=FULL`` would fsync every commit (34 % of the time under load was in COMMIT) for a guarantee that only
a power cut tests; a line that needs it runs Redis with ``appendfsync always`` instead (docs/deployment.md).

Events live in this process only, which is why several gateway instances need Redis. The named locks (a
conversation's, an erasure's) are held across the processes on the file since 2026-12-07 (``sqlite_locks.py``: a
``gateway erase`` beside the server waits for its locks); until then in this process only.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from gateway.conversation import ACTIVE_STATUSES, Conversation, Priority, RiskFlag, Status
from gateway.crypto import DataKeys, private_directory, private_file
from gateway.errors import ConfigError, Conflict, ConversationEnded, EndedMeanwhile, StoreError
from gateway.events import Event
from gateway.ids import seen_digest
from gateway.messages import ChannelName
from gateway.notices.record import Evidence, Notice, Referral
from gateway.store import (
    ANYONE,
    CLIENT_OPEN,
    INDEXED_DAYS,
    OPENING_KEPT_SECONDS,
    PRESENT_KEPT_SECONDS,
    READ_LATE_HOURS,
    READ_LATE_KEPT,
    RECEIPT_KEPT_SECONDS,
    Anyone,
    AuditEntry,
    Author,
    Block,
    Claim,
    ClaimState,
    ConsoleSession,
    Delivery,
    DoneMark,
    HeldIndex,
    InboxItem,
    Listener,
    OutboxItem,
    OutboxStatus,
    PendingLate,
    QueueEntry,
    Timer,
    TimerKind,
    TranscriptEntry,
    WaitingPage,
    checked_holder,
    erasure_listed,
    furthest,
    in_parts,
    part_advanced,
    provider_ids,
    reseal_listing,
    sent_shown,
)
from gateway.store.codec import (
    PART,
    decode_audit,
    decode_block,
    decode_conversation,
    decode_entry_data,
    decoded_in_parts,
    dumps,
    dumps_sealed,
    encode_audit,
    encode_block,
    encode_conversation,
    encode_entry_data,
    ended_rank,
    entry_author_at,
    flagged_entry_data,
    flagged_rank,
    from_us,
    loads,
    loads_sealed,
    queue_flag,
    to_us,
    told_rank,
)
from gateway.store.local import LocalEvents, LocalLocks, LocalSubscription
from gateway.store.sqlite_locks import FileLocks, lock_file_of
from gateway.store.sqlite_thread import StoreThread
from gateway.store.texts import OwnTexts, SharedText, SharedTexts, Stored

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], object]
log = logging.getLogger(__name__)
# The -wal file is cut back to this at its first reset past it (``PRAGMA journal_size_limit``): a reader held long (a
# backup, a sqlite3 shell left in BEGIN) lets it grow with every write (58 MB for 300 messages), and it kept that size
# until the daily purge's truncating checkpoint. Four times what it holds between two automatic checkpoints (1,000
# pages), so it is never cut in ordinary running.
WAL_KEPT_BYTES = 16 * 1024 * 1024
CORRUPT_SAID = 3  # the problems of a corrupt file named at its refusal (quick_check stops there)
BUSY_TIMEOUT = 10.0  # seconds a call waits for the file's write lock held by another process (the CLI, a backup)
# What says the file takes no write now, whatever the call (``SqliteStore._watched``): its write lock held by another
# process past the busy timeout, a full disk, a read-only or failing file system. Not a constraint, a bug's SQL.
_REFUSALS = {
    sqlite3.SQLITE_BUSY: "its write lock is held by another process (a backup, a sqlite3 shell in a transaction?)",
    sqlite3.SQLITE_LOCKED: "its write lock is held by another process (a backup, a sqlite3 shell in a transaction?)",
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_READONLY: "the file or its directory is read-only",
    sqlite3.SQLITE_IOERR: "the disk fails",
    sqlite3.SQLITE_CANTOPEN: "the file or its directory cannot be opened",
}
RESOLVED_OUTBOX_KEPT = timedelta(days=7)  # sent and failed outbox rows are purged after this
_CLAIMS_KEPT = 16  # outbox claims made with a token kept in memory (``SqliteStore.outbox_due``)
ERASING = "erasing:"  # + a web chat conversation's id: its erasure begun, a row of ``erased`` (``keep_erased``)
TAKES_KEPT_US = 24 * 3600 * 1_000_000  # takes older than a day are dropped (takes_since looks an hour back)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, channel TEXT NOT NULL, sender TEXT NOT NULL, status TEXT NOT NULL,
    created_us INTEGER NOT NULL, data TEXT NOT NULL, client TEXT, flagged_us INTEGER, told_us INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS conversations_active ON conversations (channel, sender)
    WHERE status IN ('bot', 'queued', 'with_listener');
CREATE INDEX IF NOT EXISTS conversations_status ON conversations (status, created_us);
CREATE INDEX IF NOT EXISTS conversations_created ON conversations (created_us);
CREATE TABLE IF NOT EXISTS transcript (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, conversation_id TEXT NOT NULL,
    delivery TEXT NOT NULL, provider_message_id TEXT, data TEXT NOT NULL, unread_us INTEGER);
CREATE INDEX IF NOT EXISTS transcript_conversation ON transcript (conversation_id, seq);
CREATE INDEX IF NOT EXISTS transcript_provider ON transcript (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS texts (ref TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires_us INTEGER NOT NULL, owner TEXT, conversation_id TEXT);
CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_us);
CREATE TABLE IF NOT EXISTS queue (
    conversation_id TEXT PRIMARY KEY, queue TEXT NOT NULL, priority TEXT NOT NULL, rank INTEGER NOT NULL,
    at_us INTEGER NOT NULL, seq INTEGER NOT NULL, taken_by TEXT, flag TEXT);
CREATE INDEX IF NOT EXISTS queue_order ON queue (queue, rank, at_us, seq) WHERE taken_by IS NULL;
CREATE INDEX IF NOT EXISTS queue_held ON queue (taken_by) WHERE taken_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS queue_seq ON queue (seq);
CREATE TABLE IF NOT EXISTS queue_hours (queue TEXT NOT NULL, rank INTEGER NOT NULL, hour INTEGER NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (queue, rank, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_seconds (queue TEXT NOT NULL, rank INTEGER NOT NULL, second INTEGER NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (queue, rank, second)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS queue_waiting_in AFTER INSERT ON queue WHEN NEW.taken_by IS NULL BEGIN
    INSERT INTO queue_hours VALUES (NEW.queue, NEW.rank, NEW.at_us / 3600000000, 1)
        ON CONFLICT (queue, rank, hour) DO UPDATE SET n = n + 1;
    INSERT INTO queue_seconds VALUES (NEW.queue, NEW.rank, NEW.at_us / 1000000, 1)
        ON CONFLICT (queue, rank, second) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_waiting_out AFTER DELETE ON queue WHEN OLD.taken_by IS NULL BEGIN
    UPDATE queue_hours SET n = n - 1 WHERE queue = OLD.queue AND rank = OLD.rank AND hour = OLD.at_us / 3600000000;
    DELETE FROM queue_hours WHERE queue = OLD.queue AND rank = OLD.rank AND hour = OLD.at_us / 3600000000 AND n <= 0;
    UPDATE queue_seconds SET n = n - 1 WHERE queue = OLD.queue AND rank = OLD.rank AND second = OLD.at_us / 1000000;
    DELETE FROM queue_seconds WHERE queue = OLD.queue AND rank = OLD.rank AND second = OLD.at_us / 1000000
        AND n <= 0;
END;
CREATE TRIGGER IF NOT EXISTS queue_waiting_left AFTER UPDATE ON queue WHEN OLD.taken_by IS NULL BEGIN
    UPDATE queue_hours SET n = n - 1 WHERE queue = OLD.queue AND rank = OLD.rank AND hour = OLD.at_us / 3600000000;
    DELETE FROM queue_hours WHERE queue = OLD.queue AND rank = OLD.rank AND hour = OLD.at_us / 3600000000 AND n <= 0;
    UPDATE queue_seconds SET n = n - 1 WHERE queue = OLD.queue AND rank = OLD.rank AND second = OLD.at_us / 1000000;
    DELETE FROM queue_seconds WHERE queue = OLD.queue AND rank = OLD.rank AND second = OLD.at_us / 1000000
        AND n <= 0;
END;
CREATE TRIGGER IF NOT EXISTS queue_waiting_back AFTER UPDATE ON queue WHEN NEW.taken_by IS NULL BEGIN
    INSERT INTO queue_hours VALUES (NEW.queue, NEW.rank, NEW.at_us / 3600000000, 1)
        ON CONFLICT (queue, rank, hour) DO UPDATE SET n = n + 1;
    INSERT INTO queue_seconds VALUES (NEW.queue, NEW.rank, NEW.at_us / 1000000, 1)
        ON CONFLICT (queue, rank, second) DO UPDATE SET n = n + 1;
END;
CREATE TABLE IF NOT EXISTS takes (conversation_id TEXT PRIMARY KEY, queue TEXT NOT NULL, at_us INTEGER NOT NULL);
-- the erasures young people confirmed, not yet done (QueueStore.begin_erasure): finished by the alert check
CREATE TABLE IF NOT EXISTS erasing (conversation_id TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS takes_recent ON takes (queue, at_us);
-- the ended conversations in which a risk was read late, for the supervision board (ConversationStore.read_late)
CREATE TABLE IF NOT EXISTS read_late (conversation_id TEXT PRIMARY KEY, at_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS read_late_at ON read_late (at_us);
CREATE TABLE IF NOT EXISTS listeners (
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, supervisor INTEGER NOT NULL,
    capacity INTEGER NOT NULL, created_us INTEGER);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, conversation_id TEXT NOT NULL,
    payload TEXT NOT NULL, created_us INTEGER NOT NULL, next_us INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, status TEXT NOT NULL DEFAULT 'pending',
    provider_message_id TEXT, parts_sent INTEGER NOT NULL DEFAULT 0, urgent INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (conversation_id, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_resolved ON outbox (created_us) WHERE status != 'pending';
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (created_us) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, sender_key TEXT NOT NULL,
    payload TEXT NOT NULL, received_us INTEGER NOT NULL, next_us INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, urgent INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS inbox_sender ON inbox (sender_key, seq);
CREATE TABLE IF NOT EXISTS inbox_aside (
    id TEXT PRIMARY KEY, sender_key TEXT NOT NULL, payload TEXT NOT NULL, received_us INTEGER NOT NULL,
    attempts INTEGER NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS timers (
    conversation_id TEXT NOT NULL, kind TEXT NOT NULL, due_us INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, kind));
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_us);
CREATE TABLE IF NOT EXISTS late (
    conversation_id TEXT NOT NULL, entry_id TEXT NOT NULL, windows INTEGER NOT NULL, queued_us INTEGER NOT NULL,
    owner TEXT NOT NULL, until_us INTEGER NOT NULL, claims INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, entry_id));
CREATE INDEX IF NOT EXISTS late_lapsed ON late (until_us);
CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, until_us INTEGER, at_us INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kept_receipts (provider_message_id TEXT NOT NULL, delivery TEXT NOT NULL,
    expires_us INTEGER NOT NULL, PRIMARY KEY (provider_message_id, delivery));
CREATE TABLE IF NOT EXISTS kept_watermarks (conversation_id TEXT NOT NULL, delivery TEXT NOT NULL,
    until_us INTEGER NOT NULL, expires_us INTEGER NOT NULL, PRIMARY KEY (conversation_id, delivery));
CREATE TABLE IF NOT EXISTS transcript_parts (provider_message_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL,
    entry_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transcript_parts_conversation ON transcript_parts (conversation_id);
CREATE TABLE IF NOT EXISTS openings (digest TEXT PRIMARY KEY, conversation_id TEXT NOT NULL,
    expires_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erased (digest TEXT PRIMARY KEY, at_us INTEGER NOT NULL, expires_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS console_sessions (key TEXT PRIMARY KEY, name TEXT NOT NULL, expires_us INTEGER NOT NULL,
    account TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS console_sessions_name ON console_sessions (name);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_once (key TEXT PRIMARY KEY, expires_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS present (name TEXT PRIMARY KEY, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notices (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, conversation_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (notice_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (key TEXT PRIMARY KEY, content_type TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS referrals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, conversation_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at_us INTEGER NOT NULL);
"""

_ACTIVE = tuple(str(status) for status in ACTIVE_STATUSES)
# The active statuses written into the SQL, as in the partial index ``conversations_active``: with bound
# parameters the planner cannot tell the index applies, and scanned every active conversation per message.
# The list must read as the index's does (same order) for the planner to use the index.
_ACTIVE_SQL = "status IN ('bot', 'queued', 'with_listener')"
assert set(_ACTIVE) == {"bot", "queued", "with_listener"}, "_ACTIVE_SQL and conversations_active need the change"
_FIND_ACTIVE = f"SELECT data FROM conversations WHERE channel = ? AND sender = ? AND {_ACTIVE_SQL}"
# The same conversation's id only, for the lock (``locked_active``): the record is read, and opened, under it.
_FIND_ACTIVE_ID = f"SELECT id FROM conversations WHERE channel = ? AND sender = ? AND {_ACTIVE_SQL}"
# A web chat client's conversations in the bot or the queue (``CLIENT_OPEN``), counted on a partial index (the
# statuses written into the SQL for the same reason as ``_ACTIVE_SQL``): the gate asks at every new web chat, and
# loading the open conversations to count them took 94 ms with 1,000 queued, 1.3 s with 10,000.
_CLIENT_OPEN_SQL = "status IN ('bot', 'queued')"
assert {str(s) for s in CLIENT_OPEN} == {"bot", "queued"}, "_CLIENT_OPEN_SQL and conversations_client need the change"
_CLIENT_INDEX = f"CREATE INDEX IF NOT EXISTS conversations_client ON conversations (client) WHERE {_CLIENT_OPEN_SQL}"
# A reply awaiting its read receipt: ``unread_us``, its time, set when its outbox item is put (``outbox_put``), moved
# to the provider's answer's time by its send's record (``_resolve``: a watermark marks it only from then on) and
# cleared once it is read or failed (``_delivered``); a watermark's receipt reads only these (``mark_until``).
_UNREAD_INDEX = ("CREATE INDEX IF NOT EXISTS transcript_unread ON transcript (conversation_id, unread_us)"
                 " WHERE unread_us IS NOT NULL")  # fmt: skip
# An open conversation with a risk flag: ``flagged_us``, when its flag was last recorded (``codec.flagged_rank``),
# written with the record and NULL once it ends; the supervision board reads the latest on this partial index
# (``flagged_conversations``), not the open conversations (loading them all took 1.1 s at 10,000).
_FLAGGED_INDEX = ("CREATE INDEX IF NOT EXISTS conversations_flagged ON conversations (flagged_us, id)"
                  " WHERE flagged_us IS NOT NULL")  # fmt: skip
# A waiting conversation told, in this wait, that the line is closed and where to turn: ``told_us``, when
# (``codec.told_rank``), written with the record and NULL once it is taken, ends or waits again; the supervision
# board counts them on this partial index (``told_closed_waiting``). Until 2026-12-07 it read every waiting record.
_TOLD_INDEX = "CREATE INDEX IF NOT EXISTS conversations_told ON conversations (told_us) WHERE told_us IS NOT NULL"
# A young person's conversations, by the keyed hash of their channel identity (the ``sender`` column): the console's
# earlier conversations of one it opens read here (``conversations_of``), in the order shown, not every conversation
# of the month (0.1 s of the event loop at 5,000). A purged record's column is the hash of no identity.
_SENDER_INDEX = "CREATE INDEX IF NOT EXISTS conversations_sender ON conversations (channel, sender, created_us, id)"
# A listener's ended conversations (``codec.ended_rank``): a row per ended conversation naming a listener, written
# with its record (``_write_conversation``), deleted with it (erasure), and those ended over ``INDEXED_DAYS`` before
# the latest one written dropped then; the console's history reads a page of it (``ended_with``).
_ENDED_TABLE = """
CREATE TABLE IF NOT EXISTS ended (conversation_id TEXT PRIMARY KEY, listener TEXT NOT NULL, ended_us INTEGER NOT NULL,
    created_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ended_listener ON ended (listener, ended_us DESC, created_us, conversation_id);
CREATE INDEX IF NOT EXISTS ended_at ON ended (ended_us);
"""
INDEXED_US = INDEXED_DAYS * 24 * 3600 * 1_000_000
_COUNT_CLIENT = f"SELECT COUNT(*) FROM conversations WHERE client = ? AND {_CLIENT_OPEN_SQL}"
# Sent and failed outbox rows past RESOLVED_OUTBOX_KEPT, found on the partial index ``outbox_resolved`` (its
# condition written the same here, for the planner): every outbox pass purges, and a scan of the table (every
# reply of the last week) made each pass, so each message, cost more with each conversation of the week.
_PURGE_RESOLVED = "DELETE FROM outbox WHERE status != 'pending' AND created_us < ?"
# The alert's oldest reply not yet sent, on the partial index ``outbox_waiting``: one seek, however many wait.
_OLDEST_PENDING = "SELECT MIN(created_us) AS oldest FROM outbox WHERE status = 'pending'"
_OUTBOX_COLUMNS = (
    "id, conversation_id, payload, created_us, next_us, attempts, last_error, status, provider_message_id, parts_sent"
)


def path_from_url(url: str) -> Path:
    """``sqlite:///var/x.sqlite3`` → ``var/x.sqlite3`` (relative); ``sqlite:////srv/x.sqlite3`` → absolute."""
    path = url.removeprefix("sqlite:///")
    if not path or path == url:
        raise ConfigError("GATEWAY_STORE: a sqlite URL needs a file path, e.g. sqlite:///var/gateway.sqlite3")
    return Path(path)


_REQUEUE = "UPDATE queue SET taken_by = NULL WHERE conversation_id = ?"
_REQUEUE_FROM = "UPDATE queue SET taken_by = NULL WHERE conversation_id = ? AND (taken_by IS NULL OR taken_by = ?)"
_TAKE = "UPDATE queue SET taken_by = ? WHERE conversation_id = ? AND taken_by IS NULL"
_WAITING_ENTRY = "SELECT * FROM queue WHERE conversation_id = ? AND taken_by IS NULL"
_HAS_ENTRY = "SELECT 1 FROM queue WHERE conversation_id = ?"
_MARK_PRESENT = (
    "INSERT INTO present (name, at_us) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET at_us = max(at_us, excluded.at_us)"
)


@contextmanager
def _writing(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the file's write lock at once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _connect(path: Path, keys: DataKeys) -> sqlite3.Connection:
    """The file is created for its owner only (0600, in a directory created 0700); SQLite gives its -wal and
    -shm files the database file's mode."""
    private_directory(path.parent)
    private_file(path)
    for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if companion.exists():
            private_file(companion)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    _refuse_corrupt(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")
    conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten: a purge or erasure leaves no trace
    conn.executescript(_SCHEMA)
    _add_missing_columns(conn, keys)
    _add_ended(conn, keys)
    conn.execute(_CLIENT_INDEX)
    conn.execute(_SENDER_INDEX)
    conn.execute(_UNREAD_INDEX)
    conn.execute(_FLAGGED_INDEX)
    conn.execute(_TOLD_INDEX)
    with _writing(conn):
        _count_waiting(conn)
    return conn


def _refuse_corrupt(conn: sqlite3.Connection) -> None:
    """A corrupt file (a copy torn by a checkpoint written while it was copied, a failing disk) refused before it
    is served: its header and schema may be sound while a table's pages are not, and such a file opened, was
    ready, and refused every web chat without a word. ``quick_check`` reads every page once (no content in what it
    says: page numbers and offsets); about 0.2 s for 280 MB already cached, a few seconds from a cold disk."""
    said = [str(row[0]) for row in conn.execute(f"PRAGMA quick_check({CORRUPT_SAID})")]
    if said != ["ok"]:
        lines = (line for row in said for line in row.splitlines() if not line.startswith("***"))
        problems = list(itertools.islice(lines, CORRUPT_SAID))
        conn.close()
        raise sqlite3.DatabaseError(
            f"it is corrupt (PRAGMA quick_check: {'; '.join(problems)}); restore the latest backup"
            ' (docs/deployment.md, "One instance on SQLite")'
        )


def _count_waiting(conn: sqlite3.Connection) -> None:
    """The waiting entries counted per queue, rank and hour, and per second of arrival: the triggers on ``queue``
    keep these counts as entries come and go; made anew at every open (a file from before the counts, or one
    changed by a version without the triggers, is counted right). A queue position then adds counts (the hours
    ahead, the seconds ahead within its hour) and counts rows only within its own second: its cost no longer
    grows with the length of the queue (a ``COUNT`` of the entries ahead did: 6.3 ms with 10,000 ahead)."""
    conn.execute("DELETE FROM queue_hours")
    conn.execute("DELETE FROM queue_seconds")
    conn.execute("INSERT INTO queue_hours SELECT queue, rank, at_us / 3600000000, COUNT(*) FROM queue"
                 " WHERE taken_by IS NULL GROUP BY 1, 2, 3")  # fmt: skip
    conn.execute("INSERT INTO queue_seconds SELECT queue, rank, at_us / 1000000, COUNT(*) FROM queue"
                 " WHERE taken_by IS NULL GROUP BY 1, 2, 3")  # fmt: skip


def _add_missing_columns(conn: sqlite3.Connection, keys: DataKeys) -> None:
    """Columns added after a file was created (CREATE TABLE IF NOT EXISTS leaves an old table as it was)."""
    conversations = {row["name"] for row in conn.execute("PRAGMA table_info(conversations)")}
    if "client" not in conversations:  # filled from the records of the conversations it counts (bot, queue)
        with _writing(conn):
            conn.execute("ALTER TABLE conversations ADD COLUMN client TEXT")
            rows = conn.execute(f"SELECT id, data FROM conversations WHERE {_CLIENT_OPEN_SQL}").fetchall()
            for row in rows:
                client = loads_sealed(keys, "conversation", row["data"], decode_conversation).client
                conn.execute("UPDATE conversations SET client = ? WHERE id = ?", (client, row["id"]))
    if "flagged_us" not in conversations:  # filled from the records of the open conversations, once
        with _writing(conn):
            conn.execute("ALTER TABLE conversations ADD COLUMN flagged_us INTEGER")
            rows = conn.execute(f"SELECT id, data FROM conversations WHERE {_ACTIVE_SQL}").fetchall()
            for row in rows:
                rank = flagged_rank(loads_sealed(keys, "conversation", row["data"], decode_conversation))
                if rank is not None:
                    conn.execute("UPDATE conversations SET flagged_us = ? WHERE id = ?", (rank, row["id"]))
    if "told_us" not in conversations:  # filled from the records of the waiting conversations, once (2026-12-07)
        with _writing(conn):
            conn.execute("ALTER TABLE conversations ADD COLUMN told_us INTEGER")
            queued = conn.execute("SELECT id, data FROM conversations WHERE status = ?", (str(Status.QUEUED),))
            for row in queued.fetchall():
                told = told_rank(loads_sealed(keys, "conversation", row["data"], decode_conversation))
                if told is not None:
                    conn.execute("UPDATE conversations SET told_us = ? WHERE id = ?", (told, row["id"]))
    outbox = {row["name"] for row in conn.execute("PRAGMA table_info(outbox)")}
    if "parts_sent" not in outbox:
        conn.execute("ALTER TABLE outbox ADD COLUMN parts_sent INTEGER NOT NULL DEFAULT 0")
    if "urgent" not in outbox:  # a risky turn's line, ahead of the ordinary ones whenever due (``_DUE_HEADS``)
        conn.execute("ALTER TABLE outbox ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0")
    if "urgent" not in {row["name"] for row in conn.execute("PRAGMA table_info(inbox)")}:  # as the outbox's
        conn.execute("ALTER TABLE inbox ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0")
    queue = {row["name"] for row in conn.execute("PRAGMA table_info(queue)")}
    if "flag" not in queue:  # the flag a waiting entry's priority was raised for (``QueueEntry.flag``)
        conn.execute("ALTER TABLE queue ADD COLUMN flag TEXT")
    transcript = {row["name"] for row in conn.execute("PRAGMA table_info(transcript)")}
    if "unread_us" not in transcript:  # filled from the replies awaiting a read receipt, once
        with _writing(conn):
            conn.execute("ALTER TABLE transcript ADD COLUMN unread_us INTEGER")
            _fill_unread(conn, keys)
    seen = {row["name"] for row in conn.execute("PRAGMA table_info(seen)")}
    if "owner" not in seen:  # NULL: processed; else the owner of a claim
        conn.execute("ALTER TABLE seen ADD COLUMN owner TEXT")
    if "conversation_id" not in seen:  # the conversation saved with the mark (``marks_of``); NULL: from before
        conn.execute("ALTER TABLE seen ADD COLUMN conversation_id TEXT")
    if "account" not in {row["name"] for row in conn.execute("PRAGMA table_info(console_sessions)")}:
        conn.execute("ALTER TABLE console_sessions ADD COLUMN account TEXT NOT NULL DEFAULT ''")  # ConsoleSession's


def _add_ended(conn: sqlite3.Connection, keys: DataKeys) -> None:
    """The table of the listeners' ended conversations; a file from before it has it filled once, from the ended
    records created in the last ``INDEXED_DAYS`` before its latest conversation (each opened once)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ended'").fetchone() is not None:
        return
    with _writing(conn):
        for statement in filter(str.strip, _ENDED_TABLE.split(";")):
            conn.execute(statement)
        rows = conn.execute(
            f"SELECT data FROM conversations WHERE NOT {_ACTIVE_SQL}"
            " AND created_us >= (SELECT MAX(created_us) FROM conversations) - ?", (INDEXED_US,)
        ).fetchall()  # fmt: skip
        for row in rows:
            _write_ended(conn, loads_sealed(keys, "conversation", row["data"], decode_conversation))


def _fill_unread(conn: sqlite3.Connection, keys: DataKeys) -> None:
    """A file from before ``unread_us``: the replies a watermark may still mark (Messenger's: the channel whose read
    receipts are watermarks, ``dispatcher.WATERMARKED``; pending, sent or delivered) take their time, as
    ``outbox_put`` gives it to a reply now; else a watermark would never mark them read. Each row of those
    conversations not read yet is opened once (its author and time), when the file is opened."""
    rows = conn.execute(
        "SELECT t.id, t.data FROM transcript t JOIN conversations c ON c.id = t.conversation_id"
        " WHERE c.channel = ? AND t.delivery IN ('pending', 'sent', 'delivered')", (str(ChannelName.MESSENGER),)
    ).fetchall()  # fmt: skip
    for row in rows:
        author, at_us = entry_author_at(keys.open("entry", row["data"]))
        if author in (Author.BOT, Author.LISTENER):
            conn.execute("UPDATE transcript SET unread_us = ? WHERE id = ?", (at_us, row["id"]))


class SqliteStore:
    """The :class:`~gateway.store.Store` on one SQLite file."""

    takes_kept_receipts = False  # the outbox reads a kept receipt before a send's record and takes it after

    def __init__(
        self, conn: sqlite3.Connection, thread: StoreThread, keys: DataKeys, locks: FileLocks | None = None
    ) -> None:
        self._conn = conn
        self._keys = keys
        self._texts = SharedTexts(keys)
        self._thread = thread
        self._closed = False
        # The SQLite error name of the last refused write (``_REFUSALS``) until a write is taken again, and since when
        # (monotonic): read by ``ping``, written on the store's thread only (``_watched``).
        self._refusing: str | None = None
        self._refusing_since = 0.0
        self._events = LocalEvents()
        # the named locks, across the processes on the file (``gateway erase`` beside the server) since 2026-12-07;
        # before, in this process only (``gateway/store/sqlite_locks.py``). None: this process only (a store opened
        # on a connection alone)
        self._locks: FileLocks | LocalLocks = locks if locks is not None else LocalLocks()
        self._held: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("held", default=None)
        self._claims: dict[str, list[OutboxItem]] = {}  # the last outbox claims made with a token (``outbox_due``)
        # (channel, sender's identity, the id of its active conversation or None) read with this task's last claim
        # (see ``claim``), used once by ``locked_active``
        self._sender_read: contextvars.ContextVar[tuple[str, str, str | None] | None] = contextvars.ContextVar(
            "sender_read", default=None
        )
        # (key, whether the inbox holds items of that sender) read with this task's last ``get_block``, used once
        # by ``inbox_waiting``
        self._inbox_read: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar(
            "inbox_read", default=None
        )

    @classmethod
    async def open(cls, url: str, keys: DataKeys | None = None) -> SqliteStore:
        """``keys``: default, the key file beside the SQLite file (:meth:`DataKeys.for_store`)."""
        path = path_from_url(url)
        thread = StoreThread("gateway-sqlite")
        try:
            if keys is None:
                keys = await thread.run(DataKeys.for_store, url)
            conn = await thread.run(_connect, path, keys)
            locks = FileLocks(lock_file_of(path))  # after ``_connect``: its directory made private
        except (sqlite3.Error, OSError) as error:
            thread.stop()
            raise StoreError(f"cannot open the sqlite store {path}: {error}") from error
        except BaseException:
            thread.stop()
            raise
        return cls(conn, thread, keys, locks)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the store's thread, the only one touching the connection; this task's held writes
        (see ``batch``) are committed first, in the same hop to the thread."""
        if self._closed:
            raise StoreError("the sqlite store is closed")
        held = self._batch()
        writes, events = held.take() if held is not None else ([], [])
        job = work if not writes else functools.partial(_after, writes, work)
        try:
            result: T = await self._thread.run(self._watched, job, self._conn)
        except sqlite3.Error as error:
            if isinstance(error, sqlite3.IntegrityError) and writes:
                raise Conflict("another conversation of this sender is already active") from None
            raise StoreError(f"sqlite: {error}") from error
        for event in events:
            self._events.publish(event)
        return result

    # Batches

    async def _peek(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` (a read) as if this task's held writes were made, leaving them held: applied and read in one
        transaction, rolled back, in one hop to the thread. A read inside a batch through ``_run`` commits the writes
        held before it, which splits the batch in two transactions (an instance dying in between leaves the first:
        a transfer's queue step without its record); this one keeps the batch whole. A held write that fails here
        fails as its commit would."""
        held = self._batch()
        if held is None or not held.writes:
            return await self._run(work)
        if self._closed:
            raise StoreError("the sqlite store is closed")
        try:
            peeked = functools.partial(_peeked, list(held.writes), work)
            answer: T = await self._thread.run(self._watched, peeked, self._conn, False)  # rolled back: no commit
            return answer
        except sqlite3.IntegrityError:  # as the commit would answer (``_run``)
            raise Conflict("another conversation of this sender is already active") from None
        except sqlite3.Error as error:
            raise StoreError(f"sqlite: {error}") from error

    def _batch(self) -> _Held | None:
        """This task's batch, if it is in one. A task created inside a batch inherits the context: its writes must
        not join a batch that may be committed already (they would never be)."""
        held = self._held.get()
        return held if held is not None and held.owner is asyncio.current_task() else None

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        if self._batch() is not None:
            yield
            return
        token = self._held.set(_Held(asyncio.current_task()))
        try:
            yield
            await self._run(_nothing)
        finally:
            self._held.reset(token)

    async def _write(self, write: Write) -> None:
        """Hold the write in this task's batch, or commit it now in its own transaction."""
        held = self._batch()
        if held is not None:
            held.writes.append(write)
            return

        def work(conn: sqlite3.Connection) -> None:
            with _writing(conn):
                write(conn)

        await self._run(work)

    def _watched(self, work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection, commits: bool = True) -> T:
        """``work`` on the store's thread, whether the file takes writes followed. A call refused for a reason of
        the file's (``_REFUSALS``: its lock held past the busy timeout, a full disk…) makes ``ping`` fail (``/readyz``
        503, ``gateway_store_up`` 0), says so in one ERROR line, and makes the calls after it wait for no lock: while
        a backup held the lock for minutes, each call waited the 10 s busy timeout, one after the other on this
        thread (the workers' writes among them), and a webhook was answered 503 after minutes. A call that changes
        a row (``ping``'s probe among them) ends it: the busy timeout back, one INFO line (not a batch's read,
        ``commits`` False, whose writes are rolled back)."""
        if self._refusing is None:
            try:
                return work(conn)
            except sqlite3.Error as error:
                self._refused(conn, error)
                raise
        changes = conn.total_changes
        try:
            result = work(conn)
        except sqlite3.Error as error:
            self._refused(conn, error)
            raise
        if commits and conn.total_changes != changes:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            log.info("alert over: the sqlite store takes writes again after %.0f s",
                     time.monotonic() - self._refusing_since)  # fmt: skip
            self._refusing = None
        return result

    def _refused(self, conn: sqlite3.Connection, error: sqlite3.Error) -> None:
        code = getattr(error, "sqlite_errorcode", None)
        why = _REFUSALS.get(code & 0xFF) if code is not None else None
        if why is None:
            return
        if self._refusing is None:
            self._refusing_since = time.monotonic()
            conn.execute("PRAGMA busy_timeout = 0")  # refused at once until a write is taken again
            log.error("alert: the sqlite store refuses writes (%s): %s; every message is answered 503 (retried by its "
                      "provider), /readyz and gateway_store_up say so until a write is taken again",
                      error.sqlite_errorname, why)  # fmt: skip
        self._refusing = error.sqlite_errorname

    async def ping(self) -> None:
        """The file answers and takes writes: its write lock taken and given back (another process holding it is
        waited for the busy timeout, then refused), and while a write is refused (``_watched``), a row written
        (a full disk refuses it; taken, the refusal is over)."""
        await self._run(self._probe)

    def _probe(self, conn: sqlite3.Connection) -> None:
        if self._refusing is None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return
        with _writing(conn):
            conn.execute("INSERT INTO probe (id, at_us) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at_us = "
                         "excluded.at_us", (to_us(datetime.now(UTC)),))  # fmt: skip

    async def eviction_policy(self) -> str | None:
        return None  # a full disk refuses the write: nothing already written goes

    async def close(self) -> None:
        if self._closed:
            return
        await self._events.close()
        await self._thread.run(self._conn.close)
        self._closed = True
        self._thread.stop()
        if isinstance(self._locks, FileLocks):
            self._locks.close()

    # Conversations

    async def active_conversation(self, channel: ChannelName, sender: str, now: datetime) -> tuple[Conversation, bool]:
        def work(conn: sqlite3.Connection) -> tuple[Conversation, bool]:
            with _writing(conn):
                row = conn.execute(_FIND_ACTIVE, (str(channel), self._keys.identity(channel, sender))).fetchone()
                if row is not None:
                    return self._conversation(row["data"]), False
                conversation = Conversation.start(channel, sender, now)
                _write_conversation(conn, self._keys, conversation)
                return conversation, True

        return await self._run(work)

    async def find_active_conversation(self, channel: ChannelName, sender: str) -> Conversation | None:
        rows = await self._select(_FIND_ACTIVE, (str(channel), self._keys.identity(channel, sender)))
        return self._conversation(rows[0]["data"]) if rows else None

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = await self._select("SELECT data FROM conversations WHERE id = ?", (conversation_id,))
        return self._conversation(rows[0]["data"]) if rows else None

    def _conversation(self, raw: str) -> Conversation:
        return loads_sealed(self._keys, "conversation", raw, decode_conversation)

    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            _write_conversation(conn, self._keys, conversation)
            if not conversation.active:  # an ended conversation's queue entry (a held one's: StatusEffects.finished)
                conn.execute("DELETE FROM queue WHERE conversation_id = ?", (conversation.id,))
            if done is not None:
                expires_us = to_us(datetime.now(UTC)) + done.ttl_seconds * 1_000_000
                conn.execute(
                    "INSERT INTO seen (key, expires_us, owner, conversation_id) VALUES (?, ?, NULL, ?)"
                    " ON CONFLICT (key) DO UPDATE SET expires_us = excluded.expires_us, owner = NULL,"
                    " conversation_id = excluded.conversation_id",
                    (done.key, expires_us, conversation.id),
                )

        try:
            await self._write(work)
        except StoreError as error:
            if isinstance(error.__cause__, sqlite3.IntegrityError):
                raise Conflict("another conversation of this sender is already active") from None
            raise

    async def conversations_by_status(self, status: Status) -> list[Conversation]:
        rows = await self._select(
            "SELECT data FROM conversations WHERE status = ? ORDER BY created_us, id", (str(status),)
        )
        return await decoded_in_parts([row["data"] for row in rows], self._conversation)

    async def conversation_ids_by_status(self, status: Status) -> set[str]:
        rows = await self._select("SELECT id FROM conversations WHERE status = ?", (str(status),))
        return {row["id"] for row in rows}

    async def holders(self) -> dict[str, str | None]:
        """One query: the status's index, each row's queue entry by its key (the two written in one transaction)."""
        rows = await self._select(
            "SELECT c.id, q.taken_by FROM conversations AS c LEFT JOIN queue AS q ON q.conversation_id = c.id"
            " WHERE c.status = ?",
            (str(Status.WITH_LISTENER),),
        )
        return {row["id"]: row["taken_by"] for row in rows}

    async def held_index(self) -> HeldIndex:
        """Two counts: the entries taken, per holder, on the partial index ``queue_held``; the held records, on the
        status's index: one row per listener holding, none per conversation. Written in one transaction, the two
        differ only by a record whose entry names no holder (a step cut short): ``holders`` then too."""
        rows = await self._select(
            "SELECT taken_by, COUNT(*) AS n FROM queue WHERE taken_by IS NOT NULL GROUP BY taken_by", ()
        )
        counts = {row["taken_by"]: int(row["n"]) for row in rows}
        held = await self._select(
            "SELECT COUNT(*) AS n FROM conversations WHERE status = ?", (str(Status.WITH_LISTENER),)
        )
        whole = None if int(held[0]["n"]) == sum(counts.values()) else await self.holders()
        return HeldIndex(counts, whole)

    async def held_ids(self, listeners: Sequence[str]) -> dict[str, list[str]]:
        """One query on the partial index ``queue_held``."""
        if not listeners:
            return {}
        marks = ", ".join("?" for _ in listeners)
        rows = await self._select(
            f"SELECT taken_by, conversation_id FROM queue WHERE taken_by IN ({marks})"
            " ORDER BY taken_by, conversation_id",
            tuple(listeners),
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row["taken_by"], []).append(row["conversation_id"])
        return found

    async def flagged_conversations(self, limit: int) -> list[Conversation]:
        """On the partial index ``conversations_flagged`` (``_FLAGGED_INDEX``): ``limit`` rows read."""
        rows = await self._select(
            "SELECT data FROM conversations WHERE flagged_us IS NOT NULL ORDER BY flagged_us DESC, id DESC LIMIT ?",
            (limit,),
        )
        return await decoded_in_parts([row["data"] for row in rows], self._conversation)

    async def told_closed_waiting(self) -> int:
        """On the partial index ``conversations_told`` (``_TOLD_INDEX``): a count, no record read."""
        rows = await self._select("SELECT COUNT(*) AS n FROM conversations WHERE told_us IS NOT NULL", ())
        return int(rows[0]["n"])

    async def note_read_late(self, conversation_id: str, at: datetime) -> None:
        """One transaction: the row written, those older than ``READ_LATE_HOURS`` and past ``READ_LATE_KEPT`` gone."""
        at_us = to_us(at)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO read_late VALUES (?, ?)", (conversation_id, at_us))
            conn.execute("DELETE FROM read_late WHERE at_us < ?", (at_us - READ_LATE_HOURS * 3600 * 1_000_000,))
            conn.execute(
                "DELETE FROM read_late WHERE conversation_id NOT IN"
                " (SELECT conversation_id FROM read_late ORDER BY at_us DESC LIMIT ?)",
                (READ_LATE_KEPT,),
            )

        await self._write(work)

    async def read_late(self, since: datetime, limit: int) -> list[Conversation]:
        rows = await self._select(
            "SELECT c.data FROM read_late AS r JOIN conversations AS c ON c.id = r.conversation_id"
            " WHERE r.at_us >= ? ORDER BY r.at_us DESC, r.conversation_id DESC LIMIT ?",
            (to_us(since), limit),
        )
        return await decoded_in_parts([row["data"] for row in rows], self._conversation)

    async def forget_read_late(self, conversation_id: str) -> bool:
        return await self._change("DELETE FROM read_late WHERE conversation_id = ?", (conversation_id,)) > 0

    async def list_conversations(self, since: datetime, until: datetime) -> list[Conversation]:
        rows = await self._select(
            "SELECT data FROM conversations WHERE created_us >= ? AND created_us < ? ORDER BY created_us, id",
            (to_us(since), to_us(until)),
        )
        return await decoded_in_parts([row["data"] for row in rows], self._conversation)

    async def ended_with(self, listener: str, since: datetime, until: datetime, limit: int) -> list[Conversation]:
        """On the index ``ended_listener``: the listener's rows ended since ``since``, ``limit`` records read."""
        rows = await self._select(
            "SELECT c.data FROM ended AS e JOIN conversations AS c ON c.id = e.conversation_id"
            " WHERE e.listener = ? AND e.ended_us >= ? AND e.created_us >= ? AND e.created_us < ?"
            " ORDER BY e.ended_us DESC, e.created_us, e.conversation_id LIMIT ?",
            (listener, to_us(since), to_us(since), to_us(until), limit),
        )
        return await decoded_in_parts([row["data"] for row in rows], self._conversation)

    async def conversations_of(
        self, channel: ChannelName, sender: str, since: datetime, until: datetime, limit: int
    ) -> list[Conversation]:
        """On the index ``conversations_sender``: ``limit`` records read at most."""
        if not sender:
            return []
        rows = await self._select(
            "SELECT data FROM conversations WHERE channel = ? AND sender = ? AND created_us >= ? AND created_us < ?"
            " ORDER BY created_us DESC, id DESC LIMIT ?",
            (str(channel), self._keys.identity(channel, sender), to_us(since), to_us(until), limit),
        )
        return await decoded_in_parts([row["data"] for row in rows], self._conversation)

    async def conversations_keyed(self, identity: str, limit: int) -> list[Conversation]:
        """On the index ``conversations_sender``, one range per channel: ``limit`` records read at most."""
        channels = [str(c) for c in ChannelName]
        rows = await self._select(
            f"SELECT data FROM conversations WHERE channel IN ({', '.join('?' * len(channels))}) AND sender = ?"
            " ORDER BY created_us DESC, id DESC LIMIT ?",
            (*channels, identity, limit),
        )
        found = await decoded_in_parts([row["data"] for row in rows], self._conversation)
        return [c for c in found if c.sender and self._keys.identity(c.channel, c.sender) == identity]

    async def open_conversations_of_client(self, client: str) -> int:
        rows = await self._select(_COUNT_CLIENT, (client,))
        return int(rows[0][0])

    async def client_at_cap(self, client: str, cap: int) -> bool:
        """The count on the partial index: cheap already."""
        return await self.open_conversations_of_client(client) >= cap

    async def _select(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        """Inside a batch, read with its held writes made and kept held (``_peek``): the batch stays one
        transaction."""
        return await self._peek(lambda conn: conn.execute(sql, params).fetchall())

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        """One write statement that answers nothing: held inside a batch."""
        await self._write(lambda conn: conn.execute(sql, params))

    async def _change(self, sql: str, params: tuple[Any, ...]) -> int:
        """One write statement in its own transaction; the number of rows it changed."""

        def work(conn: sqlite3.Connection) -> int:
            with _writing(conn):
                return conn.execute(sql, params).rowcount

        return await self._run(work)

    # Transcripts

    def share_texts(self, own: OwnTexts) -> None:
        self._texts.allow(own)

    async def append_transcript(self, entry: TranscriptEntry) -> None:
        shared = self._texts.reference(entry)
        row = (entry.id, entry.conversation_id, str(entry.delivery), entry.provider_message_id,
               self._keys.seal("entry", encode_entry_data(entry, shared)))  # fmt: skip

        def write(conn: sqlite3.Connection) -> None:
            if shared is not None:  # its text first, in the same transaction: never a reference to nothing
                conn.execute("INSERT OR IGNORE INTO texts (ref, data) VALUES (?, ?)", (shared.ref, shared.sealed))
            conn.execute(
                "INSERT OR IGNORE INTO transcript (id, conversation_id, delivery, provider_message_id, data)"
                " VALUES (?, ?, ?, ?, ?)",
                row,
            )

        await self._write(write)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        rows = await self._select("SELECT * FROM transcript WHERE conversation_id = ? ORDER BY seq", (conversation_id,))
        return await self._entries(rows)

    async def entries_written(self, conversation_id: str, entry_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(entry_ids))
        if not ids:
            return set()
        marks = ", ".join("?" * len(ids))
        rows = await self._select(
            f"SELECT id FROM transcript WHERE conversation_id = ? AND id IN ({marks})", (conversation_id, *ids)
        )
        return {row["id"] for row in rows}

    async def _entries(self, rows: list[sqlite3.Row]) -> list[TranscriptEntry]:
        shared = self._texts.get
        return await self._texts.decoded_in_parts(rows, lambda row: _entry(row, self._keys, shared), self._shared, PART)

    async def _shared(self) -> Stored:
        return [(row["ref"], row["data"]) for row in await self._select("SELECT ref, data FROM texts", ())]

    async def set_delivery(
        self, conversation_id: str, entry_id: str, delivery: Delivery, provider_message_id: str | None = None
    ) -> bool:
        assignments, values = _delivered(delivery, provider_message_id)

        def work(conn: sqlite3.Connection) -> bool:
            with _writing(conn):
                changed = conn.execute(f"UPDATE transcript SET {assignments} WHERE id = ? AND conversation_id = ?",
                                       (*values, entry_id, conversation_id)).rowcount  # fmt: skip
                _index_parts(conn, conversation_id, entry_id, provider_message_id)
                return changed == 1

        return await self._run(work)

    async def advance_delivery(self, conversation_id: str, entry_id: str, delivery: Delivery) -> bool:
        """One ``UPDATE`` whose condition is the entry's status: read and changed together."""
        order = [Delivery.PENDING, Delivery.SENT, Delivery.DELIVERED, Delivery.READ]
        below = order[: order.index(delivery)] if delivery in order else [*order, Delivery.FAILED]
        assignments, values = _delivered(delivery, None)
        marks = ", ".join("?" * len(below))
        changed = await self._change(
            f"UPDATE transcript SET {assignments} WHERE id = ? AND conversation_id = ? AND delivery IN ({marks})",
            (*values, entry_id, conversation_id, *(str(d) for d in below)),
        )
        return changed == 1

    async def advance_part(
        self, conversation_id: str, entry_id: str, provider_message_id: str, delivery: Delivery
    ) -> Delivery | None:
        """An entry of one part: :meth:`advance_delivery`. A reply in parts: its row read and changed in one
        transaction."""

        def work(conn: sqlite3.Connection) -> tuple[bool, Delivery | None]:
            with _writing(conn):
                row = conn.execute(
                    "SELECT delivery, provider_message_id FROM transcript WHERE id = ? AND conversation_id = ?",
                    (entry_id, conversation_id),
                ).fetchone()
                if row is None or not in_parts(row["provider_message_id"]):
                    return False, None
                shown = Delivery.read(row["delivery"])
                advanced = part_advanced(row["provider_message_id"], shown, provider_message_id, delivery)
                if advanced is None:
                    return True, None
                ids, now = advanced
                assignments, values = _delivered(now, ids) if now is not shown else ("provider_message_id = ?", (ids,))
                conn.execute(f"UPDATE transcript SET {assignments} WHERE id = ?", (*values, entry_id))
                return True, (now if now is not shown else None)

        parts, shown = await self._run(work)
        if parts:
            return shown
        return delivery if await self.advance_delivery(conversation_id, entry_id, delivery) else None

    async def mark_until(self, conversation_id: str, until: datetime, delivery: Delivery) -> list[str]:
        """One transaction reading only the conversation's rows awaiting a read receipt up to ``until`` (the
        ``transcript_unread`` partial index), never the transcript; a watermark meeting one still pending is kept
        (``kept_watermarks``, the newest of each delivery, lapsed rows swept then) for its record."""
        if delivery not in (Delivery.DELIVERED, Delivery.READ):
            raise ValueError(f"a watermark marks entries delivered or read, not {delivery}")
        below = ("sent", "delivered") if delivery is Delivery.READ else ("sent",)
        until_us, now_us = to_us(until), to_us(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> list[str]:
            with _writing(conn):
                rows = conn.execute(
                    "SELECT id, delivery FROM transcript WHERE conversation_id = ? AND unread_us IS NOT NULL"
                    " AND unread_us <= ? ORDER BY seq",
                    (conversation_id, until_us),
                ).fetchall()
                ids = [row["id"] for row in rows if row["delivery"] in below]
                assignments, values = _delivered(delivery, None)
                conn.executemany(f"UPDATE transcript SET {assignments} WHERE id = ?", [(*values, i) for i in ids])
                if any(row["delivery"] == "pending" for row in rows):
                    conn.execute("DELETE FROM kept_watermarks WHERE expires_us <= ?", (now_us,))
                    conn.execute(_KEEP_WATERMARK, (conversation_id, str(delivery), until_us,
                                                   now_us + int(RECEIPT_KEPT_SECONDS * 1_000_000)))  # fmt: skip
                return ids

        return await self._run(work)

    async def flag_entry(self, conversation_id: str, entry_id: str, flag: RiskFlag) -> bool:
        """Its row read and rewritten in one transaction (only its sealed data changes)."""

        def work(conn: sqlite3.Connection) -> bool:
            with _writing(conn):
                row = conn.execute(
                    "SELECT data FROM transcript WHERE id = ? AND conversation_id = ?", (entry_id, conversation_id)
                ).fetchone()
                raw = self._keys.open("entry", row["data"]) if row is not None else None
                flagged = flagged_entry_data(raw, flag) if raw is not None else None
                if flagged is not None and flagged != raw:
                    conn.execute("UPDATE transcript SET data = ? WHERE id = ?",
                                 (self._keys.seal("entry", flagged), entry_id))  # fmt: skip
                return flagged is not None

        return await self._run(work)

    async def find_by_provider_id(self, provider_message_id: str) -> TranscriptEntry | None:
        """The entry holding the id alone, else the reply in parts one of whose parts has it (``transcript_parts``)."""
        rows = await self._select(
            "SELECT * FROM transcript WHERE provider_message_id = ? ORDER BY seq LIMIT 1",
            (provider_message_id,),
        ) or await self._select(
            "SELECT t.* FROM transcript_parts p JOIN transcript t ON t.id = p.entry_id"
            " WHERE p.provider_message_id = ? LIMIT 1",
            (provider_message_id,),
        )
        return (await self._entries(rows))[0] if rows else None

    async def keep_receipt(
        self, provider_message_id: str, delivery: Delivery, ttl_seconds: float = RECEIPT_KEPT_SECONDS
    ) -> None:
        """The lapsed ones swept in the same transaction (as console sessions are)."""
        now_us = to_us(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> None:
            with _writing(conn):
                conn.execute("DELETE FROM kept_receipts WHERE expires_us <= ?", (now_us,))
                conn.execute("INSERT OR REPLACE INTO kept_receipts (provider_message_id, delivery, expires_us)"
                             " VALUES (?, ?, ?)",
                             (provider_message_id, str(delivery), now_us + int(ttl_seconds * 1_000_000)))  # fmt: skip

        await self._run(work)

    async def kept_receipt(self, provider_message_id: str) -> Delivery | None:
        rows = await self._select("SELECT delivery FROM kept_receipts WHERE provider_message_id = ? AND expires_us > ?",
                                  (provider_message_id, to_us(datetime.now(UTC))))  # fmt: skip
        return furthest(Delivery(row["delivery"]) for row in rows)

    async def kept_receipts_waiting(self, kept_before: datetime, limit: int) -> list[str]:
        now_us = to_us(datetime.now(UTC))
        before = to_us(kept_before) + int(RECEIPT_KEPT_SECONDS * 1_000_000)
        rows = await self._select(
            "SELECT provider_message_id, MAX(expires_us) AS until FROM kept_receipts WHERE expires_us > ?"
            " GROUP BY provider_message_id HAVING until <= ? ORDER BY until DESC LIMIT ?",
            (now_us, before, limit),
        )
        return [row["provider_message_id"] for row in rows]

    async def take_receipt(self, provider_message_id: str) -> Delivery | None:
        now_us = to_us(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> Delivery | None:
            rows = conn.execute(
                "SELECT delivery FROM kept_receipts WHERE provider_message_id = ? AND expires_us > ?",
                (provider_message_id, now_us),
            ).fetchall()
            if not rows:  # nearly every send: a read, no write transaction
                return None
            with _writing(conn):
                conn.execute("DELETE FROM kept_receipts WHERE provider_message_id = ?", (provider_message_id,))
            return furthest(Delivery(row["delivery"]) for row in rows)

        return await self._run(work)

    async def keep_opening(self, digest: str, conversation_id: str, ttl_seconds: float = OPENING_KEPT_SECONDS) -> None:
        """The lapsed ones swept in the same transaction (as kept receipts are)."""
        now_us = to_us(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> None:
            with _writing(conn):
                conn.execute("DELETE FROM openings WHERE expires_us <= ?", (now_us,))
                conn.execute("INSERT OR REPLACE INTO openings (digest, conversation_id, expires_us) VALUES (?, ?, ?)",
                             (digest, conversation_id, now_us + int(ttl_seconds * 1_000_000)))  # fmt: skip

        await self._run(work)

    async def opening(self, digest: str) -> str | None:
        now_us = to_us(datetime.now(UTC))
        rows = await self._select("SELECT conversation_id FROM openings WHERE digest = ? AND expires_us > ?",
                                  (digest, now_us))  # fmt: skip
        return str(rows[0]["conversation_id"]) if rows else None

    async def keep_erased(
        self, digest: str, at: datetime, ttl_seconds: float, *, conversation_id: str | None = None
    ) -> None:
        """The lapsed ones swept in the same transaction (as openings are). ``conversation_id``: a row of its own
        too (``ERASING`` + its id, deleted with its record), in the same transaction."""
        now_us = to_us(datetime.now(UTC))
        rows = [(digest, to_us(at), now_us + int(ttl_seconds * 1_000_000))]
        if conversation_id is not None:
            rows.append((ERASING + conversation_id, to_us(at), rows[0][2]))

        def work(conn: sqlite3.Connection) -> None:
            with _writing(conn):
                conn.execute("DELETE FROM erased WHERE expires_us <= ?", (now_us,))
                conn.executemany("INSERT OR REPLACE INTO erased (digest, at_us, expires_us) VALUES (?, ?, ?)", rows)

        await self._run(work)

    async def erasing(self, conversation_id: str) -> bool:
        rows = await self._select("SELECT 1 FROM erased WHERE digest = ?", (ERASING + conversation_id,))
        return bool(rows)

    async def erased_at(self, digest: str) -> datetime | None:
        now_us = to_us(datetime.now(UTC))
        rows = await self._select("SELECT at_us FROM erased WHERE digest = ? AND expires_us > ?", (digest, now_us))
        return from_us(rows[0]["at_us"]) if rows else None

    async def forget_lapsed_erased(self) -> None:
        """Until 2026-12-07 a lapsed row was swept only by the next ``keep_erased``: kept for good on a quiet line."""
        await self._change("DELETE FROM erased WHERE expires_us <= ?", (to_us(datetime.now(UTC)),))

    # De-duplication

    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, now: datetime | None = None,
        sender: tuple[ChannelName, str] | None = None, kept_seconds: int | None = None, take_over: bool = False,
    ) -> ClaimState:  # fmt: skip
        """``sender``: the id of its active conversation is read in the same hop to the store's thread and kept for
        this task's next ``locked_active``, which locks that conversation without looking it up again (and looks
        it up if it is no longer active by then). ``take_over``: another owner's row still within its lease becomes
        the caller's (since 2026-12-07)."""
        work = _claim(key, owner, lease_seconds, to_us(now or datetime.now(UTC)), take_over=take_over)
        if sender is None:
            return await self._run(work)
        identity = (str(sender[0]), self._keys.identity(*sender))

        def claim_reading(conn: sqlite3.Connection) -> tuple[ClaimState, str | None]:
            state = work(conn)
            row = conn.execute(_FIND_ACTIVE_ID, identity).fetchone()
            return state, None if row is None else str(row["id"])

        state, held = await self._run(claim_reading)
        self._sender_read.set((*identity, held))
        return state

    async def release(self, key: str, owner: str) -> None:
        await self._change("DELETE FROM seen WHERE key = ? AND owner = ?", (key, owner))

    # The waiting queue

    async def enqueue(
        self, conversation_id: str, queue: str, priority: Priority, at: datetime, *, flag: RiskFlag | None = None,
        unless_leaving: bool = False, holder: str | Anyone | None = ANYONE,
    ) -> None:  # fmt: skip
        """The entry with its priority and its flag: one row, in one transaction (``unless_leaving``: nothing is
        listed on SQLite, an ending being one transaction). ``holder`` (since 2026-12-08, as Redis's): an entry held
        by another listener is refused, Conflict, nothing changed (in a batch, raised when it commits). SQLite never
        had the late step that stops on Redis: its locks have no lease and the step is in the batch's transaction."""
        stored_flag = None if flag is None else dumps(queue_flag(flag))

        def write(conn: sqlite3.Connection) -> None:
            if holder is not ANYONE:
                row = conn.execute(
                    "SELECT taken_by FROM queue WHERE conversation_id = ?", (conversation_id,)
                ).fetchone()
                if row is not None and row[0] is not None and row[0] != holder:
                    raise Conflict(f"conversation {conversation_id} is held by another listener: not moved")
            # DELETE then INSERT rather than INSERT OR REPLACE, whose implicit delete fires no trigger: the
            # waiting counts (``_count_waiting``) would keep the replaced entry.
            conn.execute("DELETE FROM queue WHERE conversation_id = ?", (conversation_id,))
            conn.execute(
                "INSERT INTO queue (conversation_id, queue, priority, rank, at_us, seq, taken_by, flag)"
                " VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM queue), NULL, ?)",
                (conversation_id, queue, str(priority), priority.rank, to_us(at), stored_flag),
            )

        await self._write(write)

    async def waiting(self, queue: str | None = None) -> list[QueueEntry]:
        rows = await self._select(
            "SELECT * FROM queue WHERE taken_by IS NULL AND (? IS NULL OR queue = ?) ORDER BY rank, at_us, seq",
            (queue, queue),
        )
        return [_queue_entry(row) for row in rows]

    async def waiting_page(self, limit: int) -> WaitingPage:
        """The counts from ``queue_hours`` (its triggers' per queue, priority and hour), then per queue and priority
        the first ``limit`` rows by the queue's index (``queue_order``), the earliest ``limit`` and the latest: one
        hop, no row read past those."""
        if limit < 1:  # refused as on Redis, where ZRANGE 0 -1 would read every member
            raise ValueError("a page of the queue is 1 entry or more")

        def work(conn: sqlite3.Connection) -> WaitingPage:
            counts = conn.execute("SELECT queue, rank, SUM(n) FROM queue_hours GROUP BY queue, rank").fetchall()
            total = sum(int(row[2]) for row in counts)
            urgent = sum(int(row[2]) for row in counts if row[1] == Priority.URGENT.rank)
            first: list[sqlite3.Row] = []
            early: list[sqlite3.Row] = []
            late: list[sqlite3.Row] = []
            for queue, rank, _ in counts:
                where = "FROM queue WHERE taken_by IS NULL AND queue = ? AND rank = ? ORDER BY"
                first += conn.execute(f"SELECT * {where} at_us, seq LIMIT ?", (queue, rank, limit)).fetchall()
                late += conn.execute(f"SELECT * {where} at_us DESC, seq DESC LIMIT 1", (queue, rank)).fetchall()
            early = sorted(first, key=lambda row: (row["at_us"], row["seq"]))[:limit]  # a rank's earliest: its first
            first = sorted(first, key=lambda row: (row["rank"], row["at_us"], row["seq"]))[:limit]
            newest = max(late, key=lambda row: (row["at_us"], row["seq"]), default=None)
            latest = _queue_entry(newest) if newest else None
            by_rank = {p.rank: p for p in Priority}
            kept = tuple((str(row[0]), by_rank[int(row[1])], int(row[2])) for row in counts if int(row[2]))
            entries = tuple(map(_queue_entry, first)), tuple(map(_queue_entry, early))
            return WaitingPage(entries[0], total, urgent, entries[1], latest, kept)

        return await self._peek(work)

    async def waiting_ids(self) -> set[str]:
        rows = await self._select("SELECT conversation_id FROM queue WHERE taken_by IS NULL", ())
        return {row["conversation_id"] for row in rows}

    async def list_waiting(self, conversation_id: str) -> bool:
        return False  # the line is read from the queue's rows themselves: no listing to lose

    async def position(self, conversation_id: str) -> int | None:
        def work(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT queue, rank, at_us, seq FROM queue WHERE conversation_id = ? AND taken_by IS NULL",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return None
            queue, rank, at_us, seq = tuple(row)
            hour, second = at_us // 3_600_000_000, at_us // 1_000_000
            hours = conn.execute(
                "SELECT COALESCE(SUM(n), 0) FROM queue_hours WHERE queue = ? AND (rank < ? OR (rank = ? AND hour < ?))",
                (queue, rank, rank, hour),
            ).fetchone()[0]
            seconds = conn.execute(
                "SELECT COALESCE(SUM(n), 0) FROM queue_seconds WHERE queue = ? AND rank = ? AND second >= ?"
                " AND second < ?",
                (queue, rank, hour * 3600, second),
            ).fetchone()[0]
            same = conn.execute(
                "SELECT COUNT(*) FROM queue WHERE queue = ? AND taken_by IS NULL AND rank = ? AND at_us >= ?"
                " AND (at_us, seq) < (?, ?)",
                (queue, rank, second * 1_000_000, at_us, seq),
            ).fetchone()[0]
            return int(hours) + int(seconds) + int(same) + 1

        return await self._peek(work)  # inside a batch (a hand-off, a transfer): the held enqueue read, kept held

    async def take(self, conversation_id: str, listener: str, at: datetime) -> QueueEntry:
        """Inside a batch (a take's, under the conversation's lock), the entry is read now and its change held, so
        that the take's writes are one transaction: an instance dying halfway leaves none of them, never a taken
        entry beside a record that says queued. Its change still checks that the entry waits: a Conflict there
        drops the whole transaction."""
        if not listener:
            raise ValueError("take needs a listener name")
        at_us = to_us(at)

        def count(conn: sqlite3.Connection, entry: QueueEntry) -> None:
            conn.execute("DELETE FROM takes WHERE queue = ? AND at_us < ?", (entry.queue, at_us - TAKES_KEPT_US))
            conn.execute("INSERT OR REPLACE INTO takes VALUES (?, ?, ?)", (conversation_id, entry.queue, at_us))

        if self._batch() is not None:
            rows = await self._select(_WAITING_ENTRY, (conversation_id,))
            if not rows:
                raise Conflict(f"conversation {conversation_id} is not waiting in a queue")
            entry = replace(_queue_entry(rows[0]), taken_by=listener)

            def write(conn: sqlite3.Connection) -> None:
                if conn.execute(_TAKE, (listener, conversation_id)).rowcount != 1:
                    raise Conflict(f"conversation {conversation_id} is not waiting in a queue")
                count(conn, entry)

            await self._write(write)
            return entry
        found = await self._update_entry(conversation_id, _TAKE, (listener, conversation_id), count)
        if found is None:
            raise Conflict(f"conversation {conversation_id} is not waiting in a queue")
        return found

    async def queue_entry(self, conversation_id: str) -> QueueEntry | None:
        rows = await self._select("SELECT * FROM queue WHERE conversation_id = ?", (conversation_id,))
        return _queue_entry(rows[0]) if rows else None

    async def takes_since(self, queue: str, since: datetime) -> int:
        rows = await self._select("SELECT COUNT(*) FROM takes WHERE queue = ? AND at_us >= ?", (queue, to_us(since)))
        return int(rows[0][0])

    async def held_by(self, listener: str) -> int:
        rows = await self._select("SELECT COUNT(*) FROM queue WHERE taken_by = ?", (listener,))
        return int(rows[0][0])

    async def requeue(
        self, conversation_id: str, *, unless_leaving: bool = False, holder: str | Anyone = ANYONE
    ) -> QueueEntry:
        """``unless_leaving``: nothing is listed on SQLite (an ending is one transaction). Inside a batch (a
        hand-back's, under the conversation's lock: no other change of its entry can come between), the entry is
        read now and its change held, so that the hand-back's writes are one transaction: an instance dying halfway
        leaves none of them, never a waiting entry beside a record that says held. ``holder`` (since 2026-12-08, as
        Redis's): an entry another listener holds is refused, Conflict. SQLite never had the late step that test
        stops on Redis: its locks have no lease (a stalled holder keeps its lock) and the step is in the batch.
        :data:`ANYONE`: unchecked (since 2026-12-08; until then None, and an empty name, which is refused now)."""
        checked = checked_holder(holder)
        if self._batch() is not None:
            rows = await self._select("SELECT * FROM queue WHERE conversation_id = ?", (conversation_id,))
            if not rows:
                raise Conflict(f"conversation {conversation_id} has no queue entry")
            taken_by = rows[0]["taken_by"]
            if checked is not None and taken_by is not None and taken_by != checked:
                raise Conflict(f"conversation {conversation_id} is held by another listener")
            await self._write(lambda conn: conn.execute(_REQUEUE, (conversation_id,)))
            return replace(_queue_entry(rows[0]), taken_by=None)
        sql, params = (_REQUEUE, (conversation_id,)) if checked is None else (_REQUEUE_FROM, (conversation_id, checked))
        entry = await self._update_entry(conversation_id, sql, params)
        if entry is None:
            raise Conflict(f"conversation {conversation_id} has no queue entry, or another listener holds it")
        return entry

    async def _update_entry(
        self,
        conversation_id: str,
        sql: str,
        params: tuple[Any, ...],
        then: Callable[[sqlite3.Connection, QueueEntry], None] = lambda conn, entry: None,
    ) -> QueueEntry | None:
        """Run an UPDATE on one queue row (then ``then``, in the same transaction); the row afterwards, or None
        if nothing matched."""

        def work(conn: sqlite3.Connection) -> QueueEntry | None:
            with _writing(conn):
                if conn.execute(sql, params).rowcount != 1:
                    return None
                row = conn.execute("SELECT * FROM queue WHERE conversation_id = ?", (conversation_id,))
                entry = _queue_entry(row.fetchone())
                then(conn, entry)
                return entry

        return await self._run(work)

    async def remove_from_queue(self, conversation_id: str) -> bool:
        """Inside a batch (a close's, under the conversation's lock), the entry is looked for now and its deletion
        held: the close's writes are one transaction, never an entry gone beside a record that says queued."""
        if self._batch() is not None:
            found = await self._peek(lambda conn: conn.execute(_HAS_ENTRY, (conversation_id,)).fetchall())
            await self._execute("DELETE FROM queue WHERE conversation_id = ?", (conversation_id,))
            return bool(found)
        return await self._change("DELETE FROM queue WHERE conversation_id = ?", (conversation_id,)) == 1

    async def begin_move(self, conversation_id: str, mover: str) -> None:
        """Nothing: a transfer is one transaction here (``QueueStore.begin_move``)."""

    async def moves_begun(self) -> dict[str, str | None]:
        return {}

    async def end_move(self, conversation_id: str) -> None:
        """Nothing: see :meth:`begin_move`."""

    async def begin_close(self, conversation_id: str, closer: str) -> None:
        """Nothing: a close is one transaction here (``QueueStore.begin_close``)."""

    async def closes_begun(self) -> dict[str, str]:
        return {}

    async def end_close(self, conversation_id: str) -> None:
        """Nothing: see :meth:`begin_close`."""

    async def begin_take(self, conversation_id: str, listener: str) -> None:
        """Nothing: a take is one transaction here (``QueueStore.begin_take``)."""

    async def takes_begun(self) -> dict[str, str]:
        return {}

    async def end_take(self, conversation_id: str) -> None:
        """Nothing: see :meth:`begin_take`."""

    async def begin_leaving(self, conversation_id: str, how: str) -> None:
        """Nothing: a quick exit, a "Terminer" and an idle close are each one transaction here (a batch:
        ``QueueStore.begin_leaving``)."""

    async def leavings_begun(self) -> dict[str, str]:
        return {}

    async def end_leaving(self, conversation_id: str) -> None:
        """Nothing: see :meth:`begin_leaving`."""

    async def begin_erasure(self, conversation_id: str, key: str) -> None:
        """In the confirming message's transaction (its batch): ``QueueStore.begin_erasure``, merged with what is
        listed (``erasure_listed``, read in the same transaction; until 2026-12-07 replaced)."""

        def listed(conn: sqlite3.Connection) -> None:
            found = conn.execute("SELECT key FROM erasing WHERE conversation_id = ?", (conversation_id,)).fetchone()
            merged = erasure_listed(None if found is None else str(found[0]), key)
            conn.execute("INSERT OR REPLACE INTO erasing VALUES (?, ?)", (conversation_id, merged))

        await self._write(listed)

    async def erasures_begun(self) -> dict[str, str]:
        rows = await self._select("SELECT conversation_id, key FROM erasing", ())
        return {str(row["conversation_id"]): str(row["key"]) for row in rows}

    async def end_erasure(self, conversation_id: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM erasing WHERE conversation_id = ?",
                                                    (conversation_id,)))  # fmt: skip

    async def ending_begun(self, conversation_id: str) -> str | None:
        """None: nothing is listed here (see :meth:`begin_leaving`)."""
        return None

    # Listener accounts

    async def add_listener(self, listener: Listener) -> None:
        changed = await self._change(
            "INSERT OR IGNORE INTO listeners (name, password_hash, supervisor, capacity, created_us)"
            " VALUES (?, ?, ?, ?, ?)",
            _listener_row(listener),
        )
        if changed != 1:
            raise Conflict(f"a listener named {listener.name!r} already exists")

    async def get_listener(self, name: str) -> Listener | None:
        rows = await self._select("SELECT * FROM listeners WHERE name = ?", (name,))
        return _listener(rows[0]) if rows else None

    async def list_listeners(self) -> list[Listener]:
        return [_listener(row) for row in await self._select("SELECT * FROM listeners ORDER BY name", ())]

    async def update_listener(self, listener: Listener, *, audit: AuditEntry | None = None) -> bool:
        """The account and its ``audit`` line in one transaction."""
        name, *rest = _listener_row(listener)
        raw = None if audit is None else dumps(encode_audit(audit))

        def work(conn: sqlite3.Connection) -> bool:
            with _writing(conn):
                changed = conn.execute("UPDATE listeners SET password_hash = ?, supervisor = ?, capacity = ?,"
                                       " created_us = ? WHERE name = ?", (*rest, name)).rowcount == 1  # fmt: skip
                if changed and raw is not None:
                    conn.execute("INSERT INTO audit (data) VALUES (?)", (raw,))
                return changed

        return await self._run(work)

    async def remove_listener(self, name: str) -> bool:
        return await self._change("DELETE FROM listeners WHERE name = ?", (name,)) == 1

    # Console sessions

    async def put_session(self, session: ConsoleSession, now: datetime) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _writing(conn):
                conn.execute("DELETE FROM console_sessions WHERE expires_us <= ?", (to_us(now),))
                conn.execute("INSERT OR REPLACE INTO console_sessions (key, name, expires_us, account)"
                             " VALUES (?, ?, ?, ?)", (session.key, session.name, to_us(session.expires),
                                                      session.account))  # fmt: skip

        await self._run(work)

    async def get_session(self, key: str, now: datetime) -> ConsoleSession | None:
        rows = await self._select(
            "SELECT name, expires_us, account FROM console_sessions WHERE key = ? AND expires_us > ?", (key, to_us(now))
        )
        return (
            ConsoleSession(key, rows[0]["name"], from_us(rows[0]["expires_us"]), rows[0]["account"]) if rows else None
        )

    async def end_session(self, key: str) -> bool:
        return await self._change("DELETE FROM console_sessions WHERE key = ?", (key,)) == 1

    async def end_sessions(self, name: str) -> int:
        return await self._change("DELETE FROM console_sessions WHERE name = ?", (name,))

    async def live_sessions(self, name: str, now: datetime) -> list[ConsoleSession]:
        query = "SELECT key, expires_us, account FROM console_sessions WHERE name = ? AND expires_us > ?"
        rows = await self._select(query, (name, to_us(now)))
        return [ConsoleSession(row["key"], name, from_us(row["expires_us"]), row["account"]) for row in rows]

    # The outbox

    async def outbox_put(self, item: OutboxItem) -> None:
        """A new item's transcript entry, still pending, awaits its read receipt from then on when the item says so
        (``OutboxItem.awaits_read``, ``_UNREAD_INDEX``)."""
        row = (item.id, item.conversation_id, dumps_sealed(self._keys, "outbox", item.payload), to_us(item.created_at),
               to_us(item.next_attempt_at or item.created_at))  # fmt: skip

        def write(conn: sqlite3.Connection) -> None:
            put = conn.execute("INSERT OR IGNORE INTO outbox (id, conversation_id, payload, created_us, next_us)"
                               " VALUES (?, ?, ?, ?, ?)", row)  # fmt: skip
            if put.rowcount == 1 and row[4] < row[3]:  # a risky turn's reply: its conversation's earlier ones waiting
                conn.execute(_OUTBOX_AHEAD, (row[4], row[1], row[0], row[3], row[4]))  # go with it
                conn.execute(_OUTBOX_URGENT, (row[1], row[0]))  # and its line stays ahead until it is sent
            if put.rowcount == 1 and item.awaits_read:
                conn.execute("UPDATE transcript SET unread_us = ? WHERE id = ? AND conversation_id = ?"
                             " AND delivery = 'pending'", (row[3], item.id, item.conversation_id))  # fmt: skip

        await self._write(write)

    async def outbox_due(
        self,
        now: datetime,
        limit: int,
        *,
        lease_seconds: int = 60,
        run: int = 1,
        claim: str | None = None,
        answered: str | None = None,
    ) -> list[OutboxItem]:
        """``claim``: the items claimed are kept in memory under the token (the last few claims): a call whose
        answer was lost after its transaction committed (its caller cancelled) is answered the same when made
        again. An instance dying loses them with its sends in flight: their lease is the bound then."""
        now_us = to_us(now)
        lease_us = now_us + lease_seconds * 1_000_000
        if answered is not None:
            self._claims.pop(answered, None)
        if claim is not None and (made := self._claims.get(claim)) is not None:
            return made

        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            with _writing(conn):
                purge_before = to_us(now - RESOLVED_OUTBOX_KEPT)
                conn.execute(_PURGE_RESOLVED, (purge_before,))
                rows = []
                for head in conn.execute(_DUE_HEADS, (now_us, limit)).fetchall():
                    rows.append(head)
                    if run > 1:  # the next pending ones of its conversation, up to the first not due
                        after = conn.execute(_RUN_AFTER, (head["conversation_id"], head["seq"], run - 1)).fetchall()
                        rows.extend(itertools.takewhile(lambda row: row["next_us"] <= now_us, after))
                ids = [row["id"] for row in rows]
                conn.executemany("UPDATE outbox SET next_us = ? WHERE id = ?", [(lease_us, i) for i in ids])
            claimed = [_outbox_item(row, self._keys, next_us=lease_us) for row in rows]
            if claim is not None and claimed:  # in the store's thread, once committed: kept whatever its caller does
                self._claims[claim] = claimed
                while len(self._claims) > _CLAIMS_KEPT:
                    del self._claims[next(iter(self._claims))]
            return claimed

        return await self._run(work)

    async def outbox_get(self, conversation_id: str, item_id: str) -> OutboxItem | None:
        rows = await self._select(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ? AND conversation_id = ?",
                                  (item_id, conversation_id))  # fmt: skip
        return _outbox_item(rows[0], self._keys) if rows else None

    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        changed = await self._change(
            "UPDATE outbox SET next_us = ? WHERE id = ? AND conversation_id = ? AND status = 'pending' AND next_us = ?",
            (to_us(until), item_id, conversation_id, to_us(lease)),
        )
        return changed == 1

    async def outbox_mark_sent(
        self,
        conversation_id: str,
        item_id: str,
        provider_message_id: str | None,
        *,
        lease: datetime | None = None,
        next_lease: datetime | None = None,  # the next item's own time says when it is due: not needed here
        receipt: Delivery | None = None,
        answered_at: datetime | None = None,
    ) -> bool | Delivery:
        assignments = "provider_message_id = ?, payload = '{}'"  # dropped, as on Redis
        return await self._resolve(conversation_id, item_id, OutboxStatus.SENT, assignments, provider_message_id,
                                   sent_shown(receipt), provider_message_id, lease, answered_at)  # fmt: skip

    async def outbox_reschedule(
        self,
        conversation_id: str,
        item_id: str,
        next_attempt_at: datetime,
        attempts: int,
        last_error: str,
        parts_sent: int = 0,
        *,
        lease: datetime | None = None,
    ) -> bool:
        fence, held = _fence(lease)
        next_us = to_us(next_attempt_at)

        def work(conn: sqlite3.Connection) -> bool:
            with _writing(conn):
                changed = conn.execute(
                    "UPDATE outbox SET next_us = ?, attempts = ?, last_error = ?, parts_sent = MAX(parts_sent, ?)"
                    f" WHERE id = ? AND conversation_id = ? AND status = 'pending'{fence}",
                    (next_us, attempts, last_error, parts_sent, item_id, conversation_id, *held),
                )
                if changed.rowcount == 1:
                    return True
                return lease is not None and conn.execute(  # rescheduled so already: a retry, its answer lost
                    "SELECT 1 FROM outbox WHERE id = ? AND conversation_id = ? AND status = 'pending'"
                    " AND next_us = ? AND attempts = ?", (item_id, conversation_id, next_us, attempts),
                ).fetchone() is not None  # fmt: skip

        return await self._run(work)

    async def outbox_mark_failed(
        self,
        conversation_id: str,
        item_id: str,
        reason: str,
        *,
        lease: datetime | None = None,
        next_lease: datetime | None = None,  # as in outbox_mark_sent
    ) -> bool:
        return bool(await self._resolve(conversation_id, item_id, OutboxStatus.FAILED, "last_error = ?", reason,
                                        Delivery.FAILED, None, lease))  # fmt: skip

    async def outbox_withdraw(self, conversation_id: str, item_ids: Sequence[str], reason: str) -> list[str]:
        """None: an item is listed in its put's transaction (``OutboxStore.outbox_withdraw``)."""
        return []

    async def outbox_oldest_pending(self) -> datetime | None:
        rows = await self._select(_OLDEST_PENDING, ())
        oldest = rows[0]["oldest"] if rows else None
        return None if oldest is None else from_us(oldest)

    async def _resolve(
        self,
        conversation_id: str,
        item_id: str,
        status: OutboxStatus,
        assignments: str,
        value: str | None,
        delivery: Delivery,
        provider_id: str | None,
        lease: datetime | None,
        answered_at: datetime | None = None,
    ) -> bool | Delivery:
        """Resolve the item (``status``, and ``assignments`` with ``value``) and show it on its transcript entry, in
        one transaction. An item resolved so already under ``lease`` (a retry whose first try was committed, its
        answer lost) is True, nothing changed (a send's: the delivery its entry shows when further, as its first try
        answered a watermark's, :func:`_shown_again`). A send answered at ``answered_at`` shows a watermark kept for its
        conversation at or after it (:func:`_watermarked`), which is then the answer instead of True; a reply awaiting
        a read receipt then waits from ``answered_at`` (``unread_us``: a later watermark marks it only from then on,
        as a kept one; until 2026-12-06 from its making, and a watermark between the two showed it read although Meta
        may have accepted it after the read)."""
        fence, held = _fence(lease)
        answered_us = None if answered_at is None or status != OutboxStatus.SENT else to_us(answered_at)

        def work(conn: sqlite3.Connection) -> bool | Delivery:
            with _writing(conn):
                sql = (f"UPDATE outbox SET status = ?, {assignments} WHERE id = ? AND conversation_id = ?"
                       f" AND status = 'pending'{fence}")  # fmt: skip
                if conn.execute(sql, (str(status), value, item_id, conversation_id, *held)).rowcount != 1:
                    made = lease is not None and conn.execute(
                        f"SELECT 1 FROM outbox WHERE id = ? AND conversation_id = ? AND status = ?{fence}",
                        (item_id, conversation_id, str(status), *held)).fetchone() is not None  # fmt: skip
                    return _shown_again(conn, item_id, delivery) if made and status == OutboxStatus.SENT else made
                shown = delivery if answered_us is None else _watermarked(conn, conversation_id, item_id, delivery,
                                                                          answered_us)  # fmt: skip
                entry, values = _delivered(shown, provider_id)
                conn.execute(f"UPDATE transcript SET {entry} WHERE id = ?", (*values, item_id))
                if answered_us is not None and shown in (Delivery.SENT, Delivery.DELIVERED):  # by key; writes only
                    conn.execute("UPDATE transcript SET unread_us = ? WHERE id = ? AND unread_us IS NOT NULL",
                                 (answered_us, item_id))  # fmt: skip  # a reply awaiting a read receipt
                _index_parts(conn, conversation_id, item_id, provider_id)
                return True if shown is delivery else shown

        return await self._run(work)

    # The inbox

    async def inbox_put(self, items: Sequence[InboxItem]) -> None:
        rows = [(i.id, self._keys.lookup("inbox", i.sender_key), dumps_sealed(self._keys, "inbox", i.payload),
                 to_us(i.received_at), to_us(i.next_attempt_at or i.received_at)) for i in items]  # fmt: skip

        def work(conn: sqlite3.Connection) -> None:
            with _writing(conn):
                for row in rows:
                    added = conn.execute(
                        "INSERT OR IGNORE INTO inbox (id, sender_key, payload, received_us, next_us)"
                        " VALUES (?, ?, ?, ?, ?)",
                        row,
                    ).rowcount
                    if added and row[4] < row[3]:  # a risky message: its sender's earlier items waiting go with it
                        conn.execute(_INBOX_AHEAD, (row[4], row[1], row[0], row[3], row[4]))
                        conn.execute(_INBOX_URGENT, (row[1], row[0]))  # and its line stays ahead until it is done

        await self._run(work)

    async def inbox_waiting(self, sender_key: str) -> bool:
        """Answered once from this task's last ``get_block`` of the same key (the gate's, just before), else read."""
        read = self._inbox_read.get()
        self._inbox_read.set(None)
        if read is not None and read[0] == sender_key:
            return read[1]
        return bool(await self._select(_INBOX_WAITING, (self._keys.lookup("inbox", sender_key),)))

    async def inbox_due(self, now: datetime, limit: int, *, lease_seconds: int = 30) -> list[InboxItem]:
        now_us = to_us(now)
        lease_us = now_us + lease_seconds * 1_000_000

        def work(conn: sqlite3.Connection) -> list[InboxItem]:
            with _writing(conn):
                heads = conn.execute(_INBOX_HEADS, (now_us, limit)).fetchall()
                conn.executemany("UPDATE inbox SET next_us = ? WHERE id = ?", [(lease_us, r["id"]) for r in heads])
            return [_inbox_item(row, self._keys, lease_us) for row in heads]

        return await self._run(work)

    async def inbox_done(self, item_id: str) -> bool:
        return await self._change("DELETE FROM inbox WHERE id = ?", (item_id,)) == 1

    async def inbox_retry(
        self, item_id: str, next_attempt_at: datetime, attempts: int, *, lease: datetime | None = None
    ) -> bool:
        held = None if lease is None else to_us(lease)
        changed = await self._change(
            "UPDATE inbox SET next_us = ?, attempts = ? WHERE id = ? AND (? IS NULL OR next_us = ?)",
            (to_us(next_attempt_at), attempts, item_id, held, held),
        )
        return changed == 1

    async def inbox_set_aside(self, item_id: str, at: datetime) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            with _writing(conn):
                moved = conn.execute(
                    "INSERT OR IGNORE INTO inbox_aside (id, sender_key, payload, received_us, attempts, at_us)"
                    " SELECT id, sender_key, payload, received_us, attempts, ? FROM inbox WHERE id = ?",
                    (to_us(at), item_id),
                ).rowcount
                conn.execute("DELETE FROM inbox WHERE id = ?", (item_id,))
                return moved == 1

        return await self._run(work)

    async def inbox_drop_aside(self, before: datetime) -> int:
        return await self._change("DELETE FROM inbox_aside WHERE at_us <= ?", (to_us(before),))

    async def inbox_set_aside_count(self) -> int:
        rows = await self._select("SELECT COUNT(*) AS n FROM inbox_aside", ())
        return int(rows[0]["n"])

    # Timers

    async def set_timer(self, conversation_id: str, kind: TimerKind, due_at: datetime) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO timers (conversation_id, kind, due_us) VALUES (?, ?, ?)",
            (conversation_id, kind, to_us(due_at)),
        )

    async def cancel_timers(self, conversation_id: str, kind: TimerKind | None = None) -> None:
        await self._execute(
            "DELETE FROM timers WHERE conversation_id = ? AND (? IS NULL OR kind = ?)",
            (conversation_id, kind, kind),
        )

    async def due_timers(self, now: datetime, limit: int = 100) -> list[Timer]:
        rows = await self._select(
            "SELECT * FROM timers WHERE due_us <= ? ORDER BY due_us, conversation_id, kind LIMIT ?",
            (to_us(now), limit),
        )
        timers = (Timer.read(row["conversation_id"], row["kind"], from_us(row["due_us"])) for row in rows)
        return [timer for timer in timers if timer is not None]

    async def timer_postpone(self, timer: Timer, until: datetime) -> bool:
        changed = await self._change(
            "UPDATE timers SET due_us = ? WHERE conversation_id = ? AND kind = ? AND due_us = ?",
            (to_us(until), timer.conversation_id, timer.kind, to_us(timer.due_at)),
        )
        return changed == 1

    async def timer_done(self, timer: Timer) -> bool:
        changed = await self._change(
            "DELETE FROM timers WHERE conversation_id = ? AND kind = ? AND due_us = ?",
            (timer.conversation_id, timer.kind, to_us(timer.due_at)),
        )
        return changed == 1

    # Late readings waiting

    async def late_put(self, pending: PendingLate, owner: str, until: datetime) -> None:
        args = (pending.conversation_id, pending.entry_id, int(pending.windows), to_us(pending.queued_at), owner,
                to_us(until))  # fmt: skip
        await self._execute("INSERT OR IGNORE INTO late (conversation_id, entry_id, windows, queued_us, owner, "
                            "until_us) VALUES (?, ?, ?, ?, ?, ?)", args)  # fmt: skip

    async def late_hold(self, owner: str, held: Sequence[tuple[str, str]], until: datetime) -> set[tuple[str, str]]:
        def work(conn: sqlite3.Connection) -> set[tuple[str, str]]:
            kept = set()
            with _writing(conn):
                for conversation_id, entry_id in held:
                    changed = conn.execute(
                        "UPDATE late SET until_us = ? WHERE conversation_id = ? AND entry_id = ? AND owner = ?",
                        (to_us(until), conversation_id, entry_id, owner),
                    ).rowcount
                    if changed:
                        kept.add((conversation_id, entry_id))
            return kept

        return await self._run(work) if held else set()

    async def late_claim(self, owner: str, now: datetime, until: datetime, limit: int) -> list[PendingLate]:
        def work(conn: sqlite3.Connection) -> list[PendingLate]:
            with _writing(conn):
                rows = conn.execute(
                    "SELECT * FROM late WHERE until_us <= ? ORDER BY until_us, queued_us LIMIT ?", (to_us(now), limit)
                ).fetchall()
                for row in rows:
                    conn.execute(
                        "UPDATE late SET owner = ?, until_us = ?, claims = claims + 1 "
                        "WHERE conversation_id = ? AND entry_id = ?",
                        (owner, to_us(until), row["conversation_id"], row["entry_id"]),
                    )
            return [PendingLate(row["conversation_id"], row["entry_id"], bool(row["windows"]),
                                from_us(row["queued_us"]), row["claims"] + 1) for row in rows]  # fmt: skip

        return await self._run(work)

    async def late_done(self, conversation_id: str, entry_id: str) -> None:
        await self._execute("DELETE FROM late WHERE conversation_id = ? AND entry_id = ?", (conversation_id, entry_id))

    async def late_waiting(self) -> int:
        rows = await self._select("SELECT COUNT(*) AS n FROM late", ())
        return int(rows[0]["n"])

    # Events and locks, in this process

    async def publish(self, event: Event) -> None:
        held = self._batch()
        if held is not None:
            held.events.append(event)  # after the batch's commit, with its writes
        else:
            self._events.publish(event)

    async def subscribe(self, *, everything: bool = True) -> LocalSubscription:
        return self._events.subscribe(everything=everything)

    @asynccontextmanager
    async def locked_active(
        self, channel: ChannelName, sender: str, now: datetime, *, claim: Claim | None = None, timeout: float = 10.0,
        only: str | None = None, erased: Callable[[], str] | None = None,
    ) -> AsyncIterator[tuple[Conversation, ClaimState]]:  # fmt: skip
        """The sender's active conversation's id (read with the claim, else now), locked, then the claim renewed
        and the record read in one hop to the store's thread: when that record is still active, it is the one
        (one active conversation per sender: the ``conversations_active`` index). Else (none, or ended meanwhile)
        the lock is let go, nothing written, and ``active_conversation`` finds or starts the conversation, which
        is then locked. Two hops and one record opened per message, where the lookup, the lock, the claim and the
        read took four hops and opened the record twice. ``only`` no longer kept (read when the sender has no active
        conversation or another one: a hop more, on those paths only): ConversationEnded, nothing opened; the same
        when its erasure's mark (``erased``) is kept, its record still there (a cut; until 2026-12-07 only the record
        was read). ``only`` ended, not erased, and none other open: EndedMeanwhile, nothing opened (until 2026-12-07
        the next conversation was opened here, past the web chat's new-chat limits)."""
        identity = (str(channel), self._keys.identity(channel, sender))
        read = self._sender_read.get()
        self._sender_read.set(None)
        if read is not None and read[:2] == identity:
            held = read[2]
        else:
            rows = await self._select(_FIND_ACTIVE_ID, identity)
            held = str(rows[0]["id"]) if rows else None
        if held is not None and only not in (None, held) and await self._written_in_gone(only, erased):
            raise ConversationEnded("the conversation this message was written in was erased")  # not into a newer one
        if held is not None:
            async with self._locked_read(held, timeout, claim, erasing=only == held) as (current, state, erasing):
                if current is not None and current.active and erasing:  # its erasure cut before the record
                    raise ConversationEnded("the conversation this message was written in is being erased")
                if current is not None and current.active:
                    yield current, state
                    return
        if only is not None and await self._written_in_gone(only, erased):  # erased while the message waited
            raise ConversationEnded("the conversation this message was written in was erased")
        if only is not None:  # ended meanwhile, none other open: the caller asks the new-chat limits first
            raise EndedMeanwhile("the conversation this message was written in has ended")
        conversation, _ = await self.active_conversation(channel, sender, now)
        async with self._locked_read(conversation.id, timeout, claim) as (current, state, _):
            yield current or conversation, state

    async def _written_in_gone(self, only: str, erased: Callable[[], str] | None) -> bool:
        """``locked_active``'s ``only`` erased: its record gone, or its erasure's mark (``erased()``) kept."""
        if await self.get_conversation(only) is None:
            return True
        return erased is not None and await self.erased_at(erased()) is not None

    @asynccontextmanager
    async def _locked_read(
        self, conversation_id: str, timeout: float, claim: Claim | None, *, erasing: bool = False
    ) -> AsyncIterator[tuple[Conversation | None, ClaimState, bool]]:
        """``locked_batch``, the claim renewed (from the moment the lock is held) and the conversation's record read
        in the same hop; with ``erasing``, whether its erasure was begun (:meth:`erasing`) too, in that hop."""

        def work(conn: sqlite3.Connection) -> tuple[ClaimState, str | None, bool]:
            state = ClaimState.CLAIMED
            if claim is not None:
                state = _claim(claim.key, claim.owner, claim.lease_seconds, to_us(datetime.now(UTC)))(conn)
            row = conn.execute("SELECT data FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            begun = erasing and conn.execute("SELECT 1 FROM erased WHERE digest = ?",
                                             (ERASING + conversation_id,)).fetchone() is not None  # fmt: skip
            return state, None if row is None else row["data"], begun

        async with self.lock(conversation_id, timeout), self.batch():
            state, raw, begun = await self._run(work)
            yield (None if raw is None else self._conversation(raw)), state, begun

    @asynccontextmanager
    async def locked_batch(
        self, conversation_id: str, timeout: float = 10.0, *, claim: Claim | None = None, undo_queue_step: bool = False
    ) -> AsyncIterator[ClaimState]:  # one transaction: a refused commit wrote nothing, nothing to undo
        async with self.lock(conversation_id, timeout), self.batch():
            yield ClaimState.CLAIMED if claim is None else await self.claim(claim.key, claim.owner,
                                                                            claim.lease_seconds)  # fmt: skip

    def lock(self, conversation_id: str, timeout: float = 10.0) -> AbstractAsyncContextManager[None]:
        return self._locks.lock(conversation_id, timeout)

    # Blocks and the audit log

    async def put_block(self, block: Block) -> None:
        until = None if block.until is None else to_us(block.until)
        await self._change(
            "INSERT OR REPLACE INTO blocks (key, until_us, at_us, data) VALUES (?, ?, ?, ?)",
            (block.key, until, to_us(block.at), dumps(encode_block(block))),
        )

    async def get_block(self, key: str, now: datetime) -> Block | None:
        """Whether the inbox holds messages of ``key`` (a sender's keyed hash, as the gate and the inbox know it) is
        read in the same hop, for this task's next ``inbox_waiting(key)`` (the webhook's next step, as on Redis)."""
        waiting_key = self._keys.lookup("inbox", key)

        def work(conn: sqlite3.Connection) -> tuple[str | None, bool]:
            row = conn.execute(
                "SELECT data FROM blocks WHERE key = ? AND (until_us IS NULL OR until_us > ?)", (key, to_us(now))
            ).fetchone()
            waiting = conn.execute(_INBOX_WAITING, (waiting_key,)).fetchone() is not None
            return (None if row is None else row["data"]), waiting

        raw, waiting = await self._run(work)
        self._inbox_read.set((key, waiting))
        return None if raw is None else loads("block", raw, decode_block)

    async def list_blocks(self, now: datetime) -> list[Block]:
        rows = await self._select(
            "SELECT data FROM blocks WHERE until_us IS NULL OR until_us > ? ORDER BY at_us DESC", (to_us(now),)
        )
        return [loads("block", row["data"], decode_block) for row in rows]

    async def remove_block(self, key: str) -> bool:
        return await self._change("DELETE FROM blocks WHERE key = ?", (key,)) == 1

    async def audit(self, entry: AuditEntry) -> None:
        """Held in a batch: in its transaction (a hand-back's line with the record it tells of)."""
        raw = dumps(encode_audit(entry))
        await self._write(lambda conn: conn.execute("INSERT INTO audit (data) VALUES (?)", (raw,)))

    async def audit_once(self, entry: AuditEntry, key: str, kept_seconds: int) -> bool:
        """The key (those expired dropped, by the line's time) and the line in one transaction."""
        raw, at = dumps(encode_audit(entry)), to_us(entry.at)

        def work(conn: sqlite3.Connection) -> bool:
            with _writing(conn):
                conn.execute("DELETE FROM audit_once WHERE expires_us <= ?", (at,))
                made = conn.execute("INSERT OR IGNORE INTO audit_once (key, expires_us) VALUES (?, ?)",
                                    (key, at + kept_seconds * 1_000_000)).rowcount == 1  # fmt: skip
                if made:
                    conn.execute("INSERT INTO audit (data) VALUES (?)", (raw,))
                return made

        return await self._run(work)

    async def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        rows = await self._select("SELECT data FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        return [loads("audit", row["data"], decode_audit) for row in rows]

    # When listeners were last at a console

    async def mark_present(self, seen: dict[str, datetime]) -> None:
        if not seen:
            return
        rows = [(name, to_us(at)) for name, at in seen.items()]
        kept = to_us(max(seen.values()) - timedelta(seconds=PRESENT_KEPT_SECONDS))  # the app's clock, not ours

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(_MARK_PRESENT, rows)
            conn.execute("DELETE FROM present WHERE at_us < ?", (kept,))

        await self._write(write)

    async def last_present(self, names: Iterable[str]) -> dict[str, datetime]:
        wanted = list(names)
        found: dict[str, datetime] = {}
        for start in range(0, len(wanted), 500):  # SQLite's bound on parameters
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._select(f"SELECT name, at_us FROM present WHERE name IN ({marks})", tuple(chunk))
            found |= {row["name"]: from_us(row["at_us"]) for row in rows}
        return found

    # Encryption at rest

    async def reseal(self) -> dict[str, int]:
        """Seal every record with the current data key, in transactions of 500 rows (a running gateway writes
        between them); resealed records by kind (each row is read and replaced in one transaction: none is
        ``RESEAL_CHANGED``). Until 2026-12-07 it compacted the file too, at every pass: now :meth:`compact`."""
        return await self._run(functools.partial(_reseal, self._keys))

    async def compact(self) -> None:
        """Rewrite the file so that no page keeps an old sealing (once, after the rotation's passes)."""
        await self._run(_compact)

    # Retention and erasure

    async def purge_conversation(self, stripped: Conversation) -> int:
        def work(conn: sqlite3.Connection) -> int:
            with _writing(conn):
                count = _forget_content(conn, stripped.id)
                _write_conversation(conn, self._keys, stripped)
            return count

        return await self._run(work)

    async def erase_conversation(self, conversation_id: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            with _writing(conn):
                count = _forget_content(conn, conversation_id)
                conn.execute("DELETE FROM takes WHERE conversation_id = ?", (conversation_id,))
                conn.execute("DELETE FROM ended WHERE conversation_id = ?", (conversation_id,))
                conn.execute("DELETE FROM read_late WHERE conversation_id = ?", (conversation_id,))
                _unlink_marks(conn, conversation_id)
                conn.execute(
                    "DELETE FROM evidence WHERE notice_id IN (SELECT id FROM notices WHERE conversation_id = ?)",
                    (conversation_id,),
                )
                conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
                conn.execute("DELETE FROM erased WHERE digest = ?", (ERASING + conversation_id,))
            return count

        return await self._run(work)

    async def first_created(self) -> datetime | None:
        rows = await self._select("SELECT MIN(created_us) AS first FROM conversations", ())
        first = rows[0]["first"] if rows else None
        return None if first is None else from_us(first)

    async def expire_transcript(self, conversation_id: str, ttl_seconds: int) -> None:
        return None  # no TTLs in SQLite: the daily purge deletes the transcript

    async def forget_freed(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL's old page versions still hold the deleted rows

        await self._run(work)

    async def seen_keys(self) -> list[str]:
        return [_digest_of(row["key"]) for row in await self._select("SELECT key FROM seen WHERE owner IS NULL", ())]

    async def marks_of(self, conversation_id: str) -> list[str]:
        query = "SELECT key FROM seen WHERE conversation_id = ? AND owner IS NULL"
        rows = await self._select(query, (conversation_id,))
        return [_digest_of(row["key"]) for row in rows]

    async def forget_seen(self, keys: Sequence[str]) -> None:
        """The marks of these digests, and every lapsed row: a claim whose owner died or lost its release keeps the
        inbound key (the provider's message id) until the next claim deletes it, which may be a while on a quiet
        line; a claim a live owner holds is its owner's (processed after, as a new message)."""
        digests, now_us = set(keys), to_us(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> None:
            with _writing(conn):
                conn.execute("DELETE FROM seen WHERE expires_us <= ?", (now_us,))
                found = [row["key"] for row in conn.execute("SELECT key FROM seen WHERE owner IS NULL")]
                conn.executemany("DELETE FROM seen WHERE key = ?", [(k,) for k in found if _digest_of(k) in digests])

        await self._run(work)

    async def inbox_forget(self, sender_key: str) -> int:
        key = self._keys.lookup("inbox", sender_key)

        def work(conn: sqlite3.Connection) -> int:
            with _writing(conn):
                waiting = conn.execute("DELETE FROM inbox WHERE sender_key = ?", (key,)).rowcount
                return waiting + conn.execute("DELETE FROM inbox_aside WHERE sender_key = ?", (key,)).rowcount

        return await self._run(work)

    # Notices, their evidence, referrals

    async def put_notice(self, notice: Notice) -> None:
        await self._put_record("notice", notice.id, notice.conversation_id, notice.to_dict())

    async def get_notice(self, notice_id: str) -> Notice | None:
        return await self._get_record("notice", notice_id, Notice.from_dict)

    async def list_notices(self, conversation_id: str | None = None) -> list[Notice]:
        return await self._records("notice", conversation_id, Notice.from_dict)

    async def _put_record(self, kind: str, id_: str, conversation_id: str, data: dict[str, Any]) -> None:
        """A notice or a referral (``kind``, its table ``kind + "s"``), sealed; written again whole by its id (the
        notices' and the referrals' own copies of this and of the two below folded since 2026-12-07)."""
        await self._change(
            f"INSERT INTO {kind}s (id, conversation_id, data) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (id_, conversation_id, dumps_sealed(self._keys, kind, data)),
        )

    async def _get_record(self, kind: str, id_: str, decode: Callable[[Any], T]) -> T | None:
        rows = await self._select(f"SELECT data FROM {kind}s WHERE id = ?", (id_,))
        return loads_sealed(self._keys, kind, rows[0]["data"], decode) if rows else None

    async def _records(self, kind: str, conversation_id: str | None, decode: Callable[[Any], T]) -> list[T]:
        where, params = ("WHERE conversation_id = ?", (conversation_id,)) if conversation_id else ("", ())
        rows = await self._select(f"SELECT data FROM {kind}s {where} ORDER BY seq", params)
        return await decoded_in_parts(  # every one ever: decoded a part at a time (until 2026-12-06 one block)
            [row["data"] for row in rows], lambda raw: loads_sealed(self._keys, kind, raw, decode)
        )

    async def put_evidence(self, notice_id: str, files: list[Evidence]) -> None:
        data = dumps_sealed(self._keys, "evidence", [f.to_dict() for f in files])
        await self._change("INSERT OR REPLACE INTO evidence (notice_id, data) VALUES (?, ?)", (notice_id, data))

    async def get_evidence(self, notice_id: str) -> list[Evidence]:
        rows = await self._select("SELECT data FROM evidence WHERE notice_id = ?", (notice_id,))
        if not rows:
            return []
        return [Evidence.from_dict(f) for f in loads_sealed(self._keys, "evidence", rows[0]["data"], list)]

    async def drop_evidence(self, notice_id: str) -> int:
        files = await self.get_evidence(notice_id)
        await self._change("DELETE FROM evidence WHERE notice_id = ?", (notice_id,))
        return len(files)

    async def put_upload(self, key: str, content_type: str, data: bytes) -> None:
        sealed = self._keys.seal_bytes("upload", data)
        await self._change(
            "INSERT OR REPLACE INTO uploads (key, content_type, data) VALUES (?, ?, ?)", (key, content_type, sealed)
        )

    async def get_upload(self, key: str) -> tuple[str, bytes] | None:
        rows = await self._select("SELECT content_type, data FROM uploads WHERE key = ?", (key,))
        if not rows:
            return None
        return str(rows[0]["content_type"]), self._keys.open_bytes("upload", bytes(rows[0]["data"]))

    async def put_referral(self, referral: Referral) -> None:
        await self._put_record("referral", referral.id, referral.conversation_id, referral.to_dict())

    async def get_referral(self, referral_id: str) -> Referral | None:
        return await self._get_record("referral", referral_id, Referral.from_dict)

    async def list_referrals(self, conversation_id: str | None = None) -> list[Referral]:
        return await self._records("referral", conversation_id, Referral.from_dict)


# The earliest pending item of each conversation, if it is due: the urgent ones (a risky turn's line,
# ``_OUTBOX_URGENT``) first, however often they were rescheduled, then by due time.
_DUE_HEADS = f"""
SELECT o.seq, {_OUTBOX_COLUMNS} FROM outbox AS o
WHERE o.status = 'pending' AND o.next_us <= ?
  AND o.seq = (SELECT MIN(p.seq) FROM outbox AS p
               WHERE p.conversation_id = o.conversation_id AND p.status = 'pending')
ORDER BY o.urgent DESC, o.next_us, o.seq LIMIT ?
"""
# A risky turn's reply's conversation's earlier pending items that wait (due by its writing: neither leased nor backing
# off): due at its time, so that its line is handed out before the ordinary ones (``OutboxStore.outbox_put``).
_OUTBOX_AHEAD = """
UPDATE outbox SET next_us = ?
WHERE conversation_id = ? AND status = 'pending' AND seq < (SELECT seq FROM outbox WHERE id = ?) AND next_us <= ?
  AND next_us > ?
"""
# A risky turn's reply and its conversation's pending items before it (whatever their state) are urgent for their whole
# life: once due, handed out before the ordinary ones (``_DUE_HEADS``), rescheduled or not.
_OUTBOX_URGENT = """
UPDATE outbox SET urgent = 1
WHERE conversation_id = ? AND status = 'pending' AND seq <= (SELECT seq FROM outbox WHERE id = ?)
"""
# A conversation's pending items after one (its seq), in order, on the partial index ``outbox_pending``.
_RUN_AFTER = f"""
SELECT seq, {_OUTBOX_COLUMNS} FROM outbox
WHERE conversation_id = ? AND status = 'pending' AND seq > ? ORDER BY seq LIMIT ?
"""


_INBOX_WAITING = "SELECT 1 FROM inbox WHERE sender_key = ? LIMIT 1"
# A risky message's sender's earlier items that wait (due by its arrival: neither leased nor backing off): due at
# its time, so that the line is handed out before the ordinary senders' (``InboxStore.inbox_put``).
_INBOX_AHEAD = """
UPDATE inbox SET next_us = ?
WHERE sender_key = ? AND seq < (SELECT seq FROM inbox WHERE id = ?) AND next_us <= ? AND next_us > ?
"""
# A risky message and its sender's items before it are urgent for their whole life, as the outbox's
# (``_OUTBOX_URGENT``).
_INBOX_URGENT = "UPDATE inbox SET urgent = 1 WHERE sender_key = ? AND seq <= (SELECT seq FROM inbox WHERE id = ?)"

# The earliest item of each sender, if it is due, the urgent ones first (``_INBOX_URGENT``).
_INBOX_HEADS = """
SELECT * FROM inbox AS i
WHERE i.next_us <= ? AND i.seq = (SELECT MIN(p.seq) FROM inbox AS p WHERE p.sender_key = i.sender_key)
ORDER BY i.urgent DESC, i.next_us, i.seq LIMIT ?
"""


def _inbox_item(row: sqlite3.Row, keys: DataKeys, next_us: int) -> InboxItem:
    return InboxItem(
        id=row["id"], sender_key=row["sender_key"], payload=loads_sealed(keys, "inbox", row["payload"], dict),
        received_at=from_us(row["received_us"]), next_attempt_at=from_us(next_us), attempts=row["attempts"],
    )  # fmt: skip


@dataclass(slots=True)
class _Held:
    """A task's held writes and the events to publish once they are committed."""

    owner: asyncio.Task[Any] | None
    writes: list[Write] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def take(self) -> tuple[list[Write], list[Event]]:
        writes, events = self.writes, self.events
        self.writes, self.events = [], []
        return writes, events


def _after(writes: list[Write], work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """Commit the held writes in one transaction, then do ``work``."""
    with _writing(conn):
        for write in writes:
            write(conn)
    return work(conn)


def _peeked(writes: list[Write], work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """``work`` after the held writes, in a transaction rolled back: the writes stay to be committed later."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for write in writes:
            write(conn)
        return work(conn)
    finally:
        conn.execute("ROLLBACK")


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _digest_of(key: str) -> str:
    """A ``seen`` row's mark as a digest (``ids.seen_digest``): a de-duplication key holds a ``:``, a mark an erasure
    kept is its digest already (``_unlink_marks``; base64url, never a ``:``)."""
    return key if ":" not in key else seen_digest(key)


def _unlink_marks(conn: sqlite3.Connection, conversation_id: str) -> None:
    """The marks an erasure keeps (its confirming message's, ``keep_seen``; the young person's on ``LISTED_AGAIN``
    channels) name the conversation no more and hold the key's digest, as Redis's day hashes do: the key names the
    provider's message id (a Twilio SID leads to the number). Until 2026-12-06 the key stayed in clear, 8 days."""
    rows = conn.execute("SELECT key, expires_us FROM seen WHERE conversation_id = ?", (conversation_id,)).fetchall()
    conn.executemany("INSERT OR REPLACE INTO seen (key, expires_us, owner, conversation_id) VALUES (?, ?, NULL, NULL)",
                     [(_digest_of(row["key"]), row["expires_us"]) for row in rows])  # fmt: skip
    conn.executemany("DELETE FROM seen WHERE key = ?", [(row["key"],) for row in rows if ":" in row["key"]])


def _claim(
    key: str, owner: str, lease_seconds: float, now_us: int, *, take_over: bool = False
) -> Callable[[sqlite3.Connection], ClaimState]:
    """``SqliteStore.claim``'s transaction: the key's row, or its digest's (a mark an erasure kept), in one read.
    ``take_over``: a row of another owner, within its lease, is made the caller's (its owner and lease)."""

    def work(conn: sqlite3.Connection) -> ClaimState:
        with _writing(conn):
            conn.execute("DELETE FROM seen WHERE expires_us <= ?", (now_us,))
            rows = conn.execute("SELECT key, owner FROM seen WHERE key IN (?, ?)", (key, seen_digest(key))).fetchall()
            if any(row["owner"] is None for row in rows):
                return ClaimState.DONE
            row = next((row for row in rows if row["key"] == key), None)
            if row is not None and row["owner"] != owner and not take_over:
                return ClaimState.BUSY
            conn.execute(
                "INSERT INTO seen (key, expires_us, owner) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET expires_us = excluded.expires_us, owner = excluded.owner",
                (key, now_us + int(lease_seconds * 1_000_000), owner),
            )
            return ClaimState.CLAIMED

    return work


# Every sealed column: table, column, record kind.
_SEALED = (("conversations", "data", "conversation"), ("transcript", "data", "entry"), ("outbox", "payload", "outbox"),
           ("inbox", "payload", "inbox"), ("notices", "data", "notice"), ("referrals", "data", "referral"),
           ("evidence", "data", "evidence"), ("uploads", "data", "upload"), ("texts", "data", "text"),
           ("inbox_aside", "payload", "inbox"))  # fmt: skip
# A table whose records are counted apart from their kind's: the inbound messages the inbox set aside (resealed
# since 2026-12-07; before, left under the old key, never to open once it was gone).
_COUNTED_AS = {"inbox_aside": "inbox set aside"}
_RESEAL_ROWS = 500


def _reseal(keys: DataKeys, conn: sqlite3.Connection) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, column, kind in _SEALED:
        counted = _COUNTED_AS.get(table, kind)
        counts[counted], last = 0, 0
        while True:
            with _writing(conn):
                rows = conn.execute(
                    f"SELECT rowid AS r, {column} AS data FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (last, _RESEAL_ROWS),
                ).fetchall()
                for row in rows:
                    data = row["data"]
                    sealed = keys.reseal_bytes(kind, data) if kind == "upload" else keys.reseal(kind, data)
                    if sealed is not None:
                        conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (sealed, row["r"]))
                        counts[counted] += 1
                    if table == "conversations":  # a file written before: the sender column in clear
                        c = loads_sealed(keys, kind, row["data"], decode_conversation)
                        conn.execute(
                            "UPDATE conversations SET sender = ? WHERE rowid = ?",
                            (keys.identity(c.channel, c.sender), row["r"]),
                        )
            if len(rows) < _RESEAL_ROWS:
                break
            last = rows[-1]["r"]
    counts["erasure listing"] = 0  # a person's identity sealed in their listing (since 2026-12-07; before, left)
    with _writing(conn):
        for row in conn.execute("SELECT conversation_id, key FROM erasing").fetchall():
            resealed = reseal_listing(keys, str(row["key"]))
            if resealed is not None:
                conn.execute("UPDATE erasing SET key = ? WHERE conversation_id = ?", (resealed, row["conversation_id"]))
                counts["erasure listing"] += 1
    return counts


def _compact(conn: sqlite3.Connection) -> None:
    """Rewrite the file and empty the WAL: freed pages would keep what the old key sealed (or, in a file written
    before encryption, clear text). With another process reading at that moment, the WAL is emptied later."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _write_conversation(conn: sqlite3.Connection, keys: DataKeys, conversation: Conversation) -> None:
    """The record, and its indexed columns only when one of them changes: most saves change the record alone
    (a bot's step, a message while waiting), and an update of ``data`` alone rewrites no index entry, where the
    upsert rewrote the entries of the table's indexes at every save."""
    columns = (str(conversation.channel), keys.identity(conversation.channel, conversation.sender),
               str(conversation.status), to_us(conversation.created_at), conversation.client,
               flagged_rank(conversation), told_rank(conversation))  # fmt: skip
    data = dumps_sealed(keys, "conversation", encode_conversation(conversation))
    same = conn.execute(
        "UPDATE conversations SET data = ? WHERE id = ? AND channel = ? AND sender = ? AND status = ?"
        " AND created_us = ? AND client IS ? AND flagged_us IS ? AND told_us IS ?",
        (data, conversation.id, *columns),
    )
    if not conversation.active:  # an ended one's place in its listener's history (rare saves: its end, its purge)
        _write_ended(conn, conversation)
    if same.rowcount == 1:
        return
    conn.execute(
        "INSERT INTO conversations (id, channel, sender, status, created_us, client, flagged_us, told_us, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET channel = excluded.channel,"
        " sender = excluded.sender, status = excluded.status, created_us = excluded.created_us,"
        " client = excluded.client, flagged_us = excluded.flagged_us, told_us = excluded.told_us,"
        " data = excluded.data",
        (conversation.id, *columns, data),
    )


def _write_ended(conn: sqlite3.Connection, conversation: Conversation) -> None:
    """An ended conversation's row in ``ended`` (none when it names no listener), and the rows ended over
    ``INDEXED_DAYS`` before it dropped (on ``ended_at``)."""
    rank = ended_rank(conversation)
    if rank is None:
        conn.execute("DELETE FROM ended WHERE conversation_id = ?", (conversation.id,))
        return
    conn.execute(
        "INSERT INTO ended (conversation_id, listener, ended_us, created_us) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (conversation_id) DO UPDATE SET listener = excluded.listener, ended_us = excluded.ended_us,"
        " created_us = excluded.created_us",
        (conversation.id, conversation.listener, rank, to_us(conversation.created_at)),
    )
    conn.execute("DELETE FROM ended WHERE ended_us < ?", (rank - INDEXED_US,))


def _delivered(delivery: Delivery, provider_message_id: str | None) -> tuple[str, tuple[str, ...]]:
    """A transcript entry's new delivery, with the provider's id when one is given, and the end of its wait for a
    read receipt once it is read or failed: the assignments and their values. Only what changes is assigned: a
    column assigned, even its own value, has its index entries rewritten (``transcript_provider``,
    ``transcript_unread``: a page more to the WAL per commit)."""
    assignments, values = ["delivery = ?"], [str(delivery)]
    if provider_message_id is not None:
        assignments.append("provider_message_id = ?")
        values.append(provider_message_id)
    if delivery in (Delivery.READ, Delivery.FAILED):
        assignments.append("unread_us = NULL")
    return ", ".join(assignments), tuple(values)


_KEEP_WATERMARK = (
    "INSERT INTO kept_watermarks (conversation_id, delivery, until_us, expires_us) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (conversation_id, delivery) DO UPDATE SET until_us = MAX(until_us, excluded.until_us),"
    " expires_us = excluded.expires_us"
)  # the newest watermark of each delivery, never moved back


def _watermarked(
    conn: sqlite3.Connection, conversation_id: str, entry_id: str, shown: Delivery, answered_us: int
) -> Delivery:
    """What a send's record shows (``shown``, sent or a kept receipt's), a watermark kept for its conversation
    (``mark_until`` met the reply pending) applied when the provider's answer came at or before it: the provider
    accepted the reply before answering, so such a watermark certainly covers it; one before the answer may not.
    Only on a reply awaiting a read receipt, forward only. One look-up by the table's key, nearly always empty."""
    if shown not in (Delivery.SENT, Delivery.DELIVERED):
        return shown
    kept = {row["delivery"] for row in conn.execute(
        "SELECT delivery FROM kept_watermarks WHERE conversation_id = ? AND until_us >= ? AND expires_us > ?",
        (conversation_id, answered_us, to_us(datetime.now(UTC))))}  # fmt: skip
    if not kept or conn.execute("SELECT 1 FROM transcript WHERE id = ? AND unread_us IS NOT NULL",
                                (entry_id,)).fetchone() is None:  # fmt: skip
        return shown
    if str(Delivery.READ) in kept:
        return Delivery.READ
    return Delivery.DELIVERED if str(Delivery.DELIVERED) in kept else shown


def _shown_again(conn: sqlite3.Connection, entry_id: str, delivery: Delivery) -> bool | Delivery:
    """A send's record made again (its first try committed, its answer lost): True, or the delivery its entry shows
    when further than ``delivery`` (a kept watermark the first try showed, :func:`_watermarked`), as that first try
    answered. Until 2026-12-06 it was True, and the outbox told the console `sent` for a reply shown read."""
    row = conn.execute("SELECT delivery FROM transcript WHERE id = ?", (entry_id,)).fetchone()
    shown = None if row is None else Delivery.read(row["delivery"])
    if shown is Delivery.READ or (shown is Delivery.DELIVERED and delivery is Delivery.SENT):
        return shown
    return True


def _index_parts(conn: sqlite3.Connection, conversation_id: str, entry_id: str, provider_id: str | None) -> None:
    """Each part's provider id of a reply sent in parts, where a receipt naming it finds its entry."""
    if in_parts(provider_id):
        rows = [(part, conversation_id, entry_id) for part in provider_ids(provider_id)]
        conn.executemany("INSERT OR IGNORE INTO transcript_parts (provider_message_id, conversation_id, entry_id)"
                         " VALUES (?, ?, ?)", rows)  # fmt: skip


def _entry(row: sqlite3.Row, keys: DataKeys, shared: Callable[[str], SharedText]) -> TranscriptEntry:
    data = keys.open("entry", row["data"])
    return decode_entry_data(row["id"], data, Delivery.read(row["delivery"]), row["provider_message_id"], shared)


def _forget_content(conn: sqlite3.Connection, conversation_id: str) -> int:
    """Delete what is stored under a conversation's id besides its record; the transcript entries deleted. The
    receipts kept for its sends' provider ids (their take still to come) go first, while the ids are there."""
    conn.execute("DELETE FROM kept_receipts WHERE provider_message_id IN (SELECT provider_message_id FROM transcript"
                 " WHERE conversation_id = ?1 AND provider_message_id IS NOT NULL UNION SELECT provider_message_id"
                 " FROM outbox WHERE conversation_id = ?1 AND provider_message_id IS NOT NULL UNION SELECT"
                 " provider_message_id FROM transcript_parts WHERE conversation_id = ?1)",
                 (conversation_id,))  # fmt: skip
    conn.execute("DELETE FROM transcript_parts WHERE conversation_id = ?", (conversation_id,))
    count = conn.execute("DELETE FROM transcript WHERE conversation_id = ?", (conversation_id,)).rowcount
    for table in ("outbox", "timers", "late", "queue", "kept_watermarks"):
        conn.execute(f"DELETE FROM {table} WHERE conversation_id = ?", (conversation_id,))  # fixed table names
    prefix = conversation_id + "/"  # web chat uploads are kept under "<conversation id>/<hash>" (gateway/uploads.py)
    conn.execute("DELETE FROM uploads WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
    return int(count)


def _queue_entry(row: sqlite3.Row) -> QueueEntry:
    return QueueEntry(
        conversation_id=row["conversation_id"],
        queue=row["queue"],
        priority=Priority(row["priority"]),
        at=from_us(row["at_us"]),
        taken_by=row["taken_by"],
        flag=RiskFlag.from_dict(json.loads(row["flag"])) if row["flag"] else None,
    )


def _listener_row(listener: Listener) -> tuple[Any, ...]:
    created = None if listener.created_at is None else to_us(listener.created_at)
    return (listener.name, listener.password_hash, int(listener.supervisor), listener.capacity, created)


def _listener(row: sqlite3.Row) -> Listener:
    created = row["created_us"]
    return Listener(
        name=row["name"],
        password_hash=row["password_hash"],
        supervisor=bool(row["supervisor"]),
        capacity=row["capacity"],
        created_at=None if created is None else from_us(created),
    )


def _fence(lease: datetime | None) -> tuple[str, tuple[int, ...]]:
    """The condition (and its parameter) that the item is still under the claim that ends at ``lease``."""
    return ("", ()) if lease is None else (" AND next_us = ?", (to_us(lease),))


def _outbox_item(row: sqlite3.Row, keys: DataKeys, next_us: int | None = None) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        conversation_id=row["conversation_id"],
        payload=loads_sealed(keys, "outbox", row["payload"], dict),
        created_at=from_us(row["created_us"]),
        next_attempt_at=from_us(next_us if next_us is not None else row["next_us"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        status=OutboxStatus(row["status"]),
        provider_message_id=row["provider_message_id"],
        parts_sent=row["parts_sent"],
    )
