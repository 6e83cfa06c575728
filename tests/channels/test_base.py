"""The shared pieces: text splitting, choice rendering, the host allowlist, Retry-After, the offline guard."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from gateway.channels.base import (
    host_allowed,
    labels_fit,
    retry_after_header,
    send_parts,
    split_text,
    truncate_label,
    with_numbered_list,
)
from gateway.errors import PermanentDelivery, RetryableDelivery
from gateway.messages import Choice


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@given(text=st.text(st.characters(codec="utf-8"), max_size=400), limit=st.integers(min_value=1, max_value=60))
def test_split_parts_fit_and_keep_every_word(text: str, limit: int) -> None:
    parts = split_text(text, limit, utf16)
    assert parts
    assert all(utf16(part) <= limit or len(part) == 1 for part in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


def test_split_prefers_line_breaks_then_spaces() -> None:
    assert split_text("un deux trois\nquatre cinq", 20) == ["un deux trois", "quatre cinq"]
    assert split_text("un deux trois quatre", 15) == ["un deux trois", "quatre"]
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    assert split_text("court", 10) == ["court"]
    assert split_text("", 10) == [""]


def test_numbered_list() -> None:
    choices = (Choice("yes", "Oui"), Choice("no", "Non"))
    assert with_numbered_list("Alors ?", choices) == "Alors ?\n\n1. Oui\n2. Non"
    assert with_numbered_list("", choices) == "1. Oui\n2. Non"
    assert with_numbered_list("Alors ?", ()) == "Alors ?"


def test_labels_fit_only_when_still_told_apart() -> None:
    assert truncate_label("Je préfère ne pas répondre", 20) == "Je préfère ne pas r…"
    assert labels_fit((Choice("a", "Oui"), Choice("b", "Non")), 13, 20)
    assert not labels_fit((), 13, 20)
    assert not labels_fit(tuple(Choice(str(n), str(n)) for n in range(14)), 13, 20)
    assert not labels_fit((Choice("a", "x" * 25 + "a"), Choice("b", "x" * 25 + "b")), 13, 20)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://scontent.xx.fbcdn.net/a.jpg", True),
        ("https://fbcdn.net/a.jpg", False),  # *.x allows subdomains only
        ("https://lookaside.fbsbx.com/a", True),
        ("https://LOOKASIDE.fbsbx.com./a", True),
        ("https://evil-fbcdn.net/a", False),
        ("https://fbcdn.net.evil.example/a", False),
        ("ftp://lookaside.fbsbx.com/a", False),
        ("https://user@evil.example/a", False),
    ],
)
def test_host_allowlist(url: str, allowed: bool) -> None:
    assert host_allowed(URL(url), {"*.fbcdn.net", "lookaside.fbsbx.com"}) is allowed


@pytest.mark.parametrize(
    ("value", "seconds"), [("7", 7.0), ("0.5", 0.5), (None, None), ("soon", None), ("-1", None), ("inf", None)]
)
def test_retry_after_header(value: str | None, seconds: float | None) -> None:
    assert retry_after_header(value) == seconds


def test_the_offline_guard_refuses_other_hosts() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match=r"192\.0\.2\.1"):
        sock.connect(("192.0.2.1", 80))


async def test_send_parts_reports_where_to_resume_and_resumes_there() -> None:
    sent: list[str] = []
    answers: list[Exception | None] = [None, RetryableDelivery("HTTP 500", retry_after=2.0), None, None]

    async def send_one(index: int, part: str) -> str:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        sent.append(part)
        return f"id-{index}"

    with pytest.raises(RetryableDelivery) as failed:
        await send_parts(["a", "b", "c"], send_one)
    assert (failed.value.parts_sent, failed.value.retry_after) == (1, 2.0)
    resumed = await send_parts(["a", "b", "c"], send_one, failed.value.parts_sent)
    assert resumed == "id-1 id-2"  # each part's id this attempt sent
    assert sent == ["a", "b", "c"]
    assert await send_parts(["a"], send_one, 1) is None  # nothing left to send


async def test_send_parts_lets_a_permanent_refusal_through() -> None:
    async def refuse(index: int, part: str) -> str:
        raise PermanentDelivery("window closed")

    with pytest.raises(PermanentDelivery):
        await send_parts(["a", "b"], refuse)
