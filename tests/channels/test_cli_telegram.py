"""``gateway telegram set-webhook``: the real command, in a subprocess, against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from aiohttp import web

from gateway.testing import BOT_TOKEN, Failure, FakeTelegramAPI

SECRET = "webhook_secret-123"


async def gateway(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run ``gateway ARGS`` with only ``env`` (and PATH) in its environment, in an empty directory."""
    root = str(Path(__file__).resolve().parents[2])  # this tree's gateway, not the one installed in the venv
    environment = {"PATH": os.environ.get("PATH", ""), "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": root, **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args,
        cwd=tmp_path, env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def telegram_env(telegram: FakeTelegramAPI, public_url: str = "https://helpline.example.org") -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_URL": telegram.url,
        "GATEWAY_PUBLIC_URL": public_url,
    }


async def test_set_webhook_registers_the_public_url_with_the_secret(tmp_path: Path, telegram: FakeTelegramAPI) -> None:
    code, out, err = await gateway(tmp_path, "telegram", "set-webhook", **telegram_env(telegram))
    assert code == 0, err
    assert "https://helpline.example.org/webhooks/telegram" in out
    assert BOT_TOKEN not in out + err and SECRET not in out + err
    [request] = telegram.requests_to("setWebhook")
    assert request.path == f"/bot{BOT_TOKEN}/setWebhook"
    assert request.body["url"] == "https://helpline.example.org/webhooks/telegram"
    assert request.body["secret_token"] == SECRET
    assert json.loads(request.body["allowed_updates"]) == [
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
    ]
    assert "updates: message, edited_message, callback_query, my_chat_member" in out  # what it registered
    assert "drop_pending_updates" not in request.body  # messages sent meanwhile are not thrown away
    assert telegram.requests_to("getMe")  # the token was checked first


@pytest.mark.parametrize("public_url", ["http://helpline.example.org", "https://helpline.example.org:8080"])
async def test_a_public_url_telegram_cannot_call_is_refused(
    tmp_path: Path, telegram: FakeTelegramAPI, public_url: str
) -> None:
    code, _, err = await gateway(tmp_path, "telegram", "set-webhook", **telegram_env(telegram, public_url))
    assert code == 1
    assert "GATEWAY_PUBLIC_URL" in err and "443" in err
    assert telegram.requests == []


async def test_without_telegram_settings_it_says_which_are_missing(tmp_path: Path) -> None:
    code, _, err = await gateway(tmp_path, "telegram", "set-webhook")
    assert code == 1
    assert "TELEGRAM_BOT_TOKEN" in err and "TELEGRAM_WEBHOOK_SECRET" in err


async def test_a_refused_token_is_named(tmp_path: Path, telegram: FakeTelegramAPI) -> None:
    env = {**telegram_env(telegram), "TELEGRAM_BOT_TOKEN": "999:wrong"}
    code, _, err = await gateway(tmp_path, "telegram", "set-webhook", **env)
    assert code == 1
    assert "TELEGRAM_BOT_TOKEN was refused" in err and "999:wrong" not in err
    assert telegram.requests_to("setWebhook") == []


async def test_a_token_refused_at_set_webhook_is_named_not_taken_for_an_outage(
    tmp_path: Path, telegram: FakeTelegramAPI
) -> None:
    """getMe accepted, setWebhook answered 401 (the token revoked in @BotFather meanwhile): the token is named, never
    "did not answer, run it again once this machine reaches" the Bot API, which answered."""
    telegram.fail_next(Failure(401, description="Unauthorized"), endpoint="setWebhook")
    code, out, err = await gateway(tmp_path, "telegram", "set-webhook", **telegram_env(telegram))
    assert code == 1 and out == ""
    assert "TELEGRAM_BOT_TOKEN was refused" in err and "the webhook is not set" in err, err
    assert "did not answer" not in err and BOT_TOKEN not in err


async def test_a_refusal_by_telegram_is_reported(tmp_path: Path, telegram: FakeTelegramAPI) -> None:
    refusal = "Bad Request: bad webhook: Failed to resolve host: Name or service not known"  # one of its known forms
    telegram.fail_next(Failure(400, description=refusal), endpoint="setWebhook")
    code, _, err = await gateway(tmp_path, "telegram", "set-webhook", **telegram_env(telegram))
    assert code == 1
    assert "BadRequest: Bad webhook: failed to resolve host: name or service not known" in err, err


async def test_a_bot_api_out_of_reach_is_said_plainly_and_nothing_is_set(
    tmp_path: Path, telegram: FakeTelegramAPI
) -> None:
    """Before, the command said the gateway was "serving all the same" (the server's start-up warning), then
    "telegram: network error": now one line saying the webhook is not set and what to do."""
    env = {**telegram_env(telegram), "TELEGRAM_API_URL": "http://127.0.0.1:9"}  # the discard port: refused
    code, out, err = await gateway(tmp_path, "telegram", "set-webhook", **env)
    assert code == 1 and out == ""
    assert "the Telegram Bot API did not answer" in err and "the webhook is not set" in err, err
    assert "serving all the same" not in err
    assert BOT_TOKEN not in err and SECRET not in err


async def test_a_bot_api_answering_a_page_quoting_its_url_puts_no_token_on_stderr(tmp_path: Path) -> None:
    """A proxy (or a captive portal) before the Bot API answers an HTML page quoting the URL it was asked, so the
    bot's token (``/bot<token>/getMe``): python-telegram-bot logs a body it cannot read as JSON whole, at ERROR, and
    logging's last resort wrote it on stderr. Until 2026-12-08 only ``gateway serve`` quieted that logger
    (``access_log.private_logging()``): every other command now does too."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(status=502, content_type="text/html", text=f"<h1>Bad gateway</h1><p>{request.path}</p>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        env = {
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "TELEGRAM_API_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_PUBLIC_URL": "https://helpline.example.org",
        }
        code, out, err = await gateway(tmp_path, "telegram", "set-webhook", **env)
    finally:
        await runner.cleanup()
    assert code == 1 and out == "", err
    assert "the webhook is not set" in err, err
    assert BOT_TOKEN not in err, err
