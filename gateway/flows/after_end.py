"""The flows.yaml section ``after_end``: a thank-you written just after a conversation ended.

A young person whose conversation just ended (the closed line at night, a listener's close, the idle close) often
writes "merci", "ok merci", "🙏" a minute later. Within ``minutes`` of that ending, a message that is only such
words (``phrases``, matched as the whole message like the erasure phrases: :func:`gateway.flows.keywords.only`,
repeated or one after another: "ok merci") or only such emoji (``emoji``), and in which no risk is read, is kept in
the ended conversation and answered once with ``messages.after_end`` (``Dispatcher._after_end``): no new
conversation, no welcome. So is, answered with ``messages.after_end_stop``, a message that is only an ending
interrupt's phrase ("stop", "arrête", "laisse tomber": the flow's interrupts that end the conversation, matched as
they are at a question) with none but the section's emoji. Without the section, any message after an ending starts
a new conversation.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta

from pydantic import Field, field_validator

from gateway.flows import keywords
from gateway.flows.model_base import Strict, some_phrase

THANKS_EMOJI = "🙏👍👌👋🙂😊☺🥰🤗😘🫶🙌✨❤♥💙💜💚💛🧡🤍💕💖💗"
"""The emoji that say thanks or goodbye, and nothing else: a message holding any other emoji ("merci 😢", "ok 🔪") is
not a thank-you."""
_MODIFIERS = frozenset("\ufe0e\ufe0f\u200d" + "".join(chr(c) for c in range(0x1F3FB, 0x1F400)))
"""What changes an emoji's look (text or picture, a joiner, a skin tone), never what it says."""


class AfterEnd(Strict):
    minutes: int = Field(default=30, ge=1, le=24 * 60)
    """How long after an ending a thank-you alone is answered and kept in the ended conversation."""
    phrases: dict[str, list[str]]
    """Per language: the thank-yous, okays and goodbyes ("merci", "d accord", "au revoir"), whole-message phrases."""
    emoji: str = THANKS_EMOJI
    """The emoji that may be the whole message, or stand beside the phrases."""

    _some_phrase = field_validator("phrases")(some_phrase)


class AfterEndWords:
    """An :class:`AfterEnd` section compiled once per loaded flow."""

    def __init__(self, spec: AfterEnd) -> None:
        self.window = timedelta(minutes=spec.minutes)
        self.phrases = keywords.compile_phrases(p for ps in spec.phrases.values() for p in ps)
        self.emoji = frozenset(_emoji(spec.emoji))

    def only(self, raw: str) -> bool:
        """Whether the message is only thanks, okays or goodbyes (in any of the flow's languages), or only the
        section's emoji; any other emoji, or any other word, and it is not."""
        emoji = _emoji(raw)
        if not emoji <= self.emoji:
            return False
        canon = keywords.canonical(raw)
        if not canon:
            return bool(emoji)
        anywhere = self.phrases.anywhere
        if anywhere is None or anywhere.search(keywords.Words(canon)) is None:  # most messages: one search
            return False
        return keywords.only(canon, self.phrases.each, ())

    def calm(self, raw: str) -> bool:
        """Whether the message holds no emoji but the section's: "stop 👋" may be a closing word alone, "stop 😢"
        is not."""
        return _emoji(raw) <= self.emoji


def _emoji(text: str) -> set[str]:
    """The pictures of ``text`` (Unicode's other symbols), without what only changes their look."""
    return {c for c in text if c not in _MODIFIERS and unicodedata.category(c) == "So"}
