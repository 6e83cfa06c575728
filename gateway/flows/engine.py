"""The conversation engine: (flow, state, inbound text, now) → (new state, replies, outcome).

Pure and deterministic: no I/O, no clock (``now`` is given), no aiohttp, no store. An :class:`Engine` is built
once per loaded flow (it normalises every choice, synonym and interrupt phrase up front), then serves every
conversation pinned to that flow version. The lifecycle statuses are applied by the caller through
``lifecycle.transition`` from the :class:`Outcome` returned here.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.flows import hours, keywords, text
from gateway.flows.after_end import AfterEndWords
from gateway.flows.greeting import GREETING_EMOJI, only_greets
from gateway.flows.model import DEFAULT_MESSAGES, Branch, LocalText, Step
from gateway.flows.model import Outcome as OutcomeSpec
from gateway.flows.positions import LoadedFlow
from gateway.flows.privacy import ErasureWords
from gateway.flows.reading import Reading, Risk
from gateway.flows.risk import Assessor, Decision, Flag, Raise, rank
from gateway.flows.rules import Context
from gateway.flows.understood import Understood, describe_how
from gateway.flows.written import Written
from gateway.messages import Choice, Reply

UNKNOWN = "unknown"
ROUTE = "route"
MAX_CHAIN = 200  # say-only steps followed in one turn; checks forbid say-only cycles, this is the seatbelt

PREFER_NOT_TO_SAY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "fr": ("je prefere ne pas dire", "je prefere pas", "je ne sais pas", "sais pas", "jsp", "passer", "pas envie"),
    "en": ("prefer not", "rather not", "i don t know", "dont know", "not sure", "skip", "pass"),
}

OutcomeKind = Literal["handoff", "referred", "ended", "closed"]
# The closed-line message is told once a conversation: at its hand-off it is told in full again only when it says
# something else than when it was told (another queue's hours, "demain" become "aujourd'hui" past midnight, a
# reloaded flow) or when it was told this long ago; else the optional short reminder ``closed_line_again`` (or
# nothing) stands in for it. The route's own words and referrals are given whatever was told.
CLOSED_LINE_AGAIN_AFTER = timedelta(hours=1)

RESTART = re.compile(r"/start(@\w+)?(\s+\S+)?", re.IGNORECASE)
"""A messenger's "start" command (Telegram's START button, "Restart bot", a deep link ``/start <code>``): no answer."""


_STATE_REQUIRED = ("flow_version", "channel", "language")


@dataclass(frozen=True, slots=True)
class State:
    """Where one conversation stands in the bot. JSON-able through :meth:`to_dict`."""

    flow_version: str
    channel: str
    language: str
    step: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 0
    offer: str | None = None  # queue offered after a referral, waiting for yes/no
    offer_route: str | None = None
    offer_partners: tuple[str, ...] = ()
    finished: bool = False
    how: Mapping[str, str] = field(default_factory=dict)
    """How each field was understood: ``button``, ``typed``, ``synonym:WORDS``, ``model:SCORE``, ``earlier:…``,
    ``interrupt:NAME`` (an interrupt's ``store``)."""
    noted: Mapping[str, str] = field(default_factory=dict)
    """Answers an earlier message already gave (``ask_once``), stored when the bot reaches their question."""
    closed_told: str | None = None
    """The closed-line message last told in full: a digest of its text, then when (ISO 8601), ``digest@time``."""
    again: int = 0
    """Questions asked again though answered already (a branch back to one): past the retries, a human takes over."""
    unsure: bool = False
    """The language is the flow's first only because the channel told none: until the young person chooses one,
    each message's words may tell it (``gateway/flows/written.py``)."""
    greeted: bool = False
    """A greeting alone was answered at the question waiting (:meth:`Engine._greeting`): a second one there counts
    as a wrong answer, so that a young person who only greets still reaches a human past the retries."""

    def to_dict(self) -> dict[str, Any]:
        """The fields at their default (no step, no offer, nothing noted…) are left out: it is stored in every
        conversation record, and :meth:`from_dict` gives them back (states written with them read as well)."""
        data = {name: getattr(self, name) for name in self.__slots__}
        for name in ("fields", "how", "noted"):
            data[name] = dict(getattr(self, name))
        data["offer_partners"] = list(self.offer_partners)
        return {k: v for k, v in data.items() if k in _STATE_REQUIRED or v not in (None, 0, [], {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> State:
        values = {k: v for k, v in data.items() if k in cls.__slots__}
        for name in ("fields", "how", "noted"):
            values[name] = dict(values.get(name) or {})
        values["offer_partners"] = tuple(values.get("offer_partners") or ())
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where the bot's part ended. ``route`` names the rule, interrupt or ``fallback`` that decided it."""

    kind: OutcomeKind
    route: str
    queue: str | None = None
    priority: str | None = None
    partners: tuple[str, ...] = ()
    summary: tuple[tuple[str, str], ...] = ()
    flag: Flag | None = None
    """The risk (or interrupt) that decided, and how it was found; None for a rule or the fallback."""


@dataclass(frozen=True, slots=True)
class StepResult:
    state: State
    replies: tuple[Reply, ...]
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class _Question:
    options: tuple[text.Option, ...]
    choices: dict[str, tuple[Choice, ...]]  # per language, as shown
    labels: dict[str, dict[str, str]]  # language → value → label


class Engine:
    """One loaded flow, ready to run conversations."""

    def __init__(self, loaded: LoadedFlow) -> None:
        self.loaded = loaded
        self.flow = loaded.flow
        self.version = loaded.version
        self.tz = ZoneInfo(self.flow.timezone)
        self._questions = {sid: self._compile(step) for sid, step in self.flow.steps.items() if step.ask}
        self.assessor = Assessor(self.flow)
        self.understood = Understood(self.flow, {sid: q.options for sid, q in self._questions.items()}, UNKNOWN)
        self._offer = self._compile_offer()
        self._buttons = _buttons((*self._questions.values(), self._offer))
        self._field_labels = self._compile_field_labels()
        self.erasure = ErasureWords(self.flow.erasure) if self.flow.erasure is not None else None
        self.after_end = AfterEndWords(self.flow.after_end) if self.flow.after_end is not None else None
        self.written = Written(self.flow)

    # ----- public API -------------------------------------------------------------------------------------

    def start(
        self,
        *,
        channel: str,
        now: datetime,
        language_hint: str | None = None,
        text: str | None = None,
        reading: Reading | None = None,
    ) -> StepResult:
        """Greet and ask the first question; with ``text``, the message that opened the conversation is read too
        (an interrupt, a risk, answers given in advance: ``ask_once``)."""
        language = language_hint if language_hint in self.flow.languages else self.flow.default_language
        state = State(flow_version=self.version, channel=channel, language=language, unsure=language != language_hint)
        if text is not None:
            state = self._note(self._written_in(state, text), text, reading, None)
        result = self._closed_at_start(self._run_from(self.flow.start, state, [], now), now)
        if text is None:
            return result
        interrupted = self.interrupt(result.state, text, now=now, reading=reading)
        if interrupted is None:
            return self._thanked(result) if state.noted else result
        return StepResult(interrupted.state, result.replies + interrupted.replies, interrupted.outcome)

    def _written_in(self, state: State, words: str) -> State:
        """``state`` in the language ``words`` are written in, while no one told it (``State.unsure``)."""
        guessed = self.written.guess(words) if state.unsure else None
        return replace(state, language=guessed) if guessed is not None else state

    def _thanked(self, result: StepResult) -> StepResult:
        """An opening message that answered a later question ("on m'a piraté mon compte insta" on Messenger) is
        thanked just before the first question, as at a question (``noted_for_later``, when the flow has it)."""
        if result.outcome is not None or result.state.step is None or "noted_for_later" not in self.flow.messages:
            return result
        thanks = Reply(self.message("noted_for_later", result.state.language))
        return replace(result, replies=(*result.replies[:-1], thanks, result.replies[-1]))

    def step(
        self,
        state: State,
        answer: str,
        *,
        now: datetime,
        payload: str | None = None,
        reading: Reading | None = None,
        media: bool = False,
    ) -> StepResult:
        """Answer the step ``state`` waits at. ``reading``: what the model read in ``answer``, if it ran.
        ``media``: the message came with a file (a voice message, a photo, a video) the bot cannot read; without
        words, the bot says so (``media_unread``) rather than "not understood", and asks again."""
        if state.finished or (state.step is None and state.offer is None):
            return StepResult(state, ())
        state = self._written_in(state, answer)
        if reading is not None and self._chosen_as_shown(state, answer, payload):
            reading = None  # a button or a label typed as shown: the bot's words, nothing for the model to read
        interrupted = self.interrupt(state, answer, now=now, reading=reading)
        if interrupted is not None:
            return interrupted
        if payload is None and RESTART.fullmatch(answer.strip()) and self._waiting_known(state):
            # Telegram's START button, "Restart bot" or a deep link in the middle of the conversation: no answer,
            # and no retry used ("Je n'ai pas bien compris" took one, the fallback a second): the question again
            asked = self._offer_reply(state.language) if state.offer is not None else self._ask_waiting(state)
            return StepResult(state, (asked,))
        earlier = self._earlier_question(state, payload)
        if earlier is not None and payload is not None:
            return self._answered_again(state, earlier, payload, now)
        if state.offer is not None:
            if state.offer not in self.flow.queues:  # a reloaded flow dropped the queue: a human decides
                return self._fallback(state, [], now)
            return self._answer_offer(state, answer, payload, now, media)
        if state.step not in self._questions:  # a reloaded flow dropped or changed the step
            return self._fallback(state, [], now)
        return self._answer(state, answer, payload, reading, now, media)

    def interrupt(
        self, state: State, answer: str, *, now: datetime, reading: Reading | None = None
    ) -> StepResult | None:
        """The outcome of an interrupt phrase or a risk read by the model in ``answer``, or None.

        ``step`` checks it on every answer. An interrupt that hands off (or a risk) wins over one that ends: a
        message both risky and an ending phrase is risky.
        """
        if state.finished:
            return None
        return self._apply(self.decide(answer, reading), state, now)

    def _chosen_as_shown(self, state: State, answer: str, payload: str | None) -> bool:
        question = self._offer if state.offer is not None else self._questions.get(state.step or "")
        found = text.match_option_how(answer, payload, question.options) if question else None
        return found is not None and found[1] in ("button", "typed")

    def pressed(self, answer: str, payload: str | None) -> bool:
        """True when a message is one of this flow's buttons as shown: its payload a choice's value and its text
        that choice's label (or nothing). The bot's words, not the young person's: nothing for the model to read.
        A label typed (no payload) is the young person's message, and so is a payload with other words."""
        if payload is None or payload not in self._buttons:
            return False
        norm = text.normalize(answer)
        return not norm or norm in self._buttons[payload]

    def decide(self, text: str, reading: Reading | None = None) -> Decision:
        """What ``text`` (and the model's ``reading`` of it) would do at a question: raise, end, or nothing."""
        return self.assessor.decide(text, reading)

    def ends_alone(self, text: str) -> bool:
        """Whether ``text`` is essentially an ending interrupt's phrase (``Assessor.ends_alone``): nothing decided."""
        return self.assessor.ends_alone(text)

    def canonical(self, text: str) -> str:
        """``keywords.canonical(text)``, made once for a message decided just before (``Assessor.canonical``)."""
        return self.assessor.canonical(text)

    def escalate(
        self, priority: str | None, text: str, reading: Reading | None = None, given: tuple[str, ...] = (),
        closed: bool = False,
    ) -> Raise | None:  # fmt: skip
        """While queued or with a listener: the priority and partners a message raises (never lowers), or None;
        ``closed``: its queue is closed now (the interrupt's ``say_closed`` is said)."""
        return self.assessor.escalate(priority, text, reading, given, closed)

    def topic_of(self, message: str, reading: Reading | None = None) -> tuple[str, str] | None:
        """The topic ``text`` gives at the topic question (a synonym, else the model's topic from its threshold),
        with how it was understood; None when there is no topic question or no topic."""
        return self.understood.topic(message, reading)

    def _apply(self, decision: Decision, state: State, now: datetime) -> StepResult | None:
        if decision.raised is not None:
            flag = decision.raised.flag
            state, store = self._stored_by(state, decision.raised.store), decision.raised.store
            result = self._outcome(decision.raised.then, flag.route, state, [], now, risky=True)
            if result.outcome is None:
                return result
            # an answer the young person gave keeps its place on the card, the interrupt's alert beside it: until
            # 2026-12-05 a sextortion after "cyberharcèlement" read "Sujet : Cyberharcèlement" and nothing more
            summary = tuple(self.alerted(result.outcome.summary, store))
            return replace(result, outcome=replace(result.outcome, flag=flag, summary=summary))
        if decision.ending is not None:
            name, then = decision.ending
            return self._outcome(then, name, state, [], now)
        return None

    def _stored_by(self, state: State, store: tuple[tuple[str, str, str], ...]) -> State:
        """The answers the interrupts that raised give (``store: {topic: sextortion}``), for the listener's card and
        the figures: never over an answer the young person gave."""
        given = {name: (value, f"interrupt:{by}") for name, value, by in store if name not in state.fields}
        if not given:
            return state
        fields = {**state.fields, **{name: value for name, (value, _) in given.items()}}
        return replace(state, fields=fields, how={**state.how, **{name: how for name, (_, how) in given.items()}})

    def noted_by(self, state: State, store: tuple[tuple[str, str, str], ...]) -> State:
        """The answers an interrupt read late gives (``store: {topic: sextortion}``) while the bot goes on: noted as
        an earlier message's (``ask_once``), so that its question is not asked and the listener's card reads them
        at the hand-off; over what the same or an earlier message's words gave (the interrupt's wins, as inline),
        never over an answer given at its question."""
        given = {name: (value, f"interrupt:{by}") for name, value, by in store if name not in state.fields}
        if not given:
            return state
        noted = {**state.noted, **{name: value for name, (value, _) in given.items()}}
        return replace(state, noted=noted, how={**state.how, **{name: how for name, (_, how) in given.items()}})

    def is_open(self, name: str, now: datetime) -> bool:
        """Whether queue or partner ``name`` is open at ``now``."""
        target = self.flow.queues.get(name) or self.flow.partners.get(name)
        schedule_name = target.schedule if target else name
        schedule = self.flow.schedules.get(schedule_name)
        if schedule is None:  # the built-in 'always'
            return True
        return hours.is_open(schedule, now, self.tz)

    def message(self, key: str, language: str, **values: object) -> str:
        """A system message from ``messages`` in ``language``, placeholders filled (an optional one missing there:
        its default, ``DEFAULT_MESSAGES``)."""
        local = self.flow.messages.get(key) or DEFAULT_MESSAGES[key]
        return fill(self.text(local, language), values)

    def text(self, local: LocalText, language: str) -> str:
        return local.get(language) or local.get(self.flow.default_language) or next(iter(local.values()), "")

    def summary(self, state: State) -> tuple[tuple[str, str], ...]:
        """The gathered fields as (label, value) pairs, in the flow's default language (the listeners'). A field an
        earlier message gave whose question was not reached (an urgent route, an interrupt) is shown too, as from
        an earlier message: a listener choosing whom to take reads "Sujet" on the card."""
        values = {**state.noted, **state.fields}
        hows = {n: state.how.get(n) if n in state.fields else "earlier:" + state.how.get(n, "typed") for n in values}
        names = self.flow.summary or list(values)
        return tuple(
            (self._field_labels.get(n, n), self._shown(n, values[n], hows.get(n))) for n in names if n in values
        )

    def alerted(
        self, summary: Sequence[tuple[str, str]], store: tuple[tuple[str, str, str], ...]
    ) -> list[tuple[str, str]]:
        """``summary`` (a conversation's card) with the answers an interrupt read after the bot's part gives
        (``Interrupt.store``), each with its alert: "Cyberharcèlement · Chantage, sextorsion (alerte « sextortion »)",
        beside the young person's own answer, never over it; nothing when the card says it already."""
        pairs = list(summary)
        order = list(self.flow.summary or [])
        for name, value, by in store:
            label, shown = self._field_labels.get(name, name), self._shown(name, value, f"interrupt:{by}")
            at = next((i for i, (known, _) in enumerate(pairs) if known == label), None)
            if at is not None:
                if not pairs[at][1].startswith(self.display_value(name, value)) and shown not in pairs[at][1]:
                    pairs[at] = (label, f"{pairs[at][1]} · {shown}")
                continue
            later = {self._field_labels.get(n, n) for n in order[order.index(name) + 1 :]} if name in order else set()
            at = next((i for i, (known, _) in enumerate(pairs) if known in later), len(pairs))
            pairs.insert(at, (label, shown))
        return pairs

    def _shown(self, field_name: str, value: str, how: str | None) -> str:
        """The value as listeners read it, with how it was understood when the young person did not choose it as
        asked: a synonym, the model with its score, an earlier message."""
        shown = self.display_value(field_name, value)
        described = describe_how(how, self.flow.default_language) if how else ""
        return f"{shown} ({described})" if described else shown

    def display_value(self, field_name: str, value: str) -> str:
        lang = self.flow.default_language
        for sid, question in self._questions.items():
            if self.flow.steps[sid].store == field_name and value in question.labels[lang]:
                return question.labels[lang][value]
        return value

    def current_question(self, state: State) -> tuple[Reply, ...]:
        """The question a conversation waits at, to ask again (reminders, a reconnecting web chat)."""
        if state.offer is not None:
            return (self._offer_reply(state.language),)
        if state.step is None or state.step not in self._questions:
            return ()
        return (self._ask(state.step, state.language),)

    # ----- running steps ----------------------------------------------------------------------------------

    def _run_from(self, step_id: str, state: State, replies: list[Reply], now: datetime) -> StepResult:
        for _ in range(MAX_CHAIN):
            if step_id == ROUTE:
                return self._route(state, replies, now)
            step = self.flow.steps[step_id]
            replies.extend(Reply(self.text(t, state.language)) for t in step.say)
            noted = state.noted.get(step.store or "")
            if step.ask is not None and noted is not None and step.store not in state.fields:
                state = self._store(state, step, noted, "earlier:" + state.how.get(step.store or "", "typed"))
            elif step.ask is not None:
                again = state.again + (step.store is not None and step.store in state.fields)
                if again > self.flow.retries:  # a branch back to an answered question: the same answer loops
                    return self._fallback(state, replies, now)
                replies.append(self._ask(step_id, state.language))
                return StepResult(replace(state, step=step_id, attempts=0, again=again, greeted=False), tuple(replies))
            step_id = self._next(step, state, now)
        return self._fallback(state, replies, now)

    def _waiting_known(self, state: State) -> bool:
        """Whether what ``state`` waits for is in this flow (a reloaded flow may have dropped its step or queue)."""
        return state.offer in self.flow.queues if state.offer is not None else state.step in self._questions

    def _ask_waiting(self, state: State) -> Reply:
        assert state.step is not None
        return self._ask(state.step, state.language)

    def _answer(
        self, state: State, answer: str, payload: str | None, reading: Reading | None, now: datetime, media: bool
    ) -> StepResult:
        assert state.step is not None
        step = self.flow.steps[state.step]
        understood = self._understand(state.step, step, answer, payload, reading)
        if understood is None:  # what it says to later questions is kept all the same (never ask twice)
            gives = self.understood.in_advance(answer, reading, state.fields, step.store)
            state = self._note(state, answer, reading, step.store)
            greeting = payload is None and not media and not gives and _greeting(answer)
            if greeting and not state.greeted:  # "Bonjour" at the first question: no wrong answer, asked again
                asked = (Reply(self.message("greeted", state.language)), self._ask_waiting(state))
                return StepResult(replace(state, greeted=True), asked)
            media = self._media_only(answer, payload, media)
            return self._not_understood(state, step, now, media, bool(gives), greeting)
        told = state.step == self.understood.topic_question and understood[1].startswith(("synonym:", "model:"))
        state = self._note(state, answer, reading, step.store, told_topic=told)
        state = replace(self._store(state, step, *understood), attempts=0)
        return self._run_from(self._next(step, state, now), state, [], now)

    def _earlier_question(self, state: State, payload: str | None) -> str | None:
        """The question answered earlier that ``payload`` changes the answer to, when the one waiting has no such
        button: a keyboard under an older message, which Telegram keeps tappable ("Oui, maintenant" under the danger
        question, tapped later on). None for any other message."""
        waiting = self._offer if state.offer is not None else self._questions.get(state.step or "")
        if payload is None or payload == UNKNOWN or waiting is None:
            return None
        if any(option.value == payload for option in waiting.options):
            return None
        for step_id, question in self._questions.items():
            stored = self.flow.steps[step_id].store
            answered = bool(stored) and state.fields.get(stored or "") not in (None, payload)
            if answered and any(option.value == payload for option in question.options):
                return step_id
        return None

    def _answered_again(self, state: State, step_id: str, payload: str, now: datetime) -> StepResult:
        """``step_id`` answered ``payload`` now, and the flow goes on from it (its next question, or the route)."""
        step = self.flow.steps[step_id]
        state = replace(self._store(state, step, payload, "button"), attempts=0, offer=None, offer_route=None,
                        offer_partners=())  # fmt: skip
        return self._run_from(self._next(step, state, now), state, [], now)

    def _store(self, state: State, step: Step, value: str, how: str) -> State:
        if not step.store:
            return state
        fields, hows = {**state.fields, step.store: value}, {**state.how, step.store: how}
        if step.store == "language" and value in self.flow.languages:  # chosen: no longer read from the words
            return replace(state, fields=fields, how=hows, language=value, unsure=False)
        return replace(state, fields=fields, how=hows)

    def _understand(
        self, step_id: str, step: Step, answer: str, payload: str | None, reading: Reading | None
    ) -> tuple[str, str] | None:
        """The value an answer gives, and how it was understood."""
        question = self._questions[step_id]
        if step.choices is not None:
            found = text.match_option_how(answer, payload, question.options)
            return found or self.understood.model_topic(step_id, reading)
        skip = question.options[0]  # number and text questions offer only "prefer not to say"
        norm = text.normalize(answer)
        if payload == skip.value:
            return skip.value, "button"
        if norm in skip.exact:
            return skip.value, "typed"
        if step.number is not None:
            number = text.parse_number(answer)
            if number is None:
                return (skip.value, "typed") if any(text.contains(norm, p) for p in skip.phrases) else None
            return (str(number), "typed") if step.number.min <= number <= step.number.max else None
        assert step.text is not None
        cleaned = " ".join(answer.split())
        return (cleaned[: step.text.max_length], "typed") if cleaned else None

    def _note(
        self, state: State, answer: str, reading: Reading | None, answering: str | None, told_topic: bool = False
    ) -> State:
        """Keep the answers ``answer`` gives in advance to ``ask_once`` questions (never ask twice); ``told_topic``:
        it answered the topic question in its own words (then it may be the story a free-text question asks for)."""
        known = {**state.fields, **state.noted}
        found = self.understood.in_advance(answer, reading, known, answering, told_topic)
        if not found:
            return state
        noted = {**state.noted, **{name: value for name, (value, _) in found.items()}}
        hows = {**state.how, **{name: how for name, (_, how) in found.items()}}
        return replace(state, noted=noted, how=hows)

    def _not_understood(
        self, state: State, step: Step, now: datetime, media: bool, kept: bool = False, greeting: bool = False
    ) -> StepResult:
        """Asked again, with why (a file it cannot read; thanks for an answer to a later question, ``kept``: "on a
        mis mes photos sur un groupe snap" at the danger question; else the step's retry or "not understood"); past
        the step's retries, to a human (the fallback): a young person who can only send voice messages, or who
        tells their story at every question, reaches one."""
        limit = self.flow.retries if step.retries is None else step.retries
        if state.attempts >= limit:
            return self._fallback(state, [], now)
        assert state.step is not None
        if media:
            sorry = self.message("media_unread", state.language)
        elif greeting:
            sorry = self.message("greeted", state.language)
        elif kept and "noted_for_later" in self.flow.messages:
            sorry = self.message("noted_for_later", state.language)
        elif step.retry:
            sorry = self.text(step.retry, state.language)
        else:
            sorry = self.message("not_understood", state.language)
        replies = (Reply(sorry), self._ask(state.step, state.language))
        return StepResult(replace(state, attempts=state.attempts + 1), replies)

    def _next(self, step: Step, state: State, now: datetime) -> str:
        if isinstance(step.next, str):
            return step.next
        branches: list[Branch] = step.next or []
        ctx = self._context(state, now)
        for branch in branches:
            if branch.when.evaluate(ctx):
                return branch.goto
        return ROUTE

    def _context(self, state: State, now: datetime) -> Context:
        return Context(state.fields, state.channel, state.language, lambda name: self.is_open(name, now))

    # ----- outcomes ---------------------------------------------------------------------------------------

    def _route(self, state: State, replies: list[Reply], now: datetime) -> StepResult:
        ctx = self._context(state, now)
        for index, rule in enumerate(self.flow.routing, start=1):
            if rule.when.evaluate(ctx):
                return self._outcome(rule.then, rule.name or f"rule {index}", state, replies, now)
        return self._fallback(state, replies, now)

    def handover(self, state: State, now: datetime, risk: str | None = None) -> StepResult:
        """The bot's part ended by a human of the line answering from outside the gateway (a page admin in Meta's
        inbox): the hand-off the routing gives the answers gathered so far, to the listeners, whatever its queue's
        hours, nothing said (the human spoke). A rule that hands off gives its queue and priority; one that offers a
        listener (or an offer waiting for its yes) its queue at "normal", as a yes would; one that only refers or
        ends, or none, the fallback's: never ended. Its referrals are not given (the human and the listener decide).
        ``risk``: the class of a risk read in the young person's words while the bot went on (its interrupt could not
        hand off: the line closed): never below the priority its interrupt hands off at."""
        fallback = (self.flow.fallback.queue, self.flow.fallback.priority)
        if state.offer is not None and state.offer in self.flow.queues:
            route, (queue, priority) = state.offer_route or "offer", (state.offer, "normal")
        else:
            ctx = self._context(state, now)
            found = next(((i, r) for i, r in enumerate(self.flow.routing, start=1) if r.when.evaluate(ctx)), None)
            if found is None:
                route, (queue, priority) = "fallback", fallback
            else:
                index, rule = found
                route, then = rule.name or f"rule {index}", rule.then
                if then.handoff is not None:
                    queue, priority = then.handoff, then.priority
                elif then.offer_listener is not None:
                    queue, priority = then.offer_listener, "normal"
                else:  # it refers or ends: a human answered, a listener follows
                    route, (queue, priority) = "fallback", fallback
        read = self.assessor.rules.get(Risk(risk)) if risk is not None and risk in set(Risk) else None
        raises = self.flow.interrupts[read.interrupt].then if read is not None and read.interrupt else None
        raises = raises or (read.then if read is not None else None)
        if raises is not None and raises.handoff is not None and rank(raises.priority) < rank(priority):
            priority = raises.priority
        return self._finish(state, [], Outcome("handoff", route, queue, priority))

    def _fallback(self, state: State, replies: list[Reply], now: datetime) -> StepResult:
        spec = OutcomeSpec(handoff=self.flow.fallback.queue, priority=self.flow.fallback.priority)
        return self._outcome(spec, "fallback", state, replies, now)

    def _outcome(
        self, spec: OutcomeSpec, route: str, state: State, replies: list[Reply], now: datetime, risky: bool = False
    ) -> StepResult:
        """``risky``: a risk read in the young person's words decided it (an urgent outcome is taken as one too)."""
        lang = state.language
        partners = tuple(spec.refer)
        if spec.handoff and not self.is_open(spec.handoff, now):
            said = spec.say if spec.say_closed is None else spec.say_closed
            replies.extend(Reply(self.text(t, lang)) for t in said)
            state, notice = self._closed_notice(state, spec.handoff, now, risky or spec.priority == "urgent")
            replies.extend(notice)
            replies.extend(self._partner_replies(partners, lang))
            return self._finish(state, replies, Outcome("closed", route, spec.handoff, None, partners))
        replies.extend(Reply(self.text(t, lang)) for t in spec.say)
        replies.extend(self._partner_replies(partners, lang))
        if spec.handoff:
            outcome = Outcome("handoff", route, spec.handoff, spec.priority, partners)
            return self._finish(state, replies, outcome)
        if spec.offer_listener and self.is_open(spec.offer_listener, now):
            replies.append(self._offer_reply(lang))
            waiting = replace(state, step=None, offer=spec.offer_listener, offer_route=route, offer_partners=partners)
            return StepResult(waiting, tuple(replies))
        kind: OutcomeKind = "referred" if partners else "ended"
        return self._finish(state, replies, Outcome(kind, route, partners=partners))

    def _finish(self, state: State, replies: list[Reply], outcome: Outcome) -> StepResult:
        done = replace(state, step=None, offer=None, finished=True)
        return StepResult(done, tuple(replies), replace(outcome, summary=self.summary(state)))

    def _answer_offer(self, state: State, answer: str, payload: str | None, now: datetime, media: bool) -> StepResult:
        value = text.match_option(answer, payload, self._offer.options)
        route, partners = state.offer_route or "offer", state.offer_partners
        if value == "yes" and state.offer:
            spec = OutcomeSpec(handoff=state.offer, priority="normal", refer=[])
            result = self._outcome(spec, route, state, [], now)
            assert result.outcome is not None
            return replace(result, outcome=replace(result.outcome, partners=partners))
        if value in ("no", UNKNOWN):
            return self._finish(state, [], Outcome("referred", route, partners=partners))
        unread = self._media_only(answer, payload, media)
        sorry = Reply(self.message("media_unread" if unread else "not_understood", state.language))
        return StepResult(state, (sorry, self._offer_reply(state.language)))

    def _media_only(self, answer: str, payload: str | None, media: bool) -> bool:
        """A file without words (a voice message, a photo), and a flow that says so (``media_unread``: optional)."""
        return media and not answer.strip() and payload is None and "media_unread" in self.flow.messages

    def next_change(self, queue: str, now: datetime) -> datetime | None:
        """When ``queue`` next opens (closed at ``now``) or closes (open), within two weeks; None for a queue always
        open (the built-in 'always' schedule) or unknown. The console's queue says a line closed and reloads then."""
        spec = self.flow.queues.get(queue)
        schedule = self.flow.schedules.get(spec.schedule) if spec is not None else None
        if schedule is None:
            return None
        return hours.next_change(schedule, now, self.tz)

    def reopening(self, queue: str, now: datetime, language: str) -> str:
        """When ``queue``, closed at ``now``, opens next, in words as the closed-line message says it ("demain à 9h");
        empty when it is open, always open, unknown, or does not open within the horizon (``hours.reopening``)."""
        spec = self.flow.queues.get(queue)
        schedule = self.flow.schedules.get(spec.schedule) if spec is not None else None
        return hours.reopening(schedule, now, self.tz, language) if schedule is not None else ""

    def closing(self, queue: str, language: str, now: datetime, position: int, within: timedelta) -> str | None:
        """The ``queued_closing`` message when ``queue``, open at ``now``, closes within ``within`` (the wait a listener
        would be promised): when it closes, when it reopens, and where to turn meanwhile; else None."""
        spec = self.flow.queues.get(queue)
        schedule = self.flow.schedules.get(spec.schedule) if spec is not None else None
        if schedule is None or not hours.is_open(schedule, now, self.tz):
            return None
        closes = hours.next_change(schedule, now, self.tz, horizon_days=1)
        if closes is None or closes.astimezone(UTC) >= now.astimezone(UTC) + within:
            return None
        reopens = hours.reopening(schedule, closes, self.tz, language) or hours.describe(schedule, language)
        at = hours.clock_time(closes, self.tz, language)
        return self.message("queued_closing", language, position=position, closes=at, reopens=reopens)

    def closed_line(self, queue: str, language: str, now: datetime, key: str = "closed_line") -> str:
        """The closed-line message (or ``key``'s, with the same placeholders), with the queue's opening hours and
        when it opens next."""
        schedule = self.flow.schedules.get(self.flow.queues[queue].schedule)
        described = hours.describe(schedule, language) if schedule else ""
        reopens = hours.reopening(schedule, now, self.tz, language) if schedule else ""
        return self.message(key, language, hours=described, reopens=reopens or described)

    def closed_notice(self, state: State, queue: str, now: datetime, risky: bool = False) -> tuple[State, list[Reply]]:
        """What tells that ``queue`` is closed, as a hand-off to it says it (:meth:`_closed_notice`), and the state
        noting it: for a risk read late while the bot goes on (``Dispatcher._late_handoff``)."""
        return self._closed_notice(state, queue, now, risky)

    def _closed_notice(self, state: State, queue: str, now: datetime, risky: bool = False) -> tuple[State, list[Reply]]:
        """What tells that ``queue`` is closed, and the state noting it: the closed-line message in full, unless
        this conversation was told the very same one less than ``CLOSED_LINE_AGAIN_AFTER`` ago; then the short
        reminder ``closed_line_again`` if the flow has one, else nothing, but after a risk (``risky``) the full
        message again: a flow without the reminder must not leave a young person at risk without the numbers that
        answer now (until 2026-12-02 every night conversation was told it at the greeting and again at its
        hand-off, a few minutes apart)."""
        told = self.closed_line(queue, state.language, now)
        digest = hashlib.blake2b(told.encode(), digest_size=8).hexdigest()
        if _told_since(state.closed_told, digest, now - CLOSED_LINE_AGAIN_AFTER):
            if "closed_line_again" in self.flow.messages:
                return state, [Reply(self.closed_line(queue, state.language, now, "closed_line_again"))]
            if not risky:
                return state, []
        return replace(state, closed_told=f"{digest}@{now.isoformat()}"), [Reply(told)]

    def _closed_at_start(self, result: StepResult, now: datetime) -> StepResult:
        """While the line (the fallback queue) is closed, the greeting says so before the first question: when it
        reopens and who answers now. Nothing is added when the start already ended on the closed line."""
        line = self.flow.fallback.queue
        if result.outcome is not None or line not in self.flow.queues or self.is_open(line, now):
            return result
        state, notice = self._closed_notice(result.state, line, now)
        replies = result.replies
        if result.state.step is not None or result.state.offer is not None:  # the last reply is the question
            return replace(result, state=state, replies=(*replies[:-1], *notice, *replies[-1:]))
        return replace(result, state=state, replies=(*replies, *notice))

    def emergency_replies(self, language: str, given: tuple[str, ...] = ()) -> list[Reply]:
        """The messages of the flow's emergency partners (``emergency: true``) unless ``given`` holds one."""
        return self._partner_replies(self.emergency_partners(given), language)

    def emergency_partners(self, given: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The flow's emergency partners (``emergency: true``), or none when ``given`` holds one already."""
        if any(self.flow.partners[p].emergency for p in given if p in self.flow.partners):
            return ()
        return tuple(name for name, partner in self.flow.partners.items() if partner.emergency)

    def partner_replies(self, partners: tuple[str, ...], language: str) -> list[Reply]:
        """The messages of these partners, in this order."""
        return self._partner_replies(partners, language)

    def _partner_replies(self, partners: tuple[str, ...], language: str) -> list[Reply]:
        return [Reply(self.text(self.flow.partners[p].message, language)) for p in partners]

    # ----- compiling --------------------------------------------------------------------------------------

    def _ask(self, step_id: str, language: str) -> Reply:
        step = self.flow.steps[step_id]
        assert step.ask is not None
        return Reply(self.text(step.ask, language), self._buttons_in(self._questions[step_id], language))

    def _compile(self, step: Step) -> _Question:
        raw: list[tuple[str, LocalText, dict[str, list[str]]]] = [
            (c.value, c.label, c.synonyms) for c in step.choices or []
        ]
        if all(value != UNKNOWN for value, _, _ in raw):
            raw.append((UNKNOWN, self.flow.messages["prefer_not_to_say"], _prefer_synonyms()))
        options = tuple(
            text.make_option(v, label.values(), [s for syn in synonyms.values() for s in syn])
            for v, label, synonyms in raw
        )
        choices = {
            lang: tuple(Choice(v, self.text(label, lang)) for v, label, _ in raw) for lang in self.flow.languages
        }
        labels = {lang: {v: self.text(label, lang) for v, label, _ in raw} for lang in self.flow.languages}
        return _Question(options, choices, labels)

    def _compile_offer(self) -> _Question:
        msgs = self.flow.messages
        raw = [("yes", msgs["offer_yes"]), ("no", msgs["offer_no"])]
        options = tuple(text.make_option(v, label.values(), ()) for v, label in raw)
        choices = {lang: tuple(Choice(v, self.text(lb, lang)) for v, lb in raw) for lang in self.flow.languages}
        return _Question(options, choices, {})

    def _offer_reply(self, language: str) -> Reply:
        return Reply(self.message("offer_listener", language), self._buttons_in(self._offer, language))

    def _buttons_in(self, question: _Question, language: str) -> tuple[Choice, ...]:
        """The question's buttons in ``language``, else in the default one as :meth:`text` does: a conversation begun
        on another instance's or an earlier version's flow may speak a language this one does not have (a rolling
        deploy adding one, its rollback, a restart after one was removed)."""
        return question.choices.get(language) or question.choices[self.flow.default_language]

    def _compile_field_labels(self) -> dict[str, str]:
        lang = self.flow.default_language
        return {name: self.text(f.label, lang) for name, f in self.flow.fields.items()}


def _greeting(answer: str) -> bool:
    """Whether ``answer`` only greets: :data:`GREETING_WORDS` alone (one or a few), or with the usual small talk
    ("salut ça va", "slt cv": :data:`SMALL_TALK`), beside none but :data:`GREETING_EMOJI`."""
    if not only_greets(keywords.canonical(answer)):
        return False
    return all(c in GREETING_EMOJI for c in answer if unicodedata.category(c) == "So")


def _buttons(questions: Iterable[_Question]) -> dict[str, frozenset[str]]:
    """Every button's value → its labels (normalised, every language) across the flow's questions and offer."""
    labels: dict[str, frozenset[str]] = {}
    for question in questions:
        for option in question.options:
            labels[option.value] = labels.get(option.value, frozenset()) | option.exact
    return labels


def _prefer_synonyms() -> dict[str, list[str]]:
    return {lang: list(words) for lang, words in PREFER_NOT_TO_SAY_SYNONYMS.items()}


class _Blank(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: Mapping[str, object]) -> str:
    """Fill ``{placeholders}``; unknown ones stay as written, malformed braces leave the text unchanged."""
    try:
        return string.Formatter().vformat(template, (), _Blank(values))
    except (ValueError, IndexError, KeyError, AttributeError):
        return template


def _told_since(told: str | None, digest: str, since: datetime) -> bool:
    """Whether ``told`` (:attr:`State.closed_told`) is the message of ``digest`` told at ``since`` or later."""
    if not told or "@" not in told:
        return False
    told_digest, _, at = told.partition("@")
    try:
        return told_digest == digest and datetime.fromisoformat(at) >= since
    except (TypeError, ValueError):  # written by hand or by another version: told again rather than never
        return False
