"""Chat with a flow in the terminal: ``gateway flows simulate``. Works with piped input too."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TextIO

from gateway.flows.engine import Engine, Outcome, StepResult


def render(step: StepResult, out: TextIO) -> None:
    for reply in step.replies:
        print(f"bot> {reply.text}", file=out)
        for number, choice in enumerate(reply.choices, start=1):
            print(f"       {number}. {choice.label}", file=out)


def describe(outcome: Outcome) -> str:
    parts = [f"outcome: {outcome.kind}", f"route: {outcome.route}"]
    if outcome.queue:
        parts.append(f"queue: {outcome.queue}" + (f" ({outcome.priority})" if outcome.priority else ""))
    if outcome.partners:
        parts.append("partners: " + ", ".join(outcome.partners))
    flag = outcome.flag
    if flag is not None and flag.risk.value != "none":
        how = f"phrase “{flag.words}”" if flag.source == "keywords" else f"model {flag.score:.2f}"
        parts.append(f"risk: {flag.risk.value} ({how})")
    lines = ["--- " + " · ".join(parts)]
    lines.extend(f"    {label}: {value}" for label, value in outcome.summary)
    return "\n".join(lines)


def simulate(
    engine: Engine, lines: Iterable[str], out: TextIO, *, now: datetime, language: str | None, channel: str
) -> Outcome | None:
    """Run a conversation from ``lines`` (one answer per line); print the bot and the outcome."""
    step = engine.start(channel=channel, now=now, language_hint=language)
    render(step, out)
    for line in lines:
        if step.state.finished:
            break
        answer = line.rstrip("\n")
        print(f"you> {answer}", file=out)
        step = engine.step(step.state, answer, now=now)
        render(step, out)
    if step.outcome is None:
        print(f"--- no outcome yet: the bot waits at step '{step.state.step or 'offer'}'", file=out)
    else:
        print(describe(step.outcome), file=out)
    return step.outcome
