"""The retention of notices' evidence (screenshots of intimate images, of harassment: sealed, but personal data) goes
on when flows.yaml loses its ``notices:`` section (removed or commented out, then reloaded): with the last
``retention_days`` the notice holds (the section's as it closed), else the last this process loaded, else the
documented default (30). A process started again without the section never falls back to the shorter default for a
notice closed under a longer retention (until 2026-12-07 it did: 90 days cut to 30). Until 2026-12-07
``Notices.sweep`` returned at once without the section (and ``run`` no longer called it): every closed notice's
evidence was kept forever. The real store (SQLite, Redis), the real supervisor and worker; the test's clock.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.metrics import Metrics
from gateway.notices.record import Evidence, Notice, NoticeStatus
from gateway.notices.service import Notices
from gateway.store import Store, open_store
from gateway.supervisor import Supervisor
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.flows.conftest import MINI_FLOW
from tests.store.conftest import STORES, emptied, redis_url
from tests.test_purge_outage import until

__all__ = ["redis_url"]  # the fixture used below

SCREENSHOT = Evidence("evidence-1.png", "image/png", b"\x89PNG\r\n\x1a\nscreenshot-of-the-post")


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path}/gateway.sqlite3" if request.param == "sqlite" else emptied(
        request.getfixturevalue("redis_url"))  # fmt: skip
    opened = await open_store(url, keys=store_keys(url))
    try:
        yield opened
    finally:
        await opened.close()


async def closed_notice(store: Store, clock: Clock) -> str:
    """A notice refused by its platform now, one screenshot kept as its evidence."""
    now = clock()
    notice = Notice(id="n-retention", conversation_id="c-1", pseudonym="Renard 12", platform="instagram",
                    category="intimate_images", locations=("https://www.instagram.com/p/B2/",), description="",
                    language="en", created_by="anne", created_at=now, updated_at=now, evidence=(0,))  # fmt: skip
    await store.put_notice(notice.moved(NoticeStatus.SENT, now).moved(NoticeStatus.REFUSED, now))
    await store.put_evidence(notice.id, [SCREENSHOT])
    return notice.id


def flows_at(tmp_path: Path, text: str | None = None) -> FlowSet:
    path = tmp_path / "flows.yaml"
    if text is None:
        shutil.copy(ROOT / "flows.yaml", path)
    else:
        path.write_text(text, encoding="utf-8")
    flows = FlowSet(path)
    assert flows.reload().ok
    return flows


async def test_evidence_is_deleted_with_the_last_retention_once_the_notices_section_is_removed(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    flows = flows_at(tmp_path)
    path = flows.path
    path.write_text(path.read_text(encoding="utf-8").replace("  retention_days: 30 ", "  retention_days: 7 "),
                    encoding="utf-8")  # fmt: skip
    assert flows.reload().ok and (notices_section := flows.engine().flow.notices) is not None
    assert notices_section.retention_days == 7
    notice = await closed_notice(store, clock)
    metrics = Metrics()
    notices = Notices(Dispatcher(store, flows, clock=clock), store, flows, {}, None, clock=clock, poll_seconds=0.2,
                      metrics=metrics)  # fmt: skip
    await notices.sweep(clock())  # the section there: its retention known, nothing due yet
    assert await store.get_evidence(notice) == [SCREENSHOT]

    path.write_text(MINI_FLOW, encoding="utf-8")  # the section removed, then reloaded
    assert flows.reload().ok and flows.engine().flow.notices is None
    clock.advance(days=7, minutes=1)
    supervisor = Supervisor(metrics)
    supervisor.add("notices", notices.run)
    supervisor.start()
    try:

        async def deleted() -> bool:
            return not await store.get_evidence(notice)

        await until(deleted, "the evidence deleted 7 days after closing, the section gone")
        stored = await store.get_notice(notice)
        assert stored is not None and stored.evidence_deleted_at is not None
        assert "notices" not in supervisor.problems()
    finally:
        await supervisor.stop()
        metrics.outages.close()


async def test_without_a_section_ever_loaded_evidence_is_deleted_after_the_default_retention(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """A process started on a flows.yaml already without the section knows no retention of its own: the default,
    30 days (``gateway/flows/casework.py``), as docs/console.md says."""
    flows = flows_at(tmp_path, MINI_FLOW)
    notice = await closed_notice(store, clock)
    notices = Notices(Dispatcher(store, flows, clock=clock), store, flows, {}, None, clock=clock, metrics=Metrics())
    await notices.sweep(clock() + timedelta(days=29, hours=23))
    assert await store.get_evidence(notice) == [SCREENSHOT]  # kept while the default retention runs
    await notices.sweep(clock() + timedelta(days=30, minutes=1))
    assert await store.get_evidence(notice) == []
    stored = await store.get_notice(notice)
    assert stored is not None and stored.evidence_deleted_at is not None


async def test_a_process_started_without_the_section_keeps_the_evidence_for_the_retention_it_closed_under(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """A helpline keeps evidence 90 days (a platform, the police may still ask for it); the section is removed and
    the server started again (a deploy, another instance): the evidence of a notice closed under 90 days is not
    deleted at the default 30. Until 2026-12-07 the new process knew only the default: deleted 60 days early."""
    flows = flows_at(tmp_path)
    path = flows.path
    path.write_text(path.read_text(encoding="utf-8").replace("  retention_days: 30 ", "  retention_days: 90 "),
                    encoding="utf-8")  # fmt: skip
    assert flows.reload().ok and (section := flows.engine().flow.notices) is not None and section.retention_days == 90
    notice = await closed_notice(store, clock)
    before = Notices(Dispatcher(store, flows, clock=clock), store, flows, {}, None, clock=clock, metrics=Metrics())
    await before.sweep(clock())  # the section there: nothing due yet

    path.write_text(MINI_FLOW, encoding="utf-8")  # the section removed, then a new process
    started = FlowSet(path)
    assert started.reload().ok and started.engine().flow.notices is None
    after = Notices(Dispatcher(store, started, clock=clock), store, started, {}, None, clock=clock, metrics=Metrics())
    await after.sweep(clock() + timedelta(days=30, minutes=1))
    assert await store.get_evidence(notice) == [SCREENSHOT]  # the default's 30 days are not the helpline's 90
    await after.sweep(clock() + timedelta(days=89, hours=23))
    assert await store.get_evidence(notice) == [SCREENSHOT]
    await after.sweep(clock() + timedelta(days=90, minutes=1))
    assert await store.get_evidence(notice) == []


async def test_a_notice_closed_by_a_listener_holds_the_retention_it_closed_under(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """Written as it closes, not only at the next sweep: a restart without the section in between loses nothing."""
    flows = flows_at(tmp_path)
    now = clock()
    draft = Notice(id="n-closing", conversation_id="c-1", pseudonym="Renard 12", platform="instagram",
                   category="intimate_images", locations=("https://www.instagram.com/p/B3/",), description="",
                   language="en", created_by="anne", created_at=now, updated_at=now)  # fmt: skip
    sent = draft.moved(NoticeStatus.SENT, now)
    await store.put_notice(sent)
    notices = Notices(Dispatcher(store, flows, clock=clock), store, flows, {}, None, clock=clock, metrics=Metrics())
    await notices.update(sent.id, "anne", "refused", "Not violating.")
    stored = await store.get_notice(sent.id)
    assert stored is not None and stored.status is NoticeStatus.REFUSED and stored.retention_days == 30


@dataclass(frozen=True, slots=True)
class NoticeOfANewerVersion(Notice):
    """A notice as a later version writes it: a field this version does not know (as ``retention_days`` was to the
    version before 2026-12-07), written through the real store's own ``to_dict``."""

    later_field: str = "a value this version ignores"


async def test_a_notice_written_by_a_newer_version_does_not_stop_the_sweep(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """A notice holding a field this version does not know (a newer instance wrote it: a deploy going back, or one
    instance not yet stopped) is read without it: the sweep goes on, this notice's evidence and every other's deleted
    at their retention, and the console lists it. Until 2026-12-07 ``Notice.from_dict`` refused any unknown key:
    ``StoreError`` at every sweep (every notice's reminders, removals told and evidence deletion stopped, the store
    reported as failing) and the console's notices answered 503."""
    flows = flows_at(tmp_path)
    now = clock()
    newer = NoticeOfANewerVersion(id="n-newer", conversation_id="c-1", pseudonym="Renard 12", platform="instagram",
                                  category="intimate_images", locations=("https://www.instagram.com/p/B4/",),
                                  description="", language="en", created_by="anne", created_at=now, updated_at=now,
                                  evidence=(0,), retention_days=30)  # fmt: skip
    await store.put_notice(newer.moved(NoticeStatus.SENT, now).moved(NoticeStatus.REFUSED, now))
    await store.put_evidence(newer.id, [SCREENSHOT])
    other = await closed_notice(store, clock)
    notices = Notices(Dispatcher(store, flows, clock=clock), store, flows, {}, None, clock=clock, metrics=Metrics())
    await notices.sweep(clock() + timedelta(days=30, minutes=1))
    assert await store.get_evidence(newer.id) == [] and await store.get_evidence(other) == []
    read = await store.get_notice(newer.id)
    assert type(read) is Notice and read.evidence_deleted_at is not None and read.pseudonym == "Renard 12"
    assert sorted(n.id for n in await store.list_notices()) == ["n-newer", "n-retention"]
