"""The schema of flows.yaml, as typed, frozen pydantic models.

Shape checks live here (unknown keys, types, hours syntax, condition syntax); cross-references and graph checks
(missing steps, unreachable steps, missing translations, rules that never match) live in ``checks.py``.
Conditions are parsed into the small declarative language of ``rules.py``: never Python ``eval``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gateway.flows.after_end import AfterEnd
from gateway.flows.casework import NoticeCategory, Notices, PartnerReferral, Platform, Referrals
from gateway.flows.model_base import LocalText as LocalText
from gateway.flows.model_base import Strict as Strict
from gateway.flows.privacy import Erasure, Retention
from gateway.flows.reading import RISKS, Reading
from gateway.flows.rules import Always, Condition, parse_condition

Priority = Literal["urgent", "high", "normal"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RESERVED_TARGETS = frozenset({"route"})
ALWAYS_SCHEDULE = "always"

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_range(value: Any) -> tuple[int, int]:
    """``"09:00-23:00"`` → minutes (540, 1380); an end at or before the start runs past midnight."""
    if isinstance(value, tuple):
        return value  # already parsed
    if not isinstance(value, str):
        raise ValueError(f"hours must be written like '09:00-23:00', not {value!r}")
    m = _RANGE.match(value)
    if not m:
        raise ValueError(f"bad hours '{value}': write them like '09:00-23:00'")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"bad hours '{value}': hours go from 00:00 to 24:00")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"bad hours '{value}': the range is empty")
    return start, end


TimeRange = Annotated[tuple[int, int], BeforeValidator(_parse_range)]


def _hour_list(value: Any) -> Any:
    """Accept one range as a plain string, or ``closed`` / an empty list for a closed day."""
    if value in ("closed", None):
        return []
    if isinstance(value, str):
        return [value]
    return value


TimeRanges = Annotated[list[TimeRange], BeforeValidator(_hour_list)]


class DatedHours(Strict):
    """A closure or an exceptional opening: one day (``date``) or several (``date`` … ``until``)."""

    date: dt.date
    until: dt.date | None = None
    hours: TimeRanges | None = None  # None: the whole day
    reason: str | None = None

    @model_validator(mode="after")
    def _until_after_date(self) -> DatedHours:
        if self.until is not None and self.until < self.date:
            raise ValueError(f"'until' ({self.until}) is before 'date' ({self.date})")
        return self


class Schedule(Strict):
    always_open: bool = False
    weekly: dict[str, TimeRanges] = Field(default_factory=dict)
    closures: list[DatedHours] = Field(default_factory=list)
    openings: list[DatedHours] = Field(default_factory=list)

    @field_validator("weekly")
    @classmethod
    def _weekday_keys(cls, value: dict[str, list[tuple[int, int]]]) -> dict[str, list[tuple[int, int]]]:
        for key in value:
            if key not in (*WEEKDAYS, "daily"):
                raise ValueError(f"unknown day '{key}': use daily, {', '.join(WEEKDAYS)}")
        return value


class Queue(Strict):
    name: LocalText
    schedule: str = ALWAYS_SCHEDULE
    average_minutes: int = Field(default=15, ge=1, le=600)
    """Average time a listener spends per conversation, for honest wait estimates."""


class Partner(Strict):
    name: LocalText
    phone: str | None = None
    url: str | None = None
    schedule: str = ALWAYS_SCHEDULE
    message: LocalText
    emergency: bool = False
    referral: PartnerReferral | None = None
    """Set for a partner that accepts warm referrals (with the young person's consent)."""


class Choice(Strict):
    value: str
    label: LocalText
    synonyms: dict[str, list[str]] = Field(default_factory=dict)


class NumberSpec(Strict):
    min: int = 0
    max: int = 120

    @model_validator(mode="after")
    def _bounds(self) -> NumberSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class TextSpec(Strict):
    max_length: int = Field(default=1000, ge=1, le=10000)


def _condition(value: Any) -> Condition:
    return parse_condition(value)


ConditionField = Annotated[Condition, BeforeValidator(_condition)]


class Branch(Strict):
    when: ConditionField = Always()
    goto: str


def _texts(value: Any) -> Any:
    """``say`` takes one text or a list of texts."""
    if isinstance(value, dict):
        return [value]
    return value


class Step(Strict):
    say: Annotated[list[LocalText], BeforeValidator(_texts)] = Field(default_factory=list)
    ask: LocalText | None = None
    choices: list[Choice] | None = None
    number: NumberSpec | None = None
    text: TextSpec | None = None
    store: str | None = None
    retries: int | None = Field(default=None, ge=0, le=10)
    retry: LocalText | None = None
    next: str | list[Branch] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("choices", "number", "text") if getattr(self, k) is not None]
        if self.ask is None and kinds:
            raise ValueError(f"'{kinds[0]}' needs a question in 'ask'")
        if self.ask is not None and len(kinds) != 1:
            raise ValueError("a question needs exactly one of 'choices', 'number' or 'text'")
        if self.ask is None and not self.say:
            raise ValueError("a step needs 'say', 'ask' or both")
        if self.choices is not None and not self.choices:
            raise ValueError("'choices' is empty")
        return self


def _partners(value: Any) -> Any:
    return [value] if isinstance(value, str | int) else value


class Outcome(Strict):
    """What happens at the end of the bot's part: hand off, refer, or say something and end."""

    say: Annotated[list[LocalText], BeforeValidator(_texts)] = Field(default_factory=list)
    say_closed: Annotated[list[LocalText], BeforeValidator(_texts)] | None = None
    """With ``handoff``: said instead of ``say`` when that queue is closed, so that a text promising a listener
    ("je te mets en lien avec un·e écoutant·e") is never followed by the closed line. Unset: ``say`` either way."""
    handoff: str | None = None
    priority: Priority = "normal"
    refer: Annotated[list[str], BeforeValidator(_partners)] = Field(default_factory=list)
    offer_listener: str | None = None
    """With ``refer``: also offer a listener of this queue (the young person chooses)."""

    @model_validator(mode="after")
    def _something(self) -> Outcome:
        if not (self.say or self.handoff or self.refer):
            raise ValueError("an outcome needs 'handoff', 'refer' or 'say'")
        if self.say_closed is not None and not self.handoff:
            raise ValueError("'say_closed' is what a hand-off says when its queue is closed: it needs 'handoff'")
        if self.offer_listener and self.handoff:
            raise ValueError("'offer_listener' is for referrals: use 'handoff' alone to hand off")
        return self


class Rule(Strict):
    name: str | None = None
    when: ConditionField = Always()
    then: Outcome


READ_LANGUAGES: tuple[str, ...] = ("ar", "es", "pt", "ru", "tr", "uk")
"""Languages (ISO 639-1) an interrupt's phrases may also be listed under though the bot does not speak them: words of
danger young people in France write in their first language ("quero morrer", "я хочу умереть", "bghit nmout"). They
are read as the others are, and never tell the conversation's language (``written.py`` reads the flow's
``languages`` only): a young person writing them is answered in the language they were answered in."""


class Interrupt(Strict):
    """Phrases checked on every message while the bot talks (see ``keywords.py`` for ``( | )`` and ``*``), by
    language: one of the flow's ``languages``, or one of :data:`READ_LANGUAGES` (read, never spoken)."""

    match: dict[str, list[str]]
    ignore: dict[str, list[str]] = Field(default_factory=dict)
    """False friends ("mort de rire", "je me coupe la frange"): their words never match this interrupt."""
    alone: dict[str, list[str]] = Field(default_factory=dict)
    """Phrases that count only as the whole message ("médocs", "le pont"): too common inside other stories."""
    hyperbole: dict[str, list[str]] = Field(default_factory=dict)
    """Phrases said in jest ("je veux mourir", "kill myself"): set aside like false friends in a message that jokes
    ("mdr", "lol", 😂, 💀…) and does not say it is serious ("pas une blague", "fr"…): ``keywords.jokes``."""
    store: dict[str, str] = Field(default_factory=dict)
    """Answers the interrupt gives when it hands off (``{topic: sextortion}``): stored for the listener's card and
    the figures, unless the young person already answered that question."""
    then: Outcome


class RiskRule(Strict):
    """What a risk class read by the model does: at ``threshold`` or above, the interrupt (or outcome) fires."""

    threshold: float
    interrupt: str | None = None
    third_party: str | None = None
    """The interrupt when the message speaks about someone else ("mon pote veut se suicider")."""
    then: Outcome | None = None

    @model_validator(mode="after")
    def _one_action(self) -> RiskRule:
        if (self.interrupt is None) == (self.then is None):
            raise ValueError("a risk class needs exactly one of 'interrupt' or 'then'")
        return self


class TopicRule(Strict):
    """What a topic read by the model does, at ``threshold`` or above: ``interrupt`` fires, as its phrases would.
    For a topic whose every message calls for at once what an interrupt carries (a sextortion going on: "ne paie
    pas", Pharos, a listener at "high"), said in words its phrases cannot all list."""

    threshold: float
    interrupt: str


class Understanding(Strict):
    """What the engine does with what the embedded model read in a message (``gateway/flows/reading.py``)."""

    risks: dict[str, RiskRule]
    topics: dict[str, TopicRule] = Field(default_factory=dict)
    """Topic value → the interrupt the model's reading of that topic fires (``TopicRule``): may only raise."""
    topic_threshold: float = 0.6
    topic_question: str | None = None
    """The question whose free-text answers the model may understand; default: the one that stores 'topic'."""
    ask_once: list[str] = Field(default_factory=list)
    """Fields an earlier message may already answer: their question is then skipped (never ask twice)."""


class Field_(Strict):
    label: LocalText


class CannedResponse(Strict):
    shortcut: str
    title: LocalText
    text: LocalText


class OutcomeCategory(Strict):
    id: str
    label: LocalText


class Timers(Strict):
    bot_reminder_minutes: int = Field(default=10, ge=1)
    bot_abandon_minutes: int = Field(default=30, ge=1)
    queue_reassurance_minutes: int = Field(default=5, ge=1)
    closed_reminder_minutes: int = Field(default=30, ge=1)  # a message while waiting, closed: the reminder this often
    idle_close_hours: int = Field(default=24, ge=1)


class Fallback(Strict):
    """Where a conversation goes when the bot cannot go on (answers not understood): always a human."""

    queue: str
    priority: Priority = "high"


REQUIRED_MESSAGES: tuple[str, ...] = (
    "not_understood",
    "prefer_not_to_say",
    "closed_line",
    "queued",
    "queued_offline",
    "reassurance",
    "reminder",
    "abandoned",
    "ended",
    "offer_listener",
    "offer_yes",
    "offer_no",
    "listener_joined",
    "idle_closed",
    "rate_limited",
    "blocked",
)
OPTIONAL_MESSAGES: tuple[str, ...] = (
    "media_unread",  # a voice message, photo or video without words at a question (else "not_understood")
    "listener_disconnected",  # the listener left their console: back in line (else DEFAULT_MESSAGES')
    "listener_disconnected_closed",  # the same after the line closed: no listener promised (else DEFAULT_MESSAGES')
    "listener_disconnected_offline",  # the same, open, nobody else at a console: none promised (else DEFAULT_MESSAGES')
    "closed_line_again",  # the closed line told again within the hour at a hand-off: a reminder (else nothing)
    "noted_for_later",  # an answer that is not this question's but answers a later one: thanks (else not_understood)
    "queued_closing",  # queued while the line closes before the wait "queued" would promise (else DEFAULT_MESSAGES')
    "unreachable",  # the web chat page, its line out of reach 30 s: where to turn meanwhile (else DEFAULT_MESSAGES')
    "after_end",  # a thank-you alone just after an ending (``after_end``): the one short reply (else DEFAULT_MESSAGES')
    "greeted",  # a greeting alone at a question ("Bonjour"): a kind word, the question again (else DEFAULT_MESSAGES')
    "after_end_stop",  # "stop" alone just after an ending (``after_end``): the one short reply (else DEFAULT_MESSAGES')
    "reopened",  # the first queue message after the line reopened, the wait told it closed (else DEFAULT_MESSAGES')
    "reopened_offline",  # the same while no listener is online yet: none promised (else DEFAULT_MESSAGES')
)
# What an optional message says when flows.yaml does not (the young person is never left without a word).
DEFAULT_MESSAGES: dict[str, LocalText] = {
    "after_end": {
        "fr": "Avec plaisir. Prends soin de toi 💙 Tu peux nous réécrire : les écoutant·es répondent ici aux heures "
        "d'ouverture du chat. En danger immédiat : 17 ou 112.",
        "en": "You're welcome. Take care of yourself 💙 You can write to us again: the listeners answer here during "
        "the chat's opening hours. In immediate danger: 17 or 112.",
    },
    "greeted": {
        "fr": "Bonjour 🙂 Pour que je puisse t'orienter, réponds d'abord à cette question, avec un bouton ou en "
        "quelques mots :",
        "en": "Hello 🙂 So that I can point you to the right help, please answer this question first, with a button or "
        "in a few words:",
    },
    "after_end_stop": {
        "fr": "D'accord, on s'arrête là : cette conversation est déjà terminée 💙 Tu peux nous réécrire : les "
        "écoutant·es répondent ici aux heures d'ouverture du chat. Le 119 et le 3114 répondent 24h/24 ; en danger "
        "immédiat : 17 ou 112.",
        "en": "OK, we'll stop here: this conversation has already ended 💙 You can write to us again: the listeners "
        "answer here during the chat's opening hours. 119 and 3114 answer 24/7; in immediate danger: 17 or 112.",
    },
    "listener_disconnected": {
        "fr": "L'écoutant·e qui te répondait a été déconnecté·e. Tu es de nouveau dans la file, à ta place : "
        "un·e autre écoutant·e va te répondre. Si tu es en danger immédiat, appelle le 17 ou le 112.",
        "en": "The listener who was answering you got disconnected. You are back in line, in your place: another "
        "listener will answer you. If you are in immediate danger, call 17 or 112.",
    },
    "listener_disconnected_offline": {
        "fr": "L'écoutant·e qui te répondait a été déconnecté·e. Tu es de nouveau dans la file, à ta place, mais "
        "aucun·e autre écoutant·e n'est connecté·e en ce moment : on ne peut pas te dire quand quelqu'un te "
        "répondra. Si tu as besoin de parler maintenant, le 119 et le 3114 répondent 24h/24. En danger immédiat, "
        "appelle le 17 ou le 112.",
        "en": "The listener who was answering you got disconnected. You are back in line, in your place, but no other "
        "listener is online right now: we cannot tell you when someone will answer. If you need to talk now, 119 and "
        "3114 answer 24/7. In immediate danger, call 17 or 112.",
    },
    "listener_disconnected_closed": {
        "fr": "L'écoutant·e qui te répondait a été déconnecté·e, et le chat est fermé maintenant : personne ne peut "
        "te répondre ici avant la réouverture. Si tu es en danger immédiat, appelle le 17 ou le 112.",
        "en": "The listener who was answering you got disconnected, and the chat is closed now: nobody can answer you "
        "here until it reopens. If you are in immediate danger, call 17 or 112.",
    },
    "queued_closing": {
        "fr": "Merci 💬 Tu es en position {position} dans la file. Le chat ferme à {closes} : un·e écoutant·e te "
        "répond ici avant si c'est possible, sinon à la réouverture, {reopens}. Si tu as besoin de parler maintenant, "
        "le 119 et le 3114 répondent 24h/24. En danger immédiat, appelle le 17 ou le 112 (SMS au 114).",
        "en": "Thank you 💬 You are number {position} in line. The chat closes at {closes}: a listener will answer "
        "you here before then if they can, otherwise when it reopens, {reopens}. If you need to talk now, 119 and "
        "3114 answer 24/7. In immediate danger, call 17 or 112 (text 114).",
    },
    "reopened": {
        "fr": "Le chat a rouvert 💬 Tu es en position {position} dans la file : un·e écoutant·e arrive dès que "
        "possible. En danger immédiat : 17 ou 112.",
        "en": "The chat has reopened 💬 You are number {position} in line: a listener is coming as soon as possible. "
        "In immediate danger: 17 or 112.",
    },
    "reopened_offline": {
        "fr": "Le chat a rouvert 💬 Tu es en position {position} dans la file. Aucun·e écoutant·e n'est "
        "encore connecté·e : on ne peut pas te dire quand quelqu'un te répondra. Tu peux attendre ici, tes messages "
        "restent. Si tu as besoin de parler maintenant, le 119 et le 3114 répondent 24h/24. En danger immédiat, "
        "appelle le 17 ou le 112 (SMS au 114).",
        "en": "The chat has reopened 💬 You are number {position} in line. No listener is online yet: we cannot "
        "tell you when someone will answer. You can wait here, your messages stay. If you need to talk now, 119 and "
        "3114 answer 24/7. In immediate danger, call 17 or 112 (text 114).",
    },
    "unreachable": {
        "fr": "Le chat ne répond pas pour l'instant, on réessaie. Si tu as besoin de parler maintenant, le 119 et le "
        "3114 répondent 24h/24 ; en danger immédiat, appelle le 17 ou le 112 (SMS au 114).",
        "en": "The chat is not answering right now, we keep trying. If you need to talk now, 119 and 3114 answer "
        "24/7; in immediate danger, call 17 or 112 (text 114).",
    },
}


class ReadingSpec(Strict):
    """What the model is taken to read in one turn of a conversation test (scores per risk class, 0 to 1)."""

    scores: dict[str, float] = Field(default_factory=dict)
    topic: str | None = None
    topic_score: float = 0.0
    third_party: bool = False

    def to_reading(self) -> Reading:
        scores = tuple((r, self.scores.get(r.value, 0.0)) for r in RISKS)
        return Reading(scores, self.topic, self.topic_score, self.third_party, "model")


def _turn(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class Turn(Strict):
    """A young person's message, with what the model reads in it."""

    text: str
    reading: ReadingSpec | None = None


class Expect(Strict):
    outcome: Literal["handoff", "referred", "ended", "closed"] | None = None
    risk: str | None = None
    """The risk class that decided (``none`` when no risk did)."""
    queue: str | None = None
    priority: Priority | None = None
    partners: list[str] | None = None
    says: list[str] = Field(default_factory=list)
    not_says: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict)
    step: str | None = None
    """Still in the bot at this step (no outcome yet)."""


class Scenario(Strict):
    name: str
    at: dt.datetime
    channel: str = "webchat"
    language: str | None = None
    turns: list[Annotated[str | Turn, BeforeValidator(_turn)]] = Field(default_factory=list)
    expect: Expect


class FlowInfo(Strict):
    id: str = "helpline"
    name: str = "Helpline"


class Flow(Strict):
    """A whole flows.yaml."""

    flow: FlowInfo = FlowInfo()
    languages: list[str] = Field(default_factory=lambda: ["fr", "en"], min_length=1)
    timezone: str = "Europe/Paris"
    start: str
    retries: int = Field(default=2, ge=0, le=10)
    fallback: Fallback
    summary: list[str] = Field(default_factory=list)
    fields: dict[str, Field_] = Field(default_factory=dict)
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    queues: dict[str, Queue]
    partners: dict[str, Partner] = Field(default_factory=dict)
    messages: dict[str, LocalText]
    steps: dict[str, Step]
    interrupts: dict[str, Interrupt] = Field(default_factory=dict)
    understanding: Understanding | None = None
    routing: list[Rule]
    canned_responses: list[CannedResponse] = Field(default_factory=list)
    outcomes: list[OutcomeCategory] = Field(default_factory=list)
    timers: Timers = Timers()
    platforms: dict[str, Platform] = Field(default_factory=dict)
    notice_categories: dict[str, NoticeCategory] = Field(default_factory=dict)
    notices: Notices | None = None
    referrals: Referrals | None = None
    retention: Retention = Retention()
    erasure: Erasure | None = None
    after_end: AfterEnd | None = None
    tests: list[Scenario] = Field(default_factory=list)

    @property
    def default_language(self) -> str:
        return self.languages[0]
