"""Prometheus metrics, served at ``GET /metrics``.

Labels are only names of our own: channel, outcome kind, queue, priority, delivery result, HTTP status class,
risk class, the reason the model gave no reading, a part of the gateway and an exception's class.
Never a message text, a phone number, a platform id or a conversation id, so a label set stays small and a
scrape identifies nobody. The registry is the gateway's own (not the process-global one): two apps in one
process, as in the tests, keep separate figures.

:attr:`Metrics.outages` is the instance's store outages (``gateway/outage_log.py``): every part that counts here
reports the store's failures there, counted in ``gateway_store_failures`` and told in a few lines per outage.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.outage_log import EVERY, StoreOutages

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, *, outage_summary_seconds: float = EVERY) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            "gateway_inbound_messages", "Messages from young people, processed once", ["channel"], registry=r
        )
        self.duplicates = Counter(
            "gateway_inbound_duplicates", "Redelivered messages recognised and ignored", ["channel"], registry=r
        )
        self.outcomes = Counter(
            "gateway_bot_outcomes", "Where the bot sent conversations", ["kind", "queue", "priority"], registry=r
        )
        self.deliveries = Counter(
            "gateway_outbox_deliveries",
            "Outbox attempts by channel and result (sent, retry, failed, paused, probing, busy)",
            ["channel", "result"], registry=r,
        )  # fmt: skip
        self.bot_replies_failed = Counter(
            "gateway_bot_replies_failed",
            "Bot replies the provider accepted then reported failed, by kind (transient, final) and outcome",
            ["channel", "kind", "outcome"], registry=r,
        )  # fmt: skip
        self.webhook_refusals = Counter(
            "gateway_webhook_refusals", "Webhook requests refused, by status (401/403/400/413…)", ["status"], registry=r
        )
        self.rate_limited = Counter(
            "gateway_rate_limited", "Requests refused by a rate limit, by limit name", ["limit"], registry=r
        )
        self.refused = Counter(
            "gateway_refused", "Refused before any work: blocked senders, full clients, locked logins, busy hashing…",
            ["reason"], registry=r,
        )  # fmt: skip
        self.overridden = Counter(
            "gateway_refusal_overridden", "Refused messages let on anyway (a new web chat a guard refused, a message "
            "past the flood limit): read risky, or unread (the model busy, late or loading), by the guard's reason and "
            "what read it (keywords, model, unread)", ["reason", "source"], registry=r,
        )  # fmt: skip
        self.old_events = Counter(
            "gateway_webhook_old_events", "Provider events older than the accepted age, acknowledged and ignored",
            ["channel"], registry=r,
        )  # fmt: skip
        self.connections_refused = Counter(
            "gateway_connections_refused",
            "Connections closed: too many from one address, all taken, given way to another network, headers too slow",
            ["reason"], registry=r,
        )  # fmt: skip
        self.clock_skew = Gauge(
            "gateway_clock_skew_seconds", "This host's clock minus the store's (Redis TIME), as last read", registry=r
        )
        self.store_round_trip = Gauge(
            "gateway_store_round_trip_seconds", "The store's round trip (Redis TIME), the shortest of the last "
            "minute's readings: the inline budget follows it (gateway/inbox.py)", registry=r,
        )  # fmt: skip
        self.connections_open = Gauge("gateway_connections_open", "Client connections open (gateway serve)", registry=r)
        self.reloads = Counter("gateway_flow_reloads", "flows.yaml reloads by result", ["result"], registry=r)
        self.flow_version = Gauge(
            "gateway_flow_version", "1 for the flows.yaml version this instance serves (the code `gateway flows check`"
            " prints): instances serving two versions at once show two", ["version"], registry=r,
        )  # fmt: skip
        self.waiting = Gauge("gateway_queue_waiting", "Conversations waiting", ["queue", "priority"], registry=r)
        self.longest_wait = Gauge("gateway_queue_longest_wait_seconds", "Longest current wait", registry=r)
        self.understanding_failures = Counter(
            "gateway_understanding_failures", "Messages that went on without the model's reading, by reason "
            "(timeout, error, busy, unavailable): keywords only", ["reason"], registry=r,
        )  # fmt: skip
        self.understanding_messages = Counter(
            "gateway_understanding_messages", "Messages the model's second check saw, by how: model (read by it), "
            "remembered (a short message's reading remembered), button (a button pressed as shown: not read), "
            "command (the erasure phrase alone: not read)",
            ["how"], registry=r,
        )  # fmt: skip
        self.understanding_late = Counter(
            "gateway_understanding_late", "Messages that went on without the model's reading (busy, late) or with "
            "their start read only, read after the fact, by outcome: queued (in memory, its record in the store), "
            "deferred (no room in memory: left in the store), claimed (from the store: its instance died, or "
            "deferred), read (nothing to add), flagged (a late flag raised), failed (the model gave no reading: tried "
            "again), closed (its conversation ended or was erased), expired (older than a day), given_up (claimed too "
            "many times)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.understanding_flags = Counter(
            "gateway_understanding_flags", "Risks read in young people's messages, by class and source",
            ["risk", "source"], registry=r,
        )  # fmt: skip
        self.webchat_hellos_waiting = Gauge(
            "gateway_webchat_hellos_waiting", "Web chat hellos waiting their turn (WebChatHub.hello_turn)", registry=r
        )
        self.listeners_online = Gauge("gateway_listeners_online", "Listeners connected to the console", registry=r)
        self.worker_restarts = Counter(
            "gateway_worker_restarts", "Background workers restarted after a failure, by worker", ["worker"], registry=r
        )
        self.loop_lag = Histogram(
            "gateway_loop_lag_seconds", "How late the event loop woke a timer (gateway/loop_watch.py): a blocking call"
            " or a saturated process; nothing is answered meanwhile", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )  # fmt: skip
        self.loop_held = Counter(
            "gateway_loop_held", "Times the event loop was held 0.5 s or more (logged)", registry=r
        )
        self.socket_drops = Counter(
            "gateway_socket_drops", "Websockets dropped because they stopped reading or went away, by surface",
            ["surface", "reason"], registry=r,
        )  # fmt: skip
        self.release_retries = Counter(
            "gateway_store_release_retries", "Lock and claim releases that failed and were made again in the"
            " background, by outcome: retried (failed, made again), released (made again), gave_up (left to its lease)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.store_up = Gauge("gateway_store_up", "1 when the store answered the last check, else 0", registry=r)
        self.outbox_oldest = Gauge(
            "gateway_outbox_oldest_pending_seconds", "Age of the oldest message not yet delivered", registry=r
        )
        self.timer_failures = Counter(
            "gateway_timer_failures", "Timer handlings that failed (retried with backoff), by kind", ["kind"],
            registry=r,
        )  # fmt: skip
        self.timer_arming_failures = Counter(
            "gateway_timer_arming_failures", "Timers that could not be armed (the store did not answer: retried), by"
            " kind", ["kind"], registry=r,
        )  # fmt: skip
        self.replica_acks = Counter(
            "gateway_replica_acks", "Acknowledgements (webhook 200, web chat ack) that waited for the Redis replicas"
            " (GATEWAY_REDIS_REPLICA_ACKS), by outcome: confirmed, or behind (answered 503: the sender retries)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.replica_rounds = Counter(
            "gateway_replica_rounds", "Redis WAIT rounds sent for GATEWAY_REDIS_REPLICA_ACKS (each covers every"
            " acknowledgement that waited for it)", registry=r,
        )  # fmt: skip
        self.console_queue_reads = Counter(
            "gateway_console_queue_reads", "Reads of the waiting queue and the held conversations for the consoles'"
            " queue (one shared by every console reloading while the one before ran: gateway/coalesced.py)",
            registry=r,
        )  # fmt: skip
        self.inbox_deferred = Counter(
            "gateway_inbox_deferred", "Inbound messages acknowledged once stored in the inbox, then processed, by why:"
            " batch (a large webhook), behind (their sender had messages waiting), busy (inline capacity reached)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.held_by_absent_listener = Gauge(
            "gateway_held_by_absent_listener",
            "Conversations held by a listener with no console open for GATEWAY_HELD_ALERT_SECONDS",
            registry=r,
        )
        self.idle_closed_at_risk = Counter(
            "gateway_idle_closed_at_risk", "Waiting young people at risk (flagged, or handed off urgent) closed by the"
            " idle timer, never taken (an alert: each is also a WARNING line)", registry=r,
        )  # fmt: skip
        self.held_handed_back = Counter(
            "gateway_held_handed_back", "Conversations handed back to the queue by themselves, their listener having"
            " had no console open for GATEWAY_HELD_HANDBACK_SECONDS (the young person told once)", registry=r,
        )  # fmt: skip
        self.alert_steps_skipped = Counter(
            "gateway_alert_steps_skipped", "A conversation's repair skipped by the alert check until its next round,"
            " by step and the error's class (LockTimeout: its lock held elsewhere; Conflict: changed meanwhile; any"
            " other: a bug, logged by class and place); the rest of the round made", ["step", "error"], registry=r,
        )  # fmt: skip
        self.alert_stuck = Gauge(
            "gateway_alert_conversations_stuck", "Conversations whose repair (or read) failed in the alert check's last"
            " round by an error other than the store's or a lock's (a bug: each logged once an hour while it fails)",
            registry=r,
        )  # fmt: skip
        self.inbox_set_aside = Gauge(
            "gateway_inbox_set_aside", "Inbound messages set aside after failing repeatedly (kept in the store)",
            registry=r,
        )  # fmt: skip
        self.typing_indicators = Counter(
            "gateway_typing_indicators", "A listener's typing relayed to the young person's app, by outcome: shown (by"
            " this instance), elsewhere (another instance's claim won: shown once, not once per instance), failed,"
            " paused (the channel rate-limited: not asked)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.outbox_set_aside = Counter(
            "gateway_outbox_set_aside", "Outbox items this version cannot read, set aside as failed", registry=r
        )
        self.outbox_lease_short = Counter(
            "gateway_outbox_lease_short", "Outbox sends not started for want of lease (less than a third of it left:"
            " a claim answered late, a run's renewals failing), left to the next claim once their lease ends",
            registry=r,
        )  # fmt: skip
        self.credentials_refused = Gauge(
            "gateway_channel_credentials_refused", "1 while a channel's provider refuses the line's credentials (a"
            " Messenger page token expired or revoked): its replies wait until they are renewed", ["channel"],
            registry=r,
        )  # fmt: skip
        self.channel_paused = Gauge(
            "gateway_channel_paused", "1 while a channel's provider rate-limits this instance: its replies held from"
            " a rate limit's refusal to the pause's end, and while the one reply sent first after it (its probe) is"
            " in flight",
            ["channel"], registry=r,
        )  # fmt: skip
        self.whatsapp_caught_up = Counter(
            "gateway_whatsapp_caught_up", "WhatsApp messages Twilio received but the gateway had not (its webhook"
            " answered 503 or never reached it), found in Twilio's list and processed by the catch-up", registry=r,
        )  # fmt: skip
        self.whatsapp_catchup_left_erased = Counter(
            "gateway_whatsapp_catchup_left_erased", "WhatsApp messages the catch-up found unprocessed and left because"
            " their young person was erased after Twilio received them (a message in two passes' overlap counts in"
            " each)", registry=r,
        )  # fmt: skip
        self.whatsapp_catchup_passes = Counter(
            "gateway_whatsapp_catchup_passes", "Passes of the WhatsApp catch-up over Twilio's list, by outcome: ok,"
            " cut (Twilio held more than a pass reads: the oldest not caught up), beyond_window (the last good pass"
            " ended longer ago than the window: what came before it not caught up), elsewhere (another instance's"
            " turn), rate_limited, failed (Twilio unreachable or refusing), store",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.whatsapp_catchup_since_pass = Gauge(
            "gateway_whatsapp_catchup_since_pass_seconds", "Seconds since the WhatsApp catch-up's last good pass (any"
            " instance's; since the start before the first one; 0 without WhatsApp): /readyz shows it past"
            " GATEWAY_WHATSAPP_CATCHUP_BEHIND_SECONDS", registry=r,
        )  # fmt: skip
        self.store_failures = Counter(
            "gateway_store_failures", "Store failures met (each one: a request answered 503, a worker's pass, a"
            " subscription, a socket…), by part and the error's class; the log tells an outage in a few lines",
            ["part", "error"], registry=r,
        )  # fmt: skip
        self.outages = StoreOutages(self.store_failures, every=outage_summary_seconds)
        self._children: dict[tuple[Counter, tuple[str, ...]], Counter] = {}

    def child(self, metric: Counter, *values: str) -> Counter:
        """``metric.labels(*values)``, resolved once for each set of values: what a message or a reply counts (its
        channel, a delivery's result, how the model read it). ``labels`` takes the metric's lock and checks its
        values on every call (1.45 µs against 0.45 for the child's ``inc``); until 2026-12-08 each message
        resolved it again (the inbound count, each reply's delivery, the model's reading: about 3 a message). For a
        metric whose children are never removed (``clear``, ``remove``: not ``flow_version`` nor ``waiting``)."""
        found = self._children.get((metric, values))
        if found is None:
            found = self._children[(metric, values)] = metric.labels(*values)
        return found

    def reloaded(self, ok: bool, version: str | None) -> None:
        """A flows.yaml reload, accepted or refused; ``version``: the one served after it."""
        self.reloads.labels("ok" if ok else "refused").inc()
        self.flow_version.clear()
        if version is not None:
            self.flow_version.labels(version).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
