"""Which of the flow's languages a young person writes in, read from their words while nothing else told it.

A channel that does not say the language (WhatsApp through Twilio, Messenger; a Telegram app set to another
language) starts a conversation in the flow's first language. Until the young person chooses one (the language
question, the web chat's switch), each message is read here: written only with words that the flow uses in one
other language and never in this one ("I want to kill myself", "yes"), the bot speaks that language from this
message on, its answer included: the numbers to call now and the queue's message in English for an English
speaker, never French only where the flow has an English text.

The words are the flow's own (its texts, choices, synonyms and interrupt phrases), per language, less those the
other languages use too ("nudes", "webcam", "ok") and the words that only greet (``GREETING_WORDS``: "Hello", "hey",
"hi 👋" alone at the first question are a French teenager's as often as not; "hello I need help" is English by its
other words). A message with words of two languages, or none, changes nothing.
An interrupt's phrases in a language the bot reads and does not speak ("quero morrer" under ``pt``,
``model.READ_LANGUAGES``) are no language's words here: they never switch the bot to another language.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.flows import text
from gateway.flows.greeting import GREETING_WORDS
from gateway.flows.model import Flow, LocalText


class Written:
    """One flow's words per language, made once."""

    def __init__(self, flow: Flow) -> None:
        words: dict[str, set[str]] = {lang: set() for lang in flow.languages}
        for lang, said in _said(flow):
            if lang in words:
                words[lang].update(text.normalize(said).split())
        self.own = {
            lang: frozenset(
                w for w in found if w not in GREETING_WORDS and not any(w in words[o] for o in words if o != lang)
            )
            for lang, found in words.items()
        }

    def guess(self, message: str) -> str | None:
        """The one language whose own words ``message`` uses, when it uses no other's; else None."""
        seen = set(text.normalize(message).split())
        found = [lang for lang, own in self.own.items() if not own.isdisjoint(seen)]
        return found[0] if len(found) == 1 else None


def _said(flow: Flow) -> Iterator[tuple[str, str]]:
    """Every (language, words) of the flow: what the bot says and what it understands."""
    locals_: list[LocalText] = [*flow.messages.values()]
    locals_ += [p.message for p in flow.partners.values()]
    for step in flow.steps.values():
        locals_ += [*step.say, *([step.ask] if step.ask else []), *([step.retry] if step.retry else [])]
        for choice in step.choices or []:
            locals_.append(choice.label)
            yield from ((lang, " ".join(words)) for lang, words in choice.synonyms.items())
    for rule in flow.routing:
        locals_ += [*rule.then.say, *(rule.then.say_closed or ())]
    for interrupt in flow.interrupts.values():
        locals_ += [*interrupt.then.say, *(interrupt.then.say_closed or ())]
        yield from ((lang, " ".join(phrases)) for lang, phrases in interrupt.match.items())
    yield from ((lang, said) for local in locals_ for lang, said in local.items())
