"""Keyed hashes of identifying values: client addresses, browser tokens, channel identities.

A rate-limit counter, a block or a login lock has to be found again from the same address or identity, but
must not name it: in Redis keys, in the store and in the console there is only ``HMAC-SHA256(key, purpose ‖
value)``, keyed with ``GATEWAY_SECRET_KEY``. Without the key, nobody can test a guessed phone number against it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import _hashlib

try:  # OpenSSL's HMAC, which ``hmac.new`` wraps in Python (its copy, update and hexdigest: 0.7 µs of a hash's 2.3)
    from _hashlib import hmac_new as _openssl_hmac
except ImportError:  # a Python built without OpenSSL's hashlib: the pure-Python HMAC, the same answers
    _openssl_hmac = None  # type: ignore[assignment]


class KeyedHash:
    def __init__(self, secret_key: str, *, openssl: bool = True) -> None:
        """``openssl=False``: the pure-Python HMAC even where OpenSSL's is there (what a Python without it runs)."""
        key = hashlib.sha256(("keyed-hash:" + secret_key).encode()).digest()
        # copied per value: the key is not set up again; the same HMAC-SHA256 either way (tests/test_keyed.py)
        self._keyed: hmac.HMAC | _hashlib.HMAC = (
            _openssl_hmac(key, digestmod="sha256")
            if openssl and _openssl_hmac is not None
            else hmac.new(key, digestmod=hashlib.sha256)
        )

    def __call__(self, purpose: str, value: str) -> str:
        """32 hex characters (128 bits): enough to tell identities apart, nothing to read back."""
        digest = self._keyed.copy()
        digest.update(f"{purpose}\n{value}".encode())
        return digest.hexdigest()[:32]

    def sender(self, channel: str, sender: str) -> str:
        """A young person's channel identity (blocks, the inbox's order, erasure): one keyed form everywhere."""
        return self("sender", f"{channel}\n{sender}")

    def erased(self, channel: str, sender: str) -> str:
        """A young person erased lately (``ErasedStore.keep_erased``): a purpose of its own, so that it matches no
        block, inbox order or ``gateway erase --again`` key: nothing links it to what was erased."""
        return self("erased", f"{channel}\n{sender}")

    def erased_conversation(self, conversation_id: str) -> str:
        """A web chat conversation erased lately (``ErasedStore.keep_erased``, ``erasure.WEBCHAT_ERASED_FOR``): a
        purpose of its own, so that it matches no identity's hash nor anything kept of the conversation; a page
        naming a conversation the store lacks is told it ended only when this is kept (``gateway/webchat.py``)."""
        return self("erased-conversation", conversation_id)

    def provider_id(self, provider_id: str) -> str:
        """A provider's message id as a log line names it (the outbox's DEBUG lines, since 2026-12-07; before, its
        plain SHA-256, which whoever holds the id can compute): a purpose of its own, so that it matches nothing the
        store keeps of the id (``store.provider_digest``); the same for the same id and key (bench/chaos.py's audit
        computes it again to group a reply's copies by item)."""
        return self("provider-id", provider_id)

    def logged_id(self, value: str) -> str:
        """One of our ids as a log line names it (since 2026-12-07): a transcript entry's, an outbox item's (the
        entry's), the entry of an inbox item's de-duplication key. Until then the id itself, which is an unkeyed
        SHA-256 of the provider's message id for a young person's message and the bot's replies to it
        (``gateway/ids.py``): whoever holds the id (the provider, a leaked export of the chat) could compute it and
        find every line about that message. 20 hex characters, the same for the same id and key on every instance
        (the lines still correlate); ``gateway log-id`` prints it for ops (docs/architecture.md, Privacy)."""
        return self("logged-id", value)[:20]
