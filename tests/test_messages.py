"""Normalised messages keep the young person's address and words out of their ``repr`` (docs/architecture.md,
"Privacy"): a message logged or quoted in an exception by mistake shows neither."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.conversation import Conversation
from gateway.messages import ChannelName, Departure, Inbound, Outbound, Receipt
from gateway.store import OutboxItem
from gateway.store.codec import encode_outbound

PHONE = "whatsapp:+33612345678"
WORDS = "je veux mourir"


def test_no_sender_and_no_words_in_a_repr() -> None:
    outbound = Outbound("o1", "c1", ChannelName.WHATSAPP, PHONE, WORDS)
    shown = [
        Inbound(ChannelName.WHATSAPP, PHONE, "SM1", WORDS),
        Receipt(ChannelName.WHATSAPP, PHONE, "delivered", "SM2"),
        Departure(ChannelName.WHATSAPP, PHONE, about="SM3"),
        outbound,
        Conversation.start(ChannelName.WHATSAPP, PHONE, datetime(2026, 3, 10, tzinfo=UTC)),
        OutboxItem("o1", "c1", encode_outbound(outbound), datetime(2026, 3, 10, tzinfo=UTC)),
    ]
    for value in shown:
        assert PHONE not in repr(value) and "612345678" not in repr(value), type(value).__name__
        assert WORDS not in repr(value), type(value).__name__
