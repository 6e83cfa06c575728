"""The access walls' rule for live events (gateway/console/access.py), where it cannot read the record."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.console.access import may_receive
from gateway.events import Erased, LanguageChanged
from gateway.store import Author, Listener, TranscriptEntry

NOTE = TranscriptEntry("x1", "c1", datetime(2026, 11, 30, tzinfo=UTC), Author.SYSTEM, "effacée")


def _listener(name: str, *, supervisor: bool = False) -> Listener:
    return Listener(name, "hash", supervisor=supervisor)


def test_an_erasure_reaches_its_holder_and_the_supervisors_only_though_the_record_is_gone() -> None:
    erased = Erased("c1", NOTE, listener="anne")
    assert may_receive(_listener("anne"), erased, None)  # the holder at the erasure is told
    assert may_receive(_listener("sam", supervisor=True), erased, None)
    assert not may_receive(_listener("bob"), erased, None)  # another listener never hears of it
    assert not may_receive(_listener("anne"), Erased("c1", NOTE), None)  # nobody held it: supervisors only


def test_a_language_change_reaches_every_console_as_the_card_shows_it() -> None:
    """A waiting conversation's card shows its language to every listener: its change is for every console, as a
    status is (it carries no words of the young person)."""
    assert may_receive(_listener("bob"), LanguageChanged("c1", "en"), None)
