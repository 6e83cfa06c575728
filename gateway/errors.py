"""Every exception the gateway raises on purpose (until 2026-12-07 the tree below lacked ``EndedMeanwhile``,
``CorpusError`` and ``LockTimeout``, and ``ActionRefused`` lived in ``gateway/console/actions.py``, which still
exports it).

    GatewayError
    ├── ConfigError               a setting is missing or malformed (names the variable, never a secret)
    ├── FlowError                 flows.yaml cannot be used
    │   └── FlowValidationError   positioned problems: .problems is a list of "FILE:LINE:COLUMN: message"
    ├── IllegalTransition         a conversation lifecycle change that is not allowed (e.g. closed → queued)
    ├── ConversationEnded         a web chat message's conversation ended as it was processed (an ending cut
    │   │                         short, completed first; or erased while it waited for its lock): not recorded,
    │   │                         the page is told ``ended``
    │   └── EndedMeanwhile        ended, not erased, while it waited for its lock, the sender with none other
    │                             open: nothing opened; the caller opens the next one within the new-chat limits
    ├── CorpusError               a line of a labelled corpus is not one (also a ValueError)
    ├── ModelError                the understanding model cannot be loaded, or does not fit its embedder
    ├── StoreError                the store failed or is unreachable
    │   ├── Conflict              an exclusive operation lost a race (two listeners take one conversation)
    │   ├── LockTimeout           a conversation's lock not taken in time, another holder kept it: contention,
    │   │                         not an outage
    │   ├── InboundBusy           another live instance is processing this inbound message: retry later (503)
    │   ├── LockLost              a conversation's lock lapsed before the writes made under it reached the store:
    │   │                         its conversation's writes refused (fenced), the message not processed
    │   ├── ReplicasBehind        fewer Redis replicas than GATEWAY_REDIS_REPLICA_ACKS confirmed the writes in
    │   │                         time: not acknowledged (503), the sender retries
    │   ├── DataKeyError          a stored record does not open: its key is missing or it was altered (names
    │   │                         the key id and the record kind, never the content)
    │   └── UnknownText           a transcript entry refers to a shared text of flows.yaml the store lacks
    ├── WebhookError              a provider request is refused
    │   ├── BadSignature          → 403
    │   ├── BadRequest            → 400
    │   └── PayloadTooLarge       → 413
    ├── DeliveryError             a send to a provider failed
    │   ├── RetryableDelivery     network error, 5xx, 429: try again (``retry_after`` seconds when known;
    │   │                         ``parts_sent``: parts of a split message the provider accepted before it;
    │   │                         ``rate_limited``: the provider's rate limit, which pauses the whole channel)
    │   │   └── CredentialsRefused  the provider refuses the line's own credentials (Messenger's page token
    │   │                         expired or revoked, Telegram's bot token, Twilio's 20003, or its 21606 and
    │   │                         63007, the line's sender unknown): every send of the channel waits
    │   │                         for an operator, shown
    │   └── PermanentDelivery     the provider refused for good (e.g. reply window closed)
    │       └── RecipientGone     the young person blocked the line or unsubscribed (gateway/leaving.py is told)
    ├── MailError                 the SMTP server could not be reached or refused an e-mail (notices, referrals)
    ├── ActionRefused             a listener's, a supervisor's or a notice's action refused (``code`` for the
    │                             console's ``refused.*`` text, ``details`` beside it): 4xx, never 500
    ├── ThreadRefused             the system refused a new thread ("can't start new thread"): the work it was for
    │                             did not run (a flows.yaml reload answered 503, the current flow kept)
    ├── ImagesBusy                the images' pool and its wait queue full: an upload answered 503 ``busy``
    └── WeakPassword              a new listener password is refused (``reason``: too_short, common): said in
                                  French then English

Messages never contain message text, phone numbers or platform user ids.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's exceptions."""


class ConfigError(GatewayError):
    pass


class FlowError(GatewayError):
    pass


class FlowValidationError(FlowError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class IllegalTransition(GatewayError):
    def __init__(self, status: str, action: str) -> None:
        self.status = status
        self.action = action
        super().__init__(f"cannot {action} a conversation that is {status}")


class ConversationEnded(GatewayError):
    """A web chat message found its conversation's ending listed as begun (cut short on Redis) and completed it
    first (``Dispatcher._ended_first``), or found it erased while it waited for its lock (``store.locked_active``
    with ``only``): a message never starts the next conversation silently there, so it is not recorded; the socket
    answers ``ended`` (the upload route 409 ``ended``), as after any end."""


class EndedMeanwhile(ConversationEnded):
    """A web chat message's conversation (``store.locked_active``'s ``only``) ended, not erased, while the message
    waited for its lock, and the sender has none other open: nothing opened, nothing written. The caller opens the
    sender's next conversation for it only within the new-chat limits (``Gate.new_chat``, a risky message all the
    same: ``gateway/webchat.py``, ``gateway/uploads.py``), then sends it again. Until 2026-12-07 the store opened that
    one under the lock, no limit asked: two tabs racing "Terminer" against a message opened chats past them."""


class CorpusError(GatewayError, ValueError):
    """A line of a labelled corpus is not one: ``file:line: what is wrong``."""


class ModelError(GatewayError):
    """The understanding model cannot be loaded, or its weights were trained on another embedder."""


class StoreError(GatewayError):
    pass


class Conflict(StoreError):
    pass


class UnknownText(StoreError):
    """A transcript entry refers to a shared text (``gateway/store/texts.py``) not loaded, or not in the store."""


class LockTimeout(StoreError):
    """A conversation's lock not taken in time: another holder kept it. The store answered: contention, not an
    unreachable store (``gateway/outage_log.py`` does not count it as an outage)."""


class InboundBusy(StoreError):
    """Another live owner is processing this inbound message: the provider should retry later (503)."""


class LockLost(StoreError):
    """The conversation's lock was no longer its holder's when the writes made under it reached the store (held on
    their way past its lease, another instance holding it meanwhile): the conversation's record, entries and items
    were refused by their scripts (fenced by the lock's token, since 2026-12-07), so nothing says the message was
    processed; it is processed again by the next holder."""


class DataKeyError(StoreError):
    """A sealed record does not open: the key that sealed it is not configured, or the record was altered."""


class WebhookError(GatewayError):
    status = 400


class BadSignature(WebhookError):
    status = 403


class BadRequest(WebhookError):
    status = 400


class PayloadTooLarge(WebhookError):
    status = 413


class DeliveryError(GatewayError):
    # the provider's numeric error code when it told one (Twilio's, 5 digits: ``whatsapp.twilio_error``), safe to
    # log: a code of the provider's list, never a number or text of its answer (since 2026-12-08)
    provider_code: int | None = None


class RetryableDelivery(DeliveryError):
    def __init__(
        self, reason: str, retry_after: float | None = None, parts_sent: int = 0, rate_limited: bool = False
    ) -> None:
        self.retry_after = retry_after
        self.parts_sent = parts_sent  # a split message resumes at this part (0-based), so none is sent twice
        self.rate_limited = rate_limited  # the provider said to slow down (a 429, a rate limit's code): every send
        super().__init__(reason)


class CredentialsRefused(RetryableDelivery):
    """The provider refuses the line's own credentials (Graph's code 190: the page access token expired or was
    revoked; the Bot API's 401 or 404, PTB's InvalidToken: the bot token revoked or wrong; Twilio's 401, code 20003:
    the account SID or auth token; its 21606 and 63007: the line's own sender, ``TWILIO_WHATSAPP_FROM``, unknown to
    it), not this young person: every send of the channel fails alike until an operator renews them. Kept and tried
    again (the channel paused meanwhile), shown at once (``Outbox.refused``: ``/readyz``, a metric, one ERROR line),
    never failed for good reply by reply."""


class PermanentDelivery(DeliveryError):
    pass


class RecipientGone(PermanentDelivery):
    """The provider refuses because the young person blocked this sender or unsubscribed from it."""


class MailError(GatewayError):
    """An e-mail was not accepted by the SMTP server; the message names the step, never an address."""


class ActionRefused(GatewayError):
    """A listener's action refused: ``code`` for the console (its ``refused.*`` text), ``message`` in English for
    the API's other readers; ``details`` go into the answer beside them, for the console's words: ``field``, the
    part of the form refused (a validation error, its French name in the console), ``position``, which of its
    lines (1 first, as the console numbers them), ``max`` and ``length``, the limits broken, ``current``, the status
    a record already has."""

    def __init__(self, code: str, message: str, **details: str | int) -> None:
        self.code, self.details = code, details
        super().__init__(message)


class ThreadRefused(GatewayError):
    """The system refused a new thread (at its threads' or memory limit): the work it was for never ran."""


class ImagesBusy(GatewayError):
    """Every thread of the images' pool busy and its wait queue full (``gateway/images.py``: ``Cleaning``): the
    upload is answered 503 ``busy``, nothing kept, and the page sends it again under the same id."""


class WeakPassword(GatewayError):
    """A password refused by the policy (``console/passwords.py``); ``reason`` is ``too_short`` or ``common``."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class ReplicasBehind(StoreError):
    """Fewer Redis replicas than ``GATEWAY_REDIS_REPLICA_ACKS`` confirmed the writes in time: what was written is on
    the primary, not acknowledged (503: the provider redelivers, de-duplicated by id). The store answers: not an
    outage (``gateway/store/redis_replicas.py`` says it, once per stretch)."""
