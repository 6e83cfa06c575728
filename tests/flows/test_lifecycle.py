from __future__ import annotations

import pytest

from gateway.errors import IllegalTransition
from gateway.flows.lifecycle import Status, advance, allowed


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
