"""bench/chaos_console.py (``bench/chaos.py --console N``, since 2026-12-07): the soak's flow with the second queue a
listener's transfer moves to. No process is started."""

from __future__ import annotations

from bench.chaos_console import SECOND_QUEUE, second_queue
from bench.load import ROOT, bench_flows, walks
from gateway.flows.loader import load_text


def test_the_second_queue_is_added_always_open_and_the_walks_are_unchanged() -> None:
    text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    loaded, problems = load_text(second_queue(text), "flows.yaml")
    assert loaded is not None, problems
    assert set(loaded.flow.queues) == {"listeners", SECOND_QUEUE}
    assert loaded.flow.queues[SECOND_QUEUE].schedule == "always"
    assert walks(second_queue(text)) == walks(text)
