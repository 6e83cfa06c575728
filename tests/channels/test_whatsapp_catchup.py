"""The WhatsApp catch-up's failures as ``/readyz`` shows them (``CatchUp.failing``): a store failure named by the
class the rest of the gateway names it by (``gateway.outage_log.error_class``). The real SQLite store, its
``last_present`` failing as the Redis store's does (tests/store_holds.py), never Twilio reached."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.channels.whatsapp import Listed, Listing, WhatsAppChannel
from gateway.channels.whatsapp_catchup import RATE_LIMIT_PAUSE, TOLD_PAUSE_BOUNDS, CatchUp
from gateway.errors import RetryableDelivery, StoreError
from gateway.messages import Inbound
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import open_store
from gateway.testing import ACCOUNT_SID, WHATSAPP_FROM, Failure, FakeTwilioAPI
from tests.e2e.channel_support import eventually
from tests.store_holds import Holds


class Unreached:
    """Twilio's list, never reached: the pass fails on the store first."""

    async def received_since(self, since: datetime) -> Listing:
        raise AssertionError("Twilio asked while the store failed")

    async def with_media(self, listed: Listed) -> Inbound:
        raise AssertionError("Twilio asked while the store failed")


class Won:
    async def once_per(self, seconds: int, what: str, subject: str) -> bool:
        return True


@pytest.mark.parametrize(
    ("said", "named"),
    [("Connection reset by peer", "ConnectionError"), ("max number of clients reached", "MaxClientsReached")],
)
async def test_a_pass_failed_by_the_store_is_named_by_the_error_it_wraps(tmp_path: Path, said: str, named: str) -> None:
    """Until 2026-12-07 ``failing (StoreError)`` whatever the store met: a Redis at its maxclients and a reset alike."""
    holds = Holds(await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3"))

    async def fail(*args: object) -> None:
        try:
            raise RedisConnectionError(said)
        except RedisConnectionError as error:  # as gateway/store/redis.py wraps it
            raise StoreError(f"redis: {type(error).__name__}") from error

    holds.run("last_present", fail)

    async def process(batch: object) -> int:
        raise AssertionError("nothing to process")

    catch_up = CatchUp(Unreached(), holds, process, Won(), Metrics())  # type: ignore[arg-type]
    worker = asyncio.create_task(catch_up.run())
    try:
        failing = await eventually(lambda: asyncio.sleep(0, catch_up.failing))
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await holds.real.close()
    assert failing == named


@pytest.mark.parametrize(
    ("told", "pause"),
    [(120, 120.0), (None, RATE_LIMIT_PAUSE), (0, RATE_LIMIT_PAUSE), (86400, TOLD_PAUSE_BOUNDS[1])],
)
async def test_twilios_retry_after_is_the_pause_of_a_list_it_rate_limits(
    tmp_path: Path, told: int | None, pause: float
) -> None:
    """Twilio refuses the list with its rate limit (429, code 20429) and a ``Retry-After``: the channel's error
    carries it (as a send's does) and the catch-up waits that long before its next pass; told none (or 0), the
    ``RATE_LIMIT_PAUSE``; told a day, ``TOLD_PAUSE_BOUNDS``' 300 s at most (since 2026-12-08, review72: with the bound
    removed the three other cases passed and the catch-up waited a day). Until 2026-12-08 the list's ``Retry-After``
    was never read: 60 s whatever Twilio said. The real WhatsApp adapter against the fake Twilio API, the real SQLite
    store."""
    store = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    async with FakeTwilioAPI() as twilio, aiohttp.ClientSession() as session:
        settings = Settings(twilio_api_url=twilio.url, twilio_account_sid=ACCOUNT_SID,
                            twilio_auth_token="twilio-auth-token", twilio_whatsapp_from=WHATSAPP_FROM)  # fmt: skip
        whatsapp = WhatsAppChannel(settings, session)
        await whatsapp.start()

        async def process(batch: object) -> int:
            raise AssertionError("nothing to process")

        limit = Failure(429, code=20429, retry_after=told, description="Too Many Requests")
        try:
            twilio.fail_next(limit, endpoint="list")
            with pytest.raises(RetryableDelivery) as refused:
                await whatsapp.received_since(datetime.now(UTC) - timedelta(minutes=5))
            assert refused.value.rate_limited and refused.value.retry_after == told
            catch_up = CatchUp(whatsapp, store, process, Won(), Metrics())
            twilio.fail_next(limit, endpoint="list")
            assert await catch_up._turn() == pause  # the seconds until its next pass
            assert catch_up.failing == "RetryableDelivery"
        finally:
            await whatsapp.stop()
            await store.close()


async def test_a_missed_webhook_does_not_cut_the_wait_twilio_told_the_list(tmp_path: Path) -> None:
    """Twilio refuses the list with its rate limit and ``Retry-After: 3``; a WhatsApp webhook then answers 503
    (``CatchUp.missed``, the pass wanted once its message settled, 0 s here): the next pass still waits the 3 s Twilio
    told, not asking during its limit. Until 2026-12-08 (review72) ``missed`` brought it forward to the settle's end
    whatever Twilio had said (here asked again at once); under a load that answers webhooks 503, once a settle (30 s)
    during a limit Twilio told longer. The real WhatsApp adapter against the fake Twilio API, the real SQLite store,
    the worker's own loop (``CatchUp.run``); the time measured from before the first pass (a lower bound only)."""
    store = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    async with FakeTwilioAPI() as twilio, aiohttp.ClientSession() as session:
        settings = Settings(twilio_api_url=twilio.url, twilio_account_sid=ACCOUNT_SID,
                            twilio_auth_token="twilio-auth-token", twilio_whatsapp_from=WHATSAPP_FROM)  # fmt: skip
        whatsapp = WhatsAppChannel(settings, session)
        await whatsapp.start()

        async def process(batch: object) -> int:
            raise AssertionError("nothing to process")

        catch_up = CatchUp(whatsapp, store, process, Won(), Metrics(), settle=0.0)
        twilio.fail_next(Failure(429, code=20429, retry_after=3, description="Too Many Requests"), endpoint="list")
        loop = asyncio.get_running_loop()
        began = loop.time()
        worker = asyncio.create_task(catch_up.run())
        try:
            await eventually(lambda: asyncio.sleep(0, catch_up.failing))  # the first pass refused
            catch_up.missed()
            await twilio.wait_for("list", 2, timeout=20)
            asked_again = loop.time() - began
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await whatsapp.stop()
            await store.close()
        assert asked_again >= 3.0, asked_again


@pytest.mark.parametrize(
    ("failure", "named"),
    [
        (Failure(429, code=20429, description="Too Many Requests"), "Twilio code 20429"),
        (Failure(400, code=20001, description="Invalid PageSize"), "Twilio code 20001"),
        (Failure(503, page='{"code": 33612345678, "message": "whatsapp:+33612345678"}'), None),  # no code of Twilio's
        (Failure(502, page='{"code": "20429 +33612345678"}'), None),
        (Failure(502, page="<html>Bad gateway: whatsapp:+33612345678</html>"), None),
    ],
)
async def test_a_pass_refused_by_twilio_says_its_error_code_never_a_number_of_the_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: Failure, named: str | None
) -> None:
    """Twilio refuses the list (its answer read by the SDK as a page's error, "Unable to fetch page"): the catch-up's
    WARNING names Twilio's numeric error code beside the class, and never a number or text of an answer that is not
    Twilio's error (a proxy's page, a code that is no 5-digit code). Until 2026-12-08 evening the line named only the
    class (``RetryableDelivery``), and the list's errors were mapped with code None: an operator could not tell a
    rate limit (20429) from a bad request (20001) or a proxy's 502."""
    store = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    async with FakeTwilioAPI() as twilio, aiohttp.ClientSession() as session:
        settings = Settings(twilio_api_url=twilio.url, twilio_account_sid=ACCOUNT_SID,
                            twilio_auth_token="twilio-auth-token", twilio_whatsapp_from=WHATSAPP_FROM)  # fmt: skip
        whatsapp = WhatsAppChannel(settings, session)
        await whatsapp.start()

        async def process(batch: object) -> int:
            raise AssertionError("nothing to process")

        try:
            catch_up = CatchUp(whatsapp, store, process, Won(), Metrics())
            twilio.fail_next(failure, endpoint="list")
            with caplog.at_level(logging.WARNING, logger="gateway.channels.whatsapp_catchup"):
                await catch_up._turn()
        finally:
            await whatsapp.stop()
            await store.close()
    lines = [r.getMessage() for r in caplog.records if "pass failed" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "33612345678" not in lines[0] and "+336" not in lines[0]
    if named is None:
        assert "Twilio code" not in lines[0], lines[0]
    else:
        assert named in lines[0], lines[0]
