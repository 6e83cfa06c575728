"""Settings: the only reader of the environment.

Built once (``Settings.from_env()``) from ``os.environ`` plus an optional ``.env`` file, then passed explicitly.
A missing or malformed value raises :class:`~gateway.errors.ConfigError` naming the variable (never echoing a
secret). Every variable is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from limits import parse

from gateway.errors import ConfigError

DEFAULT_STORE = "sqlite:///var/gateway.sqlite3"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``NAME=value`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        name, sep, value = line.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ConfigError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


@dataclass(frozen=True)
class Settings:
    store: str = DEFAULT_STORE
    flows: str = "flows.yaml"
    public_url: str = "http://127.0.0.1:8080"
    secret_key: str = ""
    # Encryption at rest (gateway/crypto.py): the key that seals, old keys that still open during a rotation
    data_key: str = field(default="", repr=False)
    data_keys_old: str = field(default="", repr=False)
    max_body_bytes: int = 1_000_000
    quick_exit_url: str = "https://www.google.com/search?q=meteo"
    dev_always_open: int = 0  # 1: every queue open whatever flows.yaml's hours, to try the hand-off at night (dev only)
    log_level: str = "INFO"
    outbox_base_delay: float = 1.0
    outbox_max_attempts: int = 8
    # Abuse and flood limits (docs/security.md); rates in the `limits` notation, e.g. "20/hour"
    client_address_header: str = ""  # e.g. X-Forwarded-For behind a reverse proxy: its last address is the client's
    limit_chats_per_address: str = "30/hour"
    limit_chats_per_browser: str = "6/hour"
    limit_messages_per_conversation: str = "20/minute"
    limit_typing_per_conversation: str = "60/minute"
    limit_listener_writes: str = "120/minute"
    max_waiting_per_client: int = 3
    login_free_failures: int = 3  # wrong passwords before the delay starts growing (1 s, 2 s, 4 s…)
    login_lock_failures: int = 10  # wrong passwords (per account or per address) that lock for login_lock_minutes
    login_lock_minutes: int = 15
    password_hash_workers: int = 2  # argon2 runs in this many threads at most, never on the event loop
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0
    max_connections_per_address: int = 64
    outbox_alert_seconds: float = 60.0  # a message waiting longer in the outbox is an alert (metric + log line)
    outbox_lease_seconds: int = 60  # an item being sent; after a crash another instance resends it past this
    inbox_batch: int = 20  # a webhook with more messages is stored in the inbox, acknowledged, processed after
    inbound_claim_seconds: float = 10.0  # lease on an inbound message while processing it, renewed meanwhile
    redis_max_connections: int = 100  # per instance; a caller waits for a free one up to redis_pool_timeout
    redis_pool_timeout: float = 10.0
    understanding: str = "on"  # "off": keywords only, the embedded model is not loaded
    understanding_timeout: float = 0.5  # seconds a message waits for the model's reading at most
    # Takedown notices and warm referrals by e-mail: smtp://user:pass@host:587 (STARTTLS) or smtps://…:465
    smtp_url: str = field(default="", repr=False)
    smtp_ca_file: str = ""  # a CA bundle to trust the SMTP server's certificate (default: the system's)
    # Partners' inbound referrals: "partner=key,other=key2" (a key of at least 24 characters each)
    partner_keys: str = field(default="", repr=False)
    # Messenger
    messenger_app_secret: str = ""
    messenger_verify_token: str = ""
    messenger_page_access_token: str = ""
    messenger_api_url: str = "https://graph.facebook.com/v23.0"
    messenger_max_event_age: int = 3600  # seconds: older (replayed) events are acknowledged and ignored
    # WhatsApp through Twilio
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_whatsapp_from: str = ""
    twilio_api_url: str = "https://api.twilio.com"
    # Telegram
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_url: str = "https://api.telegram.org"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env"), *,
        generate_secret: bool = True,
    ) -> Settings:
        """``generate_secret=False`` leaves an unset GATEWAY_SECRET_KEY empty (``gateway doctor`` reports it)."""
        merged: dict[str, str] = read_env_file(env_file) if env_file else {}
        merged.update(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for f in fields(cls):
            name = _variable(f.name)
            if name not in merged:
                continue
            raw = merged[name].strip()
            if f.type in ("int", "float"):
                cast = int if f.type == "int" else float
                try:
                    values[f.name] = cast(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be a number") from None
            else:
                values[f.name] = raw
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        if not settings.secret_key and generate_secret:
            # Sessions then last as long as the process: fine for `make run`, documented for production.
            settings = cls(**{**settings.__dict__, "secret_key": secrets.token_urlsafe(32)})
        return settings

    def validate(self) -> None:
        if self.dev_always_open not in (0, 1):
            raise ConfigError("GATEWAY_DEV_ALWAYS_OPEN must be 0 or 1")
        if not (self.store.startswith("sqlite:///") or self.store.startswith(("redis://", "rediss://"))):
            raise ConfigError("GATEWAY_STORE must start with sqlite:/// or redis://")
        if not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("GATEWAY_PUBLIC_URL must be an http(s) URL")
        if self.max_body_bytes <= 0:
            raise ConfigError("GATEWAY_MAX_BODY_BYTES must be positive")
        if self.outbox_base_delay < 0 or self.outbox_max_attempts < 1:
            raise ConfigError("GATEWAY_OUTBOX_BASE_DELAY must be >= 0 and GATEWAY_OUTBOX_MAX_ATTEMPTS >= 1")
        for f in fields(self):
            if f.name.startswith("limit_"):
                try:
                    parse(getattr(self, f.name))
                except ValueError:
                    raise ConfigError(f"{_variable(f.name)} must be a rate like 20/minute or 30 per hour") from None
        counts = ("max_waiting_per_client", "login_lock_failures", "login_lock_minutes", "password_hash_workers",
                  "max_connections_per_address", "messenger_max_event_age")  # fmt: skip
        for name in counts:
            if getattr(self, name) < 1:
                raise ConfigError(f"{_variable(name)} must be at least 1")
        if self.login_free_failures < 0 or self.http_header_timeout <= 0 or self.http_body_timeout <= 0:
            raise ConfigError("GATEWAY_LOGIN_FREE_FAILURES must be >= 0 and the GATEWAY_HTTP_*_TIMEOUTs positive")
        if self.outbox_alert_seconds <= 0:
            raise ConfigError("GATEWAY_OUTBOX_ALERT_SECONDS must be positive")
        if self.outbox_lease_seconds < 1:
            raise ConfigError("GATEWAY_OUTBOX_LEASE_SECONDS must be >= 1")
        if self.inbox_batch < 0:
            raise ConfigError("GATEWAY_INBOX_BATCH must be >= 0")
        if self.inbound_claim_seconds <= 0:
            raise ConfigError("GATEWAY_INBOUND_CLAIM_SECONDS must be positive")
        if self.smtp_url and not self.smtp_url.startswith(("smtp://", "smtps://")):
            raise ConfigError("GATEWAY_SMTP_URL must start with smtp:// (STARTTLS) or smtps:// (TLS)")
        self.partner_key_map()  # ConfigError when malformed
        self._check_data_keys()
        if self.redis_max_connections < 1 or self.redis_pool_timeout <= 0:
            raise ConfigError("GATEWAY_REDIS_MAX_CONNECTIONS must be >= 1 and GATEWAY_REDIS_POOL_TIMEOUT positive")
        if self.understanding not in ("on", "off") or self.understanding_timeout <= 0:
            raise ConfigError("GATEWAY_UNDERSTANDING must be on or off and GATEWAY_UNDERSTANDING_TIMEOUT positive")

    def _check_data_keys(self) -> None:
        from gateway.crypto import parse_key

        if self.data_key:
            parse_key(self.data_key, "GATEWAY_DATA_KEY")
            if not self.secret_key:
                raise ConfigError("GATEWAY_DATA_KEY needs GATEWAY_SECRET_KEY: lookups by identity are keyed with it")
        elif self.data_keys_old:
            raise ConfigError("GATEWAY_DATA_KEYS_OLD is set without GATEWAY_DATA_KEY")
        for key in filter(str.strip, self.data_keys_old.split(",")):
            parse_key(key, "GATEWAY_DATA_KEYS_OLD")

    def partner_key_map(self) -> dict[str, str]:
        """``GATEWAY_PARTNER_KEYS`` as partner → key; ConfigError (never quoting a key) when malformed."""
        keys: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.partner_keys.split(","))):
            partner, _, key = item.partition("=")
            if not partner.strip() or len(key.strip()) < 24:
                raise ConfigError("GATEWAY_PARTNER_KEYS must be partner=key pairs, each key at least 24 characters")
            keys[partner.strip()] = key.strip()
        return keys

    @property
    def messenger_enabled(self) -> bool:
        return bool(self.messenger_app_secret and self.messenger_page_access_token)

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_whatsapp_from)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token and self.telegram_webhook_secret)


_PREFIXES = ("messenger_", "twilio_", "telegram_")


def variable(field_name: str) -> str:
    """The environment variable of a Settings field, for messages."""
    return _variable(field_name)


def _variable(field_name: str) -> str:
    """``store`` → ``GATEWAY_STORE``; ``twilio_auth_token`` → ``TWILIO_AUTH_TOKEN``."""
    if field_name.startswith(_PREFIXES):
        return field_name.upper()
    return "GATEWAY_" + field_name.upper()
