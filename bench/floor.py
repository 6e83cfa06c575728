"""The floor: the least a webhook gateway can do per message, to measure the gateway against in the same run.

``python bench/floor.py PORT REDIS_URL PROVIDER_URL APP_SECRET``: an aiohttp server on uvloop (when installed)
whose ``POST /webhooks/messenger`` checks the Messenger signature, parses the JSON, runs one Redis transaction
per message (a de-duplication ``SET NX`` and an ``RPUSH`` to the sender's list) and acknowledges; then one reply
POST per message to the fake Graph API, after the acknowledgement (as the gateway's outbox does). Run by
``bench/load.py``; not a product.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from typing import Any

from aiohttp import ClientSession, TCPConnector, web
from redis.asyncio import BlockingConnectionPool, Redis

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency; still runnable without it
    uvloop = None  # type: ignore[assignment]


class Floor:
    def __init__(self, redis: Redis, session: ClientSession, provider: str, secret: bytes) -> None:
        self.redis, self.session, self.provider, self.secret = redis, session, provider, secret
        self.tasks: set[asyncio.Task[None]] = set()

    async def webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
            return web.Response(status=403)
        document: dict[str, Any] = json.loads(raw)
        for entry in document["entry"]:
            for item in entry["messaging"]:
                sender, message = item["sender"]["id"], item["message"]
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.set(f"floor:seen:{message['mid']}", "1", nx=True, ex=86_400)
                    pipe.rpush(f"floor:conv:{sender}", json.dumps(message))
                    await pipe.execute()
                task = asyncio.create_task(self.reply(sender))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        return web.Response(text="EVENT_RECEIVED")

    async def reply(self, sender: str) -> None:
        body = {"recipient": {"id": sender}, "messaging_type": "RESPONSE", "message": {"text": "Bonjour"}}
        async with self.session.post(self.provider + "/me/messages", json=body) as response:
            await response.read()


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(port: int, redis_url: str, provider: str, secret: str) -> None:
    # A blocking pool, as the gateway's: under a burst a request waits for a connection instead of failing.
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=100, timeout=10))
    async with ClientSession(connector=TCPConnector(limit=256)) as session:
        floor = Floor(redis, session, provider, secret.encode())
        app = web.Application()
        app.router.add_post("/webhooks/messenger", floor.webhook)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()


def main() -> None:
    port, redis_url, provider, secret = sys.argv[1:5]
    coroutine = serve(int(port), redis_url, provider, secret)
    if uvloop is not None:
        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
