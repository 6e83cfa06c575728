"""``gateway erase --channel whatsapp --identity`` with the number as a DPO reads it out of a request (``+33 6 12 34
56 78``, ``+33612345678``, ``0033…``), after a real WhatsApp conversation through the app: the gateway stores
Twilio's address (``whatsapp:+33612345678``), and the erasure must find it in any of these forms."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.app import STORE, SUPERVISOR, WATCH
from gateway.erasure import EPOCH, FAR
from gateway.errors import StoreError
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.testing import ACCOUNT_SID, DATA_KEY, SECRET_KEY, WHATSAPP_FROM, FakeTwilioAPI, sign_twilio, twilio_form
from tests.conftest import ROOT, TWILIO_TOKEN, AppFactory, Clock
from tests.store.test_erasure_identity_listed import (
    CutAt,
    eraser_on,
    nothing_left_of_phone,
    person_with_no_conversation,
)
from tests.test_cli import run

PUBLIC = "http://helpline.example.org:8080"
PHONE = "whatsapp:+33612345678"
OTHER = "whatsapp:+33698765432"  # another young person: never touched
SECRET = "il a mes photos et il menace de les envoyer à ma classe"


@pytest.mark.parametrize("typed", ["+33 6 12 34 56 78", "+33612345678", "0033 6 12 34 56 78", PHONE])
async def test_an_operator_erases_a_whatsapp_number_as_it_is_written(
    make_client: AppFactory, settings: Settings, twilio: FakeTwilioAPI, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], typed: str,
) -> None:  # fmt: skip
    client = await make_client(settings.replace(
        public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN,
        twilio_whatsapp_from=WHATSAPP_FROM, twilio_api_url=twilio.url,
    ))  # fmt: skip
    store = client.app[STORE]
    for sender in (PHONE, OTHER):
        form: dict[str, Any] = twilio_form(sender, SECRET)
        headers = {"X-Twilio-Signature": sign_twilio(TWILIO_TOKEN, PUBLIC + "/webhooks/whatsapp", form)}
        assert (await client.post("/webhooks/whatsapp", data=form, headers=headers)).status == 200
    assert {c.sender for c in await store.list_conversations(EPOCH, FAR)} == {PHONE, OTHER}

    for name, value in {"GATEWAY_STORE": settings.store, "GATEWAY_FLOWS": str(ROOT / "flows.yaml"),
                        "GATEWAY_SECRET_KEY": SECRET_KEY, "GATEWAY_DATA_KEY": DATA_KEY}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    code, out, _ = await asyncio.to_thread(run, capsys, "erase", "--channel", "whatsapp", "--identity", typed)

    assert code == 0 and out.startswith("erased 1 conversation(s)"), out  # before: "erased 0 conversation(s)"
    assert {c.sender for c in await store.list_conversations(EPOCH, FAR)} == {OTHER}


def test_a_national_whatsapp_number_is_refused_not_guessed(capsys: pytest.CaptureFixture[str]) -> None:
    """06 92 12 34 56 is a Réunion mobile (+262 692…) as well as a metropolitan +33 692…: never guessed."""
    code, out, err = run(capsys, "erase", "--channel", "whatsapp", "--identity", "06 92 12 34 56")
    assert code == 1 and "international form" in err and "06 92" not in err + out


async def test_the_servers_alert_check_finishes_an_erasure_by_identity_of_a_person_with_no_conversation(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """``gateway erase --channel whatsapp --identity`` of a person with no conversation left, cut at the gate's
    notices (the CLI killed): the server's alert check (``app[WATCH]``, its eraser given the data keys) opens the
    identity sealed in the listing and finishes it. Without the keys wired, the listing would stay (``DataKeyError``
    every round)."""
    client = await make_client(settings)
    await client.app[SUPERVISOR].stop()  # the check run here, once the cut erasure is listed
    store = client.app[STORE]
    keyed = await person_with_no_conversation(store, clock, settings)
    with pytest.raises(StoreError):
        await eraser_on(CutAt(store, "erase_conversation"), clock, settings, settings.store).erase_identity(
            ChannelName.WHATSAPP, PHONE, "cli", "gateway erase"
        )
    assert len(await store.erasures_begun()) == 1

    await client.app[WATCH].check()

    await nothing_left_of_phone(store, keyed)
    assert [e.actor for e in await store.audit_log() if e.action == "erase"] == ["cli"]
