"""Listener passwords and console sessions (gateway/console/auth.py): argon2 hashes, signed session cookies that
cannot be forged, altered, reused after expiry or carried to a gateway with another secret key."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from gateway.console.auth import (
    DUMMY_HASH,
    NAME_MAX,
    SESSION_HOURS,
    SessionSigner,
    hash_password,
    valid_name,
    verify_password,
)

NOW = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
KEY = "test-secret-key-0123456789"


def test_a_password_is_stored_as_an_argon2_hash_and_checked() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterie")
    assert not verify_password("not a hash", "correct horse battery")
    assert not verify_password(DUMMY_HASH, "")


def test_a_session_reads_back_its_name_until_it_expires() -> None:
    signer = SessionSigner(KEY)
    cookie = signer.issue("anne", NOW)
    session = signer.read(cookie, NOW + timedelta(hours=SESSION_HOURS) - timedelta(seconds=1))
    assert session is not None and session.name == "anne"
    assert session.expires == NOW + timedelta(hours=SESSION_HOURS)
    assert signer.read(cookie, NOW + timedelta(hours=SESSION_HOURS)) is None  # expired
    assert signer.issue("anne", NOW) != cookie  # a nonce: two sessions never share a cookie


def test_a_session_from_another_key_is_refused() -> None:
    cookie = SessionSigner("another-gateway-key-987654").issue("anne", NOW)
    assert SessionSigner(KEY).read(cookie, NOW) is None  # a changed key logs everybody out


@pytest.mark.parametrize(
    "alter",
    [
        lambda c: _b64(b"sam|9999999999|x") + "." + c.split(".")[1],  # another name under anne's signature
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # a changed signature
        lambda c: c.split(".")[0],  # no signature
        lambda c: "",
        lambda c: "é.é",
        lambda c: "a.b.c",
    ],
)
def test_an_altered_or_malformed_cookie_is_refused(alter: object) -> None:
    cookie = SessionSigner(KEY).issue("anne", NOW)
    assert SessionSigner(KEY).read(alter(cookie), NOW) is None  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "valid"),
    [("anne", True), ("anne-marie_2.b", True), ("", False), ("a" * NAME_MAX, True), ("a" * (NAME_MAX + 1), False),
     ("anne marie", False), ("anne|x", False), ("<script>", False)],
)
def test_listener_names(name: str, valid: bool) -> None:
    assert valid_name(name) is valid


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
