"""bench/dev.py's frontier (docs/understanding.md, "Nineteenth round"): the thresholds it scales are flows.yaml's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.calibrate import engine_with
from bench.dev import by_length, thresholds
from bench.understanding import Result
from gateway.flows.loader import load_file
from gateway.flows.reading import RISKS, Reading, Risk

FLOWS = Path(__file__).resolve().parents[2] / "flows.yaml"


def test_thresholds_are_the_ones_the_engine_loads() -> None:
    understanding = load_file(FLOWS).flow.understanding
    assert understanding is not None
    assert thresholds(FLOWS) == {risk: rule.threshold for risk, rule in understanding.risks.items()}


def test_scaled_thresholds_reach_the_engine(tmp_path: Path) -> None:
    scaled = {risk: round(value * 1.2, 4) for risk, value in thresholds(FLOWS).items()}
    understanding = engine_with(FLOWS, scaled, tmp_path).flow.understanding
    assert understanding is not None
    assert {risk: rule.threshold for risk, rule in understanding.risks.items()} == scaled


def test_by_length_counts_each_band_on_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    reading = Reading(tuple((r, 0.0) for r in RISKS))

    def result(words: int, risk: str, flagged: bool) -> Result:
        both = Risk.SUICIDE if flagged else None
        return Result({"text": " ".join(["mot"] * words), "risk": risk}, reading, None, None, both, False)

    by_length([result(3, "none", True), result(3, "suicide", False), result(20, "none", False),
               result(60, "none", True), result(60, "none", True), result(60, "abuse_home", True)])  # fmt: skip
    assert capsys.readouterr().out.strip() == (
        "by length (keywords + model): short false alarms 1 of 1 (100.0%), risky 0 of 1; medium false alarms 0 of 1"
        " (0.0%), risky 0 of 0; long false alarms 2 of 2 (100.0%), risky 1 of 1"
    )
