"""The ``gateway`` command, run in-process: flows check / test / simulate / graph, listener accounts."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.settings import Settings
from gateway.store import ConsoleSession, open_store
from tests.conftest import ROOT

FLOWS = ROOT / "flows.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_a_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flows", "check", str(FLOWS))
    assert code == 0
    assert re.search(r"ok · \d+ steps, \d+ rules, \d+ interrupts, \d+ conversation tests · version \w+", out)


def test_validate_is_another_name_for_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Ops staff type ``flows validate`` as often as ``flows check``: both answer the same."""
    assert run(capsys, "flows", "validate", str(FLOWS)) == run(capsys, "flows", "check", str(FLOWS))
    broken = tmp_path / "flows.yaml"
    broken.write_text(FLOWS.read_text(encoding="utf-8").replace("next: urgency", "next: urgenci", 1), encoding="utf-8")
    code, out, err = run(capsys, "flows", "validate", str(broken))
    assert code != 0
    assert re.search(r"flows\.yaml:\d+:\d+: ", out + err)


def test_check_lists_every_problem_with_its_position(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "flows.yaml"
    text = FLOWS.read_text(encoding="utf-8")
    text = text.replace("next: urgency", "next: urgenci", 1)
    text = text.replace('label: {fr: "Non", en: "No"}', 'label: {fr: "Non"}', 1)
    broken.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "flows", "check", str(broken))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) >= 2
    assert all(re.match(rf"{re.escape(str(broken))}:\d+:\d+: .+", line) for line in lines), lines
    assert any("'urgenci'" in line and "did you mean 'urgency'" in line for line in lines)
    assert any("translation" in line or "'en'" in line for line in lines), lines
    assert "problem(s)" in err


def test_check_a_yaml_syntax_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "flows.yaml"
    broken.write_text("languages: [fr, en\nsteps: {}\n", encoding="utf-8")
    code, out, _ = run(capsys, "flows", "check", str(broken))
    assert code == 1
    assert re.match(rf"{re.escape(str(broken))}:\d+:\d+: YAML syntax: ", out)


def test_check_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "flows", "check", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "nope.yaml:1:1: cannot read the file" in out


def test_conversation_tests_pass_and_report_like_pytest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flows", "test", str(FLOWS))
    assert code == 0
    assert re.search(r"^\d+ passed, 0 failed$", out, re.MULTILINE)


def test_a_failing_conversation_test_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    flows = tmp_path / "flows.yaml"
    shutil.copy(FLOWS, flows)
    side = tmp_path / "flows.tests.yaml"
    side.write_text(
        "tests:\n"
        "  - name: wrong expectation\n"
        "    at: 2026-03-10T14:00:00+01:00\n"
        "    turns: ['1']\n"
        "    expect: {outcome: referred}\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "flows", "test", str(flows))
    assert code == 1
    assert "FAILED wrong expectation" in out
    assert re.search(r"^\d+ passed, 1 failed$", out, re.MULTILINE)


def test_simulate_reads_piped_answers_and_prints_the_outcome(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("2\n1\n15\n1\n1\nOn se moque de moi\n"))
    code, out, _ = run(capsys, "flows", "simulate", str(FLOWS), "--at", "2026-03-10T14:00:00+01:00")
    assert code == 0
    assert "1. Oui, maintenant" in out  # choices are numbered
    assert "--- outcome: handoff" in out and "queue: listeners" in out


def test_simulate_in_english_when_closed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("2\n2\n15\n1\n1\nPeople mock me\n"))
    code, out, _ = run(capsys, "flows", "simulate", str(FLOWS), "--lang", "en", "--at", "2026-03-10T23:30:00+01:00")
    assert code == 0
    assert "are you in danger" in out.lower()
    assert "--- outcome:" in out


@pytest.mark.parametrize("suffix", [".mmd", ".svg", ".png"])
def test_graph_writes_the_diagram(capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"flow{suffix}"
    code, _, _ = run(capsys, "flows", "graph", str(FLOWS), "-o", str(target))
    assert code == 0
    data = target.read_bytes()
    expected = {".mmd": b"flowchart", ".svg": b"<svg", ".png": b"\x89PNG"}[suffix]
    assert expected in data[:2000]


def test_listener_accounts(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEWAY_STORE", f"sqlite:///{tmp_path}/cli.sqlite3")
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert run(capsys, "listeners", "add", "sam", "--supervisor", "--password-stdin")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert run(capsys, "listeners", "add", "alice", "--password-stdin")[0] == 0
    code, out, _ = run(capsys, "listeners", "list")
    assert code == 0 and "sam" in out and "alice" in out and "supervisor" in out
    assert "password" not in out.lower().replace("passwd", "")
    monkeypatch.setattr("sys.stdin", io.StringIO("a changed long password\n"))
    assert run(capsys, "listeners", "passwd", "alice", "--password-stdin")[0] == 0
    assert run(capsys, "listeners", "remove", "alice")[0] == 0
    code, out, _ = run(capsys, "listeners", "list")
    assert "alice" not in out
    code, _, err = run(capsys, "listeners", "remove", "nobody")
    assert code == 1 and "nobody" in err


def test_passwd_and_remove_say_they_are_done_when_the_sessions_cannot_be_ended(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The store refusing the sessions' end (a trigger aborts the delete) after ``passwd``'s or ``remove``'s write:
    the command says the password was changed (audited ``password_changed`` by ``cli``, as the console's change is)
    or the account removed, and that the old sessions serve nothing. Until 2026-12-07 both exited 1 with the store's
    error alone (the change made, not said), and ``passwd`` wrote no audit line."""
    monkeypatch.setenv("GATEWAY_STORE", f"sqlite:///{tmp_path}/cli.sqlite3")
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert run(capsys, "listeners", "add", "alice", "--password-stdin")[0] == 0
    until = datetime.now(UTC) + timedelta(hours=8)

    async def audited_and_sessions() -> tuple[list[tuple[str, str, str]], int]:
        store = await open_store(Settings.from_env().store)
        try:
            await store.put_session(ConsoleSession("k1", "alice", until), datetime.now(UTC))
            lines = [(e.actor, e.action, e.subject) for e in await store.audit_log()]
            return lines, len(await store.live_sessions("alice", datetime.now(UTC)))
        finally:
            await store.close()

    assert asyncio.run(audited_and_sessions()) == ([], 1)
    with sqlite3.connect(tmp_path / "cli.sqlite3") as db:
        db.execute("CREATE TRIGGER refuse_end BEFORE DELETE ON console_sessions BEGIN SELECT RAISE(ABORT, 'no'); END")
    monkeypatch.setattr("sys.stdin", io.StringIO("a changed long password\n"))
    code, out, err = run(capsys, "listeners", "passwd", "alice", "--password-stdin")
    # before: (1, '', 'gateway: sqlite: no'), no audit line
    assert (code, out.startswith("password of alice changed"), "serve nothing" in err) == (0, True, True), (out, err)
    assert asyncio.run(audited_and_sessions()) == ([("cli", "password_changed", "alice")], 1)
    code, out, err = run(capsys, "listeners", "remove", "alice")
    assert (code, out.startswith("listener alice removed"), "serve nothing" in err) == (0, True, True), (out, err)


@pytest.mark.parametrize("name", ["gateway", "Gateway", "cli", "system"])
def test_a_name_the_gateway_writes_as_an_actor_is_refused_for_an_account(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """``gateway listeners add gateway`` is refused, said in French then English, nothing stored: a listener so named
    would write audit lines that read as the system's (``gateway``: its own lines, an automatic hand-back's mover;
    ``cli``: the command line's). Until 2026-12-07 the account was made (exit 0)."""
    from gateway.cli_privacy import ACTOR
    from gateway.console.actions import AUTOMATIC
    from gateway.console.auth import RESERVED_NAMES

    assert {AUTOMATIC, ACTOR} <= RESERVED_NAMES  # the names the code writes as actors
    monkeypatch.setenv("GATEWAY_STORE", f"sqlite:///{tmp_path}/cli.sqlite3")
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    code, _, err = run(capsys, "listeners", "add", name, "--password-stdin")
    assert code == 1 and "réservé" in err and "reserved" in err and err.index("réservé") < err.index("reserved"), err
    assert name not in run(capsys, "listeners", "list")[1].split()


def test_listeners_signed_out_after_a_restore(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A backup restored brings back the console sessions ended since (a listener signed out, removed, a password
    changed): ``gateway listeners sign-out --all`` ends every session, the sockets closed on every instance."""
    monkeypatch.setenv("GATEWAY_STORE", f"sqlite:///{tmp_path}/cli.sqlite3")
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("sam", "alice"):
        monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
        assert run(capsys, "listeners", "add", name, "--password-stdin")[0] == 0
    until = datetime.now(UTC) + timedelta(hours=8)

    async def sessions(*keys: str, put: bool = False) -> list[bool]:
        store = await open_store(Settings.from_env().store)
        try:
            if put:
                for number, key in enumerate(keys):
                    await store.put_session(ConsoleSession(key, ("sam", "alice")[number % 2], until), datetime.now(UTC))
            return [await store.get_session(key, datetime.now(UTC)) is not None for key in keys]
        finally:
            await store.close()

    assert asyncio.run(sessions("k1", "k2", "k3", put=True)) == [True, True, True]
    code, out, _ = run(capsys, "listeners", "sign-out", "alice")
    assert code == 0 and out.startswith("1 session(s) ended (1 listener(s))")
    assert asyncio.run(sessions("k1", "k2", "k3")) == [True, False, True]
    code, out, _ = run(capsys, "listeners", "sign-out", "--all")
    assert code == 0 and out.startswith("2 session(s) ended (2 listener(s))")
    assert asyncio.run(sessions("k1", "k2", "k3")) == [False, False, False]
    assert run(capsys, "listeners", "sign-out", "nobody")[0] == 1
    assert run(capsys, "listeners", "sign-out")[0] == 2


def test_side_file_that_is_not_a_mapping(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    flows = tmp_path / "flows.yaml"
    shutil.copy(FLOWS, flows)
    (tmp_path / "flows.tests.yaml").write_text("- just a list\n", encoding="utf-8")
    code, out, _ = run(capsys, "flows", "test", str(flows))
    assert code == 1
    assert (
        out.strip()
        == f"{tmp_path / 'flows.tests.yaml'}:1:1: expected a mapping whose key 'tests' lists conversation tests"
    )


def test_schema_problems_are_all_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "flows.yaml"
    text = FLOWS.read_text(encoding="utf-8")
    text = text.replace("bot_reminder_minutes: 10", "bot_reminder_minute: 10", 1)
    text = text.replace("idle_close_hours: 24", "idle_close_hours: soon", 1)
    broken.write_text(text, encoding="utf-8")
    code, out, _ = run(capsys, "flows", "check", str(broken))
    assert code == 1
    assert "bot_reminder_minute" in out and "idle_close_hours" in out


def test_classify_prints_one_json_object_per_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setattr("sys.stdin", io.StringIO("stop\njveux plus être là\nmort de rire\n"))
    code, out, err = run(capsys, "flows", "classify", str(FLOWS), "--lang", "fr", "--keywords-only")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {"interrupt": "stop", "risk": "none", "score": 0.0, "topic": None, "priority": None, "partners": [],
         "ends": True},
        {"interrupt": "suicide", "risk": "suicide", "score": 1.0, "topic": None, "priority": "urgent",
         "partners": ["3114"], "ends": False},
        {"interrupt": None, "risk": "none", "score": 0.0, "topic": None, "priority": None, "partners": [],
         "ends": False},
    ]  # fmt: skip
    assert "keywords only" in err


def test_simulate_shows_the_risk_and_how_it_was_found(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("non\nfrançais\njveux plus être là\n"))
    code, out, _ = run(capsys, "flows", "simulate", str(FLOWS), "--at", "2026-03-10T14:00:00+01:00")
    assert code == 0
    assert (
        "route: suicide · queue: listeners (urgent) · partners: 3114 · risk: suicide (phrase “je veux plus etre la”)"
        in out
    )


def test_classify_reads_with_the_embedded_model_what_no_keyword_matches(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setattr("sys.stdin", io.StringIO("je pense au pont tous les soirs\nstop\n"))
    code, out, _ = run(capsys, "flows", "classify", str(FLOWS), "--lang", "fr")
    assert code == 0
    bridge, stop = (json.loads(line) for line in out.splitlines())
    assert (bridge["interrupt"], bridge["risk"], bridge["partners"], bridge["ends"]) == (
        "suicide",
        "suicide",
        ["3114"],
        False,
    )
    assert bridge["score"] >= 0.5
    assert stop["ends"] is True and stop["risk"] == "none"


def test_conversation_tests_with_the_embedded_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    side = tmp_path / "side.tests.yaml"
    side.write_text(
        "tests:\n"
        "  - name: a phrase and the model together only raise\n"
        "    at: 2026-03-10T14:00:00+01:00\n"
        "    language: fr\n"
        "    turns: [non, français, jveux mourir]\n"
        "    expect: {outcome: handoff, risk: suicide, priority: urgent}\n",
        encoding="utf-8",
    )
    _, out, _ = run(capsys, "flows", "test", str(FLOWS), "--tests", str(side), "--model")
    assert "PASSED a phrase and the model together only raise" in out
    assert re.search(r"^\d+ passed, \d+ failed$", out, re.MULTILINE)  # the flow's own tests ran with the model too


@pytest.mark.parametrize(
    ("password", "french", "english"),
    [
        ("court123", "trop court : au moins 12 caractères", "too short: at least 12 characters"),
        ("motdepasse2024!", "trop courant", "too common"),
        ("azertyuiop123", "trop courant", "too common"),
        ("abababababab", "trop courant", "too common"),
    ],
)
def test_a_short_or_common_password_is_refused_in_french_then_english(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, password: str, french: str,
    english: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("GATEWAY_STORE", f"sqlite:///{tmp_path}/cli.sqlite3")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    code, _, err = run(capsys, "listeners", "add", "sam", "--password-stdin")
    assert code != 0 and french in err and english in err and err.index(french) < err.index(english)
    assert password not in err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert run(capsys, "listeners", "add", "sam", "--password-stdin")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    code, _, err = run(capsys, "listeners", "passwd", "sam", "--password-stdin")
    assert code != 0 and french in err and english in err


def test_side_file_tests_are_checked_like_flows_yaml_s(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A test written in flows.tests.yaml without the UTC offset made `gateway flows test` end in a traceback
    ("'now' must be timezone-aware"), none of the other tests reported; a misspelled partner only failed the test.
    Checked as under `tests:` in flows.yaml: every problem as `FILE:LINE:COLUMN: message`, nothing run."""
    flows = tmp_path / "flows.yaml"
    shutil.copy(FLOWS, flows)
    side = tmp_path / "flows.tests.yaml"
    side.write_text(
        "tests:\n"
        "  - name: at night\n"
        "    at: 2026-03-10T23:30:00\n"
        "    turns: ['1']\n"
        "    expect: {outcome: closed, partners: [emergncy, '3114']}\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "flows", "test", str(flows))
    assert code == 1
    assert out.splitlines() == [
        f"{side}:3:9: test 'at night': 'at' needs a time zone offset, like 2026-03-10T14:00:00+01:00",
        f"{side}:5:42: test 'at night' expects partner 'emergncy', which does not exist (did you mean 'emergency'?)",
    ]


def test_a_file_saved_in_another_encoding_is_pointed_at(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Saved from Notepad as "ANSI" (Windows-1252), flows.yaml got "cannot read the file (UnicodeDecodeError)" at
    1:1, and its side file a traceback from `gateway flows test`: the line and column of the first character that is
    not UTF-8 are given, with what to do."""
    flows = tmp_path / "flows.yaml"
    text = FLOWS.read_text(encoding="utf-8")
    flows.write_bytes(text.encode().replace("fermé pour le moment".encode(), "fermé pour le moment".encode("cp1252")))
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "fermé pour le moment" in t)
    column = text.splitlines()[line - 1].index("fermé pour") + 5
    code, out, _ = run(capsys, "flows", "check", str(flows))
    assert code == 1
    assert out.strip() == f"{flows}:{line}:{column}: the file is not UTF-8 (byte 0xe9): save it as UTF-8"

    shutil.copy(FLOWS, flows)
    side = tmp_path / "flows.tests.yaml"
    side.write_bytes("tests:\n  - name: fermé\n".encode("cp1252"))
    code, out, _ = run(capsys, "flows", "test", str(flows))
    assert code == 1
    assert out.strip() == f"{side}:2:15: the file is not UTF-8 (byte 0xe9): save it as UTF-8"
