"""Settings: read from the environment and ``.env``, secrets never shown, half-configured channels refused."""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path

import aiohttp
import pytest

from gateway.channels_wiring import build_channels
from gateway.cli import main
from gateway.dispatcher import DEDUPE_TTL_SECONDS
from gateway.errors import ConfigError
from gateway.settings import CHANNEL_NEEDS, WHATSAPP_CATCHUP_MAX_HOURS, Settings, variable

ROOT = Path(__file__).resolve().parent.parent

# A value for everything a channel needs; each is unmistakable in a text.
CHANNEL_VALUES = {
    "MESSENGER_APP_SECRET": "app-secret-7f3a",
    "MESSENGER_VERIFY_TOKEN": "verify-token-91c2",
    "MESSENGER_PAGE_ACCESS_TOKEN": "page-token-5d8e",
    "TWILIO_ACCOUNT_SID": "AC0123456789abcdef",
    "TWILIO_AUTH_TOKEN": "twilio-token-6b1f",
    "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
    "TELEGRAM_BOT_TOKEN": "123456:bot-token-c4d7",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret-2e9a",
}
SECRETS = {
    **{name: value for name, value in CHANNEL_VALUES.items() if "SID" not in name and "FROM" not in name},
    "GATEWAY_SECRET_KEY": "secret-key-0a1b2c3d4e5f",
    "GATEWAY_SMTP_URL": "smtp://user:smtp-password-8c@mail.example:587",
    "GATEWAY_PARTNER_KEYS": "116006=partner-key-0123456789abcdef",
}


def test_no_secret_shows_in_repr_str_or_a_dump() -> None:
    settings = Settings.from_env({**CHANNEL_VALUES, **SECRETS}, env_file=None)
    shown = repr(settings) + str(settings) + settings.model_dump_json() + str(settings.model_dump())
    for name, value in SECRETS.items():
        assert value not in shown, name
        assert settings.model_dump()[_field(name)].get_secret_value() == value  # still there for the code using it
    assert "smtp-password" not in shown and "partner-key" not in shown


@pytest.mark.parametrize("channel", sorted(CHANNEL_NEEDS))
def test_a_half_configured_channel_is_refused_naming_what_is_missing(channel: str) -> None:
    needs = [variable(name) for name in CHANNEL_NEEDS[channel]]
    for size in range(1, len(needs)):
        for given in itertools.combinations(needs, size):
            with pytest.raises(ConfigError) as refused:
                Settings.from_env({name: CHANNEL_VALUES[name] for name in given}, env_file=None)
            message = str(refused.value)
            assert channel in message
            assert all(name in message for name in needs if name not in given)
            assert not any(CHANNEL_VALUES[name] in message for name in given)  # names, never values


def test_a_channel_is_on_with_everything_it_needs_off_with_nothing() -> None:
    assert Settings.from_env({}, env_file=None).channels_on() == dict.fromkeys(CHANNEL_NEEDS, False)
    everything = Settings.from_env(CHANNEL_VALUES, env_file=None)
    assert everything.channels_on() == dict.fromkeys(CHANNEL_NEEDS, True)
    assert everything.messenger_enabled and everything.whatsapp_enabled and everything.telegram_enabled


async def test_the_channels_on_are_logged_at_start_without_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    telegram = {name: CHANNEL_VALUES[name] for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")}
    settings = Settings.from_env(telegram, env_file=None)
    caplog.set_level(logging.INFO, logger="gateway.channels_wiring")
    async with aiohttp.ClientSession() as http:
        channels = build_channels(settings, http)
    assert [str(name) for name in channels.adapters] == ["telegram"]
    assert "web chat on, messenger off, whatsapp off, telegram on" in caplog.text
    assert not any(value in caplog.text for value in telegram.values())


def test_every_documented_variable_exists_and_every_variable_is_documented() -> None:
    """The configuration table (README.md, or a page of docs/) has one row per setting, no more, no less."""
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    row = re.compile(r"^\| `((?:GATEWAY|MESSENGER|TWILIO|TELEGRAM)_[A-Z0-9_]+)` \|", re.MULTILINE)
    documented = {name for document in documents for name in row.findall(document.read_text(encoding="utf-8"))}
    assert documented == {variable(name) for name in Settings.model_fields}


def test_the_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# local settings\n"
        "export GATEWAY_STORE=sqlite:///from-file.sqlite3\n"
        "GATEWAY_LOG_LEVEL='DEBUG'\n"
        'GATEWAY_MAX_BODY_BYTES="2000"\n'
        "GATEWAY_INBOX_BATCH=5\n"
        "SOMETHING_ELSE=ignored\n",
        encoding="utf-8",
    )
    settings = Settings.from_env({"GATEWAY_INBOX_BATCH": "7", "PATH": "/usr/bin"}, env_file=env_file)
    assert settings.store == "sqlite:///from-file.sqlite3" and settings.log_level == "DEBUG"
    assert settings.max_body_bytes == 2000 and settings.inbox_batch == 7
    assert Settings.from_env({}, env_file=tmp_path / "missing.env").store == Settings().store


def test_a_malformed_value_names_its_variable_not_its_value() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_MAX_BODY_BYTES") as refused:
        Settings.from_env({"GATEWAY_MAX_BODY_BYTES": "lots-7c1d"}, env_file=None)
    assert "lots-7c1d" not in str(refused.value)
    with pytest.raises(ConfigError, match="GATEWAY_SMTP_URL") as refused:
        Settings.from_env({"GATEWAY_SMTP_URL": "http://user:pw-93ab@mail.example"}, env_file=None)
    assert "pw-93ab" not in str(refused.value)


def test_the_secret_key_is_random_at_each_start_unless_set() -> None:
    first, second = (Settings.from_env({}, env_file=None).secret_key.get_secret_value() for _ in range(2))
    assert len(first) >= 32 and first != second
    kept = Settings.from_env({"GATEWAY_SECRET_KEY": SECRETS["GATEWAY_SECRET_KEY"]}, env_file=None)
    assert kept.secret_key.get_secret_value() == SECRETS["GATEWAY_SECRET_KEY"]


def test_replace_checks_again_and_keeps_secrets() -> None:
    settings = Settings(telegram_bot_token="t-1", telegram_webhook_secret="s-1")
    changed = settings.replace(inbox_batch=3)
    assert changed.inbox_batch == 3 and changed.telegram_bot_token.get_secret_value() == "t-1"
    with pytest.raises(ConfigError, match="GATEWAY_INBOX_BATCH"):
        settings.replace(inbox_batch=-1)


def test_the_inbox_concurrency_is_read_and_bounded() -> None:
    assert Settings.from_env({"GATEWAY_INBOX_CONCURRENCY": "200"}, env_file=None).inbox_concurrency == 200
    assert Settings().inbox_concurrency == 50
    for wrong in ("0", "1001"):
        with pytest.raises(ConfigError, match="GATEWAY_INBOX_CONCURRENCY must be from 1 to 1000"):
            Settings.from_env({"GATEWAY_INBOX_CONCURRENCY": wrong}, env_file=None)


def test_the_inline_window_is_at_least_the_inline_time() -> None:
    assert Settings.from_env({"GATEWAY_INLINE_WINDOW_SECONDS": "0.5"}, env_file=None).inline_window_seconds == 0.5
    for window in ("0.01", "0"):  # shorter than GATEWAY_INLINE_SECONDS (0.05): no webhook would ever be timed
        with pytest.raises(ConfigError, match="GATEWAY_INLINE_WINDOW_SECONDS"):
            Settings.from_env({"GATEWAY_INLINE_WINDOW_SECONDS": window}, env_file=None)


def test_the_whatsapp_catch_up_reads_no_further_back_than_a_processed_message_is_remembered() -> None:
    """The catch-up processes what Twilio lists that has no processed mark; a mark is kept 8 days
    (``DEDUPE_TTL_SECONDS``). A window longer than that would process again, as new, every message older than 8 days
    in it (a second copy in a new conversation, the bot greeting them again; an erased or purged person back)."""
    assert WHATSAPP_CATCHUP_MAX_HOURS * 3600 <= DEDUPE_TTL_SECONDS
    longest = Settings.from_env({"GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS": "192"}, env_file=None)
    assert longest.whatsapp_catchup_window_hours == 192
    with pytest.raises(ConfigError, match="GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS must be at most 192, not 240"):
        Settings.from_env({"GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS": "240"}, env_file=None)


def test_the_redis_socket_timeout_is_positive() -> None:
    """It bounds every wait on Redis (a silent path): 0 or less would fail every call, or none."""
    assert Settings.from_env({"GATEWAY_REDIS_SOCKET_TIMEOUT": "2.5"}, env_file=None).redis_socket_timeout == 2.5
    for timeout in ("0", "-1"):
        with pytest.raises(ConfigError, match="GATEWAY_REDIS_SOCKET_TIMEOUT"):
            Settings.from_env({"GATEWAY_REDIS_SOCKET_TIMEOUT": timeout}, env_file=None)


def test_a_redis_socket_timeout_the_leases_cannot_outlast_is_refused_at_start() -> None:
    """On Redis, a claim's renewal and a send's lease renewal may be held on their way as long as the socket timeout:
    at most half the inbound claim (two renewals in a row) and a third of the outbox lease (a send starts with a
    third of it ahead). Refused at start naming both settings; until 2026-12-07 a 6 s timeout started with the
    10 s claim and 15 s lease, and renewals held within it lapsed them. SQLite has no socket timeout to refuse."""
    redis = {"GATEWAY_STORE": "redis://127.0.0.1:6379/0"}
    assert Settings.from_env(redis, env_file=None).redis_socket_timeout == 5  # the defaults: at both bounds
    with pytest.raises(ConfigError, match=r"GATEWAY_REDIS_SOCKET_TIMEOUT \(6 s\).*GATEWAY_INBOUND_CLAIM_SECONDS"):
        Settings.from_env({**redis, "GATEWAY_REDIS_SOCKET_TIMEOUT": "6"}, env_file=None)
    longer = {**redis, "GATEWAY_REDIS_SOCKET_TIMEOUT": "6", "GATEWAY_INBOUND_CLAIM_SECONDS": "12"}
    with pytest.raises(ConfigError, match=r"GATEWAY_REDIS_SOCKET_TIMEOUT \(6 s\).*GATEWAY_OUTBOX_LEASE_SECONDS"):
        Settings.from_env(longer, env_file=None)
    assert Settings.from_env({**longer, "GATEWAY_OUTBOX_LEASE_SECONDS": "18"}, env_file=None).redis_socket_timeout == 6
    shorter = {**redis, "GATEWAY_INBOUND_CLAIM_SECONDS": "2", "GATEWAY_OUTBOX_LEASE_SECONDS": "3"}
    with pytest.raises(ConfigError, match="GATEWAY_INBOUND_CLAIM_SECONDS"):
        Settings.from_env(shorter, env_file=None)
    fitting = {**shorter, "GATEWAY_REDIS_SOCKET_TIMEOUT": "1", "GATEWAY_REDIS_REPLICA_ACK_TIMEOUT": "0.5"}
    assert Settings.from_env(fitting, env_file=None).redis_socket_timeout == 1
    assert Settings.from_env({"GATEWAY_REDIS_SOCKET_TIMEOUT": "6"}, env_file=None).redis_socket_timeout == 6  # SQLite


def test_the_redis_health_check_cannot_be_turned_off() -> None:
    """0 was "no check": the events connection was then never asked a PING, and a silent path to Redis went unnoticed
    (web chat and console sockets deaf, nothing said): refused at start, naming the variable and the value."""
    assert Settings.from_env({"GATEWAY_REDIS_HEALTH_CHECK_SECONDS": "2"}, env_file=None).redis_health_check_seconds == 2
    for interval in ("0", "-1"):
        with pytest.raises(ConfigError, match=f"GATEWAY_REDIS_HEALTH_CHECK_SECONDS must be positive, not {interval}"):
            Settings.from_env({"GATEWAY_REDIS_HEALTH_CHECK_SECONDS": interval}, env_file=None)


def _field(name: str) -> str:
    return next(field for field in Settings.model_fields if variable(field) == name)


def test_a_redis_unix_socket_is_a_store_but_not_a_cluster_node() -> None:
    unix = "unix:///run/redis/redis.sock?db=0"
    assert Settings.from_env({"GATEWAY_STORE": unix}, env_file=None).store == unix
    with pytest.raises(ConfigError, match="GATEWAY_REDIS_CLUSTER needs a redis:// URL"):
        Settings.from_env({"GATEWAY_STORE": unix, "GATEWAY_REDIS_CLUSTER": "1"}, env_file=None)
    with pytest.raises(ConfigError, match="GATEWAY_STORE must start with"):
        Settings.from_env({"GATEWAY_STORE": "postgres://localhost/gateway"}, env_file=None)


def test_the_messenger_event_age_stays_within_the_de_duplication() -> None:
    """Meta redelivers for hours: the default lets a week through; beyond 7 days a replay of a signed body would no
    longer be a duplicate (processed ids are kept 8 days), so it is refused."""
    assert Settings.from_env({}, env_file=None).messenger_max_event_age == 7 * 24 * 3600
    assert Settings.from_env({"MESSENGER_MAX_EVENT_AGE": "3600"}, env_file=None).messenger_max_event_age == 3600
    with pytest.raises(ConfigError, match="MESSENGER_MAX_EVENT_AGE"):
        Settings.from_env({"MESSENGER_MAX_EVENT_AGE": str(8 * 24 * 3600)}, env_file=None)


def test_the_log_level_is_read_in_any_case_and_an_unknown_one_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``GATEWAY_LOG_LEVEL=debug`` (as most tools take it) stopped `gateway serve` with a traceback of
    ``logging.basicConfig``'s ValueError, naming no variable."""
    assert Settings.from_env({"GATEWAY_LOG_LEVEL": "debug"}, env_file=None).log_level == "DEBUG"
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "verbose")
    assert main(["serve", "--port", "0"]) == 1
    assert "GATEWAY_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'verbose'" in capsys.readouterr().err


def test_a_value_of_the_wrong_type_names_the_variable_as_it_is_spelt() -> None:
    """The message named ``GATEWAY_GATEWAY_OUTBOX_MAX_ATTEMPTS`` and ``GATEWAY_MESSENGER_MAX_EVENT_AGE``: variables
    that do not exist, which an operator searching the configuration for them never finds."""
    for name in ("GATEWAY_OUTBOX_MAX_ATTEMPTS", "MESSENGER_MAX_EVENT_AGE"):
        with pytest.raises(ConfigError) as refused:
            Settings.from_env({name: "8a"}, env_file=None)
        assert str(refused.value).startswith(f"{name}: Input should be a valid integer"), str(refused.value)
    with pytest.raises(ConfigError, match=r"^GATEWAY_INBOX_BATCH: Input should be a valid integer"):
        Settings.from_values({"inbox_batch": "many"})


def test_a_rate_that_allows_nothing_is_refused() -> None:
    """``GATEWAY_LIMIT_MESSAGES_PER_CONVERSATION=0/minute`` started a gateway that refused every message of every
    channel as a flood ("je veux mourir" included: the calm notice, nothing recorded) while ``/readyz`` said ready
    and ``gateway doctor`` said nothing; a count of 0 (``GATEWAY_MAX_WAITING_PER_CLIENT``) was refused already."""
    for name in ("GATEWAY_LIMIT_MESSAGES_PER_CONVERSATION", "GATEWAY_LIMIT_CHATS_PER_ADDRESS"):
        with pytest.raises(ConfigError, match=f"{name} must allow at least 1, not 0"):
            Settings.from_env({name: "0/minute"}, env_file=None)


def test_the_apps_whose_echoes_are_a_persons_are_app_ids() -> None:
    settings = Settings.from_env({"MESSENGER_HUMAN_ECHO_APPS": " 263902037430900, 1517 ,"}, env_file=None)
    assert settings.messenger_human_echo_app_ids() == {"263902037430900", "1517"}
    assert Settings.from_env({}, env_file=None).messenger_human_echo_app_ids() == frozenset()  # none by default
    with pytest.raises(ConfigError, match="MESSENGER_HUMAN_ECHO_APPS"):
        Settings.from_env({"MESSENGER_HUMAN_ECHO_APPS": "page inbox"}, env_file=None)


@pytest.mark.parametrize("app_id", ["١٢٣", "²", "12a"])
def test_the_messenger_app_id_is_ascii_digits(app_id: str) -> None:
    """``MESSENGER_APP_ID`` is the app's number: until 2026-12-08 other scripts' digits ("١٢٣") passed the check."""
    with pytest.raises(ConfigError, match="MESSENGER_APP_ID"):
        Settings.from_env({"MESSENGER_APP_ID": app_id}, env_file=None)
