"""A notice or a referral never carries the young person's channel address (gateway/notices/service.py's
``no_identity``, which both call before anything is stored or sent)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.conversation import Conversation
from gateway.errors import ActionRefused
from gateway.messages import ChannelName
from gateway.notices.service import no_identity

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def conversation(channel: ChannelName, sender: str) -> Conversation:
    return Conversation("c1", channel, sender, "Renard bleu", NOW, NOW)


WHATSAPP = conversation(ChannelName.WHATSAPP, "whatsapp:+33612345678")


@pytest.mark.parametrize(
    "text",
    [
        "appelle-moi au +33612345678",
        "mon num 06 12 34 56 78",
        "0612345678",
        "+33 6 12 34 56 78",
        "06.12.34.56.78",
        "(+33) 6-12-34-56-78",
        "33612345678",
        "whatsapp:+33612345678",
    ],
)
def test_a_whatsapp_number_in_any_form_is_refused(text: str) -> None:
    with pytest.raises(ActionRefused) as refused:
        no_identity(WHATSAPP, ["Photo publiée par un ancien ami.", text])
    assert refused.value.code == "identity"


@pytest.mark.parametrize(
    "text",
    [
        "Photo publiée le 12/03/2026 par un compte de 3 ans, elle a 15 ans.",
        "appelle le 3018 ou le 119, ou le 06 98 76 54 32 de sa mère",
        "https://www.instagram.com/p/Cx1/",
        "",
    ],
)
def test_other_numbers_pass(text: str) -> None:
    no_identity(WHATSAPP, [text])


@pytest.mark.parametrize(
    ("channel", "sender", "text"),
    [
        (ChannelName.MESSENGER, "2400000000000077", "son id est 2400000000000077"),
        (ChannelName.TELEGRAM, "424242424", "chat 424 242 424"),
    ],
)
def test_a_platform_id_is_refused(channel: ChannelName, sender: str, text: str) -> None:
    with pytest.raises(ActionRefused):
        no_identity(conversation(channel, sender), [text])
