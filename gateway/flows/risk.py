"""What one message raises: the interrupts' phrases (the keyword first line) and the model's reading.

Pure: a message's text and an optional :class:`~gateway.flows.reading.Reading` in, a :class:`Decision` out. The
engine applies it during the bot's questions; :meth:`Assessor.escalate` tells the dispatcher what to raise while
the young person waits in the queue or talks with a listener. Understanding may only **raise**: hand off, raise a
priority, add a partner; never end, lower or send away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from gateway.flows import keywords
from gateway.flows.model import Flow, LocalText, Priority, RiskRule, TopicRule
from gateway.flows.model import Outcome as OutcomeSpec
from gateway.flows.reading import RISKS, Reading, Risk, Source

ENDING_DOUBT = 0.75
"""An ending phrase ends the conversation only while the model reads every risk class under this share of its
threshold. Nearer, the message may be a goodbye the model is unsure of ("bye bye pour de bon" read at 0.53 against
suicide's 0.54 ended a chat): it neither ends nor raises, the bot goes on. Of the 633 messages labelled as endings
that the keywords end on in the corpus files, 620 still end with the weights C at their thresholds (X: 623; W: all,
read at most 0.64 of a threshold); the others ("i don't want to talk anymore", "k stop now thx") go on."""


@dataclass(frozen=True, slots=True)
class Flag:
    """Why a message raised: what decided (an interrupt, or ``understanding CLASS``), the risk class, and how it
    was found: the phrase's words (keywords, score 1.0) or the model's score."""

    route: str
    risk: Risk
    score: float
    source: Source
    words: str | None = None
    priority: str | None = None
    partners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Trigger:
    flag: Flag
    then: OutcomeSpec
    store: tuple[tuple[str, str, str], ...] = ()
    """The answers the interrupts that raised give (``Interrupt.store``): field, value and the interrupt's name."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What a message does at a question: ``raised`` (hand off, most pressing first, partners of all), else
    ``ending`` (the message is essentially an ending phrase), else nothing."""

    raised: Trigger | None = None
    ending: tuple[str, OutcomeSpec] | None = None

    @property
    def flag(self) -> Flag | None:
        return self.raised.flag if self.raised else None


def risk_source(decision: Decision) -> Source | None:
    """How ``decision`` found a risk class (keywords or model), or None when it raised none (the gate's flood
    override and the inbox's order read only this: cheap, the keywords alone when no reading is given)."""
    flag = decision.flag
    return flag.source if flag is not None and flag.risk is not Risk.NONE else None


@dataclass(frozen=True, slots=True)
class Raise:
    """What to raise on a conversation already handed off: a higher ``priority`` (None: it stays), partners not
    given yet, and why; ``say``: the deciding interrupt's first words when it refers (the advice it carries, "ne paie
    pas…"; an interrupt that only asks for a listener has none here: the young person is in line already), and
    ``store``: the answers it gives (``Interrupt.store``), for the listener's card."""

    priority: str | None
    partners: tuple[str, ...]
    flag: Flag
    say: tuple[LocalText, ...] = ()
    store: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _Interrupt:
    name: str
    phrases: keywords.Phrases
    then: OutcomeSpec
    risk: Risk
    alone: keywords.Phrases
    store: tuple[tuple[str, str, str], ...] = ()

    @property
    def raises(self) -> bool:
        """Hands off: matched anywhere. Otherwise it ends or sends away: matched only as the whole message."""
        return self.then.handoff is not None


_RANKS: dict[str, int] = {priority: index for index, priority in enumerate(get_args(Priority))}


def rank(priority: str | None) -> int:
    """0 for urgent … 2 for normal (the order of :data:`~gateway.flows.model.Priority`); 3 for none."""
    return _RANKS.get(priority or "", len(_RANKS))


class Assessor:
    """One flow's interrupts and understanding rules, compiled once."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self._last: tuple[str, Reading | None, Decision, str] | None = None  # and the message's canonical form
        self._before: tuple[str, Reading | None, Decision, str] | None = None  # the one decided before the last
        rules = flow.understanding.risks if flow.understanding else {}
        self.rules: dict[Risk, RiskRule] = {r: rules[r.value] for r in RISKS if r.value in rules}
        self.topics: dict[str, TopicRule] = dict(flow.understanding.topics) if flow.understanding else {}
        risk_of = {name: r for r, rule in self.rules.items() for name in (rule.interrupt, rule.third_party) if name}
        self.interrupts = tuple(
            _Interrupt(
                name,
                keywords.compile_phrases(
                    [p for phrases in spec.match.values() for p in phrases],
                    [p for phrases in spec.ignore.values() for p in phrases],
                    [p for phrases in spec.hyperbole.values() for p in phrases],
                ),
                spec.then,
                risk_of.get(name, Risk.NONE),
                keywords.compile_phrases([p for phrases in spec.alone.values() for p in phrases]),
                tuple((field, value, name) for field, value in spec.store.items()),
            )
            for name, spec in flow.interrupts.items()
        )
        self.disguises = keywords.Disguises(
            keywords.vocabulary(
                p
                for spec in flow.interrupts.values()
                for lists in (spec.match, spec.ignore, spec.hyperbole, spec.alone)
                for phrases in lists.values()
                for p in phrases
            )
        )

        self.joined = keywords.Joined(
            p for spec in flow.interrupts.values() if spec.then.handoff for ps in spec.match.values() for p in ps
        )

    def risk_of(self, interrupt: str) -> Risk:
        return next((i.risk for i in self.interrupts if i.name == interrupt), Risk.NONE)

    def decide(self, text: str, reading: Reading | None = None) -> Decision:
        """What ``text`` (and the model's ``reading`` of it) does. A pure function of the two: the last two answers
        are kept, as a message is decided twice (its flag for the transcript, then the engine's interrupt check)
        and, between the two, may be decided joined to the previous message's words (``dispatcher._joined``): until
        2026-12-06 that joined text took the one place kept, and the message was read again whole."""
        for kept in (self._last, self._before):
            if kept is not None and kept[0] == text and kept[1] is reading:
                return kept[2]
        form = keywords.canonical(text)
        decision = self._decide(text, reading, form)
        self._last, self._before = (text, reading, decision, form), self._last
        return decision

    def ends_alone(self, text: str) -> bool:
        """Whether ``text`` is essentially an ending interrupt's phrase ("stop", "laisse tomber"), as :meth:`decide`
        would find its ``ending`` were no risk read: a cheap look (no risk read) before deciding."""
        canon = keywords.canonical(text)
        return any(not i.raises and (i.phrases.only(canon) or i.alone.only(canon)) for i in self.interrupts)

    def canonical(self, text: str) -> str:
        """``keywords.canonical(text)``, the form made for one of the last two texts decided when it is ``text`` (a
        message's erasure words are looked for after its decision: ``ErasureWords.asked``)."""
        for kept in (self._last, self._before):
            if kept is not None and kept[0] == text:
                return kept[3]
        return keywords.canonical(text)

    def _decide(self, text: str, reading: Reading | None, form: str | None = None) -> Decision:
        canon = keywords.Words(keywords.canonical(text) if form is None else form)  # read once for every interrupt
        joking = keywords.jokes(text, canon.text)  # the interrupts' hyperbole is then set aside
        triggers = [*self._keyword_triggers(canon, joking), *self._model_triggers(reading, canon)]
        marked = keywords.with_emoji_words(text)
        if marked is not None:  # a second reading with the emoji as words: it may only add what the first missed
            found = {t.flag.route for t in triggers}
            triggers += [t for t in self._keyword_triggers(keywords.Words(marked), joking) if t.flag.route not in found]
        undone = self.disguises.undo(text)
        if undone is not None and undone != canon.text:  # disguised words read back: it too may only add
            found = {t.flag.route for t in triggers}
            triggers += [t for t in self._keyword_triggers(keywords.Words(undone), joking) if t.flag.route not in found]
        joined = self.joined.split(text)
        if joined is not None:  # words written joined, split: a phrase taking in a whole joined token may only add
            form, tokens = joined
            found = {t.flag.route for t in triggers}
            triggers += [
                t
                for t in self._keyword_triggers(keywords.Words(form), joking, alone=False)
                if t.flag.route not in found and keywords.Joined.within(t.flag.words or "", tokens)
            ]
        if triggers:
            return Decision(raised=_merge(triggers, self._whose(triggers, reading)))
        if self._doubted(reading):  # understanding never ends: a near-risk goodbye is not taken as an ending
            return Decision()
        for interrupt in self.interrupts:
            if not interrupt.raises and (interrupt.phrases.only(canon) or interrupt.alone.only(canon)):
                return Decision(ending=(interrupt.name, interrupt.then))
        return Decision()

    def _whose(self, triggers: list[Trigger], reading: Reading | None) -> frozenset[str]:
        """The interrupts passed over: when the model read a risk (from its threshold) as the young person's own or
        as someone else's (``third_party``), the other interrupt of the pair, whose phrases may be in the words all
        the same: "ma fille a envie de mourir" (a mother: how to help her daughter), "ma soeur veut mourir et moi
        aussi je veux mourir" (the young person's own). Never one more pressing; its partners are still given."""
        model = {t.flag.route: t for t in triggers if t.flag.source == "model"}
        passed: set[str] = set()
        for rule in self.rules.values():
            if reading is None or not rule.interrupt or not rule.third_party:
                continue
            read_as, other = (rule.third_party, rule.interrupt) if reading.third_party else (
                rule.interrupt, rule.third_party)  # fmt: skip
            found = model.get(read_as)
            if found is not None and rank(self.flow.interrupts[other].then.priority) >= rank(found.then.priority):
                passed.add(other)
        return frozenset(passed)

    def _doubted(self, reading: Reading | None) -> bool:
        """Whether the model reads some risk near its threshold (``ENDING_DOUBT``), under it."""
        if reading is None:
            return False
        return any(reading.score(risk) >= ENDING_DOUBT * rule.threshold for risk, rule in self.rules.items())

    def escalate(
        self, priority: str | None, text: str, reading: Reading | None = None, given: tuple[str, ...] = (),
        closed: bool = False,
    ) -> Raise | None:  # fmt: skip
        """For a conversation in the queue or with a listener at ``priority``: what this message raises (a
        higher priority, partners not in ``given``), or None. Never lowers, never ends. ``closed``: its queue is
        closed now, the interrupt's ``say_closed`` is said (no listener promised "dès que possible")."""
        raised = self.decide(text, reading).raised
        if raised is None:
            return None
        flag = raised.flag
        higher = flag.priority if rank(flag.priority) < rank(priority) else None
        partners = tuple(p for p in flag.partners if p not in given)
        words = raised.then.say_closed if closed and raised.then.say_closed is not None else raised.then.say
        say = tuple(words) if raised.then.refer else ()
        return Raise(higher, partners, flag, say, raised.store)

    def threshold(self, risk: Risk) -> float | None:
        rule = self.rules.get(risk)
        return rule.threshold if rule else None

    def _keyword_triggers(self, canon: keywords.Words, joking: bool = False, alone: bool = True) -> list[Trigger]:
        """The interrupts that hand off whose phrases ``canon`` holds (and whose ``alone`` phrases it is, unless
        ``alone`` is false: a joined reading's words are those of a phrase it holds)."""
        found = []
        for interrupt in self.interrupts:
            if not interrupt.raises:
                continue
            words = interrupt.phrases.find(canon, joking) or (
                canon.text if alone and interrupt.alone.only(canon) else None
            )
            if words:
                flag = Flag(interrupt.name, interrupt.risk, 1.0, "keywords", words, interrupt.then.priority)
                found.append(Trigger(flag, interrupt.then, interrupt.store))
        return found

    def _model_triggers(self, reading: Reading | None, canon: keywords.Words | None = None) -> list[Trigger]:
        if reading is None:
            return []
        found = self._topic_triggers(reading, canon)
        for risk, rule in self.rules.items():
            score = reading.score(risk)
            if score < rule.threshold:
                continue
            name = rule.third_party if reading.third_party and rule.third_party else rule.interrupt
            then = self.flow.interrupts[name].then if name else rule.then
            if then is None or then.handoff is None:  # checks refuse this; understanding never ends
                continue
            flag = Flag(name or f"understanding {risk.value}", risk, score, "model", None, then.priority)
            store = tuple((f, v, name) for f, v in self.flow.interrupts[name].store.items()) if name else ()
            found.append(Trigger(flag, then, store))
        return found

    def _topic_triggers(self, reading: Reading, canon: keywords.Words | None) -> list[Trigger]:
        """The interrupt of a topic the model read at its ``understanding.topics`` threshold or above (a sextortion
        going on told in words no phrase lists: "il veut 50€ en carte paysafecard sinon tout le monde verra"), unless
        the message holds one of that interrupt's ``ignore`` phrases (told about, not going on: "un reportage sur
        la sextorsion"). Its flag is the interrupt's, found by the model."""
        rule = self.topics.get(reading.topic or "")
        if rule is None or reading.topic_score < rule.threshold:
            return []
        interrupt = next((i for i in self.interrupts if i.name == rule.interrupt), None)
        if interrupt is None or interrupt.then.handoff is None:  # checks refuse both; understanding never ends
            return []
        if canon is not None and interrupt.phrases.ignores(canon):
            return []
        flag = Flag(interrupt.name, interrupt.risk, reading.topic_score, "model", None, interrupt.then.priority)
        return [Trigger(flag, interrupt.then, interrupt.store)]


def _merge(triggers: list[Trigger], passed: frozenset[str] = frozenset()) -> Trigger:
    """The most pressing trigger decides (priority, then keywords before the model, then file order), but not an
    interrupt ``passed`` over; the partners of all are given: understanding adds referrals, it never drops one."""
    deciding = [t for t in triggers if t.flag.route not in passed] or triggers
    first = min(deciding, key=lambda t: rank(t.then.priority))
    partners = list(first.then.refer)
    partners.extend(p for t in triggers for p in t.then.refer if p not in partners)
    then = first.then if partners == first.then.refer else first.then.model_copy(update={"refer": partners})
    stored: dict[str, tuple[str, str, str]] = {}
    for t in (first, *triggers):  # the deciding interrupt's answers first, then the others' (a topic kept)
        for item in t.store:
            stored.setdefault(item[0], item)
    return Trigger(_with(first.flag, then), then, tuple(stored.values()))


def _with(flag: Flag, then: OutcomeSpec) -> Flag:
    return Flag(flag.route, flag.risk, flag.score, flag.source, flag.words, then.priority, tuple(then.refer))
