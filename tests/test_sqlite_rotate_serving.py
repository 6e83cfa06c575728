"""``gateway data-key rotate`` with the embedded key file (SQLite, ``GATEWAY_DATA_KEY`` unset) run while the gateway
runs on the same file: refused, nothing changed (``sqlite_locks.in_use``: every process with the store open holds
a byte of its lock file shared).

Until 2026-12-07 it ran (the help said "stop the gateway first", nothing checked): a new key put first in
``var/data-keys``, every record resealed under it, the old key removed, while the running gateway held the old key
alone in memory: it could no longer open its own conversation, and the young person's next message failed.
"""

from __future__ import annotations

from pathlib import Path

from gateway.crypto import KeyFile
from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.test_erasure_sqlite_cli import gateway_cli
from tests.test_webchat import bot_texts, hello, say


async def test_rotating_the_embedded_key_beside_the_running_gateway_is_refused(
    settings: Settings, make_client: AppFactory, tmp_path: Path
) -> None:
    """Before: the command exited 0, and the gateway then failed on the conversation it had open."""
    settings = settings.replace(store=f"sqlite:///{tmp_path}/var/gateway.sqlite3", data_key="")
    chat = await make_client(settings)
    keys = KeyFile.of_store(settings.store)
    before = keys.path.read_bytes()
    async with chat.ws_connect("/chat/ws") as ws:
        await hello(ws)
        assert bot_texts(await say(ws, "m1", "bonjour"))
        code, out, err = await gateway_cli(settings, "data-key", "rotate")
        assert code == 1, (out, err)  # before: 0, every record resealed under a key the gateway did not hold
        assert "open in another process" in err and "nothing was changed" in err, err
        assert keys.path.read_bytes() == before
        assert bot_texts(await say(ws, "m2", "tu es là ?"))  # the gateway still opens its conversation
    await chat.close()  # the gateway stopped: the rotation runs
    code, out, err = await gateway_cli(settings, "data-key", "rotate")
    assert code == 0, (out, err)
    assert keys.path.read_bytes() != before
