"""The checks a flows.yaml must pass beyond its shape: everything ``model.py`` cannot see on its own.

    references     every step, queue, partner, schedule and field a flow names exists
    graph          steps are reached, each has a way on, none loops forever, every path can reach 'route'
    texts          every text exists in every language, and only in those; none is empty
    messages       the required system messages, with only the placeholders each one can fill; a closed line,
                   an end and a refusal that give an emergency partner's number
    rules          no rule or branch condition that can never match; routing ends with a catch-all
    hours          a real time zone; schedules that open; no overlapping hours; no duplicate choices
    scenarios      conversation tests run on a real channel, language and time

Each check is a small generator of :class:`Issue` (a data path and a message naming the thing);
:func:`check_flow` turns them into positioned :class:`~gateway.flows.positions.Problem` lines.
"""

from __future__ import annotations

import re
import string
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from gateway.flows import keywords
from gateway.flows.model import (
    ALWAYS_SCHEDULE,
    OPTIONAL_MESSAGES,
    READ_LANGUAGES,
    REQUIRED_MESSAGES,
    RESERVED_TARGETS,
    DatedHours,
    Expect,
    Flow,
    LocalText,
    Outcome,
    Step,
    Turn,
)
from gateway.flows.positions import LoadedFlow, PathKey, Positions, Problem, did_you_mean
from gateway.flows.reading import RISKS
from gateway.flows.rules import (
    COMPARISONS,
    All,
    Always,
    AnyOf,
    ChannelIs,
    Condition,
    FieldTest,
    IsOpen,
    LanguageIs,
    Not,
)
from gateway.flows.understood import topic_question
from gateway.messages import ChannelName

ROUTE = "route"
UNKNOWN = "unknown"
"""The value of the "prefer not to say" choice every question gets (the engine's ``UNKNOWN``)."""
CHANNELS: tuple[str, ...] = tuple(c.value for c in ChannelName)
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "queued": ("position", "wait"),
    "queued_offline": ("position",),
    "queued_closing": ("position", "closes", "reopens"),
    "reassurance": ("position",),
    "reopened": ("position",),
    "reopened_offline": ("position",),
    "closed_line": ("hours", "reopens"),
    "closed_line_again": ("hours", "reopens"),
}
DAY = 24 * 60


@dataclass(frozen=True)
class Issue:
    """One problem before it has a position: where it is in the data, and what is wrong."""

    path: PathKey
    message: str
    at_key: bool = False


Check = Callable[[Flow], Iterator[Issue]]


def check_flow(loaded: LoadedFlow) -> list[Problem]:
    """Every problem of a flow that passed the schema, positioned; an empty list when it can be used."""
    problems = {
        Problem(loaded.file, *_position(loaded.positions, issue.path, issue.at_key), issue.message)
        for check in CHECKS
        for issue in check(loaded.flow)
    }
    return sorted(problems)


def _position(positions: Positions, path: PathKey, at_key: bool) -> tuple[int, int]:
    """``say: {fr: …}`` and ``refer: "119"`` are one-item lists in the model: drop the index the YAML lacks."""
    for n, part in enumerate(path):
        if isinstance(part, int) and path[: n + 1] not in positions.values and path[:n] in positions.values:
            return _position(positions, (*path[:n], *path[n + 1 :]), at_key)
    return positions.of(path, key=at_key)


# --- shared knowledge ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What a field stored by the questions can hold: choice values, number bounds, or anything (free text)."""

    values: frozenset[str] | None = None
    bounds: tuple[int, int] | None = None


def stored_fields(flow: Flow) -> dict[str, Stored]:
    """The fields the questions store, and what each can hold (``unknown`` always included)."""
    steps: dict[str, list[Step]] = {}
    for step in flow.steps.values():
        if step.ask is not None and step.store:
            steps.setdefault(step.store, []).append(step)
    return {name: _stored(group) for name, group in steps.items()}


def _stored(steps: list[Step]) -> Stored:
    if all(s.choices is not None for s in steps):
        return Stored(values=frozenset({UNKNOWN, *(c.value for s in steps for c in s.choices or [])}))
    numbers = [s.number for s in steps if s.number is not None]
    if len(numbers) == len(steps):
        return Stored(bounds=(min(n.min for n in numbers), max(n.max for n in numbers)))
    return Stored()


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(names)


def _missing(kind: str, name: str, options: Iterable[str]) -> str:
    return f"{kind} '{name}', which does not exist{did_you_mean(name, options)}"


def _outcomes(flow: Flow) -> Iterator[tuple[str, Outcome, PathKey]]:
    """Every outcome (``then:``) with who holds it."""
    for i, rule in enumerate(flow.routing):
        yield _rule_name(i), rule.then, ("routing", i, "then")
    for name, interrupt in flow.interrupts.items():
        yield f"interrupt '{name}'", interrupt.then, ("interrupts", name, "then")
    risks = flow.understanding.risks if flow.understanding else {}
    for risk, risk_rule in risks.items():
        if risk_rule.then is not None:
            yield f"risk class '{risk}'", risk_rule.then, ("understanding", "risks", risk, "then")


def _rule_name(index: int) -> str:
    return f"rule {index + 1}"


# --- references ------------------------------------------------------------------------------------------------


def check_steps_exist(flow: Flow) -> Iterator[Issue]:
    options = [*flow.steps, ROUTE]
    known = set(options)  # looked up once per edge: a list's scan made this check grow with the square of the steps
    if flow.start not in known:
        yield Issue(("start",), "the conversation starts at " + _missing("step", flow.start, options))
    for sid, step in flow.steps.items():
        for target, path in _edges(sid, step):
            if target not in known:
                yield Issue(
                    path, f"step '{sid}' goes to '{target}', which does not exist{did_you_mean(target, options)}"
                )


def check_queues_and_schedules_exist(flow: Flow) -> Iterator[Issue]:
    if flow.fallback.queue not in flow.queues:
        yield Issue(
            ("fallback", "queue"), "the fallback hands off to " + _missing("queue", flow.fallback.queue, flow.queues)
        )
    schedules = [*flow.schedules, ALWAYS_SCHEDULE]
    for kind, items in (("queue", flow.queues), ("partner", flow.partners)):
        for name, item in items.items():
            if item.schedule not in schedules:
                text = f"{kind} '{name}' uses " + _missing("schedule", item.schedule, schedules)
                yield Issue((f"{kind}s", name, "schedule"), text)


def check_outcome_targets(flow: Flow) -> Iterator[Issue]:
    for owner, then, path in _outcomes(flow):
        if then.handoff is not None and then.handoff not in flow.queues:
            yield Issue((*path, "handoff"), f"{owner} hands off to " + _missing("queue", then.handoff, flow.queues))
        if then.offer_listener is not None and then.offer_listener not in flow.queues:
            text = f"{owner} offers a listener of " + _missing("queue", then.offer_listener, flow.queues)
            yield Issue((*path, "offer_listener"), text)
        for k, partner in enumerate(then.refer):
            if partner not in flow.partners:
                yield Issue((*path, "refer", k), f"{owner} refers to " + _missing("partner", partner, flow.partners))


def check_field_names(flow: Flow) -> Iterator[Issue]:
    stored = stored_fields(flow)
    for k, name in enumerate(flow.summary):
        if name not in stored:
            yield Issue(
                ("summary", k),
                f"the summary shows field '{name}', but no question stores it{did_you_mean(name, stored)}",
            )
    for name in flow.fields:
        if name not in stored:
            text = f"field '{name}' has a label, but no question stores it{did_you_mean(name, stored)}"
            yield Issue(("fields", name), text, at_key=True)
    for sid, step in flow.steps.items():
        if step.ask is None and step.store is not None:
            yield Issue(("steps", sid, "store"), f"step '{sid}' stores '{step.store}' but asks no question ('ask')")


def check_reserved_step_ids(flow: Flow) -> Iterator[Issue]:
    for sid in flow.steps:
        if sid in RESERVED_TARGETS:
            text = f"'{sid}' is a reserved word (go to the routing rules): give this step another name"
            yield Issue(("steps", sid), text, at_key=True)


# --- graph -----------------------------------------------------------------------------------------------------


def _edges(sid: str, step: Step) -> list[tuple[str, PathKey]]:
    """Where a step can go, with the path of each target; branches without an otherwise also go to 'route'."""
    base: PathKey = ("steps", sid, "next")
    if isinstance(step.next, str):
        return [(step.next, base)]
    branches = step.next or []
    edges: list[tuple[str, PathKey]] = [(b.goto, (*base, j, "goto")) for j, b in enumerate(branches)]
    if branches and not isinstance(branches[-1].when, Always):
        edges.append((ROUTE, base))  # the engine routes when no branch matches
    return edges


def _successors(flow: Flow) -> dict[str, list[str]]:
    return {sid: [target for target, _ in _edges(sid, step)] for sid, step in flow.steps.items()}


def _reach(starts: Iterable[str], successors: Mapping[str, Sequence[str]]) -> set[str]:
    """Every step reachable from ``starts`` (themselves included) following ``successors``."""
    seen: set[str] = set()
    todo = [s for s in starts if s in successors and s != ROUTE]
    while todo:
        sid = todo.pop()
        if sid not in seen:
            seen.add(sid)
            todo.extend(t for t in successors[sid] if t in successors and t != ROUTE)
    return seen


def check_unreachable_steps(flow: Flow) -> Iterator[Issue]:
    if flow.start != ROUTE and flow.start not in flow.steps:
        return  # reported as a missing step; every step would look unreachable
    reached = _reach([flow.start], _successors(flow))
    for sid in flow.steps:
        if sid not in reached and sid not in RESERVED_TARGETS:
            yield Issue(("steps", sid), f"step '{sid}' is never reached", at_key=True)


def check_ways_on(flow: Flow) -> Iterator[Issue]:
    for sid, step in flow.steps.items():
        if not step.next:
            yield Issue(("steps", sid), f"step '{sid}' has no 'next': say where the conversation goes", at_key=True)
        elif isinstance(step.next, list) and not isinstance(step.next[-1].when, Always):
            path = ("steps", sid, "next", len(step.next) - 1, "when")
            yield Issue(path, f"step '{sid}': the last branch needs no 'when' (the otherwise case)", at_key=True)


def say_only_cycles(flow: Flow) -> list[list[str]]:
    """Groups of steps that only say something and lead to each other: the bot would talk forever. Each group is a
    strongly connected part of the say-only steps (one step: only when it goes back to itself), in the file's order,
    found in one pass (:func:`_strongly_connected`): until 2026-12-06 every say-only step's reach was walked, time
    and memory growing with the square of the steps (8,000 steps: a minute and gigabytes, a reload refused)."""
    say_only = {sid for sid, step in flow.steps.items() if step.ask is None}
    successors = {sid: [t for t in targets if t in say_only] for sid, targets in _successors(flow).items()}
    order = {sid: i for i, sid in enumerate(flow.steps)}
    cycles = [
        sorted(group, key=order.__getitem__)
        for group in _strongly_connected([sid for sid in flow.steps if sid in say_only], successors)
        if len(group) > 1 or group[0] in successors[group[0]]
    ]
    return sorted(cycles, key=lambda cycle: order[cycle[0]])


def _strongly_connected(nodes: Sequence[str], successors: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``nodes`` (whose successors are among them), without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = successors[node]
            while i < len(targets) and targets[i] in index:
                if targets[i] in on_stack:
                    low[node] = min(low[node], index[targets[i]])
                i += 1
            if i < len(targets):  # a target not seen yet: walk it, then come back to this node's next target
                work += [(node, i + 1), (targets[i], 0)]
                continue
            if low[node] == index[node]:
                group: list[str] = []
                while not group or group[-1] != node:
                    group.append(stack.pop())
                    on_stack.discard(group[-1])
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def check_say_only_cycles(flow: Flow) -> Iterator[Issue]:
    for cycle in say_only_cycles(flow):
        if len(cycle) == 1:
            text = f"step '{cycle[0]}' only says something and goes back to itself: the bot would talk forever"
        else:
            names = " → ".join(f"'{s}'" for s in cycle)
            text = f"steps {names} only say something and lead to each other: the bot would talk forever"
        yield Issue(("steps", cycle[0], "next"), text)


def _can_end(flow: Flow) -> set[str]:
    """Steps from which 'route' can be reached; a missing step or 'next' and a say-only loop count as ends,
    since they are reported on their own."""
    successors = _successors(flow)
    ends = {sid for sid, step in flow.steps.items() if not step.next}
    ends.update(sid for cycle in say_only_cycles(flow) for sid in cycle)
    ends.update(sid for sid, targets in successors.items() if any(t == ROUTE or t not in flow.steps for t in targets))
    predecessors: dict[str, list[str]] = {sid: [] for sid in flow.steps}
    for sid, targets in successors.items():
        for target in targets:
            if target in predecessors:
                predecessors[target].append(sid)
    return _reach(ends, predecessors)


def check_dead_ends(flow: Flow) -> Iterator[Issue]:
    reached = _reach([flow.start], _successors(flow))
    can_end = _can_end(flow)
    for sid in flow.steps:
        if sid in reached and sid not in can_end:
            text = f"step '{sid}' never leads to 'route': from here the conversation goes round in circles"
            yield Issue(("steps", sid), text, at_key=True)


# --- texts -----------------------------------------------------------------------------------------------------

Text = tuple[str, LocalText, PathKey]
"""What a text is ("the question of step 'age'"), the text per language, and its path."""


def texts(flow: Flow) -> Iterator[Text]:
    """Every per-language text of a flow."""
    for key, message in flow.messages.items():
        yield f"message '{key}'", message, ("messages", key)
    for name, field in flow.fields.items():
        yield f"the label of field '{name}'", field.label, ("fields", name, "label")
    for name, queue in flow.queues.items():
        yield f"the name of queue '{name}'", queue.name, ("queues", name, "name")
    for name, partner in flow.partners.items():
        yield f"the name of partner '{name}'", partner.name, ("partners", name, "name")
        yield f"the message of partner '{name}'", partner.message, ("partners", name, "message")
    for sid, step in flow.steps.items():
        yield from _step_texts(sid, step)
    for owner, then, path in _outcomes(flow):
        yield from ((f"what {owner} says", t, (*path, "say", k)) for k, t in enumerate(then.say))
        closed = enumerate(then.say_closed or ())
        yield from ((f"what {owner} says when its queue is closed", t, (*path, "say_closed", k)) for k, t in closed)
    for i, canned in enumerate(flow.canned_responses):
        yield f"the title of canned response '{canned.shortcut}'", canned.title, ("canned_responses", i, "title")
        yield f"the text of canned response '{canned.shortcut}'", canned.text, ("canned_responses", i, "text")
    for i, category in enumerate(flow.outcomes):
        yield f"the label of outcome '{category.id}'", category.label, ("outcomes", i, "label")
    yield from casework_texts(flow)
    if flow.erasure is not None:
        for part in ("confirm", "done", "cancelled"):
            yield f"the erasure's '{part}' text", getattr(flow.erasure, part), ("erasure", part)


def casework_texts(flow: Flow) -> Iterator[Text]:
    """The texts of takedown notices and warm referrals."""
    for name, category in flow.notice_categories.items():
        for part in ("label", "ground", "explanation"):
            path = ("notice_categories", name, part)
            yield f"the {part} of notice category '{name}'", getattr(category, part), path
    for name, partner in flow.partners.items():
        if partner.referral is not None:
            steps = ("partners", name, "referral", "next_steps")
            yield f"the next steps of partner '{name}'", partner.referral.next_steps, steps
    if flow.notices is not None:
        yield (
            "the trusted-flagger status",
            flow.notices.notifier.trusted_flagger,
            ("notices", "notifier", "trusted_flagger"),
        )
        yield "the removal message", flow.notices.removed_message, ("notices", "removed_message")
    if flow.referrals is not None:
        yield "the consent question", flow.referrals.consent_question, ("referrals", "consent_question")
        yield "the declined message", flow.referrals.declined_message, ("referrals", "declined_message")


def _step_texts(sid: str, step: Step) -> Iterator[Text]:
    base = ("steps", sid)
    yield from ((f"what step '{sid}' says", t, (*base, "say", k)) for k, t in enumerate(step.say))
    if step.ask is not None:
        yield f"the question of step '{sid}'", step.ask, (*base, "ask")
    if step.retry is not None:
        yield f"the retry text of step '{sid}'", step.retry, (*base, "retry")
    for k, choice in enumerate(step.choices or []):
        yield f"choice '{choice.value}' of step '{sid}'", choice.label, (*base, "choices", k, "label")


def _languages(flow: Flow) -> str:
    return f"one of the languages ({_quoted(flow.languages)})"


def _unknown_languages(
    flow: Flow, what: str, keys: Iterable[str], path: PathKey, read: Sequence[str] = ()
) -> Iterator[Issue]:
    """The keys that are not one of the flow's languages (nor one of ``read``, languages read but not spoken)."""
    for lang in keys:
        if lang not in flow.languages and lang not in read:
            known = [*flow.languages, *read]
            also = f" nor one it only reads ({_quoted(read)})" if read else ""
            text = f"{what}: '{lang}' is not {_languages(flow)}{also}{did_you_mean(lang, known)}"
            yield Issue((*path, lang), text, at_key=True)


def check_translations(flow: Flow) -> Iterator[Issue]:
    for what, text, path in texts(flow):
        missing = [lang for lang in flow.languages if lang not in text]
        if missing:
            yield Issue(path, f"{what} has no text in {' or '.join(repr(m) for m in missing)}")
        yield from _unknown_languages(flow, what, text, path)
        for lang, value in text.items():
            if not value.strip():
                yield Issue((*path, lang), f"{what} is empty in '{lang}'")


def check_phrase_languages(flow: Flow) -> Iterator[Issue]:
    if flow.erasure is not None:
        for key in ("phrases", "yes"):
            yield from _unknown_languages(flow, f"the erasure's {key}", getattr(flow.erasure, key), ("erasure", key))
    if flow.after_end is not None:
        yield from _unknown_languages(flow, "the after_end phrases", flow.after_end.phrases, ("after_end", "phrases"))
    for sid, step in flow.steps.items():
        for k, choice in enumerate(step.choices or []):
            what = f"the synonyms of choice '{choice.value}' of step '{sid}'"
            yield from _unknown_languages(flow, what, choice.synonyms, ("steps", sid, "choices", k, "synonyms"))
    read = READ_LANGUAGES  # an interrupt's phrases may be in a language the bot reads and does not speak
    for name, interrupt in flow.interrupts.items():
        path: PathKey = ("interrupts", name, "match")
        yield from _unknown_languages(flow, f"the phrases of interrupt '{name}'", interrupt.match, path, read)
        ignore: PathKey = ("interrupts", name, "ignore")
        what = f"the false friends of interrupt '{name}'"
        yield from _unknown_languages(flow, what, interrupt.ignore, ignore, read)
        alone: PathKey = ("interrupts", name, "alone")
        what = f"the 'alone' phrases of interrupt '{name}'"
        yield from _unknown_languages(flow, what, interrupt.alone, alone, read)
        hyperbole: PathKey = ("interrupts", name, "hyperbole")
        what = f"the hyperbole of interrupt '{name}'"
        yield from _unknown_languages(flow, what, interrupt.hyperbole, hyperbole, read)
        if not any(phrase.strip() for phrases in interrupt.match.values() for phrase in phrases):
            yield Issue(path, f"interrupt '{name}' has no phrases: it would never interrupt anything")


def check_interrupt_store(flow: Flow) -> Iterator[Issue]:
    """An interrupt's ``store`` names a field a question stores, with a value that question can give."""
    stored = stored_fields(flow)
    for name, interrupt in flow.interrupts.items():
        for field_name, value in interrupt.store.items():
            path: PathKey = ("interrupts", name, "store", field_name)
            where = f"interrupt '{name}': field '{field_name}'"
            if field_name not in stored:
                yield Issue(path, f"{where} is never stored by a question{did_you_mean(field_name, stored)}", True)
                continue
            values = stored[field_name].values
            if values is not None and value not in values:
                options = sorted(values)
                text = f"{where} is never '{value}'{did_you_mean(value, options)}: its values are {_quoted(options)}"
                yield Issue(path, text)


def check_phrase_marks(flow: Flow) -> Iterator[Issue]:
    for key, groups in (("phrases", flow.erasure.phrases), ("yes", flow.erasure.yes)) if flow.erasure else ():
        for lang, phrases in groups.items():
            for k, phrase in enumerate(phrases):
                if (problem := keywords.phrase_problem(phrase)) and phrase.strip():
                    yield Issue(("erasure", key, lang, k), f"erasure {key}, phrase '{phrase}': {problem}")
    for lang, phrases in flow.after_end.phrases.items() if flow.after_end else ():
        for k, phrase in enumerate(phrases):
            if (problem := keywords.phrase_problem(phrase)) and phrase.strip():
                yield Issue(("after_end", "phrases", lang, k), f"after_end phrase '{phrase}': {problem}")
    for name, interrupt in flow.interrupts.items():
        groups_of = {"match": interrupt.match, "ignore": interrupt.ignore, "alone": interrupt.alone}
        for key, groups in (*groups_of.items(), ("hyperbole", interrupt.hyperbole)):
            for lang, phrases in groups.items():
                for k, phrase in enumerate(phrases):
                    problem = keywords.phrase_problem(phrase)
                    if problem and phrase.strip():
                        text = f"interrupt '{name}', phrase '{phrase}': {problem}"
                        yield Issue(("interrupts", name, key, lang, k), text)


# --- messages --------------------------------------------------------------------------------------------------


def check_casework(flow: Flow) -> Iterator[Issue]:
    """Notices and referrals: platforms written in a flow language, categories and partners that exist."""
    for name, platform in flow.platforms.items():
        if platform.language not in flow.languages:
            text = f"platform '{name}': its language '{platform.language}' is not {_languages(flow)}"
            yield Issue(("platforms", name, "language"), text)
    if flow.notice_categories and flow.notices is None:
        yield Issue(("notice_categories",), "'notice_categories' needs a 'notices:' section (the notifier)", True)
    if flow.notices is not None:
        target = flow.notices.csam_also_to
        if target is not None and target not in flow.platforms:
            text = f"'csam_also_to' names {_missing('platform', target, flow.platforms)}"
            yield Issue(("notices", "csam_also_to"), text)
        if target is None and any(c.csam for c in flow.notice_categories.values()):
            text = "a 'csam' category needs 'csam_also_to' (the platform, usually Pharos, always told as well)"
            yield Issue(("notices",), text, True)
    known = [*flow.fields, "language"]
    for name, partner in flow.partners.items():
        if partner.referral is None:
            continue
        if flow.referrals is None:
            yield Issue(("partners", name, "referral"), "a partner's 'referral' needs a 'referrals:' section", True)
        if flow.notices is None:  # its e-mail comes from the notifier (``Referrals._email``)
            text = "a partner's 'referral' needs a 'notices:' section (its notifier sends the referral's e-mail)"
            yield Issue(("partners", name, "referral"), text, True)
        for k, field in enumerate(partner.referral.fields):
            if field not in known:
                text = f"partner '{name}' sends {_missing('field', field, known)}"
                yield Issue(("partners", name, "referral", "fields", k), text)
    for lang, question in flow.referrals.consent_question.items() if flow.referrals else ():
        problem = _placeholder_problem(question, ("partner",))
        if problem:
            yield Issue(("referrals", "consent_question", lang), f"the consent question in '{lang}': {problem}")


def check_required_messages(flow: Flow) -> Iterator[Issue]:
    for key in REQUIRED_MESSAGES:
        if key not in flow.messages:
            yield Issue(("messages",), f"message '{key}' is missing")
    known = REQUIRED_MESSAGES + OPTIONAL_MESSAGES
    for key in flow.messages:
        if key not in known:
            text = f"unknown message '{key}'{did_you_mean(key, known)}"
            yield Issue(("messages", key), text, at_key=True)


WHERE_TO_TURN: tuple[str, ...] = (
    "closed_line", "closed_line_again", "queued_offline", "abandoned", "ended", "idle_closed", "rate_limited",
    "blocked", "unreachable", "listener_disconnected_closed", "listener_disconnected_offline", "after_end",
    "after_end_stop", "reopened_offline",
)  # fmt: skip
"""Messages sent while nobody can answer here, or as the conversation ends, or as a message is refused (a flood, a
block), or shown by the web chat page while it cannot reach the line: each must give an emergency partner's number."""


def check_where_to_turn(flow: Flow) -> Iterator[Issue]:
    """The closed line (and its reminder), the end, a refusal is all a young person may be told for now: with an
    emergency partner in the flow (``emergency: true``), each must give that partner's number, in every language."""
    numbers = {name: partner.phone for name, partner in flow.partners.items() if partner.emergency and partner.phone}
    if not numbers:
        return
    wanted = " or ".join(f"partner '{name}' ({phone})" for name, phone in numbers.items())
    for key in WHERE_TO_TURN:
        for lang, text in flow.messages.get(key, {}).items():
            if not any(_gives_number(text, phone) for phone in numbers.values()):
                message = f"message '{key}' in '{lang}' does not say where to turn now"
                yield Issue(("messages", key, lang), f"{message} (it is sent while nobody can answer here): "
                            f"give the number of {wanted}")  # fmt: skip


def _gives_number(text: str, phone: str) -> bool:
    """Whether ``text`` writes the number ``phone`` ("116 006", "116006" and "1 1 6 0 0 6" alike)."""
    digits = [d for d in phone if d.isdigit()]
    return bool(digits) and re.search(r"(?<!\d)" + r"[\s.\-]?".join(digits) + r"(?!\d)", text) is not None


def check_placeholders(flow: Flow) -> Iterator[Issue]:
    for key, message in flow.messages.items():
        allowed = PLACEHOLDERS.get(key, ())
        for lang, text in message.items():
            problem = _placeholder_problem(text, allowed)
            if problem:
                yield Issue(("messages", key, lang), f"message '{key}' in '{lang}': {problem}")


def _placeholder_problem(text: str, allowed: Sequence[str]) -> str | None:
    """What is wrong with the ``{placeholders}`` of ``text``, or None."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return "a '{' or '}' has no partner: write {{ or }} for a brace itself"
    use = f"use only {_quoted('{' + a + '}' for a in allowed)}" if allowed else "this message takes no placeholder"
    for name in names:
        if name not in allowed:
            return f"unknown placeholder {{{name}}}: {use}"
    return None


# --- rules -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    """One condition (nested ones included), who holds it ("rule 2", "step 'x', branch 1") and its path."""

    owner: str
    condition: Condition
    path: PathKey


def conditions(flow: Flow) -> Iterator[Located]:
    for i, rule in enumerate(flow.routing):
        yield from _walk(rule.when, ("routing", i, "when"), _rule_name(i))
    for sid, step in flow.steps.items():
        for j, branch in enumerate(step.next if isinstance(step.next, list) else []):
            yield from _walk(branch.when, ("steps", sid, "next", j, "when"), f"step '{sid}', branch {j + 1}")


def _walk(condition: Condition, path: PathKey, owner: str) -> Iterator[Located]:
    yield Located(owner, condition, path)
    if isinstance(condition, All | AnyOf):
        key = "all" if isinstance(condition, All) else "any"
        for k, item in enumerate(condition.items):
            yield from _walk(item, (*path, key, k), owner)
    elif isinstance(condition, Not):
        yield from _walk(condition.item, (*path, "not"), owner)


def check_shadowed_rules(flow: Flow) -> Iterator[Issue]:
    catch_all = next((i for i, rule in enumerate(flow.routing) if isinstance(rule.when, Always)), None)
    if catch_all is None:
        return
    for i in range(catch_all + 1, len(flow.routing)):
        text = f"{_rule_name(i)} can never match: {_rule_name(catch_all)} above always matches"
        yield Issue(("routing", i), text)


def check_last_rule(flow: Flow) -> Iterator[Issue]:
    if flow.routing and not isinstance(flow.routing[-1].when, Always):
        text = (
            "the last rule needs no 'when', so that every conversation ends somewhere"
            " (the engine falls back to a listener)"
        )
        yield Issue(("routing", len(flow.routing) - 1, "when"), text, at_key=True)


def check_conditions(flow: Flow) -> Iterator[Issue]:
    stored = stored_fields(flow)
    for located in conditions(flow):
        condition = located.condition
        if isinstance(condition, FieldTest):
            yield from _field_test(located, condition, stored)
        elif isinstance(condition, ChannelIs):
            yield from _names_in(located, "channel", condition.channels, CHANNELS)
        elif isinstance(condition, LanguageIs):
            yield from _names_in(located, "language", condition.languages, flow.languages)
        elif isinstance(condition, IsOpen):
            yield from _open_target(located, condition, flow)


def _names_in(located: Located, key: str, names: Sequence[str], known: Sequence[str]) -> Iterator[Issue]:
    for k, name in enumerate(names):
        if name not in known:
            text = f"{located.owner}: unknown {key} '{name}'{did_you_mean(name, known)}: use {_quoted(known)}"
            yield Issue((*located.path, key, k), text)


def _open_target(located: Located, condition: IsOpen, flow: Flow) -> Iterator[Issue]:
    targets = [*flow.queues, *flow.partners]
    if condition.target not in targets:
        key = "open" if condition.open else "closed"
        text = f"{located.owner}: '{key}' names '{condition.target}', which is not a queue or a partner"
        yield Issue((*located.path, key), text + did_you_mean(condition.target, targets))


def _field_test(located: Located, test: FieldTest, stored: Mapping[str, Stored]) -> Iterator[Issue]:
    where = f"{located.owner}: field '{test.field}'"
    if test.field not in stored:
        text = f"{where} is never stored by a question{did_you_mean(test.field, stored)}"
        yield Issue((*located.path, "field"), text)
        return
    kind = stored[test.field]
    if kind.values is not None:
        yield from _choice_test(located, test, where, kind.values)
    elif kind.bounds is not None:
        yield from _number_test(located, test, where, kind.bounds)


def _tested_values(located: Located, test: FieldTest) -> Iterator[tuple[str, PathKey]]:
    if isinstance(test.value, tuple):
        yield from ((v, (*located.path, test.op, k)) for k, v in enumerate(test.value))
    elif test.op == "equals":
        yield str(test.value), (*located.path, test.op)


def _choice_test(located: Located, test: FieldTest, where: str, values: frozenset[str]) -> Iterator[Issue]:
    if test.op in COMPARISONS:
        text = f"{where} holds a choice, not a number: '{test.op}' never matches"
        yield Issue((*located.path, test.op), text)
    for value, path in _tested_values(located, test):
        if value not in values:
            options = sorted(values)
            yield Issue(
                path, f"{where} is never '{value}'{did_you_mean(value, options)}: its values are {_quoted(options)}"
            )


def _number_test(located: Located, test: FieldTest, where: str, bounds: tuple[int, int]) -> Iterator[Issue]:
    low, high = bounds
    span = f"{where} is a number from {low} to {high}"
    if test.op in COMPARISONS and isinstance(test.value, float) and _never_true(test.op, test.value, low, high):
        yield Issue((*located.path, test.op), f"{span}, so '{test.op}: {_number(test.value)}' is never true")
    for value, path in _tested_values(located, test):
        number = _integer(value)
        if value != UNKNOWN and (number is None or not low <= number <= high):
            yield Issue(path, f"{span} (or '{UNKNOWN}'), so it is never '{value}'")


def _never_true(op: str, value: float, low: int, high: int) -> bool:
    return {"lt": value <= low, "le": value < low, "gt": value >= high, "ge": value > high}[op]


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


# --- hours and choices -----------------------------------------------------------------------------------------


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(flow: Flow) -> Iterator[Issue]:
    try:
        zoneinfo.ZoneInfo(flow.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        close = did_you_mean(flow.timezone, sorted(_zones()))
        yield Issue(("timezone",), f"unknown time zone '{flow.timezone}'{close}: use a name like Europe/Paris")


def check_schedules(flow: Flow) -> Iterator[Issue]:
    for name, schedule in flow.schedules.items():
        path: PathKey = ("schedules", name)
        if not (schedule.always_open or schedule.openings or any(schedule.weekly.values())):
            yield Issue(path, f"schedule '{name}' is never open: give it 'weekly' hours", at_key=True)
        for day, ranges in schedule.weekly.items():
            yield from _overlaps(f"schedule '{name}' on {day}", ranges, (*path, "weekly", day))
        for kind in ("closures", "openings"):
            yield from _dated_overlaps(name, kind, getattr(schedule, kind), path)


def _dated_overlaps(name: str, kind: str, items: list[DatedHours], path: PathKey) -> Iterator[Issue]:
    for k, item in enumerate(items):
        where = f"schedule '{name}', {kind} on {item.date}"
        yield from _overlaps(where, item.hours or [], (*path, kind, k, "hours"))


def _overlaps(where: str, ranges: Sequence[tuple[int, int]], path: PathKey) -> Iterator[Issue]:
    """Ranges of one day that overlap; one running past midnight ends on the next day."""
    spans = [(start, end if end > start else end + DAY) for start, end in ranges]
    for k, (start, end) in enumerate(spans):
        for j in range(k):
            if start < spans[j][1] and spans[j][0] < end:
                text = f"{where}: hours {_clock(ranges[k])} overlap {_clock(ranges[j])}"
                yield Issue((*path, k), text)
                break


def _clock(span: tuple[int, int]) -> str:
    start, end = span
    return f"'{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}'"


def check_choices(flow: Flow) -> Iterator[Issue]:
    for sid, step in flow.steps.items():
        seen: set[str] = set()
        for k, choice in enumerate(step.choices or []):
            path: PathKey = ("steps", sid, "choices", k, "value")
            if choice.value in seen:
                yield Issue(path, f"step '{sid}' has two choices with the value '{choice.value}'")
            seen.add(choice.value)
            if step.store == "language" and choice.value not in (*flow.languages, UNKNOWN):
                text = f"step '{sid}' stores the language, but '{choice.value}' is not {_languages(flow)}"
                yield Issue(path, text + did_you_mean(choice.value, flow.languages))


# --- understanding -------------------------------------------------------------------------------------------


def check_understanding(flow: Flow) -> Iterator[Issue]:
    understanding = flow.understanding
    if understanding is None:
        return
    base: PathKey = ("understanding",)
    classes = [r.value for r in RISKS]
    for name in classes:
        if name not in understanding.risks:
            text = f"understanding: risk class '{name}' is missing: give it a threshold and an interrupt"
            yield Issue((*base, "risks"), text, at_key=True)
    for name, rule in understanding.risks.items():
        path: PathKey = (*base, "risks", name)
        if name not in classes:
            text = f"understanding: unknown risk class '{name}'{did_you_mean(name, classes)}: use {_quoted(classes)}"
            yield Issue(path, text, at_key=True)
        yield from _threshold(f"risk class '{name}'", rule.threshold, (*path, "threshold"))
        for key in ("interrupt", "third_party"):
            yield from _risk_interrupt(flow, name, key, getattr(rule, key), path)
        if rule.then is not None and rule.then.handoff is None:
            text = f"risk class '{name}' ends the conversation: understanding may only raise, add 'handoff'"
            yield Issue((*path, "then"), text)
    yield from _threshold("the topic", understanding.topic_threshold, (*base, "topic_threshold"))
    yield from _topic_question(flow, understanding.topic_question)
    topics = _topic_values(flow)
    for name, topic_rule in understanding.topics.items():
        path = (*base, "topics", name)
        if topics is not None and name not in topics:
            text = f"understanding: topic '{name}' is no answer of the topic question{did_you_mean(name, topics)}"
            yield Issue(path, f"{text}: use {_quoted(topics)}", at_key=True)
        yield from _threshold(f"topic '{name}'", topic_rule.threshold, (*path, "threshold"))
        yield from _risk_interrupt(flow, name, "interrupt", topic_rule.interrupt, path, "topic")
    stored = stored_fields(flow)
    for k, name in enumerate(understanding.ask_once):
        if name not in stored:
            text = (
                f"understanding: ask_once names field '{name}', but no question stores it{did_you_mean(name, stored)}"
            )
            yield Issue((*base, "ask_once", k), text)


def _threshold(what: str, value: float, path: PathKey) -> Iterator[Issue]:
    if not 0.0 <= value <= 1.0:
        yield Issue(path, f"understanding: the threshold of {what} is {value:g}: a score goes from 0 to 1")


def _risk_interrupt(
    flow: Flow, risk: str, key: str, name: str | None, path: PathKey, what: str = "risk class"
) -> Iterator[Issue]:
    if name is None:
        return
    where = f"{what} '{risk}'"
    if name not in flow.interrupts:
        yield Issue((*path, key), f"{where} triggers " + _missing("interrupt", name, flow.interrupts))
    elif flow.interrupts[name].then.handoff is None:
        text = f"{where} triggers interrupt '{name}', which does not hand off: understanding may only raise"
        yield Issue((*path, key), text + " (choose an interrupt with 'handoff')")


def _topic_values(flow: Flow) -> list[str] | None:
    """The values of the topic question's choices (the model's topics are these), None without such a question."""
    sid = topic_question(flow)
    step = flow.steps.get(sid) if sid is not None else None
    return [choice.value for choice in step.choices] if step is not None and step.choices else None


def _topic_question(flow: Flow, sid: str | None) -> Iterator[Issue]:
    if sid is None:
        return
    path: PathKey = ("understanding", "topic_question")
    if sid not in flow.steps:
        yield Issue(path, "understanding: the topic question is " + _missing("step", sid, flow.steps))
    elif flow.steps[sid].choices is None:
        yield Issue(path, f"understanding: step '{sid}' is not a question with choices: it cannot take a topic")


# --- scenarios -------------------------------------------------------------------------------------------------


def check_scenarios(flow: Flow) -> Iterator[Issue]:
    stored = stored_fields(flow)
    for i, test in enumerate(flow.tests):
        path: PathKey = ("tests", i)
        where = f"test '{test.name}'"
        if test.channel not in CHANNELS:
            text = f"{where} runs on unknown channel '{test.channel}'{did_you_mean(test.channel, CHANNELS)}"
            yield Issue((*path, "channel"), f"{text}: use {_quoted(CHANNELS)}")
        if test.language is not None and test.language not in flow.languages:
            text = f"{where} is in '{test.language}', which is not {_languages(flow)}"
            yield Issue((*path, "language"), text + did_you_mean(test.language, flow.languages))
        if test.at.tzinfo is None or test.at.utcoffset() is None:
            text = f"{where}: 'at' needs a time zone offset, like 2026-03-10T14:00:00+01:00"
            yield Issue((*path, "at"), text)
        yield from _expectations(flow, where, test.expect, (*path, "expect"), stored)
        yield from _turn_readings(where, test.turns, (*path, "turns"))


def _expectations(
    flow: Flow, where: str, expect: Expect, path: PathKey, stored: Mapping[str, Stored]
) -> Iterator[Issue]:
    if expect.queue is not None and expect.queue not in flow.queues:
        yield Issue((*path, "queue"), f"{where} expects " + _missing("queue", expect.queue, flow.queues))
    for k, partner in enumerate(expect.partners or []):
        if partner not in flow.partners:
            yield Issue((*path, "partners", k), f"{where} expects " + _missing("partner", partner, flow.partners))
    if expect.step is not None and expect.step not in flow.steps:
        yield Issue((*path, "step"), f"{where} expects " + _missing("step", expect.step, flow.steps))
    risks = [*(r.value for r in RISKS), "none"]
    if expect.risk is not None and expect.risk not in risks:
        text = f"{where} expects unknown risk class '{expect.risk}'{did_you_mean(expect.risk, risks)}"
        yield Issue((*path, "risk"), f"{text}: use {_quoted(risks)}")
    for name in expect.fields:
        if name not in stored:
            text = f"{where} expects field '{name}', but no question stores it{did_you_mean(name, stored)}"
            yield Issue((*path, "fields", name), text, at_key=True)


def _turn_readings(where: str, turns: Sequence[str | Turn], path: PathKey) -> Iterator[Issue]:
    classes = [r.value for r in RISKS]
    for k, turn in enumerate(turns):
        if isinstance(turn, str) or turn.reading is None:
            continue
        base: PathKey = (*path, k, "reading")
        for name, score in turn.reading.scores.items():
            if name not in classes:
                text = f"{where}, turn {k + 1}: unknown risk class '{name}'{did_you_mean(name, classes)}"
                yield Issue((*base, "scores", name), f"{text}: use {_quoted(classes)}", at_key=True)
            elif not 0.0 <= score <= 1.0:
                text = f"{where}, turn {k + 1}: the score of '{name}' is {score:g}: a score goes from 0 to 1"
                yield Issue((*base, "scores", name), text)


CHECKS: tuple[Check, ...] = (
    check_steps_exist,
    check_queues_and_schedules_exist,
    check_outcome_targets,
    check_field_names,
    check_reserved_step_ids,
    check_unreachable_steps,
    check_ways_on,
    check_say_only_cycles,
    check_dead_ends,
    check_translations,
    check_phrase_languages,
    check_phrase_marks,
    check_interrupt_store,
    check_required_messages,
    check_casework,
    check_placeholders,
    check_where_to_turn,
    check_shadowed_rules,
    check_last_rule,
    check_conditions,
    check_timezone,
    check_schedules,
    check_choices,
    check_understanding,
    check_scenarios,
)
