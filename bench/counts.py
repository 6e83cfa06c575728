"""Per-message call counts of the gateway: ``python bench/counts.py DIR/cprofile-redis.prof``.

Reads the cProfile file that ``bench/load.py --count DIR`` has ``gateway serve`` write when it stops, and prints,
per message processed: asyncio tasks created, futures resolved, the store's events published and read back, JSON
encodes and decodes, sealing (encryption) calls, keyed hashes, Redis commands and scripts, text normalisations;
then the most called functions of the gateway's own code. Counts, not times: cProfile makes the process several
times slower, so its times say little. The whole process's life is counted (start, the flows' phrases compiled,
warm-up, hand-off samples): ``--minus`` another file, of a shorter run of the same command, takes that out.
"""

from __future__ import annotations

import argparse
import pstats
from collections.abc import Iterable

# What is counted: a label and the functions (file ending, function name) whose calls add up; "~" for a function in
# C, matched by the start of its name. Python 3.11's cProfile names a function without its class. A coroutine is
# counted once more each time it resumes, so the store's own coroutines are not counted here: the functions in C
# or plain functions they call once are.
GROUPS: list[tuple[str, list[tuple[str, str]]]] = [
    ("messages processed (Dispatcher._flag, once a message)", [("gateway/dispatcher.py", "_flag")]),
    ("tasks created (asyncio.create_task; not aiohttp's own)", [("asyncio/tasks.py", "create_task")]),
    ("futures resolved (Future.set_result)", [("~", "<method 'set_result' of '_asyncio.Future'")]),
    ("callbacks added to futures and tasks", [("~", "<method 'add_done_callback' of '_asyncio.")]),
    ("events published (redis-py publish)", [("redis/commands/core.py", "publish")]),
    ("events encoded (events.encode)", [("gateway/events.py", "encode")]),
    (
        "event messages read back (RedisEvents._deliver: a batch's merged)",
        [("gateway/store/redis_events.py", "_deliver")],
    ),
    ("JSON encodes (json.dumps)", [("json/__init__.py", "dumps")]),
    ("JSON decodes (json.loads)", [("json/__init__.py", "loads")]),
    ("sealings (DataKeys.seal)", [("gateway/crypto.py", "seal")]),
    ("openings (DataKeys.open)", [("gateway/crypto.py", "open")]),
    ("keyed hashes (HMAC-SHA256: KeyedHash, DataKeys)", [("~", "<method 'hexdigest' of '_hashlib.HMAC'")]),
    ("Redis commands packed", [("~", "<built-in method hiredis.hiredis.pack_command>")]),
    ("Redis scripts in pipelines (EVAL)", [("gateway/store/redis.py", "_eval")]),
    ("text normalisations (flows.text.normalize)", [("gateway/flows/text.py", "normalize")]),
    ("canonical forms (flows.keywords.canonical)", [("gateway/flows/keywords.py", "canonical")]),
    ("options searched (flows.text.find_option)", [("gateway/flows/text.py", "find_option")]),
    ("provider sends (MessengerChannel.render)", [("gateway/channels/messenger.py", "render")]),
]


def calls(stats: pstats.Stats, wanted: Iterable[tuple[str, str]]) -> int:
    found = 0
    for (filename, _, name), (_, total, *_) in stats.stats.items():  # type: ignore[attr-defined]
        for ending, function in wanted:
            if (ending == "~" and filename == "~" and name.startswith(function)) or (
                ending != "~" and filename.endswith(ending) and name.rsplit(".", 1)[-1] == function
            ):
                found += total
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="a cProfile file (bench/load.py --count DIR: DIR/cprofile-<store>.prof)")
    parser.add_argument("--minus", help="a cProfile file of a shorter run: its counts are taken out (start-up)")
    parser.add_argument("--top", type=int, default=40, help="the gateway's most called functions shown (default 40)")
    args = parser.parse_args()
    stats = pstats.Stats(args.profile)
    if args.minus:
        before = pstats.Stats(args.minus).stats  # type: ignore[attr-defined]
        for key, (cc, total, tt, ct, callers) in list(stats.stats.items()):  # type: ignore[attr-defined]
            if key in before:
                _, earlier, *_ = before[key]
                stats.stats[key] = (cc, total - earlier, tt, ct, callers)  # type: ignore[attr-defined]
    messages = max(1, calls(stats, GROUPS[0][1]))
    print(f"{messages:,} messages; per message:")
    for label, wanted in GROUPS:
        print(f"  {calls(stats, wanted) / messages:8.2f}  {label}")
    print(f"the gateway's most called functions, per message (of {args.top}):")
    own = [
        (total / messages, f"{filename.split('/gateway/', 1)[-1]}:{line} {name}")
        for (filename, line, name), (_, total, *_) in stats.stats.items()  # type: ignore[attr-defined]
        if "/gateway/" in filename and "/.venv/" not in filename
    ]
    for per, where in sorted(own, reverse=True)[: args.top]:
        print(f"  {per:8.2f}  {where}")


if __name__ == "__main__":
    main()
