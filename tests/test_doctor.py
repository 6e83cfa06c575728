"""``gateway doctor`` through the command line: what a deployment lacks is named, with what to do; exit 1."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.cli import main
from gateway.connections import LISTEN_BACKLOG
from gateway.crypto import DataKeys, key_id, new_key, parse_key
from gateway.doctor import Level, clients_finding, listen_backlog, round_trip, store
from gateway.messages import ChannelName
from gateway.sealing import Sealing
from gateway.settings import Settings
from gateway.store import ClientLimits, HasTime, Listener, SealingStore, Store, open_store
from tests.conftest import ROOT
from tests.delaying_proxy import delaying_proxy
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # the fixture, imported to be used here

STRONG = "Xk3-pQ9_vL2mZ8rT5wY1nB7cF4hJ6dG0sA"
PRODUCTION = {
    "GATEWAY_SECRET_KEY": STRONG,
    "GATEWAY_PUBLIC_URL": "https://ecoute.example.org",
    "GATEWAY_FLOWS": str(ROOT / "flows.yaml"),
    "TELEGRAM_BOT_TOKEN": "123456789:secret-bot-token",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A working directory of its own (no stray .env) and none of this machine's gateway variables."""
    for name in list(os.environ):
        if name.startswith(("GATEWAY_", "MESSENGER_", "TWILIO_", "TELEGRAM_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    somaxconn = tmp_path / "somaxconn"  # this machine's kernel is not what these tests check
    somaxconn.write_text(f"{LISTEN_BACKLOG}\n")
    monkeypatch.setattr("gateway.doctor.SOMAXCONN", somaxconn)
    return monkeypatch


def doctor(capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    for name, value in env.items():
        environment.setenv(name, value)
    code = main(["doctor"])
    return code, capsys.readouterr().out


def line(out: str, subject: str) -> str:
    return next(text for text in out.splitlines() if f" {subject}:" in text)


def test_a_complete_deployment_is_ready(capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch) -> None:
    data_key = new_key()
    store = "sqlite:///var/gateway.sqlite3"
    settings = Settings(store=store, data_key=data_key, secret_key=STRONG)

    async def one_conversation() -> None:
        opened = await open_store(store, keys=DataKeys.from_settings(settings))
        await opened.active_conversation(ChannelName.TELEGRAM, "424242", datetime.now(UTC))
        await opened.close()

    asyncio.run(one_conversation())
    code, out = doctor(capsys, environment, **PRODUCTION, GATEWAY_DATA_KEY=data_key)
    assert code == 0, out
    assert "PROBLEM" not in out and "warning" not in out and out.rstrip().endswith("ready: nothing to fix")
    assert line(out, "Telegram").startswith("ok") and "on" in line(out, "Telegram")
    assert f"key {key_id(parse_key(data_key, 'test'))} seals" in line(out, "GATEWAY_DATA_KEY")
    assert "1 conversation(s) open" in line(out, "GATEWAY_STORE")
    assert STRONG not in out and data_key not in out and "secret-bot-token" not in out


def test_what_a_deployment_lacks_is_named_with_what_to_do(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out = doctor(
        capsys, environment, GATEWAY_SECRET_KEY="changeme", GATEWAY_PUBLIC_URL="http://ecoute.example.org",
        GATEWAY_FLOWS=str(ROOT / "flows.yaml"), GATEWAY_STORE=f"redis://127.0.0.1:{port}/0",
        TELEGRAM_BOT_TOKEN="123456789:secret-bot-token", TWILIO_ACCOUNT_SID="AC123", TWILIO_AUTH_TOKEN="tok",
    )  # fmt: skip
    assert code == 1
    assert line(out, "GATEWAY_SECRET_KEY").startswith("PROBLEM") and "weak (8 characters" in out
    assert line(out, "GATEWAY_PUBLIC_URL").startswith("PROBLEM") and "https" in line(out, "GATEWAY_PUBLIC_URL")
    assert line(out, "GATEWAY_DATA_KEY").startswith("PROBLEM") and "Redis" in line(out, "GATEWAY_DATA_KEY")
    telegram = line(out, "Telegram")
    assert telegram.startswith("PROBLEM") and "TELEGRAM_WEBHOOK_SECRET missing" in telegram
    assert "unset TELEGRAM_BOT_TOKEN" in telegram
    assert "TWILIO_WHATSAPP_FROM missing" in line(out, "WhatsApp (Twilio)")
    assert line(out, "Messenger").startswith("ok")
    assert line(out, "GATEWAY_STORE").startswith("PROBLEM")
    assert out.rstrip().endswith("6 problem(s) to fix before going live")
    assert "changeme" not in out and "secret-bot-token" not in out and "tok," not in out


def test_records_sealed_with_a_key_the_deployment_lacks(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    store, sealed_with = "sqlite:///var/gateway.sqlite3", new_key()
    settings = Settings(store=store, data_key=sealed_with, secret_key=STRONG)

    async def one_conversation() -> None:
        opened = await open_store(store, keys=DataKeys.from_settings(settings))
        await opened.active_conversation(ChannelName.TELEGRAM, "424242", datetime.now(UTC))
        await opened.close()

    asyncio.run(one_conversation())
    code, out = doctor(capsys, environment, **PRODUCTION, GATEWAY_DATA_KEY=new_key())
    assert code == 1
    problem = line(out, "GATEWAY_STORE")
    assert problem.startswith("PROBLEM") and key_id(parse_key(sealed_with, "test")) in problem
    assert "424242" not in out


def test_an_account_whose_name_is_now_reserved_is_a_problem_with_how_to_rename_it(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    """Accounts made before 2026-12-07 may bear a name the gateway writes as an actor (``gateway``, ``cli``,
    ``system``; ``console.auth.RESERVED_NAMES``): their audit lines read as the system's. Before: nothing said."""
    data_key, store = new_key(), "sqlite:///var/gateway.sqlite3"
    settings = Settings(store=store, data_key=data_key, secret_key=STRONG)

    async def accounts() -> None:
        opened = await open_store(store, keys=DataKeys.from_settings(settings))
        for name in ("Gateway", "anne", "cli"):
            await opened.add_listener(Listener(name, "x", supervisor=name == "cli", created_at=datetime.now(UTC)))
        await opened.close()

    asyncio.run(accounts())
    opens: list[str] = []

    async def counted(url: str, **options: Any) -> Store:  # the real store, its openings counted
        opens.append(url)
        return await open_store(url, **options)

    environment.setattr("gateway.store.open_store", counted)
    code, out = doctor(capsys, environment, **PRODUCTION, GATEWAY_DATA_KEY=data_key)
    assert code == 1, out
    # read on the store check's connection (since 2026-12-07: until then opened again, 2 opens)
    assert opens == [store], opens
    problem = line(out, "listener accounts")
    assert problem.startswith("PROBLEM") and "Gateway, cli" in problem and "anne" not in problem, problem
    assert "gateway listeners add" in problem and "--supervisor" in problem, problem
    assert "gateway listeners remove Gateway" in problem and "gateway listeners remove cli" in problem, problem


def test_an_unset_secret_and_a_malformed_data_key(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    code, out = doctor(capsys, environment, GATEWAY_FLOWS=str(ROOT / "flows.yaml"))
    assert code == 1 and line(out, "GATEWAY_SECRET_KEY").startswith("PROBLEM") and "not set" in out
    assert line(out, "GATEWAY_PUBLIC_URL").startswith("warning")  # http on this machine: a trial
    assert "will be created at the first start" in line(out, "GATEWAY_DATA_KEY")
    assert not Path("var").exists()  # the doctor creates nothing
    code, out = doctor(capsys, environment, GATEWAY_SECRET_KEY=STRONG, GATEWAY_DATA_KEY="short-and-secret")
    assert code == 1 and "GATEWAY_DATA_KEY must be 32 random bytes" in out and "short-and-secret" not in out


def test_a_misspelt_variable_is_named_with_the_setting_it_is_closest_to(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    """``GATEWAY_SECRETKEY`` or ``GATEWAY_TRUSTED_PROXY`` were ignored without a word: the secret key random at each
    start (the doctor blamed it as unset, not the spelling), the load balancer's header never believed."""
    Path(".env").write_text("GATEWAY_TRUSTED_PROXY=10.0.0.0/24\n", encoding="utf-8")
    code, out = doctor(capsys, environment, **{**PRODUCTION, "GATEWAY_SECRETKEY": STRONG, "GATEWAY_SECRET_KEY": ""})
    assert code == 1
    assert "warning  settings: GATEWAY_SECRETKEY is not a setting: ignored (did you mean GATEWAY_SECRET_KEY?)" in out
    assert "GATEWAY_TRUSTED_PROXY is not a setting: ignored (did you mean GATEWAY_TRUSTED_PROXIES?)" in out
    assert STRONG not in out


@pytest.mark.redis
@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
def test_a_redis_that_may_evict_keys_is_a_problem(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, own_redis: OwnRedis, policy: str
) -> None:
    """A Redis whose ``maxmemory-policy`` evicts (a managed service's default is often ``volatile-lru``) drops a
    conversation's record, a lock or a processed mark without an error once full: docs/deployment.md asks for
    ``noeviction``. Until 2026-12-05 the doctor said ``ok`` whatever the policy, and the gateway started silently."""
    data_key = new_key()
    env = {**PRODUCTION, "GATEWAY_DATA_KEY": data_key, "GATEWAY_STORE": own_redis.url}
    code, out = doctor(capsys, environment, **env)
    assert code == 0 and line(out, "GATEWAY_STORE").startswith("ok"), out  # the server's default: noeviction
    with redis.Redis(port=own_redis.port) as server:
        server.config_set("maxmemory-policy", policy)
    code, out = doctor(capsys, environment, **env)
    assert code == 1, out
    problem = line(out, "GATEWAY_STORE")
    assert problem.startswith("PROBLEM") and f"maxmemory-policy {policy}" in problem and "noeviction" in problem


def test_messenger_without_its_app_id_is_a_warning(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    """Messenger on, MESSENGER_APP_ID unset: a page admin's answer from Meta's inbox that names an app is not shown to
    the listeners (docs/channels.md): said, as a warning; set, ok."""
    messenger = {
        "MESSENGER_APP_SECRET": "app-secret-123", "MESSENGER_VERIFY_TOKEN": "verify-123",
        "MESSENGER_PAGE_ACCESS_TOKEN": "page-token-123", "GATEWAY_FLOWS": str(ROOT / "flows.yaml"),
    }  # fmt: skip
    _, out = doctor(capsys, environment, **messenger)
    assert line(out, "Messenger").startswith("warning") and "MESSENGER_APP_ID" in line(out, "Messenger")
    assert "page-token-123" not in out and "app-secret-123" not in out
    _, out = doctor(capsys, environment, **messenger, MESSENGER_APP_ID="1517")
    assert line(out, "Messenger").startswith("ok") and line(out, "Messenger").endswith("on")


MESSENGER_ON = {
    **PRODUCTION, "MESSENGER_APP_SECRET": "app-secret-123", "MESSENGER_VERIFY_TOKEN": "verify-123",
    "MESSENGER_PAGE_ACCESS_TOKEN": "page-token-123", "MESSENGER_APP_ID": "1517",
    "GATEWAY_FLOWS": str(ROOT / "flows.yaml"),
}  # fmt: skip
PAGE_INBOX = "263902037430900"


def test_messenger_on_is_reminded_of_the_webhook_fields_standby_and_echoes_included(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    """The doctor cannot see the page's webhook subscription at Meta: until 2026-12-06 it said nothing of it, nor of
    ``standby`` (unsubscribed, the young person's messages on a thread an admin took, a risk among them, reach nobody)
    nor of ``message_echoes`` (an admin's answer from Meta's inbox never seen). Now it names every field to subscribe;
    Messenger off, nothing."""
    _, out = doctor(capsys, environment, **PRODUCTION)
    assert "Messenger webhook" not in out and "MESSENGER_HUMAN_ECHO_APPS" not in out
    _, out = doctor(capsys, environment, **MESSENGER_ON)
    webhook = line(out, "Messenger webhook")
    for field in ("messages", "messaging_postbacks", "messaging_referrals", "message_deliveries", "message_reads",
                  "message_edits", "message_echoes", "standby"):  # fmt: skip
        assert f"`{field}`" in webhook
    assert "https://ecoute.example.org/webhooks/messenger" in webhook


def test_the_apps_whose_echoes_end_the_bots_part_are_a_warning_with_the_trade_off(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    """``MESSENGER_HUMAN_ECHO_APPS`` listed: an echo of those apps ends the bot's part; with the page's automated
    responses on, the Instant Reply's echo ends it at the young person's first message (they are left with it and
    then silence). Until 2026-12-06 the doctor said nothing of it: now a warning naming the apps and what to turn
    off; unset, what it leaves out; the gateway's own app listed (never a person's: it does nothing), a warning;
    malformed, a problem."""
    _, out = doctor(capsys, environment, **MESSENGER_ON)
    unset = line(out, "MESSENGER_HUMAN_ECHO_APPS")
    assert unset.startswith("ok") and "not set" in unset and PAGE_INBOX in unset
    code, out = doctor(capsys, environment, **MESSENGER_ON, MESSENGER_HUMAN_ECHO_APPS=PAGE_INBOX)
    listed = line(out, "MESSENGER_HUMAN_ECHO_APPS")
    assert code == 0 and listed.startswith("warning") and PAGE_INBOX in listed
    assert "automated responses" in listed and "Instant Reply" in listed and "first message" in listed
    _, out = doctor(capsys, environment, **MESSENGER_ON, MESSENGER_HUMAN_ECHO_APPS=f"{PAGE_INBOX}, 1517")
    own = line(out, "MESSENGER_HUMAN_ECHO_APPS")
    assert own.startswith("warning") and "MESSENGER_APP_ID" in own and "1517" in own
    code, out = doctor(capsys, environment, **MESSENGER_ON, MESSENGER_HUMAN_ECHO_APPS="page-inbox")
    assert code == 1 and "MESSENGER_HUMAN_ECHO_APPS: 'page-inbox' is not an app id" in out
    assert "page-token-123" not in out and "app-secret-123" not in out


WHATSAPP_ON = {
    **PRODUCTION, "TWILIO_ACCOUNT_SID": "AC0123456789", "TWILIO_AUTH_TOKEN": "twilio-token-123",
    "TWILIO_WHATSAPP_FROM": "whatsapp:+33700000000",
}  # fmt: skip


def test_a_catchup_window_longer_than_the_retention_is_a_warning(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The WhatsApp catch-up reads Twilio's list ``GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS`` back, and the purge forgets
    the processed marks of a conversation ``retention.closed_days`` after its end: a window longer than that retention
    brings a purged young person's messages back, processed again as new. Until 2026-12-06 the doctor said nothing:
    now a warning naming both; a window within the retention, or WhatsApp off, nothing."""
    short = tmp_path / "flows.yaml"
    short.write_text((ROOT / "flows.yaml").read_text().replace("  closed_days: 30 ", "  closed_days: 2  "))
    subject, on, off = "GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS", {**WHATSAPP_ON, "GATEWAY_FLOWS": str(short)}, {
        **PRODUCTION, "GATEWAY_FLOWS": str(short)}  # fmt: skip
    code, out = doctor(capsys, environment, **on, GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS="72")
    warning = line(out, subject)
    assert code == 0 and warning.startswith("warning"), out
    assert "72 h" in warning and "closed_days" in warning and "2 day(s)" in warning and "48" in warning
    _, out = doctor(capsys, environment, **on, GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS="48")
    assert f" {subject}:" not in out
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_FROM"):
        environment.delenv(name)
    _, out = doctor(capsys, environment, **off, GATEWAY_WHATSAPP_CATCHUP_WINDOW_HOURS="72")
    assert f" {subject}:" not in out  # WhatsApp off
    assert "twilio-token-123" not in out


def test_a_somaxconn_below_the_listen_backlog_is_a_warning(tmp_path: Path) -> None:
    """The kernel's cap on the listen backlog read from where it is: 4,096 (Linux's default since 5.4) keeps
    ``LISTEN_BACKLOG``; 128 (older kernels) is a warning naming the sysctl; unreadable, a warning too."""
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("4096\n")
    assert listen_backlog(somaxconn).level is Level.OK
    somaxconn.write_text("128\n")
    low = listen_backlog(somaxconn)
    assert low.level is Level.WARNING and "128" in low.text and "sysctl -w net.core.somaxconn=4096" in low.text
    missing = listen_backlog(tmp_path / "absent")
    assert missing.level is Level.WARNING and "at least 4096" in missing.text


def test_the_doctor_warns_of_a_low_somaxconn(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``gateway doctor`` says it: a warning (exit 0), the deployment otherwise complete."""
    low = tmp_path / "low"
    low.write_text("128\n")
    environment.setattr("gateway.doctor.SOMAXCONN", low)
    code, out = doctor(capsys, environment, **PRODUCTION)
    assert code == 0, out
    assert line(out, "net.core.somaxconn").startswith("warning") and "128" in line(out, "net.core.somaxconn")


@pytest.mark.redis
@pytest.mark.parametrize(("skew", "level"), [(0, "ok"), (30, "warning"), (-30, "warning"), (600, "PROBLEM")])
async def test_a_host_clock_off_redis_time_is_told(
    settings: Settings, own_redis: OwnRedis, skew: float, level: str
) -> None:
    """Since 2026-12-07 the gateway follows Redis's ``TIME`` (gateway/clock.py), within 300 s: the doctor says how
    far this host's clock is off it. Until then it said ``ok`` whatever the skew (docs/deployment.md only asked for
    NTP)."""
    finding = await store(
        settings.replace(store=own_redis.url), clock=lambda: datetime.now(UTC) + timedelta(seconds=skew)
    )
    assert finding.level.value == level, finding
    if skew:
        assert f"{skew:+.0f}" in finding.text.split(" s off")[0] and "NTP" in finding.text


def maxclients_line(capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, url: str, pool: int) -> str:
    env = {
        **PRODUCTION,
        "GATEWAY_DATA_KEY": new_key(),
        "GATEWAY_STORE": url,
        "GATEWAY_REDIS_MAX_CONNECTIONS": str(pool),
    }
    code, out = doctor(capsys, environment, **env)
    assert code == 0 and line(out, "GATEWAY_STORE").startswith("ok"), out  # a warning, never a problem
    return line(out, "Redis maxclients")


@pytest.mark.redis
def test_a_redis_maxclients_below_what_the_instances_may_open_is_a_warning(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, own_redis: OwnRedis
) -> None:
    """Each instance may open 2 × GATEWAY_REDIS_MAX_CONNECTIONS connections (the store's pool, the counters') and 2
    for the lock's renewals (since 2026-12-07): the
    live instances (their sealing adverts) and one more for a rolling deploy, + 10 for the commands. Until
    2026-12-07 the doctor did not look: a managed Redis's cap (256) was found by a burst's webhooks answered 503."""
    with redis.Redis(port=own_redis.port) as server:
        server.config_set("maxclients", "256")
    found = maxclients_line(capsys, environment, own_redis.url, 50)  # 2 × (2 × 50 + 2) + 10 = 214
    assert found.startswith("ok") and "256" in found, found
    found = maxclients_line(capsys, environment, own_redis.url, 100)  # 2 × (2 × 100 + 2) + 10 = 414
    assert found.startswith("warning") and "256, below" in found and "414" in found, found
    assert "GATEWAY_REDIS_MAX_CONNECTIONS (to 60 or less)" in found, found  # (256 - 10 - 2 × 2) // 4

    async def three_instances() -> None:
        opened = await open_store(own_redis.url, keys=DataKeys.from_settings(Settings()))
        assert isinstance(opened, SealingStore) and isinstance(opened, HasTime)
        for n in range(3):
            await opened.advertise_sealing(Sealing(f"instance-{n}", "k1", await opened.server_time()))
        await opened.close()

    asyncio.run(three_instances())
    found = maxclients_line(capsys, environment, own_redis.url, 50)  # (3 + 1) × (2 × 50 + 2) + 10 = 418
    assert found.startswith("warning") and "3 live instance(s)" in found and "418" in found, found


@pytest.mark.redis
def test_a_redis_whose_clients_are_near_its_maxclients_is_a_warning(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, own_redis: OwnRedis
) -> None:
    """Enough for the instances on paper, but connected clients already at 80 % of the cap or more (another
    application, a leak): a burst's new connections would be refused."""
    clients = [redis.Redis(port=own_redis.port) for _ in range(40)]
    try:
        for client in clients:
            client.ping()  # connected
        clients[0].config_set("maxclients", "45")
        found = maxclients_line(capsys, environment, own_redis.url, 2)  # 2 × 2 × 2 + 10 = 18: enough on paper
        assert found.startswith("warning") and "45, and 4" in found and "connected already" in found, found
    finally:
        for client in clients:
            client.close()


@pytest.mark.redis
def test_a_managed_redis_refusing_config_is_read_from_info(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, own_redis: OwnRedis
) -> None:
    """A managed Redis refuses CONFIG (here an ACL without it: NOPERM): ``maxclients`` is read from ``INFO clients``."""
    with redis.Redis(port=own_redis.port) as server:
        server.config_set("maxclients", "300")
        server.acl_setuser("default", enabled=True, nopass=True, commands=["+@all", "-config"], keys=["*"],
                           channels=["*"])  # fmt: skip
        with pytest.raises(redis.exceptions.NoPermissionError):
            server.config_get("maxclients")
    found = maxclients_line(capsys, environment, own_redis.url, 100)
    assert found.startswith("warning") and "300, below" in found, found


def test_a_maxclients_that_cannot_be_read_is_a_warning() -> None:
    """CONFIG and INFO both refused (or an INFO without the line, before Redis 7): said, with the figure to check."""
    for limits in (None, ClientLimits(None, 12)):
        finding = clients_finding(limits, 0, 100)
        assert finding.level == Level.WARNING and "could not be read" in finding.text and "414" in finding.text
    assert clients_finding(ClientLimits(10_000, 3), 2, 100).level == Level.OK  # 3 × 202 + 10 = 616


@pytest.mark.redis
async def test_the_redis_round_trip_and_the_inline_budget_it_gives_are_told(
    settings: Settings, own_redis: OwnRedis
) -> None:
    """Since 2026-12-07 the inline budget follows Redis's round trip (gateway/inbox.py, ``inline_budget``;
    ``GATEWAY_INLINE_SECONDS`` a floor): the doctor says the round trip from this host and the budget it gives. On the
    same host the floor; across a network (tests/delaying_proxy.py, 20 ms each way) ten round trips."""
    near = await round_trip(settings.replace(store=own_redis.url))
    assert near is not None and near.level.value == "ok" and "up to 0.05 s" in near.text, near
    async with delaying_proxy(own_redis.url, delay=0.020) as proxy:
        far = await round_trip(settings.replace(store=proxy.url))
    assert far is not None and far.level.value == "ok", far
    milliseconds = float(far.text.split(" ms", 1)[0])
    budget = float(far.text.split("up to ", 1)[1].split(" s", 1)[0])
    assert 40 <= milliseconds < 80 and budget == pytest.approx(milliseconds / 100, abs=0.01), far
    assert await round_trip(settings.replace(store="sqlite:///gw.db")) is None  # SQLite: nothing to say


def test_a_redis_socket_timeout_the_leases_cannot_outlast_is_a_problem(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    """``gateway serve`` refuses at start a Redis socket timeout longer than half the inbound claim (or a third of
    the outbox's lease): a renewal held that long reaches Redis after the lease it renews. Until 2026-12-07 the
    doctor read the settings as configured and said nothing of it: now a PROBLEM naming the settings; within the
    bounds, or on SQLite, nothing."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"  # bound, not listening: refused at once
    subject = "GATEWAY_REDIS_SOCKET_TIMEOUT"
    try:
        code, out = doctor(capsys, environment, **PRODUCTION, GATEWAY_STORE=url, GATEWAY_REDIS_SOCKET_TIMEOUT="8")
        problem = line(out, subject)
        assert code == 1 and problem.startswith("PROBLEM"), out
        assert "GATEWAY_INBOUND_CLAIM_SECONDS" in problem and "8 s" in problem
        _, out = doctor(capsys, environment, **PRODUCTION, GATEWAY_STORE=url, GATEWAY_REDIS_SOCKET_TIMEOUT="5")
        assert f" {subject}:" not in out
        environment.delenv("GATEWAY_STORE")
        _, out = doctor(capsys, environment, **PRODUCTION, GATEWAY_REDIS_SOCKET_TIMEOUT="8")  # SQLite: no lease
        assert f" {subject}:" not in out
    finally:
        closed.close()
