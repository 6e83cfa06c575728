"""WhatsApp's catch-up falling behind: Twilio's REST API down for longer than
``GATEWAY_WHATSAPP_CATCHUP_BEHIND_SECONDS`` since the last good pass. Before, nothing said how far behind it was:
``/readyz`` showed ``failing (…)`` from the first failed pass alike after a second or after five hours (when
messages are about to fall out of the window), and no metric held the gap. Now ``/readyz`` names it
(``whatsapp_catchup_behind``, the seconds since the last good pass), ``gateway_whatsapp_catchup_since_pass_seconds``
holds the gap, a WARNING line says it once, and all of it clears by itself at the first good pass once Twilio
answers again. The real app on SQLite, the fake Twilio API."""

from __future__ import annotations

import logging

import pytest

from gateway.settings import Settings
from gateway.testing import FakeTwilioAPI
from tests.e2e.channel_support import GatewayFactory, eventually, gateway, offline
from tests.e2e.test_whatsapp import PHONE, whatsapp_settings
from tests.e2e.test_whatsapp_catchup import BOUND, catching_up, counted, said

__all__ = ["catching_up", "gateway", "offline", "whatsapp_settings"]  # fixtures used below


async def test_a_catch_up_that_cannot_pass_longer_than_the_threshold_is_shown_and_clears_by_itself(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    twilio.receive(PHONE, "je vais me tuer")  # its webhook never came
    twilio.down()  # Twilio's REST API answers 503 to every request
    client = await gateway(catching_up.replace(whatsapp_catchup_behind_seconds=1.0))

    async def behind() -> dict[str, object] | None:
        body = await (await client.get("/readyz")).json()
        return body if "whatsapp_catchup_behind" in body else None

    body = await eventually(behind, BOUND)
    assert body["ready"] is True  # shown, not a reason to take the instance out of service
    assert isinstance(body["whatsapp_catchup_behind"], int) and body["whatsapp_catchup_behind"] >= 1
    assert counted(client, "gateway_whatsapp_catchup_since_pass_seconds") >= 1.0

    async def warned() -> list[logging.LogRecord]:  # by the next failed pass
        return [r for r in caplog.records if "behind:" in r.getMessage() and r.name.endswith("whatsapp_catchup")]

    [told] = await eventually(warned, BOUND)
    assert told.levelno == logging.WARNING and "+33" not in told.getMessage()

    twilio.up()  # back: the next pass (after its backoff) catches up, and the gap clears without anyone's help
    await eventually(lambda: said(client), BOUND)
    assert await said(client) == ["je vais me tuer"]

    async def cleared() -> bool:
        body = await (await client.get("/readyz")).json()
        gap = counted(client, "gateway_whatsapp_catchup_since_pass_seconds")
        return "whatsapp_catchup_behind" not in body and "whatsapp_catchup" not in body and gap < 1.0

    await eventually(cleared, BOUND)
    assert any("no longer behind" in r.getMessage() for r in caplog.records)
    assert len(await warned()) == 1  # said once
