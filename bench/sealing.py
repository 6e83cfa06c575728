"""The cost of encryption at rest: CPU per message spent sealing and opening the store's records.

``python bench/sealing.py [--conversations 60]``: the real app in this process (``create_app`` with its workers,
SQLite in a temporary directory, the embedded model off), Messenger replies going to the fake Graph API. The
walks of ``bench/load.py`` (the repository's flows.yaml to the hand-off) are fed to the dispatcher message by
message, each one's replies awaited. The store's :class:`~gateway.crypto.DataKeys` counts and times every seal
and open. Printed: seals and opens per message, the microseconds they take per message, and their share of this
process's CPU over the run (the dispatcher, the engine, SQLite, the outbox, the fake provider: everything but
HTTP parsing of the webhooks). Then AES-256-GCM alone on records of typical sizes. Never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import Provider, Step, bench_flows, walks  # noqa: E402
from gateway.app import DISPATCHER, create_app  # noqa: E402
from gateway.crypto import DataKeys, new_key, parse_key  # noqa: E402
from gateway.messages import ChannelName, Inbound  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.store import open_store  # noqa: E402


class TimedKeys(DataKeys):
    """The data keys, counting and timing each seal and open (what the bench measures; never in the product)."""

    seals = opens = 0
    seconds = 0.0

    def seal(self, kind: str, text: str) -> bytes:
        start = time.perf_counter()
        try:
            return super().seal(kind, text)
        finally:
            self.seals += 1
            self.seconds += time.perf_counter() - start

    def open(self, kind: str, stored: str | bytes) -> str:
        start = time.perf_counter()
        try:
            return super().open(kind, stored)
        finally:
            self.opens += 1
            self.seconds += time.perf_counter() - start


async def run(conversations: int) -> None:
    flow_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    script = walks(flow_text)
    keys = TimedKeys([parse_key(new_key(), "bench")], "bench-lookup-secret", source="bench")
    with tempfile.TemporaryDirectory() as directory:
        flows = Path(directory) / "flows.yaml"
        flows.write_text(flow_text, encoding="utf-8")
        async with Provider() as provider:
            settings = Settings(
                store=f"sqlite:///{directory}/gateway.sqlite3", flows=str(flows), secret_key="bench-secret-key",
                understanding="off", messenger_app_secret="bench", messenger_page_access_token="token",
                messenger_verify_token="verify", messenger_api_url=provider.url, outbox_base_delay=0.05,
            )  # fmt: skip
            store = await open_store(settings.store, keys=keys)
            runner = web.AppRunner(await create_app(settings, store=store, worker_poll_seconds=0.02))
            await runner.setup()
            try:
                messages, cpu = await walk_all(runner.app, provider, script, conversations)
            finally:
                await runner.cleanup()
    seconds = keys.seconds
    print(f"{conversations} conversations to the hand-off, {messages} messages, this process's CPU {cpu:.2f} s")
    print(f"per message: {keys.seals / messages:.1f} seals, {keys.opens / messages:.1f} opens, "
          f"{seconds / messages * 1e6:.0f} µs sealing and opening ({seconds / cpu * 100:.1f} % of the CPU, "
          f"{cpu / messages * 1000:.2f} ms CPU per message in all)")  # fmt: skip
    aead_alone(keys)


async def walk_all(app: web.Application, provider: Provider, script: list[list[Step]], count: int) -> tuple[int, float]:
    dispatcher, messages = app[DISPATCHER], 0
    start = time.process_time()
    for n in range(count):
        sender_id = f"7100{n:012d}"
        for number, step in enumerate(script[n % len(script)]):
            sender = provider.sent(sender_id, step, time.perf_counter())
            inbound = Inbound(ChannelName.MESSENGER, sender_id, f"m_{n}_{number}", step.text, step.payload)
            await dispatcher.handle_inbound(inbound)
            messages += 1
            async with asyncio.timeout(30):
                while sender.received < sender.expected:
                    sender.arrived.clear()
                    await sender.arrived.wait()
    return messages, time.process_time() - start


def aead_alone(keys: DataKeys) -> None:
    for size in (200, 1_500, 4_000):
        text = "é" * (size // 2)
        rounds, start = 20_000, time.perf_counter()
        for _ in range(rounds):
            keys.open("bench", keys.seal("bench", text))
        print(f"seal + open of a {size} B record: {(time.perf_counter() - start) / rounds * 1e6:.1f} µs")
    print(f"machine: {platform.platform()}, Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--conversations", type=int, default=60)
    asyncio.run(run(parser.parse_args().conversations))


if __name__ == "__main__":
    main()
