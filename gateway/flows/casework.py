"""The flows.yaml sections for what listeners do after the chat: takedown notices and warm referrals.

``platforms:`` the platforms a notice can go to (an e-mail address for trusted-flagger notices, or the web form
when a platform has none; the language its notices are written in; how long it usually takes to answer);
``notice_categories:`` what content is reported and on which legal ground; ``notices:`` the helpline as the
notifier, how long evidence is kept, where child sexual abuse material is also reported, and what the young
person is told once content is removed; ``referrals:`` the consent question. A partner that accepts warm
referrals has a ``referral:`` block (its e-mail address and the fields it receives). Cross-references are
checked in ``checks.py``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.flows.model_base import LocalText, Strict


class Platform(Strict):
    name: str
    language: str
    email: str | None = None
    """Where trusted-flagger notices are e-mailed."""
    form: str | None = None
    """The web form, for a platform without an address: the console shows the ready text to paste."""
    response_hours: int = Field(default=24, ge=1, le=24 * 60)
    """Past this without an answer, the notice shows a reminder."""

    @model_validator(mode="after")
    def _one_way(self) -> Platform:
        if (self.email is None) == (self.form is None):
            raise ValueError("a platform needs exactly one of 'email' (notices by e-mail) or 'form' (a web form)")
        if self.email is not None and ("@" not in self.email or " " in self.email.strip()):
            raise ValueError(f"'{self.email}' is not an e-mail address")
        if self.form is not None and not self.form.startswith("https://"):
            raise ValueError(f"the web form '{self.form}' must be an https:// address")
        return self


class NoticeCategory(Strict):
    label: LocalText
    ground: LocalText
    """The legal ground named in the notice (e.g. art. 226-2-1 du Code pénal)."""
    explanation: LocalText
    """Why such content is illegal or harmful: the first paragraph of the notice."""
    csam: bool = False
    """Child sexual abuse material: never attached, only located, and always also reported to ``csam_also_to``."""


class Notifier(Strict):
    name: str
    email: str
    trusted_flagger: LocalText
    """The helpline's trusted-flagger status (who designated it, when), quoted in every notice."""


class Notices(Strict):
    notifier: Notifier
    retention_days: int = Field(default=30, ge=0, le=3650)
    """Evidence files are deleted this many days after their notice is closed."""
    csam_also_to: str | None = None
    """The platform (usually Pharos) every notice in a ``csam`` category is also filed with."""
    removed_message: LocalText
    """Sent to the young person when a platform removed the content."""


class Referrals(Strict):
    consent_question: LocalText
    """Asked before a warm referral: nothing is sent to a partner without a yes."""
    declined_message: LocalText
    """Told to the young person when they said no: nothing was shared."""


class PartnerReferral(Strict):
    email: str
    fields: list[str] = Field(default_factory=list)
    """The answers (flows.yaml field names) the partner receives, after the listener reviewed them."""
    next_steps: LocalText
    """Told to the young person once the referral is sent: what happens next."""
