"""Answers understood beyond the words of the question asked, and how each answer was understood.

* At the topic question, a free-text answer no synonym matches takes the model's topic when its score reaches
  ``understanding.topic_threshold``.
* Never ask twice: a message may already answer a later ``ask_once`` question (an age with its unit, a label or
  synonym of three words or more such as "je suis sa mère", any synonym for the topic, or the model's topic);
  the engine then skips it. Shorter phrases ("mon frère") say too little about who is writing. A free-text question
  ("En quelques mots, que se passe-t-il ?") is answered by a story: a message of at least ``STORY_WORDS`` words that
  gives the topic in its own words (a synonym or the model, not a button), in advance or at the topic question
  itself ("on a mis mes photos sur un groupe snap"); "harcèlement" alone says what, not what happens.
* Listeners read how: ``synonym:chantage`` → "mot-clé « chantage »", ``model:0.82`` → "modèle 0,82".

Pure, like the engine that uses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.flows import text
from gateway.flows.model import Flow, Step
from gateway.flows.reading import Reading

STORY_WORDS = 6
"""Words a message needs, besides giving the topic, to be the story a free-text ``ask_once`` question asks for."""

Found = tuple[str, str]
"""A value and how it was understood: ``button``, ``typed``, ``synonym:WORDS``, ``model:SCORE``, ``earlier:…``."""


class Understood:
    """One flow's topic question and ``ask_once`` questions, with their compiled options (per step id)."""

    def __init__(self, flow: Flow, options: Mapping[str, tuple[text.Option, ...]], skip_value: str) -> None:
        self.flow = flow
        self._options = {sid: tuple(o for o in opts if o.value != skip_value) for sid, opts in options.items()}
        self.topic_question = topic_question(flow)
        ask_once = flow.understanding.ask_once if flow.understanding else []
        self._ask_once = {sid: step for sid, step in flow.steps.items() if sid in options and step.store in ask_once}

    def topic(self, message: str, reading: Reading | None) -> Found | None:
        """The topic ``message`` gives at the topic question: a synonym, else the model's topic."""
        if self.topic_question is None:
            return None
        found = text.find_option(text.normalize(message), self._options[self.topic_question])
        return found or self.model_topic(self.topic_question, reading)

    def model_topic(self, step_id: str, reading: Reading | None) -> Found | None:
        """At the topic question, the model's topic when its score reaches the flow's threshold."""
        understanding = self.flow.understanding
        if reading is None or understanding is None or step_id != self.topic_question or reading.topic is None:
            return None
        values = {o.value for o in self._options[step_id]}
        if reading.topic in values and reading.topic_score >= understanding.topic_threshold:
            return reading.topic, f"model:{reading.topic_score:.2f}"
        return None

    def in_advance(
        self,
        message: str,
        reading: Reading | None,
        known: Mapping[str, str],
        answering: str | None,
        told_topic: bool = False,
    ) -> dict[str, Found]:
        """Answers ``message`` gives to ``ask_once`` fields not ``known`` yet, other than the one ``answering``.
        ``told_topic``: the message answered the topic question in its own words (a synonym or the model)."""
        found: dict[str, Found] = {}
        norm: str | None = None  # the message normalised once, when a question with choices asks for it
        for sid, step in self._ask_once.items():
            name = step.store
            if name is None or name == answering or name in known or name in found or step.text is not None:
                continue
            if step.choices is not None and step.number is None and norm is None:
                norm = text.normalize(message)
            given = self._in_passing(sid, step, message, norm or "", reading)
            if given is not None:
                found[name] = given
        topic = self.flow.steps[self.topic_question].store if self.topic_question else None
        if told_topic or (topic is not None and topic in found):
            found.update(self._story(message, known, answering, found))
        return found

    def _story(
        self, message: str, known: Mapping[str, str], answering: str | None, found: Mapping[str, Found]
    ) -> dict[str, Found]:
        """The free-text ``ask_once`` questions ``message`` answers as a story (it gave the topic): its words, cut
        to the question's length, when it has at least ``STORY_WORDS``."""
        words = message.split()
        if len(words) < STORY_WORDS:
            return {}
        story: dict[str, Found] = {}
        for step in self._ask_once.values():
            name = step.store
            if step.text is None or name is None or name == answering or name in known or name in found:
                continue
            story[name] = (" ".join(words)[: step.text.max_length], "typed")
        return story

    def _in_passing(self, sid: str, step: Step, message: str, norm: str, reading: Reading | None) -> Found | None:
        if step.number is not None:
            age = text.mention_age(message)
            return (str(age), "typed") if age is not None and step.number.min <= age <= step.number.max else None
        if step.choices is None:
            return None
        words = 1 if sid == self.topic_question else 3
        return text.find_option(norm, self._options[sid], words) or self.model_topic(sid, reading)


def topic_question(flow: Flow) -> str | None:
    """The question whose free-text answers the model's topic may answer: flows.yaml's ``topic_question``, else the
    one that stores 'topic' with choices; None without understanding or such a question."""
    if flow.understanding is None:
        return None
    if flow.understanding.topic_question is not None:
        return flow.understanding.topic_question
    return next((sid for sid, s in flow.steps.items() if s.store == "topic" and s.choices), None)


HOW: dict[str, dict[str, str]] = {
    "fr": {"button": "bouton", "typed": "écrit", "synonym": "mot-clé « {} »", "model": "modèle {}",
           "earlier": "message précédent", "interrupt": "alerte « {} »"},
    "en": {"button": "button", "typed": "typed", "synonym": "keyword “{}”", "model": "model {}",
           "earlier": "earlier message", "interrupt": "alert “{}”"},
}  # fmt: skip
"""How a field was understood, in the listeners' language (English for any other)."""


def describe_how(how: str, language: str) -> str:
    """``synonym:chantage`` → ``mot-clé « chantage »``; ``interrupt:sextortion`` → ``alerte « sextortion »`` (an
    interrupt's ``store``); ``earlier:model:0.82`` → ``message précédent, modèle 0,82``;
    ``button`` or ``typed`` → ``""`` (chosen as asked: nothing worth saying)."""
    words = HOW.get(language, HOW["en"])
    kind, _, rest = how.partition(":")
    if kind == "earlier":
        inner = describe_how(rest, language)
        return words["earlier"] + (f", {inner}" if inner else "")
    if kind in ("button", "typed"):
        return ""
    if kind == "model" and language == "fr":
        rest = rest.replace(".", ",")
    return words.get(kind, kind).format(rest)
