"""The semantic checks of flows.yaml (``gateway/flows/checks.py``): each mistake an ops person can make gives one
``FILE:LINE:COLUMN: message`` line that names the thing, and all of them are reported at once."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.flows.checks import _strongly_connected
from gateway.flows.loader import load_text

FILE = "flows.yaml"

VALID_FLOW = """\
flow: {id: small, name: Small}
languages: [fr, en]
timezone: Europe/Paris
start: welcome
fallback: {queue: listeners}
summary: [topic, age]
fields:
  topic: {label: {fr: Sujet, en: Topic}}
  age: {label: {fr: Âge, en: Age}}
schedules:
  day:
    weekly:
      daily: ["09:00-23:00"]
queues:
  listeners:
    name: {fr: Écoutants, en: Listeners}
    schedule: day
partners:
  pharos:
    name: {fr: Pharos, en: Pharos}
    message: {fr: Signale sur Pharos., en: Report on Pharos.}
messages:
  not_understood: {fr: Pas compris., en: Not understood.}
  prefer_not_to_say: {fr: Je préfère ne pas dire, en: Prefer not to say}
  closed_line: {fr: "Fermé ({hours}).", en: "Closed ({hours})."}
  queued: {fr: "Numéro {position}, {wait} min.", en: "Number {position}, {wait} min."}
  queued_offline: {fr: "Position {position}, personne en ligne.", en: "Position {position}, nobody online."}
  reassurance: {fr: "Toujours là ({position}).", en: "Still here ({position})."}
  reminder: {fr: "Tu es là ?", en: "Are you there?"}
  abandoned: {fr: Au revoir., en: Goodbye.}
  ended: {fr: Fin., en: The end.}
  offer_listener: {fr: "Parler à un écoutant ?", en: "Talk to a listener?"}
  offer_yes: {fr: Oui, en: "Yes"}
  offer_no: {fr: Non, en: "No"}
  listener_joined: {fr: Un écoutant arrive., en: A listener joins.}
  idle_closed: {fr: Fermé., en: Closed.}
  rate_limited: {fr: "Trop vite, 119, 3114, 17 ou 112.", en: "Too fast, 119, 3114, 17 or 112."}
  blocked: {fr: "Pas possible, 119, 3114, 17 ou 112.", en: "Not possible, 119, 3114, 17 or 112."}
steps:
  welcome:
    say: {fr: Bonjour., en: Hello.}
    next: age
  age:
    ask: {fr: "Quel âge as-tu ?", en: "How old are you?"}
    number: {min: 5, max: 99}
    store: age
    next: topic
  topic:
    ask: {fr: "Que se passe-t-il ?", en: "What is happening?"}
    choices:
      - value: images
        label: {fr: Images, en: Images}
        synonyms: {fr: [photos], en: [nudes]}
      - value: other
        label: {fr: Autre, en: Other}
    store: topic
    next:
      - when: {field: topic, equals: images}
        goto: route
      - goto: details
  details:
    ask: {fr: Raconte., en: Tell me.}
    text: {max_length: 200}
    store: details
    next: route
interrupts:
  stop:
    match: {fr: [stop], en: [stop]}
    then:
      say: {fr: Au revoir., en: Bye.}
routing:
  - name: images
    when: {all: [{field: topic, equals: images}, {closed: listeners}]}
    then: {refer: [pharos], offer_listener: listeners}
  - name: young
    when: {field: age, lt: 11}
    then: {handoff: listeners, priority: urgent}
  - name: default
    then: {handoff: listeners}
canned_responses:
  - shortcut: hi
    title: {fr: Salut, en: Hi}
    text: {fr: Bonjour, en: Hello}
outcomes:
  - {id: images, label: {fr: Images, en: Images}}
tests:
  - name: young
    at: 2026-03-10T14:00:00+01:00
    channel: webchat
    language: fr
    turns: ["9", other, "on m'embête"]
    expect: {outcome: handoff, queue: listeners, priority: urgent}
"""


def problems(text: str) -> list[str]:
    loaded, found = load_text(text, FILE)
    assert (loaded is None) == bool(found)
    return [str(p) for p in found]


def mutate(*replacements: tuple[str, str]) -> str:
    """The valid flow with each ``old`` (found exactly once) replaced by ``new``."""
    text = VALID_FLOW
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def at(text: str, line_has: str, token: str | None = None, nth: int = 1) -> str:
    """``FILE:LINE:COLUMN`` of ``token`` on the ``nth`` line containing ``line_has``."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line_has in line]
    assert len(lines) >= nth, f"fewer than {nth} lines have {line_has!r}"
    number, line = lines[nth - 1]
    return f"{FILE}:{number}:{line.index(token or line_has) + 1}"


def step_at(text: str, sid: str) -> str:
    """``FILE:LINE:COLUMN`` of the id of step ``sid``."""
    return at(text.replace(f"\n  {sid}:\n", f"\n  {sid}: # step\n"), f"  {sid}: # step", sid)


def test_the_valid_flow_has_no_problem() -> None:
    assert problems(VALID_FLOW) == []


# --- references --------------------------------------------------------------------------------------------------


def test_missing_start_step_with_did_you_mean() -> None:
    text = mutate(("start: welcome", "start: welcom"))
    assert problems(text) == [
        f"{at(text, 'start:', 'welcom')}: the conversation starts at step 'welcom', which does not exist"
        " (did you mean 'welcome'?)"
    ]


def test_next_to_a_missing_step_suggests_route() -> None:
    text = mutate(("    next: route\ninterrupts", "    next: rout\ninterrupts"))
    assert problems(text) == [
        f"{at(text, 'next: rout', 'rout')}: step 'details' goes to 'rout', which does not exist (did you mean 'route'?)"
    ]


def test_branch_goto_to_a_missing_step() -> None:
    text = mutate(("goto: details", "goto: detail"))
    assert problems(text) == [
        f"{at(text, 'goto: detail', 'detail')}: step 'topic' goes to 'detail', which does not exist"
        " (did you mean 'details'?)",
        # 'details' is now an orphan
        f"{step_at(text, 'details')}: step 'details' is never reached",
    ]


def test_fallback_queue_and_schedules_must_exist() -> None:
    text = mutate(
        ("fallback: {queue: listeners}", "fallback: {queue: listener}"),
        ("    schedule: day", "    schedule: dya"),
        ("    name: {fr: Pharos, en: Pharos}", "    name: {fr: Pharos, en: Pharos}\n    schedule: nights"),
    )
    assert problems(text) == [
        f"{at(text, 'fallback:', 'listener')}: the fallback hands off to queue 'listener', which does not exist"
        " (did you mean 'listeners'?)",
        f"{at(text, 'schedule: dya', 'dya')}: queue 'listeners' uses schedule 'dya', which does not exist"
        " (did you mean 'day'?)",
        f"{at(text, 'schedule: nights', 'nights')}: partner 'pharos' uses schedule 'nights', which does not exist",
    ]


def test_the_always_schedule_is_built_in() -> None:
    assert problems(mutate(("    schedule: day", "    schedule: always"))) == []


def test_outcomes_name_existing_queues_and_partners() -> None:
    text = mutate(
        ("then: {refer: [pharos], offer_listener: listeners}", "then: {refer: [pharo], offer_listener: listenrs}"),
        ("then: {handoff: listeners, priority: urgent}", "then: {handoff: queue2, priority: urgent}"),
        ("      say: {fr: Au revoir., en: Bye.}", "      say: {fr: Au revoir., en: Bye.}\n      refer: pharos_"),
    )
    assert problems(text) == [
        f"{at(text, 'refer: pharos_', 'pharos_')}: interrupt 'stop' refers to partner 'pharos_', which does not exist"
        " (did you mean 'pharos'?)",
        f"{at(text, 'refer: [pharo]', 'pharo]')}: rule 1 refers to partner 'pharo', which does not exist"
        " (did you mean 'pharos'?)",
        f"{at(text, 'offer_listener: listenrs', 'listenrs')}: rule 1 offers a listener of queue 'listenrs',"
        " which does not exist (did you mean 'listeners'?)",
        f"{at(text, 'handoff: queue2', 'queue2')}: rule 2 hands off to queue 'queue2', which does not exist",
    ]


def test_open_and_closed_name_a_queue_or_a_partner() -> None:
    text = mutate(("{closed: listeners}", "{closed: listener}"))
    assert problems(text) == [
        f"{at(text, 'closed: listener', 'listener}')}: rule 1: 'closed' names 'listener', which is not a queue or"
        " a partner (did you mean 'listeners'?)"
    ]


def test_summary_and_field_labels_name_stored_fields() -> None:
    text = mutate(("summary: [topic, age]", "summary: [topic, aeg]"), ("  age: {label:", "  ages: {label:"))
    assert problems(text) == [
        f"{at(text, 'summary:', 'aeg')}: the summary shows field 'aeg', but no question stores it"
        " (did you mean 'age'?)",
        f"{at(text, '  ages:', 'ages')}: field 'ages' has a label, but no question stores it (did you mean 'age'?)",
    ]


def test_scenario_expectations_name_existing_things() -> None:
    text = mutate(
        (
            "expect: {outcome: handoff, queue: listeners, priority: urgent}",
            "expect: {outcome: handoff, queue: listener, partners: [pharos, phare], step: agee,"
            " fields: {topik: other}}",
        ),
    )
    assert problems(text) == [
        f"{at(text, 'expect:', token)}: test 'young' expects {what}"
        for token, what in [
            ("listener,", "queue 'listener', which does not exist (did you mean 'listeners'?)"),
            ("phare", "partner 'phare', which does not exist (did you mean 'pharos'?)"),
            ("agee", "step 'agee', which does not exist (did you mean 'age'?)"),
            ("topik", "field 'topik', but no question stores it (did you mean 'topic'?)"),
        ]
    ]


# --- graph -------------------------------------------------------------------------------------------------------


def test_route_is_a_reserved_step_id() -> None:
    text = mutate(("  details:\n", "  route:\n"), ("goto: details", "goto: route"))
    assert problems(text) == [
        f"{step_at(text, 'route')}: 'route' is a reserved word (go to the routing rules): give this step another name"
    ]


def test_unreachable_step() -> None:
    text = mutate(("steps:\n", "steps:\n  orphan:\n    say: {fr: Oups., en: Oops.}\n    next: route\n"))
    assert problems(text) == [f"{step_at(text, 'orphan')}: step 'orphan' is never reached"]


def test_step_without_next() -> None:
    text = mutate(("    store: details\n    next: route\n", "    store: details\n"))
    assert problems(text) == [
        f"{step_at(text, 'details')}: step 'details' has no 'next': say where the conversation goes"
    ]


def test_last_branch_needs_no_when() -> None:
    text = mutate(("      - goto: details", "      - when: {field: topic, equals: other}\n        goto: details"))
    assert problems(text) == [
        f"{at(text, 'equals: other', 'when')}: step 'topic': the last branch needs no 'when' (the otherwise case)"
    ]


def test_say_only_cycle() -> None:
    text = mutate(
        (
            "    say: {fr: Bonjour., en: Hello.}\n    next: age",
            "    say: {fr: Bonjour., en: Hello.}\n    next: again\n  again:\n    say: {fr: Re., en: Again.}\n"
            "    next:\n      - {when: {channel: webchat}, goto: welcome}\n      - {goto: age}",
        ),
    )
    assert problems(text) == [
        f"{at(text, 'next: again', 'again')}: steps 'welcome' → 'again' only say something and lead to each other:"
        " the bot would talk forever"
    ]


def test_say_only_step_going_back_to_itself() -> None:
    text = mutate(
        ("    say: {fr: Bonjour., en: Hello.}\n    next: age", "    say: {fr: Bonjour., en: Hello.}\n    next: welcome")
    )
    assert problems(text) == [
        f"{at(text, 'next: welcome', 'welcome')}: step 'welcome' only says something and goes back to itself:"
        " the bot would talk forever",
        f"{step_at(text, 'age')}: step 'age' is never reached",
        f"{step_at(text, 'topic')}: step 'topic' is never reached",
        f"{step_at(text, 'details')}: step 'details' is never reached",
    ]


def test_questions_that_never_reach_route_are_dead_ends() -> None:
    text = mutate(
        ("goto: route", "goto: age"), ("    store: details\n    next: route", "    store: details\n    next: topic")
    )
    assert problems(text) == [
        f"{step_at(text, sid)}: step '{sid}' never leads to 'route': from here the conversation goes round in circles"
        for sid in ("welcome", "age", "topic", "details")
    ]


def test_a_question_loop_with_a_way_out_is_fine() -> None:
    text = mutate(
        ("      - goto: details", "      - {when: {field: topic, equals: other}, goto: details}\n      - goto: age")
    )
    assert problems(text) == []


# --- texts -------------------------------------------------------------------------------------------------------


def test_missing_translation_unknown_language_and_empty_text() -> None:
    text = mutate(
        ("ask: {fr: Raconte., en: Tell me.}", "ask: {fr: Raconte.}"),
        ("title: {fr: Salut, en: Hi}", "title: {fr: Salut, en: Hi, de: Hallo}"),
        ("label: {fr: Autre, en: Other}", "label: {fr: Autre, en: ' '}"),
    )
    assert problems(text) == [
        f"{at(text, 'label: {fr: Autre', chr(39))}: choice 'other' of step 'topic' is empty in 'en'",
        f"{at(text, 'ask: {fr: Raconte.}', '{')}: the question of step 'details' has no text in 'en'",
        f"{at(text, 'title:', 'de')}: the title of canned response 'hi': 'de' is not one of the languages (fr, en)",
    ]


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("    name: {fr: Écoutants, en: Listeners}", "    name: {fr: Écoutants}", "the name of queue 'listeners'"),
        (
            "message: {fr: Signale sur Pharos., en: Report on Pharos.}",
            "message: {fr: Signale sur Pharos.}",
            "the message of partner 'pharos'",
        ),
        ("say: {fr: Au revoir., en: Bye.}", "say: {fr: Au revoir.}", "what interrupt 'stop' says"),
        ("say: {fr: Bonjour., en: Hello.}", "say: [{fr: Bonjour.}]", "what step 'welcome' says"),
        ("label: {fr: Images, en: Images}}", "label: {fr: Images}}", "the label of outcome 'images'"),
        ("  topic: {label: {fr: Sujet, en: Topic}}", "  topic: {label: {fr: Sujet}}", "the label of field 'topic'"),
        ("  ended: {fr: Fin., en: The end.}", "  ended: {fr: Fin.}", "message 'ended'"),
        ("text: {fr: Bonjour, en: Hello}", "text: {fr: Bonjour}", "the text of canned response 'hi'"),
    ],
)
def test_every_text_needs_every_language(old: str, new: str, what: str) -> None:
    text = mutate((old, new))
    [problem] = problems(text)
    assert problem.startswith(at(text, new.strip(), "{fr") + ":")
    assert problem.endswith(f": {what} has no text in 'en'")


def test_a_new_language_is_missing_everywhere_on_one_line_per_text() -> None:
    found = problems(mutate(("languages: [fr, en]", "languages: [fr, en, de]")))
    assert len(found) == 31  # every text of the flow (rate_limited, blocked and queued_offline among them)
    assert all(p.endswith("has no text in 'de'") for p in found)


def test_synonyms_and_interrupt_phrases_in_known_languages() -> None:
    text = mutate(
        ("synonyms: {fr: [photos], en: [nudes]}", "synonyms: {fr: [photos], eng: [nudes]}"),
        ("match: {fr: [stop], en: [stop]}", "match: {fr: [stop], xx: [basta]}"),
    )
    assert problems(text) == [
        f"{at(text, 'synonyms:', 'eng')}: the synonyms of choice 'images' of step 'topic': 'eng' is not one of the"
        " languages (fr, en) (did you mean 'en'?)",
        f"{at(text, 'match:', 'xx')}: the phrases of interrupt 'stop': 'xx' is not one of the languages (fr, en) nor"
        " one it only reads (ar, es, pt, ru, tr, uk)",
    ]


def test_interrupt_phrases_in_a_language_the_bot_reads_and_does_not_speak() -> None:
    # "quero morrer", "bghit nmout": words of danger in a young person's first language are read, never spoken
    assert problems(mutate(("match: {fr: [stop], en: [stop]}", "match: {fr: [stop], en: [stop], pt: [basta]}"))) == []
    text = mutate(("synonyms: {fr: [photos], en: [nudes]}", "synonyms: {fr: [photos], en: [nudes], pt: [nudes]}"))
    assert problems(text) == [  # a choice's synonyms are the bot's own languages: it answers in the one chosen
        f"{at(text, 'synonyms:', 'pt')}: the synonyms of choice 'images' of step 'topic': 'pt' is not one of the"
        " languages (fr, en)"
    ]


def test_interrupt_without_phrases() -> None:
    text = mutate(("match: {fr: [stop], en: [stop]}", "match: {fr: [], en: []}"))
    assert problems(text) == [
        f"{at(text, 'match:', '{')}: interrupt 'stop' has no phrases: it would never interrupt anything"
    ]


# --- messages ----------------------------------------------------------------------------------------------------


def test_required_message_missing_and_unknown_message_key() -> None:
    text = mutate(("  reminder:", "  remindr:"))
    assert problems(text) == [
        f"{at(text, 'not_understood:', 'not_understood')}: message 'reminder' is missing",
        f"{at(text, 'remindr:', 'remindr')}: unknown message 'remindr' (did you mean 'reminder'?)",
    ]


def test_placeholders_only_the_allowed_ones() -> None:
    text = mutate(
        ('"Numéro {position}, {wait} min."', '"Numéro {position}, {attente} min."'),
        ('en: "Still here ({position})."', 'en: "Still here ({position}, {wait})."'),
        ("ended: {fr: Fin., en: The end.}", 'ended: {fr: "Fin {position}.", en: The end.}'),
        ('en: "Closed ({hours})."', 'en: "Closed {hours}}."'),
    )
    closed, queued = at(text, "closed_line:", '"Closed'), at(text, "queued:", '"')
    reassurance, ended = at(text, "reassurance:", '"Still'), at(text, "ended:", '"Fin')
    assert problems(text) == [
        f"{closed}: message 'closed_line' in 'en': a '{{' or '}}' has no partner:"
        " write {{ or }} for a brace itself",
        f"{queued}: message 'queued' in 'fr': unknown placeholder {{attente}}: use only {{position}}, {{wait}}",
        f"{reassurance}: message 'reassurance' in 'en': unknown placeholder {{wait}}: use only {{position}}",
        f"{ended}: message 'ended' in 'fr': unknown placeholder {{position}}: this message takes no placeholder",
    ]


# --- rules -------------------------------------------------------------------------------------------------------


def test_rules_after_a_catch_all_never_match() -> None:
    text = mutate(("  - name: young\n    when: {field: age, lt: 11}\n", "  - name: young\n"))
    assert problems(text) == [
        f"{at(text, '  - name: default', 'name')}: rule 3 can never match: rule 2 above always matches"
    ]


def test_the_last_rule_needs_no_when() -> None:
    text = mutate(("  - name: default\n    then:", "  - name: default\n    when: {channel: telegram}\n    then:"))
    assert problems(text) == [
        f"{at(text, 'when: {channel: telegram}', 'when')}: the last rule needs no 'when', so that every conversation"
        " ends somewhere (the engine falls back to a listener)"
    ]


def test_condition_on_a_field_no_question_stores() -> None:
    text = mutate(("{field: age, lt: 11}", "{field: ages, lt: 11}"))
    assert problems(text) == [
        f"{at(text, 'field: ages', 'ages')}: rule 2: field 'ages' is never stored by a question (did you mean 'age'?)"
    ]


def test_choice_values_that_do_not_exist_with_did_you_mean() -> None:
    text = mutate(
        (
            "{all: [{field: topic, equals: images}, {closed: listeners}]}",
            "{all: [{field: topic, in: [unknown, image]}, {not: {field: topic, equals: others}}]}",
        ),
    )
    values = "its values are images, other, unknown"
    assert problems(text) == [
        f"{at(text, 'in: [unknown, image]', 'image]')}: rule 1: field 'topic' is never 'image'"
        f" (did you mean 'images'?): {values}",
        f"{at(text, 'equals: others', 'others')}: rule 1: field 'topic' is never 'others' (did you mean 'other'?):"
        f" {values}",
    ]


def test_number_comparison_on_a_choice_field() -> None:
    text = mutate(("{field: age, lt: 11}", "{field: topic, lt: 11}"))
    assert problems(text) == [
        f"{at(text, 'field: topic, lt', '11')}: rule 2: field 'topic' holds a choice, not a number: 'lt' never matches"
    ]


@pytest.mark.parametrize(
    ("condition", "never"),
    [("lt: 5", "lt: 5"), ("le: 4", "le: 4"), ("gt: 99", "gt: 99"), ("ge: 99.5", "ge: 99.5")],
)
def test_comparison_outside_the_number_bounds(condition: str, never: str) -> None:
    text = mutate(("{field: age, lt: 11}", f"{{field: age, {condition}}}"))
    assert problems(text) == [
        f"{at(text, 'field: age,', condition.split()[-1])}: rule 2: field 'age' is a number from 5 to 99,"
        f" so '{never}' is never true"
    ]


@pytest.mark.parametrize("condition", ["lt: 6", "le: 5", "gt: 98", "ge: 99", "equals: unknown", "in: [5, 99]"])
def test_comparisons_inside_the_bounds_are_fine(condition: str) -> None:
    assert problems(mutate(("{field: age, lt: 11}", f"{{field: age, {condition}}}"))) == []


def test_equals_a_number_outside_the_bounds() -> None:
    text = mutate(("{field: age, lt: 11}", "{field: age, equals: 150}"))
    assert problems(text) == [
        f"{at(text, 'equals: 150', '150')}: rule 2: field 'age' is a number from 5 to 99 (or 'unknown'), so it is"
        " never '150'"
    ]


def test_unknown_channel_and_language_in_conditions() -> None:
    text = mutate(("{field: age, lt: 11}", "{any: [{channel: [webchat, whatsap]}, {language: de}]}"))
    assert problems(text) == [
        f"{at(text, 'whatsap', 'whatsap')}: rule 2: unknown channel 'whatsap' (did you mean 'whatsapp'?): use webchat,"
        " messenger, whatsapp, telegram",
        f"{at(text, 'language: de', 'de')}: rule 2: unknown language 'de': use fr, en",
    ]


def test_branch_conditions_are_checked_too() -> None:
    text = mutate(("when: {field: topic, equals: images}\n", "when: {field: topic, equals: imags}\n"))
    assert problems(text) == [
        f"{at(text, 'equals: imags', 'imags')}: step 'topic', branch 1: field 'topic' is never 'imags'"
        " (did you mean 'images'?): its values are images, other, unknown"
    ]


# --- hours and choices -------------------------------------------------------------------------------------------


def test_unknown_time_zone_with_did_you_mean() -> None:
    text = mutate(("timezone: Europe/Paris", "timezone: Europe/Pari"))
    assert problems(text) == [
        f"{at(text, 'timezone:', 'Europe')}: unknown time zone 'Europe/Pari' (did you mean 'Europe/Paris'?):"
        " use a name like Europe/Paris"
    ]


def test_schedule_never_open() -> None:
    text = mutate(('      daily: ["09:00-23:00"]', "      daily: closed"))
    assert problems(text) == [f"{at(text, '  day:', 'day')}: schedule 'day' is never open: give it 'weekly' hours"]


def test_overlapping_hours() -> None:
    text = mutate(
        (
            '      daily: ["09:00-23:00"]',
            '      daily: ["09:00-12:00", "12:00-14:00"]\n      sat: ["09:00-12:00", "11:00-02:00"]',
        )
    )
    overlap = at(text, "sat:", '"11:00')
    assert problems(text) == [f"{overlap}: schedule 'day' on sat: hours '11:00-02:00' overlap '09:00-12:00'"]


def test_duplicate_choice_values() -> None:
    text = mutate(("      - value: other", "      - value: images"))
    assert problems(text) == [
        f"{at(text, '- value: images', 'images', nth=2)}: step 'topic' has two choices with the value 'images'"
    ]


def test_a_language_question_offers_known_languages() -> None:
    text = mutate(
        ("    store: topic\n", "    store: language\n"),
        ("summary: [topic, age]", "summary: [age]"),
        ("  topic: {label: {fr: Sujet, en: Topic}}\n", ""),
        ("when: {field: topic, equals: images}\n", "when: {field: language, equals: images}\n"),
        ("{all: [{field: topic, equals: images}, {closed: listeners}]}", "{closed: listeners}"),
    )
    languages = "is not one of the languages (fr, en)"
    assert problems(text) == [
        f"{at(text, '- value: images', 'images')}: step 'topic' stores the language, but 'images' {languages}",
        f"{at(text, '- value: other', 'other')}: step 'topic' stores the language, but 'other' {languages}",
    ]


def test_text_positions_inside_a_one_text_say() -> None:
    text = mutate(
        ("    say: {fr: Bonjour., en: Hello.}", "    say:\n      fr: Bonjour.\n      en: Hello.\n      de: Hallo.")
    )
    assert problems(text) == [
        f"{at(text, 'de: Hallo.', 'de')}: what step 'welcome' says: 'de' is not one of the languages (fr, en)"
    ]


# --- scenarios ---------------------------------------------------------------------------------------------------


def test_scenario_channel_language_and_time_zone() -> None:
    text = mutate(
        ("at: 2026-03-10T14:00:00+01:00", "at: 2026-03-10T14:00:00"),
        ("channel: webchat", "channel: sms"),
        ("language: fr\n", "language: de\n"),
    )
    assert problems(text) == [
        f"{at(text, 'at: 2026', '2026')}: test 'young': 'at' needs a time zone offset, like 2026-03-10T14:00:00+01:00",
        f"{at(text, 'channel: sms', 'sms')}: test 'young' runs on unknown channel 'sms': use webchat, messenger,"
        " whatsapp, telegram",
        f"{at(text, 'language: de', 'de')}: test 'young' is in 'de', which is not one of the languages (fr, en)",
    ]


# --- everything at once ------------------------------------------------------------------------------------------


def test_five_mistakes_give_five_lines() -> None:
    text = mutate(
        ("start: welcome", "start: welcom"),
        ("ask: {fr: Raconte., en: Tell me.}", "ask: {fr: Raconte.}"),
        ("    schedule: day", "    schedule: dya"),
        ("{field: age, lt: 11}", "{field: age, lt: 0}"),
        ('      daily: ["09:00-23:00"]', '      daily: ["09:00-23:00"]\n      mon: ["08:00-12:00", "10:00-13:00"]'),
    )
    found = problems(text)
    assert [line.split(": ", 1)[1] for line in found] == [
        "the conversation starts at step 'welcom', which does not exist (did you mean 'welcome'?)",
        "schedule 'day' on mon: hours '10:00-13:00' overlap '08:00-12:00'",
        "queue 'listeners' uses schedule 'dya', which does not exist (did you mean 'day'?)",
        "the question of step 'details' has no text in 'en'",
        "rule 2: field 'age' is a number from 5 to 99, so 'lt: 0' is never true",
    ]
    assert [int(line.split(":")[1]) for line in found] == sorted(int(line.split(":")[1]) for line in found)


def test_schema_errors_and_dict_mutations_round_trip() -> None:
    data = yaml.safe_load(VALID_FLOW)
    data["steps"]["details"]["next"] = "topik"
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    assert problems(text) == [
        f"{at(text, 'next: topik', 'topik')}: step 'details' goes to 'topik', which does not exist"
        " (did you mean 'topic'?)"
    ]


QUOTED_STAR = "'*"


def test_interrupt_phrase_marks_and_false_friends() -> None:
    text = mutate(
        (
            "match: {fr: [stop], en: [stop]}",
            "match: {fr: [stop, (il|elle a], en: [stop]}\n    ignore: {de: [x]}\n    alone: {fr: ['* fin']}",
        )
    )
    assert problems(text) == [
        f"{at(text, 'match:', '(il')}: interrupt 'stop', phrase '(il|elle a': a '(' has no ')'",
        f"{at(text, 'ignore:', 'de')}: the false friends of interrupt 'stop': 'de' is not one of the languages"
        " (fr, en) nor one it only reads (ar, es, pt, ru, tr, uk)",
        f"{at(text, 'alone:', QUOTED_STAR)}: interrupt 'stop', phrase '* fin': '*' stands between words, not at"
        " the start or the end",
    ]


def test_interrupt_hyperbole_phrases_are_checked_like_the_others() -> None:
    text = mutate(
        (
            "match: {fr: [stop], en: [stop]}",
            "match: {fr: [stop], en: [stop]}\n    hyperbole: {fr: [(je|j veux], de: [x]}",
        )
    )
    assert problems(text) == [
        f"{at(text, 'hyperbole:', '(je')}: interrupt 'stop', phrase '(je|j veux': a '(' has no ')'",
        f"{at(text, 'hyperbole:', 'de')}: the hyperbole of interrupt 'stop': 'de' is not one of the languages (fr, en)"
        " nor one it only reads (ar, es, pt, ru, tr, uk)",
    ]


UNDERSTANDING = """
understanding:
  risks:
    imminent_danger: {threshold: 0.5, interrupt: stop}
    suicide: {threshold: 1.5, interrupt: stp}
    self_harm: {threshold: 0.4, then: {say: {fr: Oui., en: Yes.}}}
    abuse_hom: {threshold: 0.5, then: {handoff: listeners, refer: [pharos_]}}
  topic_threshold: -0.1
  topic_question: topc
  ask_once: [age, agge]
routing:"""


def test_understanding_cross_references() -> None:
    text = mutate(("\nrouting:", UNDERSTANDING))
    assert problems(text) == [
        f"{at(text, 'risks:', 'risks')}: understanding: risk class 'abuse_home' is missing: give it a threshold"
        " and an interrupt",
        f"{at(text, 'imminent_danger:', 'stop')}: risk class 'imminent_danger' triggers interrupt 'stop', which does"
        " not hand off: understanding may only raise (choose an interrupt with 'handoff')",
        f"{at(text, 'suicide:', '1.5')}: understanding: the threshold of risk class 'suicide' is 1.5: a score goes"
        " from 0 to 1",
        f"{at(text, 'suicide:', 'stp')}: risk class 'suicide' triggers interrupt 'stp', which does not exist"
        " (did you mean 'stop'?)",
        f"{at(text, 'self_harm:', '{say')}: risk class 'self_harm' ends the conversation: understanding may only"
        " raise, add 'handoff'",
        f"{at(text, 'abuse_hom:', 'abuse_hom')}: understanding: unknown risk class 'abuse_hom' (did you mean"
        " 'abuse_home'?): use imminent_danger, suicide, self_harm, abuse_home",
        f"{at(text, 'abuse_hom:', 'pharos_')}: risk class 'abuse_hom' refers to partner 'pharos_', which does not"
        " exist (did you mean 'pharos'?)",
        f"{at(text, 'topic_threshold:', '-0.1')}: understanding: the threshold of the topic is -0.1: a score goes"
        " from 0 to 1",
        f"{at(text, 'topic_question:', 'topc')}: understanding: the topic question is step 'topc', which does not"
        " exist (did you mean 'topic'?)",
        f"{at(text, 'ask_once:', 'agge')}: understanding: ask_once names field 'agge', but no question stores it"
        " (did you mean 'age'?)",
    ]


def test_understanding_needs_one_action_per_risk_class() -> None:
    understanding = UNDERSTANDING.replace("{threshold: 0.4, then: {say: {fr: Oui., en: Yes.}}}", "{threshold: 0.4}")
    text = mutate(("\nrouting:", understanding))
    expected = f"{at(text, 'self_harm:', '{')}: 'self_harm': a risk class needs exactly one of 'interrupt' or 'then'"
    assert expected in problems(text)


def test_scenario_readings_and_risk_expectations() -> None:
    text = mutate(
        (
            """turns: ["9", other, "on m'embête"]""",
            """turns: ["9", {text: x, reading: {scores: {suicid: 0.9, self_harm: 2}}}]""",
        ),
        ("expect: {outcome: handoff, queue: listeners, priority: urgent}", "expect: {risk: suicde}"),
    )
    name = "test 'young'"
    found = problems(text)
    assert found == [
        f"{at(text, 'turns:', 'suicid')}: {name}, turn 2: unknown risk class 'suicid' (did you mean 'suicide'?): use"
        " imminent_danger, suicide, self_harm, abuse_home",
        f"{at(text, 'turns:', '2}')}: {name}, turn 2: the score of 'self_harm' is 2: a score goes from 0 to 1",
        f"{at(text, 'expect:', 'suicde')}: {name} expects unknown risk class 'suicde' (did you mean 'suicide'?): use"
        " imminent_danger, suicide, self_harm, abuse_home, none",
    ]


def test_a_closed_line_must_say_where_to_turn_now() -> None:
    """An ops edit shortened the closed line to "Le chat est fermé, reviens {reopens} !": `flows check` said ok, and
    every young person writing at night was told only that (a rule like `everything_else: {handoff: listeners}`
    refers to nobody). With an emergency partner in the flow, the closed line and its reminder must give its number,
    in every language (spaces inside the number allowed: "1 1 2")."""
    emergency = (
        "    message: {fr: Signale sur Pharos., en: Report on Pharos.}\n",
        "    message: {fr: Signale sur Pharos., en: Report on Pharos.}\n"
        '  emergency:\n    name: {fr: Urgences, en: Emergency}\n    phone: "112"\n    emergency: true\n'
        '    message: {fr: "En danger, appelle le 17 ou le 112.", en: "In danger, call 17 or 112."}\n',
    )
    text = mutate(
        emergency,
        ('closed_line: {fr: "Fermé ({hours}).", en: "Closed ({hours})."}',
         'closed_line: {fr: "Fermé ({hours}), en danger le 1 1 2.", en: "Closed, back {reopens}!"}\n'
         '  closed_line_again: {fr: "Toujours fermé.", en: "Still closed, in danger call 112."}'),
    )  # fmt: skip
    closed, again = at(text, "Closed, back", '"Closed'), at(text, "Toujours fermé", '"Toujours')
    found = problems(text)
    assert found[:2] == [
        f"{closed}: message 'closed_line' in 'en' does not say where to turn now (it is"
        " sent while nobody can answer here): give the number of partner 'emergency' (112)",
        f"{again}: message 'closed_line_again' in 'fr' does not say where to turn now"
        " (it is sent while nobody can answer here): give the number of partner 'emergency' (112)",
    ]
    # the others a young person may be left with for now: the test flow's end, goodbye and "nobody online" give no
    # number; its refusals (rate_limited, blocked) do
    flagged = [re.search(r"message '(\w+)' in '(\w+)'", problem).groups() for problem in found[2:]]  # type: ignore[union-attr]
    assert sorted(flagged) == sorted(
        (key, lang) for key in ("queued_offline", "abandoned", "ended", "idle_closed") for lang in ("fr", "en")
    )
    assert problems(VALID_FLOW) == []  # without an emergency partner, nothing to look for


def test_the_web_chat_pages_unreachable_words_must_say_where_to_turn_now() -> None:
    """``messages.unreachable`` is all a web chat page that cannot reach the line says (gateway/app.py puts it in the
    page): with an emergency partner in the flow, it must give its number as the closed line does."""
    text = mutate(
        ("    message: {fr: Signale sur Pharos., en: Report on Pharos.}\n",
         "    message: {fr: Signale sur Pharos., en: Report on Pharos.}\n"
         '  emergency:\n    name: {fr: Urgences, en: Emergency}\n    phone: "112"\n    emergency: true\n'
         '    message: {fr: "En danger, appelle le 17 ou le 112.", en: "In danger, call 17 or 112."}\n'),
        ('closed_line: {fr: "Fermé ({hours}).", en: "Closed ({hours})."}',
         'closed_line: {fr: "Fermé ({hours}).", en: "Closed ({hours})."}\n'
         '  unreachable: {fr: "Le chat ne répond pas, en danger le 112.", en: "The chat is not answering."}'),
    )  # fmt: skip
    where = at(text, "The chat is not answering", '"The chat')
    assert (
        f"{where}: message 'unreachable' in 'en' does not say where to turn now (it is sent while nobody can answer"
        " here): give the number of partner 'emergency' (112)"
    ) in problems(text)


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefgh"), max_size=4), min_size=1))
def test_say_only_groups_are_the_steps_that_reach_each_other(edges: dict[str, list[str]]) -> None:
    """The one-pass grouping (since 2026-12-06) finds what walking every step's reach found: two steps are in one
    group exactly when each reaches the other."""
    successors = {node: [t for t in targets if t in edges] for node, targets in edges.items()}

    def reach(node: str) -> set[str]:
        seen, todo = set(), list(successors[node])
        while todo:
            if (next_ := todo.pop()) not in seen:
                seen.add(next_)
                todo += successors[next_]
        return seen

    after = {node: reach(node) for node in successors}
    groups = _strongly_connected(list(successors), successors)
    assert sorted(n for group in groups for n in group) == sorted(successors)
    for group in groups:
        for node in successors:
            together = node == group[0] or (node in after[group[0]] and group[0] in after[node])
            assert (node in group) == together
