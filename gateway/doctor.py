"""``gateway doctor``: what a deployment's configuration lacks, and how to fix it.

Each check gives a :class:`Finding`: ``ok``, a ``warning`` (works, but not as a production line should) or a
``problem`` (the command exits 1). A finding names the variable and what to do; it never prints a secret.
Checked: the secret key (set and strong), the public URL (https), the data keys (present, well formed, the key
file private), the store (reachable, its latest records open with the keys, a Redis that never evicts), the flow
file, and each channel (its secrets complete, or all absent: a half-configured channel is named with what is
missing); Messenger on, the apps whose echoes end the bot's part and the webhook fields to subscribe at Meta (which
the doctor cannot see); WhatsApp on, a catch-up window longer than the flow file's retention (a purged young
person's messages caught up again); the kernel's ``net.core.somaxconn`` below the listen backlog (since 2026-12-07);
Redis's ``maxclients`` below what the instances may open, or its clients already near it (since 2026-12-07); Redis's
round trip and the inline budget it gives (since 2026-12-07, ``gateway/inbox.py``, ``inline_budget``).
"""

from __future__ import annotations

import asyncio
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

from gateway.clock import SKEW_TRUSTED_SECONDS, SKEW_WARN_SECONDS, Clock, utcnow
from gateway.connections import LISTEN_BACKLOG
from gateway.crypto import DataKeys, KeyFile
from gateway.errors import ConfigError, FlowError, FlowValidationError, StoreError
from gateway.settings import CHANNEL_NEEDS, Settings, variable

if TYPE_CHECKING:
    from gateway.store import ClientLimits, HasTime, Listener

MIN_SECRET_LENGTH = 32
STORE_TIMEOUT = 10.0
# a Redis that evicts once full: said by the doctor (a problem) and at start-up (a warning)
EVICTING = (
    "Redis evicts keys once full (maxmemory-policy {}): a conversation's record, a lock or a processed mark "
    "would vanish without an error, a message lost or answered twice"
)
UNREAD = "?"  # the policy, when the store refuses to say it
# Redis connections beside the instances': the CLI's commands (`gateway erase`, `purge`, `doctor`, a migration: each
# a few at once) and monitoring (an exporter, redis-cli), as docs/deployment.md counts them ("Sizing maxclients")
CLIENTS_MARGIN = 10
CLIENTS_NEAR = 0.8  # connected clients at this share of maxclients or more: near the cap already
ROUND_TRIP_READINGS = 5  # Redis's TIME read this many times: the shortest is its round trip (as gateway/clock.py's)
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")  # the kernel's cap on a listening socket's backlog (Linux)
CHANNELS = {"Messenger": "messenger", "WhatsApp (Twilio)": "whatsapp", "Telegram": "telegram"}
PAGE_INBOX_APP = "263902037430900"  # the app Meta's echoes name for a message sent from the Page inbox
# the page's webhook fields the gateway reads (docs/channels.md): ``message_echoes`` a page admin's answers from Meta's
# inbox, ``standby`` the young person's messages on a thread another app owns
MESSENGER_FIELDS = ("messages", "messaging_postbacks", "messaging_referrals", "message_deliveries", "message_reads",
                    "message_edits", "message_echoes", "standby")  # fmt: skip


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "PROBLEM"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    subject: str
    text: str

    def __str__(self) -> str:
        return f"{self.level:<8} {self.subject}: {self.text}"


async def examine(settings: Settings, somaxconn: Path | None = None) -> list[Finding]:
    """Every check on ``settings`` as configured (``Settings.from_env(as_configured=True)``: an unset secret key
    stays empty, a half-configured channel is not refused); ``somaxconn``: where the kernel's cap is read (None:
    ``SOMAXCONN``)."""
    findings = [secret_key(settings), public_url(settings), *data_keys(settings), flows(settings)]
    findings += [channel(name, settings) for name in CHANNELS]
    findings += messenger_echoes(settings)
    findings += catchup_retention(settings)
    findings += leases(settings)
    findings.append(listen_backlog(somaxconn or SOMAXCONN))
    accounts: list[Finding] = []  # read on the store's connection (``store``'s ``accounts``)
    findings.append(await store(settings, accounts=accounts))
    reachable = findings[-1].level != Level.PROBLEM
    if reachable:
        findings += accounts
    sealing = await instances_sealing(settings) if reachable else None
    if sealing is not None:
        findings.append(sealing)
    clients = await redis_clients(settings) if reachable else None
    if clients is not None:
        findings.append(clients)
    trip = await round_trip(settings) if reachable else None
    if trip is not None:
        findings.append(trip)
    return findings


def secret_key(settings: Settings) -> Finding:
    key = settings.secret_key.get_secret_value()
    if not key:
        return Finding(Level.PROBLEM, "GATEWAY_SECRET_KEY", "not set: a random one at each start logs every "
                       "listener out and changes the keyed hashes (blocks, lookups); set 32+ random characters, "
                       "e.g. `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`")  # fmt: skip
    if len(key) < MIN_SECRET_LENGTH or len(set(key)) < 12:
        return Finding(Level.PROBLEM, "GATEWAY_SECRET_KEY", f"weak ({len(key)} characters, {len(set(key))} "
                       f"different): use at least {MIN_SECRET_LENGTH} random characters")  # fmt: skip
    return Finding(Level.OK, "GATEWAY_SECRET_KEY", f"set ({len(key)} characters)")


def public_url(settings: Settings) -> Finding:
    parts = urlsplit(settings.public_url)
    if parts.scheme != "https":
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        return Finding(Level.WARNING if local else Level.PROBLEM, "GATEWAY_PUBLIC_URL",
                       f"{settings.public_url} is not https: providers refuse plain http webhooks and the console's "
                       "cookie would travel in clear; set the https address the gateway is reached at"
                       + (" (fine on this machine only)" if local else ""))  # fmt: skip
    return Finding(Level.OK, "GATEWAY_PUBLIC_URL", settings.public_url)


def data_keys(settings: Settings) -> list[Finding]:
    if settings.data_key.get_secret_value():
        keys = DataKeys.from_settings(settings)  # well formed: Settings validated them
        old = f"; {', '.join(keys.ids[1:])} only open (GATEWAY_DATA_KEYS_OLD)" if keys.ids[1:] else ""
        return [Finding(Level.OK, "GATEWAY_DATA_KEY", f"key {keys.current_id} seals{old}")]
    try:
        file = KeyFile.of_store(settings.store)
    except ConfigError as error:
        return [Finding(Level.PROBLEM, "GATEWAY_DATA_KEY", str(error))]
    if not file.path.exists():
        return [Finding(Level.WARNING, "GATEWAY_DATA_KEY", f"not set: {file.path} will be created at the first "
                        "start; back it up apart from the store, or set GATEWAY_DATA_KEY")]  # fmt: skip
    loose = stat.S_IMODE(file.path.stat().st_mode) & 0o077
    keys = file.load()  # tightens a loose mode
    findings = [Finding(Level.OK, "GATEWAY_DATA_KEY", f"the embedded key file {file.path}: key {keys.current_id} "
                        "seals; back the file up apart from the store")]  # fmt: skip
    if loose:
        findings.append(Finding(Level.WARNING, str(file.path), "was readable by others: now 0600; if others could "
                                "read it, rotate the key (`gateway data-key rotate`)"))  # fmt: skip
    return findings


def flows(settings: Settings) -> Finding:
    from gateway.flows.loader import load_file

    try:
        loaded = load_file(settings.flows)
    except FlowValidationError as error:
        return Finding(Level.PROBLEM, "GATEWAY_FLOWS", f"{settings.flows}: {len(error.problems)} problem(s), "
                       f"the gateway would not start (`gateway flows check {settings.flows}` lists them)")  # fmt: skip
    except FlowError as error:
        return Finding(Level.PROBLEM, "GATEWAY_FLOWS", f"{error}: the gateway would not start")
    return Finding(Level.OK, "GATEWAY_FLOWS", f"{settings.flows} (version {loaded.version})")


def channel(name: str, settings: Settings) -> Finding:
    names = CHANNEL_NEEDS[CHANNELS[name]]
    missing = [variable(n) for n in names if not _is_set(settings, n)]
    if len(missing) == len(names):
        return Finding(Level.OK, name, "off (no secret set)")
    if missing:
        present = [variable(n) for n in names if _is_set(settings, n)]
        return Finding(Level.PROBLEM, name, f"half configured: {', '.join(missing)} missing (set it, or unset "
                       f"{', '.join(present)} to turn the channel off)")  # fmt: skip
    if CHANNELS[name] == "messenger" and not settings.messenger_app_id:
        return Finding(Level.WARNING, name, "on, MESSENGER_APP_ID not set: a page admin's answer from Meta's inbox "
                       "that names an app is not shown to the listeners (only those naming none or an app of "
                       "MESSENGER_HUMAN_ECHO_APPS); set the app's number (App settings → Basic)")  # fmt: skip
    return Finding(Level.OK, name, "on")


def messenger_echoes(settings: Settings) -> list[Finding]:
    """Messenger on: the webhook fields to subscribe (a reminder: Meta's subscription is not visible from here) and
    the apps whose echoes end the bot's part (``MESSENGER_HUMAN_ECHO_APPS``), with their trade-off; off, nothing."""
    if not all(_is_set(settings, name) for name in CHANNEL_NEEDS["messenger"]):
        return []
    fields = ", ".join(f"`{field}`" for field in MESSENGER_FIELDS)
    findings = [Finding(Level.OK, "Messenger webhook", f"not visible from here: subscribe the page to {fields} "
                        f"(Messenger → Settings → Webhooks, callback {settings.public_url}/webhooks/messenger); "
                        "without `standby` the young person's messages on a thread a page admin took, a risk among "
                        "them, reach nobody; without `message_echoes` an admin's answer from Meta's inbox is not "
                        "seen")]  # fmt: skip
    apps = sorted(settings.messenger_human_echo_app_ids())  # well formed: Settings validated them
    if not apps:
        findings.append(Finding(Level.OK, "MESSENGER_HUMAN_ECHO_APPS", "not set: a page admin's answer from Meta's "
                                "inbox is shown to the listeners but does not end the bot's part (its questions go "
                                f"on); set {PAGE_INBOX_APP} (the Page inbox) once the page's automated responses are "
                                "off"))  # fmt: skip
    elif settings.messenger_app_id in apps:
        findings.append(Finding(Level.WARNING, "MESSENGER_HUMAN_ECHO_APPS", f"lists {settings.messenger_app_id}, "
                                "MESSENGER_APP_ID: the gateway's own app, whose echoes are its replies, never a "
                                "person's answer; remove it"))  # fmt: skip
    else:
        findings.append(Finding(Level.WARNING, "MESSENGER_HUMAN_ECHO_APPS", f"{', '.join(apps)}: an echo of these "
                                "apps ends the bot's part (the young person goes to the listeners' queue, asked "
                                "nothing more); make sure the page's automated responses are off (Business Suite → "
                                "Inbox → Automations: Instant Reply, Away message, Frequently asked questions), or "
                                "the Instant Reply's echo ends it at the young person's first message: they are left "
                                "with it, no question nor emergency numbers, until a listener takes them"))  # fmt: skip
    return findings


def catchup_retention(settings: Settings) -> list[Finding]:
    """WhatsApp on: the catch-up reads Twilio's list since its last pass, at most ``whatsapp_catchup_window_hours``
    back, and the purge forgets a conversation's processed marks ``retention.closed_days`` after its end; a pass
    reaching past that retention (after an absence that long, or with no mark of the last pass) would process a
    purged young person's messages again, as new. A flow file that does not load: said by :func:`flows`."""
    from gateway.flows.loader import load_file

    if not all(_is_set(settings, name) for name in CHANNEL_NEEDS["whatsapp"]):
        return []
    try:
        days = load_file(settings.flows).flow.retention.closed_days
    except FlowError:  # FlowValidationError too: the flow file's own finding names it
        return []
    hours = settings.whatsapp_catchup_window_hours
    if hours <= days * 24:
        return []
    return [Finding(Level.WARNING, variable("whatsapp_catchup_window_hours"), f"{hours:g} h, longer than "
                    f"{settings.flows}'s retention.closed_days ({days} day(s), {days * 24} h): a catch-up pass reading "
                    "that far back (the gateway or Twilio away that long, or no mark of the last pass: a new or "
                    "restored store) would process again, as new, the messages of a conversation purged meanwhile "
                    "(its marks forgotten), the purged young person's words back in the store; set it to "
                    f"{days * 24} or less, or raise retention.closed_days")]  # fmt: skip


def leases(settings: Settings) -> list[Finding]:
    """On Redis, a socket timeout the leases renewed meanwhile cannot outlast (``Settings.check_leases``, which
    ``gateway serve`` refuses at start): a PROBLEM naming the settings. Since 2026-12-07: until then the doctor read
    the settings as configured and said nothing of it, and the gateway then refused to start."""
    try:
        settings.check_leases()
    except ConfigError as exc:
        return [Finding(Level.PROBLEM, variable("redis_socket_timeout"), str(exc))]
    return []


def listen_backlog(somaxconn: Path) -> Finding:
    """``gateway serve`` listens with a backlog of ``LISTEN_BACKLOG`` (4,096), which Linux caps at
    ``net.core.somaxconn`` (4,096 by default since 5.4, 128 before): when one instance of two dies, its pages all
    reconnect to the other in the same second, and the handshakes beyond the cap are dropped and retried by TCP
    after 1, 3, 7, 15, 31 s (a page back after a minute, its messages unacknowledged meanwhile). A warning when it
    is lower, or cannot be read (not Linux, ``/proc/sys`` hidden). Until 2026-12-07 the doctor did not look."""
    subject = "net.core.somaxconn"
    try:
        cap = int(somaxconn.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return Finding(Level.WARNING, subject, f"not read from {somaxconn}: make sure it is at least "
                       f"{LISTEN_BACKLOG} (the listen backlog of `gateway serve`, which the kernel caps at "
                       "it)")  # fmt: skip
    if cap < LISTEN_BACKLOG:
        return Finding(Level.WARNING, subject, f"{cap}, below the listen backlog of `gateway serve` "
                       f"({LISTEN_BACKLOG}), which the kernel caps at it: when one instance of two dies, the "
                       f"handshakes of its pages beyond {cap} are dropped and retried by TCP after 1, 3, 7, 15, "
                       f"31 s; set `sysctl -w net.core.somaxconn={LISTEN_BACKLOG}` (and in /etc/sysctl.d, or the "
                       "container's sysctls)")  # fmt: skip
    return Finding(Level.OK, subject, f"{cap}: the listen backlog of {LISTEN_BACKLOG} is kept")


def _is_set(settings: Settings, name: str) -> bool:
    value = getattr(settings, name)
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


async def store(settings: Settings, clock: Clock = utcnow, accounts: list[Finding] | None = None) -> Finding:
    """Since 2026-12-07 also this host's ``clock`` against Redis's ``TIME`` (``gateway/clock.py``): a warning above
    ``SKEW_WARN_SECONDS``, a problem beyond ``SKEW_TRUSTED_SECONDS`` (the gateway would not follow Redis's time).
    ``accounts``: given, the listener accounts bearing a reserved name are read on the same connection and their
    finding added to it (:func:`reserved_accounts`; since 2026-12-07: until then that check opened the store a
    second time, with a timeout of its own)."""
    from gateway.store import HasTime, open_store
    from gateway.store.sqlite import path_from_url

    if settings.store.startswith("sqlite:///") and not path_from_url(settings.store).exists():
        return Finding(Level.OK, "GATEWAY_STORE", f"{path_from_url(settings.store)} will be created at the first start")
    try:
        async with asyncio.timeout(STORE_TIMEOUT):
            opened = await open_store(
                settings.store, keys=DataKeys.from_settings(settings), cluster=bool(settings.redis_cluster)
            )
            try:
                await opened.ping()
                skew = await _skew(opened, clock) if isinstance(opened, HasTime) else None
                now = datetime.now(UTC)
                recent = await opened.list_conversations(now - timedelta(days=1), now + timedelta(minutes=1))
                try:
                    evicting: str | None = await opened.eviction_policy()
                except StoreError:  # INFO refused (an ACL without @dangerous): the policy cannot be read
                    evicting = UNREAD
                if accounts is not None:
                    try:
                        reserved = reserved_accounts(await opened.list_listeners())
                    except (StoreError, ConfigError):  # the accounts not read: nothing said of them, as before
                        reserved = None
                    if reserved is not None:
                        accounts.append(reserved)
            finally:
                await opened.close()
    except TimeoutError:
        return Finding(Level.PROBLEM, "GATEWAY_STORE", f"no answer within {STORE_TIMEOUT:.0f} s")
    except (StoreError, ConfigError) as error:  # a DataKeyError names the key id that is missing
        return Finding(Level.PROBLEM, "GATEWAY_STORE", str(error))
    if evicting == UNREAD:
        return Finding(Level.WARNING, "GATEWAY_STORE", "answers, but its maxmemory-policy could not be read (INFO "
                       "refused): make sure it is noeviction")  # fmt: skip
    if evicting is not None:
        return Finding(Level.PROBLEM, "GATEWAY_STORE", f"{EVICTING.format(evicting)}; set maxmemory-policy "
                       "noeviction (a full Redis then refuses writes: 503, providers redeliver)")  # fmt: skip
    if skew is not None and abs(skew) > SKEW_WARN_SECONDS:
        followed = abs(skew) <= SKEW_TRUSTED_SECONDS
        return Finding(Level.WARNING if followed else Level.PROBLEM, "GATEWAY_STORE", f"answers, but this host's "
                       f"clock is {skew:+.1f} s off Redis's (TIME): the gateway "
                       f"{'follows' if followed else 'cannot follow'} Redis's time (up to {SKEW_TRUSTED_SECONDS:.0f} "
                       "s off); fix NTP on this host")  # fmt: skip
    return Finding(Level.OK, "GATEWAY_STORE", f"answers; the last day's {len(recent)} conversation(s) open")


def reserved_accounts(listeners: list[Listener]) -> Finding | None:
    """Listener accounts whose name the gateway writes as an actor (``console.auth.RESERVED_NAMES``: ``gateway``,
    ``cli``, ``system``, in any case), made before ``gateway listeners add`` refused them (2026-12-07): their audit
    lines read as the system's, their hand-backs could be taken for automatic ones. A PROBLEM naming them and how to
    rename one (there is no rename: the person added under another name, the old account removed); None when there
    is none. Since 2026-12-07: until then nothing said them. ``listeners``: as the store lists them, read on the
    store check's connection (:func:`store`; until 2026-12-07, later that day, this check opened the store again)."""
    from gateway.console.auth import reserved_name

    found = [listener for listener in listeners if reserved_name(listener.name)]
    if not found:
        return None
    names = sorted(listener.name for listener in found)
    supervisors = sorted(listener.name for listener in found if listener.supervisor)
    removes = ", ".join(f"`gateway listeners remove {name}`" for name in names)
    return Finding(Level.PROBLEM, "listener accounts", f"{', '.join(names)}: a name the gateway writes as an actor "
                   "(its audit lines read as the system's); add each person under another name (`gateway listeners "
                   f"add NEWNAME`, with --supervisor for {', '.join(supervisors) or 'none of them'}), then {removes} "
                   "(its sessions end, what it holds goes back to the queue)")  # fmt: skip


async def instances_sealing(settings: Settings) -> Finding | None:
    """Which data key the running instances seal with (``gateway/sealing.py``, since 2026-12-07; a store where they
    say it: Redis; else None). Keys that differ, between instances or from this one's: a warning (a rotation's
    rolling restart under way is that for a while; ``gateway data-key rotate`` refuses meanwhile)."""
    from gateway.sealing import by_key, live
    from gateway.store import HasTime, SealingStore, open_store
    from gateway.store.redis_url import is_redis

    if not is_redis(settings.store):
        return None
    try:
        keys = DataKeys.from_settings(settings)
        async with asyncio.timeout(STORE_TIMEOUT):
            opened = await open_store(settings.store, keys=keys, cluster=bool(settings.redis_cluster))
            try:
                if not isinstance(opened, SealingStore):
                    return None
                now = await opened.server_time() if isinstance(opened, HasTime) else datetime.now(UTC)
                found = by_key(live(await opened.sealing_adverts(), now))
            finally:
                await opened.close()
    except (TimeoutError, StoreError, ConfigError):
        return None  # said by the store's own finding
    told = ", ".join(f"{count} with data key {kid}" for kid, count in found.items()) or "none heard"
    if set(found) - {keys.current_id}:
        return Finding(Level.WARNING, "data keys in use", f"running instances seal: {told}; this one's key is "
                       f"{keys.current_id}. A key rotation's restarts under way? Until every instance seals with the "
                       "new key, `gateway data-key rotate` refuses (docs/deployment.md, key rotation)")  # fmt: skip
    return Finding(Level.OK, "data keys in use", f"running instances seal: {told}")


async def redis_clients(settings: Settings) -> Finding | None:
    """Redis's ``maxclients`` against the connections the instances may open (since 2026-12-07; until then a Redis
    at its cap was found by its refusals: webhooks answered 503, ``MaxClientsReached``). A store that is not a
    Redis, a Redis Cluster (each node its own cap), or one that does not answer (said by the store's own finding):
    None. See :func:`clients_finding`."""
    from gateway.sealing import live
    from gateway.store import HasClientLimits, HasTime, SealingStore, open_store
    from gateway.store.redis_url import is_redis

    if not is_redis(settings.store) or settings.redis_cluster:
        return None
    try:
        async with asyncio.timeout(STORE_TIMEOUT):
            opened = await open_store(settings.store, keys=DataKeys.from_settings(settings))
            try:
                if not isinstance(opened, HasClientLimits):
                    return None
                instances = 0
                if isinstance(opened, SealingStore):
                    now = await opened.server_time() if isinstance(opened, HasTime) else datetime.now(UTC)
                    instances = len(live(await opened.sealing_adverts(), now))
                try:
                    limits: ClientLimits | None = await opened.client_limits()
                except StoreError:  # INFO refused as well as CONFIG
                    limits = None
            finally:
                await opened.close()
    except (TimeoutError, StoreError, ConfigError):
        return None  # said by the store's own finding
    return clients_finding(limits, instances, settings.redis_max_connections)


async def round_trip(settings: Settings) -> Finding | None:
    """Redis's round trip from this host (the shortest of ``ROUND_TRIP_READINGS`` readings of its ``TIME``, as each
    instance estimates it: ``gateway/clock.py``, ``RoundTrips``) and the inline budget it gives (since 2026-12-07:
    ``GATEWAY_INLINE_SECONDS`` is a floor, the budget follows the round trip). A warning when the round trip alone
    would take the budget past its ceiling: Redis too far for a message's several round trips in a row. A store
    that is not a Redis, or one that does not answer (said by the store's own finding): None."""
    from gateway.inbox import INLINE_CEILING, INLINE_ROUND_TRIPS, inline_budget
    from gateway.store import HasTime, open_store
    from gateway.store.redis_url import is_redis

    if not is_redis(settings.store):
        return None
    trips: list[float] = []
    try:
        async with asyncio.timeout(STORE_TIMEOUT):
            opened = await open_store(settings.store, keys=DataKeys.from_settings(settings),
                                      cluster=bool(settings.redis_cluster))  # fmt: skip
            try:
                if not isinstance(opened, HasTime):
                    return None
                await opened.server_time()  # the connection opened first: not timed
                for _ in range(ROUND_TRIP_READINGS):
                    started = time.monotonic()
                    await opened.server_time()
                    trips.append(time.monotonic() - started)
            finally:
                await opened.close()
    except (TimeoutError, StoreError, ConfigError):
        return None
    trip, floor = min(trips), settings.inline_seconds
    budget = inline_budget(floor, trip)
    said = (f"{trip * 1000:.1f} ms from this host: a webhook processed inline up to {budget:.2f} s before the inbox "
            f"takes the next ones (GATEWAY_INLINE_SECONDS {floor:g} s, or {INLINE_ROUND_TRIPS} round trips, at most "
            f"{INLINE_CEILING:g} s)")  # fmt: skip
    if not floor:
        said = f"{trip * 1000:.1f} ms from this host (GATEWAY_INLINE_SECONDS 0: webhooks not timed, counted only)"
    if INLINE_ROUND_TRIPS * trip > INLINE_CEILING:
        return Finding(Level.WARNING, "Redis round trip", f"{said}: Redis is far for a message's several round trips "
                       "in a row (replies slow, throughput low, docs/deployment.md): bring it closer")  # fmt: skip
    return Finding(Level.OK, "Redis round trip", said)


def clients_finding(limits: ClientLimits | None, instances: int, pool: int) -> Finding:
    """Each instance opens at most 2 × ``pool`` (``GATEWAY_REDIS_MAX_CONNECTIONS``) connections to Redis: the store's
    pool (its batched commands, its pub/sub connection, its locks) and the rate-limit counters' pool (Sentinel's own
    connections go to the Sentinels, not to Redis), and ``RENEWAL_CONNECTIONS`` for the lock's renewals (since
    2026-12-07). Needed: the live ``instances`` (those heard in the last
    ``ADVERT_LIVE_SECONDS``, ``gateway/sealing.py``; at least 1, the one configured here) and one more (a rolling
    deploy starts the new one before the old one stops, docs/deployment.md), × 2 × ``pool``, + ``CLIENTS_MARGIN``.
    A warning below it, or when the clients connected are already ``CLIENTS_NEAR`` of the cap or more, or when the
    cap could not be read (``limits`` None, or its ``maxclients`` None)."""
    from gateway.store.redis import RENEWAL_CONNECTIONS

    subject = "Redis maxclients"
    counted = max(instances, 1)
    each = 2 * pool + RENEWAL_CONNECTIONS
    need = (counted + 1) * each + CLIENTS_MARGIN
    how = (f"{need}: {counted} live instance(s) and 1 more during a rolling deploy, × {each} (2 × "
           f"GATEWAY_REDIS_MAX_CONNECTIONS {pool}: the store's pool and the rate limits', + {RENEWAL_CONNECTIONS} for "
           f"the lock's renewals), + {CLIENTS_MARGIN} for "
           "the commands and monitoring")  # fmt: skip
    if limits is None or limits.maxclients is None:
        return Finding(Level.WARNING, subject, f"could not be read (CONFIG and INFO refused): make sure it is at least "
                       f"{how}")  # fmt: skip
    cap, connected = limits.maxclients, limits.connected
    fitting = max(
        (cap - CLIENTS_MARGIN - (counted + 1) * RENEWAL_CONNECTIONS) // (2 * (counted + 1)), 1
    )  # the pool that would fit under the cap
    now = f"; {connected} connected now" if connected is not None else ""
    if connected is not None and connected >= CLIENTS_NEAR * cap:
        return Finding(Level.WARNING, subject, f"{cap}, and {connected} clients connected already: near the cap, "
                       "a burst's new connections will be refused (webhooks answered 503, MaxClientsReached); raise "
                       f"maxclients (the instances may open {how}) or lower GATEWAY_REDIS_MAX_CONNECTIONS")  # fmt: skip
    if cap < need:
        return Finding(Level.WARNING, subject, f"{cap}, below what the instances may open: {how}{now}; a burst "
                       "beyond the cap is refused (webhooks answered 503, MaxClientsReached): raise maxclients or "
                       f"lower GATEWAY_REDIS_MAX_CONNECTIONS (to {fitting} or less)")  # fmt: skip
    return Finding(Level.OK, subject, f"{cap}, at least {how}{now}")


async def _skew(opened: HasTime, clock: Clock) -> float:
    """This host's clock minus the store's time, the round trip halved, in seconds."""
    before = clock()
    answer = await opened.server_time()
    after = clock()
    return ((before + (after - before) / 2) - answer).total_seconds()
