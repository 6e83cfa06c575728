"""The language a conversation is held in (gateway/language.py): the one kept in the engine's state, else the flow's
default, the first of flows.yaml ``languages``."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.conversation import Conversation
from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from gateway.language import language_of
from gateway.messages import ChannelName
from tests.conftest import ROOT

FLOW = Engine(load_file(ROOT / "flows.yaml")).flow
NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def conversation(engine: dict[str, object]) -> Conversation:
    return Conversation("c1", ChannelName.WEBCHAT, "s", "p", NOW, NOW, engine=dict(engine))


def test_the_language_kept_by_the_engine_is_the_conversations() -> None:
    assert language_of(conversation({"language": "en"}), FLOW) == "en"


def test_without_one_the_flows_first_language() -> None:
    assert FLOW.languages[0] == "fr"
    assert language_of(conversation({}), FLOW) == "fr"
    assert language_of(conversation({"language": None}), FLOW) == "fr"
