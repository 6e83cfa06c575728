"""The console's pages: redirects without a session, the first-account hint, strict headers, static files."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import add_listener, login


async def test_pages_need_a_session(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/console", "/console/supervision"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == "/console/login"


async def test_the_login_page_tells_how_to_create_the_first_account(client: TestClient) -> None:  # type: ignore[type-arg]
    page = await (await client.get("/console/login")).text()
    assert "gateway listeners add NOM --supervisor" in page
    assert 'id="first-account" class="notice" >' in page
    await add_listener(client, "anne")
    page = await (await client.get("/console/login")).text()
    assert 'id="first-account" class="notice" hidden>' in page
    assert '<label for="name" data-i18n="login.name">Nom</label>' in page  # French first; i18n.js has English
    assert '<label for="password" data-i18n="login.password">Mot de passe</label>' in page


async def test_pages_have_a_strict_policy(client: TestClient) -> None:  # type: ignore[type-arg]
    await add_listener(client, "anne")
    await login(client, "anne")
    response = await client.get("/console")
    assert response.status == 200 and "console.js" in await response.text()
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_supervision_page_sends_listeners_back_to_the_console(client: TestClient) -> None:  # type: ignore[type-arg]
    await add_listener(client, "anne")
    await login(client, "anne")
    response = await client.get("/console/supervision", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/console"


async def test_static_files_are_served_and_never_use_inner_html(client: TestClient) -> None:  # type: ignore[type-arg]
    for name in (
        "console.js",
        "drafts.js",
        "logout.js",
        "supervision.js",
        "login.js",
        "common.js",
        "i18n.js",
        "console.css",
    ):
        response = await client.get(f"/console/static/{name}")
        assert response.status == 200, name
        assert "innerHTML" not in await response.text(), name
    assert (await client.get("/console/static/../../app.py")).status in (403, 404)


async def test_the_api_answers_are_never_stored_by_a_browser(client: TestClient) -> None:  # type: ignore[type-arg]
    """Every console API answer (the queue, a refusal, one without a session) says ``Cache-Control: no-store``: a
    listener's shared computer keeps no young person's words in its cache. Webhooks are not concerned."""
    await add_listener(client, "anne")
    assert (await client.get("/api/queue")).headers["Cache-Control"] == "no-store"  # 401: no session yet
    await login(client, "anne")
    for path in ("/api/queue", "/api/me", "/api/history", "/api/conversations/nope"):
        response = await client.get(path)
        assert response.headers["Cache-Control"] == "no-store", (path, response.status)
    assert "Cache-Control" not in (await client.get("/webhooks/messenger")).headers
