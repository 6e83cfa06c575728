"""English indirect ideation and self-harm, the reviewer's own lists: ``python bench/en_indirect.py``.

Prints, for the 80 risky messages and 80 hard negatives of ``tests/flows/test_en_indirect.py``, how many the keyword
interrupts of flows.yaml flag alone and with the model's reading (``Engine.decide(text, reading)``). Figures only,
asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import Reading, Risk  # noqa: E402
from tests.flows.test_en_indirect import FLAGGED_BY_DESIGN, HARD_NEGATIVES, RISKY  # noqa: E402


def flagged(engine: Engine, text: str, reading: Reading | None) -> bool:
    flag = engine.decide(text, reading).flag
    return flag is not None and flag.risk is not Risk.NONE


def main() -> None:
    from gateway.understanding import load_model

    engine = Engine(load_file(ROOT / "flows.yaml"))
    model = load_model(threads=1)
    negatives = HARD_NEGATIVES + [text for text, _ in FLAGGED_BY_DESIGN]
    for name, texts in (("risky", [text for text, _ in RISKY]), ("hard negatives", negatives)):
        alone = sum(flagged(engine, text, None) for text in texts)
        both = sum(flagged(engine, text, model.read(text)) for text in texts)
        print(f"{name:>14}: {len(texts)} messages, flagged by keywords alone {alone}, keywords + model {both}")


if __name__ == "__main__":
    main()
