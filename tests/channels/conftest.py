"""Shared pieces of the channel tests: an offline guard, a tiny webhook app, and the JSON view of a Batch."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.channels.base import Batch
from gateway.errors import WebhookError
from tests.conftest import loopback_only

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

Parser = Callable[[web.Request], Awaitable[Batch]]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test whose code connects anywhere but loopback (the fakes all listen on 127.0.0.1)."""
    with loopback_only(monkeypatch):
        yield


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def batch_json(batch: Batch) -> dict[str, Any]:
    """The Batch as plain JSON: what the test app answers, so tests see exactly what the server would get."""
    return json.loads(json.dumps(dataclasses.asdict(batch), default=str))  # type: ignore[no-any-return]


def webhook_app(routes: dict[str, Parser]) -> web.Application:
    """An app routing ``POST path`` to a channel's parser, answering the Batch as JSON or the error's status."""
    app = web.Application()
    for path, parser in routes.items():
        app.router.add_post(path, _handler(parser))
    return app


def _handler(parser: Parser) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            batch = await parser(request)
        except WebhookError as error:
            return web.json_response({"error": str(error)}, status=error.status)
        return web.json_response(batch_json(batch))

    return handle
