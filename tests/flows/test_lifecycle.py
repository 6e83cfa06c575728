from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.errors import IllegalTransition
from gateway.flows.lifecycle import TRANSITIONS, Status, Trigger, advance, allowed, transition


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        ("bot", "handoff", Status.QUEUED),
        ("bot", "refer", Status.REFERRED),
        ("bot", "end", Status.CLOSED),
        ("queued", "take", Status.WITH_LISTENER),
        ("with_listener", "hand_back", Status.QUEUED),
        ("with_listener", "transfer", Status.QUEUED),
        ("with_listener", "close", Status.CLOSED),
        ("queued", "abandon", Status.ABANDONED),
    ],
)
def test_allowed_transitions(status: str, action: str, expected: Status) -> None:
    assert advance(status, action) == expected


@pytest.mark.parametrize(
    ("status", "action"),
    [("closed", "handoff"), ("bot", "take"), ("referred", "take"), ("abandoned", "close"), ("bot", "fly")],
)
def test_illegal_transitions_raise(status: str, action: str) -> None:
    with pytest.raises(IllegalTransition):
        advance(status, action)


def test_final_states_allow_nothing() -> None:
    assert allowed("closed") == allowed("referred") == allowed("abandoned") == frozenset()


@dataclass
class Conversation:
    status: Status


@dataclass
class Recorded:
    """Effects that record what ran, in order, with the status seen."""

    ran: list[tuple[str, Status]] = field(default_factory=list)

    async def finished(self, subject: Conversation) -> None:
        self.ran.append(("finished", subject.status))

    async def entered(self, subject: Conversation) -> None:
        self.ran.append(("entered", subject.status))


async def test_a_transition_moves_and_runs_the_effects_of_the_status_it_enters() -> None:
    conversation, effects = Conversation(Status.QUEUED), Recorded()
    assert await transition(conversation, Trigger.TAKE, effects) == Status.WITH_LISTENER
    assert conversation.status == Status.WITH_LISTENER
    assert effects.ran == [("entered", Status.WITH_LISTENER)]


@pytest.mark.parametrize("trigger", [Trigger.CLOSE, Trigger.ABANDON])
async def test_entering_a_final_status_releases_the_conversation_first(trigger: Trigger) -> None:
    conversation, effects = Conversation(Status.WITH_LISTENER), Recorded()
    await transition(conversation, trigger, effects)
    assert [name for name, _ in effects.ran] == ["finished", "entered"]


async def test_an_illegal_transition_changes_nothing_and_runs_no_effect() -> None:
    conversation, effects = Conversation(Status.CLOSED), Recorded()
    with pytest.raises(IllegalTransition):
        await transition(conversation, Trigger.HANDOFF, effects)
    assert conversation.status == Status.CLOSED and effects.ran == []


def test_the_table_names_only_known_statuses_and_triggers() -> None:
    for move in TRANSITIONS:
        sources = move["source"] if isinstance(move["source"], list) else [move["source"]]
        assert {*sources, move["dest"]} <= {s.value for s in Status}, move
        assert move["trigger"] in {t.value for t in Trigger}, move
    assert {move["trigger"] for move in TRANSITIONS} == {t.value for t in Trigger}
