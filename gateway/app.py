"""The aiohttp application factory: every part of the gateway is wired here, explicitly, and only here.

``await create_app(settings)`` opens the store, loads the flow, builds the channels, the dispatcher, the outbox,
the timers, the web chat and the listener API, and registers the routes. Background workers (outbox delivery,
timers, web chat and console event forwarding, presence, the typing relay, flows.yaml watching, alert checks, and
behind Sentinel the Redis pools' checks of the primary, which the store hands over: ``HasWorkers``) run under one
:class:`~gateway.supervisor.Supervisor`, start with the app and stop with it; ``/readyz`` names any that is down or
restarting too often.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import math
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway import leaving
from gateway.access_log import PrivateAccessLogger
from gateway.alerts import REPAIR_LOCK_SECONDS, WATCH_SECONDS, Watch
from gateway.channels.base import MediaFetcher
from gateway.channels.whatsapp_catchup import CatchUp
from gateway.channels_wiring import TypingRelay, batch_processor, build_channels, webhook_routes
from gateway.clock import ALIGN_SECONDS, SKEW_TRUSTED_SECONDS, SKEW_WARN_SECONDS, Aligned, RoundTrips, utcnow
from gateway.console.access import Sight
from gateway.console.actions import Actions
from gateway.console.api import LISTENER, ListenerAPI, Presence
from gateway.console.crosssite import CrossSite, Handler, own_pages_only
from gateway.console.events import ConsoleEvents
from gateway.console.logins import LoginBrake, Logins, PasswordWorkers, Turns
from gateway.console.media import ConsoleMedia
from gateway.console.pages import ConsolePages
from gateway.console.safety import Safety
from gateway.console.sessions import Sessions, signed_in
from gateway.console.supervision import Supervision
from gateway.conversation import Status
from gateway.crypto import DataKeys
from gateway.dispatcher import Dispatcher
from gateway.doctor import EVICTING
from gateway.erasure import Eraser
from gateway.errors import ConfigError, FlowValidationError, InboundBusy, ReplicasBehind, StoreError
from gateway.flows.model import DEFAULT_MESSAGES
from gateway.flowset import FLOW_READ_SECONDS, PRUNE_AFTER_SECONDS, FlowSet
from gateway.gate import Gate
from gateway.images import Cleaning
from gateway.inbox import Inbox
from gateway.keyed import KeyedHash
from gateway.loop_watch import LoopWatch
from gateway.mailer import Mailer
from gateway.messages import ChannelName, Departure
from gateway.metrics import CONTENT_TYPE, Metrics
from gateway.notices.api import CaseworkAPI
from gateway.notices.inbound import InboundReferrals
from gateway.notices.referrals import Referrals
from gateway.notices.service import Notices
from gateway.outage_log import EVERY, HTTP, RETRY_AFTER_SECONDS, StoreOutages, error_class
from gateway.outbox import Outbox
from gateway.ratelimit import RateLimits, open_limit_storage
from gateway.retention import Retention
from gateway.scrapers import Scrapers
from gateway.sealing import Advert
from gateway.settings import Settings
from gateway.sockets import SocketWriter
from gateway.store import (
    RELEASE_OUTCOMES,
    AuditEntry,
    ConversationStore,
    HasTime,
    HasWorkers,
    RetriesReleases,
    SealingStore,
    Store,
)
from gateway.store.waiting import open_store_waiting
from gateway.supervisor import Supervisor, where
from gateway.timers import Timers
from gateway.understanding import Model, Reader, load_model
from gateway.understanding.late import OUTCOMES as LATE_OUTCOMES
from gateway.understanding.late import LateReadings
from gateway.uploads import PATH as uploads_path
from gateway.uploads import Uploads
from gateway.webchat import WebChatHub, chat_socket, leave_request

log = logging.getLogger(__name__)

# seconds a stop gives the outbox's sends in flight to end and be recorded (Outbox.drain), after the requests in
# flight (connections.STOP_REQUESTS_SECONDS): both within a process manager's grace period (Kubernetes' 30 s)
OUTBOX_DRAIN_SECONDS = 10.0
SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
FLOWS = web.AppKey("flows", FlowSet)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
OUTBOX = web.AppKey("outbox", Outbox)
TIMERS = web.AppKey("timers", Timers)
API = web.AppKey("api", ListenerAPI)
METRICS = web.AppKey("metrics", Metrics)
GATE = web.AppKey("gate", Gate)
SUPERVISOR = web.AppKey("supervisor", Supervisor)
READER = web.AppKey("reader", Reader)
WEBCHAT = web.AppKey("webchat", WebChatHub)
WATCH = web.AppKey("watch", Watch)
CATCH_UP = web.AppKey("whatsapp_catchup", CatchUp)
ALIGNED = web.AppKey("aligned", Aligned)  # the clock set on Redis's TIME (a Redis store only)
CLEANING = web.AppKey("cleaning", Cleaning)  # the images' own threads (gateway/images.py)
SEALING = web.AppKey("sealing", Advert)  # which data key this instance seals with, told to the others (Redis only)

STATIC = resources.files("gateway") / "webchat_static"
FLOW_WATCH_SECONDS = 2.0


async def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    store: Store | None = None,
    worker_poll_seconds: float = 1.0,
    flow_watch_seconds: float = FLOW_WATCH_SECONDS,
    flow_read_seconds: float = FLOW_READ_SECONDS,
    understanding: Callable[[], Model] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    outage_summary_seconds: float = EVERY,
    awake: Callable[[], float] | None = None,
    watch_seconds: float = WATCH_SECONDS,
) -> web.Application:
    """``understanding`` loads the embedded model (default: the shipped one; tests inject a failing one);
    ``flow_watch_seconds`` is how often flows.yaml's modification time is looked at, ``flow_read_seconds`` how long a
    running server's reload waits for the file to be read and compiled (``FlowSet.read_seconds``); ``monotonic`` is
    the clock by which the inbox times webhooks processed inline (``Inbox.busy``); ``outage_summary_seconds`` how
    often a store outage is summed up in the log while it lasts (gateway/outage_log.py); ``awake`` the monotonic
    clock the timers compare ``clock`` with to tell the time the gateway was away (a suspended machine:
    gateway/timers.py), by default ``time.monotonic`` with the real ``clock``, and none with another (a test's clock
    moves alone); ``watch_seconds`` how often the alert checks run (gateway/alerts.py: the store's probe, the outbox's
    oldest item, listeners away; a test of an outage's end sets a shorter one)."""
    metrics = Metrics(outage_summary_seconds=outage_summary_seconds)
    flows = FlowSet(
        Path(settings.flows),
        on_reload=lambda r: metrics.reloaded(r.ok, r.version),
        always_open=bool(settings.dev_always_open),
        read_seconds=flow_read_seconds,
    )
    flows.reload()
    if flows.current is None:  # refuse to start on an invalid flow: the problems were logged by reload()
        problems = list(flows.last_reload.problems) if flows.last_reload else []
        raise FlowValidationError([*problems, f"{settings.flows} is not valid: the gateway does not start"])
    keys = DataKeys.from_settings(settings)  # the store's, and the eraser's (a listed person's identity sealed)
    store = store or await open_store_waiting(  # an unreachable store waited for (gateway/store/waiting.py)
        settings.store, keys=keys, max_connections=settings.redis_max_connections,
        pool_timeout=settings.redis_pool_timeout, health_check_interval=settings.redis_health_check_seconds,
        socket_timeout=settings.redis_socket_timeout, cluster=bool(settings.redis_cluster),
        give_up_after=settings.store_start_give_up_seconds,
    )  # fmt: skip
    awake = awake or (time.monotonic if clock is utcnow else None)  # the host's clock's, read before it is aligned
    aligned = Aligned(clock, time.monotonic) if isinstance(store, HasTime) else None
    trips = RoundTrips()  # the store's round trip, measured by each reading of its time (none: SQLite)
    if aligned is not None and isinstance(store, HasTime):  # every instance on one Redis on Redis's time (since
        await _align(aligned, store, metrics, trips)  # 2026-12-07: gateway/clock.py)
        clock = aligned
        store.use_clock(aligned)  # its claims too (until 2026-12-07 on the host's clock: tests/test_clock_skew.py)
    # which data key this instance seals with, said before it writes anything (gateway/sealing.py, since 2026-12-07)
    advert = Advert(store, keys.current_id, clock, outages=metrics.outages) if isinstance(store, SealingStore) else None
    if advert is not None:
        await advert.once()
    store.share_texts(flows.own_texts)  # the bot's messages of flows.yaml are stored once (store/texts.py)
    await _say_if_evicting(store)
    replicated = _replicated(settings, store, metrics)
    releases = _watch_releases(store, metrics)
    _count_people_failures(store, metrics)
    larger = {uploads_path: settings.webchat_upload_max_bytes}  # the one route whose bodies may be bigger
    middlewares = [_errors(metrics.outages), _refusals(metrics), _body_deadline(settings.http_body_timeout, larger)]
    if replicated is not None:  # GATEWAY_REDIS_REPLICA_ACKS: the console's writes wait for the replicas (else nothing)
        middlewares.append(_console_replicated(replicated, metrics.outages))
    # Its access lines are the gateway's whoever serves it (``gateway serve``, ``web.run_app``, a Gunicorn worker, a
    # test server): until 2026-12-08 only ``gateway serve`` named PrivateAccessLogger, and any other runner wrote
    # aiohttp's own line (the client's address, User-Agent, Referer, the query with Meta's verify token). A runner's
    # ``access_log=None`` (``GATEWAY_ACCESS_LOG=0``) still turns it off.
    handler_args = {"access_log_class": PrivateAccessLogger}
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares, handler_args=handler_args)
    http = aiohttp.ClientSession()
    channels = build_channels(settings, http)
    presence = Presence(beat=worker_poll_seconds * 10, outages=metrics.outages)
    outbox_ref: list[Outbox] = []
    reader = _reader(settings, understanding, metrics)
    late = _late_readings(settings, reader, store, metrics, clock)
    keyed = KeyedHash(settings.secret_key.get_secret_value())  # one for the inbox, the gate and the ids in log
    # lines: a webhook makes its senders' keys once for the inbox and the gate (channels_wiring, Inbox.sender_keys)
    dispatcher = Dispatcher(store, flows, clock=clock, on_outgoing=lambda: outbox_ref[0].kick(),
                            on_rate_limited=lambda channel: outbox_ref[0].rate_limited(channel),
                            listeners_online=presence.online, metrics=metrics,
                            reply_windows=channels.reply_windows,
                            claim_seconds=settings.inbound_claim_seconds, reader=reader, late=late,
                            purge_interval_seconds=settings.purge_interval_seconds, keyed=keyed)  # fmt: skip
    outbox = Outbox(store, channels.senders, clock=clock, poll_seconds=worker_poll_seconds, metrics=metrics,
                    base_delay=settings.outbox_base_delay, max_attempts=settings.outbox_max_attempts or None,
                    retry_for=timedelta(hours=settings.outbox_retry_hours),
                    lease_seconds=settings.outbox_lease_seconds,
                    on_recipient_gone=lambda gone: leaving.blocked(dispatcher, store, gone, clock()),
                    keyed=keyed)  # fmt: skip
    outbox_ref.append(outbox)
    timers = Timers(dispatcher, store, flows, metrics, clock=clock, poll_seconds=worker_poll_seconds,
                    awake=awake)  # fmt: skip
    inbox = Inbox(
        store,
        dispatcher,
        metrics,
        keyed,
        clock=clock,
        batch=settings.inbox_batch,
        inline_max=settings.inline_max,
        inline_seconds=settings.inline_seconds,
        inline_window=settings.inline_window_seconds,
        monotonic=monotonic,
        # the budget follows the store's round trip (since 2026-12-07); not with a test's monotonic clock, moved alone
        round_trip=(lambda: trips.seconds) if monotonic is time.monotonic else (lambda: None),
        poll_seconds=worker_poll_seconds,
        lease_seconds=math.ceil(2 * settings.inbound_claim_seconds),
        concurrency=settings.inbox_concurrency,  # (50 hard-coded until 2026-12-07)
    )
    opened_counters = open_limit_storage(
        settings.store,
        max_connections=settings.redis_max_connections,
        pool_timeout=settings.redis_pool_timeout,
        health_check_interval=settings.redis_health_check_seconds,
        socket_timeout=settings.redis_socket_timeout,
        cluster=bool(settings.redis_cluster),
    )
    counters = opened_counters.storage
    limits = RateLimits.from_settings(settings, counters, metrics)
    gate = Gate(store, flows, limits, keyed, metrics, clock=clock, on_outgoing=outbox.kick,
                max_waiting_per_client=settings.max_waiting_per_client,
                max_waiting_per_shared_network=settings.max_waiting_per_shared_network,
                networks=settings.client_networks(),
                read=dispatcher.reading if reader is not None else None,
                refusals_kept_seconds=int(settings.whatsapp_catchup_window_hours * 3600) + 60)  # fmt: skip
    hub = WebChatHub(store, dispatcher, flows, metrics, gate, clock=clock,
                     addresses=settings.client_addresses(), keepalive=settings.socket_keepalive_seconds,
                     position_seconds=settings.webchat_position_seconds, replicated=replicated)  # fmt: skip
    actions = Actions(dispatcher, store, flows, clock=clock)
    dispatcher.complete_leaving = actions.complete_leaving  # a message completes an ending cut short first
    # sessions run on real time, as the cookie's max-age does: not on the flow's (injectable) clock
    sessions = Sessions(store, settings.secret_key.get_secret_value(), utcnow)
    live = ConsoleEvents(store, sessions, metrics.outages, sweep_seconds=worker_poll_seconds * 5)
    workers = PasswordWorkers(settings.password_hash_workers)
    brake = LoginBrake(
        counters,
        keyed,
        free=settings.login_free_failures,
        lock=settings.login_lock_failures,
        lock_minutes=settings.login_lock_minutes,
        announce=lambda *lock: api.announce_lock(*lock),
        networks=settings.client_networks(),
    )
    logins = Logins(workers, brake, Turns(settings.client_networks()))
    api = ListenerAPI(store, actions, flows, sessions,
                      secure_cookies=settings.public_url.startswith("https://"), presence=presence, live=live,
                      metrics=metrics, logins=logins, limits=limits, clock=clock,
                      cross_site=CrossSite(settings.public_url, settings.console_origin_list()),
                      addresses=settings.client_addresses(), keepalive=settings.socket_keepalive_seconds)  # fmt: skip
    app[SETTINGS], app[STORE], app[FLOWS], app[DISPATCHER] = settings, store, flows, dispatcher
    app[OUTBOX], app[TIMERS], app[API], app[METRICS], app[GATE] = outbox, timers, api, metrics, gate

    # images cleaned in their own threads, never the loop's default executor (DNS lookups, Redis connects)
    cleaning = Cleaning(settings.webchat_image_workers, settings.webchat_image_waiting)
    app[CLEANING] = cleaning
    uploads = Uploads(store, dispatcher, gate, settings.webchat_upload_max_bytes, replicated,
                      addresses=settings.client_addresses(), max_edge=settings.webchat_image_max_edge,
                      max_kept=settings.webchat_image_max_kept_bytes, cleaning=cleaning)  # fmt: skip
    dispatcher.moved = uploads.moved  # an image whose conversation ended meanwhile: its file kept with the next one
    fetchers: dict[ChannelName, MediaFetcher] = {
        name: a for name, a in channels.adapters.items() if isinstance(a, MediaFetcher)
    }
    fetchers[ChannelName.WEBCHAT] = uploads  # images sent from the web chat, kept in the store
    smtp_url = settings.smtp_url.get_secret_value()
    mailer = Mailer(smtp_url, settings.smtp_ca_file) if smtp_url else None
    notices = Notices(dispatcher, store, flows, fetchers, mailer, clock=clock, poll_seconds=worker_poll_seconds * 30,
                      metrics=metrics)  # fmt: skip
    retention = Retention(store, flows, clock=clock, interval_seconds=settings.purge_interval_seconds, metrics=metrics)
    eraser = Eraser(store, dispatcher, flows, gate.sender_key, clock=clock, late=late,
                    erased_key=lambda channel, sender: keyed.erased(channel.value, sender),
                    listed_for=timedelta(hours=settings.whatsapp_catchup_window_hours, minutes=1),
                    conversation_key=keyed.erased_conversation, keys=keys)  # fmt: skip
    dispatcher.eraser = lambda conversation, key: eraser.finish_confirmed(conversation.id, key)
    dispatcher.erased_mark = keyed.erased_conversation  # a web chat message's erased conversation: the mark decides
    hub.finish_erasure = eraser.finish_cut  # a hello finding an erasure cut short finishes it before opening anything
    supervisor = Supervisor(metrics)
    presence.troubled = lambda: supervisor.problems().keys()  # announced to every instance's supervision board
    # the check's repairs wait 2 s for a conversation's lock, then skip it until the next round; a listener's 10 s
    repairs = Actions(dispatcher, store, flows, clock=clock, lock_seconds=REPAIR_LOCK_SECONDS)

    async def logged_in(name: str) -> bool:  # a live session of the account, on real time as the sessions are
        return await signed_in(store, name, utcnow())

    watch = Watch(store, metrics, clock=clock, outbox_alert_seconds=settings.outbox_alert_seconds,
                  listener_present=presence.has, held_alert_seconds=settings.held_alert_seconds,
                  hand_back=lambda conversation_id, listener: repairs.hand_back_absent(
                      conversation_id, listener, absent=lambda name: presence.complete() and not presence.has(name)),
                  handback_seconds=settings.held_handback_seconds, complete=repairs.complete_hand_back,
                  back_in_line=repairs.back_in_line, complete_close=repairs.complete_close,
                  complete_move=repairs.complete_move, complete_take=repairs.complete_take,
                  complete_leaving=repairs.complete_leaving, listeners_here=presence.here,
                  complete_erasure=lambda i, key: eraser.finish_confirmed(i, key, timeout=REPAIR_LOCK_SECONDS),
                  signed_in=logged_in,
                  hand_back_left=lambda conversation_id, listener: repairs.hand_back_absent(
                      conversation_id, listener, absent=lambda name: presence.complete() and not presence.has(name),
                      signed_in=logged_in),
                  left_seconds=2.5 * presence.beat,  # the presence's own grace (``Presence.complete``)
                  every=watch_seconds)  # fmt: skip
    typing_relay = TypingRelay(store, channels.adapters, limits, metrics,  # one indicator across instances: a claim
                               paused=outbox.paused)  # fmt: skip
    hup = asyncio.Event()  # SIGHUP: flows.yaml reloaded at once by the watcher (off the loop: FlowSet.reload_aside)
    loop_watch = LoopWatch(metrics)
    hub.held_for = loop_watch.held_for  # a socket's close seen after a hold: as early as the hold (since 2026-12-07)
    for name, worker in {
        "outbox": outbox.run, "inbox": inbox.run,
        "timers": timers.run, "webchat": hub.forward_events, "webchat-positions": hub.refresh_positions,
        "console": live.forward,
        "console-sessions": live.sweep,
        "flows": lambda: _watch(flows, flow_watch_seconds, store, hup), "presence": lambda: presence.listen(store),
        "presence-beat": lambda: presence.beat_forever(store), "typing": typing_relay.run,
        "alerts": watch.run, "notices": notices.run, "purge": retention.run, "loop-watch": loop_watch.run,
    }.items():  # fmt: skip
        supervisor.add(name, worker)
    if aligned is not None and isinstance(store, HasTime):
        supervisor.add("clock", lambda: _keep_aligned(aligned, store, metrics, trips))
    if advert is not None:
        supervisor.add("sealing-key", advert.run)
    # the stores' own work: behind Sentinel, each pool's check of the primary (store-primary, limits-primary)
    for name, worker in {**(store.workers() if isinstance(store, HasWorkers) else {}),
                         **opened_counters.workers()}.items():  # fmt: skip
        supervisor.add(name, worker)
    if late is not None:
        supervisor.add("late-readings", lambda: late.run(dispatcher.apply_late))
        supervisor.add("late-readings-store", late.keep)  # holds this instance's, claims those of a dead one
    app[SUPERVISOR], app[WATCH] = supervisor, watch
    if aligned is not None:
        app[ALIGNED] = aligned
    app[WEBCHAT] = hub
    lifecycles = [(_nothing, opened_counters.close), *channels.lifecycles]  # closed after the channels
    if advert is not None:  # its advert removed at a clean stop, once the outbox drained (the last writes made)
        app[SEALING] = advert
        lifecycles.insert(0, (_nothing, advert.forget))
    if reader is not None:
        app[READER] = reader
        lifecycles.insert(0, _reader_lifecycle(reader))
    app.cleanup_ctx.append(_lifecycle(supervisor, store, http, lifecycles, hup,
                                      lambda: outbox.drain(OUTBOX_DRAIN_SECONDS)))  # fmt: skip
    app.on_cleanup.append(lambda _: _close_guards(workers))
    app.on_cleanup.append(lambda _: _close_cleaning(cleaning))
    app.on_shutdown.append(_close_sockets(hub.open, api.open))
    app.on_cleanup.append(lambda _: _close_hub(hub))
    app.on_cleanup.append(lambda _: _close_outages(metrics.outages))
    # the chat page's origins: the gateway's own and its aliases (GATEWAY_WEBCHAT_ORIGINS), never the consoles'
    chat_origin = CrossSite(settings.public_url, settings.webchat_origin_list())

    def own_pages(handler: Handler) -> Handler:  # the web chat's routes another site's page could call
        return own_pages_only(handler, chat_origin, metrics.refused.labels("cross_site").inc)

    _routes(app, settings, hub, api, flows, store, supervisor, reader, releases, metrics.outages, own_pages,
            replicated)  # fmt: skip

    async def departed(departure: Departure) -> None:  # a provider's (un)block notice
        await leaving.provider_says(dispatcher, store, departure, clock())

    if settings.telegram_enabled:  # its token refused at start: told, and asked again until taken (telegram.py)
        from gateway.channels.telegram import TelegramChannel

        telegram = channels.adapters[ChannelName.TELEGRAM]
        assert isinstance(telegram, TelegramChannel)
        supervisor.add(
            "telegram-token", lambda: telegram.confirm_token(outbox.credentials_refused, outbox.credentials_accepted)
        )
    missed: dict[ChannelName, Callable[[], None]] = {}
    if settings.whatsapp_enabled:  # Twilio sends no webhook again: its list read (whatsapp_catchup.py)
        from gateway.channels.whatsapp import WhatsAppChannel

        whatsapp = channels.adapters[ChannelName.WHATSAPP]
        assert isinstance(whatsapp, WhatsAppChannel)
        catch_up = CatchUp(whatsapp, store, batch_processor(dispatcher, gate, inbox, departed, None, flood=False),
                           limits, metrics,
                           period=settings.whatsapp_catchup_seconds,  # Twilio's times: the real clock
                           window=timedelta(hours=settings.whatsapp_catchup_window_hours),
                           settle=settings.whatsapp_catchup_settle_seconds,
                           behind_after=settings.whatsapp_catchup_behind_seconds,
                           erased_key=lambda channel, sender: keyed.erased(channel.value, sender))  # fmt: skip
        supervisor.add("whatsapp-catchup", catch_up.run)
        missed[ChannelName.WHATSAPP] = catch_up.missed
        app[CATCH_UP] = catch_up
    app.add_routes(webhook_routes(channels, dispatcher, gate, inbox, metrics, departed=departed, replicated=replicated,
                                  missed=missed))  # fmt: skip
    media = ConsoleMedia(store, fetchers)
    app.add_routes([
        *ConsolePages(api, store).routes(), *Supervision(store, flows, presence, api, clock=clock,
                      outbox_alert_seconds=settings.outbox_alert_seconds).routes(),
        *Safety(store, dispatcher, flows, gate, api, eraser, clock=clock).routes(),
        *CaseworkAPI(api, store, flows, notices, Referrals(dispatcher, store, flows, mailer, clock=clock),
                     clock=clock).routes(),
        *InboundReferrals(dispatcher, store, flows, settings.partner_key_map(), settings.public_url,
                          clock=clock, keyed=keyed).routes(),
        web.get("/api/conversations/{id}/attachments/{n}", api.authed(media.attachment, wall=Sight.FULL)),
        web.post(uploads_path, own_pages(uploads.upload)),
    ])  # fmt: skip
    scrapers = Scrapers(settings.metrics_token.get_secret_value(), settings.client_addresses())
    page = _MetricsPage(metrics, store, presence, clock)
    app.router.add_get("/metrics", scrapers.only(page.handler))
    app.on_shutdown.append(page.close)
    app.on_response_prepare.append(_api_not_stored)
    return app


async def _api_not_stored(request: web.Request, response: web.StreamResponse) -> None:
    """The console's API answers carry young people's words and pseudonyms: no browser or proxy keeps them
    (``Cache-Control: no-store``, as the pages have), on a listener's shared computer least of all. An answer that
    says its own (an attachment's ``private, no-store``) keeps it."""
    if request.path.startswith("/api/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"


async def _say_if_evicting(store: Store) -> None:
    """A Redis that evicts once full drops what the gateway relies on without an error (docs/deployment.md asks for
    ``noeviction``): said once at start-up, as ``gateway doctor`` says it (a problem there)."""
    try:
        evicting = await store.eviction_policy()
    except StoreError:  # INFO refused (an ACL), or the store gone again: the doctor says what it can read
        return
    if evicting is not None:
        log.warning("%s; set maxmemory-policy noeviction (docs/deployment.md)", EVICTING.format(evicting))


def _replicated(settings: Settings, store: Store, metrics: Metrics) -> Callable[[], Awaitable[None]] | None:
    """``GATEWAY_REDIS_REPLICA_ACKS``: what an acknowledgement awaits first (the Redis store's ``replicated``, each
    round's outcome counted), None when it is 0 (gateway/store/redis_replicas.py)."""
    if not settings.redis_replica_acks:
        return None
    from gateway.store.redis import RedisStore

    if not isinstance(store, RedisStore):
        raise ConfigError("GATEWAY_REDIS_REPLICA_ACKS needs a Redis store")

    def counted(confirmed: bool, callers: int) -> None:
        metrics.replica_rounds.inc()
        metrics.replica_acks.labels("confirmed" if confirmed else "behind").inc(callers)

    store.require_replicas(settings.redis_replica_acks, settings.redis_replica_ack_timeout, counted)
    return store.replicated


def _watch_releases(store: Store, metrics: Metrics) -> RetriesReleases | None:
    """The store's releases made again in the background (Redis): each outcome counted, ``/readyz`` asks it. Short
    tasks ending by themselves (``gateway/store/redis_release.py``), not workers: not under the supervisor."""
    if not isinstance(store, RetriesReleases):
        return None
    for outcome in RELEASE_OUTCOMES:
        metrics.release_retries.labels(outcome)  # each shown from 0, so a rate of gave_up can be alerted on
    store.watch_releases(
        lambda outcome: metrics.release_retries.labels(outcome).inc(),
        lambda error: metrics.outages.failed("redis_release", error),
    )
    return store


def _count_people_failures(store: Store, metrics: Metrics) -> None:
    """The Redis store's failed passes making the people's indexes (one-time, shared by the reads: its own line
    each), counted with the store's other failures."""
    from gateway.store.redis import RedisStore

    if isinstance(store, RedisStore):
        store.watch_people(lambda kind: metrics.store_failures.labels("people_indexes", kind).inc())


def _reader(settings: Settings, understanding: Callable[[], Model] | None, metrics: Metrics) -> Reader | None:
    """The embedded model, loaded in its worker thread once the app starts; None when switched off."""
    if settings.understanding == "off" and understanding is None:
        return None
    failures, messages = metrics.understanding_failures, metrics.understanding_messages
    engine = settings.understanding_engine
    return Reader(understanding or (lambda: load_model(engine=engine)), timeout=settings.understanding_timeout,
                  on_failure=lambda reason: failures.labels(reason).inc(),
                  on_reading=lambda how: metrics.child(messages, how).inc())  # fmt: skip


def _late_readings(
    settings: Settings, reader: Reader | None, store: Store, metrics: Metrics, clock: Callable[[], datetime]
) -> LateReadings | None:
    """The model's second check after the fact, kept in the store (``gateway/understanding/late.py``)."""
    if reader is None:
        return None
    for outcome in LATE_OUTCOMES:
        metrics.understanding_late.labels(outcome)  # each shown from 0
    return LateReadings(reader, store, hold_seconds=settings.late_hold_seconds, clock=clock,
                        on_outcome=lambda o: metrics.understanding_late.labels(o).inc(),
                        on_store_failure=lambda exc: metrics.outages.failed("late_readings", exc),
                        on_store_answer=lambda: metrics.outages.answered("late_readings", wrote=True))  # fmt: skip


def _reader_lifecycle(reader: Reader) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    async def start() -> None:
        reader.start()  # loads in the background: the gateway serves meanwhile, on keywords

    async def stop() -> None:
        await reader.stop()  # its thread ended and its model let go: nothing of it outlives the app

    return start, stop


def _lifecycle(
    supervisor: Supervisor,
    store: Store,
    http: aiohttp.ClientSession,
    lifecycles: list[tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]],
    hup: asyncio.Event,
    drain: Callable[[], Awaitable[None]],
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        started: list[Callable[[], Awaitable[None]]] = []
        try:
            for start, stop in lifecycles:
                await start()
                started.append(stop)
        except BaseException:  # the start-up fails: what was opened is closed (no "Unclosed client session")
            for stop in reversed(started):
                await stop()
            await http.close()
            await store.close()
            raise
        supervisor.start()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, hup.set)
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await drain()  # the outbox's sends in flight end and are recorded before its worker is cancelled
            await supervisor.stop()
            for _, stop in reversed(lifecycles):
                await stop()
            await http.close()
            await store.close()

    return context


async def _nothing() -> None:
    """Nothing to start: the rate limits' Redis pool connects on first use; only its closing is a lifecycle."""


async def _align(clock: Aligned, store: HasTime, metrics: Metrics, trips: RoundTrips | None = None) -> None:
    """Read the store's time once and set ``clock`` on it; the skew in ``gateway_clock_skew_seconds``, a WARNING
    line when it goes above ``SKEW_WARN_SECONDS`` (one, until an INFO line when it is back under). A store that does
    not answer: the clock keeps its last setting (the outage is told elsewhere). Since 2026-12-07 the reading's round
    trip (monotonic clock) goes to ``trips``, their estimate to ``gateway_store_round_trip_seconds``."""
    before, started = clock.local(), time.monotonic()
    try:
        answer = await store.server_time()
    except StoreError:
        return
    if trips is not None:
        trips.add(time.monotonic() - started)
        metrics.store_round_trip.set(trips.seconds or 0.0)
    was = clock.skew
    skew = clock.align(before, answer, clock.local(), time.monotonic())
    metrics.clock_skew.set(skew)
    if abs(skew) > SKEW_WARN_SECONDS and (was is None or abs(was) <= SKEW_WARN_SECONDS):
        followed = "followed" if abs(skew) <= SKEW_TRUSTED_SECONDS else "too far off: not followed, fix NTP"
        log.warning("clock: this host's clock is %+.1f s off the store's (Redis TIME): %s", skew, followed)
    elif abs(skew) <= SKEW_WARN_SECONDS and was is not None and abs(was) > SKEW_WARN_SECONDS:
        log.info("clock: this host's clock is back within %.0f s of the store's", SKEW_WARN_SECONDS)


async def _keep_aligned(clock: Aligned, store: HasTime, metrics: Metrics, trips: RoundTrips) -> None:
    while True:
        await asyncio.sleep(ALIGN_SECONDS)
        await _align(clock, store, metrics, trips)


async def _close_cleaning(cleaning: Cleaning) -> None:
    cleaning.close()


async def _close_guards(workers: PasswordWorkers) -> None:
    workers.close()


async def _close_hub(hub: WebChatHub) -> None:
    hub.close()


async def _close_outages(outages: StoreOutages) -> None:
    outages.close()


def _close_sockets(
    *groups: Iterable[SocketWriter],
) -> Callable[[web.Application], Coroutine[Any, Any, None]]:
    """Open websockets would hold a graceful shutdown for its whole timeout: send what is queued for them (an
    acknowledgement must not be lost), then tell them to reconnect elsewhere."""

    async def close(app: web.Application) -> None:
        writers = [writer for group in groups for writer in list(group) if not writer.ws.closed]
        await asyncio.gather(*(writer.goodbye() for writer in writers), return_exceptions=True)

    return close


def _unreachable(flows: FlowSet) -> dict[str, str]:
    """What the web chat page says, by language, once it has not reached the line for 30 s (``chat.js``): where to
    turn meanwhile, flows.yaml's words as the page was served (its partners' numbers, ops' to change)."""
    messages = flows.current.flow.messages if flows.current is not None else {}
    return dict(messages.get("unreachable") or DEFAULT_MESSAGES["unreachable"])


async def _watch(flows: FlowSet, every: float, store: ConversationStore, hup: asyncio.Event) -> None:
    """flows.yaml looked at every ``every`` seconds (reloaded once settled), and reloaded at once on SIGHUP (``hup``),
    each time read and compiled off the loop (:meth:`FlowSet.reload_aside`); the versions no open conversation uses
    any more forgotten, looked for at most every ``PRUNE_AFTER_SECONDS`` (a read of the open conversations)."""
    looked = time.monotonic()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hup.wait(), every)
        if hup.is_set():
            hup.clear()
            await flows.reload_aside()
        else:
            await flows.reload_if_settled_aside()
        if flows.prunable() and time.monotonic() - looked >= PRUNE_AFTER_SECONDS:
            looked = time.monotonic()
            await prune_flows(flows, store)


OPEN = (Status.BOT, Status.QUEUED, Status.WITH_LISTENER)


async def prune_flows(flows: FlowSet, store: ConversationStore, settled: float = PRUNE_AFTER_SECONDS) -> int:
    """Forget the flow versions no open conversation is pinned to (:meth:`FlowSet.prune`); the store unreachable,
    nothing this time (the watcher looks again later). How many were forgotten."""
    try:
        in_use = {c.flow_version for status in OPEN for c in await store.conversations_by_status(status)}
    except StoreError as exc:
        log.info("flows: which versions are in use unknown (%s): none forgotten this time", type(exc).__name__)
        return 0
    return flows.prune(in_use, settled)


def unavailable() -> web.Response:
    """The 503 of a request the gateway could not serve now, with when to try again (``RETRY_AFTER_SECONDS``)."""
    return web.json_response({"error": "unavailable", "message": "try again shortly"}, status=503,
                             headers={"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip


def _errors(outages: StoreOutages) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Unexpected failures answer 503 with a ``Retry-After`` (the provider retries, nothing is lost) and log no
    content; the path as the client sent it, percent-encoded (until 2026-12-07 decoded: ``%0A`` in a conversation id
    wrote a line of the client's choosing). The store's failures are counted and told by ``outages`` (a line per
    outage, not per request: gateway/outage_log.py)."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except InboundBusy:  # another instance processes this message: the provider retries it, nothing is wrong
            log.info("%s %s: the message is being processed elsewhere: 503, retried by its sender", request.method,
                     request.rel_url.raw_path)  # fmt: skip
            return unavailable()
        except ReplicasBehind:  # the store answers; said once and counted by gateway/store/redis_replicas.py
            return unavailable()
        except StoreError as exc:
            outages.failed(HTTP, exc)
            return unavailable()
        except Exception as exc:  # a bug: logged by class and place only, since its message may quote what was sent
            if isinstance(exc, OSError) and isinstance(request.match_info.route.resource, web.StaticResource):
                raise web.HTTPNotFound() from None  # a file name the system refuses (too long): no such file
            log.error("unexpected %s while serving %s %s at %s", exc.__class__.__name__, request.method,
                      request.rel_url.raw_path, where(exc))  # fmt: skip
            return unavailable()

    return middleware


_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# the web chat's own writes outside /api/ that answer a success the page relies on (since 2026-12-07); the upload
# waits in gateway/uploads.py, a message's ack in gateway/webchat.py
_PAGE_WRITES = frozenset({"/chat/leave", "/chat/referral"})


def _console_replicated(
    replicated: Callable[[], Awaitable[None]], outages: StoreOutages
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """``GATEWAY_REDIS_REPLICA_ACKS``: a write under ``/api/`` (every method but GET, HEAD, OPTIONS: the console's
    actions, the login, the logout, the password change, a partner's referral) answers its success (below 400) only
    once the replicas have what it wrote (``replicated``, one round shared with the webhooks'), as a webhook's 200
    does; so do the web chat's quick exit (``POST /chat/leave``) and a partner's link exchanged (``POST
    /chat/referral``): until 2026-12-07 they answered 204 and 200 at once, and a failover could bring back the
    conversation the young person left or lose the exchange. ``ReplicasBehind``: 503 ``unavailable`` with
    ``Retry-After`` (counted in ``gateway_replica_acks_total`` by
    gateway/store/redis_replicas.py), the action made on the primary, its retry safe (docs/deployment.md); a
    ``StoreError``, the same 503, counted as an outage. Either 503 keeps the cookie the answer set or removed (a
    logout's answer always removes it: ``ListenerAPI.logged_out``). The listener's typing (a publish, nothing kept)
    does not wait. Installed only with the setting: without it no request waits, no round trip more. Until
    2026-12-07 nothing of the console waited: a supervisor's erasure answered 200 between the replica's promotion and
    the switch was lost with the old primary (bench/README.md, seed 101)."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if (
            request.method in _READS or request.path.endswith("/typing")
            or not (request.path.startswith("/api/") or request.path in _PAGE_WRITES)
            or response.status >= 400 or response.prepared
        ):  # fmt: skip
            return response
        try:
            await replicated()
        except ReplicasBehind:  # said once and counted by gateway/store/redis_replicas.py
            held = unavailable()
        except StoreError as exc:
            outages.failed(HTTP, exc)
            held = unavailable()
        else:
            return response
        held.cookies.update(response.cookies)  # the session opened or ended on the primary: as the answer said it
        return held

    return middleware


def _refusals(metrics: Metrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Counts refused webhook requests by status: a burst of 403s is an attack or a rotated secret."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if request.path.startswith("/webhooks/") and exc.status >= 400:
                metrics.webhook_refusals.labels(str(exc.status)).inc()
            raise
        if request.path.startswith("/webhooks/") and response.status >= 400:
            metrics.webhook_refusals.labels(str(response.status)).inc()
        return response

    return middleware


def _body_deadline(seconds: float, larger: dict[str, int]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A request body must arrive within ``seconds``: a client that trickles it gets 408 and is let go.

    The body is read here, bounded by ``client_max_size`` (413), or for a path in ``larger`` by its own size, and
    kept by aiohttp for the handler's reads.
    """

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in larger and request.method == "POST":
            request = request.clone(client_max_size=larger[request.path])
        if request.body_exists:
            try:
                if request.content.is_eof():  # all of it arrived already (a webhook's small body): no wait, no timer
                    await request.read()
                else:
                    async with asyncio.timeout(seconds):
                        await request.read()
            except TimeoutError:
                body = {"error": "timeout", "message": "the request body came too slowly"}
                return web.json_response(body, status=408, headers={"Connection": "close"})
            except web.HTTPRequestEntityTooLarge:
                body = {"error": "too_big", "message": "the request body is too large"}
                return web.json_response(body, status=413, headers={"Connection": "close"})
        return await handler(request)

    return middleware


METRICS_READ_SECONDS = 3.0
"""How long a scrape of ``/metrics`` waits for the store's queue at most. Prometheus gives a scrape 10 s by default;
a store that takes connections but answers nothing (Redis frozen, or cut off by a network that drops packets) holds
each command until ``GATEWAY_REDIS_SOCKET_TIMEOUT`` (5 s), and a pool whose connections are all held until
``GATEWAY_REDIS_POOL_TIMEOUT`` (10 s) before that: the target would be seen down again, ``gateway_store_up`` 0
unread. Past it the page is served with the queue's gauges as last read; the read goes on and sets them."""


class _MetricsPage:
    """``/metrics``: the queue's gauges read from the store, one read at a time, waited for
    :data:`METRICS_READ_SECONDS` at most (until 2026-12-07 a scrape waited for it whatever it took); the store's
    failure counted as part ``metrics`` and the page still served (``gateway_store_up`` 0 scraped)."""

    def __init__(self, metrics: Metrics, store: Store, presence: Presence, clock: Callable[[], datetime]) -> None:
        self.metrics, self.store, self.presence, self.clock = metrics, store, presence, clock
        self._reading: asyncio.Task[None] | None = None  # the queue's read, which a scrape may have left running

    async def handler(self, request: web.Request) -> web.Response:
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read(), name="metrics-queue")
            self._reading.add_done_callback(_told_if_failed)
        await asyncio.wait({self._reading}, timeout=METRICS_READ_SECONDS)  # never cancels it: it ends by itself
        if self._reading.done():
            self._reading.result()  # a bug in the read (not the store's failure) is this scrape's error, as before
        self.metrics.listeners_online.set(self.presence.online())
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _read(self) -> None:
        # The store away, the page is still served (``gateway_store_up`` 0, the failures counted), the queue's
        # figures as last read: until 2026-12-07 it answered 503, and no scrape ever read an outage's figures.
        try:
            await _read_queue(self.metrics, self.store, self.clock())
        except StoreError as exc:
            self.metrics.outages.failed("metrics", exc)
        else:
            self.metrics.outages.answered("metrics")

    async def close(self, _app: web.Application) -> None:
        """The app stops (before the store closes): a read still running is stopped."""
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading


def _told_if_failed(reading: asyncio.Task[None]) -> None:
    """A queue read for ``/metrics`` that a bug ended (not the store's failure, counted as part ``metrics``): one
    ERROR line by class and place, whether or not a scrape still waited for it (one that did answers 500 too).
    Before, a read ending after its scrape's wait left the exception to asyncio's "never retrieved" at garbage
    collection, or to nobody."""
    if not reading.cancelled() and (exc := reading.exception()) is not None:
        log.error("metrics: the queue's read failed: %s at %s", exc.__class__.__name__, where(exc))


async def _read_queue(metrics: Metrics, store: Store, now: datetime) -> None:
    """The queue's gauges, from the counts the store keeps and its earliest arrival (``store.waiting_page(1)``: a
    page of one entry). Until 2026-12-07 every waiting entry was read at each scrape (``store.waiting``)."""
    page = await store.waiting_page(1)
    metrics.waiting.clear()
    for queue, priority, count in page.counts:
        metrics.waiting.labels(queue, priority.value).set(count)
    metrics.longest_wait.set(max((max((now - e.at).total_seconds(), 0.0) for e in page.earliest), default=0.0))


def _routes(
    app: web.Application, settings: Settings, hub: WebChatHub, api: ListenerAPI, flows: FlowSet, store: Store,
    supervisor: Supervisor, reader: Reader | None, releases: RetriesReleases | None, outages: StoreOutages,
    own_pages: Callable[[Handler], Handler], replicated: Callable[[], Awaitable[None]] | None,
) -> None:  # fmt: skip
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks: dict[str, object] = {"flow": flows.version, "last_reload": _last_reload(flows)}
        try:
            await store.ping()
            if replicated is not None:  # a round of its own: the replicas confirm now, or acknowledgements are held
                await replicated()
            checks["store"] = "ok"
            set_aside = await store.inbox_set_aside_count()
            if set_aside:  # not a reason to stop traffic, but shown (gateway/alerts.py logs the alert)
                checks["inbox_set_aside"] = set_aside
        except ReplicasBehind:  # GATEWAY_REDIS_REPLICA_ACKS: every acknowledgement answered 503 meanwhile
            checks["store"] = "replicas_behind"
        except StoreError as exc:  # unreachable, or refusing writes (a full Redis: OutOfMemoryError)
            checks["store"], checks["store_error"] = "unreachable", error_class(exc)
        lost = releases.releases_problem() if releases is not None else None
        if lost is not None:  # releases given up lately, or pending too long: shown (each instance shares the store)
            checks["store_releases"] = lost
        workers = supervisor.problems()  # a worker down or restarting too often: named here
        if workers:
            checks["workers"] = workers
        waiting = outages.waiting()  # during a store outage, the parts it stopped (the event forwarding among them)
        if waiting:
            checks["store_waiting"] = waiting
        last = outages.last_failure()  # the last store failure in the last minute (MaxClientsReached while the
        if last is not None:  # PING rides an open connection): shown, not a reason to stop traffic (outage_log.py)
            checks["store_last_failure"] = last
        checks["understanding"] = reader.status if reader is not None else "off"  # degraded: keywords still run
        refused = request.app[OUTBOX].refused
        if refused:  # a channel's credentials refused (a page token expired): shown, the other channels still serve
            checks["channels_refused"] = dict(refused)
        paused = request.app[OUTBOX].paused_channels()
        if paused:  # a provider rate-limits this instance (since 2026-12-08): shown, not a reason to stop traffic
            checks["channels_paused"] = paused
        catch_up = request.app.get(CATCH_UP)
        if catch_up is not None and catch_up.failing is not None:  # shown, not a reason to stop traffic
            checks["whatsapp_catchup"] = f"failing ({catch_up.failing})"
        behind = catch_up.behind() if catch_up is not None else None
        if behind is not None:  # no good pass for longer than GATEWAY_WHATSAPP_CATCHUP_BEHIND_SECONDS: its seconds
            checks["whatsapp_catchup_behind"] = behind
        aligned = request.app.get(ALIGNED)
        if aligned is not None and aligned.skew is not None and abs(aligned.skew) > SKEW_WARN_SECONDS:
            checks["clock_skew_seconds"] = round(aligned.skew, 1)  # shown (since 2026-12-07), not a reason to stop
        advert = request.app.get(SEALING)
        mixed = advert.mixed() if advert is not None else None
        if mixed is not None:  # instances sealing with different data keys (a rotation's restarts under way): shown
            checks["data_keys_sealing"] = mixed  # key id -> live instances (since 2026-12-07), not a reason to stop
        ready = checks["store"] == "ok" and flows.current is not None and not workers
        return web.json_response({"ready": ready, **checks}, status=200 if ready else 503)

    async def chat_page(request: web.Request) -> web.Response:
        page = (STATIC / "chat.html").read_text(encoding="utf-8")
        page = page.replace("{{QUICK_EXIT_URL}}", html.escape(settings.quick_exit_url, quote=True))
        page = page.replace("{{UPLOAD_MAX}}", str(settings.webchat_upload_max_bytes))
        page = page.replace("{{UNREACHABLE}}", html.escape(json.dumps(_unreachable(flows)), quote=True))
        return web.Response(text=page, content_type="text/html", headers=_PAGE_HEADERS)

    def to_chat(relative: str) -> Handler:
        async def redirect(request: web.Request) -> web.StreamResponse:
            """The bare address and "/chat/" (a link whose editor added the slash) lead to the chat, with the query;
            relative, so that a gateway served under a path prefix behind a proxy keeps its prefix."""
            raise web.HTTPFound(relative + (f"?{request.query_string}" if request.query_string else ""))

        return redirect

    async def widget(request: web.Request) -> web.Response:
        return web.Response(text=(STATIC / "widget.js").read_text(encoding="utf-8"),
                            content_type="application/javascript")  # fmt: skip

    async def socket(request: web.Request) -> web.StreamResponse:
        return await chat_socket(request, hub)

    async def leave(request: web.Request) -> web.StreamResponse:
        return await leave_request(request, hub)

    async def reload(request: web.Request) -> web.StreamResponse:
        result = await flows.reload_aside()  # audited: who changed what the bot says, when (the version served after)
        action = "flows_reload" if result.ok else "flows_reload_refused"
        detail = f"{len(result.problems)} problem(s)" if result.problems else ""
        await store.audit(AuditEntry(api.clock(), request[LISTENER].name, action, result.version or "", detail))
        status = 200 if result.ok else 409 if result.running else 503 if result.unstarted else 422
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if result.unstarted else None
        return web.json_response(result.to_dict(), status=status, headers=retry)

    app.add_routes([
        web.get("/healthz", healthz), web.get("/readyz", readyz),
        web.get("/chat", chat_page), web.get("/chat/", to_chat("../chat")), web.get("/", to_chat("chat")),
        web.get("/chat/widget.js", widget), web.get("/chat/ws", own_pages(socket)),
        web.post("/chat/leave", own_pages(leave)),
        web.static("/chat/static", str(STATIC)),
        web.post("/api/admin/reload", api.authed(reload, supervisor=True)),
        *api.routes(),
    ])  # fmt: skip


def _last_reload(flows: FlowSet) -> object:
    return flows.last_reload.to_dict() if flows.last_reload else None


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "frame-ancestors *; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
