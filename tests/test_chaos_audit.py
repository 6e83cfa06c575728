"""bench/chaos.py's audit of the replies' copies against the bound docs/guarantees.md and docs/deployment.md state
(since 2026-12-07: before, each copy no transcript records was labelled by the fault it was in flight at, "within the
bound", and the bound itself never checked). Made-up copies and faults on one clock; no process is started."""

from __future__ import annotations

from bench.chaos import IN_BOUND, SEND_TIMEOUT, Fault, beyond_bound, explained, in_flight, replies
from bench.chaos_channels import Copy

KILL = Fault("kill", start=100.0, end=104.0, target="a-1")
REDIS = Fault("redis", start=200.0, end=205.0)


def copy(pid: str, sender: str, at: float, held: float = 0.05, waited: float | None = None) -> Copy:
    return Copy("52000100000001", "Bonjour, je suis le bot.", pid, sender, at, held, waited)


def violations(copies: list[Copy], recorded: set[str], faults: list[Fault]) -> list[list[str]]:
    return [lines for anchor, group in replies(copies, recorded) if (lines := beyond_bound(anchor, group, faults, 0.0))]


def test_a_send_in_flight_at_a_kill_sent_again_after_the_lease_is_within_the_bound() -> None:
    killed, again = copy("p1", "a-1", 99.8), copy("p2", "b-1", 114.9)
    assert violations([killed, again], {"p2"}, [KILL]) == []


def test_ambiguous_sends_to_a_hung_provider_repeat_once_per_timed_out_attempt() -> None:
    hung = Fault("provider-hang-long", start=300.0, end=324.0, target="telegram")
    first = copy("p1", "a-1", 324.0, held=24.0, waited=SEND_TIMEOUT)
    second = copy("p2", "a-1", 324.0, held=8.0, waited=SEND_TIMEOUT)
    third = copy("p3", "a-1", 324.1)
    assert violations([first, second, third], {"p3"}, [hung]) == []
    assert explained(third, [first, second, third], [hung], 0.0) == (
        "a-1@324.0s timeout, a-1@324.0s timeout, a-1@324.1s recorded"
    )


def test_two_copies_in_flight_at_one_kill_are_beyond_the_bound() -> None:
    """Three copies of one reply, two of them labelled "kill" by the one kill: each within the bound for the copy's
    label (what the audit said before), but a crash repeats only the one send in flight at that instant."""
    copies = [copy("p1", "a-1", 99.5), copy("p2", "a-1", 99.9), copy("p3", "b-1", 115.0)]
    assert [in_flight(c, [KILL]) for c in copies[:2]] == ["kill", "kill"]  # the old audit: all within the bound
    (lines,) = violations(copies, {"p3"}, [KILL])
    assert any("a second copy in flight at one kill" in line for line in lines)
    assert any(line.startswith("received 3 times (the bound 2") for line in lines)
    assert all("nearest fault: kill a-1 at 100.0–104.0 s" in line for line in lines)


def test_a_send_recorded_then_sent_again_is_beyond_the_bound_whatever_fault_is_near() -> None:
    """The recorded send accepted at 199.0 s, a Redis restart from 200 s, the same reply sent again at 203 s: the
    copy's label is "redis" (within the bound by the copy alone) but it repeats a send already recorded as sent."""
    recorded, again = copy("p1", "a-1", 199.0), copy("p2", "a-1", 203.0)
    assert in_flight(again, [REDIS]) in IN_BOUND
    (lines,) = violations([recorded, again], {"p1"}, [REDIS])
    assert lines == [
        "a-1@203.0s sent again 3.9 s after the provider accepted the recorded send (a-1@199.0s);"
        " nearest fault: redis at 200.0–205.0 s, -1.0 s from its start"
    ]


def test_a_copy_no_fault_explains_is_shown_with_the_fault_nearest_it() -> None:
    (lines,) = violations([copy("p1", "a-1", 150.0), copy("p2", "a-1", 151.0)], {"p2"}, [KILL, REDIS])
    assert lines == [
        "a-1@150.0s, held 0.1 s, the gateway hung up never: no fault explains it;"
        " nearest fault: kill a-1 at 100.0–104.0 s, +50.0 s from its start"
    ]


def test_the_same_text_sent_twice_to_one_recipient_is_two_replies() -> None:
    """Two entries of one text (a question asked again) each recorded: two replies of one copy, nothing repeated."""
    assert violations([copy("p1", "a-1", 10.0), copy("p2", "a-1", 40.0)], {"p1", "p2"}, []) == []
    assert [len(group) for _, group in replies([copy("p1", "a-1", 10.0), copy("p2", "a-1", 40.0)], {"p1", "p2"})] == [
        1,
        1,
    ]


def test_an_attempt_timed_out_before_a_kill_is_a_timeout_not_a_second_copy_of_the_kill() -> None:
    """Seed 90's WhatsApp hang (68.8–91.7 s) and kill of b-3 at 88.0 s: b-3's first attempt timed out at 15 s, its
    retry was held when b-3 was killed, both accepted as the hang ended, then a-1's resend after the lease: one copy
    per timed-out attempt and the send in flight at the crash, within the bound. Before, both were labelled "kill"
    (a kill named first for any copy its instance never heard of) and the reply shown beyond the bound."""
    hang = Fault("provider-hang-long", start=68.8, end=91.7, target="whatsapp")
    kill = Fault("kill", start=88.0, end=91.9, target="b-3")
    timed_out = copy("p1", "b-3", 91.7, held=22.0, waited=SEND_TIMEOUT)
    killed = copy("p2", "b-3", 91.7, held=6.5, waited=3.5)
    resent = copy("p3", "a-1", 104.0)
    assert [in_flight(c, [hang, kill]) for c in (timed_out, killed)] == ["timeout", "kill"]
    assert violations([timed_out, killed, resent], {"p3"}, [hang, kill]) == []
