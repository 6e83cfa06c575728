"""The store's Redis connections on uvloop, the loop ``gateway serve`` runs on (the suite's own tests run on
asyncio's): a write to a connection closed meanwhile is a connection error, never uvloop's RuntimeError.

Seen in the chaos soak (``worker webchat stopped by RuntimeError at handle.pyx:159``) and reproduced by hand: on
uvloop, a web chat following a conversation while Redis restarts sends SUBSCRIBE on the events connection that
redis-py's reader is closing (its ``disconnect`` awaits ``wait_closed`` before forgetting the writer); uvloop
raises ``RuntimeError: unable to perform operation on <TCPTransport closed=True>; the handler is closed``, where
asyncio's loop drops the write and the drain says the connection is lost. The RuntimeError went up through the
store as a bug (a worker restarted, a request would be answered 500) instead of a StoreError.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.store.redis_pool import open_pool


def test_a_write_to_a_connection_closed_meanwhile_is_a_connection_error_on_uvloop(redis_url: str) -> None:
    async def scenario() -> None:
        pool = open_pool(redis_url, max_connections=2, timeout=5, health_check_interval=0)
        connection = await pool.get_connection()
        try:
            await connection.send_command("PING")
            assert await connection.read_response() in (b"PONG", "PONG")
            writer = connection._writer
            assert writer is not None
            writer.transport.close()  # what another task's disconnect does while this one is about to write
            async with asyncio.timeout(10):  # uvloop frees the handle at its next turn: then a write raises
                while "closed=True" not in repr(writer.transport):
                    await asyncio.sleep(0)
            with pytest.raises(RedisConnectionError):  # before: RuntimeError from uvloop's _ensure_alive
                await connection.send_command("PING", check_health=False)
            assert not connection.is_connected  # dropped, as after any failed write: the next use reconnects
            await connection.send_command("PING")
            assert await connection.read_response() in (b"PONG", "PONG")
        finally:
            await pool.release(connection)
            await pool.disconnect()

    uvloop.run(scenario())
