"""The default flows.yaml shipped at the repository root: it loads cleanly, is complete in French and English,
names the partner services the line relies on, and its conversation tests pass and exercise every rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from gateway.flows.engine import Engine, StepResult
from gateway.flows.loader import load_text
from gateway.flows.model import REQUIRED_MESSAGES, Scenario
from gateway.flows.positions import LoadedFlow
from gateway.flows.scenarios import run_scenarios

FLOWS_YAML = Path(__file__).resolve().parents[2] / "flows.yaml"
LANGUAGES = ("fr", "en")
PARTNERS = ("119", "116006", "pharos", "emergency", "3114", "brigade_numerique")
INTERRUPTS = ("danger_now", "suicide_friend", "suicide", "self_harm", "abuse_home", "sextortion", "human", "stop")


@pytest.fixture(scope="module")
def loaded() -> LoadedFlow:
    result, problems = load_text(FLOWS_YAML.read_text(encoding="utf-8"), str(FLOWS_YAML))
    assert [str(p) for p in problems] == []
    assert result is not None
    return result


@pytest.fixture(scope="module")
def engine(loaded: LoadedFlow) -> Engine:
    return Engine(loaded)


def _final_step(engine: Engine, scenario: Scenario) -> StepResult:
    """Replay one conversation test and return the last step (to see which rule or interrupt decided)."""
    step = engine.start(channel=scenario.channel, now=scenario.at, language_hint=scenario.language)
    for turn in scenario.turns:
        if step.state.finished:
            break
        if isinstance(turn, str):
            step = engine.step(step.state, turn, now=scenario.at)
        else:
            reading = turn.reading.to_reading() if turn.reading else None
            step = engine.step(step.state, turn.text, now=scenario.at, reading=reading)
    return step


@pytest.fixture(scope="module")
def finals(engine: Engine) -> list[tuple[Scenario, StepResult]]:
    return [(s, _final_step(engine, s)) for s in engine.flow.tests]


def _local_texts(data: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping holding a per-language text (a ``fr`` or ``en`` key), with its path."""
    if isinstance(data, dict):
        if any(lang in data for lang in LANGUAGES) and all(isinstance(v, str) for v in data.values()):
            yield path, data
            return
        for key, value in data.items():
            yield from _local_texts(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _local_texts(item, f"{path}[{i}]")


# ----- loading and completeness -------------------------------------------------------------------------------


def test_default_flow_loads_without_problems(loaded: LoadedFlow) -> None:
    flow = loaded.flow
    assert flow.languages == ["fr", "en"]
    assert flow.default_language == "fr"
    assert flow.timezone == "Europe/Paris"
    assert flow.retries == 2
    assert (flow.fallback.queue, flow.fallback.priority) == ("listeners", "high")
    assert list(flow.steps)[:3] == ["welcome", "urgency", "language"]


def test_every_required_message_in_french_and_english(loaded: LoadedFlow) -> None:
    messages = loaded.flow.messages
    for key in REQUIRED_MESSAGES:
        assert key in messages, key
        for lang in LANGUAGES:
            assert messages[key].get(lang, "").strip(), f"messages.{key} has no {lang} text"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_message_placeholders(loaded: LoadedFlow, lang: str) -> None:
    messages = loaded.flow.messages
    assert "{hours}" in messages["closed_line"][lang] and "{reopens}" in messages["closed_line"][lang]
    assert "{position}" in messages["queued"][lang] and "{wait}" in messages["queued"][lang]
    assert "{position}" in messages["reassurance"][lang]
    allowed = {
        "closed_line": {"hours", "reopens"},
        "closed_line_again": {"hours", "reopens"},
        "queued": {"position", "wait"},
        "queued_offline": {"position"},
        "reassurance": {"position"},
        "reopened": {"position"},
        "reopened_offline": {"position"},
    }
    for key, local in messages.items():
        used = set(re.findall(r"\{(\w*)\}", local[lang]))
        assert used <= allowed.get(key, set()), f"messages.{key} ({lang}) uses unknown placeholders {used}"


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("key", ["closed_line", "closed_line_again"])
def test_closed_line_says_where_to_turn_now(loaded: LoadedFlow, lang: str, key: str) -> None:
    """The reminder at a night hand-off too: the numbers stay in sight at the end (tests/e2e/test_chat_end.py)."""
    closed = loaded.flow.messages[key][lang]
    for number in ("119", "3114", "17", "112"):
        assert re.search(rf"\b{number}\b", closed), f"{key} ({lang}) does not give {number}"


def test_every_text_has_french_and_english() -> None:
    data = yaml.safe_load(FLOWS_YAML.read_text(encoding="utf-8"))
    data.pop("tests", None)
    missing = [
        f"{path} ({lang})"
        for path, local in _local_texts(data)
        if not path.endswith(".synonyms")
        for lang in LANGUAGES
        if not str(local.get(lang, "")).strip()
    ]
    assert missing == []


def test_partners(loaded: LoadedFlow) -> None:
    partners = loaded.flow.partners
    assert set(PARTNERS) <= set(partners)
    assert partners["119"].url == "https://www.allo119.gouv.fr" and partners["119"].schedule == "always"
    assert partners["116006"].url == "https://www.france-victimes.fr" and partners["116006"].schedule == "victims"
    assert partners["pharos"].url == "https://www.internet-signalement.gouv.fr"
    assert partners["3114"].url == "https://3114.fr" and partners["3114"].schedule == "always"
    assert partners["brigade_numerique"].url == "https://www.gendarmerie.interieur.gouv.fr/brigade-numerique"
    assert partners["emergency"].emergency is True
    assert [name for name, p in partners.items() if p.emergency] == ["emergency"]
    for lang in LANGUAGES:
        for number in ("17", "112", "114"):
            assert re.search(rf"\b{number}\b", partners["emergency"].message[lang])
        assert "urgence" in partners["brigade_numerique"].message["fr"]
        assert "not an emergency" in partners["brigade_numerique"].message["en"]


def test_schedules_and_queue(loaded: LoadedFlow) -> None:
    flow = loaded.flow
    assert flow.queues["listeners"].schedule == "listeners"
    listeners = flow.schedules["listeners"]
    assert listeners.weekly["daily"] == [(9 * 60, 23 * 60)]
    assert any(c.hours for c in listeners.closures), "an example partial closure is expected"
    assert listeners.openings, "an example exceptional opening is expected"
    assert flow.schedules["victims"].weekly["daily"] == [(9 * 60, 19 * 60)]


def test_interrupts(loaded: LoadedFlow) -> None:
    interrupts = loaded.flow.interrupts
    assert list(interrupts) == list(INTERRUPTS)
    expected = {
        "danger_now": ("urgent", ["emergency"]),
        "suicide_friend": ("urgent", ["3114"]),
        "suicide": ("urgent", ["3114"]),
        "self_harm": ("urgent", ["3114"]),
        "abuse_home": ("high", ["119"]),
        "sextortion": ("high", ["pharos"]),
        "human": ("high", []),
    }
    for name, (priority, partners) in expected.items():
        then = interrupts[name].then
        assert (then.handoff, then.priority, then.refer) == ("listeners", priority, partners), name
    assert interrupts["stop"].then.handoff is None
    for lang in LANGUAGES:
        assert all(interrupt.match[lang] for interrupt in interrupts.values())
        assert "119" in interrupts["stop"].then.say[0][lang] and "3114" in interrupts["stop"].then.say[0][lang]


def test_listener_tools(loaded: LoadedFlow) -> None:
    flow = loaded.flow
    assert len(flow.canned_responses) >= 8
    shortcuts = [c.shortcut for c in flow.canned_responses]
    assert len(shortcuts) == len(set(shortcuts))
    assert {"/bonjour", "/pharos", "/preuves", "/nepaspayer", "/signaler", "/119", "/fin", "/parents"} <= set(shortcuts)
    ids = [o.id for o in flow.outcomes]
    assert len(ids) == len(set(ids)) and len(ids) >= 12
    assert flow.summary == ["urgency", "age", "who", "topic", "home"]
    stored = {s.store for s in flow.steps.values() if s.store}
    assert set(flow.summary) <= stored <= set(flow.fields)
    t = flow.timers
    assert (t.bot_reminder_minutes, t.bot_abandon_minutes, t.queue_reassurance_minutes, t.idle_close_hours) == (
        10,
        30,
        5,
        24,
    )


# ----- conversation tests ---------------------------------------------------------------------------------------


def test_conversation_tests_pass(engine: Engine) -> None:
    results = run_scenarios(engine)
    assert len(results) >= 16
    failed = {r.name: [*r.failures, *r.transcript] for r in results if not r.passed}
    assert failed == {}


def test_every_rule_and_interrupt_is_exercised_in_both_languages(
    loaded: LoadedFlow, finals: list[tuple[Scenario, StepResult]]
) -> None:
    names = [rule.name or "" for rule in loaded.flow.routing]
    assert all(names) and len(names) == len(set(names)), "every rule needs a unique name"
    seen: dict[str, set[str]] = {}
    for _, step in finals:
        if step.outcome is not None:
            seen.setdefault(step.outcome.route, set()).add(step.state.language)
    for name in [*names, *INTERRUPTS, "fallback"]:
        assert name in seen, f"no conversation test ends with '{name}'"
    for name in [*names, *INTERRUPTS]:
        assert seen[name] == set(LANGUAGES), f"'{name}' is only tested in {sorted(seen[name])}"


def test_conversation_tests_cover_open_and_closed_hours(
    engine: Engine, finals: list[tuple[Scenario, StepResult]]
) -> None:
    kinds = {step.outcome.kind for _, step in finals if step.outcome is not None}
    assert {"handoff", "referred", "ended", "closed"} <= kinds
    open_at = {engine.is_open("listeners", s.at) for s, _ in finals}
    assert open_at == {True, False}
    channels = {s.channel for s, _ in finals}
    assert {"webchat", "messenger", "whatsapp", "telegram"} <= channels


@pytest.mark.parametrize("key", ["rate_limited", "blocked"])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_refusal_notices_keep_the_emergency_numbers(loaded: LoadedFlow, key: str, lang: str) -> None:
    text = loaded.flow.messages[key][lang]
    for number in ("119", "3114", "17", "112"):
        assert re.search(rf"\b{number}\b", text), f"messages.{key}.{lang} lost {number}"


PROMISES = re.compile(r"écoutant·e arrive|listener is coming", re.IGNORECASE)
RISKY_OPENINGS = {  # a first message each risk interrupt that hands off to the listeners reads
    "suicide": {"fr": "je veux mourir", "en": "i want to die"},
    "self_harm": {"fr": "je me scarifie", "en": "i cut myself"},
    "abuse_home": {"fr": "mon beau-père me frappe", "en": "my dad hits me"},
}


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("interrupt", sorted(RISKY_OPENINGS))
def test_a_risk_at_night_is_not_promised_a_listener(engine: Engine, interrupt: str, lang: str) -> None:
    """Found exploring the web chat at night (2026-12-02): "je veux mourir" was answered "un·e écoutant·e arrive",
    then "le chat est toujours fermé" (and by day with nobody online, "aucun·e écoutant·e n'est connecté·e").
    The queue's own message says what is true (position and wait, nobody online, or closed until when); the
    interrupt's words promise nothing, and the numbers that answer now are given."""
    night = datetime(2026, 3, 10, 23, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert not engine.is_open("listeners", night)
    result = engine.start(channel="webchat", now=night, language_hint=lang, text=RISKY_OPENINGS[interrupt][lang])
    assert result.outcome is not None and result.outcome.route == interrupt
    assert result.outcome.kind == "closed"
    said = [reply.text for reply in result.replies]
    assert [text for text in said if PROMISES.search(text)] == []
    assert any("3114" in text for text in said)


@pytest.mark.parametrize("key", ["ended", "idle_closed", "abandoned"])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_last_message_of_a_conversation_says_who_answers_now(loaded: LoadedFlow, key: str, lang: str) -> None:
    """Found in the web chat (2026-12-02): a listener closed the conversation and its last message, the one the page
    keeps in sight (and after a reload) with the box gone, named no number: at 22:59 the line closes a minute later.
    Every message that ends a conversation names the lines that answer at any hour."""
    text = loaded.flow.messages[key][lang]
    for number in ("119", "3114", "17", "112"):  # 17 and 112 since 2026-12-05: one who went silent may be in danger
        assert re.search(rf"\b{number}\b", text), f"messages.{key}.{lang} does not give {number}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_welcome_never_asks_to_type_an_opt_out_keyword(loaded: LoadedFlow, lang: str) -> None:
    """A review (2026-12-05): the welcome said « écris « stop » » to leave; on WhatsApp through Twilio, STOP (and
    END, QUIT…) unsubscribes the number: the goodbye with the numbers is never delivered and nothing more reaches
    the young person until they send START (gateway/channels/whatsapp.py). The welcome names a word that ends the
    conversation here and nothing at the provider."""
    welcome = " ".join(text[lang] for text in loaded.flow.steps["welcome"].say).lower()
    for keyword in ("stop", "end", "quit", "cancel", "unsubscribe", "arret"):
        assert not re.search(rf"[«\"]\s*{keyword}\s*[»\"]", welcome), f"the welcome ({lang}) asks to type {keyword}"
    assert re.search(r"[«\"]\s*(au revoir|bye)\s*[»\"]", welcome)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("partner", ["3114", "emergency"])
def test_the_medical_emergency_number_is_given_with_suicide_and_danger(
    loaded: LoadedFlow, partner: str, lang: str
) -> None:
    """A review (2026-12-05): after pills swallowed or a wound, the number is 15 (SAMU); the file never gave it."""
    assert re.search(r"\b15\b", loaded.flow.partners[partner].message[lang])
