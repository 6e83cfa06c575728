"""Conversation tests: scripted turns at a simulated date-time, with the expected outcome and bot texts.

They live under ``tests:`` in flows.yaml, or in a side file (``flows.tests.yaml``) holding the same ``tests:``
list. ``gateway flows test`` runs them and prints a pytest-like summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from gateway.errors import FlowValidationError
from gateway.flows import text
from gateway.flows.checks import check_scenarios
from gateway.flows.classify import Reader
from gateway.flows.engine import Engine, StepResult
from gateway.flows.loader import parse_yaml, read_text, schema_problems
from gateway.flows.model import Flow, Scenario, Turn
from gateway.flows.positions import Problem
from gateway.flows.reading import Reading


@dataclass
class ScenarioResult:
    name: str
    failures: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


class _SideFile(BaseModel):
    model_config = {"extra": "forbid"}
    tests: list[Scenario]


def load_side_file(path: Path, flow: Flow | None = None) -> list[Scenario]:
    """Scenarios from a side file; :class:`FlowValidationError` with positioned problems. With the ``flow`` they
    test, they are checked as those under its ``tests:`` (a time without its offset, a partner that does not exist)."""
    name = str(path)
    data, positions, problems = parse_yaml(read_text(path), name)
    if problems:
        raise FlowValidationError([str(p) for p in problems])
    if not isinstance(data, dict):
        raise FlowValidationError([f"{name}:1:1: expected a mapping whose key 'tests' lists conversation tests"])
    try:
        tests = _SideFile.model_validate(data).tests
    except ValidationError as exc:
        raise FlowValidationError([str(p) for p in schema_problems(exc, data, positions, name)]) from None
    issues = check_scenarios(flow.model_copy(update={"tests": tests})) if flow is not None else ()
    found = sorted({Problem(name, *positions.of(i.path, key=i.at_key), i.message) for i in issues})
    if found:
        raise FlowValidationError([str(p) for p in found])
    return tests


def run_scenario(engine: Engine, scenario: Scenario, reader: Reader | None = None) -> ScenarioResult:
    """Replay one test. A turn's own ``reading`` stands for the model; otherwise ``reader`` (the embedded model)
    reads each turn when given, and only the phrases count when not."""
    result = ScenarioResult(scenario.name)
    now = scenario.at
    step = engine.start(channel=scenario.channel, now=now, language_hint=scenario.language)
    _record(result, step)
    for turn in scenario.turns:
        message = turn if isinstance(turn, str) else turn.text
        if step.state.finished:
            result.failures.append(f"the bot had finished before the turn {message!r}")
            break
        reading = _reading(turn, reader, step.state.language)
        result.transcript.append(f"> {message}" + (f"  [{_describe(reading)}]" if reading else ""))
        step = engine.step(step.state, message, now=now, reading=reading)
        _record(result, step)
    result.failures.extend(_compare(scenario, step, result.transcript))
    return result


def run_scenarios(
    engine: Engine, scenarios: list[Scenario] | None = None, reader: Reader | None = None
) -> list[ScenarioResult]:
    chosen = engine.flow.tests if scenarios is None else scenarios
    return [run_scenario(engine, s, reader) for s in chosen]


def _reading(turn: str | Turn, reader: Reader | None, language: str) -> Reading | None:
    if isinstance(turn, Turn) and turn.reading is not None:
        return turn.reading.to_reading()
    if reader is None:
        return None
    return reader.read(turn if isinstance(turn, str) else turn.text, language)


def _describe(reading: Reading) -> str:
    risk, score = reading.top
    parts = [f"model: {risk.value} {score:.2f}"]
    if reading.topic:
        parts.append(f"topic {reading.topic} {reading.topic_score:.2f}")
    if reading.third_party:
        parts.append("third party")
    return ", ".join(parts)


def _record(result: ScenarioResult, step: StepResult) -> None:
    for reply in step.replies:
        choices = " | ".join(f"{i}. {c.label}" for i, c in enumerate(reply.choices, 1))
        result.transcript.append(f"< {reply.text}" + (f"  [{choices}]" if choices else ""))


def _compare(scenario: Scenario, last: StepResult, transcript: list[str]) -> list[str]:
    expect, outcome = scenario.expect, last.outcome
    failures: list[str] = []
    if expect.outcome is not None:
        got = outcome.kind if outcome else f"no outcome (still at step '{last.state.step}')"
        if got != expect.outcome:
            failures.append(f"outcome: expected {expect.outcome}, got {got}")
    if expect.risk is not None:
        got = outcome.flag.risk.value if outcome is not None and outcome.flag is not None else "none"
        if got != expect.risk:
            failures.append(f"risk: expected {expect.risk}, got {got}")
    if outcome is not None:
        pairs = (("queue", expect.queue, outcome.queue), ("priority", expect.priority, outcome.priority))
        for name, want, have in pairs:
            if want is not None and want != have:
                failures.append(f"{name}: expected {want}, got {have}")
        if expect.partners is not None and sorted(expect.partners) != sorted(outcome.partners):
            failures.append(f"partners: expected {sorted(expect.partners)}, got {sorted(outcome.partners)}")
    if expect.step is not None and (last.state.step != expect.step or outcome is not None):
        failures.append(f"step: expected to wait at '{expect.step}', got '{last.state.step}'")
    for name, want in expect.fields.items():
        if last.state.fields.get(name) != want:
            failures.append(f"field {name}: expected {want!r}, got {last.state.fields.get(name)!r}")
    bot_text = text.normalize(" ".join(line[2:] for line in transcript if line.startswith("< ")))
    failures.extend(f"bot never said {s!r}" for s in expect.says if not text.contains(bot_text, text.normalize(s)))
    failures.extend(f"bot said {s!r}" for s in expect.not_says if text.contains(bot_text, text.normalize(s)))
    return failures
