"""Keyed hashes of identifying values: client addresses, browser tokens, channel identities.

A rate-limit counter, a block or a login lock has to be found again from the same address or identity, but
must not name it: in Redis keys, in the store and in the console there is only ``HMAC-SHA256(key, purpose ‖
value)``, keyed with ``GATEWAY_SECRET_KEY``. Without the key, nobody can test a guessed phone number against it.
"""

from __future__ import annotations

import hashlib
import hmac


class KeyedHash:
    def __init__(self, secret_key: str) -> None:
        key = hashlib.sha256(("keyed-hash:" + secret_key).encode()).digest()
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied per value: the key is not set up again

    def __call__(self, purpose: str, value: str) -> str:
        """32 hex characters (128 bits): enough to tell identities apart, nothing to read back."""
        digest = self._keyed.copy()
        digest.update(f"{purpose}\n{value}".encode())
        return digest.hexdigest()[:32]

    def sender(self, channel: str, sender: str) -> str:
        """A young person's channel identity (blocks, the inbox's order, erasure): one keyed form everywhere."""
        return self("sender", f"{channel}\n{sender}")
