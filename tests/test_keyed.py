"""``gateway/keyed.py``: the keyed hash is HMAC-SHA256 of ``purpose ‖ "\\n" ‖ value`` under the derived key, whichever
HMAC computes it (OpenSSL's object directly, or ``hmac.new``'s Python wrapper around it)."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from gateway.keyed import KeyedHash


def _expected(secret: str, purpose: str, value: str) -> str:
    key = hashlib.sha256(("keyed-hash:" + secret).encode()).digest()
    return hmac.new(key, f"{purpose}\n{value}".encode(), hashlib.sha256).hexdigest()[:32]


@given(st.text(), st.text(), st.text())
def test_a_keyed_hash_is_hmac_sha256_of_the_purpose_and_value(secret: str, purpose: str, value: str) -> None:
    hashed = KeyedHash(secret)
    assert hashed(purpose, value) == _expected(secret, purpose, value)
    assert hashed(purpose, value) == _expected(secret, purpose, value)  # the keyed state is copied, never used up
    assert hashed.sender("messenger", value) == _expected(secret, "sender", f"messenger\n{value}")


@given(st.text(), st.text())
def test_without_openssls_hmac_the_python_one_gives_the_same(purpose: str, value: str) -> None:
    slow = KeyedHash("s3cret", openssl=False)
    assert isinstance(slow._keyed, hmac.HMAC)  # the pure-Python wrapper, as on a Python built without OpenSSL's
    assert slow(purpose, value) == KeyedHash("s3cret")(purpose, value) == _expected("s3cret", purpose, value)
