"""``gateway purge`` and ``gateway erase``: retention and erasure by hand. They print counts, never content.

``gateway purge [--dry-run]`` purges the conversations whose retention (flows.yaml ``retention.closed_days``) is
over, as the server does daily; ``--dry-run`` counts them and changes nothing.

``gateway erase --conversation ID`` or ``gateway erase --channel CH --identity X`` erases everything about that
young person (every conversation of the same channel identity). The identity is compared as stored and through
its keyed hash (``GATEWAY_SECRET_KEY``): set the same key as the server's. A WhatsApp number is taken as a person
writes it in international form (``+33 6 12 34 56 78``, ``0033612345678``, ``whatsapp:+33612345678``: stored as
Twilio's ``whatsapp:+33612345678``); a national form (``06…``) is refused, since the same digits name another
person in another country (``0692…`` is a Réunion mobile, +262 692…, as well as a metropolitan +33 692…).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import GatewayError, LockTimeout

if TYPE_CHECKING:
    from gateway.crypto import DataKeys
    from gateway.flowset import FlowSet
    from gateway.settings import Settings
    from gateway.store import Store

ACTOR = "cli"
SEPARATORS = str.maketrans("", "", " .-()/\u00a0")
KEY = re.compile(r"[0-9a-f]{32}")  # ``gateway erase --again KEY``: a keyed hash (``KeyedHash``), nothing else
# ``gateway erase`` finding a lock of the person held past its wait (10 s): on SQLite, since 2026-12-07, also by the
# server running on the same file (``gateway/store/sqlite_locks.py``; before, the command erased under it).
UNDER_WAY = (
    "an erasure of this person, or a message of theirs, is under way elsewhere (the running gateway, another"
    " `gateway erase`): its lock stayed held. Run the command again: it finishes what is left (an erasure it had"
    " begun is also finished by the running gateway's alert check)"
)


def channel_address(channel: str, identity: str) -> str:
    """The identity as the channel's adapter stores it (:func:`gateway.channels.whatsapp._inbound`'s ``From``)."""
    if channel != "whatsapp":
        return identity.strip()
    number = identity.strip().removeprefix("whatsapp:").translate(SEPARATORS)
    if number.startswith("00"):
        number = "+" + number[2:]
    if not number.startswith("+") or not number[1:].isdigit():
        raise GatewayError("--identity: a WhatsApp number in international form, such as +33 6 12 34 56 78")
    return "whatsapp:" + number


def load_flows(settings: Settings) -> FlowSet:
    from gateway.errors import FlowValidationError
    from gateway.flowset import FlowSet

    flows = FlowSet(Path(settings.flows))
    flows.reload()
    if flows.current is None:
        problems = list(flows.last_reload.problems) if flows.last_reload else []
        raise FlowValidationError([*problems, f"{settings.flows} is not valid"])
    return flows


async def _open(settings: Settings, keys: DataKeys | None = None) -> Store:
    from gateway.crypto import DataKeys
    from gateway.store import open_store

    keys = keys or DataKeys.from_settings(settings)
    return await open_store(settings.store, keys=keys, cluster=bool(settings.redis_cluster))


def _purge(args: argparse.Namespace) -> int:
    from gateway.metrics import Metrics
    from gateway.retention import Retention
    from gateway.settings import Settings

    settings = Settings.from_env()

    async def run() -> int:
        store = await _open(settings)
        try:
            # one pass, no worker (``run``): a store failure raises to the command, no outage to tell
            retention = Retention(store, load_flows(settings), clock=lambda: datetime.now(UTC), metrics=Metrics())
            purged = await retention.purge(datetime.now(UTC), dry_run=args.dry_run, actor=ACTOR)
        finally:
            await store.close()
        verb = "would purge" if args.dry_run else "purged"
        print(f"{verb} {purged.conversations} conversation(s), {purged.entries} transcript entries "
              f"(ended more than {purged.closed_days} days ago)")  # fmt: skip
        return 0

    return asyncio.run(run())


def _erase(args: argparse.Namespace) -> int:
    from gateway.crypto import DataKeys
    from gateway.dispatcher import Dispatcher
    from gateway.erasure import Eraser
    from gateway.keyed import KeyedHash
    from gateway.messages import ChannelName
    from gateway.settings import Settings

    if sum(map(bool, (args.conversation, args.channel or args.identity, args.again))) != 1:
        raise GatewayError("erase needs --conversation ID, or --channel and --identity, or --again KEY")
    if args.channel and not args.identity:
        raise GatewayError("--channel needs --identity")
    if args.again and not KEY.fullmatch(args.again):  # never listed nor echoed: it may be an identity mistyped
        raise GatewayError("--again: the KEY of an erasure's log line (32 hexadecimal characters)")
    identity = channel_address(args.channel, args.identity) if args.channel else ""
    settings = Settings.from_env()
    keyed = KeyedHash(settings.secret_key.get_secret_value())

    def sender_key(channel: ChannelName, sender: str) -> str:
        return keyed.sender(channel.value, sender)

    async def run() -> int:
        try:
            return await erase()
        except LockTimeout:  # never its text: it names the lock, a conversation's id
            raise GatewayError(UNDER_WAY) from None

    async def erase() -> int:
        keys = DataKeys.from_settings(settings)  # the store's; and a listed person's identity sealed (erase_identity)
        store = await _open(settings, keys)
        try:
            flows = load_flows(settings)
            eraser = Eraser(store, Dispatcher(store, flows), flows, sender_key, clock=lambda: datetime.now(UTC),
                            erased_key=lambda channel, sender: keyed.erased(channel.value, sender),
                            listed_for=timedelta(hours=settings.whatsapp_catchup_window_hours, minutes=1),
                            conversation_key=keyed.erased_conversation, keys=keys)  # fmt: skip
            if args.conversation:
                erased = await eraser.erase_conversation(args.conversation, ACTOR, "gateway erase")
                if erased is None:
                    print(f"gateway: no conversation {args.conversation}")
                    return 1
            elif args.again:  # an erasure done after the backup this store was restored from, done again
                # the person found from the store's index of senders with GATEWAY_DATA_KEY (until 2026-12-07 every
                # record read); none: what KEY names erased by it alone (until 2026-12-07 nothing: "erased 0")
                erased = await eraser.erase_again(args.again, ACTOR, "gateway erase --again")
            else:  # listed by the conversation erased last: the alert check finishes it when cut short
                erased = await eraser.erase_identity(ChannelName(args.channel), identity, ACTOR, "gateway erase")
        finally:
            await store.close()
        if erased.under_way:  # its counts are in the other's audit line (until 2026-12-07: "erased 0 ...")
            print("erased by an erasure of the same person already under way (its counts are in its audit line)")
        else:
            print(f"erased {erased.conversations} conversation(s), {erased.entries} transcript entries")
        if erased.again:
            print(f"after restoring a backup made before now, erase them again: gateway erase --again {erased.again}")
        return 0

    return asyncio.run(run())


def _log_id(args: argparse.Namespace) -> int:
    """The form in which the log lines name each id given, and with ``--conversation`` each entry of that
    conversation (its outbox item's id is the entry's): ``KeyedHash.logged_id``, keyed with GATEWAY_SECRET_KEY (since
    2026-12-07; the lines named the ids themselves before). Conversation ids are named as they are (random)."""
    from gateway.keyed import KeyedHash
    from gateway.settings import Settings

    if not (args.ids or args.conversation):
        raise GatewayError("log-id needs an ID, or --conversation ID")
    settings = Settings.from_env(as_configured=True)  # never a random key drawn here: its forms would match nothing
    secret = settings.secret_key.get_secret_value()
    if not secret:
        raise GatewayError(
            "GATEWAY_SECRET_KEY is not set: each start of the gateway drew a key of its own, so the forms its log"
            " lines used cannot be computed again (set it: docs/configuration.md)"
        )
    keyed = KeyedHash(secret)
    for value in args.ids:
        print(f"{value} {keyed.logged_id(value)}")
    if not args.conversation:
        return 0

    async def run() -> int:
        store = await _open(settings)
        try:
            if await store.get_conversation(args.conversation) is None:
                print(f"gateway: no conversation {args.conversation}")
                return 1
            for entry in await store.transcript(args.conversation):  # never a text: the id, author and time
                print(f"{entry.id} {keyed.logged_id(entry.id)} {entry.author.value} {entry.at.isoformat()}")
        finally:
            await store.close()
        return 0

    return asyncio.run(run())


def add_privacy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.messages import ChannelName

    purge = sub.add_parser("purge", help="purge the conversations whose retention is over (flows.yaml retention)")
    purge.add_argument("--dry-run", action="store_true", help="count what would be purged, change nothing")
    purge.set_defaults(handler=_purge)
    erase = sub.add_parser("erase", help="erase everything about one young person (prints counts only)")
    erase.add_argument("--conversation", metavar="ID", help="the person of this conversation")
    erase.add_argument("--channel", choices=[c.value for c in ChannelName], help="with --identity")
    erase.add_argument("--identity", metavar="X", help="the channel identity (phone number, PSID, chat id)")
    erase.add_argument("--again", metavar="KEY", help="an erasure done after the backup restored (its log line's KEY)")
    erase.set_defaults(handler=_erase)
    log_id = sub.add_parser(
        "log-id", help="how the log lines name an entry or outbox item id (keyed: prints ID and its logged form)"
    )
    log_id.add_argument("ids", nargs="*", metavar="ID", help="an entry, outbox item or reply id")
    log_id.add_argument("--conversation", metavar="ID", help="every entry of this conversation, with its form")
    log_id.set_defaults(handler=_log_id)
