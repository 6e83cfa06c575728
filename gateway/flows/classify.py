"""``gateway flows classify``: what the engine would decide for one message at a question step, as JSON.

Ops staff use it to see why the bot flagged, or did not flag, a message. The model is reached through a
:class:`Reader` (the embedded model's loader provides one); without it, only the interrupts' phrases count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.flows.engine import Engine
from gateway.flows.reading import Reading, Risk


class Reader(Protocol):
    """Reads one message: the embedded model behind a narrow interface."""

    def read(self, text: str, language: str) -> Reading: ...


@dataclass(frozen=True, slots=True)
class Classification:
    interrupt: str | None
    risk: Risk
    score: float
    topic: str | None
    priority: str | None
    partners: tuple[str, ...]
    ends: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "interrupt": self.interrupt,
            "risk": self.risk.value,
            "score": round(self.score, 4),
            "topic": self.topic,
            "priority": self.priority,
            "partners": list(self.partners),
            "ends": self.ends,
        }


def classify(engine: Engine, text: str, reading: Reading | None = None) -> Classification:
    """The decision for ``text`` at a question: the interrupt (or risk outcome) that fires, the risk class and
    its score (1.0 for a phrase, the model's score otherwise; with no risk, the model's highest score), the
    topic the topic question would take, and whether the message would end the conversation."""
    decision = engine.decide(text, reading)
    found = engine.topic_of(text, reading)
    topic = found[0] if found else None
    flag = decision.flag
    highest = reading.top[1] if reading is not None else 0.0
    if flag is None:
        ending = decision.ending[0] if decision.ending else None
        return Classification(ending, Risk.NONE, highest, topic, None, (), ending is not None)
    interrupt = flag.route if flag.route in engine.flow.interrupts else None
    score = flag.score if flag.risk is not Risk.NONE else highest
    return Classification(interrupt, flag.risk, score, topic, flag.priority, flag.partners, False)


def classify_lines(engine: Engine, lines: list[str], language: str, reader: Reader | None) -> list[Classification]:
    """One classification per message (lines without their line break). As in the dispatcher, the erasure phrase
    alone ("efface mes données stp") is a command the model does not read; its keywords still count."""
    return [classify(engine, line, _read(engine, reader, line, language)) for line in lines]


def _read(engine: Engine, reader: Reader | None, text: str, language: str) -> Reading | None:
    if reader is None or (engine.erasure is not None and engine.erasure.asked(text)):
        return None
    return reader.read(text, language)
