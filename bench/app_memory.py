"""What a closed app leaves behind: build the real app (on SQLite), start it, serve one request, close it, ``--apps``
times in one process, and print after each (and ``gc.collect()``) the process's resident memory, the threads alive
and whether the closed apps' Readers and models are still held (``weakref``).

    .venv/bin/python bench/app_memory.py --apps 6            # the shipped model loaded by each app
    .venv/bin/python bench/app_memory.py --apps 6 --off      # GATEWAY_UNDERSTANDING=off

A closed app that served requests stays held by aiohttp's handler cache (``web_app._cached_build_middleware``), so
its Reader does too; its model must not (``Reader.stop``). On 2026-12-02: ≈ 110 MiB more each app before, flat at
≈ 245 MiB after; with ``--off`` ≈ 1–2 MiB each (the closed app itself, held by the cache).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import threading
import weakref
from pathlib import Path

import uvloop
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import READER, create_app
from gateway.settings import Settings
from gateway.testing import DATA_KEY, SECRET_KEY

ROOT = Path(__file__).resolve().parents[1]


def resident_mib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


async def once(understanding: str, held: list[weakref.ref[object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(store=f"sqlite:///{tmp}/gateway.sqlite3", flows=str(ROOT / "flows.yaml"),
                            public_url="http://127.0.0.1:8080", secret_key=SECRET_KEY, data_key=DATA_KEY,
                            understanding=understanding)  # fmt: skip
        app = await create_app(settings, worker_poll_seconds=0.05)
        client = TestClient(TestServer(app))
        await client.start_server()
        reader = app.get(READER)
        if reader is not None:
            await reader.wait_loaded()
            held.append(weakref.ref(reader))
            if reader.model is not None:
                held.append(weakref.ref(reader.model))
        await client.get("/readyz")
        await client.close()


async def main(apps: int, understanding: str) -> None:
    held: list[weakref.ref[object]] = []
    print(f"start: {resident_mib()} MiB")
    for n in range(apps):
        await once(understanding, held)
        gc.collect()
        alive = [type(ref()).__name__ for ref in held if ref() is not None]
        threads = [t.name for t in threading.enumerate()]
        print(f"app {n + 1}: {resident_mib()} MiB, threads {threads}, still held {alive}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=6)
    parser.add_argument("--off", action="store_true", help="GATEWAY_UNDERSTANDING=off")
    args = parser.parse_args()
    uvloop.run(main(args.apps, "off" if args.off else "on"))
