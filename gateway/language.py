"""The language a conversation is held in: the one the young person chose (or the engine inferred), kept in the
engine's state; else the flow's default (the first of flows.yaml ``languages``).

Every message written to a young person outside the engine (a listener joined, the queue, reminders, the end of a
conversation, a referral, a notice's outcome) asks here, so one rule decides.
"""

from __future__ import annotations

from gateway.conversation import Conversation
from gateway.flows.model import Flow


def language_of(conversation: Conversation, flow: Flow) -> str:
    """The conversation's language, ``flow`` being the flow it runs on (its own version's)."""
    language = conversation.engine.get("language")
    return language if isinstance(language, str) else flow.default_language
