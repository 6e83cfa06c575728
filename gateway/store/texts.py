"""The line's own texts, stored once: a bot message made of flows.yaml's words is kept by reference.

Most of a transcript's bytes were the bot's messages (the greeting, the questions and their choices), the same
for every young person, each sealed again in every conversation. A bot entry whose text and choices are strings
of flows.yaml (``Store.share_texts`` is told which: ``FlowSet.own_texts``, every version loaded since start), or
whose text is one of its templates filled ("Tu es en position {position}…"), and that has no attachment, risk
flag or system code, is stored as a reference: its content ``[text or template, [[value, label], …]]`` is
written once in the store's shared texts (Redis ``hg:texts``, SQLite table ``texts``), sealed (kind ``text``),
under a keyed hash of that content; the entry keeps its conversation, time, author, that reference and a
template's values (``{"position": "3"}``), sealed as before. Everything else (what young people and listeners
write, system entries, any text not made of flows.yaml's strings) stays whole in the entry.

The shared texts are never changed or removed: a reference made under one flows.yaml still shows, after a reload
with other words, exactly what was sent (a template's values are checked to give the text back before it is
kept so). They are not personal data (only flows.yaml's strings enter; a template's values stay in the entry),
so erasure and retention leave them (docs/security.md). Each write of a referring entry writes its text first (an
idempotent set-if-absent, in the same transaction): an entry never refers to a text its store lacks, even in a
store restored from an older copy. Opened texts are kept in memory (content-addressed, so never stale).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from gateway.errors import UnknownText
from gateway.messages import Choice
from gateway.store import Author, TranscriptEntry

if TYPE_CHECKING:
    from gateway.crypto import DataKeys

T = TypeVar("T")
R = TypeVar("R")
Stored = Iterable[tuple[str, str | bytes]]  # shared texts as the store keeps them: (reference, sealed content)
KIND = "text"  # the record kind a shared text is sealed under
# A reference: 80 bits of the keyed hash. Two of a line's few thousand texts share one with a chance below 1e-16,
# and nobody without the secret key can make them (references written longer before read as well).
REF_CHARS = 20
# ``json.dumps`` with these options, built once (it built an encoder at each call: a bot message's reference)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_SLOT = re.compile(r"\{(\w+)\}")  # a template's placeholder, as flows.yaml writes them


class OwnTexts(Protocol):
    """flows.yaml's strings (``FlowSet.own_texts``: every version loaded since start)."""

    def __contains__(self, text: object, /) -> bool: ...

    def templates(self) -> Collection[str]:
        """Those with ``{placeholders}``."""
        ...


class _NoTexts:
    def __contains__(self, text: object, /) -> bool:
        return False

    def templates(self) -> Collection[str]:
        return ()


@dataclass(frozen=True, slots=True)
class SharedText:
    """The content an entry refers to."""

    text: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class Reference:
    """A shareable entry's content: its reference and its sealed form (written if absent); for a filled template,
    the values of its placeholders (kept in the entry, sealed with it)."""

    ref: str
    sealed: bytes
    params: Mapping[str, str] = field(default_factory=dict)


def fill(template: str, params: Mapping[str, str]) -> str:
    """A template's placeholders replaced by their values (one without a value stays as written)."""
    return _SLOT.sub(lambda slot: params.get(slot[1], slot[0]), template)


class SharedTexts:
    """Which bot entries are kept by reference, and the texts already opened."""

    def __init__(self, keys: DataKeys) -> None:
        self._keys = keys
        self._own: OwnTexts = _NoTexts()  # until told: every entry keeps its text
        self._opened: dict[str, SharedText] = {}
        self._sealed: dict[str, tuple[str, bytes]] = {}
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    def allow(self, own: OwnTexts) -> None:
        self._own = own

    def reference(self, entry: TranscriptEntry) -> Reference | None:
        """The reference an entry is stored under, or None when it keeps its content: a bot message whose text is
        one of flows.yaml's strings, or one of its templates filled, and whose choices are flows.yaml's."""
        if entry.author is not Author.BOT or entry.attachments or entry.flag or entry.system:
            return None
        own = self._own
        if not all(c.value in own and c.label in own for c in entry.choices):
            return None
        text, params = (entry.text, {}) if entry.text in own else self._template_of(entry.text)
        if text is None:
            return None
        content = _ENCODER.encode([text, [[c.value, c.label] for c in entry.choices]])
        found = self._sealed.get(content)
        if found is None:
            found = (self._keys.lookup(KIND, content)[:REF_CHARS], self._keys.seal(KIND, content))
            self._sealed[content] = found
            self._opened[found[0]] = SharedText(text, entry.choices)
        return Reference(found[0], found[1], params)

    def _template_of(self, text: str) -> tuple[str | None, dict[str, str]]:
        """The template of flows.yaml that ``text`` fills, and the values it fills it with (that give ``text``
        back exactly), or None."""
        for template in self._own.templates():
            pattern = self._patterns.get(template) or self._patterns.setdefault(template, _pattern(template))
            found = pattern.match(text) if pattern else None
            if found is not None and fill(template, found.groupdict()) == text:
                return template, found.groupdict()
        return None, {}

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

    async def decoded_in_parts(
        self, raws: Sequence[R], decode: Callable[[R], T], load: Callable[[], Awaitable[Stored]], part: int
    ) -> list[T]:
        """:meth:`decoded` of each raw entry, ``part`` at a time with a turn of the event loop between the parts: a
        transcript of thousands of entries opened in the console leaves the gateway answering meanwhile (until
        2026-12-06 one block: 3,000 entries held the loop 0.06-0.10 s)."""
        found: list[T] = []
        for start in range(0, len(raws), part):
            if start:
                await asyncio.sleep(0)
            found += await self.decoded(functools.partial(_each, decode, raws[start : start + part]), load)
        return found

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


def _each(decode: Callable[[R], T], raws: Sequence[R]) -> list[T]:
    return [decode(raw) for raw in raws]


def _pattern(template: str) -> re.Pattern[str] | None:
    """What a filled ``template`` looks like (None for a template with other braces: those stay in the entry)."""
    parts = _SLOT.split(template)  # literal, name, literal, name, …, literal
    if any("{" in literal or "}" in literal for literal in parts[::2]):
        return None
    regex, named = [], set()
    for n, part in enumerate(parts):
        if n % 2 == 0:
            regex.append(re.escape(part))
        else:
            regex.append(f"(?P={part})" if part in named else f"(?P<{part}>.*?)")
            named.add(part)
    return re.compile("".join(regex) + r"\Z", re.DOTALL)
