"""What the understanding layer read in one message: the contract between the model and the engine.

The embedded model (``gateway/understanding/``) turns a young person's message into a :class:`Reading`; the engine
(pure, in this package) decides what a reading does through the flow's ``understanding:`` rules. A reading may
only **raise**: flag a risk, raise a priority, add a referral, or fill a field that was not asked yet. It never
ends a conversation, lowers a priority or sends anyone away.

This module has no dependencies, so ops tools and the engine's tests use it without the model installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Risk(StrEnum):
    IMMINENT_DANGER = "imminent_danger"  # a threat now: weapon, followed, locked in, being hit now
    SUICIDE = "suicide"  # ideation, plan, means, goodbye messages (the young person or a third party)
    SELF_HARM = "self_harm"
    ABUSE_HOME = "abuse_home"  # violence or sexual abuse by a relative or someone at home
    NONE = "none"


RISKS: tuple[Risk, ...] = tuple(r for r in Risk if r is not Risk.NONE)

Source = Literal["keywords", "model"]


class Unread(StrEnum):
    """The model was asked and could not read the words now (busy, late, or still loading): unlike a reading that
    found nothing, worth reading after the fact. A gate deciding before the message is processed lets such a
    message on rather than refuse it unread (``Gate``: escalate, never silence)."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


@dataclass(frozen=True, slots=True)
class Reading:
    """One message as understood. Scores are probabilities in [0, 1]; ``risk`` is the most likely risk class
    (``NONE`` when no class reaches its threshold is decided by the engine, not here: the reader reports
    ``scores`` for every class).

    ``topic`` is a value of the flow's topic question (``cyberharassment``, ``sextortion``, …) or None;
    ``third_party`` is True when the message speaks about someone else ("mon pote veut se suicider").
    """

    scores: tuple[tuple[Risk, float], ...]  # every class in RISKS with its probability
    topic: str | None = None
    topic_score: float = 0.0
    third_party: bool = False
    source: Source = "model"

    def score(self, risk: Risk) -> float:
        return dict(self.scores).get(risk, 0.0)

    @property
    def top(self) -> tuple[Risk, float]:
        """The most likely risk class and its score (``NONE, 0.0`` when there are no scores)."""
        return max(self.scores, key=lambda pair: pair[1], default=(Risk.NONE, 0.0))
