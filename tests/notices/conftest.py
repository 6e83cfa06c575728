"""A real SMTP server (aiosmtpd, STARTTLS + AUTH) and a gateway wired to it with Messenger on a fake Graph API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.settings import Settings
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory, add_listener, login
from tests.notices.smtp_server import SmtpServer

MESSENGER_SECRET = "messenger-app-secret"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings: Settings, smtp: SmtpServer, graph: FakeGraphAPI) -> Settings:
    return settings.replace(
        smtp_url=smtp.url, smtp_ca_file=str(smtp.cert), messenger_app_secret=MESSENGER_SECRET,
        messenger_verify_token="verify", messenger_page_access_token="token", messenger_api_url=graph.url,
    )  # fmt: skip


@pytest.fixture
async def app(make_client: AppFactory, mail_settings: Settings) -> TestClient:  # type: ignore[type-arg]
    client = await make_client(mail_settings)
    await add_listener(client, "anne", supervisor=True)
    await login(client, "anne")
    return client
