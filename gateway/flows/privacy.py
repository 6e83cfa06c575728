"""The flows.yaml sections for a young person's data: how long it is kept, and erasing it on request.

``retention:`` how many days after a conversation ended (closed, referred, abandoned) its transcript, notes,
attachments and channel identity are purged, leaving the anonymous record the supervision figures count
(``gateway/retention.py``).

``erasure:`` the phrases by which a young person asks for their data to be erased, matched as the whole message
like the ending phrases (:func:`gateway.flows.keywords.only`); the confirmation question, the words that confirm
it, the final message (which keeps the emergency numbers) and the message when anything else cancels it.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.flows import keywords
from gateway.flows.model_base import LocalText, Strict, some_phrase

_NOT_FILLERS = frozenset(keywords.canonical(w) for w in ("non", "no", "non merci", "no thanks", "nah"))
CONFIRM_FILLERS: tuple[str, ...] = tuple(f for f in keywords.ENDING_FILLERS if f not in _NOT_FILLERS)
"""Words that may surround a confirmation ("oui merci"), without the ones that say no."""


class Retention(Strict):
    closed_days: int = Field(default=30, ge=1, le=3650)
    """Days after a conversation ended before its content and identity are purged."""


class Erasure(Strict):
    phrases: dict[str, list[str]]
    """Per language: the messages that ask for erasure ("efface mes données"), whole-message phrases."""
    confirm: LocalText
    """The question asked before anything is erased."""
    yes: dict[str, list[str]] = Field(default_factory=lambda: {"fr": ["oui"], "en": ["yes"]})
    """The answers that confirm it; anything else cancels."""
    done: LocalText
    """The last message, once everything is erased: it keeps the emergency numbers."""
    cancelled: LocalText
    """Told when the answer was not a yes: nothing was erased."""

    _some_phrase = field_validator("phrases", "yes")(some_phrase)


class ErasureWords:
    """An :class:`Erasure` section's phrases, compiled once per loaded flow."""

    def __init__(self, erasure: Erasure) -> None:
        self.asks = _compiled(erasure.phrases)
        self.yes = _compiled(erasure.yes)

    def asked(self, message: str, canon: str | None = None) -> bool:
        """Whether the message, as a whole, asks for erasure (asked of every message: ``Phrases.only`` answers a
        message holding none of the phrases with one search). ``canon``: its ``keywords.canonical`` form, if made."""
        return self.asks.only(keywords.canonical(message) if canon is None else canon)

    def confirmed(self, message: str) -> bool:
        """Whether the answer to the confirmation question is a yes (in any of the flow's languages)."""
        return self.yes.only(keywords.canonical(message), CONFIRM_FILLERS)


def _compiled(phrases: dict[str, list[str]]) -> keywords.Phrases:
    return keywords.compile_phrases(p for ps in phrases.values() for p in ps)
