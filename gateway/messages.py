"""Normalised messages shared by every part of the gateway.

Channels turn provider payloads into :class:`Inbound`; the engine answers with :class:`Reply`; the dispatcher
wraps replies into :class:`Outbound` for the outbox; channels render :class:`Outbound` natively. All are
frozen dataclasses: nothing downstream can change what a channel received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The kind of the mark a forwarded message carries among its attachments (Telegram's ``forward_origin``): its words
# and files are someone else's, passed on by the young person (a harasser's message as proof), shown so to a listener
FORWARDED = "forwarded"
# The kinds of attachment a young person shows as proof (``Inbound.evidence``): a voice message, a sticker or a
# location are their own words or gestures, counted as typed messages.
EVIDENCE = frozenset({FORWARDED, "image", "video", "file"})


class ChannelName(StrEnum):
    WEBCHAT = "webchat"
    MESSENGER = "messenger"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer offered as a button: ``value`` goes back to the engine, ``label`` is shown."""

    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One bot message as the engine produces it, before it is addressed to anybody."""

    text: str
    choices: tuple[Choice, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the young person sent. ``url`` is the provider's own URL, fetched server-side only. Of kind
    ``forwarded`` (:data:`FORWARDED`), no file: the mark of a message the young person forwarded."""

    kind: str  # image, audio, video, file, location, other, forwarded
    url: str | None = None
    content_type: str | None = None
    name: str | None = None

    @classmethod
    def known(cls, data: dict[str, Any]) -> Attachment:
        """One as a record or an event keeps it, the fields this version knows (a newer one may write more: a
        rolling deploy); KeyError without its kind."""
        return cls(str(data["kind"]), *(data.get(name) for name in ("url", "content_type", "name")))


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from a young person, normalised.

    ``sender`` is the channel's own address of the person (PSID, chat id, ``whatsapp:+33…``): it never leaves
    the store and the channel, is never logged, and never shown to a listener. ``message_id`` is the channel's
    own id, the key for de-duplication.
    """

    channel: ChannelName
    sender: str = field(repr=False)  # never in a log line or an exception: neither is the text
    message_id: str
    text: str = field(default="", repr=False)
    payload: str | None = None  # value of a tapped button, when the channel tells it apart from text
    attachments: tuple[Attachment, ...] = ()
    language_hint: str | None = None
    # the new text of a message the young person edited after sending it (Telegram's ``edited_message``, Messenger's
    # ``message_edit``): read for a risk and shown to a listener, never taken as an answer to the bot's question
    # (``Dispatcher._process``); ``message_id`` is the edit's own
    edited: bool = False
    # the young person opened the chat and wrote nothing (Messenger's ``referral``: an m.me link of the line's site
    # followed into a thread they had): the welcome and the first question when no conversation is open, else
    # nothing; never a transcript entry (``Dispatcher._process``)
    opening: bool = False
    # a button of the platform's own, not the young person's words (``Dispatcher._process``): ``restart``, the thread
    # (re)opened with it (Messenger's "Get Started", shown again to a young person who deleted the thread; Telegram's
    # ``/start``, its text kept: a risk read in a deep link's parameter makes it the young person's words): the
    # welcome when no conversation is open, else the waiting question asked again (no retry used), the place in line
    # told again, or the listener told; never a transcript entry. ``menu``: another of the page's buttons (a
    # persistent menu's item, ``text`` its title): the flow's button when it knows the payload, else as ``restart``
    restart: bool = False
    menu: bool = False
    # written on a thread another app owns (Messenger's ``standby``, Conversation Routing: a page admin in Meta's
    # inbox, Meta's AI): the young person's words, recorded and read for a risk, never answered by the bot; a risk
    # goes to the listeners (``Dispatcher._process``); with no conversation open, only a risk opens one
    standby: bool = False
    # the young person unsubscribed with this message (WhatsApp's STOP, Twilio's ``OptOutType``): the provider refuses
    # every message to them from now on (Twilio's 21610) until they send START; after an end, nothing is answered
    # (``Dispatcher._after_end``)
    opted_out: bool = False
    # the young person opted back in with this message (WhatsApp's START, UNSTOP, YES: Twilio's ``OptOutType``, or its
    # keyword alone caught up from Twilio's list): the unsubscribed mark is lifted in its own turn, before anything
    # answers it (``Dispatcher._process``)
    opted_in: bool = False
    # when the young person sent it, as the channel dates it (Telegram's ``date``, to the second; Messenger's event
    # ``timestamp``, in ms; the ``date_sent`` of a WhatsApp message caught up from Twilio's list); None when the
    # channel's date is not read (a live WhatsApp webhook carries none: processed at once). A message taken late (the
    # gateway away, the platform redelivering) is dated when it was written, not when it was taken
    # (``gateway.dispatcher.written_at``)
    sent_at: datetime | None = None
    # the conversation it was written in, when the channel knows it (the web chat: the one the page follows): erased
    # while the message waited for its lock, none other is opened for it (``ConversationEnded``: the page answered
    # ``ended``, ``Dispatcher._locked``); ended (not erased), none other open: none opened either (``EndedMeanwhile``:
    # the web chat opens the next one within its new-chat limits, then sends it again). None: the sender's open one,
    # or a new one (the providers' channels: a message after an erasure is a new contact, docs/guarantees.md)
    written_in: str | None = None
    # the web chat: the keyed hash of the page's client network (``Gate.client_key``, never the address), written on
    # the conversation by the message's own commit when it has none (``Dispatcher._locked``: one it opens is counted
    # in its network's cap of open ones from that commit; until 2026-12-07 a second write after it, which a crash
    # between left out of the count until the page's next hello)
    client: str | None = field(default=None, repr=False)

    @property
    def forwarded(self) -> bool:
        """Someone else's words the young person passed on (:data:`FORWARDED`): read for a risk and shown to a
        listener, marked, never taken as the young person's answer to the bot's question (``Dispatcher._process``)."""
        return any(attachment.kind == FORWARDED for attachment in self.attachments)

    @property
    def evidence(self) -> bool:
        """What a young person shows the line rather than says: forwarded words, or a picture, a video or a file
        (screenshots of the harasser's messages, a recording, a document), often dozens at once. Counted under its
        own flood bound (``gateway/gate.py``), never the typed messages'."""
        return any(attachment.kind in EVIDENCE for attachment in self.attachments)


@dataclass(frozen=True, slots=True)
class Echo:
    """A message the page sent to a young person from outside the gateway: a page admin answering in Meta's inbox
    (Messenger's ``is_echo`` of no app, or of another app than the gateway's). ``recipient`` is the young person's
    address (never logged, never shown); ``message_id`` the provider's id, the key of its de-duplication. Recorded
    for the listeners (author ``page``), never sent, never read as the young person's words
    (``Dispatcher.handle_echo``). ``human``: known to be a person's answer (its app in ``MESSENGER_HUMAN_ECHO_APPS``),
    which ends the bot's part; else it may be one of Meta's automated responses (Instant Reply, away message), and
    the bot goes on."""

    channel: ChannelName
    recipient: str = field(repr=False)
    message_id: str
    text: str = field(default="", repr=False)
    attachments: tuple[Attachment, ...] = ()
    human: bool = False


# Between the provider ids of a message sent in parts (``channels.base.send_parts``), in the order the parts went:
# no provider's message id holds a space (Twilio's SIDs, Graph's mids, Telegram's numbers)
PART_SEPARATOR = " "


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery or read receipt, or a provider status callback, for a message the gateway sent."""

    channel: ChannelName
    sender: str = field(repr=False)
    status: str  # sent, delivered, read, failed
    provider_message_id: str | None = None
    watermark: int | None = None  # Messenger: everything sent before this time (ms)
    error: str | None = None
    transient: bool = False  # failed for a reason a resend may get through (the provider's code says so)
    # failed because the provider rate-limits the line (Twilio's 63018, 20429): the channel is paused, a copy waits
    # for the pause's end (``Dispatcher.handle_receipt``, since 2026-12-08)
    rate_limited: bool = False


@dataclass(frozen=True, slots=True)
class Departure:
    """A provider says the young person blocked the line or unsubscribed (``left``), or accepts messages again."""

    channel: ChannelName
    sender: str = field(repr=False)  # a phone number on WhatsApp: never in a log line or an exception
    left: bool = True
    # the provider's id of the message whose refusal says it (WhatsApp's status callback with 21610): a refusal of a
    # message of another conversation, or sent before the mark was last lifted (START), says nothing of the active
    # conversation now (``leaving.provider_says``)
    about: str | None = None
    # when the provider says it happened (Telegram's ``my_chat_member`` ``date``): a block dated before the active
    # conversation opened comes late, unblocked since (``leaving.provider_says``)
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to deliver to a young person through their channel.

    ``author`` is ``bot`` or ``listener``; channels use it for policy (Messenger's HUMAN_AGENT tag is for humans
    only). ``id`` is the gateway's own id, stable across retries.
    """

    id: str
    conversation_id: str
    channel: ChannelName
    recipient: str = field(repr=False)
    text: str = field(repr=False)
    choices: tuple[Choice, ...] = ()
    author: str = "bot"
    attachments: tuple[Attachment, ...] = field(default=())
