"""Redis commands per message by part of the gateway: ``bench/load.py --parts`` (or ``python bench/parts.py FILE N``).

``Monitor`` records Redis's ``MONITOR`` stream (``redis-cli monitor``) while a run is measured; ``parts`` reads it
and counts, per message, the commands Redis ran (a script's own ``redis.call``s included, as ``INFO commandstats``
counts them) and the scripts, by the part of the gateway that sent them:

* **inbound**: the claim of a message and its processed marks (``{seen}``, ``hg:d:``), the conversation's record,
  lock and indexes, its transcript and the replies put (``put_entry_item``), timers, the queue;
* **inbox**: the inbox's own keys (``{inbox}``) and scripts;
* **outbox**: its claims, leases, lines, a send's record, the provider ids' index, kept receipts;
* **events**: ``PUBLISH``;
* **alert check**: ``PING``, the oldest pending reply, the inbox's set-aside count, the status sets, the queue's
  waiting ids, the held records (``GET hg:c:`` outside a script, in the same second as the status set's read),
  listeners' presence.

A script is told by its text (``EVAL``) or its digest (``EVALSHA``), its calls counted with it (MONITOR shows a
script's calls right after it); a plain command by its command and key. Counts, not times: MONITOR slows Redis,
but the commands are the ones the run makes. Asserts nothing.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.store.redis_lua import SCRIPTS  # noqa: E402

PARTS = ("inbound", "inbox", "outbox", "events", "alert check", "other")
_LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]+)\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_INBOX = {"inbox_put", "inbox_due", "inbox_done", "inbox_retry", "inbox_set_aside"}
_OUTBOX = {"outbox_due", "outbox_claim", "outbox_line", "outbox_renew", "outbox_set_aside", "outbox_resolve",
           "outbox_reschedule", "outbox_list", "outbox_sent", "keep_receipt", "take_receipt", "entry_by_provider",
           "advance_delivery"}  # fmt: skip
_ALERT = {"mark_present"}


def _repr(text: str) -> str:
    """Redis's ``sdscatrepr`` of a string without its quotes: how MONITOR shows it."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif char in "\n\r\t\a\b":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}[char])
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


_BY_TEXT = {_repr(text): name for name, text in SCRIPTS.items()}
_BY_SHA = {hashlib.sha1(text.encode()).hexdigest(): name for name, text in SCRIPTS.items()}


def _script_part(name: str) -> str:
    if name in _INBOX:
        return "inbox"
    if name in _OUTBOX:
        return "outbox"
    if name in _ALERT:
        return "alert check"
    return "inbound"


def _command_part(command: str, args: list[str]) -> str:
    key = args[0] if args else ""
    if command == "publish":
        return "events"
    if command in ("ping", "smembers") or key.startswith(("hg:{index}:status:", "hg:present:")):
        return "alert check"
    if key.startswith("hg:{inbox}:"):
        return "alert check" if command in ("zcard", "hlen", "scard") else "inbox"
    if key == "hg:{outbox}:pending" or (key.startswith("hg:o:") and args[1:] == ["status"]):
        return "alert check"  # outbox_oldest_pending
    if key.startswith(("hg:{outbox}:", "hg:o:", "hg:p:", "hg:rk:", "hg:{rk}:")):
        return "outbox"
    if key.startswith("hg:{queue}:waiting:") and command in ("zrange", "zrangebyscore"):
        return "alert check"  # waiting_ids
    if command in ("info", "monitor", "dbsize", "memory", "scan", "client", "hello", "select"):
        return "other"
    return "inbound"


def parts(lines: list[str], messages: int) -> str:
    """The per-message table of the MONITOR ``lines``: commands (and scripts) by part."""
    commands: Counter[str] = Counter()
    scripts: Counter[str] = Counter()
    names: Counter[tuple[str, str]] = Counter()
    by_name: Counter[tuple[str, str]] = Counter()  # (part, script or command): the commands, a script's own included
    current, name = "other", ""
    for line in lines:
        found = _LINE.match(line)
        if found is None:
            continue
        client, rest = found.groups()
        args = [a.replace('\\"', '"') for a in _ARG.findall(rest)]
        if not args:
            continue
        command = args[0].lower()
        if client == "lua":
            commands[current] += 1
            by_name[current, name] += 1
            continue
        if command in ("eval", "evalsha"):
            name = (_BY_TEXT if command == "eval" else _BY_SHA).get(_ARG.findall(rest)[1], "?")
            current = _script_part(name)
            scripts[current] += 1
        else:
            current, name = _command_part(command, args[1:]), command
            if current == "other":
                continue  # the bench's own
        names[current, name] += 1
        by_name[current, name] += 1
        commands[current] += 1
    n = max(1, messages)
    rows = []
    for part in PARTS:
        if commands[part] or scripts[part]:
            each = sorted(((count, name) for (p, name), count in by_name.items() if p == part), reverse=True)
            detail = ", ".join(
                f"{name} {names[part, name] / n:.2f}×{count / max(1, names[part, name]):.1f}" for count, name in each
            )
            figures = f"{commands[part] / n:6.1f} commands, {scripts[part] / n:5.2f} scripts"
            rows.append(f"      {part:<12} {figures}: {detail}")
    total = f"      {'all':<12} {commands.total() / n:6.1f} commands, {scripts.total() / n:5.2f} scripts"
    return "\n".join([*rows, total, "      (each: sent per message × commands it ran, its own included)"])


class Monitor:
    """``redis-cli monitor`` on ``port`` into ``path`` until :meth:`stop`."""

    def __init__(self, port: int, path: Path) -> None:
        self.path = path
        self._out = path.open("w")
        self.process = subprocess.Popen(["redis-cli", "-p", str(port), "monitor"], stdout=self._out)
        deadline = time.monotonic() + 10
        while not path.stat().st_size and time.monotonic() < deadline:  # its "OK": monitoring from here on
            time.sleep(0.01)

    def stop(self) -> list[str]:
        self.process.terminate()
        self.process.wait()
        self._out.close()
        return self.path.read_text(errors="replace").splitlines()


if __name__ == "__main__":
    print(parts(Path(sys.argv[1]).read_text(errors="replace").splitlines(), int(sys.argv[2])))
