"""The line's own texts, stored once: a bot message made of flows.yaml's words is kept by reference.

Most of a transcript's bytes were the bot's messages (the greeting, the questions and their choices), the same
for every young person, each sealed again in every conversation. A bot entry whose text and choices are all
strings of flows.yaml (``Store.share_texts`` is given the test: ``FlowSet.is_own_text``, which knows every
version loaded since start) and that has no attachment, risk flag or system code is stored as a reference:
its content ``[text, [[value, label], …]]`` is written once in the store's shared texts (Redis ``hg:texts``,
SQLite table ``texts``), sealed (kind ``text``), under a keyed hash of that content; the entry keeps only its
conversation, time, author and that reference, sealed as before. Everything else (what young people and
listeners write, system entries, a filled template such as "Tu es en position 3") stays in the entry.

The shared texts are never changed or removed: a reference made under one flows.yaml still shows, after a reload
with other words, exactly what was sent. They are not personal data (only flows.yaml's strings can enter),
so erasure and retention leave them (docs/security.md). Each write of a referring entry writes its text in the
same transaction (an idempotent set-if-absent): an entry never refers to a text its store lacks, even after a
store restored from an older copy. Opened texts are kept in memory (content-addressed, so never stale).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from gateway.errors import UnknownText
from gateway.messages import Choice
from gateway.store import Author, TranscriptEntry
from gateway.store.codec import dumps

if TYPE_CHECKING:
    from gateway.crypto import DataKeys

T = TypeVar("T")
Stored = Iterable[tuple[str, str | bytes]]  # shared texts as the store keeps them: (reference, sealed content)
KIND = "text"  # the record kind a shared text is sealed under


@dataclass(frozen=True, slots=True)
class SharedText:
    """The content an entry refers to."""

    text: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class Reference:
    """A shareable entry's content: its reference and its sealed form (written if absent)."""

    ref: str
    sealed: bytes


class SharedTexts:
    """Which bot entries are kept by reference, and the texts already opened."""

    def __init__(self, keys: DataKeys) -> None:
        self._keys = keys
        self._own: Callable[[str], bool] = lambda text: False  # until told: every entry keeps its text
        self._opened: dict[str, SharedText] = {}
        self._sealed: dict[str, Reference] = {}

    def allow(self, own: Callable[[str], bool]) -> None:
        """``own(text)``: the string is flows.yaml's (``FlowSet.is_own_text``)."""
        self._own = own

    def reference(self, entry: TranscriptEntry) -> Reference | None:
        """The reference an entry is stored under, or None when it keeps its content."""
        if entry.author is not Author.BOT or entry.attachments or entry.flag or entry.system:
            return None
        own = self._own
        if not own(entry.text) or not all(own(c.value) and own(c.label) for c in entry.choices):
            return None
        content = dumps([entry.text, [[c.value, c.label] for c in entry.choices]])
        found = self._sealed.get(content)
        if found is None:
            found = Reference(self._keys.lookup(KIND, content), self._keys.seal(KIND, content))
            self._sealed[content] = found
            self._opened[found.ref] = SharedText(entry.text, entry.choices)
        return found

    def get(self, ref: str) -> SharedText:
        """The content of a reference; UnknownText when not opened yet (the store loads its texts, then again)."""
        found = self._opened.get(ref)
        if found is None:
            raise UnknownText("a transcript entry refers to a shared text not loaded")
        return found

    def add(self, stored: Stored) -> None:
        """Texts read from the store: (reference, sealed content)."""
        for ref, sealed in stored:
            if ref not in self._opened:
                text, choices = json.loads(self._keys.open(KIND, sealed))
                self._opened[ref] = SharedText(str(text), tuple(Choice(str(v), str(label)) for v, label in choices))

    async def decoded(self, decode: Callable[[], T], load: Callable[[], Awaitable[Stored]]) -> T:
        """``decode()``, after loading the store's texts (``load``) when it meets a reference not opened yet."""
        try:
            return decode()
        except UnknownText:
            self.add(await load())
        try:
            return decode()
        except UnknownText:
            raise UnknownText("a stored transcript entry refers to a shared text the store lacks") from None

