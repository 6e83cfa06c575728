"""The records of takedown notices and warm referrals, their life cycles, and their JSON form in the store.

A notice: ``draft`` → ``sent`` (e-mailed, or marked filed on a web form) → ``acknowledged`` → ``removed`` |
``refused`` | ``no_answer``; ``sent`` may also go straight to a final status. A referral: ``sent`` →
``taken_up`` → ``closed`` (or ``declined`` when the young person said no: nothing was sent).
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class NoticeStatus(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    REMOVED = "removed"
    REFUSED = "refused"
    NO_ANSWER = "no_answer"


CLOSED_NOTICE = frozenset({NoticeStatus.REMOVED, NoticeStatus.REFUSED, NoticeStatus.NO_ANSWER})
NOTICE_MOVES: dict[NoticeStatus, frozenset[NoticeStatus]] = {
    NoticeStatus.DRAFT: frozenset({NoticeStatus.SENT}),
    NoticeStatus.SENT: frozenset({NoticeStatus.ACKNOWLEDGED, *CLOSED_NOTICE}),
    NoticeStatus.ACKNOWLEDGED: CLOSED_NOTICE,
}


class ReferralStatus(StrEnum):
    DECLINED = "declined"  # the young person said no: nothing was sent
    SENT = "sent"
    TAKEN_UP = "taken_up"
    CLOSED = "closed"


REFERRAL_LOCK = "referral:"  # + a referral's id: the lock its read-then-write changes take (status, opened link)
REFERRAL_MOVES: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    ReferralStatus.SENT: frozenset({ReferralStatus.TAKEN_UP, ReferralStatus.CLOSED}),
    ReferralStatus.TAKEN_UP: frozenset({ReferralStatus.CLOSED}),
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """One file attached to a notice: a copy of what the young person sent, kept until the retention ends."""

    name: str
    content_type: str
    data: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "content_type": self.content_type, "data": base64.b64encode(self.data).decode()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(str(data["name"]), str(data["content_type"]), base64.b64decode(data["data"]))


@dataclass(frozen=True, slots=True)
class Notice:
    """A takedown notice. ``evidence`` holds attachment numbers of the conversation (never for CSAM);
    ``linked`` is the companion notice (the Pharos copy of a CSAM notice, or the notice it copies)."""

    id: str
    conversation_id: str
    pseudonym: str
    platform: str
    category: str
    locations: tuple[str, ...]
    description: str = field(repr=False)
    language: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    status: NoticeStatus = NoticeStatus.DRAFT
    evidence: tuple[int, ...] = ()
    csam: bool = False
    linked: str | None = None
    sent_at: datetime | None = None
    closed_at: datetime | None = None
    answer: str = field(default="", repr=False)  # the platform's answer, pasted by a listener
    message_id: str | None = None  # the e-mail's Message-ID
    told_at: datetime | None = None  # the young person was told of the removal
    reminded_at: datetime | None = None
    evidence_deleted_at: datetime | None = None
    # flows.yaml's notices.retention_days as the notice closed (kept in step by the sweep while the section is there):
    # its evidence's retention once the section is gone, whichever process sweeps then (None: closed before
    # 2026-12-07 and not swept since, or not closed)
    retention_days: int | None = None

    def due_at(self, response_hours: int) -> datetime | None:
        """When the platform's expected answer is late; None unless it is awaited."""
        if self.sent_at is None or self.status not in (NoticeStatus.SENT, NoticeStatus.ACKNOWLEDGED):
            return None
        return self.sent_at + timedelta(hours=response_hours)

    def moved(self, status: NoticeStatus, now: datetime, answer: str = "") -> Notice:
        closed = now if status in CLOSED_NOTICE else self.closed_at
        sent = now if status == NoticeStatus.SENT else self.sent_at
        return replace(self, status=status, updated_at=now, closed_at=closed, sent_at=sent,
                       answer=answer or self.answer)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return _encode(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        """A stored notice; a field this version does not know (written by a newer one) is left out, so that one
        record never stops the sweep or the console's list (until 2026-12-07: a TypeError, the store's error)."""
        values = _decode(data, NOTICE_DATES, NOTICE_FIELDS)
        values["status"] = NoticeStatus(values["status"])
        values["locations"], values["evidence"] = tuple(values["locations"]), tuple(values["evidence"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Referral:
    """A warm referral. ``shared`` is what the partner received, reviewed by the listener: (label, value) pairs
    and the listener's summary; never a name, number or platform id."""

    id: str
    conversation_id: str
    pseudonym: str
    partner: str
    consent: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    status: ReferralStatus
    shared: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    summary: str = field(default="", repr=False)
    sent_at: datetime | None = None
    closed_at: datetime | None = None
    message_id: str | None = None
    inbound: bool = False  # the partner referred the young person to the helpline (``inbound.py``)
    opened_by: str = field(default="", repr=False)  # inbound: the hash of the page's key that exchanged the link
    opened_at: datetime | None = None  # inbound: when its link was exchanged

    def moved(self, status: ReferralStatus, now: datetime) -> Referral:
        closed = now if status == ReferralStatus.CLOSED else self.closed_at
        return replace(self, status=status, updated_at=now, closed_at=closed)

    def to_dict(self) -> dict[str, Any]:
        return _encode(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Referral:
        """A stored referral; a field this version does not know is left out (:meth:`Notice.from_dict`)."""
        values = _decode(data, REFERRAL_DATES, REFERRAL_FIELDS)
        values["status"] = ReferralStatus(values["status"])
        values["shared"] = tuple((str(k), str(v)) for k, v in values["shared"])
        return cls(**values)


NOTICE_DATES = ("created_at", "updated_at", "sent_at", "closed_at", "told_at", "reminded_at", "evidence_deleted_at")
REFERRAL_DATES = ("created_at", "updated_at", "sent_at", "closed_at", "opened_at")
NOTICE_FIELDS = frozenset(f.name for f in fields(Notice))
REFERRAL_FIELDS = frozenset(f.name for f in fields(Referral))


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _decode(data: dict[str, Any], dates: tuple[str, ...], known: frozenset[str]) -> dict[str, Any]:
    """The record's fields this version knows (one a newer version added is left out: read, never refused), dates
    parsed. A missing required field is still a ``TypeError``: a corrupt record, the store's error."""
    values = {k: v for k, v in data.items() if k in known}
    for key in dates:
        values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
    return values
