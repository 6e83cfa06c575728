"""Words of danger split over two messages: what joining them catches, and what it raises for nothing.

    .venv/bin/python bench/split_words.py

The dispatcher keeps the last :data:`~gateway.dispatcher.SAID_WORDS` words of a message that read nothing and reads
them joined to the next message with the keywords (docs/understanding.md, "At run time"). This measures both sides
of that rule on the corpus's spent files (``corpus/*.jsonl``; the sealed judges are never read), keywords only:

- **False alarms**: every two consecutive ``none`` lines of one file in one language, neither flagged alone, read
  as the dispatcher would (the first's last words, then the second): how many the join flags. The corpus holds
  single messages, so a pair of an author's neighbouring lines stands in for two messages sent one after the other.
- **Catches**: every risky line the keywords flag whole, of at most 12 words, cut at each word boundary into two
  messages of which neither is flagged alone: how many of those cuts the join reads as a risk again.

Prints the counts and rates; never fails on a figure. No text is printed, only file names.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.dispatcher import SAID_WORDS, said_words  # noqa: E402
from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import Risk  # noqa: E402

MAX_WORDS = 12  # the risky lines cut in two: short ones, as bursts are


def main() -> None:
    engine = Engine(load_file(ROOT / "flows.yaml"))

    def risky(text: str) -> bool:
        flag = engine.decide(text).flag
        return flag is not None and flag.risk is not Risk.NONE

    def joined(first: str, second: str) -> str:
        return " ".join([*said_words(engine, first), second])

    pairs = alarms = cuts = caught = 0
    alarms_by_file: Counter[str] = Counter()
    for path in sorted((ROOT / "corpus").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [row for row in rows if isinstance(row.get("text"), str) and "risk" in row]
        for first, second in itertools.pairwise(rows):
            if first["risk"] != "none" or second["risk"] != "none" or first.get("lang") != second.get("lang"):
                continue
            if risky(first["text"]) or risky(second["text"]):
                continue
            pairs += 1
            if risky(joined(first["text"], second["text"])):
                alarms += 1
                alarms_by_file[path.name] += 1
        for row in rows:
            words = row["text"].split()
            if row["risk"] == "none" or len(words) > MAX_WORDS or not risky(row["text"]):
                continue
            for at in range(1, len(words)):
                head, tail = " ".join(words[:at]), " ".join(words[at:])
                if risky(head) or risky(tail):
                    continue
                cuts += 1
                caught += risky(joined(head, tail))
    print(f"split words (keywords only, the last {SAID_WORDS} words of a quiet message joined to the next)")
    rate = 100 * alarms / max(pairs, 1)
    print(f"  false alarms: {alarms} of {pairs} pairs of neighbouring `none` lines ({rate:.2f} %)")
    print(f"    by file: {', '.join(f'{name} {n}' for name, n in alarms_by_file.most_common(8)) or 'none'}")
    print(
        f"  catches: {caught} of {cuts} cuts of risky lines of at most {MAX_WORDS} words that neither half reads "
        f"({100 * caught / max(cuts, 1):.1f} %)"
    )


if __name__ == "__main__":
    main()
