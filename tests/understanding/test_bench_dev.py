"""bench/dev.py's frontier (docs/understanding.md, "Nineteenth round"): the thresholds it scales are flows.yaml's."""

from __future__ import annotations

from pathlib import Path

from bench.calibrate import engine_with
from bench.dev import thresholds
from gateway.flows.loader import load_file

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
