"""flows.yaml's notices and referrals sections: shape and cross-references, each reported as FILE:LINE:COLUMN."""

from __future__ import annotations

from gateway.flows.loader import load_text
from tests.conftest import ROOT

FLOW = (ROOT / "flows.yaml").read_text(encoding="utf-8")


def problems(text: str) -> list[str]:
    _, found = load_text(text, "flows.yaml")
    return [str(p) for p in found]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_default_flow_is_valid() -> None:
    assert problems(FLOW) == []


def test_unknown_platform_language_field_and_pharos_are_positioned() -> None:
    text = (FLOW.replace("csam_also_to: pharos ", "csam_also_to: pharo ")
            .replace("fields: [age, topic, details]", "fields: [age, topik, details]")
            .replace("yubo: {name: Yubo, language: fr", "yubo: {name: Yubo, language: de"))  # fmt: skip
    found = problems(text)
    expected = (
        f"flows.yaml:{line_of(text, 'csam_also_to: pharo')}:17: 'csam_also_to' names platform 'pharo',"
        " which does not exist (did you mean 'pharos'?)"
    )
    assert expected in found
    assert any(p.startswith(f"flows.yaml:{line_of(text, 'topik')}:") and "did you mean 'topic'" in p for p in found)
    assert any(p.startswith(f"flows.yaml:{line_of(text, 'language: de')}:") and "'de' is not" in p for p in found)


def test_a_platform_needs_exactly_one_way_in() -> None:
    text = FLOW.replace("x: {name: X, language: en, form:", "x: {name: X, language: en, email: a@x.example, form:")
    (problem,) = problems(text)
    assert problem.startswith(f"flows.yaml:{line_of(text, 'x: {name: X')}:") and "exactly one of 'email'" in problem


def test_a_missing_translation_and_a_bad_placeholder() -> None:
    text = FLOW.replace('    en: "All right, we share nothing with', '    de: "All right, we share nothing with')
    text = text.replace("transmettions à {partner}", "transmettions à {partenaire}")
    found = problems(text)
    assert any("the declined message has no text in 'en'" in p for p in found), found
    assert any("the consent question in 'fr'" in p and "partenaire" in p for p in found), found


def test_a_referral_partner_needs_the_notices_section() -> None:
    """Its e-mail comes from the notices' notifier: without that section, a flow with warm referrals loaded, and
    recording the young person's answer (a no as much as a yes) met ``assert flow.notices is not None`` in
    ``Referrals.refer``: the listener got 503 "try again shortly" for ever, the young person asked for their consent
    never heard the outcome. Now the flow is refused, positioned at the partner's referral."""
    lines = FLOW.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("notice_categories:"))
    end = next(i for i, line in enumerate(lines) if line.startswith("referrals:"))
    text = "".join(lines[:start] + lines[end:])
    found = problems(text)
    assert found, "a flow with referrals and no notices section was accepted"
    assert all("a partner's 'referral' needs a 'notices:' section" in p for p in found), found
    assert any(p.startswith(f"flows.yaml:{line_of(text, 'orientations@france-victimes.example') - 1}:") for p in found)
